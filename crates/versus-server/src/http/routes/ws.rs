//! `GET /ws`: the player's real-time channel (see `versus_protocol::ws` for the protocol).

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{FromRequestParts as _, Query, State};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use versus_protocol::Problem;

use crate::http::auth::AuthPlayer;
use crate::http::error::{ApiError, ApiResult};
use crate::http::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(websocket))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WsQuery {
    /// For browsers, which cannot set headers on a WebSocket handshake.
    token: Option<String>,
    last_event_id: Option<u64>,
}

/// Open the player's WebSocket. Authenticate with `Authorization: Bearer <token>` or, from a
/// browser, `?token=<token>`. `?last_event_id=N` resumes the event stream after event N.
#[utoipa::path(
    get, path = "/ws", tag = "realtime",
    params(
        ("token" = Option<String>, Query, description = "Access token, when no Authorization header can be sent"),
        ("last_event_id" = Option<u64>, Query, description = "Resume after this stream event id"),
    ),
    responses(
        (status = 101, description = "Switching to the WebSocket protocol"),
        (status = 400, description = "Not a WebSocket upgrade, or bad query", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, invalid or expired access token", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn websocket(State(state): State<AppState>, mut parts: Parts) -> ApiResult<Response> {
    let Query(query) = Query::<WsQuery>::try_from_uri(&parts.uri)
        .map_err(|err| ApiError::validation("query", err.body_text()))?;
    let player = match &query.token {
        Some(token) => AuthPlayer::from_token(&state, token).await?,
        None => AuthPlayer::from_request_parts(&mut parts, &state).await?,
    };
    let upgrade = WebSocketUpgrade::from_request_parts(&mut parts, &state)
        .await
        .map_err(|_| {
            ApiError::validation("upgrade", "GET /ws must be a WebSocket upgrade request")
        })?;
    let max = state.config.realtime.max_frame_bytes;
    let last_event_id = query.last_event_id;
    // tungstenite's defaults reserve 128 KiB of read buffer per socket; our frames are small
    // (inbound is capped at `max_frame_bytes`), so a few KiB keeps 10k sockets cheap.
    Ok(upgrade
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .max_message_size(max)
        .max_frame_size(max)
        .on_upgrade(move |socket| crate::http::socket::serve(socket, state, player, last_event_id))
        .into_response())
}
