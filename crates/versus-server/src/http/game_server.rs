//! The extractor for routes only game servers call: they present the server key
//! (`sessions.server_key`, or the one generated into the data dir) as
//! `Authorization: Bearer <server key>`. Players' access tokens and server keys never stand in
//! for each other: a route takes [`GameServer`] or [`AuthPlayer`](crate::http::auth::AuthPlayer),
//! and each refuses the other's credential with a 401 saying which one it needs.

use std::fmt;

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use crate::http::auth::bearer_token;
use crate::http::error::ApiError;
use crate::http::state::AppState;
use crate::services::auth::TokenError;

/// The server key, kept as its SHA-256 digest: presented keys are compared by digest, so the
/// time a comparison takes says nothing about how much of a guess was right, and the key itself
/// is not held in the state every handler can reach.
pub struct ServerKey {
    digest: [u8; 32],
}

impl ServerKey {
    pub fn new(key: &SecretString) -> Self {
        Self {
            digest: Sha256::digest(key.expose_secret().as_bytes()).into(),
        }
    }

    /// Whether `presented` is the key, in time independent of where they differ.
    pub fn matches(&self, presented: &str) -> bool {
        let presented: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        presented
            .iter()
            .zip(&self.digest)
            .fold(0u8, |differ, (a, b)| differ | (a ^ b))
            == 0
    }
}

impl fmt::Debug for ServerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ServerKey(..)")
    }
}

/// A request made by a game server. Taking this extractor is what makes a route require the
/// server key.
#[derive(Debug, Clone, Copy)]
pub struct GameServer;

impl GameServer {
    /// Whether the request's `Authorization: Bearer` header carries the server key.
    pub fn presented(state: &AppState, headers: &HeaderMap) -> bool {
        bearer_token(headers).is_some_and(|token| state.server_key.matches(token))
    }
}

impl FromRequestParts<AppState> for GameServer {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer_token(&parts.headers).ok_or(ApiError::Unauthorized(
            "missing or malformed Authorization: Bearer header",
        ))?;
        if state.server_key.matches(token) {
            return Ok(GameServer);
        }
        // Only on the way to a refusal: say so plainly when a player's token (or a game server
        // configured with one) came to a game server's route.
        match state.tokens.verify_access(token) {
            Ok(_) | Err(TokenError::Expired) => Err(ApiError::Unauthorized(
                "this route is for game servers: a server key is required, not a player's \
                 access token",
            )),
            Err(TokenError::Invalid) => Err(ApiError::Unauthorized("server key is invalid")),
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::body::Body;
    use axum::http::{Request, StatusCode, header};
    use axum::routing::get;
    use time::OffsetDateTime;
    use tower::ServiceExt as _;
    use uuid::Uuid;
    use versus_protocol::Problem;

    use super::*;
    use crate::app::App;
    use crate::config::Config;
    use crate::http::auth::AuthPlayer;

    const KEY: &str = "a-server-key-of-at-least-32-bytes-0123456789";

    #[test]
    fn the_key_matches_only_itself() {
        let key = ServerKey::new(&SecretString::from(KEY));
        assert!(key.matches(KEY));
        assert!(!key.matches(&KEY[..KEY.len() - 1]));
        assert!(!key.matches(&format!("{KEY}x")));
        assert!(!key.matches(""));
        assert_eq!(format!("{key:?}"), "ServerKey(..)");
    }

    /// The answer's status and, for a refusal, its problem's detail.
    async fn call(
        router: &Router,
        path: &str,
        authorization: Option<&str>,
    ) -> (StatusCode, String) {
        let mut request = Request::get(path);
        if let Some(value) = authorization {
            request = request.header(header::AUTHORIZATION, value);
        }
        let response = router
            .clone()
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        if status == StatusCode::UNAUTHORIZED {
            assert_eq!(response.headers()[header::WWW_AUTHENTICATE], "Bearer");
        }
        let detail = response
            .extensions()
            .get::<Problem>()
            .map(|problem| problem.detail.clone())
            .unwrap_or_default();
        (status, detail)
    }

    #[tokio::test]
    async fn game_server_routes_take_the_server_key_and_player_routes_refuse_it() {
        let data_dir = std::env::temp_dir().join(format!("versus-gs-{}", Uuid::new_v4()));
        let mut config = Config {
            bind: "127.0.0.1:0".parse().unwrap(),
            data_dir: data_dir.clone(),
            ..Config::default()
        };
        config.auth.max_concurrent_hashes = 1;
        config.auth.argon2.memory_kib = 64;
        config.auth.argon2.iterations = 1;
        config.sessions.server_key = Some(SecretString::from(KEY));
        let app = App::build(config).await.unwrap();
        let state = app.state();
        let router = Router::new()
            .route("/server", get(|_: GameServer| async { "server" }))
            .route("/player", get(|_: AuthPlayer| async { "player" }))
            .with_state(state.clone());

        let bearer = format!("Bearer {KEY}");
        assert_eq!(
            call(&router, "/server", Some(&bearer)).await.0,
            StatusCode::OK
        );
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, bearer.parse().unwrap());
        assert!(GameServer::presented(&state, &headers));
        headers.insert(header::AUTHORIZATION, "Bearer nope".parse().unwrap());
        assert!(!GameServer::presented(&state, &headers));
        assert!(!GameServer::presented(&state, &HeaderMap::new()));

        let (status, detail) = call(&router, "/server", None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(detail.contains("Authorization"), "{detail}");
        let (status, detail) = call(&router, "/server", Some("Bearer not-the-key")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(detail, "server key is invalid");
        let (status, detail) = call(&router, "/server", Some(KEY)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{detail}");

        let player_token =
            (state.tokens).issue_access(Uuid::now_v7(), Uuid::now_v7(), OffsetDateTime::now_utc());
        let (status, detail) =
            call(&router, "/server", Some(&format!("Bearer {player_token}"))).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(detail.contains("server key is required"), "{detail}");

        let (status, detail) = call(&router, "/player", Some(&bearer)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(detail.contains("player's access token"), "{detail}");

        drop(router);
        drop(state);
        drop(app);
        let _ = std::fs::remove_dir_all(data_dir);
    }
}
