//! Property tests of the matchmaker. Every formed match is checked by `check_match`, which
//! re-derives the rules from the queue configuration and the tickets as submitted — it shares
//! no code with the tick.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use versus_core::matchmaking::*;
use versus_core::rating::PlayerRating;

#[derive(Clone, Debug)]
struct Shape {
    teams: usize,
    team_size: usize,
}

const SHAPES: [Shape; 5] = [
    Shape {
        teams: 2,
        team_size: 1,
    },
    Shape {
        teams: 2,
        team_size: 2,
    },
    Shape {
        teams: 2,
        team_size: 3,
    },
    Shape {
        teams: 4,
        team_size: 1,
    },
    Shape {
        teams: 3,
        team_size: 2,
    },
];

#[derive(Clone, Debug)]
struct Plan {
    shape: usize,
    tickets: Vec<Ticket>,
    cancels: Vec<(u64, usize)>,
    /// Running matches asking for players: (at ms, team short of players, how many, region,
    /// rating of the players already there).
    backfills: Vec<(u64, usize, usize, usize, f64)>,
    max_wait_s: Option<u32>,
}

fn config(shape: &Shape, max_wait_s: Option<u32>) -> QueueConfig {
    let mut c = QueueConfig::new(shape.teams, shape.team_size);
    c.regions = vec!["eu".into(), "na".into(), "asia".into()];
    c.latency_budget_ms = 80;
    c.latency_widening = Schedule::new(vec![(0, 0.0), (20, 40.0), (40, 120.0)]);
    c.rating_widening = Schedule::new(vec![(0, 40.0), (10, 120.0), (30, 400.0), (60, 1200.0)]);
    c.rematch_relax_after_s = Some(45);
    c.max_wait_s = max_wait_s;
    c.scan_limit = 4096;
    c
}

fn plan() -> impl Strategy<Value = Plan> {
    (0..SHAPES.len(), 2usize..36, prop::option::of(20u32..90)).prop_flat_map(
        |(shape, n, max_wait)| {
            let max_party = SHAPES[shape].team_size;
            let ticket = (
                1..=max_party,
                prop::collection::vec(800.0f64..2200.0, max_party),
                prop::collection::vec(prop_oneof![10u32..150, Just(UNREACHABLE_MS)], 3),
                0u64..40_000,
                prop::collection::vec(0u128..200, 0..3),
            );
            (
                Just(shape),
                prop::collection::vec(ticket, n),
                prop::collection::vec((0u64..60_000, 0usize..64), 0..6),
                prop::collection::vec(
                    (
                        0u64..60_000,
                        0usize..8,
                        1usize..=3,
                        0usize..3,
                        800.0f64..2200.0,
                    ),
                    0..4,
                ),
                Just(max_wait),
            )
                .prop_map(|(shape, raw, cancels, backfills, max_wait_s)| {
                    let mut next_player = 0u128;
                    let tickets = raw
                        .into_iter()
                        .enumerate()
                        .map(|(i, (size, ratings, lat, created, recent))| {
                            let members = (0..size)
                                .map(|k| {
                                    next_player += 1;
                                    Member {
                                        player: PlayerId(next_player),
                                        rating: PlayerRating::new(ratings[k], 60.0),
                                    }
                                })
                                .collect();
                            Ticket {
                                id: TicketId(1000 + i as u128),
                                members,
                                region_latency_ms: lat,
                                created_at: Timestamp::from_millis(created),
                                recent_opponents: recent
                                    .into_iter()
                                    .map(|p| PlayerId(p + 1))
                                    .collect(),
                            }
                        })
                        .collect();
                    let s = &SHAPES[shape];
                    let backfills = backfills
                        .into_iter()
                        .map(|(at, team, short, region, rating)| {
                            (
                                at,
                                team % s.teams,
                                1 + (short - 1) % s.team_size,
                                region,
                                rating,
                            )
                        })
                        .collect();
                    Plan {
                        shape,
                        tickets,
                        cancels,
                        backfills,
                        max_wait_s,
                    }
                })
        },
    )
}

fn window_at(s: &Schedule, waited_ms: u64) -> f64 {
    // Re-derived: the last step whose start has passed.
    s.steps()
        .iter()
        .filter(|st| u64::from(st.after_s) * 1000 <= waited_ms)
        .map(|st| st.value)
        .next_back()
        .unwrap()
}

