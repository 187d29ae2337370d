//! Queue configuration: the shape of a match and the rules a match must satisfy. Built once and
//! validated by [`QueueConfig::validate`] (through `Matchmaker::new`); every error names the key.

use crate::rating::RatingConfig;

/// How a party's members' ratings become the one rating its ticket is matched on.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum PartyAggregation {
    /// Arithmetic mean.
    Average,
    /// The strongest member (discourages boosting a weak friend).
    Max,
    /// `(1 − w)·average + w·max`, `w` in [0, 1].
    WeightedTowardMax(f64),
}

impl PartyAggregation {
    pub fn aggregate(self, ratings: impl Iterator<Item = f64> + Clone) -> f64 {
        let (sum, n, max) = ratings.fold((0.0, 0usize, f64::NEG_INFINITY), |(s, n, m), r| {
            (s + r, n + 1, m.max(r))
        });
        if n == 0 {
            return 0.0;
        }
        let avg = sum / n as f64;
        match self {
            Self::Average => avg,
            Self::Max => max,
            Self::WeightedTowardMax(w) => (1.0 - w) * avg + w * max,
        }
    }
}

/// One widening step: from `after_s` seconds of waiting, the value is `value`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Step {
    pub after_s: u32,
    pub value: f64,
}

/// A step function of wait time. The first step must start at 0 s; steps strictly increase in
/// time and never decrease in value. The last step holds forever (a finite schedule).
#[derive(Clone, Debug, PartialEq)]
pub struct Schedule(Vec<Step>);

impl Schedule {
    pub fn new(steps: Vec<(u32, f64)>) -> Self {
        Self(
            steps
                .into_iter()
                .map(|(after_s, value)| Step { after_s, value })
                .collect(),
        )
    }
    pub fn constant(value: f64) -> Self {
        Self(vec![Step { after_s: 0, value }])
    }
    pub fn steps(&self) -> &[Step] {
        &self.0
    }
    /// Value after waiting `waited_ms`.
    pub fn at(&self, waited_ms: u64) -> f64 {
        let waited_s = waited_ms / 1000;
        let mut value = self.0[0].value;
        for s in &self.0[1..] {
            if u64::from(s.after_s) <= waited_s {
                value = s.value;
            } else {
                break;
            }
        }
        value
    }
    /// The value the schedule ends on.
    pub fn last(&self) -> f64 {
        self.0.last().map_or(0.0, |s| s.value)
    }
    fn validate(&self, key: &'static str) -> Result<(), ConfigError> {
        self.validate_steps(key, false)
    }
    /// As [`Self::validate`], but values never *grow* with wait and lie in [0, 1] (a floor that
    /// relaxes, such as `min_quality`).
    fn validate_falling(&self, key: &'static str) -> Result<(), ConfigError> {
        self.validate_steps(key, true)?;
        if self.0.iter().any(|s| s.value > 1.0) {
            return Err(ConfigError::Invalid {
                key,
                why: "values must be in [0, 1]",
            });
        }
        Ok(())
    }
    fn validate_steps(&self, key: &'static str, falling: bool) -> Result<(), ConfigError> {
        let bad = |why: &'static str| Err(ConfigError::Invalid { key, why });
        let Some(first) = self.0.first() else {
            return bad("needs at least one step");
        };
        if first.after_s != 0 {
            return bad("the first step must start at 0 seconds");
        }
        for w in self.0.windows(2) {
            if w[1].after_s <= w[0].after_s {
                return bad("steps must be in strictly increasing time order (in whole seconds)");
            }
            if !falling && w[1].value < w[0].value {
                return bad("values must never shrink with wait");
            }
            if falling && w[1].value > w[0].value {
                return bad("values must never grow with wait");
            }
        }
        if self
            .0
            .iter()
            .any(|s| !(s.value.is_finite() && s.value >= 0.0))
        {
            return bad("values must be finite and >= 0");
        }
        Ok(())
    }
}

