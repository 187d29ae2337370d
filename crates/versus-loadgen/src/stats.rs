//! What the simulated players observed, shared among them while they run, and the summary
//! built from it at the end.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use hdrhistogram::Histogram;
use serde::Serialize;
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
    pub errors_total: AtomicU64,
    errors: Mutex<BTreeMap<String, u64>>,
    /// Milliseconds from the join request to `match_found`.
    time_to_match: Mutex<Histogram<u64>>,
    /// Milliseconds from the envelope's `ts` to its receipt.
    delivery: Mutex<Histogram<u64>>,
    matches: Mutex<MatchLedger>,
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
            errors_total: AtomicU64::new(0),
            errors: Mutex::new(BTreeMap::new()),
            time_to_match: Mutex::new(histogram()),
            delivery: Mutex::new(histogram()),
            matches: Mutex::new(MatchLedger::default()),
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

    pub fn summary(&self, header: SummaryHeader) -> Summary {
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
            errors_total: load(&self.errors_total),
            errors: self.errors.lock().expect("poisoned").clone(),
        }
    }
}

/// The run's parameters, for the summary.
pub(crate) struct SummaryHeader {
    pub url: String,
    pub queue: String,
    pub players: u32,
    pub elapsed_s: f64,
    pub nofile_limit: Option<u64>,
}

/// Distribution of one measurement, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Percentiles {
    pub count: u64,
    pub p50: Option<u64>,
    pub p99: Option<u64>,
    pub max: Option<u64>,
}

impl Percentiles {
    fn of(histogram: &Histogram<u64>) -> Self {
        if histogram.is_empty() {
            return Self {
                count: 0,
                p50: None,
                p99: None,
                max: None,
            };
        }
        Self {
            count: histogram.len(),
            p50: Some(histogram.value_at_quantile(0.50)),
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
            "p50 {}, p99 {}, max {} (n = {})",
            ms(self.p50),
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
    pub errors_total: u64,
    /// Errors by kind, e.g. `join: already_queued`, `ws: closed`.
    pub errors: BTreeMap<String, u64>,
}

impl Summary {
    /// No errors and no lost `match_found`.
    pub fn is_clean(&self) -> bool {
        self.errors_total == 0 && self.match_found_lost == 0
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
        if let Some(limit) = self.nofile_limit {
            writeln!(f, "  open-file limit     {limit}")?;
        }
        write!(f, "  errors              {}", self.errors_total)?;
        for (kind, count) in &self.errors {
            write!(f, "\n    {count:>8}  {kind}")?;
        }
        Ok(())
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
        let summary = recorder.summary(header());
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
        let summary = recorder.summary(header());
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
}
