//! A queue's board: the server's one record of each of the queue's tickets (who is on it, its
//! state, position, estimated wait, the match it ended in), written only by the queue's actor
//! and read by anyone. The actor writes a ticket's record before it tells anybody about the
//! ticket, so what a player reads over REST is never behind what an event told them.
//!
//! Records of ended tickets stay readable for [`KEEP_ENDED`] (a player asks "what happened to
//! my ticket?"), then the actor drops them.

use std::collections::HashMap;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use uuid::Uuid;
use versus_core::rating::PlayerRating;
use versus_protocol::queue::{TicketState, TicketView};
use versus_protocol::ws::QueueUpdate;

use super::journal::{JournaledKey, JournaledTicket};

/// How long an ended ticket stays readable.
pub const KEEP_ENDED: Duration = Duration::from_secs(3600);

/// One ticket, as the server knows it beside the core's pool.
#[derive(Debug, Clone)]
pub struct TicketRecord {
    pub ticket_id: Uuid,
    pub queue: String,
    pub players: Vec<Uuid>,
    /// The ratings the ticket is matched on, for the display ratings in `match_found`.
    pub ratings: Vec<PlayerRating>,
    /// Latency to each of the queue's regions: what a requeue needs to put it back.
    pub region_latency_ms: Vec<u32>,
    pub created: Instant,
    pub state: TicketState,
    pub position: u64,
    pub estimated_wait_ms: u64,
    pub match_id: Option<Uuid>,
    pub ended: Option<Instant>,
    /// When the players were last sent a `queue_update`, and the position it told them.
    pub(super) last_update: Instant,
    pub(super) last_position: u64,
    /// The join's `Idempotency-Key`, journaled with the ticket wherever it goes.
    pub idempotency: Option<JournaledKey>,
}

impl TicketRecord {
    /// The ticket as the cluster's journal keeps it.
    pub fn journaled(&self) -> JournaledTicket {
        JournaledTicket::new(
            self.ticket_id,
            &self.players_with_ratings(),
            &self.region_latency_ms,
            self.created,
        )
        .with_key(self.idempotency.clone())
    }

    /// Each player with the rating the ticket was matched on.
    pub fn players_with_ratings(&self) -> Vec<(Uuid, PlayerRating)> {
        (self.players.iter().copied())
            .zip(self.ratings.iter().copied())
            .collect()
    }

    pub fn view(&self) -> TicketView {
        let searching = self.state == TicketState::Searching;
        let until = self.ended.unwrap_or_else(Instant::now);
        TicketView {
            ticket_id: self.ticket_id,
            queue: self.queue.clone(),
            state: self.state,
            position: searching.then_some(self.position),
            estimated_wait_s: searching.then_some(self.estimated_wait_ms as f64 / 1000.0),
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

    /// Ends the ticket in `state` (matched, cancelled, expired) at `at`.
    pub(super) fn end(&mut self, state: TicketState, at: Instant) {
        self.state = state;
        self.ended = Some(at);
    }
}

/// Ticket records by ticket id.
#[derive(Debug, Default)]
pub struct Board {
    tickets: RwLock<HashMap<Uuid, TicketRecord>>,
}

impl Board {
    pub fn view(&self, ticket: Uuid) -> Option<TicketView> {
        self.read().get(&ticket).map(TicketRecord::view)
    }

    /// Whether the ticket is searching; `None` if the board has no such ticket.
    pub fn is_searching(&self, ticket: Uuid) -> Option<bool> {
        self.read()
            .get(&ticket)
            .map(|t| t.state == TicketState::Searching)
    }

    fn read(&self) -> RwLockReadGuard<'_, HashMap<Uuid, TicketRecord>> {
        self.tickets.read().expect("board lock")
    }

    /// `f` of the ticket's record, if the board has it.
    pub(super) fn with<T>(&self, ticket: Uuid, f: impl FnOnce(&TicketRecord) -> T) -> Option<T> {
        self.read().get(&ticket).map(f)
    }

    /// For the actor only: the one writer.
    pub(super) fn write(&self) -> RwLockWriteGuard<'_, HashMap<Uuid, TicketRecord>> {
        self.tickets.write().expect("board lock")
    }

    /// Drops records of tickets that ended more than [`KEEP_ENDED`] ago.
    pub(super) fn forget_ended(&self, now: Instant) {
        self.write().retain(|_, t| {
            t.ended
                .is_none_or(|ended| now.saturating_duration_since(ended) < KEEP_ENDED)
        });
    }
}
