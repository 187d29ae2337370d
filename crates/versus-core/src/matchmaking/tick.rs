//! The tick: one deterministic pass that turns searching tickets into matches.
//!
//! Order of work:
//! 1. compact the pool (cancellations), merge new arrivals into the age and rating lists,
//!    expire tickets past `max_wait_s`;
//! 2. build the per-tick index: every ticket's current rating window, acceptable-region mask
//!    and rematch relaxation, laid out contiguously in rating order, with skip pointers
//!    (union-find) over tickets already taken this tick;
//! 3. backfill requests, oldest first, pick from the index;
//! 4. tickets, oldest first, each scanning outward from its own rating (nearest first, bounded
//!    by its window and `scan_limit`) for a group that fills a match: every pair of tickets
//!    within both of their windows, one region acceptable to all, no recent rematch, parties
//!    whole, and a packing into teams of exactly `team_size`; teams are then balanced
//!    (optimal split for two teams);
//! 5. report matches, expiries, and every waiting ticket's position and estimated wait.
//!
//! Work per tick is O(n + k log k + Σ scanned candidates), never a pass over the pool per ticket.

use super::config::QueueConfig;
use super::state::{BackfillEntry, Cand, Entry, INLINE_REGIONS, QueueState};
use super::teams::{self, Piece};
use super::ticket::{PlayerId, RegionId, TicketId, Timestamp};
use crate::rating::{AnyRatingSystem, PlayerRating, RatingSystem, fairness_quality};

/// One team of a formed match.
#[derive(Clone, Debug, PartialEq)]
pub struct MatchTeam {
    /// Tickets placed on this team by this tick (parties whole).
    pub tickets: Vec<TicketId>,
    /// Every player of the team (for a backfill, the players already there come first).
    pub players: Vec<PlayerId>,
    pub rating_sum: f64,
    /// Predicted probability that this team wins, from the queue's rating system.
    pub win_probability: f64,
}

/// A match formed by a tick.
#[derive(Clone, Debug, PartialEq)]
pub struct FormedMatch {
    /// `Some(request)` when this fills a running match's open slots.
    pub backfill: Option<TicketId>,
    /// Every ticket consumed, in the order they were picked (the picking ticket first).
    pub tickets: Vec<TicketId>,
    pub teams: Vec<MatchTeam>,
    /// The region every ticket accepts, with the lowest worst-case latency.
    pub region: RegionId,
    /// Fairness of the predicted outcome in [0, 1]: `1 − (max P − min P)` over teams
    /// (`1 − 2·|P(A) − 0.5|` for two teams).
    pub quality: f64,
    pub formed_at: Timestamp,
}

/// A ticket still searching after the tick.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WaitingTicket {
    pub ticket: TicketId,
    /// 1 = oldest searching ticket (the next to pick).
    pub position: usize,
    pub waited_ms: u64,
    /// Remaining wait expected from recent time-to-match at this rating (0: any moment, or no
    /// history yet).
    pub estimated_wait_ms: u64,
}

/// What one tick did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TickOutcome {
    pub matches: Vec<FormedMatch>,
    /// Tickets removed because they waited `max_wait_s`.
    pub expired: Vec<TicketId>,
    /// Backfill requests removed because they waited `max_wait_s`.
    pub expired_backfills: Vec<TicketId>,
    /// Every ticket still searching, oldest first.
    pub waiting: Vec<WaitingTicket>,
}

/// A queue's matchmaker: its configuration and rating system. Stateless between ticks — the pool
/// lives in [`QueueState`], so one matchmaker can serve any number of shards.
#[derive(Clone, Debug)]
pub struct Matchmaker {
    config: QueueConfig,
    rater: AnyRatingSystem,
}

const SELECT_BUDGET: usize = 1_000;
const NONE: u32 = u32::MAX;

