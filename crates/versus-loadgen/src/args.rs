//! The command line of `versus loadgen`, and the checks that keep it pointed at this machine.

use std::collections::BTreeMap;
use std::net::IpAddr;

use anyhow::{Context as _, bail};
use rand::Rng;

/// How to start a target server, shown after `--help` (`#[command(after_help = AFTER_HELP)]`).
pub const AFTER_HELP: &str = "\
The target server must allow many sign-ups and connections from one address and hash
passwords cheaply:
  VERSUS_LIMITS__AUTH_PER_IP__PER_MINUTE=1000000 VERSUS_LIMITS__AUTH_PER_IP__BURST=100000 \\
  VERSUS_LIMITS__MAX_CONNECTIONS_PER_IP=0 \\
  VERSUS_AUTH__ARGON2__MEMORY_KIB=1024 VERSUS_AUTH__ARGON2__ITERATIONS=1 \\
  versus serve --bind 127.0.0.1:18080 --data-dir /tmp/lg-data
For thousands of players raise the open-file limit of both processes (ulimit -n; the load
generator raises its own soft limit to the hard one). Only loopback targets are accepted.
For the game-server role (--server-key) start the server with the same keys, and give its
static game server room for every game at once (the default capacity is 1000 sessions), e.g.
with --config lg.toml holding:
  [sessions.allocator]
  kind = \"static\"
  endpoints = [{ address = \"127.0.0.1:7777\", capacity = 100000 }]
then, with VERSUS_SESSIONS__SERVER_KEY and VERSUS_SESSIONS__TOKEN_KEY exported to both:
  versus loadgen --url http://127.0.0.1:18080 --players 1000 --requeue --play-time 5
scripts/loadgen-10k runs the 10,000-player benchmark end to end (GAME_SERVERS=1 adds the
game-server role).";

/// Simulated players against a Versus server on this machine.
///
/// The target server must allow many sign-ups and connections from one address and hash
/// passwords cheaply, or the auth rate limit, the per-address connection cap and argon2
/// dominate the run. Start it with e.g.:
///
///   VERSUS_LIMITS__AUTH_PER_IP__PER_MINUTE=1000000 VERSUS_LIMITS__AUTH_PER_IP__BURST=100000
///   VERSUS_LIMITS__MAX_CONNECTIONS_PER_IP=0
///   VERSUS_AUTH__ARGON2__MEMORY_KIB=1024 VERSUS_AUTH__ARGON2__ITERATIONS=1
///   versus serve --bind 127.0.0.1:18080 --data-dir /tmp/lg-data
///
/// and raise the file-descriptor limit (`ulimit -n`) of both processes for thousands of
/// players. Only loopback addresses (127.0.0.0/8, ::1, localhost) are accepted as targets.
#[derive(Debug, Clone, clap::Args)]
pub struct LoadgenArgs {
    /// Server root URL; its host must be loopback. Several, comma-separated (the nodes of a
    /// cluster): players are spread over them in turn, game servers start on the first; a node
    /// that does not answer (or answers 502/503/504) is left for the next one, sockets and REST
    /// calls alike, so a run rides out a node killed mid-run.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Simulated players (each registers or logs in, connects a WebSocket and queues).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub players: u32,
    /// Seconds of load; players still searching then leave the queue.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub duration: u64,
    /// The queue to join.
    #[arg(long, default_value = "ranked-1v1")]
    pub queue: String,
    /// Print the summary as JSON (and no progress bar).
    #[arg(long)]
    pub json: bool,
    /// Seconds over which players start, evenly spread.
    #[arg(long, default_value_t = 10)]
    pub ramp_up: u64,
    /// After a match, join the queue again (until the duration ends) instead of quitting.
    #[arg(long)]
    pub requeue: bool,
    /// With --requeue: seconds a player "plays" its match before queueing again (each pause is
    /// drawn between half and one and a half times this), connected and reading meanwhile.
    /// 0 requeues at once, which makes the queue churn as fast as the server can match. With the
    /// game-server role the game lasts --play-time and this pause follows its result.
    #[arg(long, default_value_t = 0.0)]
    pub requeue_delay: f64,
    /// The same latencies for every player, e.g. `eu=30,na=110`. Without it each player gets
    /// generated ones: a home region at 10–60 ms and the others at 80–250 ms.
    #[arg(long, value_parser = parse_latencies)]
    pub region_latencies: Option<RegionLatencies>,
    /// Regions to generate latencies for (ignored with --region-latencies).
    #[arg(long, default_value = "eu,na,asia", value_delimiter = ',')]
    pub regions: Vec<String>,
    /// Seeds generated latencies and usernames, so runs are reproducible.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Username prefix; players are `<prefix><seed>_<n>` and log in when they already exist.
    #[arg(long, default_value = "lg")]
    pub name_prefix: String,
    /// REST calls in flight at once, over the shared connection pool.
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub rest_concurrency: u32,
    /// Seconds to wait after the duration for `match_found` of matches formed at the end (and,
    /// with the game-server role, for the results of games still being played).
    #[arg(long, default_value_t = 10)]
    pub drain: u64,
    /// The server key game servers send (`sessions.server_key`). Given, the load generator also
    /// plays the game servers: players hand their `session_ready` to an in-process fleet, which
    /// heartbeats each session, sets it active, "plays" for --play-time and posts a result; at
    /// the end every player's stored games are compared with the results posted for them.
    #[arg(long, env = "VERSUS_SESSIONS__SERVER_KEY", hide_env_values = true)]
    pub server_key: Option<String>,
    /// With the game-server role: seconds a game lasts, each drawn between half and one and a
    /// half times this.
    #[arg(long, default_value_t = 5.0)]
    pub play_time: f64,
    /// With the game-server role: the session token key (`sessions.token_key`), to verify each
    /// player's session token offline as a real game server would (failures are counted).
    #[arg(long, env = "VERSUS_SESSIONS__TOKEN_KEY", hide_env_values = true)]
    pub token_key: Option<String>,
}

impl Default for LoadgenArgs {
    fn default() -> Self {
        Self {
            url: "http://127.0.0.1:8080".into(),
            players: 100,
            duration: 60,
            queue: "ranked-1v1".into(),
            json: false,
            ramp_up: 10,
            requeue: false,
            requeue_delay: 0.0,
            region_latencies: None,
            regions: vec!["eu".into(), "na".into(), "asia".into()],
            seed: 1,
            name_prefix: "lg".into(),
            rest_concurrency: 128,
            drain: 10,
            server_key: None,
            play_time: 5.0,
            token_key: None,
        }
    }
}

/// Latency in ms per region, as a player would have measured it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionLatencies(pub BTreeMap<String, u32>);

/// `eu=30,na=110`.
pub fn parse_latencies(raw: &str) -> anyhow::Result<RegionLatencies> {
    let mut latencies = BTreeMap::new();
    for pair in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (region, ms) = pair
            .split_once('=')
            .with_context(|| format!("{pair:?}: expected region=milliseconds"))?;
        let ms: u32 = ms
            .trim()
            .parse()
            .with_context(|| format!("{pair:?}: latency is not a whole number of ms"))?;
        latencies.insert(region.trim().to_owned(), ms);
    }
    if latencies.is_empty() {
        bail!("no region latencies in {raw:?}");
    }
    Ok(RegionLatencies(latencies))
}

/// Latencies for one player: one home region near, the rest far.
pub fn generated_latencies(regions: &[String], rng: &mut impl Rng) -> BTreeMap<String, u32> {
    if regions.is_empty() {
        return BTreeMap::new();
    }
    let home = rng.random_range(0..regions.len());
    regions
        .iter()
        .enumerate()
        .map(|(i, region)| {
            let ms = if i == home {
                rng.random_range(10..=60)
            } else {
                rng.random_range(80..=250)
            };
            (region.clone(), ms)
        })
        .collect()
}

/// Parses `url` and refuses any host that is not this machine: the load generator must never
/// send traffic elsewhere.
pub fn loopback_url(url: &str) -> anyhow::Result<reqwest::Url> {
    let parsed = reqwest::Url::parse(url).with_context(|| format!("{url:?} is not a URL"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        bail!("{url:?}: the server URL must be http:// or https://");
    }
    let host = parsed
        .host_str()
        .with_context(|| format!("{url:?} has no host"))?;
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = bare.eq_ignore_ascii_case("localhost")
        || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if !loopback {
        bail!(
            "refusing to load {host}: the load generator only targets loopback (127.0.0.0/8, ::1, localhost)"
        );
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng as _;

    #[test]
    fn only_loopback_targets() {
        let check = |url: &str, ok: bool| assert_eq!(loopback_url(url).is_ok(), ok, "{url}");
        check("http://127.0.0.1:8080", true);
        check("http://127.8.9.10", true);
        check("http://127.1:80", true); // the URL parser normalises it to 127.0.0.1
        check("http://localhost:1/", true);
        check("http://LOCALHOST", true);
        check("http://[::1]:8080", true);
        check("http://10.0.0.1", false);
        check("http://192.168.1.1", false);
        check("http://[::2]", false);
        check("http://example.com", false);
        check("http://localhost.example.com", false);
        check("http://127.0.0.1.nip.io", false);
        check("http://0.0.0.0", false);
        check("ftp://127.0.0.1", false);
        check("not a url", false);
    }

    #[test]
    fn latencies_parse() {
        let parsed = parse_latencies("eu=30, na=110").unwrap();
        assert_eq!(
            parsed.0,
            BTreeMap::from([("eu".into(), 30), ("na".into(), 110)])
        );
        assert!(parse_latencies("eu").is_err());
        assert!(parse_latencies("eu=fast").is_err());
        assert!(parse_latencies("").is_err());
    }

    #[test]
    fn generated_latencies_have_one_near_home() {
        let regions: Vec<String> = ["eu", "na", "asia"].map(String::from).to_vec();
        let mut rng = rand::rngs::StdRng::seed_from_u64(9);
        for _ in 0..100 {
            let latencies = generated_latencies(&regions, &mut rng);
            assert_eq!(latencies.len(), 3);
            assert_eq!(latencies.values().filter(|ms| **ms <= 60).count(), 1);
        }
    }

    #[test]
    fn args_parse_from_a_command_line() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            args: LoadgenArgs,
        }
        let cli = Cli::try_parse_from([
            "loadgen",
            "--players",
            "10",
            "--region-latencies",
            "eu=30",
            "--requeue",
            "--json",
        ])
        .unwrap();
        assert_eq!(cli.args.players, 10);
        assert!(cli.args.requeue && cli.args.json);
        assert_eq!(cli.args.region_latencies.unwrap().0["eu"], 30);
        assert!(Cli::try_parse_from(["loadgen", "--players", "0"]).is_err());
        let defaults = Cli::try_parse_from(["loadgen"]).unwrap().args;
        let expected = LoadgenArgs::default();
        assert_eq!(
            (defaults.players, defaults.duration, defaults.regions),
            (expected.players, expected.duration, expected.regions)
        );
    }
}
