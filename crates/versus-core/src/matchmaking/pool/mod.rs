//! The searching pool of one queue: tickets and backfill requests, indexed by age and by
//! rating. Tickets are added and cancelled between ticks; the tick consumes them.
//!
//! Owns every ticket a queue holds and the structures that find them: the slab, the lookup maps,
//! the age list, the rating index ([`index`]), the rematch filters ([`rematch`]) and the wait
//! estimates ([`waits`]). Settling the pool between ticks is [`maintain`]. It never reads a
//! clock (a ticket's age is its `created_at` against the tick's `now`), does no IO, and draws
//! no randomness: its maps hash with a fixed hasher ([`hash`]) and nothing that shapes an
//! outcome iterates over them.
//!
//! Layout: tickets live in a slab (`slots`, with a dense `live` bitmap). Two lists are kept
//! sorted across ticks: by age (`ages`, oldest first: the order in which tickets pick) and by
//! rating (the [`RatingIndex`], whose rows carry everything a compatibility check reads and,
//! beside them in the same order, what a formed match reads), so a tick reads the slab only for
//! the rare exact rematch check and for the latencies of a queue with more than eight regions.
//! New tickets are merged into both lists by [`QueueState::maintain`] (O(n + k log k)); no list
//! is ever re-sorted in full and nothing is ever scanned per ticket.
//!
//! A tick only marks the tickets it matches (`live` goes false); dropping them from the slab, the
//! lookup maps and the two lists is deferred to `maintain`, which the next tick runs first and a
//! server runs right after publishing a tick's matches. The tick's latency is then the time to
//! find matches, not to free memory. Until then a matched ticket's stale map entries are ignored
//! by every lookup (`contains`, `cancel`, `is_searching` check `live`), so a matched ticket is
//! gone at once.

mod hash;
mod index;
mod maintain;
mod rematch;
mod waits;

pub(in crate::matchmaking) use hash::IdMap;
pub(in crate::matchmaking) use index::{
    Cand, Cold, INLINE_REGIONS, MASKED_BUDGETS, RatingIndex, inline_within,
};
pub(in crate::matchmaking) use rematch::{may_have_met, members_bits};

use super::Ticket;
use super::config::{PartyAggregation, QueueConfig};
use super::tick::TickScratch;
use super::ticket::{
    BackfillRequest, CancelOutcome, Member, PlayerId, TicketError, TicketId, Timestamp,
};
use index::NO_PARTY;
use rematch::{player_bits, self_bits};
use waits::WaitStats;

/// A ticket's players: a solo ticket (the common case) needs no heap allocation.
#[derive(Clone, Debug)]
pub(in crate::matchmaking) enum Members {
    Solo(Member),
    Party(Box<[Member]>),
}

impl std::ops::Deref for Members {
    type Target = [Member];
    fn deref(&self) -> &[Member] {
        match self {
            Self::Solo(m) => std::slice::from_ref(m),
            Self::Party(ms) => ms,
        }
    }
}

/// A searching ticket, as stored.
#[derive(Clone, Debug)]
pub(in crate::matchmaking) struct Entry {
    pub id: TicketId,
    pub created: Timestamp,
    pub seq: u64,
    /// Aggregated (party) rating the windows apply to.
    pub rating: f64,
    /// Sum of member ratings (team balance works on sums).
    pub rating_sum: f64,
    pub members: Members,
    pub latency: Box<[u32]>,
    pub recent: Box<[PlayerId]>,
    pub self_bits: u64,
    pub recent_bits: u64,
}

#[derive(Clone, Debug)]
pub(in crate::matchmaking) struct BackfillEntry {
    pub req: BackfillRequest,
    pub seq: u64,
    pub target: f64,
    pub existing_bits: u64,
}

