//! One simulated player: sign up (or log in), connect the WebSocket, queue, wait for
//! `match_found`, then queue again or quit. With the game-server role it also plays its match:
//! hands its `session_ready` to the fleet, waits for the session's `rating_update`, then queues
//! again. Everything it sees goes to the shared recorder.

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{Semaphore, mpsc};
use tokio::time::Instant;
use uuid::Uuid;
use versus_client::credentials::{RefreshingTokens, TokenSource as _};
use versus_client::ws::{ReconnectPolicy, ReconnectingSocket, WsEvent, WsResult};
use versus_client::{Client, ClientError, ClientResult};
use versus_protocol::queue::{JoinQueueRequest, TicketState, TicketView};
use versus_protocol::sessions::SessionStateName;
use versus_protocol::ws::{Envelope, ServerEvent, SessionReady};

use crate::fleet::{Account, Arrival};
use crate::retry::{Patience, unavailable};
use crate::stats::Recorder;

/// How long a player waits for `session_ready` after `match_found`, and for `rating_update`
/// beyond the longest game.
const SESSION_GRACE: Duration = Duration::from_secs(30);

/// What every player shares.
pub(crate) struct Arena {
    /// One per node; a player uses `clients[plan.node]`.
    pub clients: Vec<Client>,
    pub recorder: Arc<Recorder>,
    pub rest_slots: Semaphore,
    pub queue: String,
    pub requeue: bool,
    /// Mean pause between a match and the next join.
    pub requeue_delay: Duration,
    /// When players stop queueing and leave.
    pub deadline: Instant,
    /// How long after the deadline a player still waits for an owed `match_found`.
    pub drain: Duration,
    /// The game-server role, when on.
    pub fleet: Option<FleetLink>,
    /// Our players, read back at the end (with the game-server role).
    pub accounts: Mutex<Vec<Account>>,
}

impl Arena {
    /// One REST call holding a slot, to node `*node` (an index into `clients`). A node that is
    /// [`unavailable`] is left for the next one and the call made again there, with
    /// [`Patience`]. `None` when the slots are closed.
    pub async fn rest<T, F, Fut>(&self, node: &mut usize, mut attempt: F) -> Option<ClientResult<T>>
    where
        F: FnMut(Client) -> Fut,
        Fut: Future<Output = ClientResult<T>>,
    {
        let mut patience = Patience::new();
        loop {
            let result = {
                let _slot = self.rest_slots.acquire().await.ok()?;
                attempt(self.clients[*node].clone()).await
            };
            match result {
                Err(err) if unavailable(&err) && patience.lasts() => {
                    self.recorder.rest_retries.fetch_add(1, Ordering::Relaxed);
                    if self.clients.len() > 1 {
                        *node = (*node + 1) % self.clients.len();
                        self.recorder.failovers.fetch_add(1, Ordering::Relaxed);
                    }
                    patience.pause().await;
                }
                result => return Some(result),
            }
        }
    }
}

/// How players reach the in-process game servers.
pub(crate) struct FleetLink {
    pub arrivals: mpsc::UnboundedSender<Arrival>,
    /// The longest a game can last.
    pub longest_game: Duration,
}

pub(crate) struct PlayerPlan {
    pub username: String,
    pub password: String,
    pub latencies: BTreeMap<String, u32>,
    pub start_at: Instant,
    /// Which node (of `Arena::clients`) the player talks to.
    pub node: usize,
}

/// What a player reads its event stream for.
#[derive(Debug, Clone, Copy)]
enum Awaiting {
    /// The `match_found` of this ticket (`joined_at`: for time to match).
    Match {
        ticket: Uuid,
        joined_at: Option<Instant>,
    },
    /// This session's `session_ready`.
    Ready(Uuid),
    /// This session's `rating_update`.
    Rating(Uuid),
    /// Nothing: only the clock or a lost socket ends the wait.
    Nothing,
}

/// How a wait ended.
enum Wait {
    /// Our ticket's `match_found`: its session (the match's id) and teams.
    Matched {
        session: Uuid,
        teams: Vec<Vec<Uuid>>,
    },
    Ready(SessionReady),
    Rated,
    /// The awaited session ended without a result: `abandoned`, or `cancelled` (before a
    /// game server took it, its tickets are back in the queue).
    SessionEnded(SessionStateName),
    /// The ticket ended without a match (expired, cancelled by the server).
    TicketEnded,
    /// The clock ran out (the run's, or the wait's).
    TimeUp,
    /// The WebSocket failed for good.
    SocketLost,
}

