//! One queue shard's matchmaking, whole: the matchmaker, its pool of searching tickets, who met
//! whom recently, and the outcome of the last tick. It is the one owner of a ticket's matchmaking
//! state; whoever drives a queue — the server's queue actor, the simulator — drives a `Shard`
//! and keeps only what the core has no business knowing (player ids on the wire, sockets,
//! statistics) beside it.
//!
//! A shard is a plain value: everything it does happens in the caller's thread when called, and
//! it never reads a clock (time comes in with each ticket and each tick). That makes it movable:
//! today one actor per queue owns one; in a cluster, the node holding a queue's lease owns it,
//! fed by the same calls.

use super::config::{ConfigError, QueueConfig};
use super::memory::OpponentMemory;
use super::outcome::TickOutcome;
use super::pool::QueueState;
use super::tick::Matchmaker;
use super::ticket::{
    BackfillRequest, CancelOutcome, PlayerId, Ticket, TicketError, TicketId, Timestamp,
};
use crate::rating::AnyRatingSystem;

/// Where a ticket stands the moment it is accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Accepted {
    /// 1 = oldest searching ticket. A new ticket joins at the back.
    pub position: usize,
    /// Remaining wait expected from recent time-to-match at its rating (0: any moment, or no
    /// history yet) — the figure every later tick reports too.
    pub estimated_wait_ms: u64,
}

/// A queue shard: join, leave, tick, settle. See the module documentation.
#[derive(Clone, Debug)]
pub struct Shard {
    matchmaker: Matchmaker,
    pool: QueueState,
    memory: OpponentMemory,
    /// Kept across ticks: once its lists have grown, a tick allocates nothing.
    outcome: TickOutcome,
    /// The latest time a ticket was dated with: tickets join in time order.
    newest: Timestamp,
}

impl Shard {
    /// A shard with an empty pool. The configuration is validated (the error names the key).
    pub fn new(config: QueueConfig) -> Result<Self, ConfigError> {
        let matchmaker = Matchmaker::new(config)?;
        Ok(Self {
            pool: matchmaker.new_state(),
            memory: OpponentMemory::new(matchmaker.config().recent_opponent_memory),
            outcome: TickOutcome::default(),
            newest: Timestamp::default(),
            matchmaker,
        })
    }

    pub fn config(&self) -> &QueueConfig {
        self.matchmaker.config()
    }

    pub fn rating_system(&self) -> &AnyRatingSystem {
        self.matchmaker.rating_system()
    }

    /// Accepts a ticket into the pool; it is considered from the next tick on. Its recent
    /// opponents are those it brings (e.g. from a match history) and those this shard
    /// remembers. A ticket dated before one already accepted takes that one's time, so the
    /// order tickets arrive in is the order they pick in (two clocks may disagree a little).
    pub fn join(&mut self, mut ticket: Ticket) -> Result<Accepted, TicketError> {
        ticket.created_at = ticket.created_at.max(self.newest);
        let remembered = self
            .memory
            .opponents_of(ticket.members.iter().map(|m| m.player));
        if !remembered.is_empty() {
            ticket.recent_opponents.extend(remembered);
            ticket.recent_opponents.sort_unstable();
            ticket.recent_opponents.dedup();
        }
        let config = self.matchmaker.config();
        let rating = config
            .party_aggregation
            .aggregate(ticket.members.iter().map(|m| m.rating.rating));
        let created_at = ticket.created_at;
        self.pool.add(ticket)?;
        self.newest = created_at;
        Ok(Accepted {
            position: self.pool.len(),
            estimated_wait_ms: self.pool.estimated_wait(rating, 0),
        })
    }

    /// Puts a ticket back that a match took but could not keep (its session found no game
    /// server): at its original time, so it keeps its wait and its place at the front, and
    /// with its members' recent opponents as before, except `unplayed`: the players of the match
    /// that never happened, whom it may meet again at once. Its position shows from the next
    /// tick.
    pub fn rejoin(&mut self, mut ticket: Ticket, unplayed: &[PlayerId]) -> Result<(), TicketError> {
        let remembered = self
            .memory
            .opponents_of(ticket.members.iter().map(|m| m.player));
        ticket
            .recent_opponents
            .extend(remembered.into_iter().filter(|p| !unplayed.contains(p)));
        ticket.recent_opponents.sort_unstable();
        ticket.recent_opponents.dedup();
        self.pool.add(ticket)
    }

    /// Asks for players to fill a running match's open slots; filled before new matches form.
    pub fn request_backfill(&mut self, request: BackfillRequest) -> Result<(), TicketError> {
        self.pool.add_backfill(request)
    }

    /// Takes a ticket or backfill request out. Exactly one of cancelled or not searching, so a
    /// leave racing a forming match has one answer.
    pub fn leave(&mut self, id: TicketId) -> CancelOutcome {
        self.pool.cancel(id)
    }

    /// Runs one tick at `now` and remembers who met whom. The outcome stays readable through
    /// [`Self::outcome`] until the next tick.
    pub fn tick(&mut self, now: Timestamp) -> &TickOutcome {
        self.matchmaker
            .tick_into(now, &mut self.pool, &mut self.outcome);
        for formed in self.outcome.matches() {
            self.memory.record(&formed);
        }
        &self.outcome
    }