/// A ticket in the age list (oldest first): what the waiting report needs, contiguous.
#[derive(Clone, Copy, Debug)]
pub(in crate::matchmaking) struct Aged {
    pub created: u64,
    pub seq: u64,
    pub id: TicketId,
    pub rating: f64,
    pub slot: u32,
}

/// Queue-shape facts the pool needs to validate tickets without the whole config.
#[derive(Clone, Debug)]
struct Limits {
    pub regions: usize,
    pub max_party: usize,
    pub teams: usize,
    pub team_size: usize,
    pub backfill: bool,
    pub aggregation: PartyAggregation,
    /// The queue's distinct latency budgets, in widening order (see [`Cand::masks`]).
    pub budgets: Vec<u64>,
}

/// The pool of one queue shard. Create it with [`Matchmaker::new_state`](super::Matchmaker::new_state).
#[derive(Clone, Debug)]
pub struct QueueState {
    limits: Limits,
    slots: Vec<Option<Entry>>,
    free: Vec<u32>,
    freed_pending: Vec<u32>,
    by_id: IdMap<TicketId, u32>,
    searching: IdMap<PlayerId, u32>,
    /// Whether a slot holds a searching ticket (false once matched, even before `maintain`).
    live: Vec<bool>,
    live_count: usize,
    /// Tickets held (searching, or matched and not yet released) by party size: what a tick
    /// checks to skip anchors no packing could ever use.
    party_counts: Vec<u32>,
    /// Searching tickets by (created, seq); compacted by `maintain`.
    ages: Vec<Aged>,
    /// Tickets added since the last tick, not yet merged into `ages` and the rating index.
    arrivals: Vec<(Cand, Cold)>,
    /// Slots matched by a tick and not yet released (their entries are still in the maps).
    matched: Vec<u32>,
    /// Some ticket left (matched, cancelled, expired) since the last `maintain`.
    dirty: bool,
    /// The index's positions (`pos`, `age_pos`) no longer match its rows and `ages`.
    pos_stale: bool,
    backfills: Vec<BackfillEntry>,
    next_seq: u64,
    waits: WaitStats,
    /// The rating index and the lists kept in its order: persistent, rebuilt by `maintain`.
    index: RatingIndex,
    /// The tick's working lists, held here so that they outlive a tick (a tick then allocates
    /// almost nothing); `maintain` makes them ready for the next one.
    scratch: TickScratch,
}

impl QueueState {
    pub(super) fn new(config: &QueueConfig) -> Self {
        Self {
            limits: Limits {
                regions: config.regions.len(),
                max_party: config.max_party_size,
                teams: config.teams,
                team_size: config.team_size,
                backfill: config.backfill,
                aggregation: config.party_aggregation,
                budgets: config.latency_budgets(),
            },
            slots: Vec::new(),
            free: Vec::new(),
            freed_pending: Vec::new(),
            by_id: IdMap::default(),
            searching: IdMap::default(),
            live: Vec::new(),
            live_count: 0,
            party_counts: vec![0; config.team_size + 1],
            ages: Vec::new(),
            arrivals: Vec::new(),
            matched: Vec::new(),
            dirty: false,
            pos_stale: false,
            backfills: Vec::new(),
            next_seq: 0,
            waits: WaitStats::new(config.rating_widening.steps()[0].value),
            index: RatingIndex::default(),
            scratch: TickScratch::default(),
        }
    }

