//! The session service: what happens after a match forms.
//!
//! 1. A queue hands over a [`FormedSession`]; the session is **stored** (`allocating`) before
//!    any player hears of the match, then the players get `queue_update` (matched) and
//!    `match_found`.
//! 2. The allocator finds a game server: the session becomes `ready` and every player gets
//!    `session_ready` (endpoint and a token the game server verifies offline). No server: the
//!    session is `cancelled` and its tickets go back to the queue at the front, keeping their
//!    wait; the players are told why.
//! 3. The game server heartbeats (`ready`/`active` sessions without one for
//!    `sessions.heartbeat_ttl_secs` — the first due within `ready_timeout_secs` — become
//!    `abandoned`), moves the state, posts one result: ratings change in the same transaction,
//!    then every player gets `rating_update`.
//!
//! Every transition is stored with its actor and reason, and told to the session's players as
//! `game_state_update`. Heartbeat deadlines live in memory: after a restart, `ready`/`active`
//! sessions get a fresh deadline, and `allocating` ones (their allocation was lost) are
//! cancelled.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use uuid::Uuid;
use versus_config::Queue;
use versus_core::matchmaking::PlayerId;
use versus_core::rating::{AnyRatingSystem, PlayerRating, RatingSystem as _};
use versus_core::session::{
    self, Actor, IllegalTransition, Outcome, ReportedTeam, ResultError, SessionState,
};
use versus_protocol::session_token::{self, SessionClaims};
use versus_protocol::sessions::{
    BackfillSlots, CustomSession, HeartbeatAck, MatchHistoryEntry, Page, PlayerRatings,
    QueueRating, RatingChange, RatingHistoryEntry, RatingValue, ResultApplied, ResultReport,
    ResultTeam, SessionStateName, SessionTeam, SessionView, StateChange, TransitionView,
};
use versus_protocol::ws::{GameStateUpdate, MatchFound, ServerEvent, SessionReady};
use versus_store::{
    Cursor, NewSession, Placement, RatedResult, RatingUpdate, Recorded, ResultToRecord,
    RosterRating, SessionMove, SessionRecord, Store, StoreError, StoredRating, TransitionRecord,
    Transitioned,
};

use super::allocator::{AllocationError, AllocationRequest, Allocator};
use crate::config::SessionsConfig;
use crate::services::events::{Audience, BusEvent, EventBus};
use crate::services::leaderboards::Leaderboards;
use crate::services::matchmaking::{FormedSession, Matchmaking, OpenSlots};
use crate::services::redis::Redis;

/// Why a session request could not be done. The edge maps each to a problem.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("no such session")]
    Unknown,
    #[error("the session is {current}; it cannot become {requested}")]
    Illegal {
        current: SessionState,
        requested: SessionState,
    },
    #[error("the session is {0}: no game server holds it")]
    NotLive(SessionState),
    #[error("{0}")]
    BadResult(ResultError),
    #[error("a different result was already recorded for this session")]
    ResultConflict,
    #[error("a game server may only set a session active, ended or cancelled")]
    ForbiddenState,
    #[error("unknown queue; known: {known}")]
    UnknownQueue { known: String },
    #[error("{0}")]
    BadRoster(String),
    #[error("player {0} does not exist")]
    UnknownPlayer(Uuid),
    #[error("{0}")]
    BadSlots(String),
    #[error("the queue cannot take this backfill: {0}")]
    Backfill(String),
    #[error("no game server could take the session: {0}")]
    NoServer(String),
    #[error("session storage failed")]
    Store(#[from] StoreError),
}

struct QueueShape {
    team_size: usize,
    /// Where a session without a region (a custom session) backfills.
    home_region: String,
}

/// A live session's heartbeat clock.
struct Live {
    queue: String,
    state: SessionState,
    deadline: Instant,
}

pub struct Sessions {
    store: Arc<dyn Store>,
    bus: Arc<dyn EventBus>,
    matchmaking: Arc<Matchmaking>,
    allocator: Arc<dyn Allocator>,
    leaderboards: Arc<Leaderboards>,
    /// Each queue's rating system, by name.
    raters: HashMap<String, AnyRatingSystem>,
    /// What backfill needs of each queue, by name.
    shapes: HashMap<String, QueueShape>,
    token_key: Vec<u8>,
    config: SessionsConfig,
    live: Mutex<HashMap<Uuid, Live>>,
    moves: MoveWriter,
    /// In a cluster, each heartbeat also lives in Redis (with the heartbeat TTL): every node
    /// keeps clocks for the sessions it has seen, and before abandoning a silent one asks Redis
    /// whether the game server heartbeated through another node.
    redis: Option<Arc<Redis>>,
}

/// The services a session touches.
pub struct SessionDeps {
    pub store: Arc<dyn Store>,
    pub bus: Arc<dyn EventBus>,
    pub matchmaking: Arc<Matchmaking>,
    pub allocator: Arc<dyn Allocator>,
    pub leaderboards: Arc<Leaderboards>,
    /// In a cluster: where heartbeats are shared, so that a game server may send them to any
    /// node.
    pub redis: Option<Arc<Redis>>,
}

