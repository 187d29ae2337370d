//! The searching pool of one queue: tickets and backfill requests, indexed by age and by
//! rating. Tickets are added and cancelled between ticks; the tick consumes them.
//!
//! Layout: tickets live in a slab (`slots`, with a dense `live` bitmap). Two lists are kept
//! sorted across ticks: by age (`ages`, oldest first: the order in which tickets pick) and by
//! rating (`scratch.cands`, the index candidates are found in; each entry carries everything a
//! compatibility check reads). What a formed match reads is kept in the same order beside it
//! (`scratch.cold`, and `scratch.party` for parties' players), so a tick reads the slab only for
//! the rare exact rematch check and for the latencies of a queue with more than eight regions.
//! New tickets are merged into both lists by [`QueueState::maintain`] (O(n + k log k)); no
//! list is ever re-sorted in full and nothing is ever scanned per ticket. Player and ticket lookups use hash
//! maps with a fixed hasher (no OS randomness).
//!
//! A tick only marks the tickets it matches (`live` goes false); dropping them from the slab, the
//! lookup maps and the two lists is deferred to `maintain`, which the next tick runs first and a
//! server runs right after publishing a tick's matches. The tick's latency is then the time to
//! find matches, not to free memory. Until then a matched ticket's stale map entries are ignored
//! by every lookup (they check `live`).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use super::config::{PartyAggregation, QueueConfig};
use super::teams;
use super::ticket::{
    BackfillRequest, CancelOutcome, Member, PlayerId, RegionId, TicketError, TicketId, Timestamp,
};
use crate::rating::PlayerRating;

/// A fixed, seedless hasher for our integer ids: `HashMap`'s default hasher draws OS randomness,
/// which the core must not; and this one is faster for 128-bit ids.
#[derive(Default, Clone, Copy)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    fn write_u128(&mut self, v: u128) {
        let x = (v as u64) ^ ((v >> 64) as u64).rotate_left(29) ^ self.0;
        self.0 = mix64(x);
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = mix64(v ^ self.0);
    }
}

/// SplitMix64 finaliser.
pub(crate) fn mix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

pub(crate) type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;

/// Rematch filters: what lets a tick skip the exact recent-opponent check (two slab entries
/// and their lists, a few cache misses) for nearly every pair. A ticket's recent opponents are
/// a 64-bit Bloom filter (`recent_bits`) of three bits per player, all three taken from a
/// 12-bit hash of the player (its *lane*). Its own players (`self_bits`) are, for a solo
/// ticket, that player's three bits, and for a party its members' lanes side by side (five
/// fit; a bigger party is always checked exactly). So a party's members are tested one by one,
/// as precisely as a solo player, rather than as a merged filter that collides far more often.
pub(crate) const LANES: usize = 5;
const LANE_BITS: usize = 12;
const LANE_MASK: u64 = (1 << LANE_BITS) - 1;

fn lane(p: PlayerId) -> u64 {
    mix64((p.0 as u64) ^ ((p.0 >> 64) as u64)) & LANE_MASK
}

/// A lane's three bits in a rematch filter.
#[inline(always)]
fn lane_bits(lane: u64) -> u64 {
    1u64 << (lane & 63)
        | 1u64 << (lane >> 6)
        | 1u64 << (lane.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 58)
}

/// A player's bits in a rematch filter.
pub(crate) fn player_bits(p: PlayerId) -> u64 {
    lane_bits(lane(p))
}

/// A ticket's `self_bits`: see [`LANES`].
fn self_bits(members: &[Member]) -> u64 {
    match members {
        [solo] => player_bits(solo.player),
        party => (party.iter().take(LANES).enumerate())
            .fold(0, |bits, (i, m)| bits | lane(m.player) << (LANE_BITS * i)),
    }
}

/// Each member's filter bits, from a party of at most [`LANES`] members' `self_bits`.
fn party_member_bits(c: &Cand) -> impl Iterator<Item = u64> + '_ {
    (0..usize::from(c.size)).map(|i| lane_bits(c.self_bits >> (LANE_BITS * i) & LANE_MASK))
}

/// A ticket's players merged into one filter's bits: what a group accumulates.
pub(crate) fn members_bits(c: &Cand) -> u64 {
    match usize::from(c.size) {
        1 => c.self_bits,
        size if size <= LANES => party_member_bits(c).fold(0, |all, bits| all | bits),
        _ => u64::MAX,
    }
}