    /// Puts a ticket in the queue. It is considered from the next tick on.
    pub fn add(&mut self, ticket: Ticket) -> Result<(), TicketError> {
        let l = &self.limits;
        let n = ticket.members.len();
        if n == 0 || n > l.max_party {
            return Err(TicketError::PartySize {
                got: n,
                max: l.max_party,
            });
        }
        if ticket.region_latency_ms.len() != l.regions {
            return Err(TicketError::RegionCount {
                got: ticket.region_latency_ms.len(),
                expected: l.regions,
            });
        }
        if self.contains(ticket.id) || self.backfills.iter().any(|b| b.req.id == ticket.id) {
            return Err(TicketError::DuplicateTicket);
        }
        for (i, m) in ticket.members.iter().enumerate() {
            if !(m.rating.rating.is_finite() && m.rating.deviation.is_finite()) {
                return Err(TicketError::NonFiniteRating);
            }
            if ticket.members[..i].iter().any(|o| o.player == m.player) {
                return Err(TicketError::DuplicateMember);
            }
            if self.is_searching(m.player) {
                return Err(TicketError::PlayerAlreadySearching(m.player));
            }
        }
        let id = ticket.id;
        let mut lat = [u16::MAX; INLINE_REGIONS];
        for (l, &ms) in lat.iter_mut().zip(ticket.region_latency_ms.iter()) {
            *l = ms.min(u32::from(u16::MAX)) as u16;
        }
        let mut masks = [0u8; MASKED_BUDGETS];
        if l.regions <= INLINE_REGIONS {
            for (mask, &budget) in masks.iter_mut().zip(&l.budgets) {
                for (r, &ms) in lat.iter().enumerate() {
                    *mask |= u8::from(inline_within(ms, budget)) << r;
                }
            }
        }
        let rating = l
            .aggregation
            .aggregate(ticket.members.iter().map(|m| m.rating.rating));
        let rating_sum = ticket.members.iter().map(|m| m.rating.rating).sum();
        let self_bits = self_bits(&ticket.members);
        let recent_bits = ticket
            .recent_opponents
            .iter()
            .fold(0, |b, &p| b | player_bits(p));
        let entry = Entry {
            id: ticket.id,
            created: ticket.created_at,
            seq: self.next_seq,
            rating,
            rating_sum,
            members: if n == 1 {
                Members::Solo(ticket.members[0])
            } else {
                Members::Party(ticket.members.into_boxed_slice())
            },
            // Kept inline in the rating index when the queue has few regions.
            latency: if l.regions <= INLINE_REGIONS {
                Box::default()
            } else {
                ticket.region_latency_ms.into_boxed_slice()
            },
            recent: ticket.recent_opponents.into_boxed_slice(),
            self_bits,
            recent_bits,
        };
        self.next_seq += 1;
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.slots.push(None);
                self.live.push(false);
                (self.slots.len() - 1) as u32
            }
        };
        let first = entry.members[0];
        self.arrivals.push((
            Cand {
                rating: entry.rating,
                self_bits: entry.self_bits,
                recent_bits: entry.recent_bits,
                created: entry.created.millis(),
                seq: entry.seq,
                lat,
                slot,
                size: entry.members.len() as u8,
                masks,
            },
            Cold {
                id: entry.id,
                player: first.player,
                rating: first.rating.rating,
                deviation: first.rating.deviation,
                rating_sum: entry.rating_sum,
                party: NO_PARTY,
            },
        ));
        self.slots[slot as usize] = Some(entry);
        self.live[slot as usize] = true;
        self.live_count += 1;
        self.party_counts[n] += 1;
        self.by_id.insert(id, slot);
        if let Some(e) = &self.slots[slot as usize] {
            for m in e.members.iter() {
                self.searching.insert(m.player, slot);
            }
        }
        Ok(())
    }

    /// Removes a searching ticket. Exactly one answer: it was searching and is now cancelled
    /// (it will be in no match), or it was not searching (matched, expired or unknown).
    pub fn cancel(&mut self, id: TicketId) -> CancelOutcome {
        if let Some(&slot) = self.by_id.get(&id)
            && self.live[slot as usize]
        {
            self.release(slot);
            return CancelOutcome::Cancelled;
        }
        if let Some(i) = self.backfills.iter().position(|b| b.req.id == id) {
            self.backfills.remove(i);
            return CancelOutcome::Cancelled;
        }
        CancelOutcome::NotSearching
    }

    /// Asks for the open slots of a running match to be filled; served before new matches.
    pub fn add_backfill(&mut self, req: BackfillRequest) -> Result<(), TicketError> {
        let l = &self.limits;
        if !l.backfill {
            return Err(TicketError::BackfillDisabled);
        }
        if req.teams.len() != l.teams || req.open_slots.len() != l.teams {
            return Err(TicketError::BackfillShape { expected: l.teams });
        }
        let open: usize = req.open_slots.iter().sum();
        let existing: usize = req.teams.iter().map(Vec::len).sum();
        if open == 0
            || existing == 0
            || req
                .teams
                .iter()
                .zip(&req.open_slots)
                .any(|(t, &o)| t.len() + o != l.team_size)
        {
            return Err(TicketError::BackfillSlots);
        }
        if usize::from(req.region.0) >= l.regions {
            return Err(TicketError::BackfillRegion(req.region));
        }
        if self.contains(req.id) || self.backfills.iter().any(|b| b.req.id == req.id) {
            return Err(TicketError::DuplicateTicket);
        }
        let members = req.teams.iter().flatten();
        if members.clone().any(|m| !m.rating.rating.is_finite()) {
            return Err(TicketError::NonFiniteRating);
        }
        let target = members.clone().map(|m| m.rating.rating).sum::<f64>() / existing as f64;
        let existing_bits = members.fold(0, |b, m| b | player_bits(m.player));
        let entry = BackfillEntry {
            req,
            seq: self.next_seq,
            target,
            existing_bits,
        };
        self.next_seq += 1;
        let key = (entry.req.created_at, entry.seq);
        let at = self
            .backfills
            .partition_point(|b| (b.req.created_at, b.seq) <= key);
        self.backfills.insert(at, entry);
        Ok(())
    }

    /// Tickets searching (not counting backfill requests).
    pub fn len(&self) -> usize {
        self.live_count
    }
    pub fn is_empty(&self) -> bool {
        self.live_count == 0
    }
    pub fn backfill_len(&self) -> usize {
        self.backfills.len()
    }
    pub fn contains(&self, id: TicketId) -> bool {
        self.by_id.get(&id).is_some_and(|&s| self.live[s as usize])
    }
    /// Whether `player` is on a searching ticket.
    pub fn is_searching(&self, player: PlayerId) -> bool {
        self.searching
            .get(&player)
            .is_some_and(|&s| self.live[s as usize])
    }

    /// Bytes this state holds on the heap and inline, computed from `size_of` and the capacity
    /// of every container (hash maps counted at capacity × (entry + 1 control byte)). Allocator
    /// rounding is not included; see BENCHMARKS.md for an RSS cross-check.
    pub fn memory_bytes(&self) -> usize {
        use std::mem::size_of;
        fn map_bytes<K, V>(cap: usize) -> usize {
            // hashbrown: buckets = next_pow2(cap · 8/7); each bucket (K, V) + 1 control byte.
            let buckets = if cap == 0 {
                0
            } else {
                (cap * 8 / 7).next_power_of_two()
            };
            buckets * (size_of::<(K, V)>() + 1)
        }
        let mut b = size_of::<Self>();
        b += self.slots.capacity() * size_of::<Option<Entry>>();
        for e in self.slots.iter().flatten() {
            let party = if e.members.len() > 1 {
                e.members.len()
            } else {
                0
            };
            b += party * size_of::<Member>()
                + e.latency.len() * size_of::<u32>()
                + e.recent.len() * size_of::<PlayerId>();
        }
        b += (self.free.capacity() + self.freed_pending.capacity() + self.matched.capacity()) * 4;
        b += map_bytes::<TicketId, u32>(self.by_id.capacity());
        b += map_bytes::<PlayerId, u32>(self.searching.capacity());
        b += self.live.capacity() + self.party_counts.capacity() * 4;
        b += self.ages.capacity() * size_of::<Aged>();
        b += self.arrivals.capacity() * size_of::<(Cand, Cold)>();
        b += self.backfills.capacity() * size_of::<BackfillEntry>();
        b += self.waits.heap_bytes();
        b += self.index.heap_bytes() + self.scratch.heap_bytes();
        b
    }
}

