//! What the simulated players observed, shared among them while they run, and the summary
//! built from it at the end.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::time::Instant;
use uuid::Uuid;

/// Counters and histograms every player task writes to.
pub(crate) struct Recorder {
    pub connected_now: AtomicU64,
    pub connected_total: AtomicU64,
    pub connected_peak: AtomicU64,
    pub searching_now: AtomicU64,
    pub tickets_joined: AtomicU64,
    pub events_received: AtomicU64,
    pub reconnects: AtomicU64,
    pub resume_gaps: AtomicU64,
    /// Players' REST calls made again after a node was unavailable.
    pub rest_retries: AtomicU64,
    /// Times a player or the game servers moved to another node.
    pub failovers: AtomicU64,
    pub errors_total: AtomicU64,
    errors: Mutex<BTreeMap<String, u64>>,
    /// Milliseconds from the join request to `match_found`.
    time_to_match: Mutex<Histogram<u64>>,
    /// Milliseconds from the envelope's `ts` to its receipt.
    delivery: Mutex<Histogram<u64>>,
    matches: Mutex<MatchLedger>,
    /// What the game-server role did and saw (idle without it).
    pub fleet: FleetRecorder,
}

/// Which `match_found` events should have reached which of our players, and which did.
#[derive(Default)]
struct MatchLedger {
    our_players: HashSet<Uuid>,
    /// (match, player) pairs owed a `match_found`: every one of our players named in a received
    /// `match_found`, plus those the server said were matched (a `queue_update`, or a leave
    /// that lost the race).
    expected: HashSet<(Uuid, Uuid)>,
    received: HashSet<(Uuid, Uuid)>,
    /// Team rosters of received matches, resolved against `our_players` at the end, when every
    /// player that ever connected is known.
    rosters: Vec<(Uuid, Vec<Uuid>)>,
}

fn histogram() -> Histogram<u64> {
    // 1 ms to 1 hour at 3 significant digits.
    Histogram::new_with_bounds(1, 3_600_000, 3).expect("static bounds are valid")
}

impl Recorder {
    pub fn new() -> Self {
        Self {
            connected_now: AtomicU64::new(0),
            connected_total: AtomicU64::new(0),
            connected_peak: AtomicU64::new(0),
            searching_now: AtomicU64::new(0),
            tickets_joined: AtomicU64::new(0),
            events_received: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            resume_gaps: AtomicU64::new(0),
            rest_retries: AtomicU64::new(0),
            failovers: AtomicU64::new(0),
            errors_total: AtomicU64::new(0),
            errors: Mutex::new(BTreeMap::new()),
            time_to_match: Mutex::new(histogram()),
            delivery: Mutex::new(histogram()),
            matches: Mutex::new(MatchLedger::default()),
            fleet: FleetRecorder::default(),
        }
    }

    pub fn error(&self, kind: impl Into<String>) {
        let kind = kind.into();
        tracing::debug!(kind, "player error");
        self.errors_total.fetch_add(1, Ordering::Relaxed);
        *self
            .errors
            .lock()
            .expect("poisoned")
            .entry(kind)
            .or_default() += 1;
    }

    pub fn connected(&self, player: Uuid, first_time: bool) {
        let now = self.connected_now.fetch_add(1, Ordering::Relaxed) + 1;
        self.connected_peak.fetch_max(now, Ordering::Relaxed);
        if first_time {
            self.connected_total.fetch_add(1, Ordering::Relaxed);
            self.matches
                .lock()
                .expect("poisoned")
                .our_players
                .insert(player);
        }
    }

