//! Live matchmaking: one actor task per configured queue owns the pure matchmaker's pool and
//! ticks it; joins and leaves reach it as commands, so a leave and a forming match are ordered
//! and exactly one of them wins. Outcomes go out as events on the bus, never by calling the
//! WebSocket layer.

mod queue;
mod stats;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;
use versus_core::matchmaking::{
    CancelOutcome, Matchmaker, Member, PlayerId, Ticket, TicketId, UNREACHABLE_MS,
};
use versus_core::rating::RatingSystem as _;
use versus_protocol::queue::{
    JoinQueueRequest, MatchmakingPreferences, MatchmakingStatistics, QueueStatistics, TicketState,
    TicketView,
};
use versus_protocol::ws::{QueueUpdate, ServerEvent};

use crate::config::{MatchmakingConfig, QueueSettings};
use crate::error::ApiError;
use crate::events::{Audience, BusEvent, EventBus};

pub use queue::Command;

/// A player's current (or most recent) ticket.
#[derive(Debug, Clone)]
pub struct PlayerTicket {
    pub ticket_id: Uuid,
    pub queue: String,
    pub created: Instant,
    pub state: TicketState,
    pub position: Option<u64>,
    pub estimated_wait_ms: Option<u64>,
    pub match_id: Option<Uuid>,
    pub ended: Option<Instant>,
}

impl PlayerTicket {
    pub fn view(&self) -> TicketView {
        let until = self.ended.unwrap_or_else(Instant::now);
        TicketView {
            ticket_id: self.ticket_id,
            queue: self.queue.clone(),
            state: self.state,
            position: self
                .position
                .filter(|_| self.state == TicketState::Searching),
            estimated_wait_s: self
                .estimated_wait_ms
                .filter(|_| self.state == TicketState::Searching)
                .map(|ms| ms as f64 / 1000.0),
            elapsed_s: until.duration_since(self.created).as_secs_f64(),
            match_id: self.match_id,
        }
    }

    pub fn update(&self) -> QueueUpdate {
        let view = self.view();
        QueueUpdate {
            ticket_id: view.ticket_id,
            queue: view.queue,
            state: view.state,
            position: view.position,
            estimated_wait: view.estimated_wait_s,
            elapsed_s: view.elapsed_s,
            match_id: view.match_id,
        }
    }
}

/// Tickets by player, shared by the service and the queue actors.
pub type Tickets = Arc<Mutex<HashMap<Uuid, PlayerTicket>>>;

struct QueueHandle {
    settings: QueueSettings,
    matchmaker: Matchmaker,
    commands: mpsc::Sender<Command>,
    stats: Arc<Mutex<QueueStatistics>>,
}

#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error("{0}")]
    Invalid(ApiError),
    #[error("already searching with ticket {0}")]
    AlreadyQueued(Uuid),
}

#[derive(Debug)]
pub enum LeaveError {
    NotQueued,
    AlreadyMatched(Uuid),
}

pub struct Matchmaking {
    queues: BTreeMap<String, QueueHandle>,
    tickets: Tickets,
    idempotency: Mutex<HashMap<(Uuid, String), (Uuid, Instant)>>,
    bus: Arc<dyn EventBus>,
    config: MatchmakingConfig,
}

impl Matchmaking {
    /// Starts one actor per queue. Queue settings were validated with the configuration.
    pub fn start(
        queues: &[QueueSettings],
        config: &MatchmakingConfig,
        bus: Arc<dyn EventBus>,
    ) -> anyhow::Result<Arc<Self>> {
        let tickets: Tickets = Arc::default();
        let epoch = Instant::now();
        let mut handles = BTreeMap::new();
        for settings in queues {
            let core = settings
                .to_core()
                .map_err(|why| anyhow::anyhow!("queue {}: {why}", settings.name))?;
            let matchmaker = Matchmaker::new(core)
                .map_err(|err| anyhow::anyhow!("queue {}: {err}", settings.name))?;
            let (commands, rx) = mpsc::channel(4096);
            let stats = Arc::new(Mutex::new(stats::empty(&settings.name)));
            let actor = queue::QueueActor::new(
                settings.clone(),
                matchmaker.clone(),
                tickets.clone(),
                bus.clone(),
                stats.clone(),
                config.clone(),
                epoch,
            );
            tokio::spawn(actor.run(rx));
            handles.insert(
                settings.name.clone(),
                QueueHandle {
                    settings: settings.clone(),
                    matchmaker,
                    commands,
                    stats,
                },
            );
        }
        Ok(Arc::new(Self {
            queues: handles,
            tickets,
            idempotency: Mutex::default(),
            bus,
            config: config.clone(),
        }))
    }

    pub fn queue_names(&self) -> impl Iterator<Item = &str> {
        self.queues.keys().map(String::as_str)
    }