fn party_rating(c: &QueueConfig, t: &Ticket) -> f64 {
    let rs: Vec<f64> = t.members.iter().map(|m| m.rating.rating).collect();
    let avg = rs.iter().sum::<f64>() / rs.len() as f64;
    let max = rs.iter().cloned().fold(f64::MIN, f64::max);
    match c.party_aggregation {
        PartyAggregation::Average => avg,
        PartyAggregation::Max => max,
        PartyAggregation::WeightedTowardMax(w) => (1.0 - w) * avg + w * max,
    }
}

/// Everything a formed match must satisfy, from the config and the submitted tickets.
fn check_match(
    c: &QueueConfig,
    m: &FormedMatch,
    all: &BTreeMap<TicketId, Ticket>,
    now: Timestamp,
) -> Result<(), String> {
    if m.team_count() != c.teams {
        return Err(format!("{} teams", m.team_count()));
    }
    let tickets: Vec<&Ticket> = m.tickets.iter().map(|id| &all[id]).collect();
    for (ti, team) in m.teams().enumerate() {
        if team.players.len() != c.team_size {
            return Err(format!("team {ti} has {} players", team.players.len()));
        }
        let from_tickets: Vec<PlayerId> = team
            .tickets
            .iter()
            .flat_map(|id| all[id].members.iter().map(|m| m.player))
            .collect();
        if from_tickets != team.players {
            return Err(format!(
                "team {ti} players differ from its tickets' members (party split?)"
            ));
        }
        let sum: f64 = team
            .tickets
            .iter()
            .flat_map(|id| all[id].members.iter())
            .map(|m| m.rating.rating)
            .sum();
        if (sum - team.rating_sum).abs() > 1e-6 {
            return Err("rating sum".into());
        }
    }
    let placed: BTreeSet<TicketId> = m.teams().flat_map(|t| t.tickets.iter().copied()).collect();
    if placed != m.tickets.iter().copied().collect() || placed.len() != m.tickets.len() {
        return Err("tickets and team tickets differ".into());
    }
    let r = usize::from(m.region.0);
    for t in &tickets {
        let waited = now.millis().saturating_sub(t.created_at.millis());
        let budget = f64::from(c.latency_budget_ms) + window_at(&c.latency_widening, waited);
        if f64::from(t.region_latency_ms[r]) > budget {
            return Err(format!(
                "ticket {:?} latency {} > budget {budget}",
                t.id, t.region_latency_ms[r]
            ));
        }
    }
    for (i, a) in tickets.iter().enumerate() {
        for b in &tickets[i + 1..] {
            let wa = window_at(
                &c.rating_widening,
                now.millis().saturating_sub(a.created_at.millis()),
            );
            let wb = window_at(
                &c.rating_widening,
                now.millis().saturating_sub(b.created_at.millis()),
            );
            let gap = (party_rating(c, a) - party_rating(c, b)).abs();
            if gap > wa.min(wb) + 1e-9 {
                return Err(format!("gap {gap} beyond windows {wa}/{wb}"));
            }
            let relax = c.rematch_relax_after_s.map(|s| u64::from(s) * 1000);
            let relaxed = |t: &Ticket| {
                relax.is_some_and(|r| now.millis().saturating_sub(t.created_at.millis()) >= r)
            };
            if !relaxed(a) && !relaxed(b) {
                let meets = |x: &Ticket, y: &Ticket| {
                    x.recent_opponents
                        .iter()
                        .any(|p| y.members.iter().any(|m| m.player == *p))
                };
                if meets(a, b) || meets(b, a) {
                    return Err(format!("rematch between {:?} and {:?}", a.id, b.id));
                }
            }
        }
    }
    let p: Vec<f64> = m.teams().map(|t| t.win_probability).collect();
    if (p.iter().sum::<f64>() - 1.0).abs() > 1e-6 {
        return Err(format!("win probabilities {p:?}"));
    }
    let spread =
        p.iter().cloned().fold(f64::MIN, f64::max) - p.iter().cloned().fold(f64::MAX, f64::min);
    if !(0.0..=1.0).contains(&m.quality) || (m.quality - (1.0 - spread)).abs() > 1e-9 {
        return Err(format!("quality {} for {p:?}", m.quality));
    }
    Ok(())
}