impl Sessions {
    pub fn new<'a>(
        deps: SessionDeps,
        queues: impl IntoIterator<Item = &'a Queue>,
        token_key: Vec<u8>,
        config: SessionsConfig,
    ) -> Arc<Self> {
        let SessionDeps {
            store,
            bus,
            matchmaking,
            allocator,
            leaderboards,
            redis,
        } = deps;
        let queues: Vec<&Queue> = queues.into_iter().collect();
        let shapes = (queues.iter())
            .map(|q| {
                let shape = QueueShape {
                    team_size: q.config.team_size,
                    home_region: q.config.regions.first().cloned().unwrap_or_default(),
                };
                (q.name.clone(), shape)
            })
            .collect();
        let raters = (queues.iter())
            .map(|q| {
                let rater = q
                    .config
                    .rating
                    .build()
                    .expect("queues are validated when loaded");
                (q.name.clone(), rater)
            })
            .collect();
        Arc::new(Self {
            bus,
            matchmaking,
            allocator,
            leaderboards,
            raters,
            shapes,
            moves: MoveWriter::start(store.clone()),
            store,
            token_key,
            config,
            live: Mutex::default(),
            redis,
        })
    }

    fn rater(&self, queue: &str) -> Result<&AnyRatingSystem, SessionError> {
        self.raters
            .get(queue)
            .ok_or_else(|| SessionError::UnknownQueue {
                known: self.raters.keys().cloned().collect::<Vec<_>>().join(", "),
            })
    }

    /// Takes the queues' formed matches until they stop.
    pub async fn run(self: Arc<Self>, mut formed: mpsc::UnboundedReceiver<FormedSession>) {
        let mut batch = Vec::new();
        // A tick hands over its matches together, so one `recv_many` takes a tick's worth.
        while formed.recv_many(&mut batch, MAX_BATCH).await > 0 {
            let mut placed_in_memory = Vec::new();
            for match_ in batch.drain(..) {
                if match_.resumed {
                    let this = self.clone();
                    tokio::spawn(async move { this.resume(match_).await });
                } else if match_.backfill_of.is_none() && self.allocator.answers_in_memory() {
                    placed_in_memory.push(match_);
                } else {
                    // Each goes its own way: one slow allocation must not hold up the next
                    // match's `match_found`.
                    let this = self.clone();
                    tokio::spawn(async move { this.formed(match_).await });
                }
            }
            if !placed_in_memory.is_empty() {
                let this = self.clone();
                tokio::spawn(async move { this.formed_placed(placed_in_memory).await });
            }
        }
    }

    /// A match for an allocator that answers over the network: stored `allocating`, players
    /// told, then the game server asked.
    async fn formed(self: Arc<Self>, formed: FormedSession) {
        if let Some(session) = formed.backfill_of {
            return self.filled(session, formed).await;
        }
        let new = new_session(&formed, Placement::Allocating);
        if let Err(err) = self.store.create_session(new.clone()).await {
            return self.not_stored(formed, err).await;
        }
        count_created(&formed);
        self.matched(&formed);
        self.allocate_or_requeue(&formed, &new).await;
    }

    /// Finds the game server of a session stored `allocating`, or puts its tickets back; only
    /// then is the match settled: a matchmaker taking over meanwhile allocates it again.
    async fn allocate_or_requeue(&self, formed: &FormedSession, new: &NewSession) {
        if let Err(why) = self.allocate(allocation_request(new)).await {
            self.matchmaking
                .requeue(&formed.queue, formed.tickets.clone(), why)
                .await;
        }
        self.settled([formed]).await;
    }

    /// A tick's matches for an allocator that answers in memory: each is placed first, then
    /// all are stored in one transaction already `ready` (or `cancelled`: no room), then their
    /// players are told. Two write transactions per tick instead of two per match: under load
    /// a tick's burst of session writes is what results queue behind.
    async fn formed_placed(self: Arc<Self>, batch: Vec<FormedSession>) {
        let mut sessions = Vec::with_capacity(batch.len());
        for formed in &batch {
            let mut new = new_session(formed, Placement::Allocating);
            new.placed = match self.allocator.allocate(&allocation_request(&new)).await {
                Ok(allocation) => Placement::Ready {
                    reason: format!("allocated on {}", allocation.endpoint),
                    endpoint: allocation.endpoint,
                },
                Err(err) => Placement::Cancelled {
                    reason: allocation_failure(err),
                },
            };
            sessions.push(new);
        }
        if let Err(err) = self.store.create_sessions(&sessions).await {
            // One bad roster (a player gone meanwhile) must not sink the whole tick.
            tracing::warn!(sessions = sessions.len(), error = %err, "storing a tick's sessions together failed; storing them one by one");
            for (formed, new) in batch.into_iter().zip(sessions) {
                match self.store.create_session(new.clone()).await {
                    Ok(()) => {
                        self.placed(&formed, &new).await;
                        self.settled([&formed]).await;
                    }
                    Err(err) => {
                        self.allocator.release(new.id).await;
                        self.not_stored(formed, err).await;
                    }
                }
            }
            return;
        }
        for (formed, new) in batch.iter().zip(&sessions) {
            self.placed(formed, new).await;
        }
        self.settled(&batch).await;
    }

    /// A match a matchmaker that died (or lost its lease) left forming, finished by this one:
    /// announced again when it was stored (the bus drops what its players already got),
    /// stored under its id when not.
    async fn resume(self: Arc<Self>, formed: FormedSession) {
        let session = formed.session_id;
        match self.store.session(session).await {
            // Stored, but its matchmaker died while finding it a game server.
            Ok(Some(record)) if record.state == SessionState::Allocating => {
                tracing::info!(session_id = %session, "a match formed by the previous matchmaker allocated again");
                self.matched(&formed);
                let new = new_session(&formed, Placement::Allocating);
                self.allocate_or_requeue(&formed, &new).await;
            }
            // Stored cancelled (no game server), but its tickets never went back.
            Ok(Some(record)) if record.state == SessionState::Cancelled => {
                tracing::info!(session_id = %session, "a cancelled match of the previous matchmaker: its tickets go back");
                self.matchmaking
                    .requeue(
                        &formed.queue,
                        formed.tickets.clone(),
                        "no game server".into(),
                    )
                    .await;
                self.settled([&formed]).await;
            }
            Ok(Some(record)) => {
                tracing::info!(session_id = %session, state = record.state.as_str(), "a match formed by the previous matchmaker announced again");
                self.announce(&formed, &record);
                self.settled([&formed]).await;
            }
            Ok(None) => {
                tracing::info!(session_id = %session, "a match formed by the previous matchmaker stored now");
                if self.allocator.answers_in_memory() {
                    self.formed_placed(vec![formed]).await;
                } else {
                    self.formed(formed).await;
                }
            }
            // Left forming: the next matchmaker to take over tries again.
            Err(err) => {
                tracing::warn!(session_id = %session, error = %err, "a match left forming could not be read")
            }
        }
    }

    /// A stored match's announcements, again: `match_found` and, while the game can still be
    /// joined, `session_ready` — `active` too: the game server may have started it with the
    /// players who heard, while another's `session_ready` died with the old matchmaker.
    fn announce(&self, formed: &FormedSession, record: &SessionRecord) {
        self.matched(formed);
        if matches!(record.state, SessionState::Ready | SessionState::Active)
            && let Some(endpoint) = &record.endpoint
        {
            self.send_ready(record, endpoint);
        }
    }

    /// These matches are stored and announced: once the bus holds their announcements the
    /// journal stops keeping them as forming. (A matchmaker taking over before that announces
    /// them again, and the bus drops what was sent already.)
    async fn settled<'a>(&self, formed: impl IntoIterator<Item = &'a FormedSession>) {
        let mut by_queue: HashMap<&str, (&FormedSession, Vec<Uuid>)> = HashMap::new();
        for match_ in formed.into_iter().filter(|f| f.forming.is_some()) {
            let (_, ids) = by_queue
                .entry(match_.queue.as_str())
                .or_insert_with(|| (match_, Vec::new()));
            ids.push(match_.session_id);
        }
        if by_queue.is_empty() {
            return;
        }
        self.bus.flushed().await;
        for (first, ids) in by_queue.into_values() {
            if let Err(err) = first.settle(&ids).await {
                // The next matchmaker announces these again, to no effect.
                tracing::warn!(sessions = ids.len(), error = %err, "formed matches not cleared from the journal");
            }
        }
    }

    /// Tells the players of a session stored already placed.
    async fn placed(&self, formed: &FormedSession, new: &NewSession) {
        count_created(formed);
        self.matched(formed);
        let record = as_stored(new);
        match &new.placed {
            Placement::Ready { endpoint, reason } => {
                self.after_transition(&record, reason).await;
                self.send_ready(&record, endpoint);
            }
            Placement::Cancelled { reason } => {
                metrics::counter!("game_sessions_allocation_failed_total", "queue" => formed.queue.clone()).increment(1);
                tracing::warn!(session_id = %new.id, reason = %reason, "session cancelled");
                self.after_transition(&record, reason).await;
                self.matchmaking
                    .requeue(&formed.queue, formed.tickets.clone(), reason.clone())
                    .await;
            }
            Placement::Allocating => {}
        }
    }

    /// Nobody was told of this match: its tickets go back as if it never formed — unless the
    /// session is there after all (another matchmaker finished the match first, under its id).
    async fn not_stored(&self, formed: FormedSession, err: StoreError) {
        if let Ok(Some(record)) = self.store.session(formed.session_id).await {
            tracing::info!(session_id = %formed.session_id, "a formed match was stored by another matchmaker");
            // Perhaps by one that died before telling anyone: told (again, where the bus
            // drops what players already got).
            if self.bus.drops_repeats() {
                self.announce(&formed, &record);
            }
            return;
        }
        tracing::error!(session_id = %formed.session_id, error = %err, "a formed match could not be stored");
        self.matchmaking
            .requeue(
                &formed.queue,
                formed.tickets.clone(),
                "match not stored".into(),
            )
            .await;
        self.settled([&formed]).await;
    }

    /// A stored match's players hear of it: `queue_update` (matched) and `match_found`.
    fn matched(&self, formed: &FormedSession) {
        for ticket in &formed.tickets {
            let players: Vec<Uuid> = ticket.players.iter().map(|(p, _)| *p).collect();
            self.bus.publish(BusEvent::to(
                Audience::Players(players.clone()),
                ServerEvent::QueueUpdate(ticket.update.clone()),
            ));
            self.bus.publish(BusEvent::to(
                Audience::Players(players),
                ServerEvent::MatchFound(MatchFound {
                    match_id: formed.session_id,
                    queue: formed.queue.clone(),
                    ticket_id: ticket.ticket_id,
                    region: formed.region.clone(),
                    quality: formed.quality,
                    teams: formed.teams.clone(),
                }),
            ));
        }
    }

    /// Finds the session a game server; on failure cancels it (and says why, also as `Err`).
    async fn allocate(&self, request: AllocationRequest) -> Result<(), String> {
        let session = request.session_id;
        let outcome = self.allocator.allocate(&request).await;
        let endpoint = match outcome {
            Ok(allocation) => allocation.endpoint,
            Err(err) => {
                let why = allocation_failure(err);
                metrics::counter!("game_sessions_allocation_failed_total", "queue" => request.queue.clone()).increment(1);
                tracing::warn!(session_id = %session, reason = %why, "session cancelled");
                let _ = self
                    .transition(session, SessionState::Cancelled, Actor::System, &why, None)
                    .await;
                return Err(why);
            }
        };
        let reason = format!("allocated on {endpoint}");
        match self
            .transition(
                session,
                SessionState::Ready,
                Actor::System,
                &reason,
                Some(&endpoint),
            )
            .await
        {
            Ok(record) => {
                self.send_ready(&record, &endpoint);
                Ok(())
            }
            Err(err) => {
                // Cancelled meanwhile (an admin, a restart): give the server back.
                self.allocator.release(session).await;
                Err(err.to_string())
            }
        }
    }

    /// Gives every player of the session the endpoint and their token.
    fn send_ready(&self, record: &SessionRecord, endpoint: &str) {
        let expires_at =
            OffsetDateTime::now_utc().unix_timestamp() + self.config.token_ttl_secs as i64;
        for &player in record.teams.iter().flatten() {
            let token = session_token::sign(
                &self.token_key,
                SessionClaims {
                    player,
                    session: record.id,
                    expires_at,
                },
            );
            self.bus.publish(BusEvent::to(
                Audience::Player(player),
                ServerEvent::SessionReady(SessionReady {
                    session_id: record.id,
                    endpoint: endpoint.to_owned(),
                    token,
                    expires_at,
                }),
            ));
        }
    }

    /// Stores a transition, tells the players, and keeps the heartbeat clocks and the
    /// allocator in step with it.
    async fn transition(
        &self,
        session: Uuid,
        to: SessionState,
        actor: Actor,
        reason: &str,
        endpoint: Option<&str>,
    ) -> Result<SessionRecord, SessionError> {
        let at = OffsetDateTime::now_utc();
        let record = match (self.moves)
            .submit(SessionMove {
                id: session,
                to,
                actor,
                reason: reason.to_owned(),
                endpoint: endpoint.map(str::to_owned),
                at,
            })
            .await?
        {
            Transitioned::Done(record) => record,
            Transitioned::Illegal { current } => {
                return Err(SessionError::Illegal {
                    current,
                    requested: to,
                });
            }
            Transitioned::Unknown => return Err(SessionError::Unknown),
        };
        self.after_transition(&record, reason).await;
        self.release(&record).await;
        Ok(record)
    }

    async fn after_transition(&self, record: &SessionRecord, reason: &str) {
        let state = record.state;
        metrics::counter!("game_session_transitions_total", "to" => state.as_str()).increment(1);
        if state == SessionState::Ready {
            let ready_by = Instant::now() + Duration::from_secs(self.config.ready_timeout_secs);
            self.live.lock().expect("sessions lock").insert(
                record.id,
                Live {
                    queue: record.queue.clone(),
                    state,
                    deadline: ready_by,
                },
            );
        } else if let Some(live) = self.live.lock().expect("sessions lock").get_mut(&record.id) {
            live.state = state;
        }
        if state.is_final() {
            self.live.lock().expect("sessions lock").remove(&record.id);
        }
        self.bus.publish(BusEvent::to(
            Audience::Players(record.teams.iter().flatten().copied().collect()),
            ServerEvent::GameStateUpdate(GameStateUpdate {
                session_id: record.id,
                state: state_name(state),
                reason: reason.to_owned(),
            }),
        ));
    }

    /// What a session's end gives back: its game-server slot and any open backfill request.
    /// Done after the players are told: the queue's mailbox may be busy with joins.
    async fn release(&self, record: &SessionRecord) {
        if record.state.is_final() {
            self.allocator.release(record.id).await;
            self.matchmaking
                .withdraw_backfill(&record.queue, record.id)
                .await;
        }
    }

    /// A game server says it is alive.
    pub async fn heartbeat(&self, session: Uuid) -> Result<HeartbeatAck, SessionError> {
        let ttl = Duration::from_secs(self.config.heartbeat_ttl_secs);
        // The clock is in memory (a heartbeat is not worth a write); the store is read only to
        // explain a refusal.
        let state = (self.live.lock().expect("sessions lock").get_mut(&session)).map(|live| {
            live.deadline = Instant::now() + ttl;
            live.state
        });
        let state = match state {
            Some(state) => state,
            None => {
                let record = self
                    .store
                    .session(session)
                    .await?
                    .ok_or(SessionError::Unknown)?;
                let live = matches!(record.state, SessionState::Ready | SessionState::Active);
                if self.redis.is_none() || !live {
                    return Err(SessionError::NotLive(record.state));
                }
                // In a cluster: a session another node made or moved; this node keeps a clock
                // for it from now on too.
                let clock = Live {
                    queue: record.queue.clone(),
                    state: record.state,
                    deadline: Instant::now() + ttl,
                };
                self.live
                    .lock()
                    .expect("sessions lock")
                    .insert(session, clock);
                record.state
            }
        };
        if let Some(redis) = &self.redis
            && let Err(err) = redis.heartbeat(session, ttl).await
        {
            tracing::warn!(session_id = %session, error = %err, "heartbeat not shared");
        }
        Ok(HeartbeatAck {
            state: state_name(state),
            next_within_s: self.config.heartbeat_ttl_secs,
        })
    }

    /// A game server moves its session (`active`, `ended`, `cancelled`).
    pub async fn set_state(
        &self,
        session: Uuid,
        change: StateChange,
        actor: Actor,
    ) -> Result<SessionView, SessionError> {
        let to = match change.state {
            SessionStateName::Active => SessionState::Active,
            SessionStateName::Ended => SessionState::Ended,
            SessionStateName::Cancelled => SessionState::Cancelled,
            _ => return Err(SessionError::ForbiddenState),
        };
        let default_reason = match (actor, to) {
            (Actor::Admin, _) => "changed by an admin",
            (_, SessionState::Active) => "the game started",
            (_, SessionState::Ended) => "the game ended",
            _ => "the game server cancelled the game",
        };
        let reason = change.reason.unwrap_or_else(|| default_reason.to_owned());
        let record = match self.transition(session, to, actor, &reason, None).await {
            Ok(record) => record,
            // A PUT is idempotent: a game server repeating a change whose answer it lost (its
            // node died, an engine was away) hears that it happened.
            Err(SessionError::Illegal { current, .. }) if current == to => {
                let record = self.store.session(session).await?;
                return record.map(|r| view(&r)).ok_or(SessionError::Unknown);
            }
            Err(err) => return Err(err),
        };
        if to == SessionState::Active {
            self.heartbeat(session).await.ok();
        }
        Ok(view(&record))
    }

    /// The game server's one result: checked against the roster, recorded with every rating
    /// change in one transaction; the same result again answers the same.
    pub async fn report_result(
        &self,
        session: Uuid,
        report: ResultReport,
    ) -> Result<ResultApplied, SessionError> {
        let record = self
            .store
            .session(session)
            .await?
            .ok_or(SessionError::Unknown)?;
        let rater = self.rater(&record.queue)?;
        let roster: Vec<Vec<PlayerId>> = (record.teams.iter())
            .map(|team| team.iter().map(|p| PlayerId(p.as_u128())).collect())
            .collect();
        let reported: Vec<ReportedTeam> = (report.teams.iter())
            .map(|t| ReportedTeam {
                players: t.players.iter().map(|p| PlayerId(p.as_u128())).collect(),
                rank: t.rank,
            })
            .collect();
        // Checked here for a precise error, and again inside the transaction against the roster
        // as it is then (a backfill may have changed it since).
        session::check_result(&roster, &reported).map_err(SessionError::BadResult)?;
        let body = serde_json::to_value(&report.teams).expect("a result serialises");
        let hash = sha256(&serde_json::to_vec(&body).expect("JSON serialises"));
        let rate = |roster: &[Vec<RosterRating>]| rated_result(rater, &record, &reported, roster);
        let carry = |stored: &StoredRating| {
            (self.leaderboards.carry(&record.queue, stored))
                .unwrap_or((stored.rating, stored.display_rating))
        };
        let recorded = self
            .store
            .record_result(ResultToRecord {
                session_id: session,
                result: body,
                result_hash: hash,
                at: OffsetDateTime::now_utc(),
                rate: &rate,
                carry: &carry,
            })
            .await?;
        let applied: ResultApplied = match recorded {
            Recorded::Applied(answer) => {
                let applied =
                    serde_json::from_value(answer).expect("the answer was written by this code");
                self.after_result(&record, &applied).await;
                applied
            }
            // The game server asks again because the first answer never reached it — in a
            // cluster perhaps lost with a node that died before its players heard: told again
            // (the bus drops what they already got), the boards refreshed again (idempotent).
            Recorded::Duplicate(answer) => {
                let applied =
                    serde_json::from_value(answer).expect("the answer was written by this code");
                if self.bus.drops_repeats() {
                    self.rated(&record, &applied).await;
                }
                applied
            }
            Recorded::Conflict => return Err(SessionError::ResultConflict),
            Recorded::NotLive(state) => return Err(SessionError::NotLive(state)),
            Recorded::Rejected(why) => return Err(SessionError::BadRoster(why)),
            Recorded::Unknown => return Err(SessionError::Unknown),
        };
        // Acknowledged once its announcements are on the bus (for NATS, in the stream), so a
        // node dying after the answer loses none of them; bounded, since the result itself is
        // durable already and an engine outage must not hold the game server for long.
        let _ = tokio::time::timeout(ANNOUNCE_WAIT, self.bus.flushed()).await;
        Ok(applied)
    }

    /// The result's rating changes: each player told, this node's board refreshed before the
    /// 200 (it shows the result by the time the game server hears back), the other nodes'
    /// boards told to follow.
    async fn rated(&self, record: &SessionRecord, applied: &ResultApplied) {
        for change in &applied.players {
            self.bus.publish(BusEvent::to(
                Audience::Player(change.player_id),
                ServerEvent::RatingUpdate(change.clone()),
            ));
        }
        let players: Vec<Uuid> = applied.players.iter().map(|c| c.player_id).collect();
        if let Err(err) = self.leaderboards.refresh(&record.queue, &players).await {
            // The result stands; the board catches up at the player's next result or restart.
            tracing::warn!(session_id = %record.id, error = %err, "leaderboard not refreshed");
        }
        self.leaderboards.tell_others(&record.queue, players);
    }

    async fn after_result(&self, record: &SessionRecord, applied: &ResultApplied) {
        metrics::counter!("game_results_applied_total", "queue" => record.queue.clone())
            .increment(1);
        let ended = SessionRecord {
            state: SessionState::Ended,
            ..record.clone()
        };
        // A game server that ended its session before reporting was already heard.
        if record.state != SessionState::Ended {
            self.after_transition(&ended, "result reported").await;
        }
        self.rated(record, applied).await;
        self.release(&ended).await;
    }

    /// Players left a running session: the queue fills the open slots first, and the new
    /// players join this session (`match_found` and `session_ready` for it).
    pub async fn backfill(&self, session: Uuid, slots: BackfillSlots) -> Result<(), SessionError> {
        let record = self
            .store
            .session(session)
            .await?
            .ok_or(SessionError::Unknown)?;
        if !record.state.is_live() {
            return Err(SessionError::NotLive(record.state));
        }
        let mut open = vec![0; record.teams.len()];
        for slot in &slots.slots {
            let Some(count) = open.get_mut(slot.team) else {
                return Err(SessionError::BadSlots(format!(
                    "team {} does not exist; the session has {} teams",
                    slot.team,
                    record.teams.len()
                )));
            };
            *count += slot.count;
        }
        if open.iter().all(|&n| n == 0) {
            return Err(SessionError::BadSlots("no open slot".into()));
        }
        let rater = self.rater(&record.queue)?;
        let shape = &self.shapes[&record.queue];
        // The roster keeps everyone who ever played in the session, newcomers last; who is still
        // there is the game server's knowledge. Those who stay are taken to be the latest
        // `team_size - open` of each team, whose ratings the newcomers are matched against.
        let mut teams = Vec::with_capacity(record.teams.len());
        for (t, team) in record.teams.iter().enumerate() {
            let Some(stay) = shape.team_size.checked_sub(open[t]) else {
                return Err(SessionError::BadSlots(format!(
                    "team {t} has at most {} players; {} slots cannot be open",
                    shape.team_size, open[t]
                )));
            };
            if team.len() < stay {
                return Err(SessionError::BadSlots(format!(
                    "team {t} has {} players; with {} open slots it would not be full",
                    team.len(),
                    open[t]
                )));
            }
            let mut rated = Vec::with_capacity(stay);
            for &player in &team[team.len() - stay..] {
                rated.push((player, self.rating_of(rater, player, &record.queue).await?));
            }
            teams.push(rated);
        }
        let region = (record.region.clone()).unwrap_or_else(|| shape.home_region.clone());
        self.matchmaking
            .request_backfill(
                &record.queue,
                session,
                OpenSlots {
                    teams,
                    open_slots: open,
                    region,
                },
            )
            .await
            .map_err(|err| SessionError::Backfill(err.to_string()))
    }

    /// A queue filled a backfill request: the newcomers join the session and hear of it.
    async fn filled(&self, session: Uuid, formed: FormedSession) {
        let newcomers: Vec<(Uuid, usize)> = (formed.tickets.iter())
            .flat_map(|t| t.players.iter().map(move |(p, _)| (*p, t.team)))
            .collect();
        let added = (self.store)
            .add_session_players(session, &newcomers, OffsetDateTime::now_utc())
            .await;
        let record = match added {
            Ok(Some(record)) if record.state.is_live() => record,
            outcome => {
                tracing::warn!(session_id = %session, ?outcome, "a filled backfill found its session gone; requeueing");
                self.matchmaking
                    .requeue(&formed.queue, formed.tickets, "the session ended".into())
                    .await;
                return;
            }
        };
        for ticket in &formed.tickets {
            let players: Vec<Uuid> = ticket.players.iter().map(|(p, _)| *p).collect();
            self.bus.publish(BusEvent::to(
                Audience::Players(players.clone()),
                ServerEvent::QueueUpdate(ticket.update.clone()),
            ));
            self.bus.publish(BusEvent::to(
                Audience::Players(players),
                ServerEvent::MatchFound(MatchFound {
                    match_id: session,
                    queue: formed.queue.clone(),
                    ticket_id: ticket.ticket_id,
                    region: formed.region.clone(),
                    quality: formed.quality,
                    teams: formed.teams.clone(),
                }),
            ));
        }
        let newcomers_only = SessionRecord {
            teams: vec![newcomers.iter().map(|(p, _)| *p).collect()],
            ..record.clone()
        };
        if let Some(endpoint) = record.endpoint.as_deref() {
            self.send_ready(&newcomers_only, endpoint);
        }
    }

    /// A session with a given roster (a tournament game, a private match), allocated like a
    /// matched one.
    pub async fn create_custom(&self, custom: CustomSession) -> Result<SessionView, SessionError> {
        self.rater(&custom.queue)?;
        if custom.teams.len() < 2 || custom.teams.iter().any(|t| t.players.is_empty()) {
            return Err(SessionError::BadRoster(
                "a session needs at least two teams, none empty".into(),
            ));
        }
        // Unknown players first: a roster of made-up ids is a missing resource (404), whatever
        // else is wrong with it.
        let mut seen = std::collections::HashSet::new();
        for &player in custom.teams.iter().flat_map(|t| &t.players) {
            if seen.insert(player) && self.store.player(player).await?.is_none() {
                return Err(SessionError::UnknownPlayer(player));
            }
        }
        seen.clear();
        if let Some(twice) = (custom.teams.iter())
            .flat_map(|t| &t.players)
            .find(|p| !seen.insert(**p))
        {
            return Err(SessionError::BadRoster(format!(
                "player {twice} is on the roster twice"
            )));
        }
        let id = Uuid::now_v7();
        let teams: Vec<Vec<Uuid>> = custom.teams.iter().map(|t| t.players.clone()).collect();
        let created = self
            .store
            .create_session(NewSession {
                id,
                queue: custom.queue.clone(),
                ranked: custom.ranked,
                region: None,
                teams: teams.clone(),
                reason: "created by a game server".into(),
                actor: Actor::GameServer,
                at: OffsetDateTime::now_utc(),
                placed: Placement::Allocating,
            })
            .await;
        match created {
            Ok(()) => {}
            Err(StoreError::UnknownPlayer) => {
                // Deleted since the check above.
                return Err(SessionError::BadRoster(
                    "a player on the roster does not exist".into(),
                ));
            }
            Err(err) => return Err(err.into()),
        }
        let request = AllocationRequest {
            session_id: id,
            queue: custom.queue,
            region: None,
            teams,
        };
        if let Err(why) = self.allocate(request).await {
            return Err(SessionError::NoServer(why));
        }
        self.view(id).await
    }

    pub async fn view(&self, session: Uuid) -> Result<SessionView, SessionError> {
        let record = self
            .store
            .session(session)
            .await?
            .ok_or(SessionError::Unknown)?;
        Ok(view(&record))
    }

    /// Whether `player` plays in `session` (what lets them read it).
    pub async fn roster_has(&self, session: Uuid, player: Uuid) -> Result<bool, SessionError> {
        let record = self
            .store
            .session(session)
            .await?
            .ok_or(SessionError::Unknown)?;
        Ok(record.teams.iter().flatten().any(|p| *p == player))
    }

    /// The player's rating in `queue`, or where a new player starts.
    pub async fn rating_of(
        &self,
        rater: &AnyRatingSystem,
        player: Uuid,
        queue: &str,
    ) -> Result<PlayerRating, StoreError> {
        Ok(match self.store.player_rating(player, queue).await? {
            Some(stored) => self.leaderboards.carried(stored).rating,
            None => rater.initial_rating(),
        })
    }

    pub async fn ratings(&self, player: Uuid) -> Result<PlayerRatings, StoreError> {
        let ratings: Vec<StoredRating> = (self.store.player_ratings(player).await?.into_iter())
            .map(|stored| self.leaderboards.carried(stored))
            .collect();
        Ok(PlayerRatings {
            player_id: player,
            ratings: (ratings.iter())
                .map(|stored| QueueRating {
                    rank: self.leaderboards.rank(&stored.queue, player),
                    ..queue_rating(stored)
                })
                .collect(),
        })
    }

    pub async fn rating_history(
        &self,
        player: Uuid,
        queue: &str,
        season: Option<u32>,
        cursor: Option<Cursor>,
        limit: u32,
    ) -> Result<Page<RatingHistoryEntry>, StoreError> {
        let rows = self
            .store
            .rating_history(player, queue, season, cursor, limit + 1)
            .await?;
        let (items, next) = page(rows, limit, |row| Cursor {
            at: row.at,
            id: row.session_id,
        });
        Ok(Page {
            items: items
                .into_iter()
                .map(|row| RatingHistoryEntry {
                    change: RatingChange {
                        player_id: player,
                        queue: row.queue.clone(),
                        session_id: row.session_id,
                        outcome: row.outcome.as_str().to_owned(),
                        before: value(row.before, row.before_display),
                        after: value(row.after, row.after_display),
                        change: row.after_display - row.before_display,
                    },
                    season: row.season,
                    at: row.at,
                })
                .collect(),
            next,
        })
    }

    pub async fn match_history(
        &self,
        player: Uuid,
        cursor: Option<Cursor>,
        limit: u32,
    ) -> Result<Page<MatchHistoryEntry>, StoreError> {
        let rows = self.store.match_history(player, cursor, limit + 1).await?;
        let (items, next) = page(rows, limit, |row| Cursor {
            at: row.ended_at,
            id: row.session_id,
        });
        Ok(Page {
            items: items
                .into_iter()
                .map(|row| {
                    let reported: Vec<ResultTeam> =
                        serde_json::from_value(row.result.clone()).unwrap_or_default();
                    let rank = reported
                        .iter()
                        .find(|t| t.players.contains(&player))
                        .map_or(0, |t| t.rank);
                    let outcome = row.outcome.map_or_else(
                        || outcome_from(&reported, rank).as_str().to_owned(),
                        |o| o.as_str().to_owned(),
                    );
                    MatchHistoryEntry {
                        session_id: row.session_id,
                        queue: row.queue,
                        team: row.team,
                        outcome,
                        rank,
                        teams: (row.teams.into_iter())
                            .map(|players| SessionTeam { players })
                            .collect(),
                        rating_change: row.rating_change,
                        ended_at: row.ended_at,
                    }
                })
                .collect(),
            next,
        })
    }

    /// At start-up: sessions whose allocation the stop interrupted are cancelled (their players
    /// hear it when they resume); `ready`/`active` ones keep living with a fresh heartbeat
    /// clock, holding their game server's slot again. In a cluster an allocation under way is
    /// the matchmaker's node's, not this starting node's: whichever node takes the matchmaker
    /// lease finishes interrupted ones from the journal's forming set.
    pub async fn recover(&self) -> Result<(), StoreError> {
        let interrupted = match self.redis {
            None => {
                self.store
                    .sessions_in_states(&[SessionState::Allocating])
                    .await?
            }
            Some(_) => Vec::new(),
        };
        for record in interrupted {
            let reason = "the server restarted while finding a game server";
            if let Err(err) = self
                .transition(
                    record.id,
                    SessionState::Cancelled,
                    Actor::System,
                    reason,
                    None,
                )
                .await
            {
                tracing::warn!(session_id = %record.id, error = %err, "could not cancel an interrupted session");
            }
        }
        let living = self
            .store
            .sessions_in_states(&[SessionState::Ready, SessionState::Active])
            .await?;
        let deadline = Instant::now() + Duration::from_secs(self.config.heartbeat_ttl_secs);
        let mut live = self.live.lock().expect("sessions lock");
        for record in living {
            if let Some(endpoint) = &record.endpoint {
                self.allocator.restore(record.id, endpoint);
            }
            live.insert(
                record.id,
                Live {
                    queue: record.queue.clone(),
                    state: record.state,
                    deadline,
                },
            );
        }
        tracing::info!(live = live.len(), "sessions recovered");
        Ok(())
    }

    /// Abandons sessions whose game server stopped heartbeating, every second, forever.
    pub async fn sweep(self: Arc<Self>) {
        let mut every = tokio::time::interval(Duration::from_secs(1));
        loop {
            every.tick().await;
            let now = Instant::now();
            let overdue: Vec<(Uuid, String)> = (self.live.lock().expect("sessions lock").iter())
                .filter(|(_, live)| live.deadline <= now)
                .map(|(id, live)| (*id, live.queue.clone()))
                .collect();
            for (session, queue) in overdue {
                if let Some(redis) = &self.redis {
                    // Heard through another node (or Redis cannot tell: an outage abandons no
                    // game): wait as long as that heartbeat still holds.
                    let left = match redis.heartbeat_left(session).await {
                        Ok(left) => left,
                        Err(_) => Some(Duration::from_secs(1)),
                    };
                    if let Some(left) = left {
                        if let Some(live) =
                            self.live.lock().expect("sessions lock").get_mut(&session)
                        {
                            live.deadline = Instant::now() + left;
                        }
                        continue;
                    }
                }
                let reason = format!(
                    "no heartbeat from the game server for {} s",
                    self.config.heartbeat_ttl_secs
                );
                match self
                    .transition(
                        session,
                        SessionState::Abandoned,
                        Actor::System,
                        &reason,
                        None,
                    )
                    .await
                {
                    Ok(_) => {
                        metrics::counter!("game_sessions_abandoned_total", "queue" => queue)
                            .increment(1);
                    }
                    // Ended meanwhile: nothing to abandon.
                    Err(_) => {
                        self.live.lock().expect("sessions lock").remove(&session);
                    }
                }
            }
            let live = self.live.lock().expect("sessions lock").len();
            metrics::gauge!("game_sessions_live").set(live as f64);
        }
    }
}

