//! Live matchmaking. Each configured queue is one actor task ([`actor`]) that owns the queue's
//! tickets: the core's [`Shard`](versus_core::matchmaking::Shard) holds them for matching, the
//! queue's [`Board`] holds the server's record of each (state, position, estimated wait, match).
//! Only the actor writes either; everyone else reads the board or asks the actor.
//!
//! [`Matchmaking`] is the service in front of the queues: it checks a join (queue, latencies,
//! the player's preferences), enforces one searching ticket per player across queues through its
//! directory (player → the queue and id of their latest ticket: where to look, never what
//! happened), remembers `Idempotency-Key`s, and hands commands to the queue's actor. Outcomes
//! leave as events on the bus, never by calling the WebSocket layer.
//!
//! The seam for a cluster is [`QueueHandle`]: commands with owned data and one-shot replies, and
//! a board to read. A queue owned by another node is the same handle over another transport.

mod actor;
mod board;
mod journal;
mod remote;
mod stats;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;
use versus_config::Queue;
use versus_core::matchmaking::{TicketError, UNREACHABLE_MS};
use versus_core::rating::{PlayerRating, RatingSystem as _};
use versus_protocol::queue::{
    JoinQueueRequest, MatchmakingPreferences, MatchmakingStatistics, QueueStatistics, TicketView,
};
use versus_store::{Store, StoreError};

pub use actor::{Command, FormedSession, FormedTicket, LeaveOutcome, NewTicket, OpenSlots};
pub use board::{Board, TicketRecord};
pub use remote::Link;

use crate::config::MatchmakingConfig;
use crate::services::cluster::Leadership;
use crate::services::events::EventBus;
use crate::services::hub::Hub;
use crate::services::leaderboards::Leaderboards;
use crate::services::redis::{JournalError, Redis};
use journal::{FormingMatch, Journal, JournaledKey};

/// Why a join was refused. The edge turns each into a problem (REST) or an `error` event
/// (WebSocket) with the same code and words.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error("unknown queue; known: {known}")]
    UnknownQueue { known: String },
    #[error("not a region of this queue; regions: {regions}")]
    UnknownRegion { region: String, regions: String },
    #[error("must be at most {MAX_LATENCY_MS} ms")]
    LatencyTooHigh { region: String },
    #[error("no region of this queue is reachable")]
    NoReachableRegion,
    #[error("already searching with ticket {0}; leave first")]
    AlreadyQueued(Uuid),
    #[error(
        "party member {player} is already searching (ticket {ticket}); they must leave the queue first"
    )]
    MemberQueued { player: Uuid, ticket: Uuid },
    #[error("this Idempotency-Key was used for a different join request")]
    KeyReused,
    /// The queue's own rules refused the ticket.
    #[error("{0}")]
    Refused(TicketError),
    /// The same, said by the matchmaker of a cluster running on another node.
    #[error("{0}")]
    RefusedElsewhere(String),
    #[error("the queue is not running")]
    QueueStopped,
    #[error("the queue has too many joins waiting; retry shortly")]
    QueueBusy,
    #[error("reading the player's preferences")]
    Store(#[from] StoreError),
}

/// Why a leave did nothing.
#[derive(Debug, thiserror::Error)]
pub enum LeaveError {
    #[error("no searching ticket")]
    NotQueued,
    #[error("the ticket was already matched into match {0}")]
    AlreadyMatched(Uuid),
    #[error("the queue is not running")]
    QueueStopped,
}

/// The largest latency a client may report, in milliseconds.
pub const MAX_LATENCY_MS: u32 = 60_000;

/// A joined ticket, and whether this join created it (`false`: an earlier join with the same
/// `Idempotency-Key` did).
#[derive(Debug, Clone)]
pub struct Joined {
    pub ticket: TicketView,
    pub created: bool,
}

/// One queue, as the service reaches it.
pub struct QueueHandle {
    queue: Queue,
    /// Where a player with no rated game in this queue starts.
    initial_rating: PlayerRating,
    commands: mpsc::Sender<Command>,
    board: Arc<Board>,
    stats: Arc<Mutex<QueueStatistics>>,
}

