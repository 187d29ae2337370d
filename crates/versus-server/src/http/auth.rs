//! The extractor that turns a bearer token into the authenticated player.

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use uuid::Uuid;

use crate::http::error::ApiError;
use crate::http::state::AppState;
use crate::services::auth::TokenError;

/// The player a request is authenticated as. Taking this extractor is what makes a route
/// require a valid access token.
#[derive(Debug, Clone, Copy)]
pub struct AuthPlayer {
    pub id: Uuid,
}

impl FromRequestParts<AppState> for AuthPlayer {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer_token(parts).ok_or(ApiError::Unauthorized(
            "missing or malformed Authorization: Bearer header",
        ))?;
        AuthPlayer::from_token(state, token)
    }
}

impl AuthPlayer {
    /// Verifies an access token however it arrived (header, or `?token=` on `/ws`) and records
    /// the player on the request's span.
    pub fn from_token(state: &AppState, token: &str) -> Result<Self, ApiError> {
        let claims = state.tokens.verify_access(token).map_err(|err| match err {
            TokenError::Expired => ApiError::Unauthorized("access token has expired"),
            TokenError::Invalid => ApiError::Unauthorized("access token is invalid"),
        })?;
        tracing::Span::current().record("player_id", tracing::field::display(claims.sub));
        Ok(AuthPlayer { id: claims.sub })
    }
}

fn bearer_token(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty()).then(|| token.trim())
}
