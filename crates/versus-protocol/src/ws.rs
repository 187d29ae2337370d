//! The WebSocket protocol at `GET /ws`.
//!
//! Server → client: text frames holding an [`Envelope`] `{"type", "id", "ts", "data"}`.
//! - `id` numbers the player's event stream: it increases by one for each stream event
//!   (`queue_update`, `match_found`, `notification`, `system_announcement`). Reconnecting with `?last_event_id=N` replays every stream event
//!   after `N` still in the server's bounded buffer, or sends `resume_gap` first when some are
//!   gone. Connection-local replies (`welcome`, `pong`, `error`, `resume_gap`) are not part of the
//!   stream: they carry the id of the player's newest stream event when they were sent, and are
//!   never replayed.
//! - `ts` is the server's send time in Unix milliseconds (for delivery-latency measurement).
//!
//! Client → server: text frames holding a [`ClientMessage`] `{"type", "data"}`: `ping`,
//! `queue.join` (data as the REST body), `queue.leave`, `ack` (`{"id": N}`: the client has the
//! stream up to N, so the server may drop it from the replay buffer).

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
    Notification(Notification),
    SystemAnnouncement(SystemAnnouncement),
    Pong(Pong),
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
            Self::Welcome(_) | Self::Pong(_) | Self::Error(_) | Self::ResumeGap(_)
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
        assert!(parse(r#"{"type":"nope"}"#).is_err());
        assert!(parse(r#"{"type":"ack","data":{"id":"x"}}"#).is_err());
    }
}
