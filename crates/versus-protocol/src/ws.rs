//! The WebSocket protocol at `GET /ws`.
//!
//! Server → client: text frames holding an [`Envelope`] `{"type", "id", "ts", "data"}`.
//! - `id` numbers the player's event stream: it increases by one for each stream event
//!   (`queue_update`, `match_found`, `session_ready`, `game_state_update`, `rating_update`,
//!   `notification`, `system_announcement`, `party_update`, `party_invite`, `ready_check`). Reconnecting with `?last_event_id=N` replays every stream event
//!   after `N` still in the server's bounded buffer, or sends `resume_gap` first when some are
//!   gone. Connection-local replies (`welcome`, `pong`, `error`, `resume_gap`) are not part of the
//!   stream: they carry the id of the player's newest stream event when they were sent, and are
//!   never replayed.
//! - `ts` is the server's send time in Unix milliseconds (for delivery-latency measurement).
//!
//! Client → server: text frames holding a [`ClientMessage`] `{"type", "data"}`: `ping`,
//! `queue.join` (data as the REST body), `queue.leave`, `ack` (`{"id": N}`: the client has the
//! stream up to N, so the server may drop it from the replay buffer), `auth` (`{"token"}`: a
//! fresh access token, see below). Every inbound frame — text, binary, ping — counts against the
//! connection's rate limit.
//!
//! A socket lives as long as the credentials it was opened with: it closes with
//! [`close::TOKEN_EXPIRED`] when its access token expires, unless the client sent `auth` with a
//! newer token of the same player before then (answered by `authenticated` with the new expiry;
//! `welcome` gives the first one), and with [`close::REVOKED`] soon after the login behind it
//! ends (logout, a re-used refresh token revoking its family, an account banned or gone).
//! [`close`] lists every code the server closes with.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::queue::{JoinQueueRequest, TicketState};

/// One server → client frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub id: u64,
    /// Unix time of sending, milliseconds.
    pub ts: i64,
    #[serde(flatten)]
    pub event: ServerEvent,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data", rename_all = "snake_case")]
pub enum ServerEvent {
    /// First frame of every connection.
    Welcome(Welcome),
    QueueUpdate(QueueUpdate),
    MatchFound(MatchFound),
    /// A game server holds the session: where to connect and the token to show it.
    SessionReady(SessionReady),
    /// A session changed state (with why).
    GameStateUpdate(GameStateUpdate),
    /// A result changed the player's rating.
    RatingUpdate(crate::sessions::RatingChange),
    Notification(Notification),
    SystemAnnouncement(SystemAnnouncement),
    /// The player's party changed.
    PartyUpdate(crate::parties::PartyUpdate),
    /// Someone invited the player to a party.
    PartyInvite(crate::parties::PartyInviteEvent),
    /// The party's ready check moved.
    ReadyCheck(crate::parties::ReadyCheckEvent),
    Pong(Pong),
    /// The answer to `auth`: the socket now lives until the new token's expiry.
    Authenticated(Authenticated),
    Error(WsError),
    /// Events after `last_event_id` were dropped from the buffer; the client should refresh
    /// its state over REST.
    ResumeGap(ResumeGap),
}

