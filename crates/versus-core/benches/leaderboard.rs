//! The rank index at a million players: a player's rank, the top 100, around-me (10 above and
//! below), and moving one player (what a result does). `cargo bench -p versus-core --bench
//! leaderboard`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use versus_core::leaderboard::{RankIndex, Standing};

const PLAYERS: u128 = 1_000_000;

fn board(rng: &mut ChaCha8Rng) -> RankIndex {
    RankIndex::from_standings((0..PLAYERS).map(|player| Standing {
        // Display ratings around 1500 with ties, as a Glicko-2 board has.
        score: (rng.random_range(0..3000_u32) as f64 / 3.0).round() + 1000.0,
        reached_at: rng.random_range(0..1_000_000_000),
        player,
    }))
}

fn bench(c: &mut Criterion) {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut index = board(&mut rng);
    let mut group = c.benchmark_group("leaderboard_1m");
    group.bench_function("rank", |b| {
        b.iter(|| black_box(index.rank(rng.random_range(0..PLAYERS))))
    });
    group.bench_function("top_100", |b| b.iter(|| black_box(index.after(None, 100))));
    group.bench_function("around_10", |b| {
        b.iter(|| black_box(index.around(rng.random_range(0..PLAYERS), 10, 10)))
    });
    let mut clock = 1_000_000_000;
    group.bench_function("upsert", |b| {
        b.iter(|| {
            clock += 1;
            index.upsert(Standing {
                score: rng.random_range(1000..2000) as f64,
                reached_at: clock,
                player: rng.random_range(0..PLAYERS),
            })
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