/// The pool as a tick works on it: read access to the slab, the index and the age list, the
/// tick's own working lists, and the few ways a tick changes the pool (a ticket expired or
/// matched, a backfill request filled or expired, the waits it recorded).
impl QueueState {
    /// Removes a searching ticket now (cancelled or expired); its place in the sorted lists
    /// and its slot are reclaimed by the next `maintain`.
    pub(in crate::matchmaking) fn release(&mut self, slot: u32) {
        let entry = self.slots[slot as usize]
            .take()
            .expect("a live slot holds its ticket");
        self.party_counts[entry.members.len()] -= 1;
        self.live[slot as usize] = false;
        self.live_count -= 1;
        self.by_id.remove(&entry.id);
        for m in entry.members.iter() {
            self.searching.remove(&m.player);
        }
        self.freed_pending.push(slot);
        self.dirty = true;
    }

    /// Marks a live slot's ticket matched by this tick (released by the next `maintain`); the
    /// `waited_ms` it took feeds the estimates once the tick settles them.
    #[inline]
    pub(in crate::matchmaking) fn mark_matched(&mut self, slot: u32, rating: f64, waited_ms: u64) {
        self.waits.record(rating, waited_ms);
        self.live[slot as usize] = false;
        self.live_count -= 1;
        self.matched.push(slot);
        self.dirty = true;
    }

