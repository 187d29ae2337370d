//! Backfills: filling the open slots of running matches, before any new match is formed.
//!
//! Owns the search for a backfill request's players: the request's rating target and region,
//! candidates read outward from the target, a depth-first fill of each team's open slots under
//! a node budget ([`SELECT_BUDGET`]). A filled request leaves the pool and its match is written
//! like any other (`form`). No clock but `now`, no randomness.

use super::clock::{Clock, Pick};
use super::rules::compatible;
use super::scan::Outward;
use super::{Matchmaker, SELECT_BUDGET};
use crate::matchmaking::outcome::TickOutcome;
use crate::matchmaking::pool::{BackfillEntry, Cand, Entry, QueueState};
use crate::matchmaking::ticket::Timestamp;

impl Matchmaker {
    pub(super) fn run_backfills(
        &self,
        now: Timestamp,
        clock: &Clock,
        st: &mut QueueState,
        out: &mut TickOutcome,
    ) {
        let mut i = 0;
        while i < st.backfills().len() {
            if let Some(assignments) = self.fill_backfill(now, clock, st, i) {
                let req = st.remove_backfill(i).req;
                let (id, region) = (Some(req.id), req.region);
                self.emit(now, st, id, region, &req.teams, &assignments, out);
            } else {
                i += 1;
            }
        }
    }

    /// Candidates for backfill request `bi`, as (pick, team) pairs.
    fn fill_backfill(
        &self,
        now: Timestamp,
        clock: &Clock,
        st: &QueueState,
        bi: usize,
    ) -> Option<Vec<(Pick, usize)>> {
        let (slots, cands, links) = (st.slots(), st.index().cands(), &st.scratch().links);
        let bf = &st.backfills()[bi];
        let waited = now.since(bf.req.created_at);
        let window = self.config.rating_widening.at(waited);
        let region_bit = 1u64 << bf.req.region.0;
        let mut search = Fill {
            slots,
            cands,
            open: bf.req.open_slots.clone(),
            chosen: Vec::new(),
            budget: SELECT_BUDGET,
        };
        let need: usize = search.open.iter().sum();
        let max_open = *search.open.iter().max().unwrap_or(&0);
        let p = cands.partition_point(|c| c.rating < bf.target);
        let mut scan = Outward::from(links, p, bf.target, window, self.config.scan_limit);
        let mut pool: Vec<Pick> = Vec::new();
        let mut players = 0usize;
        while let Some(c) = scan.next(cands, links) {
            let cand = &cands[c];
            if usize::from(cand.size) > max_open {
                continue;
            }
            let cl = clock.live(cand, slots, region_bit);
            if cl.mask & region_bit == 0
                || (cand.rating - bf.target).abs() > window.min(cl.window)
                || (!cl.relaxed && backfill_conflict(slots, bf, cand))
            {
                continue;
            }
            let pick = Pick {
                c: c as u32,
                live: cl,
            };
            let size = usize::from(cand.size);
            pool.push(pick);
            players += size;
            if players < need {
                continue;
            }
            // Groups with this newest candidate (groups without it were tried).
            if search.place(&pool[..pool.len() - 1], 0, pick, need) {
                return Some(search.chosen);
            }
            if search.budget == 0 {
                break;
            }
        }
        None
    }
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

/// One backfill request's search: the open slots left on each team, the tickets placed so
/// far (each with its team), and what remains of its node budget.
struct Fill<'a> {
    slots: &'a [Option<Entry>],
    cands: &'a [Cand],
    open: Vec<usize>,
    chosen: Vec<(Pick, usize)>,
    budget: usize,
}

impl Fill<'_> {
    /// Depth-first fill of the open slots from `pool[start..]`.
    fn fill(&mut self, pool: &[Pick], start: usize, need: usize) -> bool {
        if need == 0 {
            return true;
        }
        let (slots, cands) = (self.slots, self.cands);
        for idx in start..pool.len() {
            if self.budget == 0 {
                return false;
            }
            self.budget -= 1;
            let pick = pool[idx];
            let cand = &cands[pick.c as usize];
            let size = usize::from(cand.size);
            if size > need
                || !self.chosen.iter().all(|(x, _)| {
                    compatible(slots, &cands[x.c as usize], &x.live, cand, &pick.live)
                })
            {
                continue;
            }
            if self.place(pool, idx + 1, pick, need) {
                return true;
            }
        }
        false
    }

    /// Puts `pick` on each team with room for it in turn, filling the rest from
    /// `pool[start..]`; the first team that works keeps it.
    fn place(&mut self, pool: &[Pick], start: usize, pick: Pick, need: usize) -> bool {
        let size = usize::from(self.cands[pick.c as usize].size);
        for t in 0..self.open.len() {
            if self.open[t] >= size {
                self.open[t] -= size;
                self.chosen.push((pick, t));
                if self.fill(pool, start, need - size) {
                    return true;
                }
                self.chosen.pop();
                self.open[t] += size;
            }
        }
        false
    }
}
