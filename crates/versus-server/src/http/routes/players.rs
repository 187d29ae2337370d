//! Player profiles: a player's own view (read and update) and the public view of anyone.

use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;
use time::OffsetDateTime;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use versus_core::account::{DisplayName, Region};
use versus_protocol::leaderboards::PlayerSeasons;
use versus_protocol::sessions::{
    MatchHistoryEntry, Page, PlayerRatings, QueueRating, RatingHistoryEntry,
};
use versus_protocol::{
    PlayerProfile, PlayerStats, Problem, PublicPlayer, QueueRank, UpdatePlayerRequest,
};
use versus_store::PlayerPatch;

use crate::http::auth::AuthPlayer;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{ApiJson, parse_uuid};
use crate::http::routes::{profile, public_player};
use crate::http::state::AppState;
use crate::services::sessions::decode_cursor;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_me, patch_me))
        .routes(routes!(get_player))
        .routes(routes!(get_ratings))
        .routes(routes!(get_rating_history))
        .routes(routes!(get_player_seasons))
        .routes(routes!(get_matches))
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
        (status = 200, description = "The caller's profile, with game counts over every queue", body = PlayerProfile),
        (status = 401, description = "Missing, invalid or expired access token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "The account no longer exists", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn get_me(
    State(state): State<AppState>,
    player: AuthPlayer,
) -> ApiResult<Json<PlayerProfile>> {
    let mut profile = own_profile(&state, player).await?;
    let ratings = state.sessions.ratings(player.id).await?;
    let total = |f: fn(&QueueRating) -> u64| ratings.ratings.iter().map(f).sum();
    profile.stats = Some(PlayerStats {
        games: total(|r| r.games),
        wins: total(|r| r.wins),
        losses: total(|r| r.losses),
        draws: total(|r| r.draws),
        ranks: (ratings.ratings.iter())
            .filter_map(|r| {
                Some(QueueRank {
                    queue: r.queue.clone(),
                    rank: r.rank?,
                })
            })
            .collect(),
    });
    Ok(Json(profile))
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

/// A page request: `limit` items (1–100, default 20) after `cursor` (from the previous page).
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// The `next` of the previous page.
    #[param(pattern = r"^[0-9]{1,20}\.[0-9a-f]{32}$")]
    cursor: Option<String>,
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u32>,
}

impl PageQuery {
    pub(crate) fn parse(&self) -> ApiResult<(Option<versus_store::Cursor>, u32)> {
        let limit = self.limit.unwrap_or(20);
        if !(1..=100).contains(&limit) {
            return Err(ApiError::validation("limit", "must be 1 to 100"));
        }
        let cursor =
            match &self.cursor {
                None => None,
                Some(raw) => Some(decode_cursor(raw).ok_or_else(|| {
                    ApiError::validation("cursor", "not a cursor this server gave")
                })?),
            };
        Ok((cursor, limit))
    }
}

/// A page of a rating history, in one season or all.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    /// The `next` of the previous page.
    #[param(pattern = r"^[0-9]{1,20}\.[0-9a-f]{32}$")]
    cursor: Option<String>,
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u32>,
    /// Only the games of this season of the queue (default: every season).
    #[param(minimum = 1, maximum = 2147483647)]
    season: Option<u32>,
}

async fn existing(state: &AppState, id: &str) -> ApiResult<uuid::Uuid> {
    let id = parse_uuid("id", id)?;
    state
        .store
        .player(id)
        .await?
        .ok_or(ApiError::NotFound("player"))?;
    Ok(id)
}

/// A player's rating in each queue they have played rated games in (public, like a
/// leaderboard).
#[utoipa::path(
    get, path = "/api/v1/players/{id}/ratings", tag = "players",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Player id")),
    responses(
        (status = 200, description = "Ratings per queue", body = PlayerRatings),
        (status = 400, description = "`id` is not a UUID", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, invalid or expired access token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such player", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn get_ratings(
    State(state): State<AppState>,
    _caller: AuthPlayer,
    Path(id): Path<String>,
) -> ApiResult<Json<PlayerRatings>> {
    let id = existing(&state, &id).await?;
    Ok(Json(state.sessions.ratings(id).await?))
}

/// A player's rated games in one queue, newest first: before, after and change of each.
#[utoipa::path(
    get, path = "/api/v1/players/{id}/ratings/{queue}/history", tag = "players",
    security(("bearer" = [])),
    params(
        ("id" = uuid::Uuid, Path, description = "Player id"),
        ("queue" = String, Path, description = "Queue name"),
        HistoryQuery,
    ),
    responses(
        (status = 200, description = "A page of the history", body = Page<RatingHistoryEntry>),
        (status = 400, description = "Bad id, cursor, limit or season", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, invalid or expired access token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such player", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn get_rating_history(
    State(state): State<AppState>,
    _caller: AuthPlayer,
    Path((id, queue)): Path<(String, String)>,
    axum::extract::Query(query): axum::extract::Query<HistoryQuery>,
) -> ApiResult<Json<Page<RatingHistoryEntry>>> {
    let page = PageQuery {
        cursor: query.cursor,
        limit: query.limit,
    };
    let (cursor, limit) = page.parse()?;
    let id = existing(&state, &id).await?;
    Ok(Json(
        state
            .sessions
            .rating_history(
                id,
                &queue,
                crate::http::routes::leaderboards::season(query.season)?,
                cursor,
                limit,
            )
            .await?,
    ))
}

/// A player's finished games, newest first. Paging is by cursor: pages neither skip nor repeat
/// games while new ones finish.
#[utoipa::path(
    get, path = "/api/v1/players/{id}/matches", tag = "players",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Player id"), PageQuery),
    responses(
        (status = 200, description = "A page of the match history", body = Page<MatchHistoryEntry>),
        (status = 400, description = "Bad id, cursor or limit", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, invalid or expired access token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such player", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn get_matches(
    State(state): State<AppState>,
    _caller: AuthPlayer,
    Path(id): Path<String>,
    axum::extract::Query(page): axum::extract::Query<PageQuery>,
) -> ApiResult<Json<Page<MatchHistoryEntry>>> {
    let (cursor, limit) = page.parse()?;
    let id = existing(&state, &id).await?;
    Ok(Json(state.sessions.match_history(id, cursor, limit).await?))
}

/// How a player ended each past season of a queue they played (final rank, rating and
/// counts), newest first. The current season is on the leaderboard and in `/ratings`.
#[utoipa::path(
    get, path = "/api/v1/players/{id}/seasons/{queue}", tag = "players",
    security(("bearer" = [])),
    params(
        ("id" = uuid::Uuid, Path, description = "Player id"),
        ("queue" = String, Path, description = "Queue name"),
    ),
    responses(
        (status = 200, description = "The player's past seasons", body = PlayerSeasons),
        (status = 400, description = "`id` is not a UUID", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, invalid or expired access token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such player or queue", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn get_player_seasons(
    State(state): State<AppState>,
    _caller: AuthPlayer,
    Path((id, queue)): Path<(String, String)>,
) -> ApiResult<Json<PlayerSeasons>> {
    let id = existing(&state, &id).await?;
    let seasons = state.leaderboards.player_seasons(&queue, id).await?;
    Ok(Json(PlayerSeasons { queue, seasons }))
}
