//! The one error type at the HTTP edge. Every 4xx and 5xx leaves the server as an RFC 7807
//! `application/problem+json` body with a stable `code`; a 5xx hides its cause from the client
//! and logs the chain instead. An `ApiError` becomes a response carrying its [`Problem`] as an
//! extension; `http::problem_bodies` serialises it once, with the request id.

use std::time::Duration;

use axum::Extension;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use versus_protocol::Problem;
use versus_protocol::ws::WsError;

use crate::services::auth::HashError;
use crate::services::leaderboards::LeaderboardError;
use crate::services::matchmaking::{JoinError, LeaveError};
use crate::services::parties::PartiesError;
use crate::services::sessions::SessionError;
use versus_core::party::PartyError;

/// What a client refused by a full hashing queue is told to wait: the queue drains in seconds
/// at most, and the client's own backoff and jitter spread the retries.
const HASH_BUSY_RETRY_AFTER: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{field}: {detail}")]
    Validation { field: String, detail: String },
    #[error("{detail}")]
    MalformedBody {
        field: Option<String>,
        detail: String,
    },
    #[error("expected a JSON body with content-type application/json")]
    UnsupportedMediaType,
    #[error("request body is larger than the {limit} bytes allowed")]
    PayloadTooLarge { limit: usize },
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error("unknown username or wrong password")]
    InvalidCredentials,
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("{detail}")]
    ForbiddenCode { code: &'static str, detail: String },
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{detail}")]
    NotFoundCode { code: &'static str, detail: String },
    /// Well-formed but cannot be done as asked (422).
    #[error("{detail}")]
    Unprocessable {
        code: &'static str,
        field: Option<&'static str>,
        detail: String,
    },
    #[error("{detail}")]
    Conflict {
        code: &'static str,
        field: Option<&'static str>,
        detail: String,
    },
    #[error("too many requests; retry in {} s", retry_after.as_secs().max(1))]
    RateLimited { retry_after: Duration },
    #[error("service unavailable: {0}")]
    Unavailable(&'static str),
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    pub fn validation(field: impl Into<String>, detail: impl ToString) -> Self {
        Self::Validation {
            field: field.into(),
            detail: detail.to_string(),
        }
    }

    pub fn internal(err: impl Into<anyhow::Error>) -> Self {
        Self::Internal(err.into())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::Validation { .. } | Self::MalformedBody { .. } => StatusCode::BAD_REQUEST,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Unauthorized(_) | Self::InvalidCredentials => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) | Self::ForbiddenCode { .. } => StatusCode::FORBIDDEN,
            Self::NotFound(_) | Self::NotFoundCode { .. } => StatusCode::NOT_FOUND,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::Validation { .. } => "validation_failed",
            Self::MalformedBody { .. } => "malformed_body",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::Unauthorized(_) => "unauthorized",
            Self::InvalidCredentials => "invalid_credentials",
            Self::Forbidden(_) => "forbidden",
            Self::NotFound(_) => "not_found",
            Self::NotFoundCode { code, .. } | Self::ForbiddenCode { code, .. } => code,
            Self::Conflict { code, .. } | Self::Unprocessable { code, .. } => code,
            Self::RateLimited { .. } => "rate_limited",
            Self::Unavailable(_) => "unavailable",
            Self::Internal(_) => "internal_error",
        }
    }

    fn field(&self) -> Option<String> {
        match self {
            Self::Validation { field, .. } => Some(field.clone()),
            Self::MalformedBody { field, .. } => field.clone(),
            Self::Conflict { field, .. } | Self::Unprocessable { field, .. } => {
                field.map(str::to_owned)
            }
            _ => None,
        }
    }
}

/// The problem body for a status with no more specific story, e.g. a 405 or a timeout raised by
/// a layer rather than a handler.
pub fn problem_for_status(status: StatusCode) -> Problem {
    let code = match status {
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::REQUEST_TIMEOUT => "request_timeout",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::TOO_MANY_REQUESTS => "rate_limited",
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "forbidden",
        s if s.is_server_error() => "internal_error",
        _ => "bad_request",
    };
    let title = status.canonical_reason().unwrap_or("Error");
    problem(status, code, title.to_owned(), None)
}