/// What the store's transaction asks of the core: the result checked against the roster as
/// it is in the transaction, new ratings from the current ones, and the answer to give (again,
/// on a duplicate).
pub(crate) fn rated_result(
    rater: &AnyRatingSystem,
    record: &SessionRecord,
    reported: &[ReportedTeam],
    roster: &[Vec<RosterRating>],
) -> Result<RatedResult, String> {
    let ids: Vec<Vec<PlayerId>> = (roster.iter())
        .map(|team| {
            team.iter()
                .map(|m| PlayerId(m.player_id.as_u128()))
                .collect()
        })
        .collect();
    let checked = session::check_result(&ids, reported).map_err(|err| err.to_string())?;
    let current: Vec<Vec<PlayerRating>> = (roster.iter())
        .map(|team| {
            (team.iter())
                .map(|m| {
                    m.rating
                        .as_ref()
                        .map_or_else(|| rater.initial_rating(), |s| s.rating)
                })
                .collect()
        })
        .collect();
    let after = if record.ranked {
        session::rate(rater, &current, &checked).map_err(|err| err.to_string())?
    } else {
        current.clone()
    };
    let mut updates = Vec::new();
    let mut players = Vec::new();
    for (t, team) in roster.iter().enumerate() {
        let outcome = checked.outcomes[t];
        for (i, member) in team.iter().enumerate() {
            let (old, new) = (current[t][i], after[t][i]);
            let (old_display, new_display) =
                (rater.display_rating(&old), rater.display_rating(&new));
            if record.ranked {
                updates.push(RatingUpdate {
                    player_id: member.player_id,
                    outcome,
                    before: old,
                    before_display: old_display,
                    after: new,
                    after_display: new_display,
                });
            }
            players.push(RatingChange {
                player_id: member.player_id,
                queue: record.queue.clone(),
                session_id: record.id,
                outcome: outcome.as_str().to_owned(),
                before: value(old, old_display),
                after: value(new, new_display),
                change: new_display - old_display,
            });
        }
    }
    let answer = ResultApplied {
        session_id: record.id,
        rated: record.ranked,
        players,
    };
    Ok(RatedResult {
        answer: serde_json::to_value(&answer).expect("the answer serialises"),
        updates,
    })
}