    /// The pool as a tick works on it: the slab and the index to read, the tick's own working
    /// lists to write, borrowed at once.
    #[inline]
    pub(in crate::matchmaking) fn tick_view(
        &mut self,
    ) -> (&[Option<Entry>], &RatingIndex, &mut TickScratch) {
        (&self.slots, &self.index, &mut self.scratch)
    }
    #[inline]
    pub(in crate::matchmaking) fn slots(&self) -> &[Option<Entry>] {
        &self.slots
    }
    #[inline]
    pub(in crate::matchmaking) fn index(&self) -> &RatingIndex {
        &self.index
    }
    #[inline]
    pub(in crate::matchmaking) fn scratch(&self) -> &TickScratch {
        &self.scratch
    }
    #[inline]
    pub(in crate::matchmaking) fn scratch_mut(&mut self) -> &mut TickScratch {
        &mut self.scratch
    }
    /// Searching tickets, oldest first (matched ones stay until `maintain`: the tick's links
    /// say which are still in it).
    #[inline]
    pub(in crate::matchmaking) fn ages(&self) -> &[Aged] {
        &self.ages
    }
    /// Tickets held by party size (see the field).
    #[inline]
    pub(in crate::matchmaking) fn party_counts(&self) -> &[u32] {
        &self.party_counts
    }
    /// Backfill requests, oldest first.
    #[inline]
    pub(in crate::matchmaking) fn backfills(&self) -> &[BackfillEntry] {
        &self.backfills
    }
    pub(in crate::matchmaking) fn remove_backfill(&mut self, i: usize) -> BackfillEntry {
        self.backfills.remove(i)
    }
    pub(in crate::matchmaking) fn retain_backfills(
        &mut self,
        keep: impl FnMut(&BackfillEntry) -> bool,
    ) {
        self.backfills.retain(keep);
    }
    /// Folds the waits this tick recorded into the estimates.
    pub(in crate::matchmaking) fn settle_waits(&mut self) {
        self.waits.settle();
    }
    /// Expected remaining wait of a ticket at `rating` that has waited `waited_ms`.
    #[inline]
    pub(in crate::matchmaking) fn estimated_wait(&self, rating: f64, waited_ms: u64) -> u64 {
        self.waits.estimate(rating, waited_ms)
    }
}
