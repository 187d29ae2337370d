//! Scenario files: what traffic to generate and which queue to run it through.
//!
//! Every key but `[queue] teams/team_size` has a default; unknown keys are accepted (a
//! scenario may carry notes for humans) and listed as warnings in the text report, so a typo
//! does not go unnoticed. Values are checked in [`Scenario::validate`]; errors name the key.
//! `scenarios/README.md` documents every key.

use std::collections::BTreeMap;

use serde::Deserialize;
use versus_core::matchmaking::{PartyAggregation, QueueConfig, Schedule};
use versus_core::rating::RatingConfig;

use crate::SimError;

/// A widening step: `[after_s, value]` or `{ after_s = .., window = .. }` (also `extra_ms`).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum StepSpec {
    Pair(f64, f64),
    Table {
        #[serde(
            alias = "after_seconds",
            alias = "after",
            alias = "seconds",
            alias = "at_s",
            alias = "wait_s"
        )]
        after_s: f64,
        #[serde(
            alias = "window",
            alias = "rating_window",
            alias = "extra_ms",
            alias = "extra",
            alias = "ms"
        )]
        value: f64,
    },
}

impl StepSpec {
    /// (whole seconds, value), or `None` for a negative or non-finite time.
    fn pair(&self) -> Option<(u32, f64)> {
        let (a, v) = match *self {
            Self::Pair(a, v) => (a, v),
            Self::Table { after_s, value } => (after_s, value),
        };
        (a.is_finite() && a >= 0.0 && a < f64::from(u32::MAX)).then(|| (a.round() as u32, v))
    }
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default)]
pub struct QueueSpec {
    pub teams: usize,
    pub team_size: usize,
    /// `elo`, `glicko2`, `weng_lin` (alias `openskill`), `trueskill`. Default: glicko2 for 1v1,
    /// weng_lin otherwise (run on the `[skill]` scale).
    #[serde(alias = "rating")]
    pub rating_system: Option<String>,
    #[serde(
        alias = "widening",
        alias = "rating_windows",
        alias = "mmr_widening",
        alias = "window_schedule"
    )]
    pub rating_widening: Option<Vec<StepSpec>>,
    #[serde(alias = "latency_steps", alias = "latency_schedule")]
    pub latency_widening: Option<Vec<StepSpec>>,
    #[serde(alias = "latency_budget", alias = "max_latency_ms")]
    pub latency_budget_ms: u32,
    pub recent_opponent_memory: usize,
    /// Negative or absent: default 60; 0 relaxes immediately.
    pub rematch_relax_after_s: Option<u32>,
    pub max_party_size: Option<usize>,
    /// `average`, `max`, or `weighted` (with `party_weight`).
    pub party_aggregation: String,
    pub party_weight: f64,
    pub max_wait_s: Option<u32>,
    pub scan_limit: Option<usize>,
}

impl Default for QueueSpec {
    fn default() -> Self {
        Self {
            teams: 0,
            team_size: 0,
            rating_system: None,
            rating_widening: None,
            latency_widening: None,
            latency_budget_ms: 100,
            recent_opponent_memory: 3,
            rematch_relax_after_s: None,
            max_party_size: None,
            party_aggregation: "weighted".into(),
            party_weight: 0.5,
            max_wait_s: None,
            scan_limit: None,
        }
    }
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default)]
pub struct SkillSpec {
    pub mean: f64,
    pub sd: f64,
    /// Rating uncertainty (RD / sigma) every simulated player carries. Default: sd / 6.
    pub deviation: Option<f64>,
}

impl Default for SkillSpec {
    fn default() -> Self {
        Self {
            mean: 1500.0,
            sd: 300.0,
            deviation: None,
        }
    }
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default)]
pub struct RegionSpec {
    pub name: String,
    /// Relative weight of players homed here.
    pub share: f64,
    pub latency_ms_min: u32,
    pub latency_ms_max: u32,
    /// Extra latency a player homed here has to any other region. Default: the top-level
    /// `cross_region_extra_ms`.
    pub cross_region_extra_ms: Option<u32>,
}