    pub fn disconnected(&self) {
        self.connected_now.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn delivery_ms(&self, ms: u64) {
        self.events_received.fetch_add(1, Ordering::Relaxed);
        self.delivery
            .lock()
            .expect("poisoned")
            .saturating_record(ms.max(1));
    }

    pub fn time_to_match_ms(&self, ms: u64) {
        self.time_to_match
            .lock()
            .expect("poisoned")
            .saturating_record(ms.max(1));
    }

    /// `player` received `match_found` for `match_id`, whose teams hold `roster`.
    pub fn match_found(&self, match_id: Uuid, player: Uuid, roster: Vec<Uuid>) {
        let mut ledger = self.matches.lock().expect("poisoned");
        ledger.received.insert((match_id, player));
        ledger.expected.insert((match_id, player));
        ledger.rosters.push((match_id, roster));
    }

    /// The server said `player` is in `match_id` (so a `match_found` is owed).
    pub fn matched(&self, match_id: Uuid, player: Uuid) {
        self.matches
            .lock()
            .expect("poisoned")
            .expected
            .insert((match_id, player));
    }

    pub fn summary(&self, header: SummaryHeader, games: Option<GamesCheck>) -> Summary {
        let game_servers = header
            .play_time_s
            .map(|play_time_s| self.fleet_summary(play_time_s, header.deadline, games));
        let mut ledger = self.matches.lock().expect("poisoned");
        let ledger = &mut *ledger;
        for (match_id, roster) in &ledger.rosters {
            for player in roster {
                if ledger.our_players.contains(player) {
                    ledger.expected.insert((*match_id, *player));
                }
            }
        }
        let matches: HashSet<Uuid> = ledger.expected.iter().map(|(m, _)| *m).collect();
        let expected = ledger.expected.len() as u64;
        let received = ledger.received.len() as u64;
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        Summary {
            url: header.url,
            queue: header.queue,
            players: header.players,
            elapsed_s: header.elapsed_s,
            nofile_limit: header.nofile_limit,
            players_connected: load(&self.connected_total),
            peak_connected: load(&self.connected_peak),
            tickets_joined: load(&self.tickets_joined),
            matches: matches.len() as u64,
            match_found_expected: expected,
            match_found_received: received,
            match_found_lost: expected.saturating_sub(received),
            time_to_match_ms: Percentiles::of(&self.time_to_match.lock().expect("poisoned")),
            event_delivery_ms: Percentiles::of(&self.delivery.lock().expect("poisoned")),
            events_received: load(&self.events_received),
            reconnects: load(&self.reconnects),
            resume_gaps: load(&self.resume_gaps),
            rest_retries: load(&self.rest_retries),
            failovers: load(&self.failovers),
            errors_total: load(&self.errors_total),
            errors: self.errors.lock().expect("poisoned").clone(),
            game_servers,
        }
    }

    /// Each of our players' results as the fleet posted them: (applied, outcome unknown).
    pub fn posted_games(&self) -> HashMap<Uuid, PostedGames> {
        let results = self.fleet.results.lock().expect("poisoned");
        let mut games: HashMap<Uuid, PostedGames> = HashMap::new();
        for posted in results.posted.values() {
            for player in &posted.players {
                let entry = games.entry(*player).or_default();
                match posted.outcome {
                    PostOutcome::Applied => entry.applied += 1,
                    PostOutcome::Unknown | PostOutcome::InFlight => entry.unknown += 1,
                    PostOutcome::Refused => {}
                }
            }
        }
        games
    }

    fn fleet_summary(
        &self,
        play_time_s: f64,
        deadline: Option<Instant>,
        games: Option<GamesCheck>,
    ) -> GameServerSummary {
        let fleet = &self.fleet;
        let our_players = self.matches.lock().expect("poisoned").our_players.clone();
        let results = fleet.results.lock().expect("poisoned");
        let mut expected = 0u64;
        let mut received = 0u64;
        for (session, posted) in &results.posted {
            if posted.outcome != PostOutcome::Applied {
                continue;
            }
            for player in posted.players.iter().filter(|p| our_players.contains(p)) {
                expected += 1;
                received += u64::from(results.rating_updates.contains(&(*session, *player)));
            }
        }
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let applied = load(&fleet.results_posted);
        // Seconds of the timeline while players still queued: after the deadline only the games
        // formed by then are played out, without the rest of the loop's writes beside them.
        let queueing = match (results.first_post, deadline) {
            (Some(first), Some(deadline)) => deadline.saturating_duration_since(first).as_secs(),
            _ => u64::MAX,
        };
        let queueing = (queueing as usize).min(results.applied_per_second.len());
        let span = match (results.first_post, results.last_applied) {
            (Some(first), Some(last)) if last > first => Some((last - first).as_secs_f64()),
            _ => None,
        };
        GameServerSummary {
            play_time_s,
            sessions_seen: load(&fleet.sessions_seen),
            players_arrived: load(&fleet.arrivals),
            heartbeats: load(&fleet.heartbeats),
            heartbeat_failures: load(&fleet.heartbeat_failures),
            results_posted: applied,
            results_applied_per_s: span.map_or(0.0, |span| applied as f64 / span),
            results_applied_peak_10s_per_s: peak_rate(&results.applied_per_second[..queueing], 10),
            results_applied_each_s: results.applied_per_second.clone(),
            result_conflicts: load(&fleet.result_conflicts),
            results_not_live: load(&fleet.results_not_live),
            results_failed: load(&fleet.results_failed),
            results_unknown: load(&fleet.results_unknown),
            retries: load(&fleet.retries),
            rating_update_ms: Percentiles::of(&fleet.rating_latency.lock().expect("poisoned")),
            rating_updates_expected: expected,
            rating_updates_received: received,
            rating_updates_missing: expected.saturating_sub(received),
            rating_update_timeouts: load(&fleet.rating_update_timeouts),
            sessions_abandoned_seen: fleet.abandoned_seen.lock().expect("poisoned").len() as u64,
            sessions_cancelled_seen: fleet.cancelled_seen.lock().expect("poisoned").len() as u64,
            token_checks: load(&fleet.token_checks),
            token_failures: load(&fleet.token_failures),
            games: games.unwrap_or_default(),
        }
    }
}

/// What the game-server role did (the fleet) and what players saw of sessions.
#[derive(Default)]
pub(crate) struct FleetRecorder {
    /// Distinct sessions some player handed to the fleet.
    pub sessions_seen: AtomicU64,
    /// Players handed over (one per player per session).
    pub arrivals: AtomicU64,
    pub heartbeats: AtomicU64,
    pub heartbeat_failures: AtomicU64,
    /// Results answered 200.
    pub results_posted: AtomicU64,
    /// 409 `result_conflict`: another result was stored for the session.
    pub result_conflicts: AtomicU64,
    /// 409 `session_not_live`: the session ended first (abandoned, cancelled).
    pub results_not_live: AtomicU64,
    /// Any other answer, or no answer after the retries.
    pub results_failed: AtomicU64,
    /// Of the failed: no answer at all (applied or not, nobody knows).
    pub results_unknown: AtomicU64,
    /// Calls repeated after a transport error, a 5xx, 408 or 429.
    pub retries: AtomicU64,
    pub token_checks: AtomicU64,
    pub token_failures: AtomicU64,
    /// Players that gave up waiting for a session's `rating_update`.
    pub rating_update_timeouts: AtomicU64,
    /// Games being hosted now.
    pub games_running: AtomicU64,
    /// Sessions our players were told ended `abandoned` / `cancelled`.
    pub abandoned_seen: Mutex<HashSet<Uuid>>,
    pub cancelled_seen: Mutex<HashSet<Uuid>>,
    /// Milliseconds from the result POST to a player's `rating_update`.
    rating_latency: Mutex<LatencyHistogram>,
    results: Mutex<ResultLedger>,
}

/// A histogram that exists from `Default`.
struct LatencyHistogram(Histogram<u64>);

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self(histogram())
    }
}