/// Session moves reach the store through one writer task that takes, each time, every move
/// that queued up while the previous batch committed (group commit): a tick's games starting
/// at once cost a few transactions, not one each, and a result arriving meanwhile does not wait
/// behind a hundred of them for a connection.
struct MoveWriter {
    queue: mpsc::UnboundedSender<(
        SessionMove,
        oneshot::Sender<Result<Transitioned, StoreError>>,
    )>,
}

impl MoveWriter {
    fn start(store: Arc<dyn Store>) -> Self {
        let (queue, mut pending) = mpsc::unbounded_channel::<(
            SessionMove,
            oneshot::Sender<Result<Transitioned, StoreError>>,
        )>();
        tokio::spawn(async move {
            let mut batch = Vec::new();
            while pending.recv_many(&mut batch, MAX_BATCH).await > 0 {
                let (moves, replies): (Vec<SessionMove>, Vec<_>) = batch.drain(..).unzip();
                match store.transition_sessions(&moves).await {
                    Ok(outcomes) => {
                        for (reply, outcome) in replies.into_iter().zip(outcomes) {
                            let _ = reply.send(Ok(outcome));
                        }
                    }
                    Err(err) => {
                        // One at a time, so whatever failed the batch fails only its own move.
                        tracing::warn!(moves = moves.len(), error = %err, "a batch of session moves failed; retrying them one by one");
                        for (m, reply) in moves.iter().zip(replies) {
                            let outcome = store.transition_session(
                                m.id,
                                m.to,
                                m.actor,
                                &m.reason,
                                m.endpoint.as_deref(),
                                m.at,
                            );
                            let _ = reply.send(outcome.await);
                        }
                    }
                }
            }
        });
        Self { queue }
    }

