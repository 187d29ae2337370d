//! One queue's actor: owns the pool, applies joins and leaves between ticks, ticks on a timer,
//! and turns each outcome into ticket state and events.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;
use versus_core::matchmaking::{
    CancelOutcome, FormedMatch, Matchmaker, OpponentMemory, QueueState, TickOutcome, Ticket,
    TicketId, Timestamp,
};
use versus_core::rating::{PlayerRating, RatingSystem as _};
use versus_protocol::queue::{QueueStatistics, TicketState};
use versus_protocol::ws::{MatchFound, MatchPlayer, MatchTeam, ServerEvent};

use super::Tickets;
use super::stats::Collector;
use crate::config::{MatchmakingConfig, QueueSettings};
use crate::events::{Audience, BusEvent, EventBus};

pub enum Command {
    Join {
        ticket: Ticket,
        created: Instant,
        reply: oneshot::Sender<Result<(), String>>,
    },
    Leave {
        ticket: TicketId,
        reply: oneshot::Sender<CancelOutcome>,
    },
}

struct Waiting {
    players: Vec<Uuid>,
    /// Ratings the ticket was matched on, for the display ratings in `match_found`.
    ratings: Vec<PlayerRating>,
    created: Instant,
    last_update: Instant,
    last_position: Option<u64>,
}

pub struct QueueActor {
    settings: QueueSettings,
    matchmaker: Matchmaker,
    state: QueueState,
    outcome: TickOutcome,
    memory: OpponentMemory,
    waiting: HashMap<TicketId, Waiting>,
    tickets: Tickets,
    bus: Arc<dyn EventBus>,
    stats: Arc<Mutex<QueueStatistics>>,
    collector: Collector,
    config: MatchmakingConfig,
    epoch: Instant,
}

impl QueueActor {
    pub fn new(
        settings: QueueSettings,
        matchmaker: Matchmaker,
        tickets: Tickets,
        bus: Arc<dyn EventBus>,
        stats: Arc<Mutex<QueueStatistics>>,
        config: MatchmakingConfig,
        epoch: Instant,
    ) -> Self {
        Self {
            state: matchmaker.new_state(),
            outcome: TickOutcome::default(),
            memory: OpponentMemory::new(settings.recent_opponent_memory),
            collector: Collector::new(&settings.name),
            settings,
            matchmaker,
            waiting: HashMap::new(),
            tickets,
            bus,
            stats,
            config,
            epoch,
        }
    }

    fn timestamp(&self, at: Instant) -> Timestamp {
        Timestamp(at.saturating_duration_since(self.epoch).as_millis() as u64)
    }