impl Matchmaker {
    pub fn new(config: QueueConfig) -> Result<Self, super::ConfigError> {
        config.validate()?;
        let rater = config
            .rating
            .build()
            .map_err(|_| super::ConfigError::Invalid {
                key: "rating",
                why: "invalid rating system parameters",
            })?;
        Ok(Self { config, rater })
    }
    pub fn config(&self) -> &QueueConfig {
        &self.config
    }
    pub fn rating_system(&self) -> &AnyRatingSystem {
        &self.rater
    }
    /// An empty pool for this queue.
    pub fn new_state(&self) -> QueueState {
        QueueState::new(&self.config)
    }

    /// Runs one tick at time `now`. Deterministic: the same state and `now` give the same outcome.
    pub fn tick(&self, now: Timestamp, state: &mut QueueState) -> TickOutcome {
        let mut out = TickOutcome::default();
        self.prepare(now, state, &mut out);
        self.build_index(now, state);
        self.run_backfills(now, state, &mut out.matches);
        self.run_tickets(now, state, &mut out.matches);
        self.finish(now, state, &mut out);
        out
    }

    fn prepare(&self, now: Timestamp, st: &mut QueueState, out: &mut TickOutcome) {
        st.index_arrivals();
        if let Some(max_s) = self.config.max_wait_s {
            let max_ms = u64::from(max_s) * 1000;
            let mut k = 0;
            while k < st.ages.len() {
                let aged = st.ages[k];
                if now.millis().saturating_sub(aged.created) < max_ms {
                    break;
                }
                out.expired.push(aged.id);
                st.release(aged.slot);
                st.free.push(aged.slot);
                k += 1;
            }
            if k > 0 {
                st.ages.drain(..k);
                let live = &st.live;
                st.scratch.cands.retain(|c| live[c.slot as usize]);
            }
            st.backfills.retain(|b| {
                let keep = now.since(b.req.created_at) < max_ms;
                if !keep {
                    out.expired_backfills.push(b.req.id);
                }
                keep
            });
        }
    }

    fn build_index(&self, now: Timestamp, st: &mut QueueState) {
        let cfg = &self.config;
        let inline = cfg.regions.len() <= INLINE_REGIONS;
        let QueueState {
            slots, scratch: sc, ..
        } = st;
        let n = sc.cands.len();
        sc.pos.clear();
        sc.pos.resize(slots.len(), NONE);
        let relax_ms = cfg.rematch_relax_after_s.map(|s| u64::from(s) * 1000);
        let budget_ms = u64::from(cfg.latency_budget_ms);
        for (i, c) in sc.cands.iter_mut().enumerate() {
            let waited = now.millis().saturating_sub(c.created);
            c.window = cfg.rating_widening.at(waited);
            let budget = budget_ms + cfg.latency_widening.at(waited) as u64;
            let mut mask = 0u64;
            if inline {
                for (r, &lat) in c.lat[..cfg.regions.len()].iter().enumerate() {
                    // u16::MAX stands for "65535 ms or more / unreachable".
                    if lat != u16::MAX && u64::from(lat) <= budget {
                        mask |= 1 << r;
                    }
                }
            } else {
                let e = slots[c.slot as usize]
                    .as_ref()
                    .expect("indexed ticket is live");
                for (r, &lat) in e.latency.iter().enumerate() {
                    if u64::from(lat) <= budget {
                        mask |= 1 << r;
                    }
                }
            }
            c.mask = mask;
            c.relaxed = relax_ms.is_some_and(|r| waited >= r);
            c.taken = false;
            sc.pos[c.slot as usize] = i as u32;
        }
        sc.mark.clear();
        sc.mark.resize(slots.len(), false);
        sc.right.clear();
        sc.right.extend(0..=n as u32);
        sc.left.clear();
        sc.left.extend(0..=n as u32);
        sc.taken_slots.clear();
    }

