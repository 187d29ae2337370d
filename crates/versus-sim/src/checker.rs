//! The independent checker: re-derives every matchmaking rule from the scenario's queue settings
//! and the simulator's own record of each ticket, and checks every formed match against them.
//! It uses none of the matchmaker's code paths (no `Schedule::at`, no party aggregation, no
//! opponent memory from versus-core): windows, budgets, party ratings and rematch history are
//! recomputed here.

use std::collections::{HashMap, HashSet, VecDeque};

use versus_core::matchmaking::{FormedMatch, PartyAggregation, QueueConfig, TicketId};

/// A backfill request the simulator posted: the running match as it stood.
#[derive(Clone, Debug)]
pub struct BackfillRecord {
    /// Per team: the players still there, with their ratings.
    pub teams: Vec<Vec<(u128, f64)>>,
    pub open_slots: Vec<usize>,
    pub region: usize,
    pub created_ms: u64,
}

/// What the simulator knows about a ticket it generated.
#[derive(Clone, Debug)]
pub struct TicketRecord {
    pub players: Vec<u128>,
    pub ratings: Vec<f64>,
    pub latency_ms: Vec<u32>,
    pub created_ms: u64,
}

pub struct Checker {
    teams: usize,
    team_size: usize,
    rating_steps: Vec<(u64, f64)>,
    latency_steps: Vec<(u64, f64)>,
    /// `min_quality` (falling), for matches of more than two players.
    quality_steps: Vec<(u64, f64)>,
    budget_ms: f64,
    regions: usize,
    memory: usize,
    relax_ms: Option<u64>,
    aggregation: PartyAggregation,
    matched_tickets: HashSet<u128>,
    matched_players_now: HashSet<u128>,
    history: HashMap<u128, VecDeque<Vec<u128>>>,
    pub violations: u64,
    pub details: Vec<String>,
}

fn step_value(steps: &[(u64, f64)], waited_ms: u64) -> f64 {
    let mut v = steps[0].1;
    for &(after_ms, value) in steps {
        if waited_ms >= after_ms {
            v = value;
        }
    }
    v
}

impl Checker {
    pub fn new(c: &QueueConfig) -> Self {
        Self {
            teams: c.teams,
            team_size: c.team_size,
            rating_steps: c
                .rating_widening
                .steps()
                .iter()
                .map(|s| (u64::from(s.after_s) * 1000, s.value))
                .collect(),
            latency_steps: c
                .latency_widening
                .steps()
                .iter()
                .map(|s| (u64::from(s.after_s) * 1000, s.value))
                .collect(),
            quality_steps: if c.players_per_match() > 2 {
                (c.min_quality.steps().iter())
                    .map(|s| (u64::from(s.after_s) * 1000, s.value))
                    .collect()
            } else {
                vec![(0, 0.0)]
            },
            budget_ms: f64::from(c.latency_budget_ms),
            regions: c.regions.len(),
            memory: c.recent_opponent_memory,
            relax_ms: c.rematch_relax_after_s.map(|s| u64::from(s) * 1000),
            aggregation: c.party_aggregation,
            matched_tickets: HashSet::new(),
            matched_players_now: HashSet::new(),
            history: HashMap::new(),
            violations: 0,
            details: Vec::new(),
        }
    }

    fn fail(&mut self, what: String) {
        self.violations += 1;
        if self.details.len() < 20 {
            self.details.push(what);
        }
    }

    fn party_rating(&self, r: &[f64]) -> f64 {
        let avg = r.iter().sum::<f64>() / r.len() as f64;
        let max = r.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        match self.aggregation {
            PartyAggregation::Average => avg,
            PartyAggregation::Max => max,
            PartyAggregation::WeightedTowardMax(w) => avg + w * (max - avg),
        }
    }