    /// What the last tick did.
    pub fn outcome(&self) -> &TickOutcome {
        &self.outcome
    }

    /// Settles the pool (releases matched tickets, merges arrivals, makes the next tick's
    /// working lists ready). Call it once the last outcome has been published: it is work the
    /// next tick would otherwise do on the path to `match_found`.
    pub fn settle(&mut self) {
        self.pool.maintain();
    }

    /// Tickets searching (not counting backfill requests).
    pub fn searching(&self) -> usize {
        self.pool.len()
    }

    /// Open backfill requests.
    pub fn backfills(&self) -> usize {
        self.pool.backfill_len()
    }

    /// Whether `player` is on a searching ticket.
    pub fn is_searching(&self, player: PlayerId) -> bool {
        self.pool.is_searching(player)
    }

    /// The pool, for measurements (e.g. [`QueueState::memory_bytes`]).
    pub fn pool(&self) -> &QueueState {
        &self.pool
    }

    /// Forgets a player's recent opponents (e.g. on account deletion).
    pub fn forget(&mut self, player: PlayerId) {
        self.memory.forget(player);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matchmaking::Member;
    use crate::rating::PlayerRating;

    fn solo(id: u128, rating: f64, at: u64) -> Ticket {
        Ticket {
            id: TicketId(id),
            members: vec![Member {
                player: PlayerId(id),
                rating: PlayerRating::new(rating, 50.0),
            }],
            region_latency_ms: vec![30],
            created_at: Timestamp::from_secs(at),
            recent_opponents: vec![],
        }
    }

    #[test]
    fn a_ticket_knows_its_place_when_accepted() {
        let mut shard = Shard::new(QueueConfig::new(2, 1)).unwrap();
        assert_eq!(shard.join(solo(1, 1500.0, 0)).unwrap().position, 1);
        assert_eq!(shard.join(solo(2, 3000.0, 1)).unwrap().position, 2);
        // Dated before the newest: it still joins at the back.
        let late = shard.join(solo(3, 3000.0, 0)).unwrap();
        assert_eq!(late.position, 3);
        assert_eq!(shard.searching(), 3);
        // Far apart in rating: 1 waits alone while 2 and 3 meet.
        let out = shard.tick(Timestamp::from_secs(2));
        assert_eq!(out.match_count(), 1);
        let waiting: Vec<_> = out.waiting.iter().map(|w| (w.ticket, w.position)).collect();
        assert_eq!(waiting, [(TicketId(1), 1)]);
        shard.settle();
        // With a match behind it, the shard expects a wait at that rating.
        let next = shard.join(solo(4, 3000.0, 3)).unwrap();
        assert_eq!(next.position, 2);
        assert!(next.estimated_wait_ms > 0, "{next:?}");
    }

    #[test]
    fn opponents_are_remembered_across_joins() {
        let mut config = QueueConfig::new(2, 1);
        config.rematch_relax_after_s = None;
        let mut shard = Shard::new(config).unwrap();
        shard.join(solo(1, 1500.0, 0)).unwrap();
        shard.join(solo(2, 1500.0, 0)).unwrap();
        assert_eq!(shard.tick(Timestamp::from_secs(1)).match_count(), 1);
        shard.settle();
        // The same two players again, as new tickets: the shard remembers they just met.
        let again = |id, player| Ticket {
            id: TicketId(id),
            ..solo(player, 1500.0, 2)
        };
        shard.join(again(11, 1)).unwrap();
        shard.join(again(12, 2)).unwrap();
        assert_eq!(shard.tick(Timestamp::from_secs(3)).match_count(), 0);
        assert!(shard.is_searching(PlayerId(1)));
        assert_eq!(shard.leave(TicketId(11)), CancelOutcome::Cancelled);
        assert_eq!(shard.leave(TicketId(11)), CancelOutcome::NotSearching);
    }

    #[test]
    fn a_rejoined_ticket_keeps_its_place_at_the_front() {
        let mut shard = Shard::new(QueueConfig::new(2, 1)).unwrap();
        shard.join(solo(1, 1500.0, 10)).unwrap();
        // Back from a match that found no server, with the time it first joined.
        shard.rejoin(solo(2, 3000.0, 2), &[]).unwrap();
        let out = shard.tick(Timestamp::from_secs(11));
        let order: Vec<_> = out.waiting.iter().map(|w| (w.ticket, w.position)).collect();
        assert_eq!(order, [(TicketId(2), 1), (TicketId(1), 2)]);
        assert_eq!(
            out.waiting[0].waited_ms, 9_000,
            "its wait counts from its first join"
        );
    }

    #[test]
    fn players_of_a_match_that_never_happened_may_meet_again() {
        let mut shard = Shard::new(QueueConfig::new(2, 1)).unwrap();
        shard.join(solo(1, 1500.0, 0)).unwrap();
        shard.join(solo(2, 1500.0, 0)).unwrap();
        assert_eq!(shard.tick(Timestamp::from_secs(1)).match_count(), 1);
        let unplayed = [PlayerId(1), PlayerId(2)];
        shard.rejoin(solo(1, 1500.0, 0), &unplayed).unwrap();
        shard.rejoin(solo(2, 1500.0, 0), &unplayed).unwrap();
        assert_eq!(
            shard.tick(Timestamp::from_secs(2)).match_count(),
            1,
            "not kept apart as recent opponents"
        );
    }
}