impl std::ops::Deref for LatencyHistogram {
    type Target = Histogram<u64>;
    fn deref(&self) -> &Histogram<u64> {
        &self.0
    }
}

/// Every result the fleet posted, and every `rating_update` our players got.
#[derive(Default)]
struct ResultLedger {
    posted: HashMap<Uuid, Posted>,
    /// (session, player) pairs whose `rating_update` arrived.
    rating_updates: HashSet<(Uuid, Uuid)>,
    first_post: Option<Instant>,
    last_applied: Option<Instant>,
    /// Results answered 200 in each second since the first POST.
    applied_per_second: Vec<u32>,
}

/// The most results applied in any `window` consecutive seconds, per second.
fn peak_rate(per_second: &[u32], window: usize) -> f64 {
    let window = window.min(per_second.len()).max(1);
    let sums = per_second.windows(window).map(|w| w.iter().sum::<u32>());
    sums.max().map_or(0.0, |sum| f64::from(sum) / window as f64)
}

struct Posted {
    /// When the first attempt was sent: latencies count from it.
    at: Instant,
    players: Vec<Uuid>,
    outcome: PostOutcome,
}

/// How a result POST ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PostOutcome {
    InFlight,
    /// 200: the server stored it.
    Applied,
    /// A 4xx: the server did not store it.
    Refused,
    /// No answer after every retry: stored or not.
    Unknown,
}

