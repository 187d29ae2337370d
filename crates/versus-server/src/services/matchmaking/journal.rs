//! The matchmaker's journal of searching tickets in a cluster: what a newly elected matchmaker
//! loads, so that a matchmaker dying loses no ticket and no player's wait.
//!
//! Every write is fenced: it happens only while the writer still holds the matchmaker lease
//! (one Redis script checks the lease and writes). A ticket is journaled before its join is
//! answered, and removed before the match that took it leaves the matchmaker; a matchmaker
//! whose removal is fenced off (it lost the lease, or Redis is away) sends that tick's matches
//! nowhere and stops until it leads again with a fresh load. So two matchmakers can never both
//! match one ticket: only one removal of it can pass the fence.
//!
//! A match's tickets do not just leave: in the same fenced step they move to the queue's
//! *forming* set, as the match they formed, until its session is stored. A new matchmaker
//! finishes what the old one left there: a match already stored is announced again (the bus
//! drops what was already published, so players hear of it once), one not stored is stored now
//! under the same id; and a match whose tickets were put back (no game server) is dropped. So
//! neither a ticket nor a formed match is lost when a matchmaker dies at any point.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use uuid::Uuid;
use versus_core::rating::PlayerRating;
use versus_protocol::queue::JoinQueueRequest;
use versus_protocol::ws::{MatchTeam, QueueUpdate};

use super::actor::{FormedSession, FormedTicket};

use crate::services::redis::{JournalError, Redis, RedisDown};

/// The lease that fences the journal: the matchmaker's (`services::cluster`).
const LEASE: &str = "matchmaker";

/// A searching ticket as journaled.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JournaledTicket {
    pub ticket_id: Uuid,
    /// Each player with their rating: `(id, [rating, deviation, volatility])`.
    pub players: Vec<(Uuid, [f64; 3])>,
    pub region_latency_ms: Vec<u32>,
    /// When the ticket first joined (Unix ms): a reloaded ticket keeps its wait.
    pub joined_at_ms: i64,
    /// The `Idempotency-Key` its join was sent with: a client retrying that join after the
    /// matchmaker died (its answer lost with it) gets this ticket from the next one, not a 409.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency: Option<JournaledKey>,
}

/// A join's `Idempotency-Key`, whose it is, and the request it came with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JournaledKey {
    pub player: Uuid,
    pub key: String,
    pub request: JoinQueueRequest,
}

impl JournaledTicket {
    pub fn new(
        ticket_id: Uuid,
        players: &[(Uuid, PlayerRating)],
        region_latency_ms: &[u32],
        created: Instant,
    ) -> Self {
        let age = Instant::now().saturating_duration_since(created);
        Self {
            ticket_id,
            players: (players.iter())
                .map(|(p, r)| (*p, [r.rating, r.deviation, r.volatility]))
                .collect(),
            region_latency_ms: region_latency_ms.to_vec(),
            joined_at_ms: now_ms() - age.as_millis() as i64,
            idempotency: None,
        }
    }

    pub fn with_key(self, idempotency: Option<JournaledKey>) -> Self {
        Self {
            idempotency,
            ..self
        }
    }

    pub fn players(&self) -> Vec<(Uuid, PlayerRating)> {
        (self.players.iter())
            .map(|(p, [rating, deviation, volatility])| {
                let rating = PlayerRating {
                    rating: *rating,
                    deviation: *deviation,
                    volatility: *volatility,
                };
                (*p, rating)
            })
            .collect()
    }

    /// When it joined, on this process's clock.
    pub fn created(&self) -> Instant {
        let age = Duration::from_millis((now_ms() - self.joined_at_ms).max(0) as u64);
        let now = Instant::now();
        now.checked_sub(age).unwrap_or(now)
    }
}

/// A formed match between leaving the journal and being stored as a session.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FormingMatch {
    pub session_id: Uuid,
    pub region: String,
    pub quality: f64,
    pub teams: Vec<MatchTeam>,
    pub tickets: Vec<FormingTicket>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FormingTicket {
    pub ticket: JournaledTicket,
    pub team: usize,
    pub update: QueueUpdate,
}

impl FormingMatch {
    pub fn of(formed: &FormedSession) -> Self {
        Self {
            session_id: formed.session_id,
            region: formed.region.clone(),
            quality: formed.quality,
            teams: formed.teams.clone(),
            tickets: (formed.tickets.iter())
                .map(|t| FormingTicket {
                    ticket: JournaledTicket::new(
                        t.ticket_id,
                        &t.players,
                        &t.region_latency_ms,
                        t.created,
                    )
                    .with_key(t.idempotency.clone()),
                    team: t.team,
                    update: t.update.clone(),
                })
                .collect(),
        }
    }