    fn run_tickets(&self, now: Timestamp, st: &mut QueueState, matches: &mut Vec<FormedMatch>) {
        let need_total = self.config.players_per_match();
        matches.reserve(st.scratch.cands.len() / self.config.teams);
        for k in 0..st.ages.len() {
            let slot = st.ages[k].slot;
            // Taken-by-slot is read in age order, which is nearly slot order: no cache miss
            // for the half of the anchors that were already picked as partners.
            if st.scratch.mark[slot as usize] {
                continue;
            }
            let ai = st.scratch.pos[slot as usize];
            if ai == NONE || st.scratch.cands[ai as usize].taken {
                continue;
            }
            if self.find_group(st, ai as usize, need_total) {
                self.form_match(now, st, ai as usize, None, matches);
            }
        }
    }

    /// Looks for tickets that complete a match with anchor `ai`. On success the group is in
    /// `scratch.chosen` and the team of each piece (anchor first) in `scratch.assign`.
    fn find_group(&self, st: &mut QueueState, ai: usize, need_total: usize) -> bool {
        let QueueState { slots, scratch, .. } = st;
        let sc = scratch;
        let a = sc.cands[ai];
        let need = need_total.saturating_sub(usize::from(a.size));
        if need == 0 {
            return false;
        }
        sc.pool.clear();
        let mut pool_players = 0usize;
        let mut budget = SELECT_BUDGET;
        let mut l = find_left(&mut sc.left, ai);
        let mut r = find_right(&mut sc.right, ai + 1);
        let n = sc.cands.len();
        let mut examined = 0usize;
        loop {
            let dl = if l != NONE {
                a.rating - sc.cands[l as usize].rating
            } else {
                f64::INFINITY
            };
            let dr = if (r as usize) < n {
                sc.cands[r as usize].rating - a.rating
            } else {
                f64::INFINITY
            };
            let c = if dl <= dr {
                if dl > a.window {
                    break;
                }
                let c = l as usize;
                l = find_left(&mut sc.left, c);
                c
            } else {
                if dr > a.window {
                    break;
                }
                let c = r as usize;
                r = find_right(&mut sc.right, c + 1);
                c
            };
            examined += 1;
            if examined > self.config.scan_limit {
                break;
            }
            let cand = &sc.cands[c];
            if usize::from(cand.size) > need || !compatible(slots, &a, cand) {
                continue;
            }
            sc.pool.push(c as u32);
            pool_players += usize::from(cand.size);
            if pool_players < need {
                continue;
            }
            // Try groups that include this newest candidate (groups without it were tried).
            sc.chosen.clear();
            sc.chosen.push(c as u32);
            let last = sc.pool.len() - 1;
            let pool = std::mem::take(&mut sc.pool);
            // suffix[i] = players in pool[i..last]: a branch that cannot reach `need` stops.
            sc.suffix.clear();
            sc.suffix.resize(last + 1, 0);
            for i in (0..last).rev() {
                sc.suffix[i] = sc.suffix[i + 1] + usize::from(sc.cands[pool[i] as usize].size);
            }
            let found = select(
                self,
                slots,
                sc,
                ai,
                &pool[..last],
                0,
                need - usize::from(cand.size),
                a.mask & cand.mask,
                &mut budget,
            );
            sc.pool = pool;
            if found {
                return true;
            }
            if budget == 0 {
                break;
            }
        }
        false
    }

    fn run_backfills(&self, now: Timestamp, st: &mut QueueState, matches: &mut Vec<FormedMatch>) {
        let mut i = 0;
        while i < st.backfills.len() {
            if let Some(assignments) = self.fill_backfill(now, st, i) {
                let bf = st.backfills.remove(i);
                self.form_backfill(now, st, bf, assignments, matches);
            } else {
                i += 1;
            }
        }
    }

