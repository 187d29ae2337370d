//! Tick latency percentiles and memory per waiting ticket, which criterion does not report.
//!
//! For each queue and pool size: `runs` (100) independent standing pools (different seeds), one
//! tick each, timed with `Instant` around `tick_into` only, after one untimed warm-up tick that sizes
//! the reused outcome (`VERSUS_BENCH_TRACE=1` prints each run's time); prints p50 / p99 / max, matches formed, and
//! memory per waiting ticket two ways:
//!  * accounted: `QueueState::memory_bytes()` — `size_of` of every stored struct plus every
//!    container's capacity (no allocator overhead). A counting global allocator would need
//!    `unsafe impl GlobalAlloc`, which the workspace forbids (`unsafe_code = "forbid"`).
//!  * RSS: growth of the process's resident set (from /proc/self/statm) while a pool is built
//!    and indexed, divided by the ticket count — includes allocator overhead and slack.
//!
//! The bench pins itself to the machine's last core (`VERSUS_BENCH_PIN=0`: it does not): a
//! pool is built and ticked on the same core, as a server's queue task mostly is, rather than
//! built on one and ticked on the other with a cold cache after a migration, which on this
//! 2-core machine put 13 ms outliers among 8 ms ticks.
//!
//! Run: `cargo bench -p versus-core --bench tick_percentiles`

use std::time::Instant;

use versus_core::matchmaking::TickOutcome;

mod common;

fn rss_bytes() -> Option<usize> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: usize = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// Pins this thread to the last core; says so, or why not.
fn pin() {
    if std::env::var("VERSUS_BENCH_PIN").as_deref() == Ok("0") {
        println!("not pinned (VERSUS_BENCH_PIN=0)");
        return;
    }
    match core_affinity::get_core_ids().and_then(|ids| ids.last().copied()) {
        Some(core) if core_affinity::set_for_current(core) => {
            println!("pinned to core {}", core.id)
        }
        _ => println!("not pinned: this platform does not allow it"),
    }
}

fn main() {
    // `cargo bench` passes `--bench`; ignore arguments.
    pin();
    println!(
        "queue           tickets  runs  p50_ms  p99_ms  max_ms  matches  maintain_p50_ms  acct_B/ticket  rss_B/ticket"
    );
    // Optional filter, e.g. `VERSUS_BENCH_FILTER=1v1/100000`.
    let filter = std::env::var("VERSUS_BENCH_FILTER").unwrap_or_default();
    for (name, teams, team_size, party_share) in common::QUEUES {
        for n in common::SIZES {
            if !format!("{name}/{n}").contains(&filter) {
                continue;
            }
            let runs = std::env::var("VERSUS_BENCH_RUNS")
                .ok()
                .and_then(|r| r.parse().ok())
                .unwrap_or(100);
            let mut times = Vec::with_capacity(runs);
            let mut settle = Vec::with_capacity(runs);
            // One outcome reused across ticks, as a server's queue loop keeps it.
            let mut out = TickOutcome::default();
            // One untimed tick first: a server's outcome has held a big tick's lists before,
            // so the timed ticks should not pay for growing them (the first tick ever does:
            // ~30% slower at 100k 1v1, its page faults included).
            // Memory is read off this first pool, built before any other has freed memory the
            // allocator could reuse.
            let (rss, acct) = {
                let before = rss_bytes();
                let (mm, mut state) = common::standing_pool(teams, team_size, n, party_share, 999);
                let after = rss_bytes();
                let rss = before
                    .zip(after)
                    .map(|(b, a)| a.saturating_sub(b) as f64 / n as f64);
                // `VERSUS_BENCH_WARMUP=0` skips it (instruction counts of exactly one tick).
                if std::env::var("VERSUS_BENCH_WARMUP").as_deref() != Ok("0") {
                    mm.tick_into(common::NOW, &mut state, &mut out);
                }
                // After the tick: its working lists are allocated and every ticket is still
                // held (matched ones are released by `maintain`) — the queue's peak footprint.
                let acct = state.memory_bytes() as f64 / n as f64;
                (rss, acct)
            };
            let mut matches = 0;
            for run in 0..runs {
                let (mm, mut state) =
                    common::standing_pool(teams, team_size, n, party_share, 1000 + run as u64);
                let t = Instant::now();
                mm.tick_into(common::NOW, &mut state, &mut out);
                times.push(t.elapsed().as_secs_f64() * 1000.0);
                if std::env::var_os("VERSUS_BENCH_TRACE").is_some() {
                    eprintln!("run {run}: {:.2} ms", times[times.len() - 1]);
                }
                matches = out.match_count();
                let t = Instant::now();
                state.maintain();
                settle.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            times.sort_by(f64::total_cmp);
            settle.sort_by(f64::total_cmp);
            println!(
                "{name:<15} {n:>7}  {runs:>4}  {:>6.2}  {:>6.2}  {:>6.2}  {matches:>7}  {:>15.2}  {acct:>13.0}  {}",
                pct(&times, 0.5),
                pct(&times, 0.99),
                times[times.len() - 1],
                pct(&settle, 0.5),
                rss.map_or("n/a".to_string(), |r| format!("{r:>12.0}")),
            );
        }
    }
}
