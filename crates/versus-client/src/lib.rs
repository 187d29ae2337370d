//! The Versus Rust SDK: typed calls to the REST API, and ([`ws`]) a WebSocket client for the
//! live event stream. Integration tests, the load generator and the CLI use it, so it is
//! exercised on every test run.
//!
//! It speaks only the wire types of `versus-protocol`; it never interprets game rules.

pub mod credentials;
/// The session-token verifier a game server runs offline (`verify`), and the format.
pub use versus_protocol::session_token;
pub mod ws;

use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;
use versus_protocol::queue::{
    JoinQueueRequest, MatchmakingPreferences, MatchmakingStatistics, TicketView,
};
use versus_protocol::sessions::{
    HeartbeatAck, PlayerRatings, ResultApplied, ResultReport, SessionView, StateChange,
};
use versus_protocol::{
    DetailedHealth, DeviceLoginRequest, Health, LinkRequest, LoginRequest, PlayerProfile, Problem,
    PublicPlayer, RefreshRequest, RegisterRequest, RegisterResponse, TokenResponse,
    UpdatePlayerRequest,
};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error; `problem` is its RFC 7807 body.
    #[error("{status}: {} ({})", problem.detail, problem.code)]
    Api {
        status: StatusCode,
        problem: Box<Problem>,
    },
    /// The server answered with an error that was not a problem document.
    #[error("{status}: unexpected error body: {body}")]
    UnexpectedBody { status: StatusCode, body: String },
    #[error("transport: {0}")]
    Transport(#[from] reqwest::Error),
    /// A value given to the SDK cannot be sent (e.g. an idempotency key that is not a valid
    /// header value).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
}

impl ClientError {
    /// The problem's stable `code`, when the server sent one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Api { problem, .. } => Some(&problem.code),
            _ => None,
        }
    }

    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Self::Api { status, .. } | Self::UnexpectedBody { status, .. } => Some(*status),
            Self::Transport(err) => err.status(),
            Self::InvalidRequest(_) => None,
        }
    }

    /// The match a 409 `already_matched` names in its detail: the leave lost the race.
    pub fn match_id(&self) -> Option<Uuid> {
        match self {
            Self::Api { problem, .. } if problem.code == "already_matched" => {
                first_uuid(&problem.detail)
            }
            _ => None,
        }
    }
}

/// The first hyphenated UUID in `text`.
fn first_uuid(text: &str) -> Option<Uuid> {
    const LEN: usize = 36;
    let bytes = text.as_bytes();
    (0..bytes.len().saturating_sub(LEN - 1))
        .filter(|&start| text.is_char_boundary(start) && text.is_char_boundary(start + LEN))
        .find_map(|start| Uuid::try_parse(&text[start..start + LEN]).ok())
}

pub type ClientResult<T> = Result<T, ClientError>;

/// What a device login answered: the tokens, and whether this login created the guest account
/// (the server's 201) rather than logging into an existing one (200).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceLogin {
    pub tokens: TokenResponse,
    pub created: bool,
}

/// A connection to one Versus server, optionally authenticated as one player.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base_url: String,
    access_token: Option<String>,
}

impl Client {
    /// `base_url` is the server root, e.g. `http://127.0.0.1:8080`.
    pub fn new(base_url: impl Into<String>) -> Self {
        Self::with_http(reqwest::Client::new(), base_url)
    }