/// One player's results as posted: applied for sure, and of unknown outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct PostedGames {
    pub applied: u64,
    pub unknown: u64,
}

impl FleetRecorder {
    /// The fleet is about to send `session`'s result (again); the first attempt's instant is
    /// kept.
    pub fn posting(&self, session: Uuid, players: &[Uuid]) {
        let now = Instant::now();
        let mut results = self.results.lock().expect("poisoned");
        results.first_post.get_or_insert(now);
        results.posted.entry(session).or_insert_with(|| Posted {
            at: now,
            players: players.to_vec(),
            outcome: PostOutcome::InFlight,
        });
    }

    pub fn posted(&self, session: Uuid, outcome: PostOutcome) {
        let mut results = self.results.lock().expect("poisoned");
        if outcome == PostOutcome::Applied {
            let now = Instant::now();
            results.last_applied = Some(now);
            let second = results
                .first_post
                .map_or(0, |first| (now - first).as_secs() as usize);
            if results.applied_per_second.len() <= second {
                results.applied_per_second.resize(second + 1, 0);
            }
            results.applied_per_second[second] += 1;
        }
        if let Some(posted) = results.posted.get_mut(&session) {
            posted.outcome = outcome;
        }
    }

    /// `player` got `rating_update` for `session`; false when the fleet never posted its
    /// result (someone else's game server did).
    pub fn rating_update(&self, session: Uuid, player: Uuid) -> bool {
        let now = Instant::now();
        let mut results = self.results.lock().expect("poisoned");
        let Some(posted) = results.posted.get(&session) else {
            return false;
        };
        let ms = now.saturating_duration_since(posted.at).as_millis() as u64;
        if results.rating_updates.insert((session, player)) {
            self.rating_latency
                .lock()
                .expect("poisoned")
                .0
                .saturating_record(ms.max(1));
        }
        true
    }
}

/// The end-of-run comparison of each player's stored games with the results posted for them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct GamesCheck {
    /// Players whose ratings were read back.
    pub players_checked: u64,
    /// Players whose ratings could not be read.
    pub check_errors: u64,
    /// Games posted (200) but not stored, summed over players.
    pub lost: u64,
    /// Games stored beyond those posted, summed over players.
    pub doubly_applied: u64,
    /// Players with a lost / doubly applied game.
    pub players_lost: u64,
    pub players_doubly_applied: u64,
    /// Players in a result whose POST got no answer, stored or not: their count may be one
    /// higher per such result without being doubly applied.
    pub players_ambiguous: u64,
}

impl GamesCheck {
    /// Compares one player's stored games (since the run started) with what was posted.
    pub(crate) fn add(&mut self, stored: u64, posted: PostedGames) {
        self.players_checked += 1;
        if posted.unknown > 0 {
            self.players_ambiguous += 1;
        }
        if stored < posted.applied {
            self.lost += posted.applied - stored;
            self.players_lost += 1;
        }
        let most = posted.applied + posted.unknown;
        if stored > most {
            self.doubly_applied += stored - most;
            self.players_doubly_applied += 1;
        }
    }