fn problem(status: StatusCode, code: &str, detail: String, field: Option<String>) -> Problem {
    Problem {
        type_uri: format!("https://versus.dev/problems/{code}"),
        title: status.canonical_reason().unwrap_or("Error").to_owned(),
        status: status.as_u16(),
        detail,
        code: code.to_owned(),
        field,
        request_id: None,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if let Self::Internal(err) = &self {
            tracing::error!(
                error = format!("{err:#}"),
                "request failed with an internal error"
            );
        }
        let problem = problem(status, self.code(), self.to_string(), self.field());
        // The body is written once, by the problem middleware, which adds the request id.
        let mut response = (status, Extension(problem)).into_response();
        match &self {
            Self::RateLimited { retry_after } => {
                let secs = retry_after.as_secs_f64().ceil().max(1.0) as u64;
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
            Self::Unauthorized(_) | Self::InvalidCredentials => {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            _ => {}
        }
        response
    }
}

impl From<versus_store::StoreError> for ApiError {
    fn from(err: versus_store::StoreError) -> Self {
        match err {
            versus_store::StoreError::UsernameTaken => Self::Conflict {
                code: "username_taken",
                field: Some("username"),
                detail: "username is already taken".to_owned(),
            },
            versus_store::StoreError::AlreadyLinked => Self::Conflict {
                code: "already_linked",
                field: None,
                detail: "this account already has a username and password".to_owned(),
            },
            // Load, not a fault: the client may retry (a write waited out SQLite's lock).
            other if other.is_busy() => Self::Unavailable("the database is busy; retry shortly"),
            other => Self::Internal(other.into()),
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// A full hashing queue is the server's load, not the client's fault, but the answer is the
/// same as for a rate limit: try again later, here is when.
impl From<HashError> for ApiError {
    fn from(err: HashError) -> Self {
        match err {
            HashError::Busy => Self::RateLimited {
                retry_after: HASH_BUSY_RETRY_AFTER,
            },
            other => Self::Internal(other.into()),
        }
    }
}

/// The one mapping of a refused join: the REST problem, and through [`ApiError::ws_error`] the
/// same code and words on the WebSocket.
impl From<JoinError> for ApiError {
    fn from(err: JoinError) -> Self {
        match err {
            JoinError::UnknownQueue { .. }
            | JoinError::Refused(_)
            | JoinError::RefusedElsewhere(_) => Self::validation("queue", &err),
            JoinError::UnknownRegion { ref region, .. }
            | JoinError::LatencyTooHigh { ref region } => {
                Self::validation(format!("latencies.{region}"), &err)
            }
            JoinError::NoReachableRegion => Self::validation("latencies", &err),
            JoinError::KeyReused => Self::Conflict {
                code: "idempotency_key_reused",
                field: Some("Idempotency-Key"),
                detail: err.to_string(),
            },
            JoinError::AlreadyQueued(_) => Self::Conflict {
                code: "already_queued",
                field: None,
                detail: err.to_string(),
            },
            JoinError::MemberQueued { .. } => Self::Conflict {
                code: "member_queued",
                field: Some("party_id"),
                detail: err.to_string(),
            },
            JoinError::QueueStopped => Self::Unavailable("the queue is not running"),
            JoinError::QueueBusy => Self::Unavailable("the queue is busy; retry shortly"),
            JoinError::Store(err) => Self::from(err),
        }
    }
}

impl From<PartiesError> for ApiError {
    fn from(err: PartiesError) -> Self {
        let detail = err.to_string();
        let conflict = |code, field| Self::Conflict {
            code,
            field,
            detail: detail.clone(),
        };
        let forbidden = |code| Self::ForbiddenCode {
            code,
            detail: detail.clone(),
        };
        match err {
            PartiesError::Rule(rule) => match rule {
                PartyError::NotMember => forbidden("not_party_member"),
                PartyError::NotLeader => forbidden("not_party_leader"),
                PartyError::NotInvited => forbidden("not_invited"),
                PartyError::BadCode => forbidden("bad_join_code"),
                PartyError::Full { .. } => conflict("party_full", None),
                PartyError::AlreadyInParty => conflict("already_in_party", None),
                PartyError::AlreadyMember => conflict("already_member", Some("player_id")),
                PartyError::InviteExpired => conflict("invite_expired", None),
                PartyError::AlreadyInvited => conflict("already_invited", Some("player_id")),
                PartyError::TooManyInvites { .. } => conflict("too_many_invites", None),
                PartyError::KickSelf => conflict("cannot_kick_self", Some("player_id")),
                PartyError::NotAMember => Self::NotFoundCode {
                    code: "not_a_member",
                    detail,
                },
                PartyError::NoReadyCheck => conflict("no_ready_check", Some("ready")),
                PartyError::MemberQueued => conflict("member_queued", None),
                PartyError::NotReady => conflict("party_not_ready", None),
            },
            PartiesError::NotFound => Self::NotFoundCode {
                code: "party_not_found",
                detail,
            },
            PartiesError::UnknownPlayer => Self::NotFoundCode {
                code: "player_not_found",
                detail,
            },
            PartiesError::ChangedWhileQueueing => conflict("party_changed", None),
            PartiesError::InParty => conflict("in_party", Some("party_id")),
            PartiesError::Join(join) => Self::from(join),
            PartiesError::Store(store) => Self::from(store),
        }
    }
}

impl From<LeaveError> for ApiError {
    fn from(err: LeaveError) -> Self {
        match err {
            LeaveError::NotQueued => Self::NotFoundCode {
                code: "not_queued",
                detail: err.to_string(),
            },
            LeaveError::AlreadyMatched(_) => Self::Conflict {
                code: "already_matched",
                field: None,
                detail: err.to_string(),
            },
            LeaveError::QueueStopped => Self::Unavailable("the queue is not running"),
        }
    }
}

impl ApiError {
    /// The same error as a WebSocket `error` event answering a message of `request_type`.
    pub fn ws_error(self, request_type: Option<&str>) -> WsError {
        if let Self::Internal(err) = &self {
            tracing::error!(
                error = format!("{err:#}"),
                "a WebSocket request failed with an internal error"
            );
        }
        WsError {
            code: self.code().to_owned(),
            detail: self.to_string(),
            request_type: request_type.map(str::to_owned),
        }
    }
}

impl From<SessionError> for ApiError {
    fn from(err: SessionError) -> Self {
        let conflict = |code: &'static str, err: &SessionError| Self::Conflict {
            code,
            field: None,
            detail: err.to_string(),
        };
        match err {
            SessionError::Unknown => Self::NotFoundCode {
                code: "session_not_found",
                detail: err.to_string(),
            },
            SessionError::Illegal { .. } => Self::Conflict {
                code: "illegal_transition",
                field: Some("state"),
                detail: err.to_string(),
            },
            SessionError::UnknownPlayer(_) => Self::NotFoundCode {
                code: "player_not_found",
                detail: err.to_string(),
            },
            SessionError::NotLive(_) => conflict("session_not_live", &err),
            SessionError::ResultConflict => conflict("result_conflict", &err),
            SessionError::BadResult(_) | SessionError::BadRoster(_) => {
                Self::validation("teams", &err)
            }
            SessionError::ForbiddenState => Self::validation("state", &err),
            SessionError::UnknownQueue { .. } => Self::validation("queue", &err),
            SessionError::BadSlots(_) | SessionError::Backfill(_) => {
                Self::validation("slots", &err)
            }
            SessionError::NoServer(_) => Self::Unavailable("no game server could take the session"),
            SessionError::Store(err) => Self::from(err),
        }
    }
}

impl From<LeaderboardError> for ApiError {
    fn from(err: LeaderboardError) -> Self {
        match err {
            LeaderboardError::UnknownQueue { .. } => Self::NotFoundCode {
                code: "queue_not_found",
                detail: err.to_string(),
            },
            LeaderboardError::BadCursor => Self::validation("cursor", &err),
            LeaderboardError::NotRanked => Self::NotFoundCode {
                code: "not_ranked",
                detail: err.to_string(),
            },
            LeaderboardError::NoSuchSeason { .. } => Self::NotFoundCode {
                code: "season_not_found",
                detail: err.to_string(),
            },
            LeaderboardError::Store(err) => Self::from(err),
        }
    }
}