    /// Candidates for backfill request `bi`, as (cand index, team) pairs.
    fn fill_backfill(
        &self,
        now: Timestamp,
        st: &mut QueueState,
        bi: usize,
    ) -> Option<Vec<(u32, usize)>> {
        let QueueState {
            slots,
            scratch: sc,
            backfills,
            ..
        } = st;
        let bf = &backfills[bi];
        let waited = now.since(bf.req.created_at);
        let window = self.config.rating_widening.at(waited);
        let region_bit = 1u64 << bf.req.region.0;
        let mut open = bf.req.open_slots.clone();
        let need: usize = open.iter().sum();
        let max_open = *open.iter().max().unwrap_or(&0);
        let n = sc.cands.len();
        let p = sc.cands.partition_point(|c| c.rating < bf.target);
        let mut l = find_left(&mut sc.left, p);
        let mut r = find_right(&mut sc.right, p);
        let mut pool: Vec<u32> = Vec::new();
        let mut players = 0usize;
        let mut examined = 0usize;
        let mut budget = SELECT_BUDGET;
        loop {
            let dl = if l != NONE {
                bf.target - sc.cands[l as usize].rating
            } else {
                f64::INFINITY
            };
            let dr = if (r as usize) < n {
                sc.cands[r as usize].rating - bf.target
            } else {
                f64::INFINITY
            };
            let c = if dl <= dr {
                if dl > window {
                    break;
                }
                let c = l as usize;
                l = find_left(&mut sc.left, c);
                c
            } else {
                if dr > window {
                    break;
                }
                let c = r as usize;
                r = find_right(&mut sc.right, c + 1);
                c
            };
            examined += 1;
            if examined > self.config.scan_limit {
                break;
            }
            let cand = sc.cands[c];
            if usize::from(cand.size) > max_open
                || cand.mask & region_bit == 0
                || (cand.rating - bf.target).abs() > window.min(cand.window)
                || (!cand.relaxed && backfill_conflict(slots, bf, &cand))
            {
                continue;
            }
            pool.push(c as u32);
            players += usize::from(cand.size);
            if players < need {
                continue;
            }
            let mut chosen: Vec<(u32, usize)> = Vec::new();
            let last = pool.len() - 1;
            for t in 0..open.len() {
                if open[t] >= usize::from(cand.size) {
                    open[t] -= usize::from(cand.size);
                    chosen.push((c as u32, t));
                    if fill(
                        slots,
                        &sc.cands,
                        &pool[..last],
                        0,
                        &mut open,
                        need - usize::from(cand.size),
                        &mut chosen,
                        &mut budget,
                    ) {
                        return Some(chosen);
                    }
                    chosen.pop();
                    open[t] += usize::from(cand.size);
                }
            }
            if budget == 0 {
                break;
            }
        }
        None
    }

    fn form_backfill(
        &self,
        now: Timestamp,
        st: &mut QueueState,
        bf: BackfillEntry,
        assignments: Vec<(u32, usize)>,
        matches: &mut Vec<FormedMatch>,
    ) {
        let mut teams: Vec<MatchTeam> = bf
            .req
            .teams
            .iter()
            .map(|t| MatchTeam {
                tickets: Vec::new(),
                players: t.iter().map(|m| m.player).collect(),
                rating_sum: t.iter().map(|m| m.rating.rating).sum(),
                win_probability: 0.0,
            })
            .collect();
        st.scratch.team_ratings.clear();
        for (t, team) in bf.req.teams.iter().enumerate() {
            st.scratch
                .team_ratings
                .extend(team.iter().map(|m| (t, m.rating)));
        }
        let mut tickets = Vec::with_capacity(assignments.len());
        for &(c, t) in &assignments {
            consume(st, c as usize, t, &mut teams, &mut tickets, now);
        }
        let quality = self.predict(&mut teams, st);
        matches.push(FormedMatch {
            backfill: Some(bf.req.id),
            tickets,
            teams,
            region: bf.req.region,
            quality,
            formed_at: now,
        });
    }