/// Whether any of a ticket's players may be in a `recent` filter (false: surely not).
#[inline(always)]
pub(crate) fn may_have_met(recent: u64, c: &Cand) -> bool {
    if c.size == 1 {
        recent & c.self_bits == c.self_bits
    } else {
        // Most filters are empty (no recent opponents): no lane to look at then.
        recent != 0 && party_may_have_met(recent, c)
    }
}

fn party_may_have_met(recent: u64, c: &Cand) -> bool {
    usize::from(c.size) > LANES || party_member_bits(c).any(|bits| recent & bits == bits)
}

/// A ticket's players: a solo ticket (the common case) needs no heap allocation.
#[derive(Clone, Debug)]
pub(crate) enum Members {
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
pub(crate) struct Entry {
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
pub(crate) struct BackfillEntry {
    pub req: BackfillRequest,
    pub seq: u64,
    pub target: f64,
    pub existing_bits: u64,
}

/// A ticket in the rating index: everything the scan reads, one 64-byte line per ticket, in
/// rating order. What only a formed match reads is in [`Cold`], at the same index. Windows and
/// region masks are functions of age and are computed when read ([`super::tick`]), so a tick
/// makes no pass over the index.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(64))]
pub(crate) struct Cand {
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
    /// `j`-th latency budget ([`Limits::budgets`]): a ticket's regions at its wait, looked up
    /// rather than compared region by region each time it is read.
    pub masks: [u8; MASKED_BUDGETS],
}

/// Latency budgets with a precomputed region mask per ticket ([`Cand::masks`]); a schedule
/// with more distinct budgets has the later ones compared region by region.
pub(crate) const MASKED_BUDGETS: usize = 3;

const _: () = assert!(std::mem::size_of::<Cand>() == 64);

/// What a formed match reads of an indexed ticket (`scratch.cold[i]` goes with `cands[i]`).
#[derive(Clone, Copy, Debug)]
#[repr(C, align(64))]
pub(crate) struct Cold {
    pub id: TicketId,
    /// A solo ticket's player; a party's are `scratch.party[party..][..size]`.
    pub player: PlayerId,
    /// A solo ticket's rating and deviation: what a prediction reads (no rating system's
    /// expected outcome depends on Glicko-2's volatility).
    pub rating: f64,
    pub deviation: f64,
    pub rating_sum: f64,
    /// Where the members of the parties from this index position on start in `scratch.party`:
    /// a party's own members, and for a solo ticket the next party's ([`NO_PARTY`] until
    /// `maintain` indexes the ticket). A tick's read-ahead finds the parties near an anchor
    /// through it.
    pub party: u32,
}

pub(crate) const NO_PARTY: u32 = u32::MAX;

/// Nothing: the end of a link, a position that picked no pair, a match that fills no backfill.
pub(crate) const NONE: u32 = u32::MAX;

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

pub(crate) const INLINE_REGIONS: usize = 8;

/// Whether an inline latency is within `budget` ms. u16::MAX stands for "65535 ms or more /
/// unreachable" and fills the lanes past the queue's regions: a budget capped below it
/// excludes those without a test of their own.
#[inline(always)]
pub(crate) fn inline_within(ms: u16, budget: u64) -> bool {
    u64::from(ms) <= budget.min(u64::from(u16::MAX) - 1)
}

/// A ticket in the age list (oldest first): what the waiting report needs, contiguous.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Aged {
    pub created: u64,
    pub seq: u64,
    pub id: TicketId,
    pub rating: f64,
    pub slot: u32,
}

/// Queue-shape facts the pool needs to validate tickets without the whole config.
#[derive(Clone, Debug)]
pub(crate) struct Limits {
    pub regions: usize,
    pub max_party: usize,
    pub teams: usize,
    pub team_size: usize,
    pub backfill: bool,
    pub aggregation: PartyAggregation,
    /// The queue's distinct latency budgets, in widening order (see [`Cand::masks`]).
    pub budgets: Vec<u64>,
}

/// Exponentially weighted time-to-match per rating bucket: the "estimated wait". Buckets are a
/// dense run (`buckets[b − base]`) so that recording — once per matched ticket, 100k times in a
/// big tick — is an index, not a search. A tick's waits are summed per bucket and folded in
/// once, by [`Self::settle`], as a batch: `n` waits averaging `m` move the average as `n` single
/// updates all equal to `m` would. Recording is then two additions (no dependency from one
/// wait to the next), and the estimate does not depend on the order a tick matched in.
#[derive(Clone, Debug)]
pub(crate) struct WaitStats {
    pub bucket_width: f64,
    pub base: i64,
    pub buckets: Vec<WaitBucket>,
    pub global: Option<f64>,
    /// Whether any wait was recorded since the last `settle`.
    pending: bool,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct WaitBucket {
    /// NaN until a wait is settled here.
    pub ewma: f64,
    /// Waits recorded since the last `settle`: their sum and count.
    sum: f64,
    count: u32,
}

impl WaitBucket {
    const EMPTY: Self = Self {
        ewma: f64::NAN,
        sum: 0.0,
        count: 0,
    };
}

const EWMA_ALPHA: f64 = 0.1;
/// Most buckets kept; ratings beyond share the outermost bucket on their side.
const MAX_BUCKETS: usize = 8192;

/// `average` after `count` waits whose mean is `mean` (NaN: no history yet).
fn fold(average: f64, mean: f64, count: u32) -> f64 {
    if average.is_nan() {
        return mean;
    }
    // Exactly α for one wait; the weight of `count` equal updates otherwise.
    let weight = if count == 1 {
        EWMA_ALPHA
    } else {
        1.0 - (1.0 - EWMA_ALPHA).powi(count.min(i32::MAX as u32) as i32)
    };
    average + weight * (mean - average)
}

impl WaitStats {
    fn new(first_window: f64) -> Self {
        Self {
            // At least a rating point wide, so that a span of ratings fits in MAX_BUCKETS.
            bucket_width: first_window.max(1.0),
            base: 0,
            buckets: Vec::new(),
            global: None,
            pending: false,
        }
    }

