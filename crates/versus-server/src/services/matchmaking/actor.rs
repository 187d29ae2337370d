//! One queue's actor: owns the queue's [`Shard`] (the core's pool and matchmaker) and its
//! [`Board`] (the server's record of each ticket), applies joins and leaves between ticks, ticks
//! on a timer, and turns each outcome into ticket records and events. Because every command and
//! every tick of a queue runs here, one after another, a leave racing a forming match has exactly
//! one outcome, and a ticket's record has one writer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;
use versus_config::Queue;
use versus_core::matchmaking::{
    BackfillRequest, CancelOutcome, FormedMatch, Member, PlayerId, QueueConfig, RegionId, Shard,
    TickOutcome, Ticket, TicketError, TicketId, Timestamp,
};
use versus_core::rating::{AnyRatingSystem, PlayerRating, RatingSystem as _};
use versus_protocol::queue::{QueueStatistics, TicketState, TicketView};
use versus_protocol::ws::{MatchPlayer, MatchTeam, QueueUpdate, ServerEvent};

use super::JoinError;
use super::board::{Board, TicketRecord};
use super::journal::{FormingMatch, Journal, JournaledKey, JournaledTicket};
use super::stats::Collector;
use crate::config::MatchmakingConfig;
use crate::services::events::{Audience, BusEvent, EventBus};
use crate::services::redis::{JournalError, RedisDown};

/// What the matchmaking service asks of a queue. Owned data and one-shot replies only: the
/// same commands could travel to a queue owned by another node.
pub enum Command {
    Join {
        ticket: NewTicket,
        reply: oneshot::Sender<Result<TicketView, JoinError>>,
    },
    Leave {
        ticket: Uuid,
        reply: oneshot::Sender<LeaveOutcome>,
    },
    /// The ticket's view once every command sent before this one has been applied.
    View {
        ticket: Uuid,
        reply: oneshot::Sender<Option<TicketView>>,
    },
    /// Tickets a match took but whose session found no game server: back in, at the front.
    Requeue {
        tickets: Vec<FormedTicket>,
        reason: String,
    },
    /// A running session lost players: fill its open slots before forming new matches.
    Backfill {
        session: Uuid,
        request: OpenSlots,
        reply: oneshot::Sender<Result<(), JoinError>>,
    },
    /// The session ended: its open backfill request, if any, goes.
    Withdraw { session: Uuid },
    /// In a cluster, this node now runs the queue: start afresh from the journal's tickets and
    /// journal every change from now on.
    Load {
        journal: Arc<Journal>,
        tickets: Vec<JournaledTicket>,
        /// Matches the previous matchmaker formed and this one finishes: their tickets are
        /// on the board as matched (views, leaves, requeues and retried joins find them).
        forming: Vec<FormingMatch>,
        reply: oneshot::Sender<()>,
    },
    /// In a cluster, this node no longer runs the queue: forget every ticket and refuse every
    /// command until the next `Load`.
    Reset,
}

/// A running session's teams and open slots, as the session service describes them.
pub struct OpenSlots {
    /// Current players of each team with their ratings in this queue.
    pub teams: Vec<Vec<(Uuid, PlayerRating)>>,
    pub open_slots: Vec<usize>,
    /// The session's region (one of the queue's).
    pub region: String,
}

/// A match the queue formed, for the session service: it stores the session, then tells the
/// players (these updates and `match_found`), then finds a game server.
#[derive(Debug, Clone)]
pub struct FormedSession {
    pub session_id: Uuid,
    pub queue: String,
    pub region: String,
    pub quality: f64,
    /// Every player of every team, with the rating it was matched on.
    pub teams: Vec<MatchTeam>,
    /// The tickets this match took (for a backfill, the newcomers').
    pub tickets: Vec<FormedTicket>,
    /// `Some(session)` when this fills a running session's open slots.
    pub backfill_of: Option<Uuid>,
    /// In a cluster: the journal holding this match as forming, told once it is stored.
    pub forming: Option<Arc<Journal>>,
    /// Formed by a matchmaker that is gone: perhaps stored and announced already.
    pub resumed: bool,
}