    async fn submit(&self, m: SessionMove) -> Result<Transitioned, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send((m, reply))
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }
}

fn count_created(formed: &FormedSession) {
    metrics::counter!("game_sessions_created_total", "queue" => formed.queue.clone()).increment(1);
}

/// At most this many of a tick's matches are stored in one transaction.
const MAX_BATCH: usize = 512;

/// How long a result's answer waits for its announcements to be on the bus.
const ANNOUNCE_WAIT: Duration = Duration::from_secs(2);

/// A formed match as the store takes it.
fn new_session(formed: &FormedSession, placed: Placement) -> NewSession {
    NewSession {
        id: formed.session_id,
        queue: formed.queue.clone(),
        ranked: true,
        region: Some(formed.region.clone()),
        teams: (formed.teams.iter())
            .map(|t| t.players.iter().map(|p| p.player_id).collect())
            .collect(),
        reason: format!("matched with quality {:.3}", formed.quality),
        actor: Actor::System,
        at: OffsetDateTime::now_utc(),
        placed,
    }
}

fn allocation_request(new: &NewSession) -> AllocationRequest {
    AllocationRequest {
        session_id: new.id,
        queue: new.queue.clone(),
        region: new.region.clone(),
        teams: new.teams.clone(),
    }
}

fn allocation_failure(err: AllocationError) -> String {
    match err {
        AllocationError::NoCapacity => "no game server has room".to_owned(),
        AllocationError::Failed(why) => format!("game server allocation failed: {why}"),
    }
}

