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
//! Left open by design: a matchmaker that dies between removing a match's tickets and storing
//! its session loses those tickets (their players are told nothing and queue again); the other
//! order could match them twice.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use uuid::Uuid;
use versus_core::rating::PlayerRating;

use crate::services::redis::{JournalError, Redis};

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

fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// One queue's journal, written as one node.
pub struct Journal {
    redis: Arc<Redis>,
    node: String,
    queue: String,
}

impl Journal {
    pub fn new(redis: Arc<Redis>, node: String, queue: String) -> Self {
        Self { redis, node, queue }
    }

    pub async fn record(&self, tickets: &[JournaledTicket]) -> Result<(), JournalError> {
        let entries: Vec<(String, String)> = (tickets.iter())
            .map(|t| {
                let value = serde_json::to_string(t).expect("tickets serialise");
                (t.ticket_id.to_string(), value)
            })
            .collect();
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