    fn bucket(&self, rating: f64) -> i64 {
        // floor() without a libm call (the baseline x86-64 target has no rounding instruction).
        let q = rating / self.bucket_width;
        let t = q as i64;
        t.saturating_sub(i64::from((t as f64) > q))
    }

    /// Index of `rating`'s bucket, growing the run to hold it (up to [`MAX_BUCKETS`]).
    #[inline]
    fn slot(&mut self, rating: f64) -> usize {
        let b = self.bucket(rating);
        // Inside the run (the common case); a bucket below `base` wraps to a huge index.
        let i = b.wrapping_sub(self.base) as u64;
        if i < self.buckets.len() as u64 {
            return i as usize;
        }
        self.grow_to(b)
    }

    #[cold]
    fn grow_to(&mut self, b: i64) -> usize {
        // i128: bucket numbers of extreme ratings are near the ends of i64.
        let b = i128::from(b);
        if self.buckets.is_empty() {
            self.base = b as i64;
            self.buckets.push(WaitBucket::EMPTY);
            return 0;
        }
        let (base, len) = (i128::from(self.base), self.buckets.len() as i128);
        let room = (MAX_BUCKETS - self.buckets.len()) as i128;
        if b < base {
            let grow = (base - b).min(room) as usize;
            self.buckets
                .splice(0..0, std::iter::repeat_n(WaitBucket::EMPTY, grow));
            self.base -= grow as i64;
            return 0.max(b - i128::from(self.base)) as usize;
        }
        if b >= base + len {
            let grow = (b - base - len + 1).min(room) as usize;
            self.buckets
                .resize(self.buckets.len() + grow, WaitBucket::EMPTY);
            return ((b - base) as usize).min(self.buckets.len() - 1);
        }
        (b - base) as usize
    }

    /// Records a time to match; it counts once [`Self::settle`] runs.
    #[inline]
    pub fn record(&mut self, rating: f64, ttm_ms: u64) {
        let i = self.slot(rating);
        let bucket = &mut self.buckets[i];
        // Through i64: one conversion instruction on baseline x86-64, where u64 takes several
        // (clamped: a wait is far below 2^63 ms unless a caller's clock is absurd).
        bucket.sum += ttm_ms.min(i64::MAX as u64) as i64 as f64;
        bucket.count += 1;
        self.pending = true;
    }

    /// Folds the waits recorded since the last call into the averages.
    pub fn settle(&mut self) {
        if !std::mem::take(&mut self.pending) {
            return;
        }
        let (mut sum, mut count) = (0.0, 0u32);
        for b in self.buckets.iter_mut().filter(|b| b.count > 0) {
            b.ewma = fold(b.ewma, b.sum / f64::from(b.count), b.count);
            sum += b.sum;
            count = count.saturating_add(b.count);
            (b.sum, b.count) = (0.0, 0);
        }
        let mean = sum / f64::from(count);
        self.global = Some(fold(self.global.unwrap_or(f64::NAN), mean, count));
    }

