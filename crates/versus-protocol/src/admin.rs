//! The admin API's bodies (`/api/v1/admin/…`, admins only).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

/// `POST /api/v1/admin/players/{id}/ban` and `…/unban`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BanRequest {
    /// Why, for the record (shown to no player).
    #[serde(default)]
    #[schema(max_length = 500)]
    pub reason: Option<String>,
}

/// A player's standing after a ban or unban.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BanView {
    pub player_id: Uuid,
    pub banned: bool,
}

/// `POST /api/v1/admin/announcements`: sent to every connected player as
/// `system_announcement`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AnnouncementRequest {
    #[schema(min_length = 1, max_length = 500)]
    pub message: String,
}

/// One recorded admin action (`GET /api/v1/admin/actions`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AdminActionView {
    pub id: Uuid,
    /// The admin who acted; absent for the server's command line.
    pub admin_id: Option<Uuid>,
    /// `ban`, `unban`, `announce`, `grant_admin`, `revoke_admin`, `set_session_state`.
    pub action: String,
    pub target: Option<String>,
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: OffsetDateTime,
}
