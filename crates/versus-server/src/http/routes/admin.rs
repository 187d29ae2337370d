//! The admin API (`/api/v1/admin/…`): admins only (`versus admin grant USERNAME`); every
//! other caller gets 401 (no or a bad token) or 403 (a player's). Every action is recorded.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use versus_core::session::Actor;
use versus_protocol::Problem;
use versus_protocol::admin::{AdminActionView, AnnouncementRequest, BanRequest, BanView};
use versus_protocol::leaderboards::SeasonInfo;
use versus_protocol::sessions::{Page, SessionView, StateChange};

use crate::http::auth::AdminPlayer;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{ApiJson, parse_uuid};
use crate::http::routes::players::PageQuery;
use crate::http::state::AppState;
use crate::services::sessions;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(ban))
        .routes(routes!(unban))
        .routes(routes!(announce))
        .routes(routes!(actions))
        .routes(routes!(set_session_state))
        .routes(routes!(rollover))
}

/// End the queue's current season now and start the next: its final standings are frozen
/// (readable with `?season=N`), every rating is softly reset and every count restarts, as at a
/// scheduled rollover. The new season ends on the queue's schedule.
#[utoipa::path(
    post, path = "/api/v1/admin/leaderboards/{queue}/rollover", tag = "admin",
    security(("bearer" = [])),
    params(("queue" = String, Path, description = "Queue name")),
    responses(
        (status = 200, description = "The new season", body = SeasonInfo),
        (status = 401, description = "Missing, invalid or expired access token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such queue (`queue_not_found`)", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn rollover(
    State(state): State<AppState>,
    admin: AdminPlayer,
    Path(queue): Path<String>,
) -> ApiResult<Json<SeasonInfo>> {
    let season = state.leaderboards.rollover(&queue, Some(admin.id)).await?;
    Ok(Json(state.leaderboards.season_info(&queue, &season)?))
}

/// Ban a player: their refresh tokens are revoked, their access tokens stop working at once on
/// this node (within their lifetime everywhere), their sockets close (4003), their ticket
/// leaves the queue, and they cannot log in until unbanned.
#[utoipa::path(
    post, path = "/api/v1/admin/players/{id}/ban", tag = "admin",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Player id")),
    request_body = BanRequest,
    responses(
        (status = 200, description = "Banned", body = BanView),
        (status = 400, description = "Bad id or body", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, invalid or expired access token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such player", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "An admin cannot ban themselves (`cannot_ban_self`)", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn ban(
    State(state): State<AppState>,
    admin: AdminPlayer,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<BanRequest>,
) -> ApiResult<Json<BanView>> {
    let id = parse_uuid("id", &id)?;
    if id == admin.id {
        // An admin locked out by their own hand would need the command line to get back in.
        return Err(ApiError::Conflict {
            code: "cannot_ban_self",
            field: Some("id"),
            detail: "an admin cannot ban themselves".into(),
        });
    }
    let player = (state.admin.ban(admin.id, id, reason(body)?).await?)
        .ok_or(ApiError::NotFound("player"))?;
    // Their party goes on without them (its ticket, if searching, is cancelled).
    state.parties.remove(id).await?;
    Ok(Json(BanView {
        player_id: player.id,
        banned: player.banned,
    }))
}

/// Lift a ban. The player logs in again; the logins the ban revoked stay revoked.
#[utoipa::path(
    post, path = "/api/v1/admin/players/{id}/unban", tag = "admin",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Player id")),
    request_body = BanRequest,
    responses(
        (status = 200, description = "Unbanned", body = BanView),
        (status = 400, description = "Bad id or body", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, invalid or expired access token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such player", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn unban(
    State(state): State<AppState>,
    admin: AdminPlayer,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<BanRequest>,
) -> ApiResult<Json<BanView>> {
    let id = parse_uuid("id", &id)?;
    let player = (state.admin.unban(admin.id, id, reason(body)?).await?)
        .ok_or(ApiError::NotFound("player"))?;
    Ok(Json(BanView {
        player_id: player.id,
        banned: player.banned,
    }))
}

/// The record's reason, at most 500 characters.
fn reason(body: BanRequest) -> ApiResult<Option<String>> {
    match body.reason {
        Some(reason) if reason.chars().count() > 500 => {
            Err(ApiError::validation("reason", "at most 500 characters"))
        }
        reason => Ok(reason),
    }
}

/// Send every connected player a `system_announcement`.
#[utoipa::path(
    post, path = "/api/v1/admin/announcements", tag = "admin",
    security(("bearer" = [])),
    request_body = AnnouncementRequest,
    responses(
        (status = 202, description = "Recorded and sent"),
        (status = 400, description = "Bad body", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, invalid or expired access token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn announce(
    State(state): State<AppState>,
    admin: AdminPlayer,
    ApiJson(body): ApiJson<AnnouncementRequest>,
) -> ApiResult<StatusCode> {
    let message = body.message.trim();
    if message.is_empty() || body.message.chars().count() > 500 {
        return Err(ApiError::validation("message", "1 to 500 characters"));
    }
    state.admin.announce(admin.id, message.to_owned()).await?;
    Ok(StatusCode::ACCEPTED)
}

/// The record of admin actions, newest first.
#[utoipa::path(
    get, path = "/api/v1/admin/actions", tag = "admin",
    security(("bearer" = [])),
    params(PageQuery),
    responses(
        (status = 200, description = "A page of the record", body = Page<AdminActionView>),
        (status = 400, description = "Bad cursor or limit", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, invalid or expired access token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn actions(
    State(state): State<AppState>,
    _admin: AdminPlayer,
    Query(page): Query<PageQuery>,
) -> ApiResult<Json<Page<AdminActionView>>> {
    let (cursor, limit) = page.parse()?;
    let rows = state.admin.actions(cursor, limit + 1).await?;
    let (rows, next) = sessions::page(rows, limit, |row| versus_store::Cursor {
        at: row.at,
        id: row.id,
    });
    let items = (rows.into_iter())
        .map(|row| AdminActionView {
            id: row.id,
            admin_id: row.admin_id,
            action: row.action,
            target: row.target,
            details: row.details,
            at: row.at,
        })
        .collect();
    Ok(Json(Page { items, next }))
}

/// Move a session as an admin (`active`, `ended`, `cancelled`); stored with actor `admin`.
#[utoipa::path(
    put, path = "/api/v1/admin/sessions/{id}/state", tag = "admin",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Session id")),
    request_body = StateChange,
    responses(
        (status = 200, description = "Moved", body = SessionView),
        (status = 400, description = "Bad id, or a state that cannot be set", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, invalid or expired access token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such session", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not allowed from the current state (`illegal_transition`)", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn set_session_state(
    State(state): State<AppState>,
    admin: AdminPlayer,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<StateChange>,
) -> ApiResult<Json<SessionView>> {
    let id = parse_uuid("id", &id)?;
    let details = serde_json::json!({ "state": body.state, "reason": body.reason });
    let view = state.sessions.set_state(id, body, Actor::Admin).await?;
    (state.admin)
        .record(admin.id, "set_session_state", id.to_string(), details)
        .await?;
    Ok(Json(view))
}