impl FormedSession {
    /// `sessions` (of this match's queue) are stored and announced: the journal stops holding
    /// them as forming.
    pub async fn settle(&self, sessions: &[Uuid]) -> Result<(), RedisDown> {
        match &self.forming {
            Some(journal) => journal.formed(sessions).await,
            None => Ok(()),
        }
    }
}

/// One ticket a match took, with what it takes to put it back in its place.
#[derive(Debug, Clone)]
pub struct FormedTicket {
    pub ticket_id: Uuid,
    pub team: usize,
    pub players: Vec<(Uuid, PlayerRating)>,
    pub region_latency_ms: Vec<u32>,
    pub created: Instant,
    /// The `queue_update` (state matched) its players are to get with `match_found`.
    pub update: QueueUpdate,
    /// Its join's key: a next matchmaker finishing the match still answers a retried join.
    pub idempotency: Option<JournaledKey>,
}

/// A ticket as the service hands it over; the actor dates it and fills in the rest.
pub struct NewTicket {
    pub ticket_id: Uuid,
    pub players: Vec<(Uuid, PlayerRating)>,
    /// Latency to each of the queue's regions, in the queue's order.
    pub region_latency_ms: Vec<u32>,
    /// Journaled with the ticket (in a cluster), for the next matchmaker to remember.
    pub idempotency: Option<JournaledKey>,
}

/// How a leave ended: exactly one of these.
#[derive(Debug)]
pub enum LeaveOutcome {
    Cancelled(TicketView),
    /// A match took the ticket first.
    Matched(Uuid),
    /// Expired, cancelled already, or unknown here.
    NotSearching,
    /// The queue is not running here now (a cluster's matchmaker changing hands).
    Unavailable,
}

pub struct QueueActor {
    shard: Shard,
    config: QueueConfig,
    desk: Desk,
    epoch: Instant,
    tick_every: Duration,
    last_sweep: Instant,
    /// In a cluster: where every change is journaled (`journal`), and whether the queue is
    /// out of service here (`halted`: not this node's, or a journal write failed).
    journal: Option<Arc<Journal>>,
    halted: bool,
}

/// Everything that turns an outcome into records, statistics and events: apart from the shard,
/// so that an outcome borrowed from the shard can be published.
struct Desk {
    queue: String,
    regions: Vec<String>,
    /// Where formed matches go (the session service).
    formed: mpsc::UnboundedSender<FormedSession>,
    /// Open backfill requests and the sessions they fill.
    backfills: HashMap<TicketId, Uuid>,
    board: Arc<Board>,
    bus: Arc<dyn EventBus>,
    stats: Arc<Mutex<QueueStatistics>>,
    collector: Collector,
    update_every: Duration,
    searching_players: u64,
}

impl QueueActor {
    pub fn new(
        queue: &Queue,
        board: Arc<Board>,
        bus: Arc<dyn EventBus>,
        stats: Arc<Mutex<QueueStatistics>>,
        formed: mpsc::UnboundedSender<FormedSession>,
        config: &MatchmakingConfig,
        epoch: Instant,
    ) -> Self {
        Self {
            shard: Shard::new(queue.config.clone()).expect("queues are validated when loaded"),
            config: queue.config.clone(),
            desk: Desk {
                queue: queue.name.clone(),
                regions: queue.config.regions.clone(),
                formed,
                backfills: HashMap::new(),
                board,
                bus,
                stats,
                collector: Collector::new(&queue.name),
                update_every: Duration::from_secs(config.queue_update_interval_secs),
                searching_players: 0,
            },
            epoch,
            tick_every: Duration::from_millis(config.tick_ms),
            last_sweep: Instant::now(),
            journal: None,
            halted: false,
        }
    }