    /// Nothing lost, nothing applied twice, every player read.
    pub fn is_clean(&self) -> bool {
        self.lost == 0 && self.doubly_applied == 0 && self.check_errors == 0
    }
}

/// The run's parameters, for the summary.
pub(crate) struct SummaryHeader {
    pub url: String,
    pub queue: String,
    pub players: u32,
    pub elapsed_s: f64,
    pub nofile_limit: Option<u64>,
    /// With the game-server role, the mean game length.
    pub play_time_s: Option<f64>,
    /// When players stopped queueing.
    pub deadline: Option<Instant>,
}

/// Distribution of one measurement, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Percentiles {
    pub count: u64,
    pub p50: Option<u64>,
    pub p95: Option<u64>,
    pub p99: Option<u64>,
    pub max: Option<u64>,
}

impl Percentiles {
    fn of(histogram: &Histogram<u64>) -> Self {
        if histogram.is_empty() {
            return Self {
                count: 0,
                p50: None,
                p95: None,
                p99: None,
                max: None,
            };
        }
        Self {
            count: histogram.len(),
            p50: Some(histogram.value_at_quantile(0.50)),
            p95: Some(histogram.value_at_quantile(0.95)),
            p99: Some(histogram.value_at_quantile(0.99)),
            max: Some(histogram.max()),
        }
    }
}

impl fmt::Display for Percentiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = |v: Option<u64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v} ms"));
        write!(
            f,
            "p50 {}, p95 {}, p99 {}, max {} (n = {})",
            ms(self.p50),
            ms(self.p95),
            ms(self.p99),
            ms(self.max),
            self.count
        )
    }
}

/// What a load run saw. `Display` is for people; serialize it for programs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub url: String,
    pub queue: String,
    /// Players asked for.
    pub players: u32,
    pub elapsed_s: f64,
    /// The soft file-descriptor limit the load generator ran with.
    pub nofile_limit: Option<u64>,
    /// Players whose WebSocket got a `welcome` at least once.
    pub players_connected: u64,
    /// Most WebSockets open at once.
    pub peak_connected: u64,
    pub tickets_joined: u64,
    /// Distinct matches our players were in.
    pub matches: u64,
    /// (match, player) notifications owed to our players.
    pub match_found_expected: u64,
    pub match_found_received: u64,
    pub match_found_lost: u64,
    /// From the join request to `match_found`.
    pub time_to_match_ms: Percentiles,
    /// From the envelope's server `ts` to its receipt (same machine, same clock).
    pub event_delivery_ms: Percentiles,
    pub events_received: u64,
    pub reconnects: u64,
    pub resume_gaps: u64,
    /// Players' REST calls made again because a node did not answer or answered 502/503/504.
    pub rest_retries: u64,
    /// Moves of a player's calls (or the game servers') to another node after such an answer.
    pub failovers: u64,
    pub errors_total: u64,
    /// Errors by kind, e.g. `join: already_queued`, `ws: closed`.
    pub errors: BTreeMap<String, u64>,
    /// The game-server role (`--server-key`); `null` without it.
    pub game_servers: Option<GameServerSummary>,
}

