//! Leaderboards on the wire (`GET /api/v1/leaderboards/…`).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

/// One season of a queue's board.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SeasonInfo {
    /// 1, 2, …
    pub number: u32,
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    /// When it ended (a past season) or is scheduled to end (the current one); `null`: the
    /// current season has no scheduled end (only an admin ends it).
    #[schema(value_type = Option<String>, format = DateTime)]
    #[serde(with = "time::serde::rfc3339::option")]
    pub ends_at: Option<OffsetDateTime>,
    /// Whether this is the current season (its board still moves; a past one is frozen).
    pub current: bool,
    /// When the queue's current season is scheduled to end and the board to reset.
    #[schema(value_type = Option<String>, format = DateTime)]
    #[serde(with = "time::serde::rfc3339::option")]
    pub next_reset: Option<OffsetDateTime>,
}

/// A queue's seasons, oldest first (`GET /api/v1/leaderboards/{queue}/seasons`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SeasonList {
    pub queue: String,
    pub seasons: Vec<SeasonInfo>,
}

/// How a player ended each past season of a queue they played, newest first
/// (`GET /api/v1/players/{id}/seasons/{queue}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PlayerSeasons {
    pub queue: String,
    pub seasons: Vec<PlayerSeason>,
}

/// How a player ended one past season.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PlayerSeason {
    pub season: u32,
    /// Final rank; `null` when still in placement games at the end.
    pub rank: Option<u64>,
    /// Final display rating.
    pub rating: f64,
    pub games: u64,
    pub wins: u64,
    pub losses: u64,
    pub draws: u64,
}

/// One place on a board.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LeaderboardEntry {
    /// 1 = best. Higher display rating first; a tie goes to whoever reached it first.
    pub rank: u64,
    pub player_id: Uuid,
    pub display_name: String,
    /// The queue's conservative display rating (e.g. μ − 3σ), what the board ranks on.
    pub rating: f64,
    pub games: u64,
    pub wins: u64,
}

/// A page of a board. `next` and `prev` are cursors for `?cursor=`: positions on the board, not
/// offsets, so paging either way neither repeats nor skips a player while ranks change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LeaderboardPage {
    pub queue: String,
    pub season: SeasonInfo,
    /// Players on the board (past their placement games).
    pub total: u64,
    pub entries: Vec<LeaderboardEntry>,
    pub next: Option<String>,
    pub prev: Option<String>,
}

/// One player's place (`GET /api/v1/leaderboards/{queue}/players/{id}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LeaderboardStanding {
    pub queue: String,
    pub season: SeasonInfo,
    pub total: u64,
    pub entry: LeaderboardEntry,
    /// Share of the board ranked below the player, in percent (rank 1 of 100 → 99).
    pub percentile: f64,
}