impl Default for RegionSpec {
    fn default() -> Self {
        Self {
            name: "default".into(),
            share: 1.0,
            latency_ms_min: 20,
            latency_ms_max: 60,
            cross_region_extra_ms: None,
        }
    }
}

/// A change of arrival rate at `at_s` (e.g. a rush-hour spike).
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct RatePhase {
    pub at_s: u32,
    pub arrivals_per_s: f64,
}

/// A simulation scenario, as read from TOML.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default)]
pub struct Scenario {
    pub name: Option<String>,
    pub description: Option<String>,
    pub seed: u64,
    pub duration_s: u32,
    pub tick_ms: u64,
    /// Tickets per second (a party is one arrival), Poisson.
    pub arrivals_per_s: f64,
    /// Overrides of the arrival rate from a given second on.
    pub arrival_phases: Vec<RatePhase>,
    /// Weights of party sizes 1..=N.
    pub party_sizes: Vec<f64>,
    pub queue: QueueSpec,
    pub skill: SkillSpec,
    pub regions: Vec<RegionSpec>,
    /// Default extra latency to a region other than one's home.
    pub cross_region_extra_ms: u32,
    /// Distinct players; each arrival draws idle ones (so players requeue and meet again).
    /// Absent: every arrival brings new players.
    pub population: Option<usize>,
    /// How long a matched player is busy before they may queue again (with `population`).
    pub match_duration_s: u32,
    /// Standard deviation of a party member's skill around the party leader's (friends play
    /// at similar levels). Default: `skill.sd / 4`. Population mode ignores it.
    pub party_skill_spread: Option<f64>,
    /// Keep ticking this long after arrivals stop, so late tickets get their chance.
    pub drain_s: u32,
    /// Share of formed matches (0 to 1) in which one player leaves `backfill_after_s` after the
    /// start; the match then asks the queue for a replacement (a backfill request). 0: never,
    /// and the queue's backfill is off.
    pub backfill_share: f64,
    pub backfill_after_s: u32,
    #[serde(flatten)]
    pub unknown: BTreeMap<String, toml::Value>,
}

impl Default for Scenario {
    fn default() -> Self {
        Self {
            name: None,
            description: None,
            seed: 1,
            duration_s: 600,
            tick_ms: 1000,
            arrivals_per_s: 10.0,
            arrival_phases: Vec::new(),
            party_sizes: vec![1.0],
            queue: QueueSpec::default(),
            skill: SkillSpec::default(),
            regions: Vec::new(),
            cross_region_extra_ms: 80,
            population: None,
            match_duration_s: 300,
            drain_s: 0,
            party_skill_spread: None,
            backfill_share: 0.0,
            backfill_after_s: 30,
            unknown: BTreeMap::new(),
        }
    }
}

fn invalid(key: &str, why: impl Into<String>) -> SimError {
    SimError::Invalid {
        key: key.to_owned(),
        why: why.into(),
    }
}

impl Scenario {
    pub fn from_toml(text: &str) -> Result<Self, SimError> {
        let s: Scenario = toml::from_str(text).map_err(|e| SimError::Parse(e.to_string()))?;
        s.validate()?;
        Ok(s)
    }

    /// The regions, with a single default region if none are given.
    pub fn regions(&self) -> Vec<RegionSpec> {
        if self.regions.is_empty() {
            vec![RegionSpec::default()]
        } else {
            self.regions.clone()
        }
    }

    pub fn deviation(&self) -> f64 {
        self.skill.deviation.unwrap_or(self.skill.sd / 6.0)
    }

    pub fn party_skill_spread(&self) -> f64 {
        self.party_skill_spread.unwrap_or(self.skill.sd / 4.0)
    }

    pub fn max_party(&self) -> usize {
        self.queue
            .max_party_size
            .unwrap_or(self.party_sizes.len().min(self.queue.team_size))
            .max(1)
    }

