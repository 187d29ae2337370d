//! The benchmark workload, shared by the criterion bench and the percentile/memory bench.
//!
//! A *standing pool* of `n` searching tickets: ratings ~ N(1500, 300), three regions (each
//! player homed in one at 15–60 ms, 80–160 ms to the others, budget 100 ms), ages spread
//! uniformly over the last 0–60 s (so windows and latency budgets differ per ticket), 20% of
//! players with three recent opponents drawn from the pool. 5v5: 30% of tickets are parties of
//! 2–5. The measured tick sees every ticket of the pool at once: every ticket is indexed and
//! considered, and nearly all of them are matched — the most work a tick over `n` tickets can do.

#![allow(dead_code)]

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use versus_core::matchmaking::*;
use versus_core::rating::{PlayerRating, RatingConfig};

pub const NOW: Timestamp = Timestamp::from_secs(3600);

pub fn config(teams: usize, team_size: usize) -> QueueConfig {
    let mut c = QueueConfig::new(teams, team_size);
    c.regions = vec!["eu".into(), "na".into(), "asia".into()];
    c.latency_budget_ms = 100;
    if team_size > 1 {
        c.rating = RatingConfig::weng_lin_scaled(1500.0, 300.0);
    }
    // The shipped quality floor is on; `VERSUS_BENCH_FLOOR=0` measures the tick without it.
    if std::env::var("VERSUS_BENCH_FLOOR").as_deref() == Ok("0") {
        c.min_quality = Schedule::new(vec![(0, 0.0)]);
    }
    c
}

fn normal(rng: &mut ChaCha8Rng) -> f64 {
    // Box-Muller: keeps the bench free of extra dependencies.
    let u1: f64 = rng.random_range(f64::EPSILON..1.0);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// `n` tickets; `party_share` of them parties of 2..=max_party.
pub fn tickets(n: usize, party_share: f64, max_party: usize, seed: u64) -> Vec<Ticket> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut next_player = 1u128;
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let size = if max_party > 1 && rng.random_bool(party_share) {
            rng.random_range(2..=max_party)
        } else {
            1
        };
        let home = rng.random_range(0..3);
        let latency = (0..3)
            .map(|r| {
                if r == home {
                    rng.random_range(15..60)
                } else {
                    rng.random_range(80..160)
                }
            })
            .collect();
        let members = (0..size)
            .map(|_| {
                let p = PlayerId(next_player);
                next_player += 1;
                Member {
                    player: p,
                    rating: PlayerRating::new(1500.0 + 300.0 * normal(&mut rng), 60.0),
                }
            })
            .collect();
        let recent = if rng.random_bool(0.2) {
            (0..3)
                .map(|_| PlayerId(rng.random_range(1..=(n as u128 * 2))))
                .collect()
        } else {
            Vec::new()
        };
        out.push(Ticket {
            id: TicketId(i as u128 + 1),
            members,
            region_latency_ms: latency,
            created_at: Timestamp::from_millis(NOW.millis() - rng.random_range(0..60_000)),
            recent_opponents: recent,
        });
    }
    out
}

/// A matchmaker and its standing pool of `n` tickets, already indexed (as after the ticks
/// they arrived in), ready for the measured tick at [`NOW`].
pub fn standing_pool(
    teams: usize,
    team_size: usize,
    n: usize,
    party_share: f64,
    seed: u64,
) -> (Matchmaker, QueueState) {
    let mm = Matchmaker::new(config(teams, team_size)).unwrap();
    let mut state = mm.new_state();
    for t in tickets(n, party_share, team_size, seed) {
        state.add(t).unwrap();
    }
    state.maintain();
    (mm, state)
}

/// The two benchmarked queues: (name, teams, team size, party share).
pub const QUEUES: [(&str, usize, usize, f64); 2] =
    [("1v1", 2, 1, 0.0), ("5v5_parties30", 2, 5, 0.3)];
pub const SIZES: [usize; 3] = [1_000, 10_000, 100_000];
