//! The general path: each anchor, oldest first, looks for tickets that complete a match with
//! it — parties whole, every pair compatible, one region for all, a packing into teams — and
//! the group found is split into balanced teams.
//!
//! Owns the group search (a depth-first choice under a node budget, [`SELECT_BUDGET`], nearest
//! candidates first) and what the chosen tickets ask of the next one ([`Bounds`]). It marks the
//! tickets it forms matches of and writes nothing else to the pool; no clock but `now`, no
//! randomness.

use super::clock::{Clock, Live, Pick};
use super::form::choose_region;
use super::rules::compatible;
use super::scan::{Outward, for_each_live_anchor};
use super::{Matchmaker, SELECT_BUDGET, TickScratch};
use crate::matchmaking::outcome::TickOutcome;
use crate::matchmaking::pool::{Cand, Entry, QueueState, RatingIndex, may_have_met, members_bits};
use crate::matchmaking::teams::{self, Piece};
use crate::matchmaking::ticket::Timestamp;
use crate::rating::{PlayerRating, RatingSystem, fairness_quality};

impl Matchmaker {
    pub(super) fn run_tickets(
        &self,
        now: Timestamp,
        clock: &Clock,
        st: &mut QueueState,
        out: &mut TickOutcome,
    ) {
        let need_total = self.config.players_per_match();
        // A pair is usually found next door; a bigger match scans further.
        let reach = if need_total == 2 { 1 } else { 3 };
        // Party sizes no packing of the pool could use (4-stacks with no solo to fill the
        // fifth seats): their tickets would scan to `scan_limit` and search to the budget every
        // tick for nothing. Counted before this tick's matches, so this never skips a ticket
        // that could be matched.
        let (teams, team_size) = (self.config.teams, self.config.team_size);
        let counts = st.party_counts();
        let unpackable = (1..=team_size)
            .filter(|&k| counts[k] > 0 && !teams::can_pack(counts, k, teams, team_size))
            .fold(0u64, |bits, k| bits | 1 << k);
        let words = st.index().cands().len().div_ceil(64);
        let passed = &mut st.scratch_mut().passed;
        passed.clear();
        passed.resize(words, 0);
        for_each_live_anchor::<true>(st, reach, |st, ai| {
            if unpackable != 0 && unpackable >> st.index().cands()[ai].size & 1 != 0 {
                return;
            }
            if st.scratch().passed[ai / 64] >> (ai % 64) & 1 != 0 {
                return;
            }
            if let Some(anchor) = self.find_group(clock, st, ai, need_total) {
                self.form_match(now, st, anchor, out);
            }
        });
    }

    /// Looks for tickets that complete a match with anchor `ai`. On success the group is in
    /// `scratch.chosen` and the team of each piece (anchor first) in `scratch.assign`; returns
    /// the anchor.
    fn find_group(
        &self,
        clock: &Clock,
        st: &mut QueueState,
        ai: usize,
        need_total: usize,
    ) -> Option<Pick> {
        let (slots, ix, sc) = st.tick_view();
        let cands = ix.cands();
        let a = cands[ai];
        let al = clock.live(&a, slots, u64::MAX);
        let anchor = Pick {
            c: ai as u32,
            live: al,
        };
        let need = need_total.saturating_sub(usize::from(a.size));

        // No region within its budget yet: nobody can be compatible, so skip the scan (a
        // region outage would otherwise cost every ticket `scan_limit` checks per tick).
        if need == 0 || al.mask == 0 {
            return None;
        }
        sc.pool.clear();
        let mut pool_players = 0usize;
        let mut budget = SELECT_BUDGET;
        let mut scan = Outward::around(&sc.links, ai, a.rating, al.window, self.config.scan_limit);
        while let Some(c) = scan.next(cands, &sc.links) {
            let cand = &cands[c];
            let size = usize::from(cand.size);
            if size > need {
                continue;
            }
            let cl = clock.live(cand, slots, al.mask);
            if !compatible(slots, &a, &al, cand, &cl) {
                continue;
            }
            let pick = Pick {
                c: c as u32,
                live: cl,
            };
            sc.pool.push(pick);
            pool_players += size;
            if pool_players < need {
                continue;
            }
            // Try groups that include this newest candidate (groups without it were tried).
            sc.chosen.clear();
            sc.chosen.push(pick);
            let last = sc.pool.len() - 1;
            let pool = std::mem::take(&mut sc.pool);
            // suffix[i] = players in pool[i..last]: a branch that cannot reach `need` stops.
            sc.suffix.clear();
            sc.suffix.resize(last + 1, 0);
            for i in (0..last).rev() {
                sc.suffix[i] = sc.suffix[i + 1] + usize::from(cands[pool[i].c as usize].size);
            }
            let found = select(
                self,
                slots,
                ix,
                sc,
                ai,
                &pool[..last],
                0,
                need - size,
                al.mask & cl.mask,
                Bounds::EMPTY.with(cand, &cl),
                clock,
                &mut budget,
            );
            sc.pool = pool;
            if found {
                return Some(anchor);
            }
            if budget == 0 {
                break;
            }
        }
        None
    }

