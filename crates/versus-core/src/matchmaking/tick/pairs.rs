//! The 1v1 path: a queue of two solo tickets a match, where each anchor takes the nearest
//! compatible ticket — the pick the general group search makes (a test below holds the two to
//! the same matches), without its group bookkeeping, which was most of a 1v1 tick's work.
//!
//! Owns the pair loop and the pair write-out. The scan only decides the pairs: it notes each at
//! the picking ticket's index position (a pair slot per position, made ready by
//! `QueueState::maintain`, [`NONE`] between ticks) and takes both tickets. [`Matchmaker::write_pairs`]
//! then walks the index in order and writes the matches, so the rows only the outcome needs
//! (ids, players, ratings) stream in instead of arriving as two random loads per pair; a 1v1
//! outcome therefore lists its matches by the picking ticket's rating. Like the rest of the tick:
//! no clock but `now`, no IO, no randomness.

use super::Matchmaker;
use super::clock::{Clock, Pick};
use super::form::{choose_region, take};
use super::rules::compatible;
use super::scan::{Outward, for_each_live_anchor};
use crate::matchmaking::NONE;
use crate::matchmaking::outcome::TickOutcome;
use crate::matchmaking::pool::QueueState;
use crate::matchmaking::ticket::Timestamp;
use crate::rating::fairness_quality;

impl Matchmaker {
    /// [`Self::run_tickets`] for 1v1 (two solo tickets a match): each anchor takes the nearest
    /// compatible ticket — the pick the general path makes (tested equal), without its group
    /// bookkeeping, which is most of the work of a 1v1 tick.
    pub(super) fn run_pairs(
        &self,
        now: Timestamp,
        clock: &Clock,
        st: &mut QueueState,
        out: &mut TickOutcome,
    ) {
        for_each_live_anchor::<false>(st, 1, |st, ai| self.pair_anchor(now, clock, st, ai));
        self.write_pairs(now, st, out);
    }

    /// One anchor of [`Self::run_pairs`]: takes it and the nearest compatible ticket, if any.
    #[inline(always)]
    fn pair_anchor(&self, now: Timestamp, clock: &Clock, st: &mut QueueState, ai: usize) {
        let (slots, cands, links) = (st.slots(), st.index().cands(), &st.scratch().links);
        let a = &cands[ai];
        let al = clock.live(a, slots, u64::MAX);
        if al.mask == 0 {
            // No region within its budget yet: nobody can be compatible.
            return;
        }
        let mut scan = Outward::around(links, ai, a.rating, al.window, self.config.scan_limit);
        while let Some(c) = scan.next(cands, links) {
            let cand = &cands[c];
            let cl = clock.live(cand, slots, al.mask);
            if compatible(slots, a, &al, cand, &cl) {
                let (a, b) = (
                    Pick {
                        c: ai as u32,
                        live: al,
                    },
                    Pick {
                        c: c as u32,
                        live: cl,
                    },
                );
                self.form_pair(now, st, a, b);
                return;
            }
        }
    }

    /// [`Self::form_match`] for two solo tickets (1v1), without the general bookkeeping: takes
    /// them and notes the pair at the picking ticket's index position; [`Self::write_pairs`]
    /// writes it out after the scan.
    fn form_pair(&self, now: Timestamp, st: &mut QueueState, a: Pick, b: Pick) {
        let cands = st.index().cands();
        let (ca, cb) = (&cands[a.c as usize], &cands[b.c as usize]);
        let region = choose_region(a.live.mask & b.live.mask, st.slots(), || {
            [ca, cb].into_iter()
        });
        let sc = st.scratch_mut();
        sc.mate[a.c as usize] = b.c;
        sc.mate_region[a.c as usize] = region;
        take(st, a.c as usize, now);
        take(st, b.c as usize, now);
    }

