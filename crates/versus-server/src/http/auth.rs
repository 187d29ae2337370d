//! The extractor that turns a bearer token into the authenticated player.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use uuid::Uuid;

use crate::http::error::ApiError;
use crate::http::state::AppState;
use crate::services::auth::{Standing, TokenError};

/// The player a request is authenticated as. Taking this extractor is what makes a route
/// require a valid access token of a player who may still act.
#[derive(Debug, Clone, Copy)]
pub struct AuthPlayer {
    pub id: Uuid,
    /// The login (refresh-token family) the token belongs to.
    pub family: Uuid,
    /// When the token expires, Unix seconds.
    pub expires_at: i64,
}

impl FromRequestParts<AppState> for AuthPlayer {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        AuthPlayer::from_headers(state, &parts.headers).await
    }
}

impl AuthPlayer {
    /// From the `Authorization: Bearer` header, for handlers that accept more than one kind of
    /// credential.
    pub async fn from_headers(state: &AppState, headers: &HeaderMap) -> Result<Self, ApiError> {
        let token = bearer_token(headers).ok_or(ApiError::Unauthorized(
            "missing or malformed Authorization: Bearer header",
        ))?;
        AuthPlayer::from_token(state, token).await
    }

    /// Verifies an access token however it arrived (header, `?token=` on `/ws`, `auth` on a
    /// socket), checks its player may still act, and records the player on the request's span.
    /// A token whose login ended or whose account is gone is refused like an invalid one (401):
    /// nothing is ever done for a player who does not exist.
    pub async fn from_token(state: &AppState, token: &str) -> Result<Self, ApiError> {
        let claims = state.tokens.verify_access(token).map_err(|err| match err {
            TokenError::Expired => ApiError::Unauthorized("access token has expired"),
            // Checked only on the way to a refusal: a game server's key sent to a player route
            // is told what the route needs rather than that its "token" is broken.
            TokenError::Invalid if state.server_key.matches(token) => ApiError::Unauthorized(
                "player routes need a player's access token, not the server key",
            ),
            TokenError::Invalid => ApiError::Unauthorized("access token is invalid"),
        })?;
        match (state.accounts)
            .standing(claims.sub, claims.fam, claims.iat)
            .await?
        {
            Standing::Active => {}
            Standing::Banned => return Err(ApiError::Forbidden("this account is banned")),
            Standing::Revoked | Standing::Gone => {
                return Err(ApiError::Unauthorized("access token is no longer valid"));
            }
        }
        tracing::Span::current().record("player_id", tracing::field::display(claims.sub));
        Ok(AuthPlayer {
            id: claims.sub,
            family: claims.fam,
            expires_at: claims.exp,
        })
    }
}

/// The token of an `Authorization: Bearer <token>` header.
pub(crate) fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty()).then(|| token.trim())
}

/// A player with admin rights (`versus admin grant`), read from the store on every request so
/// that a revocation takes effect at once; any other player is refused with 403.
pub struct AdminPlayer {
    pub id: Uuid,
}

impl FromRequestParts<AppState> for AdminPlayer {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let player = AuthPlayer::from_request_parts(parts, state).await?;
        if !AdminPlayer::is_admin(state, player.id).await? {
            return Err(ApiError::Forbidden("admins only"));
        }
        Ok(AdminPlayer { id: player.id })
    }
}

impl AdminPlayer {
    pub async fn is_admin(state: &AppState, player: Uuid) -> Result<bool, ApiError> {
        let account = state.store.player(player).await?;
        Ok(account.is_some_and(|account| account.admin))
    }
}
