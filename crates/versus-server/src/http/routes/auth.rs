//! Registration, login (password or device), linking a guest account, token refresh and
//! logout.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use time::OffsetDateTime;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;
use versus_core::account::{DeviceId, DisplayName, Password, Username};
use versus_protocol::{
    DeviceLoginRequest, LinkRequest, LoginRequest, PlayerProfile, Problem, RefreshRequest,
    RegisterRequest, RegisterResponse, TokenResponse,
};
use versus_store::{DeviceAccount, NewPlayer, Rotation, StoreError};

use crate::http::auth::AuthPlayer;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::ApiJson;
use crate::http::ratelimit::ClientIp;
use crate::http::routes::profile;
use crate::http::state::AppState;
use crate::services::auth::{IssuedTokens, guest, hash_refresh_token};
use crate::services::events::{BusEvent, Revocation};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(login))
        .routes(routes!(device_login))
        .routes(routes!(link))
        .routes(routes!(refresh))
        .routes(routes!(logout))
        .routes(routes!(auth_profile))
}

/// Starts a login (a new token family) for a player whose credentials were checked.
async fn log_in(
    state: &AppState,
    player_id: Uuid,
    now: OffsetDateTime,
) -> ApiResult<TokenResponse> {
    let tokens = state.tokens.issue(player_id, Uuid::now_v7(), now);
    state
        .store
        .insert_refresh_token(tokens.refresh_record.clone())
        .await?;
    Ok(token_response(tokens))
}

/// The username and password an account is about to get (registration, link), each error
/// naming its field.
fn new_credentials(username: &str, password: &str) -> ApiResult<(Username, Password)> {
    let username = Username::parse(username).map_err(|e| ApiError::validation("username", e))?;
    let password = Password::parse(password).map_err(|e| ApiError::validation("password", e))?;
    Ok((username, password))
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
    state.limits.auth_per_ip.check(&ip).await?;
    let (username, password) = new_credentials(&body.username, &body.password)?;
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
            password_hash: Some(password_hash),
            created_at: now,
        })
        .await?;
    let tokens = log_in(&state, player.id, now).await?;
    tracing::info!(player_id = %player.id, "player registered");
    let body = RegisterResponse {
        player: profile(&player),
        tokens,
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
    state.limits.auth_per_ip.check(&ip).await?;
    // A username that cannot exist still costs a full hash below, and is limited like any other.
    let username = Username::parse(&body.username).ok();
    let limit_key = body.username.to_ascii_lowercase();
    state.limits.login_per_username.check(&limit_key).await?;
    let credentials = match &username {
        Some(username) => state.store.credentials_by_username(username).await?,
        None => None,
    };
    // A guest without a password is verified against the decoy, like an unknown username.
    let stored_hash = credentials.as_ref().and_then(|c| c.password_hash.clone());
    let verified = state.hasher.verify(&body.password, stored_hash).await?;
    let Some(credentials) = credentials.filter(|_| verified) else {
        return Err(ApiError::InvalidCredentials);
    };
    if credentials.player.banned {
        return Err(ApiError::Forbidden("this account is banned"));
    }
    let player_id = credentials.player.id;
    let tokens = log_in(&state, player_id, OffsetDateTime::now_utc()).await?;
    tracing::info!(player_id = %player_id, "player logged in");
    Ok(Json(tokens))
}

