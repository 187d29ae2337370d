//! Registration, login, token refresh and logout.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use time::OffsetDateTime;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;
use versus_core::account::{DisplayName, Password, Username};
use versus_protocol::{
    LoginRequest, PlayerProfile, Problem, RefreshRequest, RegisterRequest, RegisterResponse,
    TokenResponse,
};
use versus_store::{NewPlayer, Rotation};

use crate::http::auth::AuthPlayer;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::ApiJson;
use crate::http::ratelimit::ClientIp;
use crate::http::routes::profile;
use crate::http::state::AppState;
use crate::services::auth::{IssuedTokens, hash_refresh_token};
use crate::services::events::{BusEvent, Revocation};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(login))
        .routes(routes!(refresh))
        .routes(routes!(logout))
        .routes(routes!(auth_profile))
}

fn token_response(tokens: IssuedTokens) -> TokenResponse {
    TokenResponse {
        access_token: tokens.access_token,
        refresh_token: tokens.refresh_token,
        token_type: "Bearer".to_owned(),
        expires_in: tokens.expires_in,
    }
}

/// Create an account. The answer already holds a token pair, so no separate login is needed.
#[utoipa::path(
    post, path = "/api/v1/auth/register", tag = "auth",
    request_body = RegisterRequest,
    responses(
        (status = 201, description = "Account created and logged in", body = RegisterResponse),
        (status = 400, description = "Invalid username, password or display name", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Username taken (case-insensitively)", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many auth requests from this IP, or too many passwords waiting to be hashed (see Retry-After)", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn register(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(body): ApiJson<RegisterRequest>,
) -> ApiResult<impl IntoResponse> {
    state.limits.auth_per_ip.check(&ip)?;
    let username =
        Username::parse(&body.username).map_err(|e| ApiError::validation("username", e))?;
    let password =
        Password::parse(&body.password).map_err(|e| ApiError::validation("password", e))?;
    let display_name = match body.display_name.as_deref() {
        Some(raw) => {
            DisplayName::parse(raw).map_err(|e| ApiError::validation("display_name", e))?
        }
        None => DisplayName::from(&username),
    };
    let password_hash = state.hasher.hash(&password).await?;
    let now = OffsetDateTime::now_utc();
    let player = state
        .store
        .create_player(NewPlayer {
            id: Uuid::now_v7(),
            username,
            display_name,
            password_hash,
            created_at: now,
        })
        .await?;
    let tokens = state.tokens.issue(player.id, Uuid::now_v7(), now);
    state
        .store
        .insert_refresh_token(tokens.refresh_record.clone())
        .await?;
    tracing::info!(player_id = %player.id, "player registered");
    let body = RegisterResponse {
        player: profile(&player),
        tokens: token_response(tokens),
    };
    Ok((StatusCode::CREATED, Json(body)))
}

/// Exchange a username and password for a token pair.
#[utoipa::path(
    post, path = "/api/v1/auth/login", tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Logged in", body = TokenResponse),
        (status = 400, description = "Malformed body", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Unknown username or wrong password (indistinguishable)", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Account banned", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many attempts for this IP or username, or too many passwords waiting to be hashed (see Retry-After)", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(body): ApiJson<LoginRequest>,
) -> ApiResult<Json<TokenResponse>> {
    state.limits.auth_per_ip.check(&ip)?;
    // A username that cannot exist still costs a full hash below, and is limited like any other.
    let username = Username::parse(&body.username).ok();
    let limit_key = body.username.to_ascii_lowercase();
    state.limits.login_per_username.check(&limit_key)?;
    let credentials = match &username {
        Some(username) => state.store.credentials_by_username(username).await?,
        None => None,
    };
    let stored_hash = credentials.as_ref().map(|c| c.password_hash.clone());
    let verified = state.hasher.verify(&body.password, stored_hash).await?;
    let Some(credentials) = credentials.filter(|_| verified) else {
        return Err(ApiError::InvalidCredentials);
    };
    if credentials.player.banned {
        return Err(ApiError::Forbidden("this account is banned"));
    }
    let player_id = credentials.player.id;
    let tokens = state
        .tokens
        .issue(player_id, Uuid::now_v7(), OffsetDateTime::now_utc());
    state
        .store
        .insert_refresh_token(tokens.refresh_record.clone())
        .await?;
    tracing::info!(player_id = %player_id, "player logged in");
    Ok(Json(token_response(tokens)))
}

/// Spend a refresh token for a new token pair. Presenting an already-spent refresh token revokes
/// every token descended from the same login.
#[utoipa::path(
    post, path = "/api/v1/auth/refresh", tag = "auth",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "A new token pair; the presented refresh token is spent", body = TokenResponse),
        (status = 400, description = "Malformed body", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Unknown, expired, revoked or re-used refresh token", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many auth requests from this IP", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn refresh(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(body): ApiJson<RefreshRequest>,
) -> ApiResult<Json<TokenResponse>> {
    state.limits.auth_per_ip.check(&ip)?;
    let now = OffsetDateTime::now_utc();
    // The family and player are placeholders: the store takes them from the presented token.
    let next = state.tokens.issue(Uuid::nil(), Uuid::nil(), now);
    let presented = hash_refresh_token(&body.refresh_token);
    match state
        .store
        .rotate_refresh_token(&presented, next.refresh_record.clone(), now)
        .await?
    {
        Rotation::Rotated {
            player_id,
            family_id,
        } => {
            let access_token = state.tokens.issue_access(player_id, family_id, now);
            Ok(Json(token_response(IssuedTokens {
                access_token,
                ..next
            })))
        }
        Rotation::Reused {
            player_id,
            family_id,
        } => {
            tracing::warn!(player_id = %player_id, family_id = %family_id, "refresh token re-used; token family revoked");
            state.bus.publish(BusEvent::Revoked(Revocation {
                player: player_id,
                family: Some(family_id),
            }));
            Err(ApiError::Unauthorized(
                "refresh token was already used; please log in again",
            ))
        }
        Rotation::Expired => Err(ApiError::Unauthorized("refresh token has expired")),
        Rotation::Unknown => Err(ApiError::Unauthorized("refresh token is not valid")),
    }
}

/// Revoke a refresh token and every token rotated from the same login; the login's access tokens
/// stop being accepted and its WebSockets close (code 4003). Idempotent: an unknown or already
/// revoked token also answers 204.
#[utoipa::path(
    post, path = "/api/v1/auth/logout", tag = "auth",
    request_body = RefreshRequest,
    responses(
        (status = 204, description = "Logged out"),
        (status = 400, description = "Malformed body", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many auth requests from this IP", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn logout(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(body): ApiJson<RefreshRequest>,
) -> ApiResult<StatusCode> {
    state.limits.auth_per_ip.check(&ip)?;
    let hash = hash_refresh_token(&body.refresh_token);
    if let Some(family) = state
        .store
        .revoke_refresh_family(&hash, OffsetDateTime::now_utc())
        .await?
    {
        tracing::info!(player_id = %family.player_id, "player logged out");
        // Its sockets close and its access tokens stop working, on every node.
        state.bus.publish(BusEvent::Revoked(Revocation {
            player: family.player_id,
            family: Some(family.family_id),
        }));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// The authenticated player's own profile.
#[utoipa::path(
    get, path = "/api/v1/auth/profile", tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's profile", body = PlayerProfile),
        (status = 401, description = "Missing, invalid or expired access token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "The account no longer exists", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn auth_profile(
    State(state): State<AppState>,
    player: AuthPlayer,
) -> ApiResult<Json<PlayerProfile>> {
    super::players::own_profile(&state, player).await.map(Json)
}