    fn form_match(
        &self,
        now: Timestamp,
        st: &mut QueueState,
        ai: usize,
        backfill: Option<TicketId>,
        matches: &mut Vec<FormedMatch>,
    ) {
        let mut group = std::mem::take(&mut st.scratch.group);
        group.clear();
        group.push(ai as u32);
        group.extend_from_slice(&st.scratch.chosen);
        let assign = std::mem::take(&mut st.scratch.assign);
        let mask = group
            .iter()
            .fold(u64::MAX, |m, &c| m & st.scratch.cands[c as usize].mask);
        // Region: the shared one with the lowest worst-case latency.
        let mut region = 0u8;
        let mut best = u32::MAX;
        let mut bits = if mask.count_ones() == 1 {
            region = mask.trailing_zeros() as u8;
            0
        } else {
            mask
        };
        while bits != 0 {
            let r = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            let worst = group
                .iter()
                .map(|&c| {
                    let cand = &st.scratch.cands[c as usize];
                    if r < INLINE_REGIONS {
                        u32::from(cand.lat[r])
                    } else {
                        st.slots[cand.slot as usize].as_ref().expect("live").latency[r]
                    }
                })
                .max()
                .unwrap_or(0);
            if worst < best {
                best = worst;
                region = r as u8;
            }
        }
        let mut teams: Vec<MatchTeam> = (0..self.config.teams)
            .map(|_| MatchTeam {
                tickets: Vec::new(),
                players: Vec::with_capacity(self.config.team_size),
                rating_sum: 0.0,
                win_probability: 0.0,
            })
            .collect();
        let mut tickets = Vec::with_capacity(group.len());
        for (i, &c) in group.iter().enumerate() {
            consume(st, c as usize, assign[i], &mut teams, &mut tickets, now);
        }
        st.scratch.assign = assign;
        st.scratch.group = group;
        let quality = self.predict(&mut teams, st);
        matches.push(FormedMatch {
            backfill,
            tickets,
            teams,
            region: RegionId(region),
            quality,
            formed_at: now,
        });
    }

    /// Fills in each team's win probability from `(team, rating)` pairs; returns the quality.
    fn predict(&self, teams: &mut [MatchTeam], st: &mut QueueState) -> f64 {
        let tr = &mut st.scratch.team_ratings;
        tr.sort_by_key(|&(t, _)| t);
        let ratings = &mut st.scratch.ratings;
        ratings.clear();
        ratings.extend(tr.iter().map(|&(_, r)| r));
        let mut bounds = [0usize; 65];
        for &(t, _) in tr.iter() {
            bounds[t + 1] += 1;
        }
        for t in 0..teams.len() {
            bounds[t + 1] += bounds[t];
        }
        tr.clear();
        let slice = |t: usize| &ratings[bounds[t]..bounds[t + 1]];
        if teams.len() == 2 {
            let p0 = self.rater.two_team_win_probability(slice(0), slice(1));
            teams[0].win_probability = p0;
            teams[1].win_probability = 1.0 - p0;
            return fairness_quality(&[p0, 1.0 - p0]);
        }
        let refs: Vec<&[PlayerRating]> = (0..teams.len()).map(slice).collect();
        let p = self.rater.win_probabilities(&refs);
        for (t, p) in teams.iter_mut().zip(&p) {
            t.win_probability = *p;
        }
        fairness_quality(&p)
    }