    /// Shares one HTTP connection pool among many clients (the load generator's players).
    pub fn with_http(http: reqwest::Client, base_url: impl Into<String>) -> Self {
        let base_url = base_url.into().trim_end_matches('/').to_owned();
        Self {
            http,
            base_url,
            access_token: None,
        }
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// A copy of this client that sends `token` as its bearer token.
    pub fn authenticated(&self, token: impl Into<String>) -> Self {
        Self {
            access_token: Some(token.into()),
            ..self.clone()
        }
    }

    pub fn access_token(&self) -> Option<&str> {
        self.access_token.as_deref()
    }

    async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> ClientResult<T> {
        let response = self.send(method, path, body).await?;
        Ok(response.json().await?)
    }

    async fn send<B: Serialize>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> ClientResult<reqwest::Response> {
        self.send_with_headers(method, path, body, HeaderMap::new())
            .await
    }

    async fn send_with_headers<B: Serialize>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
        headers: HeaderMap,
    ) -> ClientResult<reqwest::Response> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base_url))
            .headers(headers);
        if let Some(token) = &self.access_token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let text = response.text().await?;
        match serde_json::from_str::<Problem>(&text) {
            Ok(problem) => Err(ClientError::Api {
                status,
                problem: Box::new(problem),
            }),
            Err(_) => Err(ClientError::UnexpectedBody { status, body: text }),
        }
    }

    pub async fn register(&self, username: &str, password: &str) -> ClientResult<RegisterResponse> {
        let body = RegisterRequest {
            username: username.to_owned(),
            password: password.to_owned(),
            display_name: None,
        };
        self.call(Method::POST, "/api/v1/auth/register", Some(&body))
            .await
    }

    pub async fn login(&self, username: &str, password: &str) -> ClientResult<TokenResponse> {
        let body = LoginRequest {
            username: username.to_owned(),
            password: password.to_owned(),
        };
        self.call(Method::POST, "/api/v1/auth/login", Some(&body))
            .await
    }

    /// `POST /api/v1/auth/device`: logs into the guest account bound to `device_id`, creating it
    /// the first time. The id is a credential: generate a random one (e.g. a UUID v4) once per
    /// device, keep it there, and never show it.
    pub async fn device_login(&self, device_id: &str) -> ClientResult<DeviceLogin> {
        let body = DeviceLoginRequest {
            device_id: device_id.to_owned(),
        };
        let response = self
            .send(Method::POST, "/api/v1/auth/device", Some(&body))
            .await?;
        let created = response.status() == StatusCode::CREATED;
        Ok(DeviceLogin {
            tokens: response.json().await?,
            created,
        })
    }

    /// `POST /api/v1/auth/link` (authenticated): gives the guest account a username and
    /// password; it keeps its id and data. 409 `already_linked` or `username_taken`.
    pub async fn link(&self, username: &str, password: &str) -> ClientResult<PlayerProfile> {
        let body = LinkRequest {
            username: username.to_owned(),
            password: password.to_owned(),
        };
        self.call(Method::POST, "/api/v1/auth/link", Some(&body))
            .await
    }

    pub async fn refresh(&self, refresh_token: &str) -> ClientResult<TokenResponse> {
        let body = RefreshRequest {
            refresh_token: refresh_token.to_owned(),
        };
        self.call(Method::POST, "/api/v1/auth/refresh", Some(&body))
            .await
    }

    pub async fn logout(&self, refresh_token: &str) -> ClientResult<()> {
        let body = RefreshRequest {
            refresh_token: refresh_token.to_owned(),
        };
        self.send(Method::POST, "/api/v1/auth/logout", Some(&body))
            .await
            .map(drop)
    }

    pub async fn profile(&self) -> ClientResult<PlayerProfile> {
        self.call::<(), _>(Method::GET, "/api/v1/auth/profile", None)
            .await
    }

    pub async fn me(&self) -> ClientResult<PlayerProfile> {
        self.call::<(), _>(Method::GET, "/api/v1/players/me", None)
            .await
    }

    pub async fn update_me(&self, update: &UpdatePlayerRequest) -> ClientResult<PlayerProfile> {
        self.call(Method::PATCH, "/api/v1/players/me", Some(update))
            .await
    }

    pub async fn player(&self, id: Uuid) -> ClientResult<PublicPlayer> {
        self.call::<(), _>(Method::GET, &format!("/api/v1/players/{id}"), None)
            .await
    }

    pub async fn health(&self) -> ClientResult<Health> {
        self.call::<(), _>(Method::GET, "/health", None).await
    }

    pub async fn health_detailed(&self) -> ClientResult<DetailedHealth> {
        self.call::<(), _>(Method::GET, "/health/detailed", None)
            .await
    }

    /// `POST /api/v1/queue/join`. With an `idempotency_key`, repeating the call returns the same
    /// ticket instead of a 409 `already_queued`.
    pub async fn join_queue(
        &self,
        request: &JoinQueueRequest,
        idempotency_key: Option<&str>,
    ) -> ClientResult<TicketView> {
        let mut headers = HeaderMap::new();
        if let Some(key) = idempotency_key {
            let value = HeaderValue::from_str(key).map_err(|_| {
                ClientError::InvalidRequest(format!(
                    "idempotency key {key:?} is not a header value"
                ))
            })?;
            headers.insert("idempotency-key", value);
        }
        let response = self
            .send_with_headers(Method::POST, "/api/v1/queue/join", Some(request), headers)
            .await?;
        Ok(response.json().await?)
    }

    /// `DELETE /api/v1/queue/leave`: the cancelled ticket, or a 409 `already_matched` whose
    /// detail names the match (see [`ClientError::match_id`]), or a 404 `not_queued`.
    pub async fn leave_queue(&self) -> ClientResult<TicketView> {
        self.call::<(), _>(Method::DELETE, "/api/v1/queue/leave", None)
            .await
    }

    /// `GET /api/v1/queue/status` (404 `not_queued` without a ticket).
    pub async fn queue_status(&self) -> ClientResult<TicketView> {
        self.call::<(), _>(Method::GET, "/api/v1/queue/status", None)
            .await
    }

    /// `PUT /api/v1/matchmaking/preferences`.
    pub async fn set_preferences(
        &self,
        preferences: &MatchmakingPreferences,
    ) -> ClientResult<MatchmakingPreferences> {
        self.call(
            Method::PUT,
            "/api/v1/matchmaking/preferences",
            Some(preferences),
        )
        .await
    }

    /// `GET /api/v1/matchmaking/statistics`.
    pub async fn matchmaking_statistics(&self) -> ClientResult<MatchmakingStatistics> {
        self.call::<(), _>(Method::GET, "/api/v1/matchmaking/statistics", None)
            .await
    }

    /// `GET /api/v1/players/{id}/ratings`: the player's rating, games and record per queue.
    pub async fn player_ratings(&self, player: Uuid) -> ClientResult<PlayerRatings> {
        let path = format!("/api/v1/players/{player}/ratings");
        self.call::<(), _>(Method::GET, &path, None).await
    }

    /// `GET /api/v1/sessions/{id}`, as one of its players or as a game server.
    pub async fn session(&self, session: Uuid) -> ClientResult<SessionView> {
        let path = format!("/api/v1/sessions/{session}");
        self.call::<(), _>(Method::GET, &path, None).await
    }

    // The game-server API: a client made with `authenticated(server_key)`, the key sent as
    // `Authorization: Bearer <server key>`.

    /// `POST /api/v1/sessions/{id}/heartbeat` (game server): the session's game server is alive.
    pub async fn session_heartbeat(&self, session: Uuid) -> ClientResult<HeartbeatAck> {
        let path = format!("/api/v1/sessions/{session}/heartbeat");
        self.call::<(), _>(Method::POST, &path, None).await
    }

    /// `PUT /api/v1/sessions/{id}/state` (game server): `active`, `ended` or `cancelled`.
    pub async fn set_session_state(
        &self,
        session: Uuid,
        change: &StateChange,
    ) -> ClientResult<SessionView> {
        let path = format!("/api/v1/sessions/{session}/state");
        self.call(Method::PUT, &path, Some(change)).await
    }

    /// `POST /api/v1/sessions/{id}/result` (game server): the one result. Posting the same
    /// result again answers the same; a different one is a 409 `result_conflict`.
    pub async fn report_result(
        &self,
        session: Uuid,
        report: &ResultReport,
    ) -> ClientResult<ResultApplied> {
        let path = format!("/api/v1/sessions/{session}/result");
        self.call(Method::POST, &path, Some(report)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn match_id_comes_from_the_already_matched_detail() {
        let id = Uuid::now_v7();
        let problem = |code: &str, detail: String| ClientError::Api {
            status: StatusCode::CONFLICT,
            problem: Box::new(Problem {
                type_uri: "about:blank".into(),
                title: "Conflict".into(),
                status: 409,
                detail,
                code: code.into(),
                field: None,
                request_id: None,
            }),
        };
        let matched = problem("already_matched", format!("the ticket is in match {id}."));
        assert_eq!(matched.match_id(), Some(id));
        assert_eq!(
            problem("already_matched", "ünïcode, no id".into()).match_id(),
            None
        );
        assert_eq!(problem("already_queued", id.to_string()).match_id(), None);
    }
}