/// The record [`Store::create_sessions`] wrote for `new`, without reading it back.
fn as_stored(new: &NewSession) -> SessionRecord {
    let first = TransitionRecord {
        from: None,
        to: SessionState::Allocating,
        actor: new.actor,
        reason: new.reason.clone(),
        at: new.at,
    };
    let placed = (new.placed.reason()).map(|reason| TransitionRecord {
        from: Some(SessionState::Allocating),
        to: new.placed.state(),
        actor: new.actor,
        reason: reason.to_owned(),
        at: new.at,
    });
    SessionRecord {
        id: new.id,
        queue: new.queue.clone(),
        ranked: new.ranked,
        region: new.region.clone(),
        endpoint: new.placed.endpoint().map(str::to_owned),
        state: new.placed.state(),
        teams: new.teams.clone(),
        created_at: new.at,
        transitions: std::iter::once(first).chain(placed).collect(),
        result: None,
    }
}

fn outcome_from(reported: &[ResultTeam], rank: u32) -> Outcome {
    let best = reported.iter().map(|t| t.rank).min().unwrap_or(rank);
    let at_best = reported.iter().filter(|t| t.rank == best).count();
    match (rank == best, at_best) {
        (true, 1) => Outcome::Win,
        (true, _) => Outcome::Draw,
        _ => Outcome::Loss,
    }
}

