//! Heap bytes per player of a leaderboard's rank index, measured by a counting allocator:
//! `cargo run --release -p versus-core --example rank_index_memory [players]` (default
//! 1,000,000). Prints the bytes held after the build, after a round of moves (chunks split and
//! grow), and the build time.

use std::alloc::System;
use std::time::Instant;

use cap::Cap;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use versus_core::leaderboard::{RankIndex, Standing};

/// Counts the bytes the process holds on the heap.
#[global_allocator]
static ALLOCATOR: Cap<System> = Cap::new(System, usize::MAX);

fn main() {
    let players: u128 =
        (std::env::args().nth(1)).map_or(1_000_000, |n| n.parse().expect("players: a number"));
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let standings: Vec<Standing> = (0..players)
        .map(|_| Standing {
            score: (rng.random_range(0..3000_u32) as f64 / 3.0).round() + 1000.0,
            reached_at: rng.random_range(0..1_000_000_000),
            player: rng.random(),
        })
        .collect();
    let before = ALLOCATOR.allocated();
    let started = Instant::now();
    let mut index = RankIndex::from_standings(standings.iter().copied());
    let built = started.elapsed();
    // The input is the caller's (the store's rows); only what the index keeps counts.
    let held = ALLOCATOR.allocated() - before;
    println!(
        "{} players: built in {:.0} ms, {} bytes held, {:.1} B per player",
        index.len(),
        built.as_secs_f64() * 1000.0,
        held,
        held as f64 / index.len() as f64
    );
    for (i, s) in standings.iter().enumerate().take(players as usize / 10) {
        index.upsert(Standing {
            score: s.score + rng.random_range(-30.0..30.0),
            reached_at: 1_000_000_000 + i as i64,
            ..*s
        });
    }
    let held = ALLOCATOR.allocated() - before;
    println!(
        "after moving a tenth of them: {} bytes, {:.1} B per player",
        held,
        held as f64 / index.len() as f64
    );
}