impl QueueHandle {
    async fn ask<T>(&self, command: impl FnOnce(oneshot::Sender<T>) -> Command) -> Option<T> {
        let (reply, answer) = oneshot::channel();
        self.commands.send(command(reply)).await.ok()?;
        answer.await.ok()
    }

    /// The ticket's view, from the board, or from the actor when the board does not have it
    /// yet (a join still on its way).
    async fn view(&self, ticket: Uuid) -> Option<TicketView> {
        match self.board.view(ticket) {
            Some(view) => Some(view),
            None => self
                .ask(|reply| Command::View { ticket, reply })
                .await
                .flatten(),
        }
    }
}

/// The player's latest ticket: which queue holds it. `pending` until the queue has accepted it.
#[derive(Debug, Clone, Copy)]
struct Claim {
    ticket: Uuid,
    queue: usize,
    pending: bool,
}

/// What [`Matchmaking::claim`] found: the new ticket handed to its queue (the queue's answer to
/// come), or the searching ticket an earlier join with the same key created.
enum Claimed {
    New(oneshot::Receiver<Result<TicketView, JoinError>>),
    Earlier { ticket: Uuid, queue: usize },
}

/// The ticket an `Idempotency-Key` created, for which request, and when.
#[derive(Debug, Clone)]
struct Remembered {
    ticket: Uuid,
    queue: usize,
    request: JoinQueueRequest,
    at: Instant,
}

pub struct Matchmaking {
    /// By name, in name order (statistics list them so).
    by_name: BTreeMap<String, usize>,
    queues: Vec<QueueHandle>,
    directory: Mutex<HashMap<Uuid, Claim>>,
    /// `(player, key)` → the ticket that key created.
    idempotency: Mutex<HashMap<(Uuid, String), Remembered>>,
    store: Arc<dyn Store>,
    /// Shows a rating a season rollover has not carried over yet as it will be.
    leaderboards: Arc<Leaderboards>,
    config: MatchmakingConfig,
    /// In a cluster: who runs the queues, and the way to them when another node does.
    cluster: OnceLock<(Arc<Leadership>, Arc<Link>)>,
    /// In a cluster: this node leads and its queues are loaded from the journal.
    ready: AtomicBool,
    /// To the session service: what a previous matchmaker left forming, to finish.
    formed: mpsc::UnboundedSender<FormedSession>,
}