    /// Writes the pairs [`Self::run_pairs`] formed, walking the index in order: what only the
    /// outcome needs (ids, players, ratings for the prediction) is in the cold rows, read here
    /// as one sequential stream (a pair's two tickets are next to each other in it) rather than
    /// as two random loads per pair in the order the pairs formed, which cost 1.4 ms of a
    /// 100k tick's 8. The matches are listed by the picking ticket's rating then.
    fn write_pairs(&self, now: Timestamp, st: &mut QueueState, out: &mut TickOutcome) {
        let (_, ix, sc) = st.tick_view();
        let cold = ix.cold();
        let n = sc.mate.len();
        for from in (0..n).step_by(64) {
            // Half the positions pick: a mask per 64 rather than a branch each, which would
            // mispredict.
            let chunk = &sc.mate[from..(from + 64).min(n)];
            let mut anchors =
                (chunk.iter().enumerate()).fold(0u64, |m, (i, &b)| m | u64::from(b != NONE) << i);
            while anchors != 0 {
                let a = from + anchors.trailing_zeros() as usize;
                anchors &= anchors - 1;
                let b = sc.mate[a] as usize;
                let region = sc.mate_region[a];
                sc.mate[a] = NONE;
                let (ka, kb) = (&cold[a], &cold[b]);
                let p0 = (self.rater).pair_win_probability(&ka.predictive(), &kb.predictive());
                let quality = fairness_quality(&[p0, 1.0 - p0]);
                out.push_pair(
                    [ka.id, kb.id],
                    [ka.player, kb.player],
                    [ka.rating, kb.rating],
                    p0,
                    region,
                    quality,
                    now,
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::super::Path;
    use super::*;
    use crate::matchmaking::{
        FormedMatch, Member, PlayerId, QueueConfig, Schedule, Ticket, TicketId, UNREACHABLE_MS,
    };
    use crate::rating::PlayerRating;

    /// The 1v1 fast path forms exactly the matches of the general group search, tick after
    /// tick, on crowded pools where windows, regions, rematches and the scan limit all bite.
    #[test]
    fn pairs_match_the_general_path() {
        for seed in 0..40u64 {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let mut cfg = QueueConfig::new(2, 1);
            cfg.regions = vec!["eu".into(), "na".into(), "asia".into()];
            cfg.latency_budget_ms = 70;
            cfg.latency_widening = Schedule::new(vec![(0, 0.0), (8, 40.0)]);
            cfg.rating_widening = Schedule::new(vec![(0, 15.0), (4, 60.0), (12, 250.0)]);
            cfg.rematch_relax_after_s = Some(10);
            cfg.max_wait_s = Some(30);
            cfg.scan_limit = rng.random_range(2..40);
            let mm = Matchmaker::new(cfg).unwrap();
            let (mut fast, mut general) = (mm.new_state(), mm.new_state());
            let (mut out_fast, mut out_general) = (TickOutcome::default(), TickOutcome::default());
            let mut next = 1u128;
            for tick in 0..25u64 {
                let now = Timestamp::from_secs(1_000 + tick);
                for _ in 0..rng.random_range(0..120) {
                    let player = PlayerId(next);
                    let t = Ticket {
                        id: TicketId(next),
                        members: vec![Member {
                            player,
                            rating: PlayerRating::new(rng.random_range(1300.0..1700.0), 80.0),
                        }],
                        region_latency_ms: (0..3)
                            .map(|_| {
                                if rng.random_bool(0.1) {
                                    UNREACHABLE_MS
                                } else {
                                    rng.random_range(10..140)
                                }
                            })
                            .collect(),
                        created_at: Timestamp::from_millis(
                            now.millis() - rng.random_range(0..1_000),
                        ),
                        recent_opponents: (0..rng.random_range(0..4))
                            .map(|_| PlayerId(rng.random_range(1..=next)))
                            .collect(),
                    };
                    next += 1;
                    fast.add(t.clone()).unwrap();
                    general.add(t).unwrap();
                }
                if rng.random_bool(0.3) {
                    let id = TicketId(rng.random_range(1..next));
                    assert_eq!(fast.cancel(id), general.cancel(id));
                }
                mm.tick_with(now, &mut fast, &mut out_fast, Path::Fastest);
                mm.tick_with(now, &mut general, &mut out_general, Path::General);
                // The same matches; the fast path lists them by rating, not as formed.
                fn by_ticket(out: &TickOutcome) -> Vec<FormedMatch<'_>> {
                    let mut ms: Vec<_> = out.matches().collect();
                    ms.sort_by_key(|m| m.tickets[0]);
                    ms
                }
                assert_eq!(
                    by_ticket(&out_fast),
                    by_ticket(&out_general),
                    "seed {seed}, tick {tick}"
                );
                let fast_rest = (&out_fast.expired, &out_fast.waiting);
                assert_eq!(fast_rest, (&out_general.expired, &out_general.waiting));
            }
            assert!(out_fast.match_count() > 0 || fast.len() < 2);
        }
    }
}
