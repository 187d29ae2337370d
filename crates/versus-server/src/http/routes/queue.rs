//! The matchmaking queue over REST: join, leave, status, preferences, statistics.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use time::OffsetDateTime;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use versus_core::account::Region;
use versus_protocol::Problem;
use versus_protocol::queue::{
    JoinQueueRequest, MatchmakingPreferences, MatchmakingStatistics, TicketView,
};

use crate::http::auth::AuthPlayer;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::ApiJson;
use crate::http::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(join))
        .routes(routes!(leave))
        .routes(routes!(status))
        .routes(routes!(get_preferences, put_preferences))
        .routes(routes!(statistics))
}

const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// Start searching for a match. One searching ticket per player; repeating a join with the same
/// `Idempotency-Key` header answers the same ticket. With `party_id`, the party's leader queues
/// the whole party as one ticket once every member is ready (`POST /api/v1/parties/{id}/ready`).
#[utoipa::path(
    post, path = "/api/v1/queue/join", tag = "matchmaking",
    security(("bearer" = [])),
    request_body = JoinQueueRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries of this join safe: the same key answers the same ticket")),
    responses(
        (status = 201, description = "Searching", body = TicketView),
        (status = 200, description = "The ticket of an earlier join with the same Idempotency-Key", body = TicketView),
        (status = 400, description = "Unknown queue or region, bad latency", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, invalid or expired access token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`party_id` names a party whose leader is someone else (`not_party_leader`) or that the player is not in", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`party_id` names no party (`party_not_found`)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Already searching (`already_queued`); the Idempotency-Key was used for a different request (`idempotency_key_reused`); a party not every member of which is ready (`party_not_ready`), with a member already searching alone (`member_queued`); a party member queueing alone (`in_party`)", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The queue is not running or has too many joins waiting", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn join(
    State(state): State<AppState>,
    player: AuthPlayer,
    headers: HeaderMap,
    ApiJson(request): ApiJson<JoinQueueRequest>,
) -> ApiResult<(StatusCode, Json<TicketView>)> {
    let key = match headers.get(IDEMPOTENCY_KEY) {
        None => None,
        Some(value) => {
            let key = value.to_str().ok().filter(|k| {
                (1..=255).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_graphic())
            });
            Some(key.ok_or_else(|| {
                ApiError::validation(
                    "Idempotency-Key",
                    "must be 1 to 255 visible ASCII characters",
                )
            })?)
        }
    };
    let joined = state.parties.join_queue(player.id, &request, key).await?;
    let status = match joined.created {
        true => StatusCode::CREATED,
        false => StatusCode::OK,
    };
    Ok((status, Json(joined.ticket)))
}

/// Stop searching. If a match already took the ticket, answers 409 with the match id and the
/// ticket stays matched: a leave and a match never both happen.
#[utoipa::path(
    delete, path = "/api/v1/queue/leave", tag = "matchmaking",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Cancelled; no match will include this ticket", body = TicketView),
        (status = 401, description = "Missing, invalid or expired access token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No searching ticket (`not_queued`)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Already matched (`already_matched`); `detail` names the match", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn leave(State(state): State<AppState>, player: AuthPlayer) -> ApiResult<Json<TicketView>> {
    Ok(Json(state.matchmaking.leave(player.id).await?))
}

/// The player's current or most recent ticket: position, estimated wait, elapsed time.
#[utoipa::path(
    get, path = "/api/v1/queue/status", tag = "matchmaking",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The ticket", body = TicketView),
        (status = 401, description = "Missing, invalid or expired access token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No ticket (`not_queued`)", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn status(State(state): State<AppState>, player: AuthPlayer) -> ApiResult<Json<TicketView>> {
    state
        .matchmaking
        .status(player.id)
        .await
        .map(Json)
        .ok_or(ApiError::NotFoundCode {
            code: "not_queued",
            detail: "no ticket".into(),
        })
}

/// The caller's matchmaking preferences.
#[utoipa::path(
    get, path = "/api/v1/matchmaking/preferences", tag = "matchmaking",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Preferences (empty lists when never set)", body = MatchmakingPreferences),
        (status = 401, description = "Missing, invalid or expired access token", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn get_preferences(
    State(state): State<AppState>,
    player: AuthPlayer,
) -> ApiResult<Json<MatchmakingPreferences>> {
    Ok(Json(state.matchmaking.preferences(player.id).await?))
}

/// Set the regions the caller will play in (best first) and the modes they care about.
#[utoipa::path(
    put, path = "/api/v1/matchmaking/preferences", tag = "matchmaking",
    security(("bearer" = [])),
    request_body = MatchmakingPreferences,
    responses(
        (status = 200, description = "Stored", body = MatchmakingPreferences),
        (status = 400, description = "Unknown region or mode, or too many", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, invalid or expired access token", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn put_preferences(
    State(state): State<AppState>,
    player: AuthPlayer,
    ApiJson(body): ApiJson<MatchmakingPreferences>,
) -> ApiResult<Json<MatchmakingPreferences>> {
    if body.regions.len() > 16 {
        return Err(ApiError::validation("regions", "at most 16 regions"));
    }
    if body.modes.len() > 16 {
        return Err(ApiError::validation("modes", "at most 16 modes"));
    }
    let mut regions = Vec::with_capacity(body.regions.len());
    for (i, raw) in body.regions.iter().enumerate() {
        let region =
            Region::parse(raw).map_err(|e| ApiError::validation(format!("regions[{i}]"), e))?;
        if !regions.contains(&region) {
            regions.push(region);
        }
    }
    let known: Vec<&str> = state.matchmaking.queue_names().collect();
    for (i, mode) in body.modes.iter().enumerate() {
        if !known.contains(&mode.as_str()) {
            return Err(ApiError::validation(
                format!("modes[{i}]"),
                format!("unknown mode; known: {}", known.join(", ")),
            ));
        }
    }
    let stored = versus_store::MatchmakingPreferences {
        regions,
        modes: body.modes,
    };
    state
        .store
        .set_matchmaking_preferences(player.id, &stored, OffsetDateTime::now_utc())
        .await?;
    Ok(Json(state.matchmaking.preferences(player.id).await?))
}

/// Per queue: searching tickets, matches per minute, time to match, and where matches form.
#[utoipa::path(
    get, path = "/api/v1/matchmaking/statistics", tag = "matchmaking",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Statistics per queue", body = MatchmakingStatistics),
        (status = 401, description = "Missing, invalid or expired access token", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn statistics(
    State(state): State<AppState>,
    _player: AuthPlayer,
) -> Json<MatchmakingStatistics> {
    Json(state.matchmaking.statistics().await)
}