impl Matchmaking {
    /// Starts one actor per queue.
    pub fn start<'a>(
        queues: impl IntoIterator<Item = &'a Queue>,
        config: &MatchmakingConfig,
        bus: Arc<dyn EventBus>,
        store: Arc<dyn Store>,
        leaderboards: Arc<Leaderboards>,
        formed: mpsc::UnboundedSender<FormedSession>,
    ) -> Arc<Self> {
        let epoch = Instant::now();
        let mut handles = Vec::new();
        for queue in queues {
            let (commands, rx) = mpsc::channel(4096);
            let stats = Arc::new(Mutex::new(stats::empty(&queue.name)));
            let board = Arc::new(Board::default());
            let actor = actor::QueueActor::new(
                queue,
                board.clone(),
                bus.clone(),
                stats.clone(),
                formed.clone(),
                config,
                epoch,
            );
            tokio::spawn(actor.run(rx));
            let initial_rating = (queue.config.rating.build())
                .expect("queues are validated when loaded")
                .initial_rating();
            handles.push(QueueHandle {
                queue: queue.clone(),
                initial_rating,
                commands,
                board,
                stats,
            });
        }
        Arc::new(Self {
            by_name: (handles.iter().enumerate())
                .map(|(i, h)| (h.queue.name.clone(), i))
                .collect(),
            queues: handles,
            directory: Mutex::default(),
            idempotency: Mutex::default(),
            store,
            leaderboards,
            config: config.clone(),
            cluster: OnceLock::new(),
            ready: AtomicBool::new(false),
            formed,
        })
    }

    /// Makes this node one of a cluster's: its queues run only while it holds the matchmaker
    /// lease — loaded from the journal in Redis (as `node`) when it takes the lease, serving the
    /// other nodes' calls while it holds it, emptied when it loses it; otherwise every call goes
    /// to the node that holds it.
    pub fn join_cluster(
        self: &Arc<Self>,
        leadership: Arc<Leadership>,
        link: Arc<Link>,
        redis: Arc<Redis>,
        node: String,
    ) {
        if self
            .cluster
            .set((leadership.clone(), link.clone()))
            .is_err()
        {
            return;
        }
        for queue in &self.queues {
            let _ = queue.commands.try_send(Command::Reset);
        }
        let matchmaking = self.clone();
        let mut changes = leadership.watch();
        tokio::spawn(async move {
            loop {
                if *changes.borrow_and_update() {
                    match matchmaking.take_lead(&redis, &node).await {
                        Ok(()) => {
                            let mut until = changes.clone();
                            let stepped_down = async move {
                                let _ = until.wait_for(|leading| !*leading).await;
                            };
                            link.clone().serve(matchmaking.clone(), stepped_down).await;
                        }
                        Err(err) => {
                            tracing::warn!(error = %err, "could not load the matchmaker's journal; retrying");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                    }
                    matchmaking.step_down().await;
                    if *changes.borrow() {
                        // Still leading but not serving (NATS or Redis away): try again shortly.
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                }
                if changes.changed().await.is_err() {
                    return;
                }
            }
        });
    }

    /// Loads every queue from the journal and rebuilds the directory from its tickets; then
    /// this node answers matchmaking calls.
    async fn take_lead(&self, redis: &Arc<Redis>, node: &str) -> Result<(), JournalError> {
        let mut loaded = 0;
        for (index, queue) in self.queues.iter().enumerate() {
            let journal = Arc::new(Journal::new(
                redis.clone(),
                node.to_owned(),
                queue.queue.name.clone(),
            ));
            let tickets = journal.load().await?;
            loaded += tickets.len();
            // Matches the previous matchmaker formed but may not have finished; those whose
            // tickets are back in the journal (put back for want of a game server) are done.
            let searching: HashSet<Uuid> = tickets.iter().map(|t| t.ticket_id).collect();
            let (done, unfinished): (Vec<FormingMatch>, Vec<FormingMatch>) = (journal.forming())
                .await?
                .into_iter()
                .partition(|m| (m.tickets.iter()).any(|t| searching.contains(&t.ticket.ticket_id)));
            let done: Vec<Uuid> = done.iter().map(|m| m.session_id).collect();
            journal.formed(&done).await?;
            {
                let mut directory = self.directory.lock().expect("directory lock");
                let mut keys = self.idempotency.lock().expect("idempotency lock");
                // Matched tickets first: a player searching again has the newer claim.
                let matched = (unfinished.iter()).flat_map(|m| m.tickets.iter().map(|t| &t.ticket));
                for ticket in matched.chain(&tickets) {
                    for (player, _) in &ticket.players {
                        let claim = Claim {
                            ticket: ticket.ticket_id,
                            queue: index,
                            pending: false,
                        };
                        directory.insert(*player, claim);
                    }
                    // Remembered afresh: the key lives its full time from the takeover.
                    if let Some(JournaledKey {
                        player,
                        key,
                        request,
                    }) = &ticket.idempotency
                    {
                        let remembered = Remembered {
                            ticket: ticket.ticket_id,
                            queue: index,
                            request: request.clone(),
                            at: Instant::now(),
                        };
                        keys.insert((*player, key.clone()), remembered);
                    }
                }
            }
            let (reply, done) = oneshot::channel();
            let load = Command::Load {
                journal: journal.clone(),
                tickets,
                forming: unfinished.clone(),
                reply,
            };
            if queue.commands.send(load).await.is_err() || done.await.is_err() {
                return Err(JournalError::Down(crate::services::redis::RedisDown::new(
                    "a queue stopped while loading",
                )));
            }
            if !unfinished.is_empty() {
                tracing::info!(queue = %queue.queue.name, matches = unfinished.len(), "finishing the matches the previous matchmaker formed");
            }
            for formed in unfinished {
                let formed = formed.into_formed(&queue.queue.name, Some(journal.clone()));
                let _ = self.formed.send(formed);
            }
        }
        tracing::info!(node, tickets = loaded, "this node runs the matchmaker now");
        self.ready.store(true, Ordering::SeqCst);
        Ok(())
    }

    /// This node no longer runs the matchmaker: its queues, directory and keys are emptied
    /// (the next matchmaker has the tickets from the journal).
    async fn step_down(&self) {
        if !self.ready.swap(false, Ordering::SeqCst) {
            return;
        }
        for queue in &self.queues {
            let _ = queue.commands.send(Command::Reset).await;
        }
        self.directory.lock().expect("directory lock").clear();
        self.idempotency.lock().expect("idempotency lock").clear();
        tracing::info!("this node no longer runs the matchmaker");
    }

    /// The way to the matchmaker when it runs on another node.
    fn elsewhere(&self) -> Option<&Link> {
        let (leadership, link) = self.cluster.get()?;
        let here = leadership.is_leader() && self.ready.load(Ordering::SeqCst);
        (!here).then_some(&**link)
    }

    fn queue(&self, name: &str) -> Option<&QueueHandle> {
        self.by_name.get(name).map(|&i| &self.queues[i])
    }

    /// Puts back the tickets of a match whose session could not be played (no game server),
    /// at their original place: they keep their wait.
    pub async fn requeue(&self, queue: &str, tickets: Vec<FormedTicket>, reason: String) {
        match self.elsewhere() {
            Some(link) => link.requeue(queue, tickets, reason).await,
            None => self.local_requeue(queue, tickets, reason).await,
        }
    }

    async fn local_requeue(&self, queue: &str, tickets: Vec<FormedTicket>, reason: String) {
        if let Some(queue) = self.queue(queue) {
            let _ = queue
                .commands
                .send(Command::Requeue { tickets, reason })
                .await;
        }
    }

    /// Asks `queue` to fill a running session's open slots before forming new matches.
    pub async fn request_backfill(
        &self,
        queue: &str,
        session: Uuid,
        request: OpenSlots,
    ) -> Result<(), JoinError> {
        match self.elsewhere() {
            Some(link) => link.request_backfill(queue, session, request).await,
            None => self.local_request_backfill(queue, session, request).await,
        }
    }

    async fn local_request_backfill(
        &self,
        queue: &str,
        session: Uuid,
        request: OpenSlots,
    ) -> Result<(), JoinError> {
        let queue = self.queue(queue).ok_or_else(|| JoinError::UnknownQueue {
            known: self.queue_names().collect::<Vec<_>>().join(", "),
        })?;
        queue
            .ask(|reply| Command::Backfill {
                session,
                request,
                reply,
            })
            .await
            .ok_or(JoinError::QueueStopped)?
    }

    /// The session is over: its open backfill request, if any, is withdrawn.
    pub async fn withdraw_backfill(&self, queue: &str, session: Uuid) {
        match self.elsewhere() {
            Some(link) => link.withdraw_backfill(queue, session).await,
            None => self.local_withdraw_backfill(queue, session).await,
        }
    }

    async fn local_withdraw_backfill(&self, queue: &str, session: Uuid) {
        if let Some(queue) = self.queue(queue) {
            let _ = queue.commands.send(Command::Withdraw { session }).await;
        }
    }

    pub fn queue_names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(String::as_str)
    }

    /// The player's stored preferences, as wire data.
    pub async fn preferences(&self, player: Uuid) -> Result<MatchmakingPreferences, StoreError> {
        let stored = self
            .store
            .matchmaking_preferences(player)
            .await?
            .unwrap_or_default();
        Ok(MatchmakingPreferences {
            regions: stored.regions.iter().map(ToString::to_string).collect(),
            modes: stored.modes,
        })
    }

    /// Puts the player in a queue. With the same `idempotency_key` as an earlier join, answers
    /// that join's ticket instead of creating another.
    pub async fn join(
        &self,
        player: Uuid,
        request: &JoinQueueRequest,
        idempotency_key: Option<&str>,
    ) -> Result<Joined, JoinError> {
        self.join_with(
            player,
            &[(player, &request.latencies)],
            request,
            idempotency_key,
        )
        .await
    }

    /// Puts a whole party in a queue as one ticket, asked by its leader: `members` with the
    /// latencies each measured. No member may be searching already.
    pub async fn join_party(
        &self,
        leader: Uuid,
        members: &[(Uuid, &BTreeMap<String, u32>)],
        request: &JoinQueueRequest,
        idempotency_key: Option<&str>,
    ) -> Result<Joined, JoinError> {
        self.join_with(leader, members, request, idempotency_key)
            .await
    }

    async fn join_with(
        &self,
        player: Uuid,
        members: &[(Uuid, &BTreeMap<String, u32>)],
        request: &JoinQueueRequest,
        idempotency_key: Option<&str>,
    ) -> Result<Joined, JoinError> {
        match self.elsewhere() {
            Some(link) => link.join(player, members, request, idempotency_key).await,
            None => {
                self.local_join(player, members, request, idempotency_key)
                    .await
            }
        }
    }

    async fn local_join(
        &self,
        player: Uuid,
        members: &[(Uuid, &BTreeMap<String, u32>)],
        request: &JoinQueueRequest,
        idempotency_key: Option<&str>,
    ) -> Result<Joined, JoinError> {
        if let Some(key) = idempotency_key
            && let Some(ticket) = self.remembered(player, key, request).await?
        {
            return Ok(Joined {
                ticket,
                created: false,
            });
        }
        let index = *self
            .by_name
            .get(&request.queue)
            .ok_or_else(|| JoinError::UnknownQueue {
                known: self.queue_names().collect::<Vec<_>>().join(", "),
            })?;
        let queue = &self.queues[index];
        let ticket_id = Uuid::now_v7();
        let mut players = Vec::with_capacity(members.len());
        // Per region, the slowest member's latency: the party plays on one server.
        let mut region_latency_ms = vec![0; queue.queue.config.regions.len()];
        for (member, latencies) in members {
            let preferences = self.preferences(*member).await?;
            let own = JoinQueueRequest {
                queue: request.queue.clone(),
                latencies: (*latencies).clone(),
                party_id: None,
            };
            let measured = region_latencies(&queue.queue, &own, &preferences)?;
            for (worst, ms) in region_latency_ms.iter_mut().zip(measured) {
                *worst = (*worst).max(ms);
            }
            // The member's rating in this queue from their rated games; a new player starts at
            // the queue's initial rating.
            let rating = match self.store.player_rating(*member, &request.queue).await? {
                Some(stored) => self.leaderboards.carried(stored).rating,
                None => queue.initial_rating,
            };
            players.push((*member, rating));
        }
        if region_latency_ms.iter().all(|ms| *ms == UNREACHABLE_MS) {
            return Err(JoinError::NoReachableRegion);
        }
        let ticket = NewTicket {
            ticket_id,
            players,
            region_latency_ms,
            idempotency: idempotency_key.map(|key| JournaledKey {
                player,
                key: key.to_owned(),
                request: request.clone(),
            }),
        };
        let everyone: Vec<Uuid> = members.iter().map(|(m, _)| *m).collect();
        let answer = match self.claim(player, &everyone, index, ticket, request, idempotency_key)? {
            Claimed::New(answer) => answer,
            // A retry racing the join it repeats (same key) answers that join's ticket.
            Claimed::Earlier { ticket, queue } => {
                let ticket = self.queues[queue]
                    .view(ticket)
                    .await
                    .ok_or(JoinError::QueueStopped)?;
                return Ok(Joined {
                    ticket,
                    created: false,
                });
            }
        };
        let accepted = answer
            .await
            .map_err(|_| JoinError::QueueStopped)
            .and_then(|answer| answer);
        let mut directory = self.directory.lock().expect("directory lock");
        for member in &everyone {
            let ours = (directory.get_mut(member)).filter(|claim| claim.ticket == ticket_id);
            match (&accepted, ours) {
                (Ok(_), Some(claim)) => claim.pending = false,
                (Err(_), Some(_)) => {
                    directory.remove(member);
                }
                (_, None) => {}
            }
        }
        match accepted {
            Ok(ticket) => Ok(Joined {
                ticket,
                created: true,
            }),
            Err(err) => {
                drop(directory);
                if let Some(key) = idempotency_key {
                    let mut keys = self.idempotency.lock().expect("idempotency lock");
                    keys.remove(&(player, key.to_owned()));
                }
                Err(err)
            }
        }
    }

    /// Records the ticket as the player's latest, unless another is still searching, and hands
    /// it to its queue — all under the directory lock, so that once a retry can find the
    /// ticket (by player or by key), the join is already in the queue's mailbox and anything
    /// the retry asks the queue is answered after it. Lock order: directory, then idempotency.
    fn claim(
        &self,
        player: Uuid,
        everyone: &[Uuid],
        queue: usize,
        ticket: NewTicket,
        request: &JoinQueueRequest,
        idempotency_key: Option<&str>,
    ) -> Result<Claimed, JoinError> {
        let mut directory = self.directory.lock().expect("directory lock");
        for member in everyone.iter().filter(|m| **m != player) {
            if let Some(claim) = directory.get(member)
                && (claim.pending
                    || (self.queues[claim.queue].board)
                        .is_searching(claim.ticket)
                        .unwrap_or(false))
            {
                return Err(JoinError::MemberQueued {
                    player: *member,
                    ticket: claim.ticket,
                });
            }
        }
        if let Some(claim) = directory.get(&player) {
            let searching = claim.pending
                || self.queues[claim.queue]
                    .board
                    .is_searching(claim.ticket)
                    .unwrap_or(false);
            if searching {
                let keys = self.idempotency.lock().expect("idempotency lock");
                let earlier = idempotency_key
                    .and_then(|key| keys.get(&(player, key.to_owned())))
                    .filter(|earlier| earlier.ticket == claim.ticket);
                if let Some(earlier) = earlier {
                    if earlier.request != *request {
                        return Err(JoinError::KeyReused);
                    }
                    return Ok(Claimed::Earlier {
                        ticket: claim.ticket,
                        queue: claim.queue,
                    });
                }
                return Err(JoinError::AlreadyQueued(claim.ticket));
            }
        }
        let ticket_id = ticket.ticket_id;
        let (reply, answer) = oneshot::channel();
        self.queues[queue]
            .commands
            .try_send(Command::Join { ticket, reply })
            .map_err(|err| match err {
                mpsc::error::TrySendError::Full(_) => JoinError::QueueBusy,
                mpsc::error::TrySendError::Closed(_) => JoinError::QueueStopped,
            })?;
        for member in everyone {
            let claim = Claim {
                ticket: ticket_id,
                queue,
                pending: true,
            };
            directory.insert(*member, claim);
        }
        if let Some(key) = idempotency_key {
            let mut keys = self.idempotency.lock().expect("idempotency lock");
            let remembered = Remembered {
                ticket: ticket_id,
                queue,
                request: request.clone(),
                at: Instant::now(),
            };
            keys.insert((player, key.to_owned()), remembered);
        }
        Ok(Claimed::New(answer))
    }

    /// The ticket an earlier join with this key created, if the key is fresh; a fresh key sent
    /// with another request is an error (the client reused a key by mistake).
    async fn remembered(
        &self,
        player: Uuid,
        key: &str,
        request: &JoinQueueRequest,
    ) -> Result<Option<TicketView>, JoinError> {
        let ttl = Duration::from_secs(self.config.idempotency_ttl_secs);
        let (ticket, queue) = {
            let keys = self.idempotency.lock().expect("idempotency lock");
            let Some(remembered) = keys
                .get(&(player, key.to_owned()))
                .filter(|remembered| remembered.at.elapsed() < ttl)
            else {
                return Ok(None);
            };
            if remembered.request != *request {
                return Err(JoinError::KeyReused);
            }
            (remembered.ticket, remembered.queue)
        };
        Ok(self.queues[queue].view(ticket).await)
    }

    /// Takes the player's searching ticket out of its queue. Exactly one of: cancelled (no match
    /// will include it), already matched (with the match id), or not queued.
    pub async fn leave(&self, player: Uuid) -> Result<TicketView, LeaveError> {
        match self.elsewhere() {
            Some(link) => link.leave(player).await,
            None => self.local_leave(player).await,
        }
    }

    async fn local_leave(&self, player: Uuid) -> Result<TicketView, LeaveError> {
        let claim = self.claim_of(player).ok_or(LeaveError::NotQueued)?;
        let ticket = claim.ticket;
        let outcome = self.queues[claim.queue]
            .ask(|reply| Command::Leave { ticket, reply })
            .await
            .ok_or(LeaveError::QueueStopped)?;
        match outcome {
            LeaveOutcome::Cancelled(view) => Ok(view),
            LeaveOutcome::Matched(match_id) => Err(LeaveError::AlreadyMatched(match_id)),
            LeaveOutcome::NotSearching => Err(LeaveError::NotQueued),
            LeaveOutcome::Unavailable => Err(LeaveError::QueueStopped),
        }
    }

    fn claim_of(&self, player: Uuid) -> Option<Claim> {
        self.directory
            .lock()
            .expect("directory lock")
            .get(&player)
            .copied()
    }

    /// A ticket of `queue` by id (a party's).
    pub async fn ticket_view(&self, queue: &str, ticket: Uuid) -> Option<TicketView> {
        match self.elsewhere() {
            Some(link) => link.ticket_view(queue, ticket).await,
            None => self.local_ticket_view(queue, ticket).await,
        }
    }

    async fn local_ticket_view(&self, queue: &str, ticket: Uuid) -> Option<TicketView> {
        self.queue(queue)?.view(ticket).await
    }

    /// The player's current or most recent ticket.
    pub async fn status(&self, player: Uuid) -> Option<TicketView> {
        match self.elsewhere() {
            Some(link) => link.status(player).await,
            None => self.local_status(player).await,
        }
    }

    async fn local_status(&self, player: Uuid) -> Option<TicketView> {
        let claim = self.claim_of(player)?;
        self.queues[claim.queue].view(claim.ticket).await
    }

    /// A player's connection dropped: their searching ticket waits `grace` for them to come
    /// back, measured from their latest drop — a player who reconnects and drops again gets the
    /// whole grace again, so a flapping mobile connection keeps its place.
    pub fn hold_for_reconnect(self: &Arc<Self>, hub: Arc<Hub>, player: Uuid, grace: Duration) {
        // On a follower the ticket lives with the matchmaker: the leave below goes there (and
        // finds nothing if the player was not searching).
        if self.elsewhere().is_none() && !self.is_searching(player) {
            return;
        }
        let matchmaking = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            // A later drop scheduled its own check; only a player away for the whole grace since
            // their latest drop loses the ticket.
            let gone = hub.away_for(player).await.is_some_and(|away| away >= grace);
            if gone && matchmaking.leave(player).await.is_ok() {
                tracing::info!(player_id = %player, "ticket cancelled after disconnect grace period");
            }
        });
    }

    pub fn is_searching(&self, player: Uuid) -> bool {
        self.claim_of(player).is_some_and(|claim| {
            claim.pending
                || self.queues[claim.queue]
                    .board
                    .is_searching(claim.ticket)
                    .unwrap_or(false)
        })
    }

    /// Every queue's statistics, from the node that runs them (empty if none answers).
    pub async fn statistics(&self) -> MatchmakingStatistics {
        match self.elsewhere() {
            Some(link) => {
                (link.statistics().await).unwrap_or(MatchmakingStatistics { queues: Vec::new() })
            }
            None => self.local_statistics(),
        }
    }

    fn local_statistics(&self) -> MatchmakingStatistics {
        MatchmakingStatistics {
            queues: (self.by_name.values())
                .map(|&i| self.queues[i].stats.lock().expect("stats lock").clone())
                .collect(),
        }
    }

    /// Forgets expired idempotency keys, and players whose latest ticket their queue has
    /// forgotten (it keeps ended tickets for an hour), so the maps hold only recent players.
    pub fn forget_finished(&self) {
        let ttl = Duration::from_secs(self.config.idempotency_ttl_secs);
        let mut directory = self.directory.lock().expect("directory lock");
        directory.retain(|_, claim| {
            claim.pending
                || (self.queues[claim.queue].board)
                    .is_searching(claim.ticket)
                    .is_some()
        });
        drop(directory);
        let mut keys = self.idempotency.lock().expect("idempotency lock");
        keys.retain(|_, remembered| remembered.at.elapsed() < ttl);
    }
}

