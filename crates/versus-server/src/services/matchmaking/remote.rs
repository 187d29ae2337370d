//! Matchmaking across nodes: one node — the holder of the matchmaking lease in Redis
//! ([`Leadership`](crate::services::cluster::Leadership)) — runs every queue; the others hand
//! each call to it over NATS request/reply on `{prefix}.rpc.matchmaking` (outside the event
//! stream's subjects) and return its answer.
//!
//! Why one matchmaker rather than one owner per queue: the service keeps one searching ticket
//! per player *across* queues, and its directory and idempotency keys would otherwise need a
//! shared store and a protocol of their own; a tick over 100k tickets takes tens of ms, so one
//! node matches a large game. Per-queue owners stay possible behind the same calls.
//!
//! Only owned, plain data crosses: the calls and answers below, with ratings as numbers and a
//! ticket's first join as its age. A call that finds no matchmaker (none elected yet, or the
//! old one just died) fails at once with "the queue is not running" (503).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use versus_core::rating::PlayerRating;
use versus_protocol::queue::{JoinQueueRequest, MatchmakingStatistics, TicketView};
use versus_protocol::ws::QueueUpdate;

use super::{FormedTicket, JoinError, Joined, LeaveError, Matchmaking, OpenSlots};

/// How long a follower waits for the matchmaker's answer.
const CALL_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct WireRating(f64, f64, f64);

impl From<PlayerRating> for WireRating {
    fn from(r: PlayerRating) -> Self {
        Self(r.rating, r.deviation, r.volatility)
    }
}