/// What the game-server role did, and the end-of-run check of every player's games.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GameServerSummary {
    /// Mean game length, seconds.
    pub play_time_s: f64,
    /// Distinct sessions our players handed to the fleet.
    pub sessions_seen: u64,
    /// Players handed over (a player per session).
    pub players_arrived: u64,
    pub heartbeats: u64,
    pub heartbeat_failures: u64,
    /// Results answered 200.
    pub results_posted: u64,
    /// `results_posted` over the time from the first result POST to the last 200.
    pub results_applied_per_s: f64,
    /// The best 10 consecutive seconds before the run's deadline, per second: the rate the
    /// whole loop sustained at its peak (after the deadline the games formed by then are played
    /// out with nothing else writing, which is faster).
    pub results_applied_peak_10s_per_s: f64,
    /// Results answered 200 in each second since the first POST.
    pub results_applied_each_s: Vec<u32>,
    /// 409 `result_conflict` (another result stored for the session).
    pub result_conflicts: u64,
    /// 409 `session_not_live` (the session had ended: abandoned or cancelled).
    pub results_not_live: u64,
    /// Any other answer, or none after the retries.
    pub results_failed: u64,
    /// Of those, no answer at all: stored or not, nobody knows.
    pub results_unknown: u64,
    /// Game-server calls repeated after a transport error, a 5xx, 408 or 429.
    pub retries: u64,
    /// From the result POST (its first attempt) to the player's `rating_update`.
    pub rating_update_ms: Percentiles,
    /// One per of our players in each result answered 200.
    pub rating_updates_expected: u64,
    pub rating_updates_received: u64,
    pub rating_updates_missing: u64,
    /// Players that stopped waiting for a session's `rating_update`.
    pub rating_update_timeouts: u64,
    /// Sessions our players were told ended `abandoned` / `cancelled`.
    pub sessions_abandoned_seen: u64,
    pub sessions_cancelled_seen: u64,
    /// Session tokens verified offline (`--token-key`), and refused.
    pub token_checks: u64,
    pub token_failures: u64,
    /// Stored games against posted results, per player.
    pub games: GamesCheck,
}

impl Summary {
    /// No errors and no lost `match_found`.
    pub fn is_clean(&self) -> bool {
        self.errors_total == 0 && self.match_found_lost == 0
    }

    /// What makes the run fail: a result lost or applied twice (or players whose games could
    /// not be read back). `None` when the game-server role found nothing wrong or did not run.
    pub fn loop_failure(&self) -> Option<String> {
        let games = &self.game_servers.as_ref()?.games;
        (!games.is_clean()).then(|| {
            format!(
                "{} results lost ({} players), {} doubly applied ({} players), {} players unreadable",
                games.lost,
                games.players_lost,
                games.doubly_applied,
                games.players_doubly_applied,
                games.check_errors
            )
        })
    }

    /// The summary as `--json` asks: pretty JSON, or the text report.
    pub fn render(&self, json: bool) -> String {
        if json {
            serde_json::to_string_pretty(self).expect("a summary always serializes")
        } else {
            self.to_string()
        }
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "loadgen: {} players on {} at {} for {:.1} s",
            self.players, self.queue, self.url, self.elapsed_s
        )?;
        writeln!(
            f,
            "  players connected   {} (peak {} at once)",
            self.players_connected, self.peak_connected
        )?;
        writeln!(
            f,
            "  tickets / matches   {} tickets, {} matches",
            self.tickets_joined, self.matches
        )?;
        writeln!(f, "  time to match       {}", self.time_to_match_ms)?;
        writeln!(f, "  event delivery      {}", self.event_delivery_ms)?;
        writeln!(
            f,
            "  match_found         {} expected, {} received, {} lost",
            self.match_found_expected, self.match_found_received, self.match_found_lost
        )?;
        writeln!(
            f,
            "  events / reconnects {} events, {} reconnects, {} resume gaps",
            self.events_received, self.reconnects, self.resume_gaps
        )?;
        if self.rest_retries + self.failovers > 0 {
            writeln!(
                f,
                "  unavailable nodes   {} REST calls retried, {} moves to another node",
                self.rest_retries, self.failovers
            )?;
        }
        if let Some(limit) = self.nofile_limit {
            writeln!(f, "  open-file limit     {limit}")?;
        }
        if let Some(servers) = &self.game_servers {
            write!(f, "{servers}")?;
        }
        write!(f, "  errors              {}", self.errors_total)?;
        for (kind, count) in &self.errors {
            write!(f, "\n    {count:>8}  {kind}")?;
        }
        if let Some(failure) = self.loop_failure() {
            write!(f, "\n  !!! RESULTS CHECK FAILED: {failure} !!!")?;
        }
        Ok(())
    }
}