/// Latency to each of the queue's regions: what the client measured; for regions it did not
/// measure, the budget if the player prefers the region (or has no preference and measured
/// nothing), else unreachable.
fn region_latencies(
    queue: &Queue,
    request: &JoinQueueRequest,
    preferences: &MatchmakingPreferences,
) -> Result<Vec<u32>, JoinError> {
    let regions = &queue.config.regions;
    for (region, latency) in &request.latencies {
        if !regions.contains(region) {
            return Err(JoinError::UnknownRegion {
                region: region.clone(),
                regions: regions.join(", "),
            });
        }
        if *latency > MAX_LATENCY_MS {
            return Err(JoinError::LatencyTooHigh {
                region: region.clone(),
            });
        }
    }
    let budget = queue.config.latency_budget_ms;
    let latencies: Vec<u32> = regions
        .iter()
        .map(|region| match request.latencies.get(region) {
            Some(ms) => *ms,
            None if preferences.regions.iter().any(|p| p == region) => budget,
            None if request.latencies.is_empty() && preferences.regions.is_empty() => budget,
            None => UNREACHABLE_MS,
        })
        .collect();
    if latencies.iter().all(|ms| *ms == UNREACHABLE_MS) {
        return Err(JoinError::NoReachableRegion);
    }
    Ok(latencies)
}