/// How playing a matched session ended.
enum Played {
    /// Rated, abandoned or given up on: the player is free.
    Over,
    /// Cancelled before a game server took it: the ticket is searching again.
    Requeued,
    SocketLost,
}

fn rest_error(operation: &str, err: &ClientError) -> String {
    match (err.code(), err.status()) {
        (Some(code), _) => format!("{operation}: {code}"),
        (None, Some(status)) => format!("{operation}: http {}", status.as_u16()),
        (None, None) => format!("{operation}: transport"),
    }
}

fn unix_ms_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

pub(crate) async fn play(arena: Arc<Arena>, plan: PlayerPlan) {
    tokio::time::sleep_until(plan.start_at).await;
    if Instant::now() >= arena.deadline {
        return;
    }
    let mut node = plan.node;
    let Some((token, refresh_token, existed)) = sign_in(&arena, &plan, &mut node).await else {
        return;
    };
    let client = arena.clients[node].authenticated(&token);
    // One refresh token shared by the socket (renewing before expiry) and REST (after a 401).
    let tokens = Arc::new(RefreshingTokens::new(&arena.clients[node], refresh_token));
    // The other nodes, in turn after this one, for a socket whose node dies.
    let count = arena.clients.len();
    let fallbacks = (1..count).map(|i| arena.clients[(node + i) % count].base_url().to_owned());
    let mut socket = ReconnectingSocket::new(
        client.base_url().to_owned(),
        token.clone(),
        ReconnectPolicy {
            max_attempts: Some(8),
            ..ReconnectPolicy::default()
        },
    )
    .with_fallbacks(fallbacks)
    .with_token_source(tokens.clone());
    let player_id = match connect(&arena, &mut socket).await {
        Some(id) => id,
        None => return,
    };
    if arena.fleet.is_some() {
        // The end-of-run check compares games played in this run; a reused name has some.
        let games_at_start = match existed {
            false => 0,
            true => match crate::fleet::stored_games(&client, player_id, &arena.queue).await {
                Ok(games) => games,
                Err(err) => {
                    arena.recorder.error(rest_error("ratings at start", &err));
                    socket.close().await;
                    return;
                }
            },
        };
        arena.accounts.lock().expect("poisoned").push(Account {
            player_id,
            games_at_start,
            client: client.clone(),
            tokens: tokens.clone(),
        });
    }
    arena.recorder.connected(player_id, true);
    let mut player = Player {
        arena: &arena,
        node,
        access_token: token,
        reader: Reader::new(socket),
        player_id,
        latencies: plan.latencies,
        online: true,
        tokens,
    };
    player.run().await;
    player.reader.socket.close().await;
    player.set_online(false);
}

/// The player's access and refresh tokens, and whether the account existed; `node` is where
/// they were given (another than planned when that one was unavailable).
async fn sign_in(
    arena: &Arena,
    plan: &PlayerPlan,
    node: &mut usize,
) -> Option<(String, String, bool)> {
    let (name, password) = (&plan.username, &plan.password);
    let registered = arena
        .rest(node, |client| async move {
            client.register(name, password).await
        })
        .await?;
    let (tokens, existed) = match registered {
        Ok(registered) => (registered.tokens, false),
        Err(err) if err.code() == Some("username_taken") => {
            match arena
                .rest(
                    node,
                    |client| async move { client.login(name, password).await },
                )
                .await?
            {
                Ok(tokens) => (tokens, true),
                Err(err) => {
                    arena.recorder.error(rest_error("login", &err));
                    return None;
                }
            }
        }
        Err(err) => {
            arena.recorder.error(rest_error("register", &err));
            return None;
        }
    };
    Some((tokens.access_token, tokens.refresh_token, existed))
}

/// Waits for the first `Connected`; returns the player's id from the welcome.
async fn connect(arena: &Arena, socket: &mut ReconnectingSocket) -> Option<Uuid> {
    loop {
        match socket.next().await {
            Ok(WsEvent::Connected { welcome, .. }) => return Some(welcome.player_id),
            Ok(WsEvent::Disconnected { error, .. }) => {
                arena
                    .recorder
                    .error(format!("ws connect: {}", error.kind()));
                if Instant::now() >= arena.deadline {
                    return None;
                }
            }
            Ok(other) => tracing::debug!(?other, "before the first connection"),
            Err(error) => {
                arena
                    .recorder
                    .error(format!("ws connect: {}", error.kind()));
                return None;
            }
        }
    }
}

