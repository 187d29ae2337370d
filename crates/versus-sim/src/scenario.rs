//! Scenario files: what traffic to generate and which queue to run it through.
//!
//! Every key but `[queue] teams/team_size` has a default; unknown keys are accepted (a
//! scenario may carry notes for humans) and listed as warnings in the text report, so a typo
//! does not go unnoticed. Values are checked in [`Scenario::validate`]; errors name the key.
//! `scenarios/README.md` documents every key.

use std::collections::BTreeMap;

use serde::Deserialize;
pub use versus_config::{QueueSpec, StepSpec};
use versus_core::matchmaking::QueueConfig;

use crate::SimError;

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
    /// The queue the traffic runs through: the same table as a `[[queues]]` entry of
    /// `versus.toml`, with the same defaults. Absent: the run must be given one
    /// ([`Scenario::serve_queue`], `versus sim --config … --queue …`).
    pub queue: Option<QueueSpec>,
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
            queue: None,
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
    /// Parses and validates.
    pub fn from_toml(text: &str) -> Result<Self, SimError> {
        let s = Self::parse(text)?;
        s.validate()?;
        Ok(s)
    }

    /// Parses only (see [`Self::serve_queue`]).
    pub fn parse(text: &str) -> Result<Self, SimError> {
        toml::from_str(text).map_err(|e| SimError::Parse(e.to_string()))
    }

    /// Where players live: the `[[regions]]` given, or one region per queue region with equal
    /// shares and the default latencies.
    pub fn regions(&self, queue: &QueueConfig) -> Vec<RegionSpec> {
        if !self.regions.is_empty() {
            return self.regions.clone();
        }
        (queue.regions.iter())
            .map(|name| RegionSpec {
                name: name.clone(),
                ..RegionSpec::default()
            })
            .collect()
    }

    pub fn deviation(&self) -> f64 {
        self.skill.deviation.unwrap_or(self.skill.sd / 6.0)
    }

    pub fn party_skill_spread(&self) -> f64 {
        self.party_skill_spread.unwrap_or(self.skill.sd / 4.0)
    }

    /// Runs this traffic through `queue` (e.g. a queue of `versus.toml`) ticking every
    /// `tick_ms`, as the server would serve it, instead of the scenario's own `[queue]`.
    pub fn serve_queue(&mut self, queue: QueueSpec, tick_ms: u64) -> Result<(), SimError> {
        self.queue = Some(queue);
        self.tick_ms = tick_ms;
        self.validate()
    }

    /// Checks every value; the error names the key.
    pub fn validate(&self) -> Result<(), SimError> {
        let config = self.queue_config()?;
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
        if self.party_sizes.len() > config.max_party_size
            && self.party_sizes[config.max_party_size..]
                .iter()
                .any(|&w| w > 0.0)
        {
            return Err(invalid(
                "party_sizes",
                format!(
                    "gives weight to parties larger than the queue allows ({})",
                    config.max_party_size
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
        if self.backfill_share > 0.0 && !config.backfill {
            return Err(invalid(
                "backfill_share",
                "players leaving running matches need a queue with backfill = true",
            ));
        }
        if self.backfill_after_s == 0 {
            return Err(invalid("backfill_after_s", "must be at least 1"));
        }
        let regions = self.regions(&config);
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
        for (i, r) in regions.iter().enumerate() {
            if r.latency_ms_min > r.latency_ms_max {
                return Err(invalid(
                    "regions.latency_ms_min",
                    format!("{}: latency_ms_min exceeds latency_ms_max", r.name),
                ));
            }
            if !config.regions.contains(&r.name) || regions[..i].iter().any(|o| o.name == r.name) {
                return Err(invalid(
                    "regions.name",
                    format!(
                        "{:?} must be one of the queue's regions ({}), once",
                        r.name,
                        config.regions.join(", ")
                    ),
                ));
            }
        }
        if let Some(p) = self.population
            && p < config.players_per_match()
        {
            return Err(invalid(
                "population",
                "must hold at least one match worth of players",
            ));
        }
        Ok(())
    }

    /// The matchmaker configuration this scenario runs; an error names the `queue.` key.
    pub fn queue_config(&self) -> Result<QueueConfig, SimError> {
        let spec = self.queue.as_ref().ok_or_else(|| {
            invalid(
                "queue",
                "a [queue] table (teams, team_size, …) is needed, or a queue from a config",
            )
        })?;
        spec.to_core()
            .map_err(|err| invalid(&format!("queue.{}", err.key), err.why))
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