fn value(rating: PlayerRating, display_rating: f64) -> RatingValue {
    RatingValue {
        rating: rating.rating,
        deviation: rating.deviation,
        display_rating,
    }
}

fn queue_rating(stored: &StoredRating) -> QueueRating {
    QueueRating {
        queue: stored.queue.clone(),
        value: value(stored.rating, stored.display_rating),
        games: stored.games,
        wins: stored.wins,
        losses: stored.losses,
        draws: stored.draws,
        rank: None,
    }
}

/// Splits `limit + 1` rows into a page and the cursor of the next one.
pub fn page<T>(
    mut rows: Vec<T>,
    limit: u32,
    cursor: impl Fn(&T) -> Cursor,
) -> (Vec<T>, Option<String>) {
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next = more
        .then(|| rows.last().map(|last| encode_cursor(&cursor(last))))
        .flatten();
    (rows, next)
}

/// Cursors are opaque to clients: the time and id of the last row, in one URL-safe token.
pub fn encode_cursor(cursor: &Cursor) -> String {
    format!(
        "{}.{}",
        cursor.at.unix_timestamp_nanos(),
        cursor.id.simple()
    )
}

pub fn decode_cursor(raw: &str) -> Option<Cursor> {
    let (nanos, id) = raw.split_once('.')?;
    Some(Cursor {
        at: OffsetDateTime::from_unix_timestamp_nanos(nanos.parse().ok()?).ok()?,
        id: Uuid::try_parse(id).ok()?,
    })
}

