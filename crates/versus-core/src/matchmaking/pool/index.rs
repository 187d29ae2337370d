//! The rating index: every searching ticket in rating order, laid out for the tick's scan.
//!
//! Owns the index's lists and their layout; [`QueueState::maintain`](super::QueueState::maintain)
//! is the only writer (a tick reads them through the accessors below and never reorders them).
//! No list is ever re-sorted in full: arrivals are sorted among themselves and merged in. The
//! order is rating, then arrival number: a pure function of the tickets, never of a clock, a
//! hash or an allocation.
//!
//! Layout, for a tick over 100k tickets whose cost is memory traffic more than instructions:
//! two parallel lists of 64-byte rows — [`Cand`], everything the scan reads (one cache line a
//! ticket), and [`Cold`], what only a formed match reads — and the players of the indexed
//! parties a third list in the same order, so that what a match writes out lies near its anchor
//! in memory as it does in rating. A ticket's window and regions are not stored: they are
//! functions of its age, computed when read (`tick::clock`), so a tick makes no pass over the
//! index to refresh them.

use crate::matchmaking::ticket::{Member, PlayerId, TicketId};
use crate::rating::PlayerRating;

/// A ticket in the rating index: everything the scan reads, one 64-byte line per ticket, in
/// rating order. What only a formed match reads is in [`Cold`], at the same index. Windows and
/// region masks are functions of age and are computed when read (`tick::clock`), so a tick
/// makes no pass over the index.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(64))]
pub(in crate::matchmaking) struct Cand {
    pub rating: f64,
    pub created: u64,
    /// Latency per region when the queue has at most [`INLINE_REGIONS`] regions.
    pub lat: [u16; INLINE_REGIONS],
    pub self_bits: u64,
    pub recent_bits: u64,
    pub seq: u64,
    pub slot: u32,
    pub size: u8,
    /// With inline latencies: `masks[j]` has bit `r` set when region `r` is within the queue's
    /// `j`-th latency budget (`Limits::budgets`): a ticket's regions at its wait, looked up
    /// rather than compared region by region each time it is read. Three budgets fit in the
    /// row's spare bytes; a first version with eight moved the arrival number out of the row
    /// and was 5% slower in wall time with 6% fewer instructions.
    pub masks: [u8; MASKED_BUDGETS],
}

/// Latency budgets with a precomputed region mask per ticket ([`Cand::masks`]); a schedule
/// with more distinct budgets has the later ones compared region by region.
pub(in crate::matchmaking) const MASKED_BUDGETS: usize = 3;

const _: () = assert!(std::mem::size_of::<Cand>() == 64);

/// What a formed match reads of an indexed ticket (`cold[i]` goes with `cands[i]`).
#[derive(Clone, Copy, Debug)]
#[repr(C, align(64))]
pub(in crate::matchmaking) struct Cold {
    pub id: TicketId,
    /// A solo ticket's player; a party's are `party_members[party..][..size]`.
    pub player: PlayerId,
    /// A solo ticket's rating and deviation: what a prediction reads (no rating system's
    /// expected outcome depends on Glicko-2's volatility, which made room for `party`).
    pub rating: f64,
    pub deviation: f64,
    pub rating_sum: f64,
    /// Where the members of the parties from this index position on start in
    /// `party_members`: a party's own members, and for a solo ticket the next party's
    /// ([`NO_PARTY`] until `maintain` indexes the ticket). A tick's read-ahead finds the
    /// parties near an anchor through it.
    pub party: u32,
}

pub(super) const NO_PARTY: u32 = u32::MAX;

impl Cold {
    /// A solo ticket's rating as a prediction reads it.
    pub fn predictive(&self) -> PlayerRating {
        PlayerRating {
            rating: self.rating,
            deviation: self.deviation,
            volatility: 0.0,
        }
    }
}

const _: () = assert!(std::mem::size_of::<Cold>() == 64);

pub(in crate::matchmaking) const INLINE_REGIONS: usize = 8;

/// Whether an inline latency is within `budget` ms. u16::MAX stands for "65535 ms or more /
/// unreachable" and fills the lanes past the queue's regions: a budget capped below it
/// excludes those without a test of their own.
#[inline(always)]
pub(in crate::matchmaking) fn inline_within(ms: u16, budget: u64) -> bool {
    u64::from(ms) <= budget.min(u64::from(u16::MAX) - 1)
}

