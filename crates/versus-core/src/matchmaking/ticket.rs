//! What enters the queue: tickets (a solo player or a party) and backfill requests, with the
//! opaque identifiers the server maps its UUIDs onto (`Uuid::as_u128`).

use crate::rating::PlayerRating;

/// A player, as the matchmaker knows one. Opaque (the server uses `Uuid::as_u128`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PlayerId(pub u128);

/// A ticket or backfill request. Opaque, unique within a queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TicketId(pub u128);

/// Index of a region in [`QueueConfig::regions`](super::QueueConfig::regions).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RegionId(pub u8);

/// Monotonic time in milliseconds. The matchmaker never reads a clock: the caller passes this.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Timestamp(pub u64);

impl Timestamp {
    pub const fn from_millis(ms: u64) -> Self {
        Self(ms)
    }
    pub const fn from_secs(s: u64) -> Self {
        Self(s * 1000)
    }
    pub const fn millis(self) -> u64 {
        self.0
    }
    /// Milliseconds from `earlier` to `self`, 0 if `earlier` is later.
    pub const fn since(self, earlier: Timestamp) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

/// Latency value meaning "this player cannot reach that region".
pub const UNREACHABLE_MS: u32 = u32::MAX;

/// One player on a ticket.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Member {
    pub player: PlayerId,
    pub rating: PlayerRating,
}

/// A request to be matched: one player, or a party that is never split.
#[derive(Clone, Debug, PartialEq)]
pub struct Ticket {
    pub id: TicketId,
    /// 1..=`max_party_size` members.
    pub members: Vec<Member>,
    /// Round-trip latency to each queue region (same order as the config's `regions`), for the
    /// worst-placed member of the party; [`UNREACHABLE_MS`] for a region the party will not play
    /// in (preferences go here too).
    pub region_latency_ms: Vec<u32>,
    /// When the ticket entered the queue; wait and widening are measured from here.
    pub created_at: Timestamp,
    /// Players any member met as an opponent in their last N matches (N =
    /// `recent_opponent_memory`), e.g. from [`OpponentMemory`](super::OpponentMemory) or the
    /// match history table. Two tickets where one lists a member of the other are not matched
    /// together until one of them has waited `rematch_relax_after_s`.
    pub recent_opponents: Vec<PlayerId>,
}

/// A running match with open slots, asking to be filled before new matches are formed.
#[derive(Clone, Debug, PartialEq)]
pub struct BackfillRequest {
    pub id: TicketId,
    /// Current players of each team (one entry per team of the queue, possibly empty).
    pub teams: Vec<Vec<Member>>,
    /// Open slots per team (same length as `teams`); the request is filled all at once.
    pub open_slots: Vec<usize>,
    /// Where the match is hosted.
    pub region: RegionId,
    pub created_at: Timestamp,
}

/// Why a ticket or backfill request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TicketError {
    #[error("ticket has {got} members; this queue allows 1 to {max}")]
    PartySize { got: usize, max: usize },
    #[error("ticket gives latency for {got} regions; this queue has {expected}")]
    RegionCount { got: usize, expected: usize },
    #[error("a ticket with this id is already in the queue")]
    DuplicateTicket,
    #[error("player {0:?} is already searching in this queue")]
    PlayerAlreadySearching(PlayerId),
    #[error("a player appears twice on the same ticket")]
    DuplicateMember,
    #[error("ratings must be finite numbers")]
    NonFiniteRating,
    #[error("backfill is disabled for this queue")]
    BackfillDisabled,
    #[error("backfill request must describe {expected} teams (teams and open_slots)")]
    BackfillShape { expected: usize },
    #[error("backfill request would overfill a team or has no open slot")]
    BackfillSlots,
    #[error("backfill region {0:?} is not a region of this queue")]
    BackfillRegion(RegionId),
}

/// Result of a cancellation: exactly one of these, so "leave" racing a forming match has one answer.
#[derive(Debug, Clone, PartialEq)]
pub enum CancelOutcome {
    /// The ticket was searching and has been removed; it will be in no match.
    Cancelled,
    /// The ticket is not searching: it was already matched (in a previous tick's outcome),
    /// expired, cancelled, or never existed.
    NotSearching,
}