/// A player's socket, read also while the player waits for a REST call — as a real client's
/// socket does not stop for REST: pongs are answered and events kept, in order, for the next
/// wait. (A player that stopped reading while its REST calls queued behind a slow server
/// was dropped for missed pongs, and its events counted as late by the time it queued.)
struct Reader {
    socket: ReconnectingSocket,
    /// What was read during REST calls, with the Unix ms it arrived.
    pending: VecDeque<(WsResult<WsEvent>, i64)>,
    /// The socket gave up during a REST call: not read again until that is handled.
    gave_up: bool,
}

impl Reader {
    fn new(socket: ReconnectingSocket) -> Self {
        Self {
            socket,
            pending: VecDeque::new(),
            gave_up: false,
        }
    }

    /// Awaits `call`, reading the socket meanwhile.
    async fn during<T>(&mut self, call: impl Future<Output = T>) -> T {
        let mut call = std::pin::pin!(call);
        loop {
            if self.gave_up {
                return call.await;
            }
            tokio::select! {
                biased;
                out = &mut call => return out,
                next = self.socket.next() => {
                    self.gave_up = next.is_err();
                    self.pending.push_back((next, unix_ms_now()));
                }
            }
        }
    }

    /// The next thing read (kept ones first), with the Unix ms it arrived; `None` at `until`.
    async fn next_until(&mut self, until: Instant) -> Option<(WsResult<WsEvent>, i64)> {
        if let Some(kept) = self.pending.pop_front() {
            if kept.0.is_err() {
                self.gave_up = false;
            }
            return Some(kept);
        }
        tokio::select! {
            next = self.socket.next() => Some((next, unix_ms_now())),
            () = tokio::time::sleep_until(until) => None,
        }
    }
}

struct Player<'a> {
    arena: &'a Arena,
    /// The node (of `Arena::clients`) REST calls go to; the next one after it fails.
    node: usize,
    access_token: String,
    reader: Reader,
    player_id: Uuid,
    latencies: BTreeMap<String, u32>,
    /// Whether this player's socket counts in `connected_now`.
    online: bool,
    /// For runs longer than the access token lives.
    tokens: Arc<RefreshingTokens>,
}