/// The backfill request `i` of a plan: every team full but one, short of `short` players.
fn backfill_request(
    c: &QueueConfig,
    i: usize,
    b: (u64, usize, usize, usize, f64),
) -> BackfillRequest {
    let (at, short_team, short, region, rating) = b;
    let mut next = 100_000 + 100 * i as u128;
    let teams = (0..c.teams)
        .map(|t| {
            let have = c.team_size - if t == short_team { short } else { 0 };
            (0..have)
                .map(|k| {
                    next += 1;
                    Member {
                        player: PlayerId(next),
                        rating: PlayerRating::new(rating + 10.0 * k as f64, 60.0),
                    }
                })
                .collect()
        })
        .collect();
    let open_slots = (0..c.teams)
        .map(|t| if t == short_team { short } else { 0 })
        .collect();
    BackfillRequest {
        id: TicketId(50_000 + i as u128),
        teams,
        open_slots,
        region: RegionId(region as u8),
        created_at: Timestamp::from_millis(at / 1000 * 1000),
    }
}

/// Everything a filled backfill request must satisfy, from the config, the request and the
/// submitted tickets.
fn check_backfill(
    c: &QueueConfig,
    m: &FormedMatch,
    req: &BackfillRequest,
    all: &BTreeMap<TicketId, Ticket>,
    now: Timestamp,
) -> Result<(), String> {
    if m.team_count() != c.teams || m.region != req.region {
        return Err(format!("backfill {:?}: shape or region", req.id));
    }
    let existing: Vec<&Member> = req.teams.iter().flatten().collect();
    let target = existing.iter().map(|m| m.rating.rating).sum::<f64>() / existing.len() as f64;
    let bf_window = window_at(&c.rating_widening, now.since(req.created_at));
    for (t, team) in m.teams().enumerate() {
        let mut expect: Vec<PlayerId> = req.teams[t].iter().map(|m| m.player).collect();
        expect.extend(
            team.tickets
                .iter()
                .flat_map(|id| all[id].members.iter().map(|m| m.player)),
        );
        if team.players != expect || team.players.len() != c.team_size {
            return Err(format!(
                "backfill {:?}: team {t} is {:?}",
                req.id, team.players
            ));
        }
        if team.players.len() - req.teams[t].len() != req.open_slots[t] {
            return Err(format!(
                "backfill {:?}: team {t} not filled exactly",
                req.id
            ));
        }
    }
    let tickets: Vec<&Ticket> = m.tickets.iter().map(|id| &all[id]).collect();
    let relax = c.rematch_relax_after_s.map(|s| u64::from(s) * 1000);
    let relaxed = |t: &Ticket| relax.is_some_and(|r| now.since(t.created_at) >= r);
    for t in &tickets {
        let waited = now.since(t.created_at);
        let window = window_at(&c.rating_widening, waited).min(bf_window);
        if (party_rating(c, t) - target).abs() > window + 1e-9 {
            return Err(format!(
                "backfill {:?}: ticket {:?} outside window",
                req.id, t.id
            ));
        }
        let budget = f64::from(c.latency_budget_ms) + window_at(&c.latency_widening, waited);
        if f64::from(t.region_latency_ms[usize::from(req.region.0)]) > budget {
            return Err(format!("backfill {:?}: ticket {:?} latency", req.id, t.id));
        }
        if !relaxed(t)
            && t.recent_opponents
                .iter()
                .any(|p| existing.iter().any(|m| m.player == *p))
        {
            return Err(format!("backfill {:?}: ticket {:?} rematch", req.id, t.id));
        }
    }
    let p: Vec<f64> = m.teams().map(|t| t.win_probability).collect();
    if (p.iter().sum::<f64>() - 1.0).abs() > 1e-6 {
        return Err(format!("win probabilities {p:?}"));
    }
    Ok(())
}

struct Run {
    outcomes: Vec<TickOutcome>,
    remaining: Vec<TicketId>,
    matched: BTreeSet<TicketId>,
}

/// Feeds the plan tick by tick (1 s ticks, 0..=240 s), checking every match as it forms.
/// When a run settles the pool (`QueueState::maintain`) between ticks; a tick settles it
/// first anyway, so the matches must not depend on it.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Settle {
    /// After every other tick, as a server that publishes then settles.
    Mixed,
    /// Never: each tick settles what changed since the last.
    Never,
    /// After every tick and again after each second's arrivals and cancels.
    Always,
}