    /// Expected remaining wait for a ticket at `rating` that has waited `waited_ms`.
    /// 0 when there is no history yet or the ticket is already past the typical wait.
    pub fn estimate(&self, rating: f64, waited_ms: u64) -> u64 {
        let i = self.bucket(rating).wrapping_sub(self.base) as u64;
        let typical = usize::try_from(i)
            .ok()
            .and_then(|i| self.buckets.get(i))
            .map(|b| b.ewma)
            .filter(|x| !x.is_nan())
            .or(self.global)
            .unwrap_or(0.0);
        (typical - waited_ms as f64).max(0.0) as u64
    }
}

/// A ticket's situation at this tick: all functions of its age, computed when it is read.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Live {
    pub window: f64,
    pub mask: u64,
    pub relaxed: bool,
}

/// A candidate under consideration: its index position and its situation.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Pick {
    pub c: u32,
    pub live: Live,
}

/// Per-tick working memory, kept between ticks so a tick allocates almost nothing.
#[derive(Clone, Debug, Default)]
pub(crate) struct TickScratch {
    /// The rating index (persistent across ticks, sorted by rating then arrival).
    pub cands: Vec<Cand>,
    pub cold: Vec<Cold>,
    /// Index position of each slot's ticket, and of each ticket in age order (the tick's
    /// picking order, without a lookup per anchor); rebuilt by `maintain` when either changes.
    pub pos: Vec<u32>,
    pub age_pos: Vec<u32>,
    /// This tick's live index positions as a doubly linked list (see `tick::unlink`).
    pub next: Vec<u32>,
    pub prev: Vec<u32>,
    pub pool: Vec<Pick>,
    pub chosen: Vec<Pick>,
    /// The group being written: each ticket with its team.
    pub placed: Vec<(Pick, usize)>,
    /// The members of the indexed parties, party by party in index order (see
    /// [`QueueState::index_parties`]).
    pub party: Vec<Member>,
    /// The 1v1 scan's matches, written out after it: at the picking ticket's index position,
    /// the other's position ([`NONE`] at every other position, and between ticks) and the
    /// region.
    pub mate: Vec<u32>,
    pub mate_region: Vec<RegionId>,
    pub pieces: Vec<teams::Piece>,
    pub assign: Vec<usize>,
    pub teams: teams::Scratch,
    pub ratings: Vec<PlayerRating>,
    pub suffix: Vec<usize>,
    /// `next` and `prev` link every indexed ticket, untouched by a tick yet.
    pub links_ready: bool,
    /// The index changed since `party` was written.
    pub party_stale: bool,
}

impl TickScratch {
    /// Makes the tick's working lists ready for the index as it stands: fresh links, and a
    /// pair slot per position (`pairs`: a queue of two players a match). Done by
    /// [`QueueState::maintain`], which a server runs between ticks, so that a tick neither
    /// writes 2 × n links nor grows (and page-faults in) its lists on its own latency path.
    fn prepare(&mut self, pairs: bool) {
        let n = self.cands.len();
        if !self.links_ready {
            self.next.clear();
            self.next.extend(1..=n as u32);
            self.prev.clear();
            self.prev.extend((0..n as u32).map(|i| i.wrapping_sub(1)));
            self.links_ready = true;
        }
        if pairs {
            self.mate.resize(n, NONE);
            self.mate_region.resize(n, RegionId(0));
        }
    }
}

/// Gives `list` room for `len` items, written once so that its pages are mapped: a list grown
/// inside a tick pays for the copy and for a page fault per 4 KiB touched.
fn grow_mapped<T: Copy>(list: &mut Vec<T>, len: usize, fill: T) {
    if list.capacity() < len {
        let held = list.len();
        list.resize(len, fill);
        list.truncate(held);
    }
}

