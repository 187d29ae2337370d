//! The Versus matchmaking simulator: runs the real matchmaker (`versus-core`) against traffic
//! generated from a scenario file and reports time-to-match, fairness, latency and tick cost,
//! with every match checked by an independent checker.
//!
//! Entry points: [`run_scenario_file`] (what `versus sim --scenario FILE.toml` calls),
//! [`read_scenario`] with [`Scenario::serve_queue`] (`versus sim … --config … --queue NAME`) and
//! [`run`]. Deterministic for a given scenario (seeded ChaCha RNG), except the tick timings,
//! which are wall-clock measurements.

mod checker;
mod report;
mod scenario;

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal, Poisson};
use versus_core::matchmaking::{
    BackfillRequest, CancelOutcome, Member, PlayerId, RegionId, Shard, Ticket, TicketId, Timestamp,
};
use versus_core::rating::PlayerRating;

pub use checker::{BackfillRecord, Checker, TicketRecord};
pub use report::Report;
pub use scenario::{QueueSpec, RatePhase, RegionSpec, Scenario, SkillSpec, StepSpec};

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("cannot read scenario {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("scenario is not valid TOML for this schema: {0}")]
    Parse(String),
    #[error("scenario key `{key}`: {why}")]
    Invalid { key: String, why: String },
}

/// Reads a scenario file without validating it: a queue from a configuration may still take
/// the place of its own ([`Scenario::serve_queue`]). The report is named after the file unless
/// the scenario names itself.
pub fn read_scenario(path: &Path) -> Result<Scenario, SimError> {
    let text = std::fs::read_to_string(path).map_err(|source| SimError::Io {
        path: path.display().to_string(),
        source,
    })?;
    let mut scenario = Scenario::parse(&text)?;
    if scenario.name.is_none() {
        scenario.name = path.file_stem().map(|s| s.to_string_lossy().into_owned());
    }
    Ok(scenario)
}

/// Reads, validates and runs a scenario file.
pub fn run_scenario_file(path: &Path) -> Result<Report, SimError> {
    let scenario = read_scenario(path)?;
    scenario.validate()?;
    Ok(run(&scenario))
}

struct SimPlayer {
    rating: f64,
    latency: Vec<u32>,
}

