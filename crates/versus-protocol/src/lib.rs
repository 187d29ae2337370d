//! Wire types of the Versus API: REST request and response bodies (and, later, WebSocket
//! messages), shared by the server and the Rust SDK so they cannot drift apart.
//!
//! Architecture invariant: this crate holds plain data only. Validation of what the fields mean
//! lives in `versus-core` newtypes; the server parses these bodies into them.

use serde::{Deserialize, Deserializer, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

pub mod admin;
pub mod leaderboards;
pub mod parties;
pub mod patterns;
pub mod problem;
pub mod queue;
pub mod session_token;
pub mod sessions;
pub mod ws;

pub use problem::Problem;

/// `POST /api/v1/auth/register`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// 3–32 characters of `[A-Za-z0-9_-]`, unique case-insensitively.
    #[schema(example = "ada_lovelace")]
    pub username: String,
    /// 8–128 characters.
    #[schema(example = "correct horse battery staple")]
    pub password: String,
    /// Defaults to the username.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
}

/// `POST /api/v1/auth/login`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
}

/// `POST /api/v1/auth/device`: log into the guest account bound to this device, creating it the
/// first time.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceLoginRequest {
    /// 6–128 visible ASCII characters (`!` to `~`). A credential: send a random id of at least
    /// 128 bits (e.g. a UUID v4) generated once and kept on the device; anyone who knows it can
    /// log into the account.
    #[schema(example = "5f0c6b0e-2a7d-4c1e-9f3b-8d2e41a7c9b0")]
    pub device_id: String,
}

/// `POST /api/v1/auth/link`: give the (guest) account a username and password. It keeps its id
/// and data; the device still logs into it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkRequest {
    /// 3–32 characters of `[A-Za-z0-9_-]`, unique case-insensitively.
    #[schema(example = "ada_lovelace")]
    pub username: String,
    /// 8–128 characters.
    #[schema(example = "correct horse battery staple")]
    pub password: String,
}

/// `POST /api/v1/auth/refresh` and `POST /api/v1/auth/logout`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

/// An OAuth 2 token response (RFC 6749 §5.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TokenResponse {
    /// A short-lived JWT; send it as `Authorization: Bearer <token>`.
    pub access_token: String,
    /// Opaque, single-use: each refresh returns a new one and spends the old one. Repeating a
    /// refresh within `auth.refresh_grace_secs` (a retry whose answer was lost) returns the same
    /// pair again; presenting a spent token at any other time revokes the login.
    pub refresh_token: String,
    /// Always `Bearer`.
    #[schema(example = "Bearer")]
    pub token_type: String,
    /// Lifetime of the access token in seconds.
    #[schema(example = 900)]
    pub expires_in: u64,
}

/// The answer to a successful registration: the new account, already logged in.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RegisterResponse {
    pub player: PlayerProfile,
    #[serde(flatten)]
    pub tokens: TokenResponse,
}

/// A player's own view of their account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PlayerProfile {
    pub id: Uuid,
    pub username: String,
    pub display_name: String,
    pub email: Option<String>,
    pub region: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
    /// Games over every queue (`GET /api/v1/players/me` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<PlayerStats>,
}

/// A player's game counts over every queue, and their leaderboard ranks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PlayerStats {
    pub games: u64,
    pub wins: u64,
    pub losses: u64,
    pub draws: u64,
    /// The player's rank on each queue's leaderboard they are on (past placement games).
    #[serde(default)]
    pub ranks: Vec<QueueRank>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct QueueRank {
    pub queue: String,
    pub rank: u64,
}

/// What anyone may see of a player: no email, no secrets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PublicPlayer {
    pub id: Uuid,
    pub username: String,
    pub display_name: String,
    pub region: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
}

/// `PATCH /api/v1/players/me`. Absent fields are left alone; `"region": null` clears the region.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdatePlayerRequest {
    /// 1–32 printable characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// A region code such as `eu` or `na-east`, or `null` to clear it.
    #[serde(
        default,
        deserialize_with = "present_or_null",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>)]
    pub region: Option<Option<String>>,
}

/// Tells a field that is absent (`None`) from one that is `null` (`Some(None)`).
fn present_or_null<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// `GET /health`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    pub status: String,
}

/// `GET /health/detailed`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DetailedHealth {
    /// `ok` when every backend is up, `degraded` otherwise.
    pub status: String,
    pub version: String,
    pub uptime_seconds: u64,
    pub backends: Vec<BackendHealth>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BackendHealth {
    /// What the backend is for, e.g. `store`.
    pub name: String,
    /// Which engine serves it, e.g. `sqlite` or `postgres`.
    pub kind: String,
    /// `up` or `down`.
    pub status: String,
    pub latency_ms: Option<f64>,
    pub error: Option<String>,
}
