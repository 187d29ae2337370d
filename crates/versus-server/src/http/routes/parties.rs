//! Parties over REST: create, read (members only), invite, join, leave, kick, ready. The leader
//! queues the party with `POST /api/v1/queue/join` and `party_id`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use versus_protocol::Problem;
use versus_protocol::parties::{
    CreatePartyRequest, JoinPartyRequest, PartyPlayerRequest, PartyView, ReadyRequest,
};

use crate::http::auth::AuthPlayer;
use crate::http::error::ApiResult;
use crate::http::extract::{ApiJson, parse_uuid};
use crate::http::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create))
        .routes(routes!(get_party))
        .routes(routes!(invite))
        .routes(routes!(join))
        .routes(routes!(leave))
        .routes(routes!(kick))
        .routes(routes!(ready))
}

/// Start a party; the creator leads it. A player is in at most one party.
#[utoipa::path(
    post, path = "/api/v1/parties", tag = "parties",
    security(("bearer" = [])),
    request_body = CreatePartyRequest,
    responses(
        (status = 201, description = "The new party", body = PartyView),
        (status = 400, description = "Malformed body", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, invalid or expired access token", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Already in a party (`already_in_party`)", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Body is not JSON", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn create(
    State(state): State<AppState>,
    player: AuthPlayer,
    ApiJson(request): ApiJson<CreatePartyRequest>,
) -> ApiResult<(StatusCode, Json<PartyView>)> {
    let party = state.parties.create(player.id, request.open).await?;
    Ok((StatusCode::CREATED, Json(party)))
}

/// The party, for its members.
#[utoipa::path(
    get, path = "/api/v1/parties/{id}", tag = "parties",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Party id")),
    responses(
        (status = 200, description = "The party", body = PartyView),
        (status = 400, description = "`id` is not a UUID", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, invalid or expired access token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a member (`not_party_member`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such party", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn get_party(
    State(state): State<AppState>,
    player: AuthPlayer,
    Path(id): Path<String>,
) -> ApiResult<Json<PartyView>> {
    let party = parse_uuid("id", &id)?;
    Ok(Json(state.parties.get(player.id, party).await?))
}

/// Invite a player (leader only). The invitee gets `party_invite`.
#[utoipa::path(
    post, path = "/api/v1/parties/{id}/invites", tag = "parties",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Party id")),
    request_body = PartyPlayerRequest,
    responses(
        (status = 200, description = "The party with the invite", body = PartyView),
        (status = 400, description = "`id` is not a UUID, or a malformed body", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, invalid or expired access token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not the leader (`not_party_leader`) or not a member", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such party or player", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Full, already a member, already invited, too many pending invites", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Body is not JSON", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn invite(
    State(state): State<AppState>,
    player: AuthPlayer,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<PartyPlayerRequest>,
) -> ApiResult<Json<PartyView>> {
    let party = parse_uuid("id", &id)?;
    let view = (state.parties)
        .invite(player.id, party, request.player_id)
        .await?;
    Ok(Json(view))
}

/// Join: with a pending invite, or an open party's join code.
#[utoipa::path(
    post, path = "/api/v1/parties/{id}/join", tag = "parties",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Party id")),
    request_body = JoinPartyRequest,
    responses(
        (status = 200, description = "The party joined", body = PartyView),
        (status = 400, description = "`id` is not a UUID, or a malformed body", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, invalid or expired access token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not invited (`not_invited`) or a wrong code (`bad_join_code`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such party", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Full (`party_full`), already in a party, the invite expired", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Body is not JSON", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn join(
    State(state): State<AppState>,
    player: AuthPlayer,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<JoinPartyRequest>,
) -> ApiResult<Json<PartyView>> {
    let party = parse_uuid("id", &id)?;
    let view = (state.parties)
        .join(player.id, party, request.code.as_deref())
        .await?;
    Ok(Json(view))
}

/// Leave. A leaving leader hands over to the longest-standing member; the last one out
/// disbands the party. A queued party's ticket is cancelled.
#[utoipa::path(
    post, path = "/api/v1/parties/{id}/leave", tag = "parties",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Party id")),
    responses(
        (status = 204, description = "Left"),
        (status = 400, description = "`id` is not a UUID", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, invalid or expired access token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a member", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such party", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn leave(
    State(state): State<AppState>,
    player: AuthPlayer,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let party = parse_uuid("id", &id)?;
    state.parties.leave(player.id, party).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Remove a member (leader only). A queued party's ticket is cancelled.
#[utoipa::path(
    post, path = "/api/v1/parties/{id}/kick", tag = "parties",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Party id")),
    request_body = PartyPlayerRequest,
    responses(
        (status = 200, description = "The party without them", body = PartyView),
        (status = 400, description = "`id` is not a UUID, or a malformed body", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, invalid or expired access token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not the leader", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such party, or the player is not in it", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The leader kicking themself", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Body is not JSON", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn kick(
    State(state): State<AppState>,
    player: AuthPlayer,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<PartyPlayerRequest>,
) -> ApiResult<Json<PartyView>> {
    let party = parse_uuid("id", &id)?;
    let view = (state.parties)
        .kick(player.id, party, request.player_id)
        .await?;
    Ok(Json(view))
}

/// Answer (or, for the leader, start) a ready check. Every member gets `ready_check`.
#[utoipa::path(
    post, path = "/api/v1/parties/{id}/ready", tag = "parties",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Party id")),
    request_body = ReadyRequest,
    responses(
        (status = 200, description = "The party with the answer", body = PartyView),
        (status = 400, description = "`id` is not a UUID, or a malformed body", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, invalid or expired access token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a member", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such party", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "No ready check running (`no_ready_check`)", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Body is not JSON", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn ready(
    State(state): State<AppState>,
    player: AuthPlayer,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<ReadyRequest>,
) -> ApiResult<Json<PartyView>> {
    let party = parse_uuid("id", &id)?;
    let view = (state.parties)
        .ready(player.id, party, request.ready, request.latencies)
        .await?;
    Ok(Json(view))
}