    /// Checks one filled backfill request: every team is the players still there followed by the
    /// newcomers' parties, exactly the open slots are filled, each newcomer's ticket is within
    /// its own window and the request's of the running match's mean rating, within its latency
    /// budget of the match's region, not a recent opponent of anyone there (unless relaxed),
    /// and not in another match.
    pub fn check_backfill(
        &mut self,
        m: &FormedMatch<'_>,
        now_ms: u64,
        tickets: &HashMap<u128, TicketRecord>,
        req: &BackfillRecord,
    ) {
        let id = m.backfill.map_or(0, |t| t.0);
        if m.team_count() != self.teams || usize::from(m.region.0) != req.region {
            self.fail(format!("backfill {id}: team count or region changed"));
            return;
        }
        let existing: Vec<(u128, f64)> = req.teams.iter().flatten().copied().collect();
        let target = existing.iter().map(|e| e.1).sum::<f64>() / existing.len().max(1) as f64;
        let req_window = step_value(&self.rating_steps, now_ms.saturating_sub(req.created_ms));
        for (t, team) in m.teams().enumerate() {
            let mut expect: Vec<u128> = req.teams[t].iter().map(|e| e.0).collect();
            let mut added = 0;
            for tid in team.tickets {
                let Some(r) = tickets.get(&tid.0) else {
                    self.fail(format!("backfill {id}: unknown ticket {}", tid.0));
                    continue;
                };
                expect.extend(&r.players);
                added += r.players.len();
            }
            let got: Vec<u128> = team.players.iter().map(|p| p.0).collect();
            if got != expect || added != req.open_slots[t] || got.len() != self.team_size {
                self.fail(format!(
                    "backfill {id}: team {t} is {got:?}, expected {expect:?}"
                ));
            }
        }
        for tid in m.tickets {
            let Some(r) = tickets.get(&tid.0) else {
                continue;
            };
            if !self.matched_tickets.insert(tid.0) {
                self.fail(format!("ticket {} matched twice", tid.0));
            }
            let waited = now_ms.saturating_sub(r.created_ms);
            let window = step_value(&self.rating_steps, waited).min(req_window);
            let gap = (self.party_rating(&r.ratings) - target).abs();
            if gap > window + 1e-9 {
                self.fail(format!(
                    "backfill {id}: ticket {} is {gap:.1} from the match, window {window}",
                    tid.0
                ));
            }
            let budget = self.budget_ms + step_value(&self.latency_steps, waited);
            if f64::from(r.latency_ms[req.region]) > budget {
                self.fail(format!(
                    "backfill {id}: ticket {} over latency budget",
                    tid.0
                ));
            }
            let relaxed = self.relax_ms.is_some_and(|x| waited >= x);
            let met = r.players.iter().any(|p| {
                existing.iter().any(|(q, _)| {
                    self.history
                        .get(p)
                        .is_some_and(|h| h.iter().any(|m| m.contains(q)))
                })
            });
            if self.memory > 0 && !relaxed && met {
                self.fail(format!(
                    "backfill {id}: ticket {} meets a recent opponent",
                    tid.0
                ));
            }
            for &p in &r.players {
                if !self.matched_players_now.insert(p) {
                    self.fail(format!("player {p} is in two matches at once"));
                }
            }
        }
        let p: f64 = m.teams().map(|t| t.win_probability).sum();
        if (p - 1.0).abs() > 1e-6 || !(0.0..=1.0).contains(&m.quality) {
            self.fail(format!("backfill {id}: prediction inconsistent"));
        }
        self.remember(m);
    }

    /// Our own opponent history: the last `memory` matches of every player.
    fn remember(&mut self, m: &FormedMatch<'_>) {
        if self.memory == 0 {
            return;
        }
        for (ti, team) in m.teams().enumerate() {
            let opponents: Vec<u128> = m
                .teams()
                .enumerate()
                .filter(|&(u, _)| u != ti)
                .flat_map(|(_, t)| t.players.iter().map(|p| p.0))
                .collect();
            for p in team.players {
                let h = self.history.entry(p.0).or_default();
                h.push_back(opponents.clone());
                while h.len() > self.memory {
                    h.pop_front();
                }
            }
        }
    }

    /// Players who are busy (in a match) and so must not be matched again: the simulator tells
    /// the checker when they are released.
    pub fn release_players(&mut self, players: &[u128]) {
        for p in players {
            self.matched_players_now.remove(p);
        }
    }