/// Log in with a device id: the guest account bound to it, created (with a generated username
/// and no password) the first time. Answers 201 when it was created, 200 after that.
#[utoipa::path(
    post, path = "/api/v1/auth/device", tag = "auth",
    request_body = DeviceLoginRequest,
    responses(
        (status = 200, description = "Logged into the account bound to this device", body = TokenResponse),
        (status = 201, description = "A guest account was created for this device and logged in", body = TokenResponse),
        (status = 400, description = "Invalid or missing `device_id`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Account banned", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many auth requests from this IP", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn device_login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(body): ApiJson<DeviceLoginRequest>,
) -> ApiResult<(StatusCode, Json<TokenResponse>)> {
    state.limits.auth_per_ip.check(&ip).await?;
    let device_id =
        DeviceId::parse(&body.device_id).map_err(|e| ApiError::validation("device_id", e))?;
    let now = OffsetDateTime::now_utc();
    let account = guest::device_account(&*state.store, &device_id, now).await?;
    let player = account.player();
    if player.banned {
        return Err(ApiError::Forbidden("this account is banned"));
    }
    let tokens = log_in(&state, player.id, now).await?;
    let status = match account {
        DeviceAccount::Created(_) => {
            tracing::info!(player_id = %player.id, "guest account created");
            StatusCode::CREATED
        }
        DeviceAccount::Existing(_) => {
            tracing::info!(player_id = %player.id, "player logged in with a device");
            StatusCode::OK
        }
    };
    Ok((status, Json(tokens)))
}

/// Give the caller's guest account a username and password. The account keeps its id and data,
/// and its device still logs into it; a display name never changed from the generated one
/// becomes the username.
#[utoipa::path(
    post, path = "/api/v1/auth/link", tag = "auth",
    security(("bearer" = [])),
    request_body = LinkRequest,
    responses(
        (status = 200, description = "Linked: the account's profile with its new username", body = PlayerProfile),
        (status = 400, description = "Invalid username or password", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, invalid or expired access token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Account banned", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "The account no longer exists", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The account already has a password (`already_linked`), or the username is taken (`username_taken`)", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many auth requests from this IP", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn link(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    player: AuthPlayer,
    ApiJson(body): ApiJson<LinkRequest>,
) -> ApiResult<Json<PlayerProfile>> {
    state.limits.auth_per_ip.check(&ip).await?;
    let (username, password) = new_credentials(&body.username, &body.password)?;
    // Checked before hashing, which is the expensive part; the store checks again atomically.
    let account = state
        .store
        .player(player.id)
        .await?
        .ok_or(ApiError::NotFound("player"))?;
    if account.banned {
        return Err(ApiError::Forbidden("this account is banned"));
    }
    if account.has_password {
        return Err(StoreError::AlreadyLinked.into());
    }
    let password_hash = state.hasher.hash(&password).await?;
    let linked = state
        .store
        .link_password(
            player.id,
            &username,
            &password_hash,
            OffsetDateTime::now_utc(),
        )
        .await
        .map_err(|err| match err {
            StoreError::UnknownPlayer => ApiError::NotFound("player"),
            other => other.into(),
        })?;
    tracing::info!(player_id = %player.id, "guest account linked to a username and password");
    Ok(Json(profile(&linked)))
}

/// Spend a refresh token for a new token pair. Presenting the same token again within
/// `auth.refresh_grace_secs` answers the same pair (a retry whose answer was lost), as long as
/// that pair's refresh token is unused; presenting a spent token otherwise revokes every token
/// descended from the same login.
#[utoipa::path(
    post, path = "/api/v1/auth/refresh", tag = "auth",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "A new token pair; the presented refresh token is spent. A retry within the grace window gets the same pair", body = TokenResponse),
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
    state.limits.auth_per_ip.check(&ip).await?;
    let now = OffsetDateTime::now_utc();
    let next = state.tokens.successor(&body.refresh_token, now);
    let presented = hash_refresh_token(&body.refresh_token);
    match state
        .store
        .rotate_refresh_token(
            &presented,
            next.refresh_record.clone(),
            state.tokens.refresh_grace(),
            now,
        )
        .await?
    {
        Rotation::Rotated {
            player_id,
            family_id,
            rotated_at,
        } => Ok(Json(token_response(
            state.tokens.rotated(next, player_id, family_id, rotated_at),
        ))),
        Rotation::Retried {
            player_id,
            family_id,
            rotated_at,
        } => {
            tracing::debug!(player_id = %player_id, family_id = %family_id,
                "refresh repeated within the grace window; answered with the same pair");
            Ok(Json(token_response(
                state.tokens.rotated(next, player_id, family_id, rotated_at),
            )))
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
    state.limits.auth_per_ip.check(&ip).await?;
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