    /// The match as the sessions service takes it, to be stored (again) under its id.
    pub fn into_formed(self, queue: &str, forming: Option<Arc<Journal>>) -> FormedSession {
        FormedSession {
            session_id: self.session_id,
            queue: queue.to_owned(),
            region: self.region,
            quality: self.quality,
            teams: self.teams,
            tickets: (self.tickets.into_iter())
                .map(|t| FormedTicket {
                    ticket_id: t.ticket.ticket_id,
                    team: t.team,
                    players: t.ticket.players(),
                    region_latency_ms: t.ticket.region_latency_ms.clone(),
                    created: t.ticket.created(),
                    update: t.update,
                    idempotency: t.ticket.idempotency,
                })
                .collect(),
            backfill_of: None,
            forming,
            resumed: true,
        }
    }
}

/// Hash fields: each item as JSON under its id.
fn entries<T: Serialize>(items: &[T], id: impl Fn(&T) -> Uuid) -> Vec<(String, String)> {
    (items.iter())
        .map(|item| {
            let value = serde_json::to_string(item).expect("journal entries serialise");
            (id(item).to_string(), value)
        })
        .collect()
}

fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// One queue's journal, written as one node.
pub struct Journal {
    redis: Arc<Redis>,
    node: String,
    queue: String,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        (f.debug_struct("Journal"))
            .field("node", &self.node)
            .field("queue", &self.queue)
            .finish_non_exhaustive()
    }
}

impl Journal {
    pub fn new(redis: Arc<Redis>, node: String, queue: String) -> Self {
        Self { redis, node, queue }
    }

    pub async fn record(&self, tickets: &[JournaledTicket]) -> Result<(), JournalError> {
        let entries = entries(tickets, |t| t.ticket_id);
        (self.redis)
            .journal_put(LEASE, &self.queue, &self.node, &entries)
            .await
    }

    pub async fn forget(&self, tickets: &[Uuid]) -> Result<(), JournalError> {
        if tickets.is_empty() {
            return Ok(());
        }
        let ids: Vec<String> = tickets.iter().map(Uuid::to_string).collect();
        (self.redis)
            .journal_remove(LEASE, &self.queue, &self.node, &ids)
            .await
    }

    /// Takes a tick's tickets out: the `expired` ones, and those of the `formed` matches, which
    /// move to the forming set in the same fenced step.
    pub async fn take(
        &self,
        expired: &[Uuid],
        formed: &[FormingMatch],
    ) -> Result<(), JournalError> {
        if expired.is_empty() && formed.is_empty() {
            return Ok(());
        }
        let ids: Vec<String> = (expired.iter().copied())
            .chain(
                formed
                    .iter()
                    .flat_map(|m| m.tickets.iter().map(|t| t.ticket.ticket_id)),
            )
            .map(|id| id.to_string())
            .collect();
        let forming = entries(formed, |m| m.session_id);
        (self.redis)
            .journal_form(LEASE, &self.queue, &self.node, &ids, &forming)
            .await
    }

    /// These matches are stored as sessions (or their tickets are back in the journal).
    pub async fn formed(&self, sessions: &[Uuid]) -> Result<(), RedisDown> {
        let ids: Vec<String> = sessions.iter().map(Uuid::to_string).collect();
        self.redis.forming_remove(LEASE, &self.queue, &ids).await
    }

    /// The matches a matchmaker left forming (unreadable entries are skipped and logged).
    pub async fn forming(&self) -> Result<Vec<FormingMatch>, JournalError> {
        let entries = self.redis.forming_all(LEASE, &self.queue).await?;
        Ok((entries.into_iter())
            .filter_map(|(id, value)| match serde_json::from_str(&value) {
                Ok(formed) => Some(formed),
                Err(err) => {
                    tracing::warn!(session_id = %id, error = %err, "unreadable forming entry skipped");
                    None
                }
            })
            .collect())
    }

    /// Every journaled ticket of the queue, oldest first (unreadable entries are skipped and
    /// logged).
    pub async fn load(&self) -> Result<Vec<JournaledTicket>, JournalError> {
        let entries = self.redis.journal_all(LEASE, &self.queue).await?;
        let mut tickets: Vec<JournaledTicket> = (entries.into_iter())
            .filter_map(|(id, value)| match serde_json::from_str(&value) {
                Ok(ticket) => Some(ticket),
                Err(err) => {
                    tracing::warn!(ticket_id = %id, error = %err, "unreadable journal entry skipped");
                    None
                }
            })
            .collect();
        tickets.sort_by_key(|t| (t.joined_at_ms, t.ticket_id));
        Ok(tickets)
    }
}