    /// Puts the player in a queue. With the same `idempotency_key` as an earlier join, answers
    /// that join's ticket instead of creating another. `Ok((view, created))`.
    pub async fn join(
        &self,
        player: Uuid,
        request: &JoinQueueRequest,
        preferences: &MatchmakingPreferences,
        idempotency_key: Option<&str>,
    ) -> Result<(TicketView, bool), JoinError> {
        if let Some(key) = idempotency_key
            && let Some(view) = self.remembered(player, key)
        {
            return Ok((view, false));
        }
        let queue = self.queues.get(&request.queue).ok_or_else(|| {
            let known: Vec<&str> = self.queue_names().collect();
            JoinError::Invalid(ApiError::validation(
                "queue",
                format!("unknown queue; known: {}", known.join(", ")),
            ))
        })?;
        let region_latency_ms =
            region_latencies(&queue.settings, request, preferences).map_err(JoinError::Invalid)?;
        let ticket_id = Uuid::now_v7();
        let now = Instant::now();
        {
            let mut tickets = self.tickets.lock().expect("tickets lock");
            if let Some(existing) = tickets.get(&player)
                && existing.state == TicketState::Searching
            {
                // A retry racing the original join (same key) answers the original's ticket.
                let same_key = idempotency_key.is_some_and(|key| {
                    let keys = self.idempotency.lock().expect("idempotency lock");
                    keys.get(&(player, key.to_owned()))
                        .is_some_and(|(id, _)| *id == existing.ticket_id)
                });
                if same_key {
                    return Ok((existing.view(), false));
                }
                return Err(JoinError::AlreadyQueued(existing.ticket_id));
            }
            if let Some(key) = idempotency_key {
                // Remembered before the queue confirms, so a concurrent retry finds it.
                let mut keys = self.idempotency.lock().expect("idempotency lock");
                keys.insert((player, key.to_owned()), (ticket_id, now));
            }
            tickets.insert(
                player,
                PlayerTicket {
                    ticket_id,
                    queue: request.queue.clone(),
                    created: now,
                    state: TicketState::Searching,
                    position: None,
                    estimated_wait_ms: None,
                    match_id: None,
                    ended: None,
                },
            );
        }
        // Ratings are per player and queue once results are rated; until then every player
        // starts at the queue's initial rating.
        let rating = queue.matchmaker.rating_system().initial_rating();
        let ticket = Ticket {
            id: TicketId(ticket_id.as_u128()),
            members: vec![Member {
                player: PlayerId(player.as_u128()),
                rating,
            }],
            region_latency_ms,
            created_at: versus_core::matchmaking::Timestamp(0),
            recent_opponents: Vec::new(),
        };
        let (reply, answer) = oneshot::channel();
        let sent = queue
            .commands
            .send(Command::Join {
                ticket,
                created: now,
                reply,
            })
            .await;
        let accepted = match sent {
            Ok(()) => answer
                .await
                .unwrap_or_else(|_| Err("the queue stopped".to_owned())),
            Err(_) => Err("the queue stopped".to_owned()),
        };
        if let Err(why) = accepted {
            let mut tickets = self.tickets.lock().expect("tickets lock");
            if tickets
                .get(&player)
                .is_some_and(|t| t.ticket_id == ticket_id)
            {
                tickets.remove(&player);
            }
            if let Some(key) = idempotency_key {
                let mut keys = self.idempotency.lock().expect("idempotency lock");
                keys.remove(&(player, key.to_owned()));
            }
            return Err(JoinError::Invalid(ApiError::validation("queue", why)));
        }
        let view = {
            let tickets = self.tickets.lock().expect("tickets lock");
            tickets
                .get(&player)
                .filter(|t| t.ticket_id == ticket_id)
                .cloned()
        };
        match view {
            Some(ticket) => {
                if ticket.state == TicketState::Searching {
                    self.bus.publish(BusEvent {
                        audience: Audience::Player(player),
                        event: ServerEvent::QueueUpdate(ticket.update()),
                    });
                }
                Ok((ticket.view(), true))
            }
            // A leave raced the join's reply and the ticket is already gone; report it as such.
            None => Ok((
                TicketView {
                    ticket_id,
                    queue: request.queue.clone(),
                    state: TicketState::Cancelled,
                    position: None,
                    estimated_wait_s: None,
                    elapsed_s: 0.0,
                    match_id: None,
                },
                true,
            )),
        }
    }

    fn remembered(&self, player: Uuid, key: &str) -> Option<TicketView> {
        let ttl = Duration::from_secs(self.config.idempotency_ttl_secs);
        // Lock order is tickets, then idempotency: copy the id out before looking at tickets.
        let ticket_id = {
            let keys = self.idempotency.lock().expect("idempotency lock");
            let (ticket_id, at) = keys.get(&(player, key.to_owned()))?;
            (at.elapsed() < ttl).then_some(*ticket_id)?
        };
        let tickets = self.tickets.lock().expect("tickets lock");
        tickets
            .get(&player)
            .filter(|t| t.ticket_id == ticket_id)
            .map(PlayerTicket::view)
    }

