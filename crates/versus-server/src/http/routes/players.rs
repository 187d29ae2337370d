//! Player profiles: a player's own view (read and update) and the public view of anyone.

use axum::Json;
use axum::extract::{Path, State};
use time::OffsetDateTime;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use versus_core::account::{DisplayName, Region};
use versus_protocol::{PlayerProfile, Problem, PublicPlayer, UpdatePlayerRequest};
use versus_store::PlayerPatch;

use crate::http::auth::AuthPlayer;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{ApiJson, parse_uuid};
use crate::http::routes::{profile, public_player};
use crate::http::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_me, patch_me))
        .routes(routes!(get_player))
}

pub(crate) async fn own_profile(state: &AppState, player: AuthPlayer) -> ApiResult<PlayerProfile> {
    let stored = state
        .store
        .player(player.id)
        .await?
        .ok_or(ApiError::NotFound("player"))?;
    Ok(profile(&stored))
}

/// The caller's own profile.
#[utoipa::path(
    get, path = "/api/v1/players/me", tag = "players",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's profile", body = PlayerProfile),
        (status = 401, description = "Missing, invalid or expired access token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "The account no longer exists", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn get_me(
    State(state): State<AppState>,
    player: AuthPlayer,
) -> ApiResult<Json<PlayerProfile>> {
    own_profile(&state, player).await.map(Json)
}

/// Change the caller's display name or region.
#[utoipa::path(
    patch, path = "/api/v1/players/me", tag = "players",
    security(("bearer" = [])),
    request_body = UpdatePlayerRequest,
    responses(
        (status = 200, description = "The updated profile", body = PlayerProfile),
        (status = 400, description = "Invalid display name or region", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, invalid or expired access token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "The account no longer exists", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Body is not JSON", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn patch_me(
    State(state): State<AppState>,
    player: AuthPlayer,
    ApiJson(body): ApiJson<UpdatePlayerRequest>,
) -> ApiResult<Json<PlayerProfile>> {
    let display_name = body
        .display_name
        .as_deref()
        .map(DisplayName::parse)
        .transpose()
        .map_err(|e| ApiError::validation("display_name", e))?;
    let region = match body.region {
        None => None,
        Some(None) => Some(None),
        Some(Some(raw)) => Some(Some(
            Region::parse(&raw).map_err(|e| ApiError::validation("region", e))?,
        )),
    };
    let patch = PlayerPatch {
        display_name,
        region,
    };
    let updated = state
        .store
        .update_player(player.id, patch, OffsetDateTime::now_utc())
        .await?
        .ok_or(ApiError::NotFound("player"))?;
    Ok(Json(profile(&updated)))
}

/// Any player's public profile.
#[utoipa::path(
    get, path = "/api/v1/players/{id}", tag = "players",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Player id")),
    responses(
        (status = 200, description = "The player's public profile", body = PublicPlayer),
        (status = 400, description = "`id` is not a UUID", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, invalid or expired access token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such player", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn get_player(
    State(state): State<AppState>,
    _caller: AuthPlayer,
    Path(id): Path<String>,
) -> ApiResult<Json<PublicPlayer>> {
    let id = parse_uuid("id", &id)?;
    let player = state
        .store
        .player(id)
        .await?
        .ok_or(ApiError::NotFound("player"))?;
    Ok(Json(public_player(&player)))
}