/// Everything that defines a queue's matches.
#[derive(Clone, Debug, PartialEq)]
pub struct QueueConfig {
    /// Number of teams (2 for 1v1 and 5v5; 8 for a free-for-all of 8).
    pub teams: usize,
    /// Players per team (1 for 1v1 and free-for-all).
    pub team_size: usize,
    pub rating: RatingConfig,
    /// Region names; a ticket gives its latency to each, in this order.
    pub regions: Vec<String>,
    /// A player may be placed in a region whose latency is at most this (plus widening).
    pub latency_budget_ms: u32,
    /// Extra latency allowed after waiting (`(after_s, extra_ms)`), starts at `(0, 0)`.
    pub latency_widening: Schedule,
    /// Acceptable rating distance (`(after_s, window)`): two tickets may meet when their
    /// ratings differ by at most the smaller of their two windows.
    pub rating_widening: Schedule,
    /// Least match quality (`1 − (max P − min P)` of the predicted outcome) a new match must
    /// reach, by the wait of its oldest ticket (`(after_s, min_quality)`, never growing): a group
    /// of tickets that fits every window but whose best split into teams is unfair (parties
    /// kept whole force some splits) is passed over while the oldest ticket can still afford to
    /// wait for a fairer one. `Schedule::constant(0.0)` disables it. Two-player matches are
    /// bounded by the rating window alone, backfills by the window against the match.
    pub min_quality: Schedule,
    /// How many past matches of each player count as "recent" (0 disables the rule).
    pub recent_opponent_memory: usize,
    /// After this wait the recent-opponent rule no longer binds a ticket (`None`: never relaxes).
    pub rematch_relax_after_s: Option<u32>,
    /// Largest party that may queue (≤ team_size).
    pub max_party_size: usize,
    pub party_aggregation: PartyAggregation,
    /// Whether running matches may post backfill requests.
    pub backfill: bool,
    /// Tickets (and backfill requests) waiting this long are expired by the tick
    /// (`None`: never; the caller may still cancel).
    pub max_wait_s: Option<u32>,
    /// Most candidates one ticket examines per tick (bounds the work per ticket).
    pub scan_limit: usize,
}

impl QueueConfig {
    /// Sensible defaults for a queue shape: one region "default", 100 ms budget, Elo-like
    /// windows (50 → 400 over 60 s), a quality floor relaxing 0.9 → 0 over 60 s, 3 matches of rematch memory relaxing after 60 s.
    pub fn new(teams: usize, team_size: usize) -> Self {
        Self {
            teams,
            team_size,
            rating: RatingConfig::default_for(teams, team_size),
            regions: vec!["default".to_owned()],
            latency_budget_ms: 100,
            latency_widening: Schedule::new(vec![(0, 0.0), (30, 30.0), (60, 60.0)]),
            rating_widening: Schedule::new(vec![
                (0, 50.0),
                (5, 100.0),
                (15, 200.0),
                (30, 300.0),
                (60, 400.0),
            ]),
            // 5v5 with parties: mean quality 0.81 → 0.91–0.94 at a median wait of 2–7 s
            // (BENCHMARKS.md); no effect on two-player queues.
            min_quality: Schedule::new(vec![(0, 0.9), (10, 0.8), (20, 0.7), (30, 0.5), (60, 0.0)]),
            recent_opponent_memory: 3,
            rematch_relax_after_s: Some(60),
            max_party_size: team_size,
            party_aggregation: PartyAggregation::WeightedTowardMax(0.5),
            backfill: true,
            max_wait_s: None,
            scan_limit: 512,
        }
    }

    /// Players in one match.
    pub fn players_per_match(&self) -> usize {
        self.teams * self.team_size
    }

    /// Latency budget (ms) after waiting `waited_s` whole seconds.
    pub fn latency_budget_at(&self, waited_s: u64) -> u64 {
        // Saturating: a schedule's extra is any finite value, and `as` saturates it to u64.
        u64::from(self.latency_budget_ms)
            .saturating_add(self.latency_widening.at(waited_s.saturating_mul(1000)) as u64)
    }

    /// The distinct latency budgets the widening schedule steps through, in order.
    pub(crate) fn latency_budgets(&self) -> Vec<u64> {
        let mut budgets: Vec<u64> = (self.latency_widening.steps().iter())
            .map(|st| self.latency_budget_at(u64::from(st.after_s)))
            .collect();
        budgets.dedup();
        budgets
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &'static str, why: &'static str| Err(ConfigError::Invalid { key, why });
        if self.teams < 2 {
            return bad("teams", "must be at least 2");
        }
        if self.team_size < 1 {
            return bad("team_size", "must be at least 1");
        }
        if self.players_per_match() > 64 {
            return bad("team_size", "teams × team_size must be at most 64");
        }
        if self.regions.is_empty() || self.regions.len() > 64 {
            return bad("regions", "must list 1 to 64 regions");
        }
        self.latency_widening.validate("latency_widening")?;
        self.rating_widening.validate("rating_widening")?;
        self.min_quality.validate_falling("min_quality")?;
        if self.max_party_size < 1 || self.max_party_size > self.team_size {
            return bad("max_party_size", "must be between 1 and team_size");
        }
        if let PartyAggregation::WeightedTowardMax(w) = self.party_aggregation
            && !(0.0..=1.0).contains(&w)
        {
            return bad("party_aggregation", "weight must be in [0, 1]");
        }
        if self.scan_limit < self.players_per_match() {
            return bad("scan_limit", "must be at least teams × team_size");
        }
        if let Some(0) = self.max_wait_s {
            return bad("max_wait_s", "must be positive when set");
        }
        self.rating.validate().map_err(|_| ConfigError::Invalid {
            key: "rating",
            why: "invalid rating system parameters",
        })?;
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("queue config `{key}`: {why}")]
    Invalid {
        key: &'static str,
        why: &'static str,
    },
}
