//! The simulation report. JSON keys are exactly the issue's; the fields marked `skip` only
//! appear in the text form.

use std::fmt;

use serde::Serialize;

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Report {
    /// Tickets that arrived (a party is one ticket).
    pub tickets: u64,
    /// Players on those tickets.
    pub players: u64,
    pub matches: u64,
    /// Tickets never matched (still waiting at the end, or expired).
    pub unmatched: u64,
    /// Time-to-match percentiles over matched tickets, seconds.
    pub ttm_p50_s: f64,
    pub ttm_p95_s: f64,
    pub ttm_max_s: f64,
    /// Per match: highest minus lowest team *average* rating (for 1v1, the rating gap).
    pub mean_team_rating_gap: f64,
    pub p95_team_rating_gap: f64,
    /// Mean of the matchmaker's quality score (fairness of the predicted outcome).
    pub mean_quality: f64,
    /// Matched players whose latency to the match's region is within the base budget (no
    /// widening), percent.
    pub pct_within_latency_budget: f64,
    /// Wall-clock cost of `tick`, milliseconds.
    pub tick_p50_ms: f64,
    pub tick_p99_ms: f64,
    /// Constraint breaches found by the independent checker.
    pub violations: u64,
    #[serde(skip)]
    pub name: String,
    #[serde(skip)]
    pub expired: u64,
    #[serde(skip)]
    pub still_waiting: u64,
    #[serde(skip)]
    pub ticks: u64,
    #[serde(skip)]
    pub violation_details: Vec<String>,
    #[serde(skip)]
    pub warnings: Vec<String>,
    /// Players who left running matches (`backfill_share`), each a backfill request.
    #[serde(skip)]
    pub backfills_requested: u64,
    #[serde(skip)]
    pub backfills_filled: u64,
    #[serde(skip)]
    pub backfills_expired: u64,
    /// Requests withdrawn because their match ended first (with a population).
    #[serde(skip)]
    pub backfills_withdrawn: u64,
    /// Seconds from a request to its replacement, median.
    #[serde(skip)]
    pub backfill_wait_p50_s: f64,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let title = if self.name.is_empty() {
            "scenario"
        } else {
            &self.name
        };
        writeln!(f, "Versus matchmaking simulation: {title}")?;
        writeln!(
            f,
            "  traffic      {} tickets, {} players over {} ticks",
            self.tickets, self.players, self.ticks
        )?;
        writeln!(
            f,
            "  outcome      {} matches, {} tickets unmatched ({} still waiting, {} expired)",
            self.matches, self.unmatched, self.still_waiting, self.expired
        )?;
        writeln!(
            f,
            "  time to match  p50 {:.1} s   p95 {:.1} s   max {:.1} s",
            self.ttm_p50_s, self.ttm_p95_s, self.ttm_max_s
        )?;
        writeln!(
            f,
            "  fairness     team rating gap mean {:.1}, p95 {:.1}; mean quality {:.3}",
            self.mean_team_rating_gap, self.p95_team_rating_gap, self.mean_quality
        )?;
        writeln!(
            f,
            "  latency      {:.1}% of matched players within the base budget",
            self.pct_within_latency_budget
        )?;
        writeln!(
            f,
            "  tick cost    p50 {:.3} ms   p99 {:.3} ms",
            self.tick_p50_ms, self.tick_p99_ms
        )?;
        if self.backfills_requested > 0 {
            writeln!(
                f,
                "  backfill     {} players left running matches: {} replaced (median wait {:.1} s), {} expired, {} withdrawn (match over)",
                self.backfills_requested,
                self.backfills_filled,
                self.backfill_wait_p50_s,
                self.backfills_expired,
                self.backfills_withdrawn
            )?;
        }
        writeln!(f, "  violations   {}", self.violations)?;
        for d in &self.violation_details {
            writeln!(f, "    - {d}")?;
        }
        for w in &self.warnings {
            writeln!(f, "  warning: {w}")?;
        }
        Ok(())
    }
}
