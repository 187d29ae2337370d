//! Matchmaking queue bodies (REST) — also the `data` of the WebSocket `queue.join` message.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// `POST /api/v1/queue/join`, and the `data` of a WebSocket `queue.join`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JoinQueueRequest {
    /// A configured queue, e.g. `ranked-1v1`.
    #[schema(example = "ranked-1v1")]
    pub queue: String,
    /// Round-trip latency in milliseconds to each region, as the client measured it. Regions
    /// left out fall back to the player's preferences (acceptable at the queue's budget) or, with
    /// no preferences, are treated as unreachable unless no latency is given at all.
    #[serde(default)]
    #[schema(example = json!({"eu": 35, "na": 110}))]
    pub latencies: BTreeMap<String, u32>,
}

/// Where a ticket is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TicketState {
    Searching,
    Matched,
    Cancelled,
    Expired,
}

/// A matchmaking ticket as its owner sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TicketView {
    pub ticket_id: Uuid,
    pub queue: String,
    pub state: TicketState,
    /// 1 = the next ticket to pick; present while searching.
    pub position: Option<u64>,
    /// Expected remaining wait in seconds, from recent time-to-match at this rating.
    pub estimated_wait_s: Option<f64>,
    /// Seconds since the ticket was created.
    pub elapsed_s: f64,
    /// The match the ticket ended in, once matched.
    pub match_id: Option<Uuid>,
}

/// `PUT /api/v1/matchmaking/preferences`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MatchmakingPreferences {
    /// Regions the player is willing to play in, best first. Empty: any region within budget.
    #[serde(default)]
    #[schema(example = json!(["eu", "na"]))]
    pub regions: Vec<String>,
    /// Queues (modes) the player is interested in. Informational for now.
    #[serde(default)]
    #[schema(example = json!(["ranked-1v1"]))]
    pub modes: Vec<String>,
}

/// `GET /api/v1/matchmaking/statistics`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MatchmakingStatistics {
    pub queues: Vec<QueueStatistics>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct QueueStatistics {
    pub queue: String,
    pub searching_tickets: u64,
    pub searching_players: u64,
    /// Matches formed over the last minute.
    pub matches_per_minute: f64,
    /// Time to match over the recent window (seconds); `None` before the first match.
    pub ttm_p50_s: Option<f64>,
    pub ttm_p95_s: Option<f64>,
    pub matches_total: u64,
    /// Matches by the average rating of their players, in bands of `band_width`.
    pub by_rating_band: Vec<RatingBandCount>,
    /// Matches by the region they were placed in.
    pub by_region: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RatingBandCount {
    /// Inclusive lower bound of the band.
    pub from: f64,
    /// Exclusive upper bound.
    pub to: f64,
    pub matches: u64,
}