    /// Checks one match formed at `now_ms`; `tickets` are the simulator's records.
    pub fn check(
        &mut self,
        m: &FormedMatch<'_>,
        now_ms: u64,
        tickets: &HashMap<u128, TicketRecord>,
    ) {
        let id = m.tickets.first().map_or(0, |t| t.0);
        if m.team_count() != self.teams {
            self.fail(format!("match of {id}: {} teams", m.team_count()));
        }
        let mut recs: Vec<(u128, &TicketRecord)> = Vec::new();
        for t in m.tickets {
            match tickets.get(&t.0) {
                Some(r) => recs.push((t.0, r)),
                None => self.fail(format!("match of {id}: unknown ticket {}", t.0)),
            }
            if !self.matched_tickets.insert(t.0) {
                self.fail(format!("ticket {} matched twice", t.0));
            }
        }
        for (ti, team) in m.teams().enumerate() {
            if team.players.len() != self.team_size {
                self.fail(format!(
                    "match of {id}: team {ti} has {} players",
                    team.players.len()
                ));
            }
            // Parties intact: a team's players are exactly the members of its tickets.
            let mut expect: Vec<u128> = team
                .tickets
                .iter()
                .filter_map(|t| tickets.get(&t.0))
                .flat_map(|r| r.players.iter().copied())
                .collect();
            let mut got: Vec<u128> = team.players.iter().map(|p| p.0).collect();
            expect.sort_unstable();
            got.sort_unstable();
            if expect != got {
                self.fail(format!(
                    "match of {id}: team {ti} does not hold whole parties"
                ));
            }
        }
        let placed: usize = m.teams().map(|t| t.tickets.len()).sum();
        if placed != m.tickets.len() {
            self.fail(format!("match of {id}: tickets and teams disagree"));
        }
        for p in m.teams().flat_map(|t| t.players) {
            if !self.matched_players_now.insert(p.0) {
                self.fail(format!("player {} is in two matches at once", p.0));
            }
        }
        // Region within every ticket's budget at its wait.
        let region = usize::from(m.region.0);
        if region >= self.regions {
            self.fail(format!("match of {id}: region {region} does not exist"));
        } else {
            for (tid, r) in &recs {
                let waited = now_ms.saturating_sub(r.created_ms);
                let budget = self.budget_ms + step_value(&self.latency_steps, waited);
                if f64::from(r.latency_ms[region]) > budget {
                    self.fail(format!(
                        "ticket {tid}: latency {} ms to region {region} over budget {budget}",
                        r.latency_ms[region]
                    ));
                }
            }
        }
        // Pairwise: rating windows and recent opponents.
        for i in 0..recs.len() {
            for j in i + 1..recs.len() {
                let (ia, a) = recs[i];
                let (ib, b) = recs[j];
                let wa = step_value(&self.rating_steps, now_ms.saturating_sub(a.created_ms));
                let wb = step_value(&self.rating_steps, now_ms.saturating_sub(b.created_ms));
                let gap = (self.party_rating(&a.ratings) - self.party_rating(&b.ratings)).abs();
                if gap > wa.min(wb) + 1e-9 {
                    self.fail(format!(
                        "tickets {ia}/{ib}: rating gap {gap:.1} outside windows {wa}/{wb}"
                    ));
                }
                let relaxed = |r: &TicketRecord| {
                    self.relax_ms
                        .is_some_and(|x| now_ms.saturating_sub(r.created_ms) >= x)
                };
                if self.memory > 0 && !relaxed(a) && !relaxed(b) {
                    let met = a.players.iter().any(|p| {
                        b.players.iter().any(|q| {
                            self.history
                                .get(p)
                                .is_some_and(|h| h.iter().any(|m| m.contains(q)))
                                || self
                                    .history
                                    .get(q)
                                    .is_some_and(|h| h.iter().any(|m| m.contains(p)))
                        })
                    });
                    if met {
                        self.fail(format!("tickets {ia}/{ib}: rematch of recent opponents"));
                    }
                }
            }
        }
        // Prediction and quality.
        let p: Vec<f64> = m.teams().map(|t| t.win_probability).collect();
        let sum: f64 = p.iter().sum();
        let spread =
            p.iter().cloned().fold(f64::MIN, f64::max) - p.iter().cloned().fold(f64::MAX, f64::min);
        if (sum - 1.0).abs() > 1e-6
            || !(0.0..=1.0).contains(&m.quality)
            || (m.quality - (1.0 - spread)).abs() > 1e-6
        {
            self.fail(format!(
                "match of {id}: quality {} inconsistent with {p:?}",
                m.quality
            ));
        }
        // Quality floor at the oldest ticket's wait.
        let oldest = (recs
            .iter()
            .map(|(_, r)| now_ms.saturating_sub(r.created_ms)))
        .max()
        .unwrap_or(0);
        let floor = step_value(&self.quality_steps, oldest);
        if m.quality < floor - 1e-9 {
            self.fail(format!(
                "match of {id}: quality {:.4} below the floor {floor} at {oldest} ms",
                m.quality
            ));
        }
        self.remember(m);
    }

    /// Tickets matched so far.
    pub fn matched(&self, id: TicketId) -> bool {
        self.matched_tickets.contains(&id.0)
    }
}
