//! The live index positions of one tick, as a doubly linked list.
//!
//! Owns `next` and `prev`, one entry per index position. A ticket taken into a match leaves the
//! list at once, so an anchor's nearest live neighbours are two loads away however many
//! tickets around it the tick has matched (half the pool, in a big 1v1 tick), and a batch of
//! anchors can tell the taken ones by a flag. `QueueState::maintain` makes the list ready
//! between ticks (writing 2 × n links is not the tick's latency to pay); a tick consumes it.
//! Positions only ever leave within a tick: nothing here is read across ticks, and the list
//! never decides anything — it only says which positions the tick has not taken yet.

use crate::matchmaking::NONE;

/// Marks a position's `next` link once it has left this tick's scan.
const DEAD: u32 = 1 << 31;

#[derive(Clone, Debug, Default)]
pub(super) struct Links {
    /// Nearest live position to the right (`n`: none), flagged [`DEAD`] once a position left.
    pub(super) next: Vec<u32>,
    /// Nearest live position to the left ([`NONE`]: none).
    pub(super) prev: Vec<u32>,
    /// Every one of the index's `n` positions is linked, untouched by a tick yet.
    ready: bool,
}

impl Links {
    /// Links all `n` positions, unless they are already.
    pub(super) fn make_ready(&mut self, n: usize) {
        if !self.ready {
            self.next.clear();
            self.next.extend(1..=n as u32);
            self.prev.clear();
            self.prev.extend((0..n as u32).map(|i| i.wrapping_sub(1)));
            self.ready = true;
        }
    }

    /// The links no longer describe the index: a tick is consuming them, or the index changed.
    pub(super) fn forget(&mut self) {
        self.ready = false;
    }

    /// Removes live index position `c` from this tick's scan. `next[c]` keeps the nearest live
    /// position to its right then (flagged [`DEAD`]) and `prev[c]` the nearest to its left, so a
    /// walk that starts on a removed position still reaches the nearest live one: positions
    /// removed never come back within a tick.
    #[inline]
    pub(super) fn unlink(&mut self, c: usize) {
        let (p, q) = (self.prev[c], self.next[c]);
        if p != NONE {
            self.next[p as usize] = q;
        }
        if let Some(back) = self.prev.get_mut(q as usize) {
            *back = p;
        }
        self.next[c] = q | DEAD;
    }

    #[inline]
    pub(super) fn is_live(&self, c: usize) -> bool {
        self.next[c] & DEAD == 0
    }

    /// Nearest live position ≥ `i` (`n` if none).
    #[inline]
    pub(super) fn live_at_or_after(&self, i: usize) -> u32 {
        let mut c = i as u32;
        while let Some(&q) = self.next.get(c as usize) {
            if q & DEAD == 0 {
                break;
            }
            c = q & !DEAD;
        }
        c
    }

    /// Nearest live position < `i` (`NONE` if none).
    #[inline]
    pub(super) fn live_before(&self, i: usize) -> u32 {
        let mut c = (i as u32).wrapping_sub(1);
        while c != NONE && !self.is_live(c as usize) {
            c = self.prev[c as usize];
        }
        c
    }
}