/// The pool of one queue shard. Create it with [`Matchmaker::new_state`](super::Matchmaker::new_state).
#[derive(Clone, Debug)]
pub struct QueueState {
    pub(crate) limits: Limits,
    pub(crate) slots: Vec<Option<Entry>>,
    pub(crate) free: Vec<u32>,
    pub(crate) freed_pending: Vec<u32>,
    pub(crate) by_id: IdMap<TicketId, u32>,
    pub(crate) searching: IdMap<PlayerId, u32>,
    /// Whether a slot holds a searching ticket (false once matched, even before `maintain`).
    pub(crate) live: Vec<bool>,
    pub(crate) live_count: usize,
    /// Tickets held (searching, or matched and not yet released) by party size: what a tick
    /// checks to skip anchors no packing could ever use.
    pub(crate) party_counts: Vec<u32>,
    /// Searching tickets by (created, seq); compacted by `maintain`.
    pub(crate) ages: Vec<Aged>,
    /// Tickets added since the last tick, not yet merged into `ages` and the rating index.
    pub(crate) arrivals: Vec<(Cand, Cold)>,
    /// Slots matched by a tick and not yet released (their entries are still in the maps).
    pub(crate) matched: Vec<u32>,
    /// Some ticket left (matched, cancelled, expired) since the last `maintain`.
    pub(crate) dirty: bool,
    /// `scratch.pos` and `scratch.age_pos` no longer match `scratch.cands` and `ages`.
    pub(crate) pos_stale: bool,
    pub(crate) backfills: Vec<BackfillEntry>,
    pub(crate) next_seq: u64,
    pub(crate) waits: WaitStats,
    pub(crate) scratch: TickScratch,
}

