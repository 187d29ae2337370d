# syntax=docker/dockerfile:1
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin versus && cp target/release/versus /usr/local/bin/versus

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home /var/lib/versus versus && mkdir -p /var/lib/versus && chown versus /var/lib/versus
COPY --from=build /usr/local/bin/versus /usr/local/bin/versus
USER versus
WORKDIR /var/lib/versus
# One glibc arena: with an arena per thread, freed WebSocket frames stay resident (measured
# ~2-4 KiB more RSS per connected player at 10k players; see BENCHMARKS.md).
ENV VERSUS_BIND=0.0.0.0:8080 VERSUS_DATA_DIR=/var/lib/versus/data MALLOC_ARENA_MAX=1
EXPOSE 8080
# bash, not sh: Debian's sh (dash) has no /dev/tcp.
HEALTHCHECK --interval=10s --timeout=3s CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8080"]
ENTRYPOINT ["versus"]
CMD ["serve"]
