//! Parties over REST (`/api/v1/parties/…`) and their WebSocket events (`party_update`,
//! `party_invite`, `ready_check`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::queue::TicketState;

/// `POST /api/v1/parties`: the creator leads.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePartyRequest {
    /// Anyone with the party's join code may join, not only the invited.
    #[serde(default)]
    pub open: bool,
}

/// `POST /api/v1/parties/{id}/invites` (leader only) and `…/kick`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PartyPlayerRequest {
    pub player_id: Uuid,
}

/// `POST /api/v1/parties/{id}/join`: with a pending invite (no body needed), or an open party's
/// join code.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JoinPartyRequest {
    #[serde(default)]
    #[schema(max_length = 64)]
    pub code: Option<String>,
}

/// `POST /api/v1/parties/{id}/ready`. The leader answering `true` with no check running starts
/// one; members answer it within the configured timeout. `latencies` (as in a queue join) are
/// what the member measured: the party's ticket takes, per region, its slowest member's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadyRequest {
    pub ready: bool,
    #[serde(default, deserialize_with = "crate::queue::whole_numbers")]
    #[schema(example = json!({"eu": 35, "na": 110}))]
    pub latencies: BTreeMap<String, u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PartyMemberView {
    pub player_id: Uuid,
    pub display_name: String,
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "time::serde::rfc3339")]
    pub joined_at: OffsetDateTime,
    /// The answer to the running (or passed) ready check; `null`: not answered.
    pub ready: Option<bool>,
    pub leader: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PartyInviteView {
    pub player_id: Uuid,
    pub invited_by: Uuid,
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReadyCheckState {
    /// Waiting for answers until `deadline`.
    Running,
    /// Every member is ready: the leader may queue the party.
    Passed,
    /// A member said no (or withdrew).
    Failed,
    /// Not everyone answered by the deadline.
    TimedOut,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ReadyCheckView {
    pub state: ReadyCheckState,
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "time::serde::rfc3339")]
    pub deadline: OffsetDateTime,
}

/// The party's ticket: the one its leader queued it with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PartyQueueView {
    pub queue: String,
    pub ticket_id: Uuid,
    pub state: TicketState,
}

/// A party, as its members see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PartyView {
    pub party_id: Uuid,
    pub leader_id: Uuid,
    /// In the order they joined (the first would lead next).
    pub members: Vec<PartyMemberView>,
    pub max_size: u32,
    pub open: bool,
    /// Share it to let others join an open party.
    pub join_code: String,
    pub invites: Vec<PartyInviteView>,
    pub ready_check: Option<ReadyCheckView>,
    /// Set once the leader has queued the party.
    pub queue: Option<PartyQueueView>,
    /// Increases with every change: events and reads of the same version show the same party.
    pub version: u64,
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// `party_update`: the party changed (or, with `party` null, the player is no longer in it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PartyUpdate {
    pub party_id: Uuid,
    /// What happened: `created`, `joined`, `left`, `kicked`, `leader_changed`, `invited`,
    /// `ready_check`, `queued`, `queue_cancelled`, `disbanded`.
    pub reason: String,
    /// Who did it, when a player did.
    pub by: Option<Uuid>,
    /// Why a queued ticket was cancelled (`queue_cancelled`).
    pub detail: Option<String>,
    pub party: Option<Box<PartyView>>,
}

/// `party_invite`: someone invited the player.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PartyInviteEvent {
    pub party_id: Uuid,
    pub invited_by: Uuid,
    pub invited_by_name: String,
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// `ready_check`: a ready check started, passed, failed or timed out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ReadyCheckEvent {
    pub party_id: Uuid,
    pub state: ReadyCheckState,
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "time::serde::rfc3339")]
    pub deadline: OffsetDateTime,
    /// Members who said ready.
    pub ready: Vec<Uuid>,
    /// Members still to answer (`running`), or who did not (`timed_out`).
    pub waiting: Vec<Uuid>,
}
