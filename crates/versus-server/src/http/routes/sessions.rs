//! Game sessions over REST: the game-server API (authenticated by the server key) and reading
//! a session (its game server, or a player on its roster).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use versus_core::session::Actor;
use versus_protocol::Problem;
use versus_protocol::sessions::{
    BackfillSlots, CustomSession, HeartbeatAck, ResultApplied, ResultReport, SessionView,
    StateChange,
};

use crate::http::auth::{AdminPlayer, AuthPlayer};
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{ApiJson, parse_uuid};
use crate::http::game_server::GameServer;
use crate::http::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_session))
        .routes(routes!(get_session))
        .routes(routes!(heartbeat))
        .routes(routes!(set_state))
        .routes(routes!(report_result))
        .routes(routes!(backfill))
}

/// Create a session with a given roster (a tournament game, a private match); it is allocated a
/// game server like a matched one, and its players get `session_ready`.
#[utoipa::path(
    post, path = "/api/v1/sessions", tag = "sessions",
    security(("server_key" = [])),
    request_body = CustomSession,
    responses(
        (status = 201, description = "Created and allocated (`ready`)", body = SessionView),
        (status = 400, description = "Unknown queue, a roster with fewer than two teams, an empty team, or a player twice", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "A player on the roster does not exist (`player_not_found`)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or wrong server key", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "No game server could take it (the session is cancelled)", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn create_session(
    State(state): State<AppState>,
    _server: GameServer,
    ApiJson(body): ApiJson<CustomSession>,
) -> ApiResult<(StatusCode, Json<SessionView>)> {
    let view = state.sessions.create_custom(body).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// A session: its state and history, its teams, its game server, its result. Readable by its
/// game server (server key), by the players on its roster, and by admins.
#[utoipa::path(
    get, path = "/api/v1/sessions/{id}", tag = "sessions",
    security(("bearer" = []), ("server_key" = [])),
    params(("id" = uuid::Uuid, Path, description = "Session id")),
    responses(
        (status = 200, description = "The session", body = SessionView),
        (status = 400, description = "The id is not a UUID", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid credentials", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Neither a player of this session nor an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such session", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn get_session(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Json<SessionView>> {
    let id = parse_uuid("id", &id)?;
    if !GameServer::presented(&state, &headers) {
        let player = AuthPlayer::from_headers(&state, &headers).await?;
        if !state.sessions.roster_has(id, player.id).await?
            && !AdminPlayer::is_admin(&state, player.id).await?
        {
            return Err(ApiError::Forbidden(
                "only the session's players, its game server and admins may read it",
            ));
        }
    }
    Ok(Json(state.sessions.view(id).await?))
}

/// Keep a `ready` or `active` session alive. Without one for `sessions.heartbeat_ttl_secs` (the
/// first due within `sessions.ready_timeout_secs` of allocation) it becomes `abandoned`.
#[utoipa::path(
    post, path = "/api/v1/sessions/{id}/heartbeat", tag = "sessions",
    security(("server_key" = [])),
    params(("id" = uuid::Uuid, Path, description = "Session id")),
    responses(
        (status = 200, description = "Alive; the next heartbeat is due within `next_within_s`", body = HeartbeatAck),
        (status = 400, description = "The id is not a UUID", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or wrong server key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such session", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The session is not live (`session_not_live`; `detail` names its state)", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn heartbeat(
    State(state): State<AppState>,
    _server: GameServer,
    Path(id): Path<String>,
) -> ApiResult<Json<HeartbeatAck>> {
    let id = parse_uuid("id", &id)?;
    Ok(Json(state.sessions.heartbeat(id).await?))
}

/// Move the session: `active` (the game started), `ended`, or `cancelled`, with a reason the
/// players are shown. A move the lifecycle does not allow is refused with the current state.
#[utoipa::path(
    put, path = "/api/v1/sessions/{id}/state", tag = "sessions",
    security(("server_key" = [])),
    params(("id" = uuid::Uuid, Path, description = "Session id")),
    request_body = StateChange,
    responses(
        (status = 200, description = "Moved", body = SessionView),
        (status = 400, description = "A state a game server may not set", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or wrong server key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such session", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not allowed from the current state (`illegal_transition`; `detail` names it)", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn set_state(
    State(state): State<AppState>,
    _server: GameServer,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<StateChange>,
) -> ApiResult<Json<SessionView>> {
    let id = parse_uuid("id", &id)?;
    Ok(Json(
        state
            .sessions
            .set_state(id, body, Actor::GameServer)
            .await?,
    ))
}

/// Report the session's result, once: every player exactly once, each team as the session
/// formed it (a free-for-all: one player per team), rank 1 = best, equal ranks tie. Ratings
/// change in the same transaction; then every player gets `rating_update`. The same result
/// posted again answers the same; a different one is refused.
#[utoipa::path(
    post, path = "/api/v1/sessions/{id}/result", tag = "sessions",
    security(("server_key" = [])),
    params(("id" = uuid::Uuid, Path, description = "Session id")),
    request_body = ResultReport,
    responses(
        (status = 200, description = "Recorded (or already recorded, identically): each player's outcome and rating change", body = ResultApplied),
        (status = 400, description = "The result does not fit the roster (`field` is `teams`)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or wrong server key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such session", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Another result was recorded (`result_conflict`), or the session is not live (`session_not_live`)", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn report_result(
    State(state): State<AppState>,
    _server: GameServer,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ResultReport>,
) -> ApiResult<Json<ResultApplied>> {
    let id = parse_uuid("id", &id)?;
    Ok(Json(state.sessions.report_result(id, body).await?))
}

/// Players left: fill these slots. The queue fills backfill requests before forming new
/// matches; the new players get `match_found` and `session_ready` for this session.
#[utoipa::path(
    post, path = "/api/v1/sessions/{id}/backfill", tag = "sessions",
    security(("server_key" = [])),
    params(("id" = uuid::Uuid, Path, description = "Session id")),
    request_body = BackfillSlots,
    responses(
        (status = 202, description = "Requested; the queue fills it when it can"),
        (status = 400, description = "A team that does not exist, no open slot, or a queue without backfill", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or wrong server key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such session", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The session is not live (`session_not_live`)", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn backfill(
    State(state): State<AppState>,
    _server: GameServer,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<BackfillSlots>,
) -> ApiResult<StatusCode> {
    let id = parse_uuid("id", &id)?;
    state.sessions.backfill(id, body).await?;
    Ok(StatusCode::ACCEPTED)
}
