//! Criterion: one tick over a standing pool of 1k / 10k / 100k searching tickets, 1v1 and 5v5
//! with 30% party tickets. Workload: see `common/mod.rs`. Single thread. The pool is settled
//! (`maintain`) outside the timed tick, as a server does it after publishing.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use versus_core::matchmaking::TickOutcome;

mod common;

fn ticks(c: &mut Criterion) {
    for (name, teams, team_size, party_share) in common::QUEUES {
        let mut group = c.benchmark_group(format!("tick_{name}"));
        for n in common::SIZES {
            let (mm, pool) = common::standing_pool(teams, team_size, n, party_share, 7);
            group.sample_size(if n >= 100_000 { 20 } else { 40 });
            // One outcome reused across iterations, as a server's queue loop keeps it.
            let mut out = TickOutcome::default();
            group.bench_function(format!("{n}"), |b| {
                b.iter_batched_ref(
                    || pool.clone(),
                    |state| {
                        mm.tick_into(common::NOW, state, &mut out);
                        black_box(out.match_count())
                    },
                    BatchSize::LargeInput,
                )
            });
        }
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    targets = ticks
}
criterion_main!(benches);