impl QueueState {
    pub(crate) fn new(config: &QueueConfig) -> Self {
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
            scratch: TickScratch::default(),
        }
    }

    /// Puts a ticket in the queue. It is considered from the next tick on.
    pub fn add(&mut self, ticket: super::Ticket) -> Result<(), TicketError> {
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

    /// Settles the pool between ticks: releases the tickets the last tick matched, forgets
    /// cancelled and expired ones, and merges tickets added since into the age and rating
    /// lists (O(n + k log k)). Every tick runs it first; a server runs it right after publishing
    /// a tick's matches, so the next tick starts on a settled pool.
    pub fn maintain(&mut self) {
        if self.dirty {
            self.release_matched();
            let live = &self.live;
            self.ages.retain(|a| live[a.slot as usize]);
            let sc = &mut self.scratch;
            let mut w = 0;
            for i in 0..sc.cands.len() {
                if live[sc.cands[i].slot as usize] {
                    sc.cands[w] = sc.cands[i];
                    sc.cold[w] = sc.cold[i];
                    w += 1;
                }
            }
            sc.cands.truncate(w);
            sc.cold.truncate(w);
            self.arrivals.retain(|(c, _)| live[c.slot as usize]);
            // Slots are reused only now, once nothing refers to them.
            self.free.append(&mut self.freed_pending);
            self.dirty = false;
            self.pos_stale = true;
        }
        if !self.arrivals.is_empty() {
            self.arrivals
                .sort_unstable_by_key(|(c, _)| (c.created, c.seq));
            let aged: Vec<Aged> = self
                .arrivals
                .iter()
                .map(|(c, k)| Aged {
                    created: c.created,
                    seq: c.seq,
                    id: k.id,
                    rating: c.rating,
                    slot: c.slot,
                })
                .collect();
            merge_sorted(&mut self.ages, &aged, |a, b| {
                (a.created, a.seq) <= (b.created, b.seq)
            });
            self.arrivals.sort_unstable_by(|(a, _), (b, _)| {
                a.rating.total_cmp(&b.rating).then(a.seq.cmp(&b.seq))
            });
            let sc = &mut self.scratch;
            merge_index(&mut sc.cands, &mut sc.cold, &self.arrivals);
            self.arrivals.clear();
            self.pos_stale = true;
        }
        if self.pos_stale {
            let sc = &mut self.scratch;
            sc.pos.clear();
            sc.pos.resize(self.slots.len(), u32::MAX);
            for (i, c) in sc.cands.iter().enumerate() {
                sc.pos[c.slot as usize] = i as u32;
            }
            sc.age_pos.clear();
            sc.age_pos
                .extend(self.ages.iter().map(|a| sc.pos[a.slot as usize]));
            self.pos_stale = false;
            sc.links_ready = false;
            sc.party_stale = self.limits.max_party > 1;
        }
        if self.scratch.party_stale {
            self.index_parties();
        }
        self.scratch
            .prepare(self.limits.teams * self.limits.team_size == 2);
        // The tick releases into `matched` (one per ticket at most).
        grow_mapped(&mut self.matched, self.scratch.cands.len(), 0);
    }

    /// Rewrites `scratch.party` in index order: a match's parties sit near one another in
    /// rating, so a tick writing their players out reads one small stretch of this list
    /// instead of two dependent cache misses per party (slab entry, then its member list),
    /// which were a third of a 5v5 tick. Parties already indexed are copied from the previous
    /// list, which is in the previous index order (a nearly sequential read); new ones from
    /// the slab.
    fn index_parties(&mut self) {
        let sc = &mut self.scratch;
        // A new list of the exact size (every held ticket is indexed by now) rather than a
        // second one kept for the next rebuild, which would hold as much again between ticks.
        let players = (self.party_counts.iter().enumerate().skip(2))
            .map(|(size, &n)| size * n as usize)
            .sum();
        let mut fresh = Vec::with_capacity(players);
        for (c, k) in sc.cands.iter().zip(sc.cold.iter_mut()) {
            let start = u32::try_from(fresh.len()).expect("fewer than 2^32 players in parties");
            if c.size == 1 {
                k.party = start;
                continue;
            }
            match k.party {
                NO_PARTY => fresh.extend_from_slice(
                    &self.slots[c.slot as usize]
                        .as_ref()
                        .expect("an indexed ticket is in its slot")
                        .members,
                ),
                at => fresh.extend_from_slice(&sc.party[at as usize..][..usize::from(c.size)]),
            }
            k.party = start;
        }
        sc.party = fresh;
        sc.party_stale = false;
    }

    /// Drops the entries of the tickets the last tick matched and their lookup-map entries.
    fn release_matched(&mut self) {
        if self.matched.is_empty() {
            return;
        }
        let mut matched = std::mem::take(&mut self.matched);
        // Many: one sequential pass over the slab and over each map beats that many random
        // accesses (a slot is matched-and-unreleased exactly when it holds a ticket but is not
        // live: cancelled and expired tickets left their slot at once).
        let bulk = matched.len() * 8 >= self.by_id.len();
        if bulk {
            for (slot, entry) in self.slots.iter_mut().enumerate() {
                if let Some(e) = entry
                    && !self.live[slot]
                {
                    self.party_counts[e.members.len()] -= 1;
                    *entry = None;
                    self.freed_pending.push(slot as u32);
                }
            }
            let live = &self.live;
            self.by_id.retain(|_, s| live[*s as usize]);
            self.searching.retain(|_, s| live[*s as usize]);
        } else {
            for &slot in &matched {
                let entry = self.slots[slot as usize]
                    .take()
                    .expect("a matched slot holds its ticket until released");
                self.party_counts[entry.members.len()] -= 1;
                if self.by_id.get(&entry.id) == Some(&slot) {
                    self.by_id.remove(&entry.id);
                }
                for m in entry.members.iter() {
                    if self.searching.get(&m.player) == Some(&slot) {
                        self.searching.remove(&m.player);
                    }
                }
                self.freed_pending.push(slot);
            }
        }
        matched.clear();
        self.matched = matched;
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
        b += self.waits.buckets.capacity() * size_of::<WaitBucket>();
        let s = &self.scratch;
        b += s.cands.capacity() * size_of::<Cand>() + s.cold.capacity() * size_of::<Cold>();
        b += (s.pos.capacity() + s.age_pos.capacity() + s.next.capacity() + s.prev.capacity()) * 4;
        b += (s.pool.capacity() + s.chosen.capacity()) * size_of::<Pick>();
        b += s.placed.capacity() * size_of::<(Pick, usize)>();
        b += s.party.capacity() * size_of::<Member>();
        b += s.mate.capacity() * 4 + s.mate_region.capacity() * size_of::<RegionId>();
        b
    }

    /// Removes a searching ticket now (cancelled or expired); its place in the sorted lists
    /// and its slot are reclaimed by the next `maintain`.
    pub(crate) fn release(&mut self, slot: u32) {
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

    /// Marks a live slot's ticket matched by this tick (released by the next `maintain`).
    pub(crate) fn mark_matched(&mut self, slot: u32) {
        self.live[slot as usize] = false;
        self.live_count -= 1;
        self.matched.push(slot);
        self.dirty = true;
    }
}

/// [`merge_sorted`] for the rating index, whose entries are split over two lists kept in step.
fn merge_index(cands: &mut Vec<Cand>, cold: &mut Vec<Cold>, add: &[(Cand, Cold)]) {
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

/// Merges sorted `add` into sorted `base` (stable: `base` first on ties), in place from the back.
pub(crate) fn merge_sorted<T: Copy>(base: &mut Vec<T>, add: &[T], le: impl Fn(&T, &T) -> bool) {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The rematch filters never clear a real rematch, for solos, parties and parties too big
    /// for their lanes, and rarely raise a false one.
    #[test]
    fn rematch_filter_has_no_false_clearances() {
        let cand = |players: &[u128]| {
            let members: Vec<Member> = (players.iter())
                .map(|&p| Member {
                    player: PlayerId(p),
                    rating: PlayerRating::new(1500.0, 50.0),
                })
                .collect();
            Cand {
                rating: 0.0,
                created: 0,
                lat: [0; INLINE_REGIONS],
                self_bits: self_bits(&members),
                recent_bits: 0,
                seq: 0,
                slot: 0,
                size: players.len() as u8,
                masks: [0; MASKED_BUDGETS],
            }
        };
        let mut false_alarms = [0u32; 2];
        for i in 0..4_000u128 {
            let recent: Vec<u128> = (0..3).map(|j| i * 7_919 + j * 104_729).collect();
            let filter = (recent.iter()).fold(0, |b, &p| b | player_bits(PlayerId(p)));
            let (x, y) = (i + 1_000_000, i + 2_000_000);
            for party in [
                &[recent[1]][..],
                &[x, recent[2], y],
                &[x, y, x + 1, y + 1, recent[0]],
                &[x, y, x + 1, y + 1, x + 2, recent[0]],
            ] {
                let c = cand(party);
                assert!(may_have_met(filter, &c), "{party:?}");
                // A group's merged bits hold every member's.
                let merged = members_bits(&c);
                assert!(
                    party
                        .iter()
                        .all(|&p| merged & player_bits(PlayerId(p)) != 0)
                );
            }
            false_alarms[0] += u32::from(may_have_met(filter, &cand(&[x])));
            false_alarms[1] += u32::from(may_have_met(filter, &cand(&[x, y, x + 1])));
        }
        // Expected (1 − e^(−9/64))³ ≈ 0.3% per stranger (one bit per player would be 3/64).
        assert!(false_alarms[0] < 40, "{false_alarms:?}");
        assert!(false_alarms[1] < 3 * 40, "{false_alarms:?}");
    }

    #[test]
    fn wait_estimates_follow_each_rating_band() {
        let mut w = WaitStats::new(50.0);
        assert_eq!(w.estimate(1500.0, 0), 0, "no history yet");
        w.record(1500.0, 4_000);
        w.record(900.0, 30_000); // grows the run downwards
        w.record(2600.0, 10_000); // and upwards
        assert_eq!(w.estimate(1510.0, 0), 0, "counted once settled");
        w.settle();
        assert_eq!(w.estimate(1510.0, 1_000), 3_000);
        assert_eq!(w.estimate(910.0, 0), 30_000);
        assert_eq!(
            w.estimate(2649.0, 12_000),
            0,
            "already past the typical wait"
        );
        // A band with no history falls back to the global average.
        let global = w.global.unwrap();
        assert_eq!(global.round(), 14_667.0, "the mean of the first batch");
        assert_eq!(w.estimate(1200.0, 0), global as u64);
        // The same band again: an exponentially weighted average, not the last value.
        w.record(1500.0, 14_000);
        w.settle();
        assert_eq!(w.estimate(1500.0, 0), 5_000);
        // A batch of equal waits moves the average as that many single updates would.
        let mut one_by_one = w.clone();
        for _ in 0..3 {
            one_by_one.record(1500.0, 20_000);
            one_by_one.settle();
        }
        for _ in 0..3 {
            w.record(1500.0, 20_000);
        }
        w.settle();
        let (a, b) = (w.estimate(1500.0, 0), one_by_one.estimate(1500.0, 0));
        assert!(a.abs_diff(b) <= 1, "{a} vs {b}");
        // Far-out and negative ratings neither panic nor grow the run without bound.
        for r in [-1e12, -5.0, 1e12, f64::MAX, f64::MIN] {
            w.record(r, 1_000);
            w.settle();
            let _ = w.estimate(r, 0);
        }
        assert!(w.buckets.len() <= MAX_BUCKETS);
    }
}