#[cfg(test)]
mod tests {
    use versus_store::SqliteStore;

    use super::*;
    use crate::config::{Queues, RealtimeConfig};
    use crate::services::events::InProcessBus;

    /// Flapping connections under paused time: the grace runs from the latest drop, so a player
    /// who comes back before it ends keeps the ticket however often they drop; one who stays
    /// away for the whole grace loses it.
    #[tokio::test]
    async fn disconnect_grace_is_measured_from_the_latest_drop() {
        let store = Arc::new(SqliteStore::in_memory().await.unwrap());
        let hub = Hub::new(RealtimeConfig::default());
        let matchmaking = Matchmaking::start(
            Queues::default().iter(),
            &MatchmakingConfig::default(),
            Arc::new(InProcessBus::default()),
            store.clone(),
            Leaderboards::load(store, Vec::new(), 0).await.unwrap(),
            mpsc::unbounded_channel().0,
        );
        let (player, login) = (Uuid::now_v7(), Uuid::now_v7());
        let request = JoinQueueRequest {
            queue: "ranked-1v1".into(),
            latencies: [("eu".to_owned(), 30)].into(),
            party_id: None,
        };
        matchmaking.join(player, &request, None).await.unwrap();
        // Paused only now: the store's pool times out under a clock that jumps.
        tokio::time::pause();
        let grace = Duration::from_secs(4);
        let at = |secs: f64| tokio::time::sleep(Duration::from_secs_f64(secs));

        // The probe's sequence: drop at 0, back at 1, drop at 3.7, back at 4.5.
        let first = hub.attach(player, login, None);
        hub.detach(player, first.connection_id);
        matchmaking.hold_for_reconnect(hub.clone(), player, grace);
        at(1.0).await;
        let second = hub.attach(player, login, None);
        at(2.7).await;
        hub.detach(player, second.connection_id);
        matchmaking.hold_for_reconnect(hub.clone(), player, grace);
        at(0.8).await;
        let third = hub.attach(player, login, None);
        at(20.0).await;
        assert!(matchmaking.is_searching(player), "kept through the flaps");

        // Away for longer than the grace: cancelled, once, told over the bus.
        hub.detach(player, third.connection_id);
        matchmaking.hold_for_reconnect(hub.clone(), player, grace);
        at(3.9).await;
        assert!(
            matchmaking.is_searching(player),
            "not before the grace ends"
        );
        at(0.2).await;
        assert!(
            !matchmaking.is_searching(player),
            "cancelled after the grace"
        );
        let status = matchmaking.status(player).await.unwrap();
        assert_eq!(status.state, versus_protocol::queue::TicketState::Cancelled);
    }
}
