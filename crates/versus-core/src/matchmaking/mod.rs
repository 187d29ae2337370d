//! The matchmaker: queue configuration, the searching pool, and the deterministic tick.
//!
//! Architecture invariant: no clock reads (time is the `now` argument), no IO, no randomness,
//! no iteration over hash maps in anything that shapes an outcome. Same state + same `now`
//! ⇒ same outcome, bit for bit.
//!
//! A queue is driven through a [`Shard`] (matchmaker, pool, opponent memory and the last
//! outcome: `join`, `leave`, `tick`, `settle`); the server's queue actor and the simulator both
//! hold one. Underneath, the pieces are usable alone:
//! ```
//! use versus_core::matchmaking::*;
//! use versus_core::rating::PlayerRating;
//! let mm = Matchmaker::new(QueueConfig::new(2, 1)).unwrap();
//! let mut pool = mm.new_state();
//! for (i, r) in [1500.0, 1510.0].into_iter().enumerate() {
//!     pool.add(Ticket {
//!         id: TicketId(i as u128),
//!         members: vec![Member { player: PlayerId(i as u128), rating: PlayerRating::new(r, 50.0) }],
//!         region_latency_ms: vec![30],
//!         created_at: Timestamp::from_secs(0),
//!         recent_opponents: vec![],
//!     }).unwrap();
//! }
//! let out = mm.tick(Timestamp::from_secs(1), &mut pool);
//! assert_eq!(out.match_count(), 1);
//! let m = out.matches().next().unwrap();
//! assert!(m.quality > 0.95);
//! assert_eq!(m.team(0).players, [PlayerId(0)]);
//! // Settle the pool off the latency path (the next tick would do it otherwise).
//! pool.maintain();
//! ```

mod config;
mod memory;
mod outcome;
mod pool;
mod shard;
mod teams;
mod tick;
mod ticket;

pub use config::{ConfigError, PartyAggregation, QueueConfig, Schedule, Step};
pub use memory::OpponentMemory;
pub use outcome::{FormedMatch, MatchTeam, TickOutcome, WaitingTicket};
pub use pool::QueueState;
pub use shard::{Accepted, Shard};
pub use tick::Matchmaker;
pub use ticket::{
    BackfillRequest, CancelOutcome, Member, PlayerId, RegionId, Ticket, TicketError, TicketId,
    Timestamp, UNREACHABLE_MS,
};

/// Nothing: the end of a link, a position that picked no pair, a match that fills no backfill.
const NONE: u32 = u32::MAX;