    fn form_match(&self, now: Timestamp, st: &mut QueueState, anchor: Pick, out: &mut TickOutcome) {
        let (slots, ix, sc) = st.tick_view();
        let group = || std::iter::once(&anchor).chain(sc.chosen.iter());
        let mask = group().fold(u64::MAX, |m, p| m & p.live.mask);
        let region = choose_region(mask, slots, || group().map(|p| &ix.cands()[p.c as usize]));
        let mut placed = std::mem::take(&mut sc.placed);
        placed.clear();
        placed.extend(group().zip(&sc.assign).map(|(p, &t)| (*p, t)));
        self.emit(now, st, None, region, &[], &placed, out);
        st.scratch_mut().placed = placed;
    }
}

/// What the tickets chosen so far ask of the next one: the rating interval inside all of their
/// windows, their own rating range (which must sit inside the newcomer's window), and the
/// fingerprints of those still bound by the rematch rule. With it a candidate is judged against
/// the whole group in a few comparisons instead of one pairwise check per chosen ticket.
#[derive(Clone, Copy, Debug)]
struct Bounds {
    lo: f64,
    hi: f64,
    min: f64,
    max: f64,
    self_bits: u64,
    recent_bits: u64,
}

impl Bounds {
    const EMPTY: Bounds = Bounds {
        lo: f64::NEG_INFINITY,
        hi: f64::INFINITY,
        min: f64::INFINITY,
        max: f64::NEG_INFINITY,
        self_bits: 0,
        recent_bits: 0,
    };
    /// Margin (rating points) within which rounding could make the interval test disagree with
    /// the pairwise one; such a candidate gets the pairwise test.
    const MARGIN: f64 = 1e-6;

    fn with(self, c: &Cand, l: &Live) -> Bounds {
        let bound = !l.relaxed;
        Bounds {
            lo: self.lo.max(c.rating - l.window),
            hi: self.hi.min(c.rating + l.window),
            min: self.min.min(c.rating),
            max: self.max.max(c.rating),
            self_bits: self.self_bits | if bound { members_bits(c) } else { 0 },
            recent_bits: self.recent_bits | if bound { c.recent_bits } else { 0 },
        }
    }

    /// Whether `c` is compatible with every ticket in the group (regions are checked by the
    /// caller's running mask); `None` when only the pairwise test can tell: a rating within
    /// [`Self::MARGIN`] of a bound, or a rematch fingerprint in common.
    fn admits(&self, c: &Cand, l: &Live) -> Option<bool> {
        let m = Self::MARGIN;
        let (lo, hi) = (c.rating - l.window, c.rating + l.window);
        if c.rating < self.lo - m
            || c.rating > self.hi + m
            || self.min < lo - m
            || self.max > hi + m
        {
            return Some(false);
        }
        let clear = c.rating >= self.lo + m
            && c.rating <= self.hi - m
            && self.min >= lo + m
            && self.max <= hi - m;
        let rematch = !l.relaxed
            && (c.recent_bits & self.self_bits != 0 || may_have_met(self.recent_bits, c));
        (clear && !rematch).then_some(true)
    }
}

