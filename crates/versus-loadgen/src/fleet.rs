//! The game-server role (`--server-key`): an in-process fleet hosting every session our players
//! are sent to, so that a run exercises the whole loop — match, session, result, rating.
//!
//! A player that gets `session_ready` hands it over (an [`Arrival`]) as if it connected to the
//! game server at the endpoint. The first arrival of a session starts its game: a heartbeat at
//! once, `PUT state active`, heartbeats while it "plays" for its drawn length, then one result
//! with a random order of teams. The result's first POST is timed (the players measure their
//! `rating_update` from it) and is retried with the same body on a transport error, a 5xx, 408
//! or 429: the server answers the same result again with the same 200, so a retry can never
//! apply a result twice — which [`check_games`] verifies at the end from every player's stored
//! games. The fleet never posts two different results for a session.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use futures::StreamExt as _;
use rand::Rng as _;
use rand::seq::SliceRandom as _;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::JoinSet;
use tokio::time::Instant;
use uuid::Uuid;
use versus_client::credentials::{RefreshingTokens, TokenSource as _};
use versus_client::session_token;
use versus_client::{Client, ClientError, ClientResult};
use versus_protocol::sessions::{ResultReport, ResultTeam, SessionStateName, StateChange};

use crate::retry::{Patience, unavailable};
use crate::stats::{GamesCheck, PostOutcome, PostedGames, Recorder};

/// Heartbeats at most this far apart, and at least three per heartbeat TTL the server states.
const HEARTBEAT_EVERY: Duration = Duration::from_secs(5);
/// One result in this many is a draw (every team ranked 1).
const DRAW_ONE_IN: u32 = 50;

/// A player at the game server's door: what its `session_ready` said, and the teams of its
/// `match_found` for the session (the roster the result must report).
#[derive(Debug)]
pub(crate) struct Arrival {
    pub session_id: Uuid,
    pub player_id: Uuid,
    pub token: String,
    pub endpoint: String,
    pub teams: Option<Vec<Vec<Uuid>>>,
}

/// The game servers of every session of the run.
pub(crate) struct Fleet {
    /// One per node, sending the server key; their own connection pool, as a separate process
    /// would have.
    clients: Vec<Client>,
    /// The node calls go to: the next one after it does not answer (or answers 502/503/504).
    node: AtomicUsize,
    /// Calls in flight at once.
    slots: Semaphore,
    play_time: Duration,
    token_key: Option<Vec<u8>>,
    recorder: Arc<Recorder>,
}

/// How a heartbeat went.
enum Beat {
    /// Alive; the next is due within this.
    Alive(Duration),
    /// The session is over (409 `session_not_live`, 404): stop hosting it.
    Over,
    /// No answer, or an unexpected one: keep going.
    Failed,
}