    fn timestamp(&self, at: Instant) -> Timestamp {
        Timestamp(at.saturating_duration_since(self.epoch).as_millis() as u64)
    }

    pub async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        let mut ticks = tokio::time::interval(self.tick_every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                command = commands.recv() => match command {
                    Some(command) => self.apply(command).await,
                    None => break,
                },
                _ = ticks.tick() => self.tick().await,
            }
        }
    }

    async fn apply(&mut self, command: Command) {
        match command {
            // Taken whether or not the queue runs here: they decide that.
            Command::Load {
                journal,
                tickets,
                forming,
                reply,
            } => {
                self.load(journal, tickets, &forming);
                let _ = reply.send(());
            }
            Command::Reset => self.reset(),
            command if self.halted => self.refuse(command),
            Command::Join { ticket, reply } => {
                let _ = reply.send(self.join_durably(ticket).await);
            }
            Command::Leave { ticket, reply } => {
                let mut outcome = self.leave(ticket);
                if let (LeaveOutcome::Cancelled(_), Some(journal)) = (&outcome, &self.journal)
                    && let Err(err) = journal.forget(&[ticket]).await
                {
                    // Halted: the next matchmaker reloads the ticket, so the leave did not happen.
                    self.halt(&err);
                    outcome = LeaveOutcome::Unavailable;
                }
                let _ = reply.send(outcome);
            }
            Command::View { ticket, reply } => {
                let _ = reply.send(self.desk.board.view(ticket));
            }
            Command::Requeue { tickets, reason } => {
                let requeued = self.requeue(tickets, &reason);
                if let Some(journal) = &self.journal
                    && let Err(err) = journal.record(&requeued).await
                {
                    self.halt(&err);
                }
            }
            Command::Backfill {
                session,
                request,
                reply,
            } => {
                let _ = reply.send(self.backfill(session, request).map_err(JoinError::Refused));
            }
            Command::Withdraw { session } => {
                let open: Vec<TicketId> = (self.desk.backfills.iter())
                    .filter(|(_, s)| **s == session)
                    .map(|(id, _)| *id)
                    .collect();
                for id in open {
                    self.shard.leave(id);
                    self.desk.backfills.remove(&id);
                }
            }
        }
    }

    /// Out of service here: every command but `Load` and `Reset` (which `apply` takes first)
    /// is refused (a cluster's calls reach this only in the moments a lease changes hands).
    fn refuse(&self, command: Command) {
        match command {
            Command::Join { reply, .. } => {
                let _ = reply.send(Err(JoinError::QueueStopped));
            }
            Command::Leave { reply, .. } => {
                let _ = reply.send(LeaveOutcome::Unavailable);
            }
            Command::View { reply, .. } => {
                let _ = reply.send(None);
            }
            Command::Requeue { tickets, reason } => {
                tracing::warn!(queue = %self.desk.queue, reason, dropped = tickets.len(), "requeue refused: the queue is not running here");
            }
            Command::Backfill { reply, .. } => {
                let _ = reply.send(Err(JoinError::QueueStopped));
            }
            Command::Withdraw { .. } | Command::Load { .. } | Command::Reset => {}
        }
    }

    /// A journal write failed: the queue stops here (its tickets as the journal has them, for
    /// whichever node runs it next) until a `Load`.
    fn halt(&mut self, err: &JournalError) {
        tracing::warn!(queue = %self.desk.queue, error = %err, "journal write failed: the queue stops on this node");
        metrics::counter!("cluster_matchmaker_halts_total", "queue" => self.desk.queue.clone())
            .increment(1);
        self.halted = true;
    }

    /// Forgets every ticket (tickets, records, backfill requests).
    fn clear(&mut self) {
        self.shard = Shard::new(self.config.clone()).expect("validated when the actor started");
        self.desk.board.write().clear();
        self.desk.backfills.clear();
        self.desk.searching_players = 0;
    }

    fn reset(&mut self) {
        self.clear();
        self.journal = None;
        self.halted = true;
    }

    /// Starts afresh with the journal's tickets, each keeping its first join time.
    fn load(
        &mut self,
        journal: Arc<Journal>,
        tickets: Vec<JournaledTicket>,
        forming: &[FormingMatch],
    ) {
        self.clear();
        let now = Instant::now();
        let mut board = self.desk.board.write();
        for formed in forming {
            for t in &formed.tickets {
                let record = TicketRecord {
                    ticket_id: t.ticket.ticket_id,
                    queue: self.desk.queue.clone(),
                    players: t.ticket.players.iter().map(|(p, _)| *p).collect(),
                    ratings: t.ticket.players().into_iter().map(|(_, r)| r).collect(),
                    region_latency_ms: t.ticket.region_latency_ms.clone(),
                    created: t.ticket.created(),
                    state: TicketState::Matched,
                    position: 0,
                    estimated_wait_ms: 0,
                    match_id: Some(formed.session_id),
                    ended: Some(now),
                    last_update: now,
                    last_position: 0,
                    idempotency: t.ticket.idempotency.clone(),
                };
                board.insert(record.ticket_id, record);
            }
        }
        drop(board);
        let count = tickets.len();
        for ticket in tickets {
            let created = ticket.created();
            let new = NewTicket {
                ticket_id: ticket.ticket_id,
                players: ticket.players(),
                region_latency_ms: ticket.region_latency_ms,
                idempotency: ticket.idempotency,
            };
            if let Err(err) = self.join_at(new, created) {
                tracing::warn!(ticket_id = %ticket.ticket_id, error = %err, "journaled ticket not reloaded");
            }
        }
        tracing::info!(queue = %self.desk.queue, tickets = count, "queue loaded from the journal");
        self.journal = Some(journal);
        self.halted = false;
    }

    /// A join, journaled (in a cluster) before it is answered or announced.
    async fn join_durably(&mut self, ticket: NewTicket) -> Result<TicketView, JoinError> {
        let id = ticket.ticket_id;
        let (view, announce) = self
            .join_at(ticket, Instant::now())
            .map_err(JoinError::Refused)?;
        if let Some(journal) = &self.journal {
            let record = self.desk.board.with(id, TicketRecord::journaled);
            let written = match record {
                Some(record) => journal.record(&[record]).await,
                None => Ok(()),
            };
            if let Err(err) = written {
                self.shard.leave(TicketId(id.as_u128()));
                if let Some(record) = self.desk.board.write().remove(&id) {
                    self.desk.searching_players -= record.players.len() as u64;
                }
                self.halt(&err);
                return Err(JoinError::QueueStopped);
            }
        }
        self.desk.bus.publish(announce);
        Ok(view)
    }

    /// Adds a ticket first joined at `created`; returns its view and the `queue_update` that
    /// announces it (the caller publishes it once the ticket is safe).
    fn join_at(
        &mut self,
        ticket: NewTicket,
        created: Instant,
    ) -> Result<(TicketView, BusEvent), TicketError> {
        let accepted = self.shard.join(Ticket {
            id: TicketId(ticket.ticket_id.as_u128()),
            members: (ticket.players.iter())
                .map(|&(player, rating)| Member {
                    player: PlayerId(player.as_u128()),
                    rating,
                })
                .collect(),
            region_latency_ms: ticket.region_latency_ms.clone(),
            created_at: self.timestamp(created),
            recent_opponents: Vec::new(),
        })?;
        let record = TicketRecord {
            ticket_id: ticket.ticket_id,
            queue: self.desk.queue.clone(),
            players: ticket.players.iter().map(|(player, _)| *player).collect(),
            ratings: ticket.players.iter().map(|(_, rating)| *rating).collect(),
            region_latency_ms: ticket.region_latency_ms,
            created,
            state: TicketState::Searching,
            position: accepted.position as u64,
            estimated_wait_ms: accepted.estimated_wait_ms,
            match_id: None,
            ended: None,
            last_update: created,
            last_position: accepted.position as u64,
            idempotency: ticket.idempotency,
        };
        let view = record.view();
        let update = ServerEvent::QueueUpdate(record.update());
        self.desk.searching_players += record.players.len() as u64;
        let audience = Audience::Players(record.players.clone());
        self.desk.board.write().insert(ticket.ticket_id, record);
        let announce = BusEvent::Event {
            audience,
            event: update,
        };
        Ok((view, announce))
    }

    fn leave(&mut self, ticket: Uuid) -> LeaveOutcome {
        let outcome = self.shard.leave(TicketId(ticket.as_u128()));
        let mut board = self.desk.board.write();
        let Some(record) = board.get_mut(&ticket) else {
            return LeaveOutcome::NotSearching;
        };
        match (outcome, record.state, record.match_id) {
            (CancelOutcome::Cancelled, _, _) => {
                record.end(TicketState::Cancelled, Instant::now());
                self.desk.searching_players -= record.players.len() as u64;
                let view = record.view();
                let event = BusEvent::Event {
                    audience: Audience::Players(record.players.clone()),
                    event: ServerEvent::QueueUpdate(record.update()),
                };
                drop(board);
                self.desk.bus.publish(event);
                LeaveOutcome::Cancelled(view)
            }
            (CancelOutcome::NotSearching, TicketState::Matched, Some(match_id)) => {
                LeaveOutcome::Matched(match_id)
            }
            (CancelOutcome::NotSearching, _, _) => LeaveOutcome::NotSearching,
        }
    }

    /// Puts tickets back at their first join time. A ticket whose record moved on (its player
    /// left, or joined again elsewhere meanwhile) stays out.
    fn requeue(&mut self, tickets: Vec<FormedTicket>, reason: &str) -> Vec<JournaledTicket> {
        let unplayed: Vec<PlayerId> = (tickets.iter())
            .flat_map(|t| t.players.iter().map(|(p, _)| PlayerId(p.as_u128())))
            .collect();
        let mut board = self.desk.board.write();
        let mut events = Vec::new();
        let mut requeued = Vec::new();
        for ticket in tickets {
            let Some(record) = board.get_mut(&ticket.ticket_id) else {
                continue;
            };
            if record.state != TicketState::Matched {
                continue;
            }
            let rejoined = self.shard.rejoin(
                Ticket {
                    id: TicketId(ticket.ticket_id.as_u128()),
                    members: (ticket.players.iter())
                        .map(|&(player, rating)| Member {
                            player: PlayerId(player.as_u128()),
                            rating,
                        })
                        .collect(),
                    region_latency_ms: ticket.region_latency_ms,
                    created_at: Timestamp(
                        ticket
                            .created
                            .saturating_duration_since(self.epoch)
                            .as_millis() as u64,
                    ),
                    recent_opponents: Vec::new(),
                },
                &unplayed,
            );
            if let Err(err) = rejoined {
                tracing::warn!(ticket_id = %ticket.ticket_id, error = %err, "ticket could not be requeued");
                continue;
            }
            record.state = TicketState::Searching;
            record.match_id = None;
            record.ended = None;
            self.desk.searching_players += record.players.len() as u64;
            requeued.push(record.journaled());
            events.push(BusEvent::Event {
                audience: Audience::Players(record.players.clone()),
                event: ServerEvent::QueueUpdate(record.update()),
            });
        }
        drop(board);
        tracing::info!(queue = %self.desk.queue, reason, requeued = events.len(), "tickets requeued at the front");
        for event in events {
            self.desk.bus.publish(event);
        }
        requeued
    }

    fn backfill(&mut self, session: Uuid, slots: OpenSlots) -> Result<(), TicketError> {
        let region = (self.desk.regions.iter())
            .position(|r| *r == slots.region)
            .ok_or(TicketError::BackfillRegion(RegionId(u8::MAX)))?;
        let id = TicketId(Uuid::now_v7().as_u128());
        self.shard.request_backfill(BackfillRequest {
            id,
            teams: (slots.teams.iter())
                .map(|team| {
                    (team.iter())
                        .map(|&(player, rating)| Member {
                            player: PlayerId(player.as_u128()),
                            rating,
                        })
                        .collect()
                })
                .collect(),
            open_slots: slots.open_slots,
            region: RegionId(region as u8),
            created_at: self.timestamp(Instant::now()),
        })?;
        self.desk.backfills.insert(id, session);
        Ok(())
    }

    async fn tick(&mut self) {
        if self.halted {
            return;
        }
        let started = Instant::now();
        let now = self.timestamp(started);
        self.shard.tick(now);
        let queue = self.desk.queue.clone();
        metrics::histogram!("game_matchmaking_tick_duration_seconds", "queue" => queue.clone())
            .record(started.elapsed().as_secs_f64());
        let (mut formed, events) =
            self.desk
                .record(self.shard.outcome(), self.shard.rating_system(), started);
        // In a cluster the tickets this tick took leave the journal before anything leaves the
        // matchmaker, under the lease's fence (the matches moving to the forming set in the same
        // step): if that fails another node may be matching them, so this tick's outcome never
        // happened here and the queue stops until it is loaded afresh.
        if let Some(journal) = &self.journal {
            let expired = self.shard.outcome().expired.iter();
            let mut gone: Vec<Uuid> = expired.map(|t| Uuid::from_u128(t.0)).collect();
            let mut forming = Vec::with_capacity(formed.len());
            for session in &mut formed {
                // A backfill joins a session that exists already, so a new matchmaker could
                // not tell whether it was stored: its tickets just leave.
                if session.backfill_of.is_some() {
                    gone.extend(session.tickets.iter().map(|t| t.ticket_id));
                } else {
                    forming.push(FormingMatch::of(session));
                    session.forming = Some(journal.clone());
                }
            }
            if let Err(err) = journal.take(&gone, &forming).await {
                self.clear();
                self.halt(&err);
                return;
            }
        }
        // The session service stores each session before anyone hears of its match.
        for session in formed {
            let _ = self.desk.formed.send(session);
        }
        for event in events {
            self.desk.bus.publish(event);
        }
        // Settle the pool once the matches are out, off the path from tick to match_found.
        let settling = Instant::now();
        self.shard.settle();
        metrics::histogram!("game_matchmaking_settle_duration_seconds", "queue" => queue.clone())
            .record(settling.elapsed().as_secs_f64());
        let searching = self.shard.searching() as u64;
        metrics::gauge!("game_queue_searching_tickets", "queue" => queue).set(searching as f64);
        let snapshot = self
            .desk
            .collector
            .snapshot(searching, self.desk.searching_players);
        *self.desk.stats.lock().expect("stats lock") = snapshot;
        if started.duration_since(self.last_sweep) >= Duration::from_secs(60) {
            self.desk.board.forget_ended(started);
            self.last_sweep = started;
        }
    }
}