fn run(plan: &Plan) -> Result<(Run, QueueConfig, BTreeMap<TicketId, Ticket>), String> {
    run_settling(plan, Settle::Mixed)
}

fn run_settling(
    plan: &Plan,
    settle: Settle,
) -> Result<(Run, QueueConfig, BTreeMap<TicketId, Ticket>), String> {
    let cfg = config(&SHAPES[plan.shape], plan.max_wait_s);
    let mm = Matchmaker::new(cfg.clone()).unwrap();
    let mut state = mm.new_state();
    let mut by_time = plan.tickets.clone();
    by_time.sort_by_key(|t| t.created_at);
    let all: BTreeMap<TicketId, Ticket> = plan.tickets.iter().map(|t| (t.id, t.clone())).collect();
    let mut next = 0;
    let mut matched = BTreeSet::new();
    let mut gone = BTreeSet::new();
    let mut seen_players = BTreeSet::new();
    let mut outcomes = Vec::new();
    let mut requests = BTreeMap::new();
    let mut out = TickOutcome::default();
    for tick in 0..=240u64 {
        let now = Timestamp::from_secs(tick);
        for (i, &b) in plan.backfills.iter().enumerate() {
            if b.0 / 1000 == tick {
                let req = backfill_request(&cfg, i, b);
                requests.insert(req.id, req.clone());
                state.add_backfill(req).map_err(|e| e.to_string())?;
            }
        }
        while next < by_time.len() && by_time[next].created_at <= now {
            state
                .add(by_time[next].clone())
                .map_err(|e| e.to_string())?;
            next += 1;
        }
        for &(at, which) in &plan.cancels {
            if at / 1000 == tick && !plan.tickets.is_empty() {
                let id = plan.tickets[which % plan.tickets.len()].id;
                let searching = state.contains(id);
                let out = state.cancel(id);
                let expect = if searching {
                    CancelOutcome::Cancelled
                } else {
                    CancelOutcome::NotSearching
                };
                if out != expect {
                    return Err(format!("cancel {id:?}: {out:?}"));
                }
                if searching {
                    gone.insert(id);
                }
            }
        }
        if settle == Settle::Always {
            state.maintain();
        }
        // Both ways of ticking: a fresh outcome, or one reused with the pool settled between
        // ticks as a server does.
        if tick % 2 == 0 {
            out = mm.tick(now, &mut state);
        } else {
            mm.tick_into(now, &mut state, &mut out);
        }
        for m in out.matches() {
            match m.backfill {
                Some(id) => check_backfill(&cfg, &m, &requests[&id], &all, now)?,
                None => check_match(&cfg, &m, &all, now)?,
            }
            // Gone from the pool at once, before it is settled.
            for id in m.tickets {
                if state.contains(*id)
                    || all[id].members.iter().any(|p| state.is_searching(p.player))
                {
                    return Err(format!("matched ticket {id:?} still searching"));
                }
            }
            for id in m.tickets {
                if gone.contains(id) || !matched.insert(*id) {
                    return Err(format!(
                        "ticket {id:?} matched twice or after cancel/expiry"
                    ));
                }
            }
            for p in m.teams().flat_map(|t| t.players) {
                if !seen_players.insert(*p) {
                    return Err(format!("player {p:?} in two matches"));
                }
            }
        }
        for id in &out.expired {
            let t = &all[id];
            if now.millis() - t.created_at.millis() < u64::from(plan.max_wait_s.unwrap()) * 1000 {
                return Err("expired too early".into());
            }
            gone.insert(*id);
        }
        for (i, w) in out.waiting.iter().enumerate() {
            if w.position != i + 1 || !state.contains(w.ticket) {
                return Err("waiting list".into());
            }
        }
        if out.waiting.len() != state.len() {
            return Err("waiting count".into());
        }
        if settle == Settle::Always || (settle == Settle::Mixed && tick % 2 == 1) {
            state.maintain();
        }
        outcomes.push(out.clone());
    }
    let remaining: Vec<TicketId> = plan
        .tickets
        .iter()
        .map(|t| t.id)
        .filter(|id| state.contains(*id))
        .collect();
    Ok((
        Run {
            outcomes,
            remaining,
            matched,
        },
        cfg,
        all,
    ))
}