impl From<WireRating> for PlayerRating {
    fn from(WireRating(rating, deviation, volatility): WireRating) -> Self {
        PlayerRating {
            rating,
            deviation,
            volatility,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct WireFormedTicket {
    ticket_id: Uuid,
    team: usize,
    players: Vec<(Uuid, WireRating)>,
    region_latency_ms: Vec<u32>,
    /// How long ago the ticket first joined, when sent.
    age_ms: u64,
    update: QueueUpdate,
    #[serde(default)]
    idempotency: Option<super::journal::JournaledKey>,
}

#[derive(Debug, Serialize, Deserialize)]
enum Call {
    Join {
        player: Uuid,
        members: Vec<(Uuid, BTreeMap<String, u32>)>,
        request: JoinQueueRequest,
        key: Option<String>,
    },
    Leave {
        player: Uuid,
    },
    Status {
        player: Uuid,
    },
    TicketView {
        queue: String,
        ticket: Uuid,
    },
    Statistics,
    Requeue {
        queue: String,
        tickets: Vec<WireFormedTicket>,
        reason: String,
    },
    Backfill {
        queue: String,
        session: Uuid,
        teams: Vec<Vec<(Uuid, WireRating)>>,
        open_slots: Vec<usize>,
        region: String,
    },
    Withdraw {
        queue: String,
        session: Uuid,
    },
}

/// A refused join as it crosses: every `JoinError` but the store's, whose details stay in the
/// matchmaker's log.
#[derive(Debug, Serialize, Deserialize)]
enum WireJoinError {
    UnknownQueue { known: String },
    UnknownRegion { region: String, regions: String },
    LatencyTooHigh { region: String },
    NoReachableRegion,
    AlreadyQueued(Uuid),
    MemberQueued { player: Uuid, ticket: Uuid },
    KeyReused,
    Refused(String),
    QueueStopped,
    QueueBusy,
}

impl From<JoinError> for WireJoinError {
    fn from(err: JoinError) -> Self {
        match err {
            JoinError::UnknownQueue { known } => Self::UnknownQueue { known },
            JoinError::UnknownRegion { region, regions } => Self::UnknownRegion { region, regions },
            JoinError::LatencyTooHigh { region } => Self::LatencyTooHigh { region },
            JoinError::NoReachableRegion => Self::NoReachableRegion,
            JoinError::AlreadyQueued(ticket) => Self::AlreadyQueued(ticket),
            JoinError::MemberQueued { player, ticket } => Self::MemberQueued { player, ticket },
            JoinError::KeyReused => Self::KeyReused,
            JoinError::Refused(why) => Self::Refused(why.to_string()),
            JoinError::RefusedElsewhere(why) => Self::Refused(why),
            JoinError::QueueStopped => Self::QueueStopped,
            JoinError::QueueBusy => Self::QueueBusy,
            JoinError::Store(err) => {
                tracing::warn!(error = %err, "a forwarded join failed in the store");
                Self::QueueBusy
            }
        }
    }
}

impl From<WireJoinError> for JoinError {
    fn from(err: WireJoinError) -> Self {
        match err {
            WireJoinError::UnknownQueue { known } => Self::UnknownQueue { known },
            WireJoinError::UnknownRegion { region, regions } => {
                Self::UnknownRegion { region, regions }
            }
            WireJoinError::LatencyTooHigh { region } => Self::LatencyTooHigh { region },
            WireJoinError::NoReachableRegion => Self::NoReachableRegion,
            WireJoinError::AlreadyQueued(ticket) => Self::AlreadyQueued(ticket),
            WireJoinError::MemberQueued { player, ticket } => Self::MemberQueued { player, ticket },
            WireJoinError::KeyReused => Self::KeyReused,
            WireJoinError::Refused(why) => Self::RefusedElsewhere(why),
            WireJoinError::QueueStopped => Self::QueueStopped,
            WireJoinError::QueueBusy => Self::QueueBusy,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
enum WireLeaveError {
    NotQueued,
    AlreadyMatched(Uuid),
    QueueStopped,
}

#[derive(Debug, Serialize, Deserialize)]
enum Answer {
    Joined(Result<(TicketView, bool), WireJoinError>),
    Left(Result<TicketView, WireLeaveError>),
    View(Option<Box<TicketView>>),
    Statistics(MatchmakingStatistics),
    Backfill(Result<(), WireJoinError>),
    Done,
}

/// A follower's way to the matchmaker, and the matchmaker's way to serve it.
pub struct Link {
    client: async_nats::Client,
    subject: String,
}

impl Link {
    pub fn new(client: async_nats::Client, prefix: &str) -> Arc<Self> {
        Arc::new(Self {
            client,
            subject: format!("{prefix}.rpc.matchmaking"),
        })
    }

    async fn call(&self, call: &Call) -> Option<Answer> {
        // NATS away: fail now (503) rather than wait out the timeout on a request that
        // would sit in the reconnect buffer.
        if self.client.connection_state() != async_nats::connection::State::Connected {
            tracing::warn!("no matchmaker reachable: NATS is disconnected");
            return None;
        }
        let payload = serde_json::to_vec(call).expect("calls serialise");
        let sent = self.client.request(self.subject.clone(), payload.into());
        match tokio::time::timeout(CALL_TIMEOUT, sent).await {
            Ok(Ok(reply)) => match serde_json::from_slice(&reply.payload) {
                Ok(answer) => Some(answer),
                Err(err) => {
                    tracing::warn!(error = %err, "the matchmaker's answer did not parse");
                    None
                }
            },
            Ok(Err(err)) => {
                tracing::warn!(error = %err, "no matchmaker answered");
                None
            }
            Err(_) => {
                tracing::warn!("the matchmaker did not answer within {CALL_TIMEOUT:?}");
                None
            }
        }
    }

    pub(super) async fn join(
        &self,
        player: Uuid,
        members: &[(Uuid, &BTreeMap<String, u32>)],
        request: &JoinQueueRequest,
        key: Option<&str>,
    ) -> Result<Joined, JoinError> {
        let call = Call::Join {
            player,
            members: (members.iter())
                .map(|(m, latencies)| (*m, (*latencies).clone()))
                .collect(),
            request: request.clone(),
            key: key.map(str::to_owned),
        };
        match self.call(&call).await {
            Some(Answer::Joined(Ok((ticket, created)))) => Ok(Joined { ticket, created }),
            Some(Answer::Joined(Err(err))) => Err(err.into()),
            _ => Err(JoinError::QueueStopped),
        }
    }

    pub(super) async fn leave(&self, player: Uuid) -> Result<TicketView, LeaveError> {
        match self.call(&Call::Leave { player }).await {
            Some(Answer::Left(Ok(view))) => Ok(view),
            Some(Answer::Left(Err(WireLeaveError::NotQueued))) => Err(LeaveError::NotQueued),
            Some(Answer::Left(Err(WireLeaveError::AlreadyMatched(m)))) => {
                Err(LeaveError::AlreadyMatched(m))
            }
            _ => Err(LeaveError::QueueStopped),
        }
    }

    pub(super) async fn status(&self, player: Uuid) -> Option<TicketView> {
        match self.call(&Call::Status { player }).await {
            Some(Answer::View(view)) => view.map(|v| *v),
            _ => None,
        }
    }

    pub(super) async fn ticket_view(&self, queue: &str, ticket: Uuid) -> Option<TicketView> {
        let call = Call::TicketView {
            queue: queue.to_owned(),
            ticket,
        };
        match self.call(&call).await {
            Some(Answer::View(view)) => view.map(|v| *v),
            _ => None,
        }
    }

    pub(super) async fn statistics(&self) -> Option<MatchmakingStatistics> {
        match self.call(&Call::Statistics).await {
            Some(Answer::Statistics(stats)) => Some(stats),
            _ => None,
        }
    }

    pub(super) async fn requeue(&self, queue: &str, tickets: Vec<FormedTicket>, reason: String) {
        let now = Instant::now();
        let tickets = (tickets.into_iter())
            .map(|t| WireFormedTicket {
                ticket_id: t.ticket_id,
                team: t.team,
                players: t.players.into_iter().map(|(p, r)| (p, r.into())).collect(),
                region_latency_ms: t.region_latency_ms,
                age_ms: now.saturating_duration_since(t.created).as_millis() as u64,
                update: t.update,
                idempotency: t.idempotency,
            })
            .collect();
        let call = Call::Requeue {
            queue: queue.to_owned(),
            tickets,
            reason,
        };
        if self.call(&call).await.is_none() {
            tracing::warn!(queue, "tickets could not be requeued: no matchmaker");
        }
    }

    pub(super) async fn request_backfill(
        &self,
        queue: &str,
        session: Uuid,
        request: OpenSlots,
    ) -> Result<(), JoinError> {
        let call = Call::Backfill {
            queue: queue.to_owned(),
            session,
            teams: (request.teams.into_iter())
                .map(|team| team.into_iter().map(|(p, r)| (p, r.into())).collect())
                .collect(),
            open_slots: request.open_slots,
            region: request.region,
        };
        match self.call(&call).await {
            Some(Answer::Backfill(Ok(()))) => Ok(()),
            Some(Answer::Backfill(Err(err))) => Err(err.into()),
            _ => Err(JoinError::QueueStopped),
        }
    }

    pub(super) async fn withdraw_backfill(&self, queue: &str, session: Uuid) {
        let call = Call::Withdraw {
            queue: queue.to_owned(),
            session,
        };
        let _ = self.call(&call).await;
    }

    /// Answers followers' calls with `matchmaking` (this node's, run locally) until `stop`
    /// resolves: while this node holds the lease.
    pub async fn serve(
        self: Arc<Self>,
        matchmaking: Arc<Matchmaking>,
        stop: impl std::future::Future<Output = ()>,
    ) {
        // A queue group: were two nodes ever to serve at once (a lease just changing hands),
        // each call would still be answered once.
        let subscription = self
            .client
            .queue_subscribe(self.subject.clone(), "matchmaker".to_owned())
            .await;
        let mut calls = match subscription {
            Ok(calls) => calls,
            Err(err) => {
                tracing::warn!(error = %err, "could not serve matchmaking calls");
                return;
            }
        };
        tokio::pin!(stop);
        loop {
            let message = tokio::select! {
                message = calls.next() => message,
                () = &mut stop => break,
            };
            let Some(message) = message else { break };
            let Some(reply) = message.reply.clone() else {
                continue;
            };
            let call: Call = match serde_json::from_slice(&message.payload) {
                Ok(call) => call,
                Err(err) => {
                    tracing::warn!(error = %err, "a matchmaking call did not parse");
                    continue;
                }
            };
            let (matchmaking, client) = (matchmaking.clone(), self.client.clone());
            tokio::spawn(async move {
                let answer = answer(&matchmaking, call).await;
                let payload = serde_json::to_vec(&answer).expect("answers serialise");
                if let Err(err) = client.publish(reply, payload.into()).await {
                    tracing::warn!(error = %err, "a matchmaking answer was not sent");
                }
            });
        }
        let _ = calls.unsubscribe().await;
    }
}

/// The matchmaker runs a follower's call on its own queues.
async fn answer(matchmaking: &Matchmaking, call: Call) -> Answer {
    match call {
        Call::Join {
            player,
            members,
            request,
            key,
        } => {
            let members: Vec<(Uuid, &BTreeMap<String, u32>)> =
                members.iter().map(|(m, l)| (*m, l)).collect();
            let joined = matchmaking
                .local_join(player, &members, &request, key.as_deref())
                .await;
            Answer::Joined(joined.map(|j| (j.ticket, j.created)).map_err(Into::into))
        }
        Call::Leave { player } => Answer::Left(matchmaking.local_leave(player).await.map_err(
            |err| match err {
                LeaveError::NotQueued => WireLeaveError::NotQueued,
                LeaveError::AlreadyMatched(m) => WireLeaveError::AlreadyMatched(m),
                LeaveError::QueueStopped => WireLeaveError::QueueStopped,
            },
        )),
        Call::Status { player } => {
            Answer::View(matchmaking.local_status(player).await.map(Box::new))
        }
        Call::TicketView { queue, ticket } => Answer::View(
            matchmaking
                .local_ticket_view(&queue, ticket)
                .await
                .map(Box::new),
        ),
        Call::Statistics => Answer::Statistics(matchmaking.local_statistics()),
        Call::Requeue {
            queue,
            tickets,
            reason,
        } => {
            let now = Instant::now();
            let tickets = (tickets.into_iter())
                .map(|t| FormedTicket {
                    ticket_id: t.ticket_id,
                    team: t.team,
                    players: t.players.into_iter().map(|(p, r)| (p, r.into())).collect(),
                    region_latency_ms: t.region_latency_ms,
                    created: now
                        .checked_sub(Duration::from_millis(t.age_ms))
                        .unwrap_or(now),
                    update: t.update,
                    idempotency: t.idempotency,
                })
                .collect();
            matchmaking.local_requeue(&queue, tickets, reason).await;
            Answer::Done
        }
        Call::Backfill {
            queue,
            session,
            teams,
            open_slots,
            region,
        } => {
            let request = OpenSlots {
                teams: (teams.into_iter())
                    .map(|team| team.into_iter().map(|(p, r)| (p, r.into())).collect())
                    .collect(),
                open_slots,
                region,
            };
            let done = matchmaking
                .local_request_backfill(&queue, session, request)
                .await;
            Answer::Backfill(done.map_err(Into::into))
        }
        Call::Withdraw { queue, session } => {
            matchmaking.local_withdraw_backfill(&queue, session).await;
            Answer::Done
        }
    }
}