    fn finish(&self, now: Timestamp, st: &mut QueueState, out: &mut TickOutcome) {
        if !st.scratch.taken_slots.is_empty() {
            // Release matched tickets in slab order: a sequential sweep, not random frees.
            let mut taken = std::mem::take(&mut st.scratch.taken_slots);
            let bulk = taken.len() * 8 >= st.by_id.len();
            if taken.len() * 16 >= st.slots.len() {
                // Many: sweep a slot bitmap in order (sequential) instead of sorting.
                // `mark` holds exactly the slots taken this tick (set by `take`).
                let mark = std::mem::take(&mut st.scratch.mark);
                for (slot, &m) in mark.iter().enumerate() {
                    if m {
                        drop(st.take_matched(slot as u32, !bulk));
                        st.free.push(slot as u32);
                    }
                }
                st.scratch.mark = mark;
            } else {
                for &slot in &taken {
                    drop(st.take_matched(slot, !bulk));
                    st.free.push(slot);
                }
            }
            taken.clear();
            st.scratch.taken_slots = taken;
            if bulk {
                st.unmap_bulk();
            }
            let live = &st.live;
            st.ages.retain(|a| live[a.slot as usize]);
            // Compact the index reading the 4-byte skip pointers, not the 144-byte entries:
            // `right[i] == i` exactly for the entries nobody took.
            let sc = &mut st.scratch;
            let mut w = 0;
            for i in 0..sc.cands.len() {
                if sc.right[i] == i as u32 {
                    sc.cands[w] = sc.cands[i];
                    w += 1;
                }
            }
            sc.cands.truncate(w);
        }
        out.waiting.reserve(st.ages.len());
        for (i, a) in st.ages.iter().enumerate() {
            let waited = now.millis().saturating_sub(a.created);
            out.waiting.push(WaitingTicket {
                ticket: a.id,
                position: i + 1,
                waited_ms: waited,
                estimated_wait_ms: st.waits.estimate(a.rating, waited),
            });
        }
    }
}

/// Takes index position `c` onto team `team`: its players join the team, its wait is recorded.
fn consume(
    st: &mut QueueState,
    c: usize,
    team: usize,
    teams: &mut [MatchTeam],
    tickets: &mut Vec<TicketId>,
    now: Timestamp,
) {
    take(st, c);
    let cand = st.scratch.cands[c];
    st.waits
        .record(cand.rating, now.millis().saturating_sub(cand.created));
    let t = &mut teams[team];
    t.tickets.push(cand.id);
    tickets.push(cand.id);
    if cand.size == 1 {
        t.players.push(cand.player);
        t.rating_sum += cand.prating.rating;
        st.scratch.team_ratings.push((team, cand.prating));
    } else {
        let e = st.slots[cand.slot as usize].as_ref().expect("live");
        for m in e.members.iter() {
            t.players.push(m.player);
            t.rating_sum += m.rating.rating;
            st.scratch.team_ratings.push((team, m.rating));
        }
    }
}

/// Marks index position `c` taken; returns its slot.
fn take(st: &mut QueueState, c: usize) -> u32 {
    let sc = &mut st.scratch;
    sc.cands[c].taken = true;
    sc.right[c] = c as u32 + 1;
    sc.left[c + 1] = c as u32;
    let slot = sc.cands[c].slot;
    sc.taken_slots.push(slot);
    sc.mark[slot as usize] = true;
    slot
}

/// First live index ≥ `i` (or `n`). `right[i] == i` means live.
fn find_right(right: &mut [u32], i: usize) -> u32 {
    let mut root = i as u32;
    while right[root as usize] != root {
        root = right[root as usize];
    }
    let mut cur = i as u32;
    while right[cur as usize] != root {
        let next = right[cur as usize];
        right[cur as usize] = root;
        cur = next;
    }
    root
}

/// Last live index < `i`, or `NONE`. Stored shifted by one: `left[k]` is about index `k − 1`,
/// and `left[0] == 0` is the "none" sentinel.
fn find_left(left: &mut [u32], i: usize) -> u32 {
    let mut root = i as u32;
    while left[root as usize] != root {
        root = left[root as usize];
    }
    let mut cur = i as u32;
    while left[cur as usize] != root {
        let next = left[cur as usize];
        left[cur as usize] = root;
        cur = next;
    }
    if root == 0 { NONE } else { root - 1 }
}

/// Whether two tickets may be in the same match.
fn compatible(slots: &[Option<Entry>], a: &Cand, b: &Cand) -> bool {
    (a.rating - b.rating).abs() <= a.window.min(b.window)
        && a.mask & b.mask != 0
        && (a.relaxed || b.relaxed || !recent_conflict(slots, a, b))
}

