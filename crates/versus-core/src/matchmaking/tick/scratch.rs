//! The tick's working memory: lists a tick fills and empties, kept in the pool between ticks
//! only so that a tick allocates almost nothing.
//!
//! Owns nothing that outlives a tick's meaning: whatever is here is rewritten by the next tick
//! (or made ready for it by `QueueState::maintain`, through [`TickScratch::prepare`]). The pool's
//! persistent state — the rating index, the party list — is not here but in `pool`; no outcome
//! may depend on what a list held before the tick that fills it.

use super::clock::Pick;
use super::links::Links;
use crate::matchmaking::NONE;
use crate::matchmaking::teams;
use crate::matchmaking::ticket::RegionId;
use crate::rating::PlayerRating;

#[derive(Clone, Debug, Default)]
pub(in crate::matchmaking) struct TickScratch {
    /// This tick's live index positions (see [`Links`]).
    pub(super) links: Links,
    /// The group search: candidates found so far, the group being built, and each pool
    /// member's suffix count of players (a branch that cannot reach the need stops).
    pub(super) pool: Vec<Pick>,
    pub(super) chosen: Vec<Pick>,
    pub(super) suffix: Vec<usize>,
    /// The group being written: each ticket with its team.
    pub(super) placed: Vec<(Pick, usize)>,
    /// The 1v1 scan's matches, written out after it: at the picking ticket's index position,
    /// the other's position ([`NONE`] at every other position, and between ticks) and the
    /// region.
    pub(super) mate: Vec<u32>,
    pub(super) mate_region: Vec<RegionId>,
    /// Team formation of the group found.
    pub(super) pieces: Vec<teams::Piece>,
    pub(super) assign: Vec<usize>,
    pub(super) teams: teams::Scratch,
    /// The players' ratings of the match being written, team after team.
    pub(super) ratings: Vec<PlayerRating>,
    /// Index positions (one bit each) in a group that fell below the quality floor this tick:
    /// they do not anchor a search of their own until the next tick (see `group::select`).
    pub(super) passed: Vec<u64>,
}

impl TickScratch {
    /// Makes the tick's working lists ready for an index of `n` positions: fresh links, and a
    /// pair slot per position when `pairs` (a queue of two players a match). Done by
    /// `QueueState::maintain`, which a server runs between ticks, so that a tick neither
    /// writes 2 × n links nor grows (and page-faults in) its lists on its own latency path.
    pub(in crate::matchmaking) fn prepare(&mut self, n: usize, pairs: bool) {
        self.links.make_ready(n);
        if pairs {
            self.mate.resize(n, NONE);
            self.mate_region.resize(n, RegionId(0));
        }
    }

    /// The index's positions changed: the links must be made anew.
    pub(in crate::matchmaking) fn forget_links(&mut self) {
        self.links.forget();
    }

    /// Bytes held on the heap, as `QueueState::memory_bytes` counts them: the lists that grow
    /// with the pool or a tick's groups (team formation's and the ratings', a match's worth,
    /// are left out).
    pub(in crate::matchmaking) fn heap_bytes(&self) -> usize {
        use std::mem::size_of;
        (self.links.next.capacity() + self.links.prev.capacity()) * 4
            + (self.pool.capacity() + self.chosen.capacity()) * size_of::<Pick>()
            + self.placed.capacity() * size_of::<(Pick, usize)>()
            + self.mate.capacity() * 4
            + self.mate_region.capacity() * size_of::<RegionId>()
            + self.passed.capacity() * 8
    }
}
