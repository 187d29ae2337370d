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
    BackfillRequest, CancelOutcome, FormedMatch, Member, PlayerId, RegionId, Shard, TickOutcome,
    Ticket, TicketError, TicketId, Timestamp,
};
use versus_core::rating::{AnyRatingSystem, PlayerRating, RatingSystem as _};
use versus_protocol::queue::{QueueStatistics, TicketState, TicketView};
use versus_protocol::ws::{MatchPlayer, MatchTeam, QueueUpdate, ServerEvent};

use super::board::{Board, TicketRecord};
use super::stats::Collector;
use crate::config::MatchmakingConfig;
use crate::services::events::{Audience, BusEvent, EventBus};

/// What the matchmaking service asks of a queue. Owned data and one-shot replies only: the
/// same commands could travel to a queue owned by another node.
pub enum Command {
    Join {
        ticket: NewTicket,
        reply: oneshot::Sender<Result<TicketView, TicketError>>,
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
        reply: oneshot::Sender<Result<(), TicketError>>,
    },
    /// The session ended: its open backfill request, if any, goes.
    Withdraw { session: Uuid },
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
}

/// A ticket as the service hands it over; the actor dates it and fills in the rest.
pub struct NewTicket {
    pub ticket_id: Uuid,
    pub players: Vec<(Uuid, PlayerRating)>,
    /// Latency to each of the queue's regions, in the queue's order.
    pub region_latency_ms: Vec<u32>,
}

/// How a leave ended: exactly one of these.
#[derive(Debug)]
pub enum LeaveOutcome {
    Cancelled(TicketView),
    /// A match took the ticket first.
    Matched(Uuid),
    /// Expired, cancelled already, or unknown here.
    NotSearching,
}

pub struct QueueActor {
    shard: Shard,
    desk: Desk,
    epoch: Instant,
    tick_every: Duration,
    last_sweep: Instant,
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
                    Some(command) => self.apply(command),
                    None => break,
                },
                _ = ticks.tick() => self.tick(),
            }
        }
    }

    fn apply(&mut self, command: Command) {
        match command {
            Command::Join { ticket, reply } => {
                let _ = reply.send(self.join(ticket));
            }
            Command::Leave { ticket, reply } => {
                let _ = reply.send(self.leave(ticket));
            }
            Command::View { ticket, reply } => {
                let _ = reply.send(self.desk.board.view(ticket));
            }
            Command::Requeue { tickets, reason } => self.requeue(tickets, &reason),
            Command::Backfill {
                session,
                request,
                reply,
            } => {
                let _ = reply.send(self.backfill(session, request));
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

    fn join(&mut self, ticket: NewTicket) -> Result<TicketView, TicketError> {
        let created = Instant::now();
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
        };
        let view = record.view();
        let update = ServerEvent::QueueUpdate(record.update());
        self.desk.searching_players += record.players.len() as u64;
        let audience = Audience::Players(record.players.clone());
        self.desk.board.write().insert(ticket.ticket_id, record);
        self.desk.bus.publish(BusEvent::Event {
            audience,
            event: update,
        });
        Ok(view)
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
    fn requeue(&mut self, tickets: Vec<FormedTicket>, reason: &str) {
        let unplayed: Vec<PlayerId> = (tickets.iter())
            .flat_map(|t| t.players.iter().map(|(p, _)| PlayerId(p.as_u128())))
            .collect();
        let mut board = self.desk.board.write();
        let mut events = Vec::new();
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

    fn tick(&mut self) {
        let started = Instant::now();
        let now = self.timestamp(started);
        self.shard.tick(now);
        let queue = self.desk.queue.clone();
        metrics::histogram!("game_matchmaking_tick_duration_seconds", "queue" => queue.clone())
            .record(started.elapsed().as_secs_f64());
        self.desk
            .publish(self.shard.outcome(), self.shard.rating_system(), started);
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
    /// Writes the outcome into the board, then tells the players. Records first: a player told
    /// "matched" also reads "matched" over REST, and a leave arriving now gets the match id.
    fn publish(&mut self, outcome: &TickOutcome, rater: &AnyRatingSystem, now: Instant) {
        let mut events = Vec::new();
        let board = self.board.clone();
        let mut tickets = board.write();
        for formed in outcome.matches() {
            self.matched(&formed, rater, now, &mut tickets);
        }
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
        for event in events {
            self.bus.publish(event);
        }
    }

    fn matched(
        &mut self,
        formed: &FormedMatch<'_>,
        rater: &AnyRatingSystem,
        now: Instant,
        tickets: &mut HashMap<Uuid, TicketRecord>,
    ) {
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
                });
            }
        }
        // The session service stores the session before anyone hears of the match.
        let _ = self.formed.send(FormedSession {
            session_id,
            queue: queue.clone(),
            region: region.clone(),
            quality: formed.quality,
            teams,
            tickets: taken,
            backfill_of,
        });
        self.collector.record_match(now, mean_rating, &region);
        tracing::info!(queue = %queue, session_id = %session_id, quality = formed.quality, region = %region, "match formed");
    }
}