/// Could these tickets form a match at time `now` under the final (widest) rules?
fn formable(c: &QueueConfig, group: &[&Ticket], now: Timestamp) -> bool {
    let players: usize = group.iter().map(|t| t.members.len()).sum();
    if players != c.players_per_match() {
        return false;
    }
    let region_ok = (0..c.regions.len()).any(|r| {
        group.iter().all(|t| {
            let waited = now.millis().saturating_sub(t.created_at.millis());
            f64::from(t.region_latency_ms[r])
                <= f64::from(c.latency_budget_ms) + window_at(&c.latency_widening, waited)
        })
    });
    if !region_ok {
        return false;
    }
    for (i, a) in group.iter().enumerate() {
        for b in &group[i + 1..] {
            let wa = window_at(&c.rating_widening, now.millis() - a.created_at.millis());
            let wb = window_at(&c.rating_widening, now.millis() - b.created_at.millis());
            if (party_rating(c, a) - party_rating(c, b)).abs() > wa.min(wb) {
                return false;
            }
        }
    }
    // Packing: brute force over team assignments.
    fn pack(sizes: &[usize], left: &mut Vec<usize>) -> bool {
        let Some((&s, rest)) = sizes.split_first() else {
            return true;
        };
        for t in 0..left.len() {
            if left[t] >= s {
                left[t] -= s;
                if pack(rest, left) {
                    return true;
                }
                left[t] += s;
            }
        }
        false
    }
    let sizes: Vec<usize> = group.iter().map(|t| t.members.len()).collect();
    pack(&sizes, &mut vec![c.team_size; c.teams])
}

fn any_formable(
    c: &QueueConfig,
    pool: &[&Ticket],
    now: Timestamp,
    group: &mut Vec<usize>,
    start: usize,
    players: usize,
) -> bool {
    if players == c.players_per_match() {
        let g: Vec<&Ticket> = group.iter().map(|&i| pool[i]).collect();
        return formable(c, &g, now);
    }
    for i in start..pool.len() {
        let s = pool[i].members.len();
        if players + s <= c.players_per_match() {
            group.push(i);
            if any_formable(c, pool, now, group, i + 1, players + s) {
                return true;
            }
            group.pop();
        }
    }
    false
}

proptest! {
    #![proptest_config(ProptestConfig {
        // PROPTEST_CASES overrides (e.g. 2000 for a long run).
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(96),
        ..ProptestConfig::default()
    })]

    /// No player in two matches, no ticket matched twice or after cancel/expiry, team sizes
    /// exact, parties intact, every rule in force at the tick held, positions consistent.
    #[test]
    fn every_match_obeys_the_rules(plan in plan()) {
        if let Err(e) = run(&plan) {
            prop_assert!(false, "{}", e);
        }
    }

    /// Same inputs, same outputs — and a cloned state ticks exactly like the original.
    #[test]
    fn ticks_are_deterministic(plan in plan()) {
        let (a, _, _) = run(&plan).unwrap();
        let (b, _, _) = run(&plan).unwrap();
        prop_assert_eq!(a.outcomes, b.outcomes);
    }

    /// Settling the pool between ticks (which also makes the next tick's working lists ready:
    /// links, pair slots, the party list) is never needed for correctness: the same matches
    /// whether a run settles after every change, after some ticks, or never.
    #[test]
    fn settling_between_ticks_changes_nothing(plan in plan()) {
        let (mixed, _, _) = run_settling(&plan, Settle::Mixed).unwrap();
        let (never, _, _) = run_settling(&plan, Settle::Never).unwrap();
        let (always, _, _) = run_settling(&plan, Settle::Always).unwrap();
        prop_assert_eq!(&mixed.outcomes, &never.outcomes);
        prop_assert_eq!(&mixed.outcomes, &always.outcomes);
    }

    /// With a finite schedule and no more arrivals, nothing is left that could still form a
    /// match: every ticket with compatible partners was matched eventually.
    #[test]
    fn no_ticket_starves(mut plan in plan()) {
        plan.cancels.clear();
        plan.max_wait_s = None;
        let (run, cfg, all) = run(&plan).unwrap();
        let remaining: Vec<&Ticket> = run.remaining.iter().map(|id| &all[id]).collect();
        prop_assume!(remaining.len() <= 14);
        let now = Timestamp::from_secs(240);
        prop_assert!(
            !any_formable(&cfg, &remaining, now, &mut Vec::new(), 0, 0),
            "a formable match was left in the pool: {:?} (matched {})", run.remaining, run.matched.len()
        );
    }
}