impl ServerEvent {
    /// Stream events are numbered and replayable; the rest are replies on one connection.
    pub fn is_stream_event(&self) -> bool {
        !matches!(
            self,
            Self::Welcome(_)
                | Self::Pong(_)
                | Self::Authenticated(_)
                | Self::Error(_)
                | Self::ResumeGap(_)
        )
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Welcome {
    pub player_id: Uuid,
    /// The id of the newest stream event the server holds for this player.
    pub last_event_id: u64,
    /// Seconds between server pings; a silent peer is dropped after a few missed.
    pub ping_interval_s: u64,
    /// When the access token this socket was opened with expires (Unix seconds): send `auth`
    /// with a fresh one before then, or the socket closes with [`close::TOKEN_EXPIRED`].
    pub token_expires_at: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Authenticated {
    /// The new token's expiry (Unix seconds): the socket's new deadline.
    pub token_expires_at: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueUpdate {
    pub ticket_id: Uuid,
    pub queue: String,
    pub state: TicketState,
    pub position: Option<u64>,
    /// Expected remaining wait, seconds.
    pub estimated_wait: Option<f64>,
    pub elapsed_s: f64,
    /// Set when `state` is `matched`.
    pub match_id: Option<Uuid>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MatchFound {
    pub match_id: Uuid,
    pub queue: String,
    pub ticket_id: Uuid,
    pub region: String,
    /// Fairness of the predicted outcome, in [0, 1] (1 = a coin flip).
    pub quality: f64,
    pub teams: Vec<MatchTeam>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionReady {
    pub session_id: Uuid,
    /// The game server's address (as the allocator gave it, e.g. `host:port`).
    pub endpoint: String,
    /// Show this to the game server; it verifies it offline (`versus_protocol::session_token`).
    pub token: String,
    /// When the token expires, Unix seconds.
    pub expires_at: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GameStateUpdate {
    pub session_id: Uuid,
    pub state: crate::sessions::SessionStateName,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MatchTeam {
    pub players: Vec<MatchPlayer>,
    pub win_probability: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MatchPlayer {
    pub player_id: Uuid,
    pub display_rating: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    pub kind: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SystemAnnouncement {
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pong {
    /// Whatever the ping carried, echoed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub echo: Option<serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WsError {
    /// Stable code, as in REST problems: `invalid_message`, `rate_limited`, `conflict`, ...
    pub code: String,
    pub detail: String,
    /// The `type` of the client message this answers, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_type: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResumeGap {
    /// What the client asked to resume after.
    pub requested_after: u64,
    /// The oldest event id still buffered (replay starts here).
    pub oldest_available: u64,
}

/// One client → server frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data", deny_unknown_fields)]
pub enum ClientMessage {
    #[serde(rename = "ping")]
    Ping(#[serde(default)] Option<serde_json::Value>),
    #[serde(rename = "queue.join")]
    QueueJoin(JoinQueueRequest),
    #[serde(rename = "queue.leave")]
    QueueLeave(#[serde(default)] Option<serde_json::Value>),
    #[serde(rename = "ack")]
    Ack(Ack),
    #[serde(rename = "auth")]
    Auth(Authenticate),
}

/// `auth`: a newer access token for the same player, to keep the socket past the old one's
/// expiry (after a refresh).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Authenticate {
    pub token: String,
}

/// The close codes of `GET /ws` and what a client should do on each.
pub mod close {
    /// The server is shutting down (reconnect, with backoff, resuming).
    pub const GOING_AWAY: u16 = 1001;
    /// Policy: replaced by a newer connection of the same player (do not reconnect), a reader
    /// too slow for the send buffer (reconnect and resume), too many inbound messages, or no
    /// pong (reconnect).
    pub const POLICY: u16 = 1008;
    /// An inbound frame larger than the server accepts.
    pub const TOO_BIG: u16 = 1009;
    /// The access token the socket runs on expired: refresh, then reconnect (or send `auth`
    /// before the deadline next time).
    pub const TOKEN_EXPIRED: u16 = 4001;
    /// The login behind the socket ended (logout, revoked refresh family, banned or deleted
    /// account): do not reconnect with the same credentials; log in again.
    pub const REVOKED: u16 = 4003;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ack {
    pub id: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_shape() {
        let envelope = Envelope {
            id: 7,
            ts: 1_700_000_000_000,
            event: ServerEvent::Notification(Notification {
                kind: "info".into(),
                message: "hi".into(),
            }),
        };
        let json = serde_json::to_value(&envelope).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"id": 7, "ts": 1_700_000_000_000i64, "type": "notification", "data": {"kind": "info", "message": "hi"}})
        );
        assert_eq!(serde_json::from_value::<Envelope>(json).unwrap(), envelope);
    }

    #[test]
    fn client_messages() {
        let parse = |s: &str| serde_json::from_str::<ClientMessage>(s);
        assert_eq!(
            parse(r#"{"type":"ping"}"#).unwrap(),
            ClientMessage::Ping(None)
        );
        assert_eq!(
            parse(r#"{"type":"ack","data":{"id":3}}"#).unwrap(),
            ClientMessage::Ack(Ack { id: 3 })
        );
        assert!(matches!(
            parse(r#"{"type":"queue.join","data":{"queue":"ranked-1v1"}}"#).unwrap(),
            ClientMessage::QueueJoin(_)
        ));
        assert_eq!(
            parse(r#"{"type":"queue.leave"}"#).unwrap(),
            ClientMessage::QueueLeave(None)
        );
        assert_eq!(
            parse(r#"{"type":"auth","data":{"token":"t"}}"#).unwrap(),
            ClientMessage::Auth(Authenticate { token: "t".into() })
        );
        assert!(parse(r#"{"type":"nope"}"#).is_err());
        assert!(parse(r#"{"type":"ack","data":{"id":"x"}}"#).is_err());
    }
}
