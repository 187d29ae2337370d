//! How a tick walks the pool: anchors oldest first, each reading the rating index outward from
//! its own rating.
//!
//! Owns the order of the walk and the read-ahead that hides its cache misses; what an anchor
//! does with the tickets it reads is the caller's (`pairs`, `group`, `backfill`). It reads the
//! index and this tick's links and writes neither; the read-ahead's loads never change what is
//! decided (their result is thrown away), only when the memory arrives.
//!
//! Anchors come in age order, which is a random walk over the rating index (6.4 MB at 100k
//! tickets): about a quarter of a big 1v1 tick's scan is waiting on anchors' index rows. The
//! read-ahead loads the next batch's rows together so those misses overlap, and a batch's
//! anchors already taken are skipped by a mask rather than a branch each.

use super::links::Links;
use crate::matchmaking::NONE;
use crate::matchmaking::pool::{Cand, QueueState, RatingIndex};

/// Anchors whose index entries are loaded together (see [`touch_ahead`]).
const TOUCH_BATCH: usize = 32;

/// Anchors come in age order, scattered over the rating index, so each one's index entry is a
/// cache miss. Reading the entries of the next batch of anchors together lets the CPU fetch them
/// in parallel (the loads are independent): one memory latency per batch instead of per anchor.
/// (Prefetch instructions, tried through one `unsafe` call, did no better: BENCHMARKS.md.)
/// `COLD`: whether the scan reads the tickets' `Cold` rows too (the 1v1 scan does not).
// Inlined into the scan, as it was while the tick was one file: out of line it made the
// 1v1 tick 2 M instructions dearer (BENCHMARKS.md, instruction counts).
#[inline]
fn touch_ahead<const COLD: bool>(ix: &RatingIndex, links: &Links, from: usize, reach: usize) {
    let (cands, cold, party) = (ix.cands(), ix.cold(), ix.party_members());
    let age_pos = ix.age_positions();
    let end = (from + TOUCH_BATCH).min(age_pos.len());
    let Some(ahead) = age_pos.get(from..end) else {
        return;
    };
    let n = cands.len();
    let (mut acc, mut near) = (0u64, 0u64);
    let mut touch = |c: usize| {
        acc ^= cands[c].created;
        if COLD {
            acc ^= cold[c].rating_sum.to_bits();
        }
    };
    // Taken already (most anchors of a big match's tick): nothing to fetch.
    let mut live = live_mask(links, ahead);
    while live != 0 {
        let p = ahead[live.trailing_zeros() as usize] as usize;
        live &= live - 1;
        // The anchor and its nearest live neighbours on each side, through the links: once
        // half the pool is matched they are rarely next door.
        touch(p);
        if COLD && let Some(last) = party.len().checked_sub(1) {
            // The parties near the anchor in rating, whose players a match here would write.
            let at = (cold[p].party as usize).min(last);
            near ^= party[at.saturating_sub(2)].player.0 as u64;
            near ^= party[at].player.0 as u64;
            near ^= party[(at + 2).min(last)].player.0 as u64;
        }
        let (mut l, mut r) = (links.prev[p], links.next[p]);
        for _ in 0..reach {
            if l != NONE {
                touch(l as usize);
                l = links.prev[l as usize];
            }
            if (r as usize) < n {
                touch(r as usize);
                r = links.next[r as usize];
            }
        }
    }
    std::hint::black_box((acc, near));
}

/// Calls `visit` with each anchor still in the scan at its turn, oldest first, having loaded
/// the next batch's index entries ahead ([`touch_ahead`], with `COLD` and `reach`). Most anchors
/// were taken as someone's partner before their turn (half in 1v1, five in six in 5v5): they
/// are skipped by a mask of each batch's live ones rather than by a branch per anchor, which
/// mispredicts; one taken by an earlier anchor of the same batch is caught before its visit.
#[inline(always)]
pub(super) fn for_each_live_anchor<const COLD: bool>(
    st: &mut QueueState,
    reach: usize,
    mut visit: impl FnMut(&mut QueueState, usize),
) {
    let n = st.index().age_positions().len();
    for batch in (0..n).step_by(TOUCH_BATCH) {
        let (ix, links) = (st.index(), &st.scratch().links);
        touch_ahead::<COLD>(ix, links, batch + TOUCH_BATCH, reach);
        let positions = &ix.age_positions()[batch..(batch + TOUCH_BATCH).min(n)];
        let mut live = live_mask(links, positions);
        while live != 0 {
            let k = batch + live.trailing_zeros() as usize;
            live &= live - 1;
            let ai = st.index().age_positions()[k] as usize;
            if st.scratch().links.is_live(ai) {
                visit(st, ai);
            }
        }
    }
}

/// Bit `i` set when index position `positions[i]` is still in the scan: how a batch of anchors
/// skips the taken ones without a branch per anchor, which would mispredict.
fn live_mask(links: &Links, positions: &[u32]) -> u64 {
    (positions.iter().enumerate()).fold(0u64, |m, (i, &p)| {
        m | u64::from(links.is_live(p as usize)) << i
    })
}

const _: () = assert!(TOUCH_BATCH <= 64, "a batch's live anchors are a u64 mask");

/// The rating index read outward from a rating, nearest first, skipping tickets taken this
/// tick, until the next one is beyond `window` or `limit` have been read.
pub(super) struct Outward {
    /// Next candidate below (`NONE`: none) and above (`n`: none).
    l: u32,
    r: u32,
    center: f64,
    window: f64,
    left: usize,
}

impl Outward {
    /// Around live position `at` (not included).
    #[inline]
    pub(super) fn around(links: &Links, at: usize, center: f64, window: f64, limit: usize) -> Self {
        Self {
            l: links.prev[at],
            r: links.next[at],
            center,
            window,
            left: limit,
        }
    }

    /// Around a position that may be taken: `at` itself is the first candidate above.
    pub(super) fn from(links: &Links, at: usize, center: f64, window: f64, limit: usize) -> Self {
        Self {
            l: links.live_before(at),
            r: links.live_at_or_after(at),
            center,
            window,
            left: limit,
        }
    }

    #[inline]
    pub(super) fn next(&mut self, cands: &[Cand], links: &Links) -> Option<usize> {
        if self.left == 0 {
            return None;
        }
        let dl = if self.l != NONE {
            self.center - cands[self.l as usize].rating
        } else {
            f64::INFINITY
        };
        let dr = if (self.r as usize) < cands.len() {
            cands[self.r as usize].rating - self.center
        } else {
            f64::INFINITY
        };
        let c = if dl <= dr {
            if dl > self.window {
                return None;
            }
            let c = self.l as usize;
            self.l = links.prev[c];
            c
        } else {
            if dr > self.window {
                return None;
            }
            let c = self.r as usize;
            self.r = links.next[c];
            c
        };
        self.left -= 1;
        Some(c)
    }
}