impl Fleet {
    pub fn new(
        base_urls: &[String],
        server_key: &str,
        slots: usize,
        play_time: Duration,
        token_key: Option<&str>,
        recorder: Arc<Recorder>,
    ) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(slots)
            .timeout(Duration::from_secs(30))
            .build()
            .context("building the game servers' HTTP client")?;
        Ok(Self {
            clients: (base_urls.iter())
                .map(|base| Client::with_http(http.clone(), base.clone()).authenticated(server_key))
                .collect(),
            node: AtomicUsize::new(0),
            slots: Semaphore::new(slots),
            play_time,
            token_key: token_key.map(|key| key.as_bytes().to_vec()),
            recorder,
        })
    }

    /// Fails when the server refuses the key: a heartbeat for a session that cannot exist is a
    /// 404 with the right key and a 401 with a wrong one.
    pub async fn check_key(&self) -> anyhow::Result<()> {
        match self.clients[0].session_heartbeat(Uuid::nil()).await {
            Err(err) if err.code() == Some("session_not_found") => Ok(()),
            Err(err) if err.status().is_some_and(|s| s.as_u16() == 401) => anyhow::bail!(
                "the server refuses --server-key (VERSUS_SESSIONS__SERVER_KEY): start it with the same sessions.server_key"
            ),
            Err(err) => Err(err).context("checking the server key"),
            Ok(_) => anyhow::bail!("the server answered a heartbeat for the nil session"),
        }
    }

    /// Hosts sessions as players arrive, until `stop` (sent once every player is done), then
    /// finishes the games still running.
    pub async fn run(
        self: Arc<Self>,
        mut arrivals: mpsc::UnboundedReceiver<Arrival>,
        mut stop: oneshot::Receiver<()>,
    ) {
        let mut seen = HashSet::new();
        let mut games = JoinSet::new();
        loop {
            tokio::select! {
                arrival = arrivals.recv() => match arrival {
                    Some(arrival) => self.admit(arrival, &mut seen, &mut games),
                    None => break,
                },
                Some(_) = games.join_next(), if !games.is_empty() => {}
                _ = &mut stop => break,
            }
        }
        while let Ok(arrival) = arrivals.try_recv() {
            self.admit(arrival, &mut seen, &mut games);
        }
        while games.join_next().await.is_some() {}
    }

    fn admit(
        self: &Arc<Self>,
        arrival: Arrival,
        seen: &mut HashSet<Uuid>,
        games: &mut JoinSet<()>,
    ) {
        let fleet = &self.recorder.fleet;
        fleet.arrivals.fetch_add(1, Ordering::Relaxed);
        tracing::trace!(session = %arrival.session_id, endpoint = arrival.endpoint, "player arrived");
        self.verify_token(&arrival);
        if seen.insert(arrival.session_id) {
            fleet.sessions_seen.fetch_add(1, Ordering::Relaxed);
            games.spawn(Arc::clone(self).host(arrival.session_id, arrival.teams));
        }
    }

    /// What a game server does with the token a player shows it: verify it offline.
    fn verify_token(&self, arrival: &Arrival) {
        let Some(key) = &self.token_key else {
            return;
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        self.recorder
            .fleet
            .token_checks
            .fetch_add(1, Ordering::Relaxed);
        if let Err(err) = session_token::verify(
            key,
            &arrival.token,
            arrival.session_id,
            Some(arrival.player_id),
            now,
        ) {
            self.recorder
                .fleet
                .token_failures
                .fetch_add(1, Ordering::Relaxed);
            self.recorder.error(format!("session token: {err}"));
        }
    }

    /// One game, from its first player's arrival to its result.
    async fn host(self: Arc<Self>, session: Uuid, teams: Option<Vec<Vec<Uuid>>>) {
        let running = &self.recorder.fleet.games_running;
        running.fetch_add(1, Ordering::Relaxed);
        self.play(session, teams).await;
        running.fetch_sub(1, Ordering::Relaxed);
    }

    async fn play(&self, session: Uuid, teams: Option<Vec<Vec<Uuid>>>) {
        let teams = match teams {
            Some(teams) => teams,
            // The player missed its match_found: ask the server for the roster.
            None => match self
                .call(
                    "session",
                    |client| async move { client.session(session).await },
                )
                .await
            {
                Ok(view) => view.teams.into_iter().map(|t| t.players).collect(),
                Err(err) => {
                    self.failed("session", &err);
                    return;
                }
            },
        };
        let every = match self.heartbeat(session).await {
            Beat::Alive(every) => every,
            Beat::Over => return,
            Beat::Failed => HEARTBEAT_EVERY,
        };
        let active = StateChange {
            state: SessionStateName::Active,
            reason: Some("the load generator's game started".into()),
        };
        let active = &active;
        let started = self
            .call("state", |client| async move {
                client.set_session_state(session, active).await
            })
            .await;
        if let Err(err) = started {
            self.failed("state active", &err);
            if err.status().is_some_and(|s| s.is_client_error()) {
                return; // illegal_transition: abandoned or cancelled meanwhile
            }
        }
        let ends = Instant::now() + self.play_time.mul_f64(0.5 + rand::random::<f64>());
        loop {
            let next = Instant::now() + every;
            if next >= ends {
                tokio::time::sleep_until(ends).await;
                break;
            }
            tokio::time::sleep_until(next).await;
            if let Beat::Over = self.heartbeat(session).await {
                return;
            }
        }
        self.report(session, random_result(&teams)).await;
    }

    async fn heartbeat(&self, session: Uuid) -> Beat {
        let fleet = &self.recorder.fleet;
        fleet.heartbeats.fetch_add(1, Ordering::Relaxed);
        match self
            .call("heartbeat", |client| async move {
                client.session_heartbeat(session).await
            })
            .await
        {
            Ok(ack) => {
                let within = Duration::from_secs(ack.next_within_s.max(1));
                Beat::Alive((within / 3).clamp(Duration::from_secs(1), HEARTBEAT_EVERY))
            }
            Err(err) => {
                fleet.heartbeat_failures.fetch_add(1, Ordering::Relaxed);
                self.failed("heartbeat", &err);
                match err.code() {
                    Some("session_not_live" | "session_not_found") => Beat::Over,
                    _ => Beat::Failed,
                }
            }
        }
    }

    /// Posts the result, retrying with the same body; the first attempt's instant is what
    /// players time their `rating_update` from.
    async fn report(&self, session: Uuid, report: ResultReport) {
        let fleet = &self.recorder.fleet;
        let players: Vec<Uuid> = (report.teams.iter())
            .flat_map(|t| t.players.iter().copied())
            .collect();
        let (players, report) = (&players, &report);
        let answer = self
            .call("result", |client| {
                fleet.posting(session, players);
                async move { client.report_result(session, report).await }
            })
            .await;
        let outcome = match answer {
            Ok(_) => {
                fleet.results_posted.fetch_add(1, Ordering::Relaxed);
                PostOutcome::Applied
            }
            Err(err) => {
                self.failed("result", &err);
                match (err.code(), err.status()) {
                    (Some("result_conflict"), _) => {
                        fleet.result_conflicts.fetch_add(1, Ordering::Relaxed);
                        PostOutcome::Refused
                    }
                    (Some("session_not_live"), _) => {
                        fleet.results_not_live.fetch_add(1, Ordering::Relaxed);
                        PostOutcome::Refused
                    }
                    (_, Some(status)) if status.is_client_error() => {
                        fleet.results_failed.fetch_add(1, Ordering::Relaxed);
                        PostOutcome::Refused
                    }
                    _ => {
                        fleet.results_failed.fetch_add(1, Ordering::Relaxed);
                        fleet.results_unknown.fetch_add(1, Ordering::Relaxed);
                        PostOutcome::Unknown
                    }
                }
            }
        };
        fleet.posted(session, outcome);
    }

    /// One game-server call holding a slot, tried again with [`Patience`] on a transport
    /// error, a 5xx, 408 or 429 — as a game server
    /// rides out a node dying or an engine away rather than drop its result. A node that is
    /// [`unavailable`] is left for the next one.
    async fn call<T, F, Fut>(&self, what: &str, mut attempt: F) -> ClientResult<T>
    where
        F: FnMut(Client) -> Fut,
        Fut: Future<Output = ClientResult<T>>,
    {
        let mut patience = Patience::new();
        loop {
            let node = self.node.load(Ordering::Relaxed);
            let answer = {
                let _slot = self.slots.acquire().await.expect("never closed");
                attempt(self.clients[node].clone()).await
            };
            match answer {
                Err(err) if retryable(&err) && patience.lasts() => {
                    tracing::debug!(what, error = %err, "game-server call retried");
                    self.recorder.fleet.retries.fetch_add(1, Ordering::Relaxed);
                    if unavailable(&err) && self.clients.len() > 1 {
                        // Only the first call to see this node fail moves everyone on.
                        let next = (node + 1) % self.clients.len();
                        let moved = (self.node).compare_exchange(
                            node,
                            next,
                            Ordering::Relaxed,
                            Ordering::Relaxed,
                        );
                        if moved.is_ok() {
                            self.recorder.failovers.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    patience.pause().await;
                }
                answer => return answer,
            }
        }
    }

    fn failed(&self, what: &str, err: &ClientError) {
        self.recorder
            .error(format!("fleet {}", describe(what, err)));
    }
}

fn retryable(err: &ClientError) -> bool {
    match err {
        ClientError::Transport(_) => true,
        _ => err
            .status()
            .is_some_and(|s| s.is_server_error() || matches!(s.as_u16(), 408 | 429)),
    }
}

fn describe(operation: &str, err: &ClientError) -> String {
    match (err.code(), err.status()) {
        (Some(code), _) => format!("{operation}: {code}"),
        (None, Some(status)) => format!("{operation}: http {}", status.as_u16()),
        (None, None) => format!("{operation}: transport"),
    }
}

/// The teams in a random order, ranked 1..n; now and then a draw.
fn random_result(teams: &[Vec<Uuid>]) -> ResultReport {
    let mut rng = rand::rng();
    let mut ranks: Vec<u32> = (1..=teams.len() as u32).collect();
    if rng.random_ratio(1, DRAW_ONE_IN) {
        ranks.fill(1);
    } else {
        ranks.shuffle(&mut rng);
    }
    ResultReport {
        teams: teams
            .iter()
            .zip(ranks)
            .map(|(players, rank)| ResultTeam {
                players: players.clone(),
                rank,
            })
            .collect(),
    }
}

/// One of our players, as the end-of-run check reads it back.
pub(crate) struct Account {
    pub player_id: Uuid,
    /// Its games in the queue when it started (a name reused from an earlier run has some).
    pub games_at_start: u64,
    pub client: Client,
    pub tokens: Arc<RefreshingTokens>,
}

/// The games `player` has stored in `queue` (0 before the first).
pub(crate) async fn stored_games(client: &Client, player: Uuid, queue: &str) -> ClientResult<u64> {
    let ratings = client.player_ratings(player).await?;
    Ok(ratings
        .ratings
        .iter()
        .find(|r| r.queue == queue)
        .map_or(0, |r| r.games))
}

/// Reads every player's games back and compares them with the results the fleet posted that
/// included the player: fewer stored is a lost result, more is one applied twice.
pub(crate) async fn check_games(
    accounts: Vec<Account>,
    nodes: &[Client],
    queue: &str,
    recorder: &Recorder,
    concurrency: usize,
) -> GamesCheck {
    let posted = recorder.posted_games();
    let reads = futures::stream::iter(accounts)
        .map(|account| async move {
            let read = read_games(&account, nodes, queue).await;
            (account, read)
        })
        .buffer_unordered(concurrency.max(1));
    let mut check = GamesCheck::default();
    let mut reads = std::pin::pin!(reads);
    while let Some((account, read)) = reads.next().await {
        match read {
            Ok(stored) => {
                let since = stored.saturating_sub(account.games_at_start);
                let posted = posted.get(&account.player_id).copied();
                let posted = posted.unwrap_or(PostedGames::default());
                if since != posted.applied {
                    tracing::warn!(
                        player = %account.player_id,
                        stored = since,
                        posted = posted.applied,
                        unknown = posted.unknown,
                        "stored games differ from the results posted"
                    );
                }
                check.add(since, posted);
            }
            Err(err) => {
                check.check_errors += 1;
                recorder.error(describe("games check", &err));
            }
        }
    }
    check
}

/// The player's games, through their own node or, when it is unavailable (killed during the
/// run), the others.
async fn read_games(account: &Account, nodes: &[Client], queue: &str) -> ClientResult<u64> {
    let token = account.client.access_token().unwrap_or_default();
    let through = std::iter::once(account.client.clone())
        .chain(nodes.iter().map(|node| node.authenticated(token)));
    let mut last = None;
    for client in through {
        match stored_games(&client, account.player_id, queue).await {
            // The access token expired during a long run: refresh once.
            Err(err) if err.status().is_some_and(|s| s.as_u16() == 401) => {
                let token = account.tokens.fresh_token().await?;
                return stored_games(&client.authenticated(token), account.player_id, queue).await;
            }
            Err(err) if unavailable(&err) => last = Some(err),
            read => return read,
        }
    }
    Err(last.expect("at least the player's own node was asked"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_rank_every_team_once_or_draw() {
        let teams: Vec<Vec<Uuid>> = (0..4)
            .map(|_| vec![Uuid::new_v4(), Uuid::new_v4()])
            .collect();
        let mut draws = 0;
        for _ in 0..2000 {
            let report = random_result(&teams);
            assert_eq!(report.teams.len(), 4);
            for (team, reported) in teams.iter().zip(&report.teams) {
                assert_eq!(team, &reported.players, "the roster as formed");
            }
            let mut ranks: Vec<u32> = report.teams.iter().map(|t| t.rank).collect();
            ranks.sort_unstable();
            if ranks == [1, 1, 1, 1] {
                draws += 1;
            } else {
                assert_eq!(ranks, [1, 2, 3, 4]);
            }
        }
        assert!((10..=100).contains(&draws), "about 1 in 50: {draws}");
    }

    #[test]
    fn only_transport_errors_and_server_trouble_are_retried() {
        let problem = |status: u16, code: &str| ClientError::Api {
            status: reqwest::StatusCode::from_u16(status).unwrap(),
            problem: Box::new(versus_protocol::Problem {
                type_uri: "about:blank".into(),
                title: "x".into(),
                status,
                detail: String::new(),
                code: code.into(),
                field: None,
                request_id: None,
            }),
        };
        assert!(retryable(&problem(503, "unavailable")));
        assert!(retryable(&problem(500, "internal")));
        assert!(retryable(&problem(429, "rate_limited")));
        assert!(retryable(&problem(408, "timeout")));
        assert!(!retryable(&problem(409, "result_conflict")));
        assert!(!retryable(&problem(400, "validation_failed")));
        assert!(!retryable(&problem(401, "unauthorized")));
    }
}