/// Depth-first choice of pool members (nearest first) completing a match with the anchor and
/// the tickets already in `sc.chosen`. At a complete group, checks the team packing.
#[allow(clippy::too_many_arguments)]
fn select(
    mm: &Matchmaker,
    slots: &[Option<Entry>],
    ix: &RatingIndex,
    sc: &mut TickScratch,
    anchor: usize,
    pool: &[Pick],
    start: usize,
    need: usize,
    mask: u64,
    bounds: Bounds,
    clock: &Clock,
    budget: &mut usize,
) -> bool {
    if need == 0 {
        if !pack(mm, ix, sc, anchor) {
            return false;
        }
        if fair_enough(mm, ix, sc, anchor, clock) {
            return true;
        }
        // The first packable group (nearest first) is below the quality floor at its oldest
        // ticket's wait: the anchor stops searching this tick and waits for new arrivals, a
        // wider window and a lower floor; the tickets passed over stay free for later anchors.
        // (Searching on for a fairer group gave the same quality in the simulated scenarios
        // at up to 7× the instructions of a 100k tick: BENCHMARKS.md.) The group and the
        // compatible tickets scanned before it are each other's nearest: from their own turn
        // they would mostly find this same group and fail the same way, so they do not anchor
        // again this tick (a 100k first tick under a floor: 2.0× → 1.35× the cost without
        // one, at the same simulated quality; BENCHMARKS.md).
        let group = std::iter::once(anchor as u32).chain(sc.chosen.iter().map(|p| p.c));
        for c in group.chain(pool.iter().map(|p| p.c)) {
            sc.passed[c as usize / 64] |= 1 << (c % 64);
        }
        *budget = 0;
        return false;
    }
    for idx in start..pool.len() {
        if *budget == 0 || sc.suffix[idx] < need {
            return false;
        }
        *budget -= 1;
        let pick = pool[idx];
        let cand = &ix.cands()[pick.c as usize];
        let size = usize::from(cand.size);
        if size > need || mask & pick.live.mask == 0 {
            continue;
        }
        let fits = bounds.admits(cand, &pick.live).unwrap_or_else(|| {
            sc.chosen
                .iter()
                .all(|x| compatible(slots, &ix.cands()[x.c as usize], &x.live, cand, &pick.live))
        });
        if !fits {
            continue;
        }
        let inner = bounds.with(cand, &pick.live);
        sc.chosen.push(pick);
        if select(
            mm,
            slots,
            ix,
            sc,
            anchor,
            pool,
            idx + 1,
            need - size,
            mask & pick.live.mask,
            inner,
            clock,
            budget,
        ) {
            return true;
        }
        sc.chosen.pop();
    }
    false
}

