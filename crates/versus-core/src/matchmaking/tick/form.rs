//! Forming a match: taking its tickets out of the tick's scan and the pool, choosing its region,
//! and writing it, with its predicted outcome, into the [`TickOutcome`].
//!
//! Owns the write-out shared by the group search and backfills (1v1 pairs have their own, in
//! `pairs`). It only marks tickets matched (the pool releases them in `maintain`) and predicts
//! with the queue's rating system: no clock (a match is formed at the tick's `now`), no
//! randomness.

use super::Matchmaker;
use super::clock::Pick;
use crate::matchmaking::outcome::TickOutcome;
use crate::matchmaking::pool::{Cand, Cold, Entry, INLINE_REGIONS, QueueState};
use crate::matchmaking::ticket::{Member, RegionId, TicketId, Timestamp};
use crate::rating::{PlayerRating, RatingSystem, fairness_quality};

impl Matchmaker {
    /// Writes a match whose team `t` is `existing[t]` (players already in a running match, for a
    /// backfill) followed by the tickets `placed` on `t`; takes those tickets out of the pool
    /// and predicts the outcome.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn emit(
        &self,
        now: Timestamp,
        st: &mut QueueState,
        backfill: Option<TicketId>,
        region: RegionId,
        existing: &[Vec<Member>],
        placed: &[(Pick, usize)],
        out: &mut TickOutcome,
    ) {
        let first_team = out.team_count() as u32;
        let (_, ix, sc) = st.tick_view();
        sc.ratings.clear();
        let mut bounds = [0usize; 65];
        for t in 0..self.config.teams {
            let mut team = out.open_team();
            for m in existing.get(t).into_iter().flatten() {
                out.push_player(m.player);
                team.rating_sum += m.rating.rating;
                sc.ratings.push(m.rating);
            }
            for (pick, _) in placed.iter().filter(|(_, on)| *on == t) {
                let c = pick.c as usize;
                let (party, cand, cold) = (ix.party_members(), &ix.cands()[c], &ix.cold()[c]);
                team.rating_sum += write_ticket(out, &mut sc.ratings, party, cand, cold);
            }
            out.close_team(team);
            bounds[t + 1] = sc.ratings.len();
        }
        for (pick, _) in placed {
            take(st, pick.c as usize, now);
        }
        let quality = self.predict(first_team as usize, &st.scratch().ratings, &bounds, out);
        out.push_record(backfill, first_team, region, quality, now);
    }

    /// Fills in the win probability of the teams from `first_team` on (their players' ratings
    /// are `ratings[bounds[t]..bounds[t + 1]]`); returns the quality.
    fn predict(
        &self,
        first_team: usize,
        ratings: &[PlayerRating],
        bounds: &[usize; 65],
        out: &mut TickOutcome,
    ) -> f64 {
        let teams = out.team_count() - first_team;
        let slice = |t: usize| &ratings[bounds[t]..bounds[t + 1]];
        if teams == 2 {
            let p0 = self.rater.two_team_win_probability(slice(0), slice(1));
            out.set_win_probabilities(first_team, &[p0, 1.0 - p0]);
            return fairness_quality(&[p0, 1.0 - p0]);
        }
        let refs: Vec<&[PlayerRating]> = (0..teams).map(slice).collect();
        let p = self.rater.win_probabilities(&refs);
        out.set_win_probabilities(first_team, &p);
        fairness_quality(&p)
    }
}

/// The region in `mask` (acceptable to every ticket of the group) with the lowest worst-case
/// latency; ties go to the lowest index.
// Inlined into the pair and group paths, as it was while the tick was one file.
#[inline]
pub(super) fn choose_region<'c, I: Iterator<Item = &'c Cand>>(
    mask: u64,
    slots: &[Option<Entry>],
    group: impl Fn() -> I,
) -> RegionId {
    let mut region = mask.trailing_zeros() as u8;
    if mask.count_ones() > 1 {
        let mut best = u32::MAX;
        let mut bits = mask;
        while bits != 0 {
            let r = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            let worst = group()
                .map(|cand| {
                    if r < INLINE_REGIONS && cand.lat[r] != u16::MAX {
                        u32::from(cand.lat[r])
                    } else {
                        slots[cand.slot as usize]
                            .as_ref()
                            .and_then(|e| e.latency.get(r).copied())
                            .unwrap_or(u32::MAX)
                    }
                })
                .max()
                .unwrap_or(0);
            if worst < best {
                best = worst;
                region = r as u8;
            }
        }
    }
    RegionId(region)
}

/// Appends a ticket and its players to the team being written; returns its rating sum.
// Inlined into `emit`, as it was while the tick was one file: out of line it made the 5v5
// tick 1.9 M instructions dearer.
#[inline]
fn write_ticket(
    out: &mut TickOutcome,
    ratings: &mut Vec<PlayerRating>,
    party: &[Member],
    cand: &Cand,
    cold: &Cold,
) -> f64 {
    out.push_ticket(cold.id);
    if cand.size == 1 {
        out.push_player(cold.player);
        ratings.push(cold.predictive());
        return cold.rating;
    }
    let mut sum = 0.0;
    for m in &party[cold.party as usize..][..usize::from(cand.size)] {
        out.push_player(m.player);
        ratings.push(m.rating);
        sum += m.rating.rating;
    }
    sum
}

/// Takes index position `c` into a match: it leaves the scan and the searching pool, and its
/// wait feeds the estimates.
#[inline(always)]
pub(super) fn take(st: &mut QueueState, c: usize, now: Timestamp) {
    let cand = &st.index().cands()[c];
    let (slot, rating, created) = (cand.slot, cand.rating, cand.created);
    st.scratch_mut().links.unlink(c);
    st.mark_matched(slot, rating, now.millis().saturating_sub(created));
}
