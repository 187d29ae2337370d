//! Game sessions, results and ratings on the wire: the game-server API's bodies, the player
//! reads (a session, ratings, rating history, match history), and the pages they come in.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

/// A session's state: `allocating → ready → active → ended`, or `cancelled` / `abandoned`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SessionStateName {
    Allocating,
    Ready,
    Active,
    Ended,
    Cancelled,
    Abandoned,
}

/// `GET /api/v1/sessions/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SessionView {
    pub session_id: Uuid,
    pub queue: String,
    pub state: SessionStateName,
    /// Whether its result changes ratings.
    pub ranked: bool,
    pub region: Option<String>,
    /// The game server's address, once allocated.
    pub endpoint: Option<String>,
    pub teams: Vec<SessionTeam>,
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Every state change, oldest first.
    pub transitions: Vec<TransitionView>,
    /// The reported result, once there is one.
    pub result: Option<Vec<ResultTeam>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SessionTeam {
    #[schema(min_items = 1, max_items = 64)]
    pub players: Vec<Uuid>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TransitionView {
    /// `null` for the session's creation.
    pub from: Option<SessionStateName>,
    pub to: SessionStateName,
    /// `system`, `game_server` or `admin`.
    pub actor: String,
    pub reason: String,
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// `PUT /api/v1/sessions/{id}/state` (game server).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StateChange {
    /// `active`, `ended` or `cancelled`.
    pub state: SessionStateName,
    /// Shown to the players with the change.
    #[serde(default)]
    pub reason: Option<String>,
}

/// `POST /api/v1/sessions/{id}/heartbeat` answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct HeartbeatAck {
    pub state: SessionStateName,
    /// Send the next heartbeat within this many seconds.
    pub next_within_s: u64,
}

/// One team of a result: its players and its rank (1 = best; equal ranks tie).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResultTeam {
    #[schema(min_items = 1, max_items = 64)]
    pub players: Vec<Uuid>,
    #[serde(deserialize_with = "whole_number")]
    #[schema(minimum = 1, maximum = 1000)]
    pub rank: u32,
}

/// `POST /api/v1/sessions/{id}/result` (game server): every player of the session exactly once,
/// each team as the session formed it. A free-for-all reports one player per team.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResultReport {
    #[schema(min_items = 1, max_items = 64)]
    pub teams: Vec<ResultTeam>,
}

/// The answer to a result: each player's outcome and rating change. The same result posted
/// again gets the same answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ResultApplied {
    pub session_id: Uuid,
    /// Whether ratings changed (a ranked session's result).
    pub rated: bool,
    pub players: Vec<RatingChange>,
}

/// One player's rating change from one session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RatingChange {
    pub player_id: Uuid,
    pub queue: String,
    pub session_id: Uuid,
    /// `win`, `loss` or `draw`.
    pub outcome: String,
    pub before: RatingValue,
    pub after: RatingValue,
    /// `after.display_rating − before.display_rating`.
    pub change: f64,
}

/// A rating in the queue's system.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RatingValue {
    /// Skill estimate (Elo/Glicko-2 rating, Weng-Lin/TrueSkill μ).
    pub rating: f64,
    /// Uncertainty (Glicko-2 RD, Weng-Lin/TrueSkill σ; 0 for Elo).
    pub deviation: f64,
    /// The conservative figure leaderboards show (e.g. μ − 3σ).
    pub display_rating: f64,
}

/// `POST /api/v1/sessions/{id}/backfill` (game server): players left; fill these slots.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BackfillSlots {
    #[schema(min_items = 1, max_items = 64)]
    pub slots: Vec<BackfillSlot>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BackfillSlot {
    /// The team's index in the session.
    #[serde(deserialize_with = "whole_number")]
    #[schema(minimum = 0, maximum = 63)]
    pub team: usize,
    #[serde(deserialize_with = "whole_number")]
    #[schema(minimum = 1, maximum = 64)]
    pub count: usize,
}

/// `POST /api/v1/sessions` (game server): a session with a given roster (a tournament game, a
/// private match), allocated like a matched one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomSession {
    pub queue: String,
    #[schema(min_items = 2, max_items = 64)]
    pub teams: Vec<SessionTeam>,
    #[serde(default)]
    pub ranked: bool,
}

/// A player's rating in one queue (`GET /api/v1/players/{id}/ratings`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct QueueRating {
    pub queue: String,
    #[serde(flatten)]
    pub value: RatingValue,
    pub games: u64,
    pub wins: u64,
    pub losses: u64,
    pub draws: u64,
    /// The player's place on the queue's leaderboard; absent during placement games.
    pub rank: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PlayerRatings {
    pub player_id: Uuid,
    /// One entry per queue the player has a rated game in.
    pub ratings: Vec<QueueRating>,
}

/// One rated game in a player's history of one queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RatingHistoryEntry {
    #[serde(flatten)]
    pub change: RatingChange,
    /// The queue's season it counted for.
    pub season: u32,
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// One finished game in a player's match history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MatchHistoryEntry {
    pub session_id: Uuid,
    pub queue: String,
    /// The player's team index in the session.
    pub team: usize,
    /// `win`, `loss` or `draw`.
    pub outcome: String,
    pub rank: u32,
    pub teams: Vec<SessionTeam>,
    /// The player's display-rating change, when the game was rated.
    pub rating_change: Option<f64>,
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "time::serde::rfc3339")]
    pub ended_at: OffsetDateTime,
}

/// A page of a list, newest first. `next` is the cursor of the following page (`null`: none).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

/// An integer field that also takes a whole number written as a float (`75.0`): JSON Schema, and
/// so the OpenAPI document, counts it as an integer.
fn whole_number<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<u64>,
{
    struct Whole;
    impl serde::de::Visitor<'_> for Whole {
        type Value = u64;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a non-negative integer")
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<u64, E> {
            Ok(v)
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<u64, E> {
            u64::try_from(v).map_err(|_| E::custom("must not be negative"))
        }
        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<u64, E> {
            // 2^53: beyond it an f64 no longer holds every integer.
            if v.fract() == 0.0 && (0.0..=9_007_199_254_740_992.0).contains(&v) {
                Ok(v as u64)
            } else {
                Err(E::custom("must be a non-negative integer"))
            }
        }
    }
    let value = deserializer.deserialize_any(Whole)?;
    T::try_from(value).map_err(|_| serde::de::Error::custom("out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_fields_take_whole_floats_only() {
        let team: ResultTeam = serde_json::from_str(r#"{"players": [], "rank": 2.0}"#).unwrap();
        assert_eq!(team.rank, 2);
        for bad in ["2.5", "-1", "1e300", "\"2\"", "4294967296"] {
            let body = format!(r#"{{"players": [], "rank": {bad}}}"#);
            assert!(serde_json::from_str::<ResultTeam>(&body).is_err(), "{bad}");
        }
    }
}