impl Desk {
    /// Writes the outcome into the board and returns what must leave the matchmaker: the
    /// matches formed and the players' updates. Records first: a player told "matched" also
    /// reads "matched" over REST, and a leave arriving now gets the match id.
    fn record(
        &mut self,
        outcome: &TickOutcome,
        rater: &AnyRatingSystem,
        now: Instant,
    ) -> (Vec<FormedSession>, Vec<BusEvent>) {
        let mut events = Vec::new();
        let board = self.board.clone();
        let mut tickets = board.write();
        let formed = (outcome.matches())
            .map(|formed| self.matched(&formed, rater, now, &mut tickets))
            .collect();
        for request in &outcome.expired_backfills {
            self.backfills.remove(request);
        }
        for id in &outcome.expired {
            let Some(record) = tickets.get_mut(&Uuid::from_u128(id.0)) else {
                continue;
            };
            record.end(TicketState::Expired, now);
            self.searching_players -= record.players.len() as u64;
            events.push(BusEvent::Event {
                audience: Audience::Players(record.players.clone()),
                event: ServerEvent::QueueUpdate(record.update()),
            });
        }
        for entry in &outcome.waiting {
            let Some(record) = tickets.get_mut(&Uuid::from_u128(entry.ticket.0)) else {
                continue;
            };
            record.position = entry.position as u64;
            record.estimated_wait_ms = entry.estimated_wait_ms;
            if record.last_position != record.position
                || now.duration_since(record.last_update) >= self.update_every
            {
                record.last_position = record.position;
                record.last_update = now;
                events.push(BusEvent::Event {
                    audience: Audience::Players(record.players.clone()),
                    event: ServerEvent::QueueUpdate(record.update()),
                });
            }
        }
        drop(tickets);
        (formed, events)
    }