impl fmt::Display for GameServerSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "  game servers        {} sessions ({} players arrived), games of {:.1} s ± 50%",
            self.sessions_seen, self.players_arrived, self.play_time_s
        )?;
        writeln!(
            f,
            "  results             {} posted (200) at {:.1}/s (best 10 s of the load: {:.1}/s), {} conflicts, {} not live, {} failed ({} unanswered), {} retries",
            self.results_posted,
            self.results_applied_per_s,
            self.results_applied_peak_10s_per_s,
            self.result_conflicts,
            self.results_not_live,
            self.results_failed,
            self.results_unknown,
            self.retries
        )?;
        writeln!(
            f,
            "  heartbeats          {} ({} failed)",
            self.heartbeats, self.heartbeat_failures
        )?;
        writeln!(f, "  result → rating     {}", self.rating_update_ms)?;
        writeln!(
            f,
            "  rating_update       {} expected, {} received, {} missing, {} timeouts",
            self.rating_updates_expected,
            self.rating_updates_received,
            self.rating_updates_missing,
            self.rating_update_timeouts
        )?;
        writeln!(
            f,
            "  sessions ended      {} abandoned, {} cancelled (seen by players)",
            self.sessions_abandoned_seen, self.sessions_cancelled_seen
        )?;
        writeln!(
            f,
            "  session tokens      {} verified, {} refused",
            self.token_checks, self.token_failures
        )?;
        let games = &self.games;
        writeln!(
            f,
            "  games check         {} players: {} lost, {} doubly applied, {} unreadable, {} ambiguous",
            games.players_checked,
            games.lost,
            games.doubly_applied,
            games.check_errors,
            games.players_ambiguous
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> SummaryHeader {
        SummaryHeader {
            url: "http://127.0.0.1:1".into(),
            queue: "ranked-1v1".into(),
            players: 4,
            elapsed_s: 1.0,
            nofile_limit: Some(1024),
            play_time_s: None,
            deadline: None,
        }
    }

    #[test]
    fn lost_match_found_events_are_counted() {
        let recorder = Recorder::new();
        let [a, b, c, d, stranger] = [(); 5].map(|_| Uuid::new_v4());
        for player in [a, b, c, d] {
            recorder.connected(player, true);
        }
        let [m1, m2, m3, m4] = [(); 4].map(|_| Uuid::new_v4());
        // m1: both told. m2: c told, d never (lost). m3: a's leave lost the race to it, and
        // a's match_found never came (lost). m4: b's partner is not one of ours.
        recorder.match_found(m1, a, vec![a, b]);
        recorder.match_found(m1, b, vec![a, b]);
        recorder.match_found(m2, c, vec![c, d]);
        recorder.matched(m3, a);
        recorder.match_found(m4, b, vec![b, stranger]);
        let summary = recorder.summary(header(), None);
        assert_eq!(summary.matches, 4);
        assert_eq!(summary.match_found_expected, 6);
        assert_eq!(summary.match_found_received, 4);
        assert_eq!(summary.match_found_lost, 2);
        assert!(!summary.is_clean());
    }

    #[test]
    fn percentiles_and_errors_reach_the_summary() {
        let recorder = Recorder::new();
        for ms in 1..=100 {
            recorder.delivery_ms(ms);
        }
        recorder.time_to_match_ms(0);
        recorder.error("join: already_queued");
        recorder.error("join: already_queued");
        recorder.error("ws: closed");
        let summary = recorder.summary(header(), None);
        assert_eq!(summary.event_delivery_ms.count, 100);
        assert_eq!(summary.event_delivery_ms.p50, Some(50));
        assert_eq!(summary.event_delivery_ms.p99, Some(99));
        assert_eq!(summary.time_to_match_ms.max, Some(1));
        assert_eq!(summary.errors_total, 3);
        assert_eq!(summary.errors["join: already_queued"], 2);
        let text = summary.to_string();
        assert!(text.contains("2  join: already_queued"), "{text}");
        let json: serde_json::Value = serde_json::from_str(&summary.render(true)).unwrap();
        assert_eq!(json["event_delivery_ms"]["p99"], 99);
        assert_eq!(json["errors"]["ws: closed"], 1);
    }

    #[test]
    fn the_games_check_finds_lost_and_doubly_applied_results() {
        let posted = |applied, unknown| PostedGames { applied, unknown };
        let mut check = GamesCheck::default();
        check.add(3, posted(3, 0)); // as posted
        check.add(1, posted(3, 0)); // two lost
        check.add(4, posted(3, 0)); // one applied twice
        check.add(4, posted(3, 1)); // the unanswered one was stored: fine
        check.add(3, posted(3, 1)); // ... or not: fine
        assert_eq!(check.players_checked, 5);
        assert_eq!((check.lost, check.players_lost), (2, 1));
        assert_eq!((check.doubly_applied, check.players_doubly_applied), (1, 1));
        assert_eq!(check.players_ambiguous, 2);
        assert!(!check.is_clean());
        let mut clean = GamesCheck::default();
        clean.add(0, posted(0, 0));
        assert!(clean.is_clean());
    }

    #[test]
    fn results_and_rating_updates_reach_the_summary() {
        let recorder = Recorder::new();
        let [a, b, c, d] = [(); 4].map(|_| Uuid::new_v4());
        for player in [a, b, c, d] {
            recorder.connected(player, true);
        }
        let [s1, s2, s3] = [(); 3].map(|_| Uuid::new_v4());
        let fleet = &recorder.fleet;
        fleet.posting(s1, &[a, b]);
        fleet.posting(s1, &[a, b]); // a retry keeps the first instant
        fleet.results_posted.fetch_add(1, Ordering::Relaxed);
        fleet.posted(s1, PostOutcome::Applied);
        fleet.posting(s2, &[c, d]);
        fleet.posted(s2, PostOutcome::Unknown);
        fleet.posting(s3, &[a, c]);
        fleet.posted(s3, PostOutcome::Refused);
        assert!(fleet.rating_update(s1, a));
        assert!(fleet.rating_update(s1, a), "counted once");
        assert!(!fleet.rating_update(Uuid::new_v4(), a), "not ours");
        let games = recorder.posted_games();
        assert_eq!(
            games[&a],
            PostedGames {
                applied: 1,
                unknown: 0
            }
        );
        assert_eq!(
            games[&c],
            PostedGames {
                applied: 0,
                unknown: 1
            }
        );
        let header = SummaryHeader {
            play_time_s: Some(5.0),
            ..header()
        };
        let mut check = GamesCheck::default();
        check.add(0, games[&b]);
        let summary = recorder.summary(header, Some(check));
        let servers = summary.game_servers.as_ref().unwrap();
        assert_eq!(servers.results_posted, 1);
        assert_eq!(servers.rating_updates_expected, 2);
        assert_eq!(servers.rating_updates_received, 1);
        assert_eq!(servers.rating_updates_missing, 1);
        assert_eq!(servers.rating_update_ms.count, 1);
        assert_eq!(servers.games.lost, 1);
        let failure = summary.loop_failure().expect("a lost result fails the run");
        assert!(failure.contains("1 results lost"), "{failure}");
        let text = summary.to_string();
        assert!(text.contains("RESULTS CHECK FAILED"), "{text}");
        let json: serde_json::Value = serde_json::from_str(&summary.render(true)).unwrap();
        assert_eq!(json["game_servers"]["games"]["lost"], 1);
        assert!(
            recorder
                .summary(self::header(), None)
                .game_servers
                .is_none()
        );
    }

    #[test]
    fn the_peak_rate_is_the_best_window() {
        assert_eq!(peak_rate(&[], 10), 0.0);
        assert_eq!(peak_rate(&[4, 2], 10), 3.0);
        let mut seconds = vec![1; 30];
        seconds[12..22].fill(7);
        assert_eq!(peak_rate(&seconds, 10), 7.0);
    }
}