    pub async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        let mut ticks = tokio::time::interval(Duration::from_millis(self.config.tick_ms));
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
            Command::Join {
                mut ticket,
                created,
                reply,
            } => {
                ticket.created_at = self.timestamp(created);
                ticket.recent_opponents = self
                    .memory
                    .opponents_of(ticket.members.iter().map(|m| m.player));
                let players = ticket
                    .members
                    .iter()
                    .map(|m| Uuid::from_u128(m.player.0))
                    .collect();
                let ratings = ticket.members.iter().map(|m| m.rating).collect();
                let id = ticket.id;
                let result = self.state.add(ticket).map_err(|err| err.to_string());
                if result.is_ok() {
                    self.waiting.insert(
                        id,
                        Waiting {
                            players,
                            ratings,
                            created,
                            last_update: created,
                            last_position: None,
                        },
                    );
                }
                let _ = reply.send(result);
            }
            Command::Leave { ticket, reply } => {
                let outcome = self.state.cancel(ticket);
                if outcome == CancelOutcome::Cancelled {
                    self.waiting.remove(&ticket);
                }
                let _ = reply.send(outcome);
            }
        }
    }

    fn tick(&mut self) {
        let started = Instant::now();
        let now = self.timestamp(started);
        // One outcome kept across ticks: a tick allocates nothing once the lists have grown.
        let mut outcome = std::mem::take(&mut self.outcome);
        self.matchmaker
            .tick_into(now, &mut self.state, &mut outcome);
        let queue = self.settings.name.clone();
        metrics::histogram!("game_matchmaking_tick_duration_seconds", "queue" => queue.clone())
            .record(started.elapsed().as_secs_f64());
        self.publish(&outcome, started);
        self.outcome = outcome;
        // Settle the pool once the matches are out, off the path from tick to match_found.
        let settling = Instant::now();
        self.state.maintain();
        metrics::histogram!("game_matchmaking_settle_duration_seconds", "queue" => queue.clone())
            .record(settling.elapsed().as_secs_f64());
        metrics::gauge!("game_queue_searching_tickets", "queue" => queue)
            .set(self.state.len() as f64);
        let snapshot = self
            .collector
            .snapshot(self.state.len() as u64, self.searching_players());
        *self.stats.lock().expect("stats lock") = snapshot;
    }

    fn searching_players(&self) -> u64 {
        self.waiting.values().map(|w| w.players.len() as u64).sum()
    }

    fn publish(&mut self, outcome: &TickOutcome, now: Instant) {
        let mut events = Vec::new();
        let tickets = self.tickets.clone();
        let mut tickets = tickets.lock().expect("tickets lock");
        for formed in outcome.matches() {
            self.memory.record(&formed);
            self.matched(&formed, now, &mut tickets, &mut events);
        }
        for id in &outcome.expired {
            let Some(waiting) = self.waiting.remove(id) else {
                continue;
            };
            for player in waiting.players {
                if let Some(ticket) = ticket_of(&mut tickets, player, *id) {
                    ticket.state = TicketState::Expired;
                    ticket.ended = Some(now);
                    events.push(BusEvent {
                        audience: Audience::Player(player),
                        event: ServerEvent::QueueUpdate(ticket.update()),
                    });
                }
            }
        }
        let interval = Duration::from_secs(self.config.queue_update_interval_secs);
        for entry in &outcome.waiting {
            let Some(waiting) = self.waiting.get_mut(&entry.ticket) else {
                continue;
            };
            let position = entry.position as u64;
            let due = waiting.last_position != Some(position)
                || now.duration_since(waiting.last_update) >= interval;
            for player in &waiting.players {
                if let Some(ticket) = ticket_of(&mut tickets, *player, entry.ticket) {
                    ticket.position = Some(position);
                    ticket.estimated_wait_ms = Some(entry.estimated_wait_ms);
                    if due {
                        events.push(BusEvent {
                            audience: Audience::Player(*player),
                            event: ServerEvent::QueueUpdate(ticket.update()),
                        });
                    }
                }
            }
            if due {
                waiting.last_position = Some(position);
                waiting.last_update = now;
            }
        }
        // Ticket state is updated before any event leaves: a player told "matched" also reads
        // "matched" over REST, and a leave arriving now gets the match id.
        drop(tickets);
        for event in events {
            self.bus.publish(event);
        }
    }

    fn matched(
        &mut self,
        formed: &FormedMatch<'_>,
        now: Instant,
        tickets: &mut HashMap<Uuid, super::PlayerTicket>,
        events: &mut Vec<BusEvent>,
    ) {
        let match_id = Uuid::now_v7();
        let rater = self.matchmaker.rating_system();
        let display: HashMap<Uuid, f64> = formed
            .tickets
            .iter()
            .filter_map(|id| self.waiting.get(id))
            .flat_map(|w| {
                w.players
                    .iter()
                    .copied()
                    .zip(w.ratings.iter().map(|r| rater.display_rating(r)))
            })
            .collect();
        let teams: Vec<MatchTeam> = formed
            .teams()
            .map(|team| MatchTeam {
                players: team
                    .players
                    .iter()
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
        let region = self
            .settings
            .regions
            .get(formed.region.0 as usize)
            .cloned()
            .unwrap_or_default();
        let mean_rating =
            formed.teams().map(|t| t.rating_sum).sum::<f64>() / formed.players.len().max(1) as f64;
        let queue = self.settings.name.clone();
        metrics::counter!("game_matchmaking_success_total", "queue" => queue.clone()).increment(1);
        for ticket_id in formed.tickets {
            let Some(waiting) = self.waiting.remove(ticket_id) else {
                continue;
            };
            let waited = now.saturating_duration_since(waiting.created);
            metrics::histogram!("game_queue_waiting_seconds", "queue" => queue.clone())
                .record(waited.as_secs_f64());
            self.collector.record_wait(now, waited);
            for player in waiting.players {
                let Some(ticket) = ticket_of(tickets, player, *ticket_id) else {
                    continue;
                };
                ticket.state = TicketState::Matched;
                ticket.match_id = Some(match_id);
                ticket.ended = Some(now);
                events.push(BusEvent {
                    audience: Audience::Player(player),
                    event: ServerEvent::MatchFound(MatchFound {
                        match_id,
                        queue: queue.clone(),
                        ticket_id: ticket.ticket_id,
                        region: region.clone(),
                        quality: formed.quality,
                        teams: teams.clone(),
                    }),
                });
                events.push(BusEvent {
                    audience: Audience::Player(player),
                    event: ServerEvent::QueueUpdate(ticket.update()),
                });
            }
        }
        self.collector.record_match(now, mean_rating, &region);
        tracing::info!(queue = %queue, match_id = %match_id, quality = formed.quality, region = %region, "match formed");
    }
}

/// The player's ticket, if it is still `id` (a newer join replaces the entry).
fn ticket_of(
    tickets: &mut HashMap<Uuid, super::PlayerTicket>,
    player: Uuid,
    id: TicketId,
) -> Option<&mut super::PlayerTicket> {
    tickets
        .get_mut(&player)
        .filter(|t| t.ticket_id.as_u128() == id.0)
}