    /// Checks every value; the error names the key.
    pub fn validate(&self) -> Result<(), SimError> {
        let q = &self.queue;
        if q.teams < 2 {
            return Err(invalid("queue.teams", "must be given and at least 2"));
        }
        if q.team_size < 1 {
            return Err(invalid("queue.team_size", "must be given and at least 1"));
        }
        if self.duration_s == 0 {
            return Err(invalid("duration_s", "must be positive"));
        }
        if self.tick_ms == 0 {
            return Err(invalid("tick_ms", "must be positive"));
        }
        if !(self.arrivals_per_s.is_finite() && self.arrivals_per_s >= 0.0) {
            return Err(invalid("arrivals_per_s", "must be a number >= 0"));
        }
        for p in &self.arrival_phases {
            if !(p.arrivals_per_s.is_finite() && p.arrivals_per_s >= 0.0) {
                return Err(invalid(
                    "arrival_phases.arrivals_per_s",
                    "must be a number >= 0",
                ));
            }
        }
        if self.party_sizes.is_empty()
            || self
                .party_sizes
                .iter()
                .any(|w| !(w.is_finite() && *w >= 0.0))
            || self.party_sizes.iter().sum::<f64>() <= 0.0
        {
            return Err(invalid(
                "party_sizes",
                "must be non-negative weights for sizes 1..N, not all zero",
            ));
        }
        if self.party_sizes.len() > q.team_size
            && self.party_sizes[q.team_size..].iter().any(|&w| w > 0.0)
        {
            return Err(invalid(
                "party_sizes",
                format!(
                    "gives weight to parties larger than queue.team_size ({})",
                    q.team_size
                ),
            ));
        }
        if !(self.skill.mean.is_finite()) {
            return Err(invalid("skill.mean", "must be a number"));
        }
        if !(self.skill.sd.is_finite() && self.skill.sd > 0.0) {
            return Err(invalid("skill.sd", "must be a positive number"));
        }
        if let Some(d) = self.skill.deviation
            && !(d.is_finite() && d > 0.0)
        {
            return Err(invalid("skill.deviation", "must be a positive number"));
        }
        if let Some(s) = self.party_skill_spread
            && !(s.is_finite() && s >= 0.0)
        {
            return Err(invalid("party_skill_spread", "must be a number >= 0"));
        }
        if !(0.0..=1.0).contains(&self.backfill_share) {
            return Err(invalid("backfill_share", "must be between 0 and 1"));
        }
        if self.backfill_after_s == 0 {
            return Err(invalid("backfill_after_s", "must be at least 1"));
        }
        let regions = self.regions();
        if regions.len() > 64 {
            return Err(invalid("regions", "at most 64 regions"));
        }
        if regions.iter().map(|r| r.share).sum::<f64>() <= 0.0
            || regions
                .iter()
                .any(|r| !(r.share.is_finite() && r.share >= 0.0))
        {
            return Err(invalid(
                "regions.share",
                "shares must be >= 0 and not all zero",
            ));
        }
        for r in &regions {
            if r.latency_ms_min > r.latency_ms_max {
                return Err(invalid(
                    "regions.latency_ms_min",
                    format!("{}: latency_ms_min exceeds latency_ms_max", r.name),
                ));
            }
        }
        if let Some(p) = self.population
            && p < q.teams * q.team_size
        {
            return Err(invalid(
                "population",
                "must hold at least one match worth of players",
            ));
        }
        // Let the queue config validate itself, then re-key its error.
        versus_core::matchmaking::Matchmaker::new(self.queue_config()?).map_err(|e| match e {
            versus_core::matchmaking::ConfigError::Invalid { key, why } => {
                invalid(&format!("queue.{key}"), why)
            }
        })?;
        Ok(())
    }