    fn matched(
        &mut self,
        formed: &FormedMatch<'_>,
        rater: &AnyRatingSystem,
        now: Instant,
        tickets: &mut HashMap<Uuid, TicketRecord>,
    ) -> FormedSession {
        let backfill_of = formed
            .backfill
            .and_then(|request| self.backfills.remove(&request));
        let session_id = backfill_of.unwrap_or_else(Uuid::now_v7);
        let display: HashMap<Uuid, f64> = (formed.tickets.iter())
            .filter_map(|id| tickets.get(&Uuid::from_u128(id.0)))
            .flat_map(|t| {
                (t.players.iter().copied()).zip(t.ratings.iter().map(|r| rater.display_rating(r)))
            })
            .collect();
        let teams: Vec<MatchTeam> = formed
            .teams()
            .map(|team| MatchTeam {
                players: (team.players.iter())
                    .map(|player| {
                        let player_id = Uuid::from_u128(player.0);
                        MatchPlayer {
                            player_id,
                            display_rating: display.get(&player_id).copied().unwrap_or_default(),
                        }
                    })
                    .collect(),
                win_probability: team.win_probability,
            })
            .collect();
        let region = (self.regions.get(usize::from(formed.region.0)))
            .cloned()
            .unwrap_or_default();
        let mean_rating =
            formed.teams().map(|t| t.rating_sum).sum::<f64>() / formed.players.len().max(1) as f64;
        let queue = self.queue.clone();
        metrics::counter!("game_matchmaking_success_total", "queue" => queue.clone()).increment(1);
        let mut taken = Vec::with_capacity(formed.tickets.len());
        for (team, members) in formed.teams().enumerate() {
            for ticket_id in members.tickets {
                let Some(record) = tickets.get_mut(&Uuid::from_u128(ticket_id.0)) else {
                    continue;
                };
                let waited = now.saturating_duration_since(record.created);
                metrics::histogram!("game_queue_waiting_seconds", "queue" => queue.clone())
                    .record(waited.as_secs_f64());
                self.collector.record_wait(now, waited);
                record.end(TicketState::Matched, now);
                record.match_id = Some(session_id);
                self.searching_players -= record.players.len() as u64;
                taken.push(FormedTicket {
                    ticket_id: record.ticket_id,
                    team,
                    players: (record.players.iter().copied())
                        .zip(record.ratings.iter().copied())
                        .collect(),
                    region_latency_ms: record.region_latency_ms.clone(),
                    created: record.created,
                    update: record.update(),
                    idempotency: record.idempotency.clone(),
                });
            }
        }
        self.collector.record_match(now, mean_rating, &region);
        tracing::info!(queue = %queue, session_id = %session_id, quality = formed.quality, region = %region, "match formed");
        FormedSession {
            session_id,
            queue,
            region,
            quality: formed.quality,
            teams,
            tickets: taken,
            backfill_of,
            forming: None,
            resumed: false,
        }
    }
}