impl Player<'_> {
    fn set_online(&mut self, online: bool) {
        if online != self.online {
            match online {
                true => self.arena.recorder.connected(self.player_id, false),
                false => self.arena.recorder.disconnected(),
            }
            self.online = online;
        }
    }

    async fn run(&mut self) {
        'tickets: loop {
            if Instant::now() >= self.arena.deadline {
                return;
            }
            let joined_at = Instant::now();
            let Some(ticket) = self.join().await else {
                return;
            };
            self.arena
                .recorder
                .tickets_joined
                .fetch_add(1, Ordering::Relaxed);
            // Waits on this ticket, again if its match is cancelled and it is requeued.
            loop {
                let recorder = &self.arena.recorder;
                recorder.searching_now.fetch_add(1, Ordering::Relaxed);
                let outcome = self.wait_for_match(ticket.ticket_id, joined_at).await;
                recorder.searching_now.fetch_sub(1, Ordering::Relaxed);
                match outcome {
                    Wait::Matched { session, teams } => match self.play(session, teams).await {
                        Played::Over => break,
                        Played::Requeued => continue,
                        Played::SocketLost => return,
                    },
                    Wait::TimeUp => {
                        self.leave_at_the_end(ticket.ticket_id).await;
                        return;
                    }
                    Wait::TicketEnded => continue 'tickets,
                    // SocketLost, or a wait that cannot end here.
                    _ => return,
                }
            }
            if !self.arena.requeue || !self.pause().await {
                return;
            }
        }
    }

    /// A matched session: with the game-server role, played to its result; without, nothing
    /// to do.
    async fn play(&mut self, session: Uuid, teams: Vec<Vec<Uuid>>) -> Played {
        let Some(fleet) = &self.arena.fleet else {
            return Played::Over;
        };
        let longest_game = fleet.longest_game;
        let ready_by = Instant::now() + SESSION_GRACE;
        let ready = match self.wait_until(Awaiting::Ready(session), ready_by).await {
            Wait::Ready(ready) => ready,
            Wait::SessionEnded(SessionStateName::Cancelled) => return Played::Requeued,
            Wait::SocketLost => return Played::SocketLost,
            Wait::TimeUp => {
                self.arena.recorder.error("session: no session_ready");
                return Played::Over;
            }
            _ => return Played::Over,
        };
        let arrival = Arrival {
            session_id: session,
            player_id: self.player_id,
            token: ready.token,
            endpoint: ready.endpoint,
            teams: Some(teams),
        };
        if fleet.arrivals.send(arrival).is_err() {
            self.arena.recorder.error("session: the fleet is gone");
            return Played::Over;
        }
        let rated_by = Instant::now() + longest_game + SESSION_GRACE;
        match self.wait_until(Awaiting::Rating(session), rated_by).await {
            Wait::SocketLost => Played::SocketLost,
            Wait::TimeUp => {
                let fleet = &self.arena.recorder.fleet;
                fleet.rating_update_timeouts.fetch_add(1, Ordering::Relaxed);
                self.arena.recorder.error("session: no rating_update");
                Played::Over
            }
            _ => Played::Over,
        }
    }

    /// Stays connected, reading, for the requeue delay. False when the socket was lost.
    async fn pause(&mut self) -> bool {
        if self.arena.requeue_delay.is_zero() {
            return true;
        }
        let pause = self
            .arena
            .requeue_delay
            .mul_f64(0.5 + rand::random::<f64>());
        let until = (Instant::now() + pause).min(self.arena.deadline);
        !matches!(
            self.wait_until(Awaiting::Nothing, until).await,
            Wait::SocketLost
        )
    }

    async fn join(&mut self) -> Option<TicketView> {
        let request = JoinQueueRequest {
            queue: self.arena.queue.clone(),
            latencies: self.latencies.clone(),
            party_id: None,
        };
        let key = Uuid::new_v4().to_string();
        for _ in 0..3 {
            let (request, key) = (&request, key.as_str());
            let result = self
                .rest(|client| async move { client.join_queue(request, Some(key)).await })
                .await?;
            match result {
                Ok(ticket) => return Some(ticket),
                // A ticket left over from an earlier run of the same players: leave, retry.
                Err(err) if err.code() == Some("already_queued") => {
                    self.arena.recorder.error(rest_error("join", &err));
                    let left = self
                        .rest(|client| async move { client.leave_queue().await })
                        .await?;
                    if let Err(err) = left {
                        self.arena.recorder.error(rest_error("leave", &err));
                        return None;
                    }
                }
                // The access token expired (a run longer than its lifetime): refresh, retry.
                Err(err) if err.status().is_some_and(|s| s.as_u16() == 401) => {
                    self.refresh().await?;
                }
                Err(err) => {
                    self.arena.recorder.error(rest_error("join", &err));
                    return None;
                }
            }
        }
        None
    }

    /// One REST call as this player, on its node or (when that is unavailable) the next ones,
    /// reading the socket meanwhile.
    async fn rest<T, Fut>(&mut self, attempt: impl Fn(Client) -> Fut) -> Option<ClientResult<T>>
    where
        Fut: Future<Output = ClientResult<T>>,
    {
        let (arena, token, node) = (self.arena, &self.access_token, &mut self.node);
        let call = arena.rest(node, |client| attempt(client.authenticated(token)));
        self.reader.during(call).await
    }

    async fn refresh(&mut self) -> Option<()> {
        let (arena, tokens) = (self.arena, &self.tokens);
        let result = self
            .reader
            .during(async {
                let _slot = arena.rest_slots.acquire().await.ok()?;
                Some(tokens.fresh_token().await)
            })
            .await?;
        match result {
            Ok(access_token) => {
                self.access_token.clone_from(&access_token);
                self.reader.socket.set_access_token(access_token);
                Some(())
            }
            Err(err) => {
                self.arena.recorder.error(rest_error("refresh", &err));
                None
            }
        }
    }

    /// Reads the event stream until our ticket's `match_found` (or the run's end).
    async fn wait_for_match(&mut self, ticket: Uuid, joined_at: Instant) -> Wait {
        let awaiting = Awaiting::Match {
            ticket,
            joined_at: Some(joined_at),
        };
        self.wait_until(awaiting, self.arena.deadline).await
    }

    async fn wait_until(&mut self, awaiting: Awaiting, until: Instant) -> Wait {
        loop {
            let Some((next, received_ms)) = self.reader.next_until(until).await else {
                return Wait::TimeUp;
            };
            let recorder = &self.arena.recorder;
            match next {
                Ok(WsEvent::Event(envelope)) => {
                    if let Some(wait) = self.on_envelope(&envelope, received_ms, awaiting) {
                        return wait;
                    }
                }
                Ok(WsEvent::Connected { .. }) => {
                    recorder.reconnects.fetch_add(1, Ordering::Relaxed);
                    self.set_online(true);
                }
                Ok(WsEvent::Disconnected { error, .. }) => {
                    recorder.error(format!("ws: {}", error.kind()));
                    self.set_online(false);
                }
                Ok(WsEvent::ResumeGap(_)) => {
                    recorder.resume_gaps.fetch_add(1, Ordering::Relaxed);
                    recorder.error("ws: resume_gap");
                }
                Err(error) => {
                    recorder.error(format!("ws: {} (gave up)", error.kind()));
                    self.set_online(false);
                    return Wait::SocketLost;
                }
            }
        }
    }

    fn on_envelope(
        &self,
        envelope: &Envelope,
        received_ms: i64,
        awaiting: Awaiting,
    ) -> Option<Wait> {
        let recorder = &self.arena.recorder;
        if envelope.event.is_stream_event() {
            let delay = received_ms.saturating_sub(envelope.ts).max(0);
            recorder.delivery_ms(delay as u64);
        }
        match &envelope.event {
            ServerEvent::MatchFound(found) => {
                let roster = found
                    .teams
                    .iter()
                    .flat_map(|team| team.players.iter().map(|p| p.player_id))
                    .collect();
                recorder.match_found(found.match_id, self.player_id, roster);
                let Awaiting::Match { ticket, joined_at } = awaiting else {
                    return None;
                };
                if found.ticket_id != ticket {
                    return None;
                }
                if let Some(joined_at) = joined_at {
                    recorder.time_to_match_ms(joined_at.elapsed().as_millis() as u64);
                }
                let teams = (found.teams.iter())
                    .map(|team| team.players.iter().map(|p| p.player_id).collect())
                    .collect();
                Some(Wait::Matched {
                    session: found.match_id,
                    teams,
                })
            }
            ServerEvent::QueueUpdate(update) => {
                if let (TicketState::Matched, Some(match_id)) = (update.state, update.match_id) {
                    recorder.matched(match_id, self.player_id);
                }
                let Awaiting::Match { ticket, .. } = awaiting else {
                    return None;
                };
                if update.ticket_id != ticket {
                    return None;
                }
                match update.state {
                    TicketState::Searching | TicketState::Matched => None,
                    TicketState::Expired => {
                        recorder.error("ticket: expired");
                        Some(Wait::TicketEnded)
                    }
                    TicketState::Cancelled => {
                        recorder.error("ticket: cancelled by the server");
                        Some(Wait::TicketEnded)
                    }
                }
            }
            ServerEvent::SessionReady(ready) => match awaiting {
                Awaiting::Ready(session) if ready.session_id == session => {
                    Some(Wait::Ready(ready.clone()))
                }
                _ => {
                    if self.arena.fleet.is_some() {
                        recorder.error("session: session_ready not awaited");
                    }
                    None
                }
            },
            ServerEvent::GameStateUpdate(update) => {
                let fleet = &recorder.fleet;
                let ended = match update.state {
                    SessionStateName::Abandoned => &fleet.abandoned_seen,
                    SessionStateName::Cancelled => &fleet.cancelled_seen,
                    _ => return None,
                };
                ended.lock().expect("poisoned").insert(update.session_id);
                match awaiting {
                    Awaiting::Ready(session) | Awaiting::Rating(session)
                        if update.session_id == session =>
                    {
                        Some(Wait::SessionEnded(update.state))
                    }
                    _ => None,
                }
            }
            ServerEvent::RatingUpdate(change) => {
                if self.arena.fleet.is_some()
                    && !recorder
                        .fleet
                        .rating_update(change.session_id, self.player_id)
                {
                    recorder.error("session: rating_update for a result we did not post");
                }
                match awaiting {
                    Awaiting::Rating(session) if change.session_id == session => Some(Wait::Rated),
                    _ => None,
                }
            }
            ServerEvent::Error(error) => {
                recorder.error(format!("ws error event: {}", error.code));
                None
            }
            _ => None,
        }
    }

    /// The run is over while searching: leave. A leave that loses the race to a match is owed
    /// that match's `match_found`; wait for it a little.
    async fn leave_at_the_end(&mut self, ticket_id: Uuid) {
        let left = self
            .rest(|client| async move { client.leave_queue().await })
            .await;
        let Some(result) = left else {
            return;
        };
        match result {
            Ok(_) => {}
            Err(err) if err.code() == Some("already_matched") => {
                if let Some(match_id) = err.match_id() {
                    self.arena.recorder.matched(match_id, self.player_id);
                }
                let until = Instant::now() + self.arena.drain;
                let awaiting = Awaiting::Match {
                    ticket: ticket_id,
                    joined_at: None,
                };
                // Matched after all: with the game-server role the game is played to its end.
                if let Wait::Matched { session, teams } = self.wait_until(awaiting, until).await {
                    self.play(session, teams).await;
                }
            }
            Err(err) => self.arena.recorder.error(rest_error("leave", &err)),
        }
    }
}