/// A running match's players, team by team, with their ratings.
type Roster = Vec<Vec<(u128, f64)>>;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Runs a validated scenario. Panics only if `scenario` was not validated (use
/// [`Scenario::validate`] or [`run_scenario_file`]).
pub fn run(scenario: &Scenario) -> Report {
    let config = scenario
        .queue_config()
        .expect("scenario validated before run");
    // The queue as a server's queue actor drives it: join, leave, tick, settle.
    let mut shard = Shard::new(config.clone()).expect("scenario validated before run");
    let mut rng = ChaCha8Rng::seed_from_u64(scenario.seed);
    let regions = scenario.regions(&config);
    // Each traffic region's index among the queue's regions (validated: every one is there).
    let queue_region: Vec<usize> = (regions.iter())
        .map(|r| {
            (config.regions.iter())
                .position(|q| *q == r.name)
                .expect("scenario validated before run")
        })
        .collect();
    let share_total: f64 = regions.iter().map(|r| r.share).sum();
    let skill = Normal::new(scenario.skill.mean, scenario.skill.sd).expect("validated sd");
    let deviation = scenario.deviation();
    let size_total: f64 = scenario.party_sizes.iter().sum();
    let max_party = config.max_party_size;

    let pick_home = |rng: &mut ChaCha8Rng| {
        let mut x = rng.random::<f64>() * share_total;
        for (i, r) in regions.iter().enumerate() {
            if x < r.share {
                return i;
            }
            x -= r.share;
        }
        regions.len() - 1
    };
    let party_spread = Normal::new(0.0, scenario.party_skill_spread()).expect("validated spread");
    // A player homed in `home`; friends (party members) share the leader's home and are
    // `party_skill_spread` away from the leader's skill.
    let make_player = |rng: &mut ChaCha8Rng, home: usize, near: Option<f64>| {
        let h = &regions[home];
        let base = rng.random_range(h.latency_ms_min..=h.latency_ms_max);
        let extra = h
            .cross_region_extra_ms
            .unwrap_or(scenario.cross_region_extra_ms);
        let latency = (0..config.regions.len())
            .map(|q| {
                if q == queue_region[home] {
                    base
                } else {
                    base + extra
                }
            })
            .collect();
        SimPlayer {
            rating: match near {
                Some(r) => r + party_spread.sample(rng),
                None => skill.sample(rng),
            },
            latency,
        }
    };

    // Population mode: a fixed set of players who requeue after their match.
    let mut players: Vec<SimPlayer> = Vec::new();
    let mut idle: Vec<u32> = Vec::new();
    if let Some(n) = scenario.population {
        for i in 0..n {
            let home = pick_home(&mut rng);
            players.push(make_player(&mut rng, home, None));
            idle.push(i as u32);
        }
    }
    let mut busy_until: Vec<(u64, Vec<u128>)> = Vec::new();
    let mut checker = Checker::new(&config);
    let mut records: HashMap<u128, TicketRecord> = HashMap::new();

    let tick_ms = scenario.tick_ms;
    let end_arrivals_ms = u64::from(scenario.duration_s) * 1000;
    let end_ms = end_arrivals_ms + u64::from(scenario.drain_s) * 1000;
    let mut next_ticket = 1u128;
    let mut tickets = 0u64;
    let mut player_arrivals = 0u64;
    let mut ttm: Vec<f64> = Vec::new();
    let mut gaps: Vec<f64> = Vec::new();
    let mut qualities: Vec<f64> = Vec::new();
    let mut matched_players = 0u64;
    let mut within_budget = 0u64;
    let mut tick_times: Vec<f64> = Vec::new();
    let mut matches = 0u64;
    let mut expired = 0u64;
    let mut starved_for_players = 0u64;
    // Players leaving running matches: (when, the match's teams as (player, rating), region,
    // when the match ends — with a population; without one, players never come back).
    let mut leaving: Vec<(u64, Roster, usize, Option<u64>)> = Vec::new();
    // Open requests, with when their match ends (with a population): withdrawn then, as a
    // game server would.
    let mut requests: HashMap<u128, (BackfillRecord, Option<u64>)> = HashMap::new();
    let mut backfills_requested = 0u64;
    let mut backfills_expired = 0u64;
    let mut backfills_withdrawn = 0u64;
    let mut backfill_waits: Vec<f64> = Vec::new();

    let mut now = 0u64;
    while now < end_ms {
        let prev = now;
        now += tick_ms;
        // Players whose match ended may queue again.
        if scenario.population.is_some() {
            busy_until.retain(|(until, ps)| {
                if *until <= now {
                    for p in ps {
                        idle.push(*p as u32);
                    }
                    checker.release_players(ps);
                    false
                } else {
                    true
                }
            });
        }
        if prev < end_arrivals_ms {
            let rate = scenario.rate_at(prev as f64 / 1000.0);
            let lambda = rate * tick_ms as f64 / 1000.0;
            let arrivals = if lambda > 0.0 {
                Poisson::new(lambda).map_or(0, |d| d.sample(&mut rng) as u64)
            } else {
                0
            };
            let mut created: Vec<u64> =
                (0..arrivals).map(|_| rng.random_range(prev..now)).collect();
            created.sort_unstable();
            for created_ms in created {
                let mut x = rng.random::<f64>() * size_total;
                let mut size = 1;
                for (i, w) in scenario.party_sizes.iter().enumerate() {
                    if x < *w {
                        size = i + 1;
                        break;
                    }
                    x -= w;
                }
                let size = size.min(max_party);
                let mut ids: Vec<u128> = Vec::with_capacity(size);
                if scenario.population.is_some() {
                    if idle.len() < size {
                        starved_for_players += 1;
                        continue;
                    }
                    for _ in 0..size {
                        let k = rng.random_range(0..idle.len());
                        ids.push(u128::from(idle.swap_remove(k)));
                    }
                } else {
                    let home = pick_home(&mut rng);
                    let mut leader = None;
                    for _ in 0..size {
                        let p = make_player(&mut rng, home, leader);
                        leader.get_or_insert(p.rating);
                        players.push(p);
                        ids.push((players.len() - 1) as u128);
                    }
                }
                let latency: Vec<u32> = (0..config.regions.len())
                    .map(|r| {
                        ids.iter()
                            .map(|&p| players[p as usize].latency[r])
                            .max()
                            .unwrap_or(0)
                    })
                    .collect();
                let members: Vec<Member> = ids
                    .iter()
                    .map(|&p| Member {
                        player: PlayerId(p),
                        rating: PlayerRating::new(players[p as usize].rating, deviation),
                    })
                    .collect();
                let id = next_ticket;
                next_ticket += 1;
                records.insert(
                    id,
                    TicketRecord {
                        players: ids.clone(),
                        ratings: members.iter().map(|m| m.rating.rating).collect(),
                        latency_ms: latency.clone(),
                        created_ms,
                    },
                );
                // Recent opponents: the shard remembers them, as a server's queue does.
                shard
                    .join(Ticket {
                        id: TicketId(id),
                        members,
                        region_latency_ms: latency,
                        created_at: Timestamp::from_millis(created_ms),
                        recent_opponents: Vec::new(),
                    })
                    .expect("generated tickets are valid");
                tickets += 1;
                player_arrivals += size as u64;
            }
        }

        // A match that ended no longer wants a replacement.
        requests.retain(|&id, (_, ends)| {
            if ends.is_none_or(|e| e > now) {
                return true;
            }
            if shard.leave(TicketId(id)) == CancelOutcome::Cancelled {
                backfills_withdrawn += 1;
            }
            false
        });
        // A player leaves each match due now; the match asks for a replacement.
        leaving.retain(|(at, teams, region, ends)| {
            if *at > now {
                return true;
            }
            let mut teams = teams.clone();
            let t = rng.random_range(0..teams.len());
            let k = rng.random_range(0..teams[t].len());
            teams[t].remove(k);
            let mut open_slots = vec![0; teams.len()];
            open_slots[t] = 1;
            let id = next_ticket;
            next_ticket += 1;
            let request = BackfillRequest {
                id: TicketId(id),
                teams: teams
                    .iter()
                    .map(|team| {
                        team.iter()
                            .map(|&(p, r)| Member {
                                player: PlayerId(p),
                                rating: PlayerRating::new(r, deviation),
                            })
                            .collect()
                    })
                    .collect(),
                open_slots: open_slots.clone(),
                region: RegionId(*region as u8),
                created_at: Timestamp::from_millis(now),
            };
            shard
                .request_backfill(request)
                .expect("generated backfill requests are valid");
            let record = BackfillRecord {
                teams,
                open_slots,
                region: *region,
                created_ms: now,
            };
            requests.insert(id, (record, *ends));
            backfills_requested += 1;
            false
        });

        let started = Instant::now();
        let out = shard.tick(Timestamp::from_millis(now));
        tick_times.push(started.elapsed().as_secs_f64() * 1000.0);

        expired += out.expired.len() as u64;
        for id in &out.expired {
            if let Some(r) = records.get(&id.0)
                && scenario.population.is_some()
            {
                idle.extend(r.players.iter().map(|&p| p as u32));
            }
        }
        backfills_expired += out.expired_backfills.len() as u64;
        for id in &out.expired_backfills {
            requests.remove(&id.0);
        }
        for m in out.matches() {
            let region = usize::from(m.region.0);
            // With a population: when the players this match consumed are free again.
            let mut busy_until_ms = now + u64::from(scenario.match_duration_s) * 1000;
            if let Some(id) = m.backfill {
                let (req, ends) = requests.remove(&id.0).expect("a filled request was posted");
                // A replacement plays the rest of the running match.
                if let Some(ends) = ends {
                    busy_until_ms = ends;
                }
                checker.check_backfill(&m, now, &records, &req);
                backfill_waits.push(now.saturating_sub(req.created_ms) as f64 / 1000.0);
            } else {
                checker.check(&m, now, &records);
                matches += 1;
                qualities.push(m.quality);
                let avgs: Vec<f64> = m
                    .teams()
                    .map(|t| t.rating_sum / t.players.len().max(1) as f64)
                    .collect();
                let hi = avgs.iter().cloned().fold(f64::MIN, f64::max);
                let lo = avgs.iter().cloned().fold(f64::MAX, f64::min);
                gaps.push(hi - lo);
                if scenario.backfill_share > 0.0 && rng.random_bool(scenario.backfill_share) {
                    let teams = m
                        .teams()
                        .map(|t| {
                            t.players
                                .iter()
                                .map(|p| (p.0, players[p.0 as usize].rating))
                                .collect()
                        })
                        .collect();
                    let at = now + u64::from(scenario.backfill_after_s) * 1000;
                    // Only a running match loses a player: with a population the match ends
                    // after `match_duration_s`, and one that ended first has nobody to lose.
                    let ends = scenario.population.map(|_| busy_until_ms);
                    if ends.is_none_or(|e| at < e) {
                        leaving.push((at, teams, region, ends));
                    }
                }
            }
            // The tickets this match consumed (for a backfill, the newcomers' only).
            let mut everyone = Vec::new();
            for t in m.tickets {
                if let Some(r) = records.get(&t.0) {
                    ttm.push(now.saturating_sub(r.created_ms) as f64 / 1000.0);
                    for &p in &r.players {
                        matched_players += 1;
                        if r.latency_ms.get(region).copied().unwrap_or(u32::MAX)
                            <= config.latency_budget_ms
                        {
                            within_budget += 1;
                        }
                        everyone.push(p);
                    }
                }
            }
            if scenario.population.is_some() {
                busy_until.push((busy_until_ms, everyone));
            }
        }
        // Off the timed path, as the server settles after publishing.
        shard.settle();
    }
    backfill_waits.sort_by(f64::total_cmp);

    ttm.sort_by(f64::total_cmp);
    gaps.sort_by(f64::total_cmp);
    tick_times.sort_by(f64::total_cmp);
    let mean = |v: &[f64]| {
        if v.is_empty() {
            0.0
        } else {
            v.iter().sum::<f64>() / v.len() as f64
        }
    };
    let unmatched = tickets - ttm.len() as u64;
    let mut warnings: Vec<String> = scenario
        .unknown
        .keys()
        .map(|k| format!("unknown key `{k}` ignored"))
        .collect();
    if starved_for_players > 0 {
        warnings.push(format!(
            "{starved_for_players} arrivals skipped: no idle players left in the population"
        ));
    }
    Report {
        tickets,
        players: player_arrivals,
        matches,
        unmatched,
        ttm_p50_s: percentile(&ttm, 0.50),
        ttm_p95_s: percentile(&ttm, 0.95),
        ttm_max_s: ttm.last().copied().unwrap_or(0.0),
        mean_team_rating_gap: mean(&gaps),
        p95_team_rating_gap: percentile(&gaps, 0.95),
        mean_quality: mean(&qualities),
        pct_within_latency_budget: if matched_players == 0 {
            100.0
        } else {
            100.0 * within_budget as f64 / matched_players as f64
        },
        tick_p50_ms: percentile(&tick_times, 0.50),
        tick_p99_ms: percentile(&tick_times, 0.99),
        violations: checker.violations,
        name: scenario.name.clone().unwrap_or_default(),
        expired,
        still_waiting: shard.searching() as u64,
        ticks: tick_times.len() as u64,
        violation_details: checker.details.clone(),
        warnings,
        backfills_requested,
        backfills_filled: backfill_waits.len() as u64,
        backfills_expired,
        backfills_withdrawn,
        backfill_wait_p50_s: percentile(&backfill_waits, 0.50),
    }
}