fn sha256(bytes: &[u8]) -> Vec<u8> {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes).to_vec()
}

pub fn state_name(state: SessionState) -> SessionStateName {
    match state {
        SessionState::Allocating => SessionStateName::Allocating,
        SessionState::Ready => SessionStateName::Ready,
        SessionState::Active => SessionStateName::Active,
        SessionState::Ended => SessionStateName::Ended,
        SessionState::Cancelled => SessionStateName::Cancelled,
        SessionState::Abandoned => SessionStateName::Abandoned,
    }
}

fn view(record: &SessionRecord) -> SessionView {
    SessionView {
        session_id: record.id,
        queue: record.queue.clone(),
        state: state_name(record.state),
        ranked: record.ranked,
        region: record.region.clone(),
        endpoint: record.endpoint.clone(),
        teams: (record.teams.iter())
            .map(|players| SessionTeam {
                players: players.clone(),
            })
            .collect(),
        created_at: record.created_at,
        transitions: (record.transitions.iter())
            .map(|t| TransitionView {
                from: t.from.map(state_name),
                to: state_name(t.to),
                actor: t.actor.as_str().to_owned(),
                reason: t.reason.clone(),
                at: t.at,
            })
            .collect(),
        result: record
            .result
            .clone()
            .and_then(|r| serde_json::from_value(r).ok()),
    }
}

impl From<IllegalTransition> for SessionError {
    fn from(err: IllegalTransition) -> Self {
        Self::Illegal {
            current: err.current,
            requested: err.requested,
        }
    }
}