    /// The matchmaker configuration this scenario runs.
    pub fn queue_config(&self) -> Result<QueueConfig, SimError> {
        let q = &self.queue;
        let mut c = QueueConfig::new(q.teams.max(2), q.team_size.max(1));
        let (mean, sd) = (self.skill.mean, self.skill.sd);
        c.rating = match q.rating_system.as_deref() {
            None => {
                if q.teams == 2 && q.team_size == 1 {
                    RatingConfig::glicko2()
                } else {
                    RatingConfig::weng_lin_scaled(mean, sd)
                }
            }
            Some("elo") => RatingConfig::Elo {
                k: 32.0,
                initial_rating: mean,
            },
            Some("glicko2" | "glicko-2") => RatingConfig::glicko2(),
            Some("weng_lin" | "weng-lin" | "openskill") => RatingConfig::weng_lin_scaled(mean, sd),
            Some("trueskill") => RatingConfig::TrueSkill {
                beta: sd / 2.0,
                initial_rating: mean,
                initial_deviation: sd,
                draw_probability: 0.1,
                dynamics: sd / 100.0,
            },
            Some(other) => {
                return Err(invalid(
                    "queue.rating_system",
                    format!("unknown system {other:?} (elo, glicko2, weng_lin, trueskill)"),
                ));
            }
        };
        c.regions = self.regions().iter().map(|r| r.name.clone()).collect();
        c.latency_budget_ms = q.latency_budget_ms;
        let steps = |key: &str, s: &Option<Vec<StepSpec>>, default: Vec<(u32, f64)>| match s {
            Some(v) => v
                .iter()
                .map(StepSpec::pair)
                .collect::<Option<Vec<_>>>()
                .map(Schedule::new)
                .ok_or_else(|| invalid(key, "step times must be seconds >= 0")),
            None => Ok(Schedule::new(default)),
        };
        // Default windows in units of the skill spread: 1v1 starts narrow (fair), team queues
        // wider (ten players must agree).
        let solo = q.team_size == 1 && q.teams == 2;
        let w = |f: f64| f * sd;
        c.rating_widening = steps(
            "queue.rating_widening",
            &q.rating_widening,
            if solo {
                vec![
                    (0, w(0.1)),
                    (5, w(0.2)),
                    (10, w(0.35)),
                    (20, w(0.6)),
                    (40, w(1.0)),
                    (90, w(2.0)),
                ]
            } else {
                vec![
                    (0, w(0.25)),
                    (3, w(0.4)),
                    (6, w(0.6)),
                    (10, w(0.9)),
                    (20, w(1.3)),
                    (40, w(2.0)),
                    (90, w(3.0)),
                ]
            },
        )?;
        // Latency is the last thing to give up: only after a minute, and modestly.
        c.latency_widening = steps(
            "queue.latency_widening",
            &q.latency_widening,
            vec![(0, 0.0), (60, 40.0), (120, 80.0)],
        )?;
        c.recent_opponent_memory = q.recent_opponent_memory;
        c.rematch_relax_after_s = Some(q.rematch_relax_after_s.unwrap_or(60));
        c.max_party_size = self.max_party().min(c.team_size);
        c.party_aggregation = match q.party_aggregation.as_str() {
            "average" | "avg" | "mean" => PartyAggregation::Average,
            "max" => PartyAggregation::Max,
            "weighted" | "weighted_toward_max" => {
                PartyAggregation::WeightedTowardMax(q.party_weight)
            }
            other => {
                return Err(invalid(
                    "queue.party_aggregation",
                    format!("unknown {other:?} (average, max, weighted)"),
                ));
            }
        };
        c.backfill = self.backfill_share > 0.0;
        c.max_wait_s = q.max_wait_s;
        if let Some(s) = q.scan_limit {
            c.scan_limit = s;
        }
        Ok(c)
    }

    /// Arrival rate in force at second `t`.
    pub fn rate_at(&self, t_s: f64) -> f64 {
        let mut rate = self.arrivals_per_s;
        let mut phases = self.arrival_phases.clone();
        phases.sort_by_key(|p| p.at_s);
        for p in phases {
            if f64::from(p.at_s) <= t_s {
                rate = p.arrivals_per_s;
            }
        }
        rate
    }
}