/// The index and the lists kept in its order. Persistent: it survives every tick and changes
/// only in `maintain` (a tick marks the tickets it matches; it does not remove them here).
#[derive(Clone, Debug, Default)]
pub(in crate::matchmaking) struct RatingIndex {
    /// Sorted by rating, then arrival.
    pub(super) cands: Vec<Cand>,
    pub(super) cold: Vec<Cold>,
    /// The members of the indexed parties, party by party in index order, rewritten by
    /// `maintain` whenever the index changes. A party's members used to live in its slab entry
    /// behind a pointer, so writing a 5v5 match paid two dependent cache misses per party (a
    /// third of the tick); a match's parties sit near its anchor in rating, so their players are
    /// now a short stretch of this list.
    pub(super) party_members: Vec<Member>,
    /// Index position of each slot's ticket, and of each ticket in age order (the tick's
    /// picking order, without a lookup per anchor); rebuilt by `maintain` when either changes.
    pub(super) pos: Vec<u32>,
    pub(super) age_pos: Vec<u32>,
    /// The index changed since `party_members` was written.
    pub(super) party_stale: bool,
}

/// Reading, for the tick.
impl RatingIndex {
    #[inline]
    pub(in crate::matchmaking) fn len(&self) -> usize {
        self.cands.len()
    }
    #[inline]
    pub(in crate::matchmaking) fn cands(&self) -> &[Cand] {
        &self.cands
    }
    #[inline]
    pub(in crate::matchmaking) fn cold(&self) -> &[Cold] {
        &self.cold
    }
    #[inline]
    pub(in crate::matchmaking) fn party_members(&self) -> &[Member] {
        &self.party_members
    }
    /// The index position of each searching ticket, oldest first (as `QueueState::ages`).
    #[inline]
    pub(in crate::matchmaking) fn age_positions(&self) -> &[u32] {
        &self.age_pos
    }
}

impl RatingIndex {
    /// Drops the rows whose slot is not `live`, keeping the order.
    pub(super) fn retain_live(&mut self, live: &[bool]) {
        let mut w = 0;
        for i in 0..self.cands.len() {
            if live[self.cands[i].slot as usize] {
                self.cands[w] = self.cands[i];
                self.cold[w] = self.cold[i];
                w += 1;
            }
        }
        self.cands.truncate(w);
        self.cold.truncate(w);
    }

    /// Merges rows sorted by (rating, arrival) into the index: [`merge_sorted`] over the two
    /// lists kept in step.
    pub(super) fn merge(&mut self, add: &[(Cand, Cold)]) {
        let (cands, cold) = (&mut self.cands, &mut self.cold);
        let le = |a: &Cand, b: &Cand| {
            a.rating
                .total_cmp(&b.rating)
                .then(a.seq.cmp(&b.seq))
                .is_le()
        };
        let old = cands.len();
        cands.extend(add.iter().map(|a| a.0));
        cold.extend(add.iter().map(|a| a.1));
        let (mut i, mut j, mut k) = (old, add.len(), cands.len());
        while j > 0 {
            if i > 0 && !le(&cands[i - 1], &add[j - 1].0) {
                cands[k - 1] = cands[i - 1];
                cold[k - 1] = cold[i - 1];
                i -= 1;
            } else {
                (cands[k - 1], cold[k - 1]) = add[j - 1];
                j -= 1;
            }
            k -= 1;
        }
    }

    /// Bytes its lists hold on the heap.
    pub(super) fn heap_bytes(&self) -> usize {
        use std::mem::size_of;
        self.cands.capacity() * size_of::<Cand>()
            + self.cold.capacity() * size_of::<Cold>()
            + (self.pos.capacity() + self.age_pos.capacity()) * 4
            + self.party_members.capacity() * size_of::<Member>()
    }
}

/// Merges sorted `add` into sorted `base` (stable: `base` first on ties), in place from the back.
pub(super) fn merge_sorted<T: Copy>(base: &mut Vec<T>, add: &[T], le: impl Fn(&T, &T) -> bool) {
    if add.is_empty() {
        return;
    }
    let old = base.len();
    base.extend_from_slice(add);
    let (mut i, mut j, mut k) = (old, add.len(), base.len());
    while j > 0 {
        if i > 0 && !le(&base[i - 1], &add[j - 1]) {
            base[k - 1] = base[i - 1];
            i -= 1;
        } else {
            base[k - 1] = add[j - 1];
            j -= 1;
        }
        k -= 1;
    }
}
