//! Leaderboards over REST: a queue's board (its current season's, or a past season's frozen
//! final standings with `?season=N`) from the top or from a cursor (either way), around a
//! player, one player's place, and the queue's seasons. Any logged-in player may read them.

use axum::Json;
use axum::extract::{Path, Query, State};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use versus_protocol::Problem;
use versus_protocol::leaderboards::{LeaderboardPage, LeaderboardStanding, SeasonList};

use crate::http::auth::AuthPlayer;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::parse_uuid;
use crate::http::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(board))
        .routes(routes!(around))
        .routes(routes!(player_standing))
        .routes(routes!(seasons))
}

/// `limit` entries (1–100, default 20), from the top or from `cursor` (a page's `next` or
/// `prev`).
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct BoardQuery {
    #[param(pattern = r"^[ab][0-9a-f]{16}\.-?[0-9]{1,20}\.[0-9a-f]{32}$")]
    cursor: Option<String>,
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u32>,
    /// A past season's frozen board (default: the current season).
    #[param(minimum = 1, maximum = 2147483647)]
    season: Option<u32>,
}

/// A `season` query parameter: 1 to `i32::MAX` (what the document says), or none.
pub(crate) fn season(raw: Option<u32>) -> ApiResult<Option<u32>> {
    match raw {
        Some(n) if n == 0 || n > i32::MAX as u32 => {
            Err(ApiError::validation("season", "must be 1 to 2147483647"))
        }
        season => Ok(season),
    }
}

fn limit(raw: Option<u32>, default: u32) -> ApiResult<usize> {
    let limit = raw.unwrap_or(default);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::validation("limit", "must be 1 to 100"));
    }
    Ok(limit as usize)
}

/// A page of the queue's leaderboard: highest display rating first, ties to whoever reached
/// it first; only players past their placement games. Cursors are positions on the board, so
/// paging forward (`next`) or back (`prev`) neither repeats nor skips a player while ranks
/// change.
#[utoipa::path(
    get, path = "/api/v1/leaderboards/{queue}", tag = "leaderboards",
    security(("bearer" = [])),
    params(("queue" = String, Path, description = "Queue name"), BoardQuery),
    responses(
        (status = 200, description = "A page of the board", body = LeaderboardPage),
        (status = 400, description = "Bad cursor, limit or season", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, invalid or expired access token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such queue (`queue_not_found`) or season (`season_not_found`)", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn board(
    State(state): State<AppState>,
    _caller: AuthPlayer,
    Path(queue): Path<String>,
    Query(query): Query<BoardQuery>,
) -> ApiResult<Json<LeaderboardPage>> {
    let limit = limit(query.limit, 20)?;
    let page = (state.leaderboards)
        .page(
            &queue,
            season(query.season)?,
            query.cursor.as_deref(),
            limit,
        )
        .await?;
    Ok(Json(page))
}

/// `limit` neighbours (1–100, default 10) above and below the player.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AroundQuery {
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u32>,
    /// A past season's frozen board (default: the current season).
    #[param(minimum = 1, maximum = 2147483647)]
    season: Option<u32>,
}

/// Which season (default: the current one).
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct SeasonQuery {
    /// A past season's frozen board (default: the current season).
    #[param(minimum = 1, maximum = 2147483647)]
    season: Option<u32>,
}

/// The player's place and their neighbours above and below.
#[utoipa::path(
    get, path = "/api/v1/leaderboards/{queue}/around/{player_id}", tag = "leaderboards",
    security(("bearer" = [])),
    params(
        ("queue" = String, Path, description = "Queue name"),
        ("player_id" = uuid::Uuid, Path, description = "Player id"),
        AroundQuery,
    ),
    responses(
        (status = 200, description = "The player among their neighbours", body = LeaderboardPage),
        (status = 400, description = "Bad id, limit or season", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, invalid or expired access token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such queue or season, or the player is not on the board (`not_ranked`)", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn around(
    State(state): State<AppState>,
    _caller: AuthPlayer,
    Path((queue, player)): Path<(String, String)>,
    Query(query): Query<AroundQuery>,
) -> ApiResult<Json<LeaderboardPage>> {
    let player = parse_uuid("player_id", &player)?;
    let limit = limit(query.limit, 10)?;
    Ok(Json(
        (state.leaderboards)
            .around(&queue, season(query.season)?, player, limit)
            .await?,
    ))
}

/// One player's rank and percentile on the queue's board.
#[utoipa::path(
    get, path = "/api/v1/leaderboards/{queue}/players/{player_id}", tag = "leaderboards",
    security(("bearer" = [])),
    params(
        ("queue" = String, Path, description = "Queue name"),
        ("player_id" = uuid::Uuid, Path, description = "Player id"),
        SeasonQuery,
    ),
    responses(
        (status = 200, description = "The player's place", body = LeaderboardStanding),
        (status = 400, description = "Bad id or season", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, invalid or expired access token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such queue or season, or the player is not on the board (`not_ranked`)", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn player_standing(
    State(state): State<AppState>,
    _caller: AuthPlayer,
    Path((queue, player)): Path<(String, String)>,
    Query(query): Query<SeasonQuery>,
) -> ApiResult<Json<LeaderboardStanding>> {
    let player = parse_uuid("player_id", &player)?;
    Ok(Json(
        (state.leaderboards)
            .standing(&queue, season(query.season)?, player)
            .await?,
    ))
}

/// The queue's seasons, oldest first: when each started and ended (or is scheduled to end),
/// and when the current one resets.
#[utoipa::path(
    get, path = "/api/v1/leaderboards/{queue}/seasons", tag = "leaderboards",
    security(("bearer" = [])),
    params(("queue" = String, Path, description = "Queue name")),
    responses(
        (status = 200, description = "The queue's seasons", body = SeasonList),
        (status = 401, description = "Missing, invalid or expired access token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such queue (`queue_not_found`)", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn seasons(
    State(state): State<AppState>,
    _caller: AuthPlayer,
    Path(queue): Path<String>,
) -> ApiResult<Json<SeasonList>> {
    Ok(Json(state.leaderboards.seasons(&queue).await?))
}
