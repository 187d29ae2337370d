//! Leaderboards on the wire (`GET /api/v1/leaderboards/…`).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

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
    pub total: u64,
    pub entry: LeaderboardEntry,
    /// Share of the board ranked below the player, in percent (rank 1 of 100 → 99).
    pub percentile: f64,
}