    /// Takes the player's searching ticket out of its queue. Exactly one of: cancelled (no match
    /// will include it), already matched (with the match id), or not queued.
    pub async fn leave(&self, player: Uuid) -> Result<TicketView, LeaveError> {
        let (ticket_id, queue) = {
            let tickets = self.tickets.lock().expect("tickets lock");
            let ticket = tickets.get(&player).ok_or(LeaveError::NotQueued)?;
            match ticket.state {
                TicketState::Searching => (ticket.ticket_id, ticket.queue.clone()),
                TicketState::Matched => {
                    return Err(LeaveError::AlreadyMatched(
                        ticket.match_id.unwrap_or_default(),
                    ));
                }
                TicketState::Cancelled | TicketState::Expired => return Err(LeaveError::NotQueued),
            }
        };
        let handle = self.queues.get(&queue).ok_or(LeaveError::NotQueued)?;
        let (reply, answer) = oneshot::channel();
        if handle
            .commands
            .send(Command::Leave {
                ticket: TicketId(ticket_id.as_u128()),
                reply,
            })
            .await
            .is_err()
        {
            return Err(LeaveError::NotQueued);
        }
        let outcome = answer.await.map_err(|_| LeaveError::NotQueued)?;
        let mut tickets = self.tickets.lock().expect("tickets lock");
        let ticket = tickets
            .get_mut(&player)
            .filter(|t| t.ticket_id == ticket_id)
            .ok_or(LeaveError::NotQueued)?;
        match outcome {
            CancelOutcome::Cancelled => {
                ticket.state = TicketState::Cancelled;
                ticket.ended = Some(Instant::now());
                let update = ticket.update();
                let view = ticket.view();
                drop(tickets);
                self.bus.publish(BusEvent {
                    audience: Audience::Player(player),
                    event: ServerEvent::QueueUpdate(update),
                });
                Ok(view)
            }
            CancelOutcome::NotSearching => match (ticket.state, ticket.match_id) {
                (TicketState::Matched, Some(match_id)) => Err(LeaveError::AlreadyMatched(match_id)),
                _ => Err(LeaveError::NotQueued),
            },
        }
    }

    pub fn status(&self, player: Uuid) -> Option<TicketView> {
        self.tickets
            .lock()
            .expect("tickets lock")
            .get(&player)
            .map(PlayerTicket::view)
    }

    pub fn is_searching(&self, player: Uuid) -> bool {
        self.tickets
            .lock()
            .expect("tickets lock")
            .get(&player)
            .is_some_and(|t| t.state == TicketState::Searching)
    }

    pub fn statistics(&self) -> MatchmakingStatistics {
        MatchmakingStatistics {
            queues: self
                .queues
                .values()
                .map(|q| q.stats.lock().expect("stats lock").clone())
                .collect(),
        }
    }

    /// Forgets finished tickets an hour old and expired idempotency keys, so the maps hold only
    /// recent players.
    pub fn forget_finished(&self) {
        let ttl = Duration::from_secs(self.config.idempotency_ttl_secs);
        let mut keys = self.idempotency.lock().expect("idempotency lock");
        keys.retain(|_, (_, at)| at.elapsed() < ttl);
        drop(keys);
        let mut tickets = self.tickets.lock().expect("tickets lock");
        tickets.retain(|_, t| {
            t.ended
                .is_none_or(|ended| ended.elapsed() < Duration::from_secs(3600))
        });
    }
}

/// Latency to each of the queue's regions: what the client measured; for regions it did not
/// measure, the budget if the player prefers the region (or has no preference and measured
/// nothing), else unreachable.
fn region_latencies(
    settings: &QueueSettings,
    request: &JoinQueueRequest,
    preferences: &MatchmakingPreferences,
) -> Result<Vec<u32>, ApiError> {
    for (region, latency) in &request.latencies {
        if !settings.regions.contains(region) {
            return Err(ApiError::validation(
                format!("latencies.{region}"),
                format!(
                    "not a region of this queue; regions: {}",
                    settings.regions.join(", ")
                ),
            ));
        }
        if *latency > 60_000 {
            return Err(ApiError::validation(
                format!("latencies.{region}"),
                "must be at most 60000 ms",
            ));
        }
    }
    let latencies: Vec<u32> = settings
        .regions
        .iter()
        .map(|region| match request.latencies.get(region) {
            Some(ms) => *ms,
            None if preferences.regions.iter().any(|p| p == region) => settings.latency_budget_ms,
            None if request.latencies.is_empty() && preferences.regions.is_empty() => {
                settings.latency_budget_ms
            }
            None => UNREACHABLE_MS,
        })
        .collect();
    if latencies.iter().all(|ms| *ms == UNREACHABLE_MS) {
        return Err(ApiError::validation(
            "latencies",
            "no region of this queue is reachable",
        ));
    }
    Ok(latencies)
}