fn recent_conflict(slots: &[Option<Entry>], a: &Cand, b: &Cand) -> bool {
    if a.recent_bits & b.self_bits == 0 && b.recent_bits & a.self_bits == 0 {
        return false;
    }
    let ea = slots[a.slot as usize].as_ref().expect("live");
    let eb = slots[b.slot as usize].as_ref().expect("live");
    let lists = |x: &Entry, y: &Entry| {
        x.recent
            .iter()
            .any(|p| y.members.iter().any(|m| m.player == *p))
    };
    lists(ea, eb) || lists(eb, ea)
}

fn backfill_conflict(slots: &[Option<Entry>], bf: &BackfillEntry, c: &Cand) -> bool {
    if c.recent_bits & bf.existing_bits == 0 {
        return false;
    }
    let e = slots[c.slot as usize].as_ref().expect("live");
    e.recent
        .iter()
        .any(|p| bf.req.teams.iter().flatten().any(|m| m.player == *p))
}

/// Depth-first choice of pool members (nearest first) completing a match with the anchor and
/// the tickets already in `sc.chosen`. At a complete group, checks the team packing.
#[allow(clippy::too_many_arguments)]
fn select(
    mm: &Matchmaker,
    slots: &[Option<Entry>],
    sc: &mut super::state::TickScratch,
    anchor: usize,
    pool: &[u32],
    start: usize,
    need: usize,
    mask: u64,
    budget: &mut usize,
) -> bool {
    if need == 0 {
        return pack(mm, slots, sc, anchor);
    }
    for idx in start..pool.len() {
        if *budget == 0 || sc.suffix[idx] < need {
            return false;
        }
        *budget -= 1;
        let c = pool[idx] as usize;
        let cand = sc.cands[c];
        let size = usize::from(cand.size);
        if size > need || mask & cand.mask == 0 {
            continue;
        }
        if !sc
            .chosen
            .iter()
            .all(|&x| compatible(slots, &sc.cands[x as usize], &cand))
        {
            continue;
        }
        sc.chosen.push(c as u32);
        if select(
            mm,
            slots,
            sc,
            anchor,
            pool,
            idx + 1,
            need - size,
            mask & cand.mask,
            budget,
        ) {
            return true;
        }
        sc.chosen.pop();
    }
    false
}

/// Splits anchor + chosen into teams; result in `sc.assign` (anchor first, then `chosen` order).
fn pack(
    mm: &Matchmaker,
    _slots: &[Option<Entry>],
    sc: &mut super::state::TickScratch,
    anchor: usize,
) -> bool {
    sc.pieces.clear();
    for &c in std::iter::once(&(anchor as u32)).chain(sc.chosen.iter()) {
        let cand = &sc.cands[c as usize];
        sc.pieces.push(Piece {
            size: usize::from(cand.size),
            sum: cand.rating_sum,
        });
    }
    teams::partition(
        &sc.pieces,
        mm.config.teams,
        mm.config.team_size,
        &mut sc.teams,
        &mut sc.assign,
    )
}

/// Depth-first fill of a backfill's open slots from `pool`.
#[allow(clippy::too_many_arguments)]
fn fill(
    slots: &[Option<Entry>],
    cands: &[Cand],
    pool: &[u32],
    start: usize,
    open: &mut [usize],
    need: usize,
    chosen: &mut Vec<(u32, usize)>,
    budget: &mut usize,
) -> bool {
    if need == 0 {
        return true;
    }
    for idx in start..pool.len() {
        if *budget == 0 {
            return false;
        }
        *budget -= 1;
        let c = pool[idx];
        let cand = &cands[c as usize];
        let size = usize::from(cand.size);
        if size > need
            || !chosen
                .iter()
                .all(|&(x, _)| compatible(slots, &cands[x as usize], cand))
        {
            continue;
        }
        for t in 0..open.len() {
            if open[t] >= size {
                open[t] -= size;
                chosen.push((c, t));
                if fill(
                    slots,
                    cands,
                    pool,
                    idx + 1,
                    open,
                    need - size,
                    chosen,
                    budget,
                ) {
                    return true;
                }
                chosen.pop();
                open[t] += size;
            }
        }
    }
    false
}