/// Splits anchor + chosen into teams; result in `sc.assign` (anchor first, then `chosen` order).
fn pack(mm: &Matchmaker, ix: &RatingIndex, sc: &mut TickScratch, anchor: usize) -> bool {
    sc.pieces.clear();
    for c in std::iter::once(anchor as u32).chain(sc.chosen.iter().map(|p| p.c)) {
        sc.pieces.push(Piece {
            size: usize::from(ix.cands()[c as usize].size),
            sum: ix.cold()[c as usize].rating_sum,
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

/// Whether the split `pack` found reaches `min_quality` at the wait of the group's oldest
/// ticket. Two-player matches are bounded by the rating window alone (as the pair path, which
/// must pick the same).
fn fair_enough(
    mm: &Matchmaker,
    ix: &RatingIndex,
    sc: &mut TickScratch,
    anchor: usize,
    clock: &Clock,
) -> bool {
    if mm.config.players_per_match() <= 2 {
        return true;
    }
    let cands = ix.cands();
    let oldest = (sc.chosen.iter().map(|p| cands[p.c as usize].created))
        .fold(cands[anchor].created, u64::min);
    let floor = mm.config.min_quality.at(clock.waited_ms(oldest));
    floor <= 0.0 || quality(mm, ix, sc, anchor) >= floor
}

/// The predicted quality of the split `pack` found (anchor + chosen, teams in `sc.assign`), as
/// `emit` will predict it.
fn quality(mm: &Matchmaker, ix: &RatingIndex, sc: &mut TickScratch, anchor: usize) -> f64 {
    let teams = mm.config.teams;
    let (cands, cold, party) = (ix.cands(), ix.cold(), ix.party_members());
    sc.ratings.clear();
    let mut bounds = [0usize; 65];
    for t in 0..teams {
        let group = std::iter::once(anchor as u32).chain(sc.chosen.iter().map(|p| p.c));
        for (c, _) in group.zip(&sc.assign).filter(|(_, on)| **on == t) {
            let (cand, cold) = (&cands[c as usize], &cold[c as usize]);
            if cand.size == 1 {
                sc.ratings.push(cold.predictive());
            } else {
                let members = &party[cold.party as usize..][..usize::from(cand.size)];
                sc.ratings.extend(members.iter().map(|m| m.rating));
            }
        }
        bounds[t + 1] = sc.ratings.len();
    }
    let slice = |t: usize| &sc.ratings[bounds[t]..bounds[t + 1]];
    if teams == 2 {
        let p0 = mm.rater.two_team_win_probability(slice(0), slice(1));
        return fairness_quality(&[p0, 1.0 - p0]);
    }
    let refs: Vec<&[PlayerRating]> = (0..teams).map(slice).collect();
    fairness_quality(&mm.rater.win_probabilities(&refs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matchmaking::{Member, PlayerId, QueueConfig, Ticket, TicketId};

    /// 4-stacks in a 5v5 queue cannot be packed without solos: they are skipped while there
    /// are none, and matched as soon as two solos arrive.
    #[test]
    fn unpackable_parties_wait_until_the_pool_can_pack_them() {
        let mm = Matchmaker::new(QueueConfig::new(2, 5)).unwrap();
        let mut st = mm.new_state();
        let mut next = 1u128;
        let mut ticket = |size: usize, st: &mut QueueState| {
            let members = (0..size)
                .map(|i| Member {
                    player: PlayerId(next * 10 + i as u128),
                    rating: PlayerRating::new(1500.0 + i as f64, 50.0),
                })
                .collect();
            st.add(Ticket {
                id: TicketId(next),
                members,
                region_latency_ms: vec![20],
                created_at: Timestamp::from_secs(100),
                recent_opponents: vec![],
            })
            .unwrap();
            next += 1;
        };
        for _ in 0..4 {
            ticket(4, &mut st);
        }
        let out = mm.tick(Timestamp::from_secs(101), &mut st);
        assert_eq!(out.match_count(), 0);
        assert_eq!(st.len(), 4);
        ticket(1, &mut st);
        ticket(1, &mut st);
        let out = mm.tick(Timestamp::from_secs(102), &mut st);
        assert_eq!(out.match_count(), 1);
        let m = out.get_match(0).unwrap();
        assert!(m.teams().all(|t| t.players.len() == 5));
        assert_eq!(st.len(), 2);
        // The other two 4-stacks are unpackable again, and skipped.
        assert_eq!(mm.tick(Timestamp::from_secs(103), &mut st).match_count(), 0);
    }

    /// A group that fits every window but whose only split is unfair (a 5-stack against five
    /// stronger solos) waits while its oldest ticket's quality floor is above its quality, and
    /// is matched once the floor has relaxed; a fair group is matched at once.
    #[test]
    fn quality_floor_passes_over_unfair_groups_until_it_relaxes() {
        let mut cfg = QueueConfig::new(2, 5);
        cfg.rating = crate::rating::RatingConfig::weng_lin_scaled(1500.0, 300.0);
        cfg.min_quality = crate::matchmaking::Schedule::new(vec![(0, 0.9), (30, 0.0)]);
        let mm = Matchmaker::new(cfg).unwrap();
        let run = |solo_rating: f64| {
            let mut st = mm.new_state();
            let stack = (0..5)
                .map(|i| Member {
                    player: PlayerId(100 + i),
                    rating: PlayerRating::new(1500.0, 50.0),
                })
                .collect();
            let mut add = |id: u128, members: Vec<Member>| {
                st.add(Ticket {
                    id: TicketId(id),
                    members,
                    region_latency_ms: vec![20],
                    created_at: Timestamp::from_secs(100),
                    recent_opponents: vec![],
                })
                .unwrap();
            };
            add(1, stack);
            for i in 0..5u128 {
                let rating = PlayerRating::new(solo_rating, 50.0);
                add(
                    10 + i,
                    vec![Member {
                        player: PlayerId(10 + i),
                        rating,
                    }],
                );
            }
            let first = mm.tick(Timestamp::from_secs(101), &mut st);
            let first = first.matches().next().map(|m| m.quality);
            let later = mm.tick(Timestamp::from_secs(131), &mut st);
            let later = later.matches().next().map(|m| m.quality);
            (first, later)
        };
        // Team sums 7500 against 7700 (windows of 50 hold): quality ≈ 0.63.
        let (first, later) = run(1540.0);
        assert_eq!(first, None);
        assert!(later.is_some_and(|q| q < 0.9), "{later:?}");
        let (first, _) = run(1500.0);
        assert!(first.is_some_and(|q| q > 0.99), "{first:?}");
    }
}
