//! Configuration formats that more than one role of the `versus` binary reads: today the queue
//! definition, which is a `[[queues]]` entry of `versus.toml` for `versus serve` and the `[queue]`
//! table of a scenario file for `versus sim`. One serde type, one set of defaults and names, one
//! conversion into the matchmaker's validated [`QueueConfig`], so a queue simulates exactly as it
//! is served.
//!
//! Plain data in, validated core configuration out; every error names the key. Nothing here
//! reads files or the environment: the server's configuration loader and the simulator's
//! scenario reader hand the parsed tables in.

use serde::Deserialize;
use versus_core::matchmaking::{ConfigError, Matchmaker, PartyAggregation, QueueConfig, Schedule};
use versus_core::rating::RatingConfig;

/// A queue definition as written in TOML. Every key but `teams` and `team_size` has a default
/// (the functions named `default_*` below; `versus.example.toml` lists them).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct QueueSpec {
    /// What players join (`POST /api/v1/queue/join` names it). Required in `versus.toml`; a
    /// scenario's queue may leave it out.
    #[serde(default)]
    pub name: Option<String>,
    /// Number of teams (2 for 1v1 and 5v5; 8 for a free-for-all of 8).
    pub teams: usize,
    /// Players per team (1 for 1v1 and free-for-all).
    pub team_size: usize,
    /// Default: Glicko-2 for 1v1, Weng-Lin for every other shape. Never TrueSkill unless asked.
    #[serde(default, alias = "rating_system")]
    pub rating: Option<RatingSystemName>,
    /// The scale ratings live on (default mean 1500, sd 350), so rating windows mean the same
    /// whichever system a queue uses.
    #[serde(default)]
    pub rating_scale: Option<RatingScale>,
    /// Region names; a join gives its latency to each.
    #[serde(default = "default_regions")]
    pub regions: Vec<String>,
    /// A player may be placed in a region whose latency is at most this (plus widening).
    #[serde(
        default = "default_latency_budget_ms",
        alias = "latency_budget",
        alias = "max_latency_ms"
    )]
    pub latency_budget_ms: u32,
    /// `[[after_seconds, extra_ms], ...]`: extra latency allowed after waiting.
    #[serde(
        default = "default_latency_widening",
        alias = "latency_steps",
        alias = "latency_schedule"
    )]
    pub latency_widening: Vec<StepSpec>,
    /// `[[after_seconds, rating_window], ...]`: two tickets may meet when their ratings differ by
    /// at most the smaller of their two windows.
    #[serde(
        default = "default_rating_widening",
        alias = "widening",
        alias = "rating_windows",
        alias = "mmr_widening",
        alias = "window_schedule"
    )]
    pub rating_widening: Vec<StepSpec>,
    /// `[[after_seconds, quality], ...]`, never growing: the least predicted match quality a
    /// new match must reach, by its oldest ticket's wait (`[[0, 0]]`: any; default
    /// `[[0, 0.9], [10, 0.8], [20, 0.7], [30, 0.5], [60, 0]]`). Not applied to
    /// two-player matches (the rating window bounds them) nor to backfills.
    #[serde(
        default = "default_min_quality",
        alias = "quality_floor",
        alias = "min_quality_schedule"
    )]
    pub min_quality: Vec<StepSpec>,
    /// Players met as opponents in each player's last N matches are not matched again...
    #[serde(default = "default_recent_opponent_memory")]
    pub recent_opponent_memory: usize,
    /// ...until one of the two tickets has waited this long.
    #[serde(default = "default_rematch_relax_after_s")]
    pub rematch_relax_after_s: u32,
    /// Largest party that may queue. Default: the team size.
    #[serde(default)]
    pub max_party_size: Option<usize>,
    /// The one rating a party is matched on.
    #[serde(default)]
    pub party_aggregation: PartyAggregationName,
    /// `weighted`: `average + party_weight · (max − average)`.
    #[serde(default = "default_party_weight")]
    pub party_weight: f64,
    /// Whether running matches may ask for replacements.
    #[serde(default)]
    pub backfill: bool,
    /// Tickets waiting this long are expired.
    #[serde(default = "default_max_wait_s", alias = "max_wait_secs")]
    pub max_wait_s: u32,
    /// Most candidates one ticket examines per tick (bounds the work per ticket).
    #[serde(default = "default_scan_limit")]
    pub scan_limit: usize,
}

pub fn default_regions() -> Vec<String> {
    ["eu", "na", "asia"].map(String::from).to_vec()
}
pub fn default_latency_budget_ms() -> u32 {
    120
}
pub fn default_latency_widening() -> Vec<StepSpec> {
    StepSpec::list(&[(0, 0.0), (20, 30.0), (45, 80.0)])
}
pub fn default_rating_widening() -> Vec<StepSpec> {
    StepSpec::list(&[(0, 50.0), (5, 100.0), (15, 200.0), (30, 300.0), (60, 450.0)])
}
pub fn default_min_quality() -> Vec<StepSpec> {
    // The core's default (BENCHMARKS.md, "a quality floor"); a two-player queue ignores it.
    StepSpec::list(&[(0, 0.9), (10, 0.8), (20, 0.7), (30, 0.5), (60, 0.0)])
}
pub fn default_recent_opponent_memory() -> usize {
    3
}
pub fn default_rematch_relax_after_s() -> u32 {
    60
}
pub fn default_party_weight() -> f64 {
    0.5
}
pub fn default_max_wait_s() -> u32 {
    600
}
pub fn default_scan_limit() -> usize {
    512
}

/// The rating systems a queue can use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RatingSystemName {
    Elo,
    #[serde(alias = "glicko-2")]
    Glicko2,
    #[serde(alias = "weng-lin", alias = "openskill")]
    WengLin,
    /// Patented (Microsoft): only where a queue asks for it.
    #[serde(rename = "trueskill", alias = "true_skill")]
    TrueSkill,
}

/// Where ratings start and how widely skill spreads: Elo starts at `mean`; Weng-Lin and
/// TrueSkill start at μ = `mean`, σ = `sd`, with β = `sd`/2 (TrueSkill's dynamics `sd`/100).
/// Glicko-2 has its own fixed scale (1500, 350).
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RatingScale {
    pub mean: f64,
    pub sd: f64,
}

impl RatingScale {
    pub const DEFAULT: Self = Self {
        mean: 1500.0,
        sd: 350.0,
    };
}

/// How a party's members' ratings become the one rating its ticket is matched on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PartyAggregationName {
    #[serde(alias = "avg", alias = "mean")]
    Average,
    /// The strongest member (discourages boosting a weak friend).
    Max,
    /// Between the two, by `party_weight`.
    #[default]
    #[serde(alias = "weighted_toward_max")]
    Weighted,
}

/// A widening step: `[after_s, value]` or `{ after_s = .., value = .. }` (also spelled
/// `window`, `extra_ms`). Fractional seconds are rounded to whole ones.
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
    pub fn list(steps: &[(u32, f64)]) -> Vec<Self> {
        steps
            .iter()
            .map(|&(after, value)| Self::Pair(f64::from(after), value))
            .collect()
    }

    /// (whole seconds, value), or `None` for a negative or non-finite time.
    fn pair(&self) -> Option<(u32, f64)> {
        let (a, v) = match *self {
            Self::Pair(a, v) => (a, v),
            Self::Table { after_s, value } => (after_s, value),
        };
        (a.is_finite() && a >= 0.0 && a < f64::from(u32::MAX)).then(|| (a.round() as u32, v))
    }
}

/// A queue definition that cannot be served; `key` is the offending key of the queue table.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("`{key}`: {why}")]
pub struct SpecError {
    pub key: String,
    pub why: String,
}

fn invalid(key: &str, why: impl Into<String>) -> SpecError {
    SpecError {
        key: key.to_owned(),
        why: why.into(),
    }
}

impl QueueSpec {
    /// A queue of this shape with every other key at its default.
    pub fn new(name: &str, teams: usize, team_size: usize) -> Self {
        Self {
            name: Some(name.to_owned()),
            teams,
            team_size,
            rating: None,
            rating_scale: None,
            regions: default_regions(),
            latency_budget_ms: default_latency_budget_ms(),
            latency_widening: default_latency_widening(),
            rating_widening: default_rating_widening(),
            min_quality: default_min_quality(),
            recent_opponent_memory: default_recent_opponent_memory(),
            rematch_relax_after_s: default_rematch_relax_after_s(),
            max_party_size: None,
            party_aggregation: PartyAggregationName::default(),
            party_weight: default_party_weight(),
            backfill: false,
            max_wait_s: default_max_wait_s(),
            scan_limit: default_scan_limit(),
        }
    }

    /// The rating system this queue runs: the one named, or the default for its shape.
    pub fn rating_system(&self) -> RatingSystemName {
        self.rating
            .unwrap_or(if self.teams == 2 && self.team_size == 1 {
                RatingSystemName::Glicko2
            } else {
                RatingSystemName::WengLin
            })
    }

    /// The matchmaker's configuration for this queue, validated by the matchmaker itself.
    pub fn to_core(&self) -> Result<QueueConfig, SpecError> {
        if self.teams < 2 {
            return Err(invalid("teams", "must be at least 2"));
        }
        if self.team_size < 1 {
            return Err(invalid("team_size", "must be at least 1"));
        }
        let mut config = QueueConfig::new(self.teams, self.team_size);
        config.rating = self.rating_config()?;
        config.regions = self.regions.clone();
        config.latency_budget_ms = self.latency_budget_ms;
        config.latency_widening = schedule("latency_widening", &self.latency_widening)?;
        config.rating_widening = schedule("rating_widening", &self.rating_widening)?;
        config.min_quality = schedule("min_quality", &self.min_quality)?;
        config.recent_opponent_memory = self.recent_opponent_memory;
        config.rematch_relax_after_s = Some(self.rematch_relax_after_s);
        config.max_party_size = self.max_party_size.unwrap_or(self.team_size);
        config.party_aggregation = match self.party_aggregation {
            PartyAggregationName::Average => PartyAggregation::Average,
            PartyAggregationName::Max => PartyAggregation::Max,
            PartyAggregationName::Weighted => {
                PartyAggregation::WeightedTowardMax(self.party_weight)
            }
        };
        config.backfill = self.backfill;
        config.max_wait_s = Some(self.max_wait_s);
        config.scan_limit = self.scan_limit;
        // The core names its own fields; two of them are spelled differently here.
        Matchmaker::new(config.clone()).map_err(|ConfigError::Invalid { key, why }| {
            let key = match key {
                "party_aggregation" => "party_weight",
                "rating" => "rating_scale",
                key => key,
            };
            invalid(key, why)
        })?;
        if self.regions.iter().any(|r| r.trim().is_empty()) {
            return Err(invalid("regions", "names must not be empty"));
        }
        for (i, region) in self.regions.iter().enumerate() {
            if self.regions[..i].contains(region) {
                return Err(invalid("regions", format!("{region:?} is listed twice")));
            }
        }
        Ok(config)
    }

    fn rating_config(&self) -> Result<RatingConfig, SpecError> {
        let RatingScale { mean, sd } = self.rating_scale.unwrap_or(RatingScale::DEFAULT);
        if !(mean.is_finite() && sd.is_finite() && sd > 0.0) {
            return Err(invalid(
                "rating_scale",
                "mean must be a number and sd a positive number",
            ));
        }
        Ok(match self.rating_system() {
            RatingSystemName::Elo => RatingConfig::Elo {
                k: 32.0,
                initial_rating: mean,
            },
            RatingSystemName::Glicko2 => {
                if self
                    .rating_scale
                    .is_some_and(|scale| scale != RatingScale::DEFAULT)
                {
                    return Err(invalid(
                        "rating_scale",
                        "Glicko-2 has its own scale (mean 1500, sd 350)",
                    ));
                }
                RatingConfig::glicko2()
            }
            RatingSystemName::WengLin => RatingConfig::weng_lin_scaled(mean, sd),
            RatingSystemName::TrueSkill => RatingConfig::TrueSkill {
                beta: sd / 2.0,
                initial_rating: mean,
                initial_deviation: sd,
                draw_probability: 0.1,
                dynamics: sd / 100.0,
            },
        })
    }
}

fn schedule(key: &str, steps: &[StepSpec]) -> Result<Schedule, SpecError> {
    steps
        .iter()
        .map(StepSpec::pair)
        .collect::<Option<Vec<_>>>()
        .map(Schedule::new)
        .ok_or_else(|| invalid(key, "step times must be seconds >= 0"))
}

/// A queue ready to serve: its name, its validated matchmaker configuration, and the definition
/// it was read from (what `versus sim --queue` runs).
#[derive(Clone, Debug, PartialEq)]
pub struct Queue {
    pub name: String,
    pub config: QueueConfig,
    pub spec: QueueSpec,
}

impl Queue {
    /// A served queue needs a name of 1–64 characters from `[A-Za-z0-9_-]` (it appears in
    /// paths, metrics labels and logs).
    pub fn from_spec(spec: &QueueSpec) -> Result<Self, SpecError> {
        let name = spec
            .name
            .clone()
            .ok_or_else(|| invalid("name", "every queue needs a name"))?;
        let valid = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid {
            return Err(invalid(
                "name",
                format!("{name:?} must be 1-64 of [A-Za-z0-9_-]"),
            ));
        }
        Ok(Self {
            config: spec.to_core()?,
            spec: spec.clone(),
            name,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<QueueSpec, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    #[test]
    fn a_shape_is_all_a_queue_needs() {
        let spec = parse("teams = 2\nteam_size = 1").unwrap();
        let mut expected = QueueSpec::new("x", 2, 1);
        expected.name = None;
        assert_eq!(spec, expected);
        let config = spec.to_core().unwrap();
        assert_eq!(config.rating, RatingConfig::glicko2());
        assert_eq!(config.regions, ["eu", "na", "asia"]);
        assert_eq!(config.max_wait_s, Some(600));
        assert_eq!(config.rematch_relax_after_s, Some(60));
        let five = parse("teams = 2\nteam_size = 5")
            .unwrap()
            .to_core()
            .unwrap();
        assert_eq!(five.rating, RatingConfig::weng_lin_scaled(1500.0, 350.0));
        assert_eq!(five.max_party_size, 5);
        assert_eq!(
            five.party_aggregation,
            PartyAggregation::WeightedTowardMax(0.5)
        );
    }

    #[test]
    fn every_spelling_of_a_step_and_a_system_reads_the_same() {
        let a = parse(
            "teams = 2\nteam_size = 1\nrating = \"weng-lin\"\nrating_widening = [[0, 25], [2.6, 40.0]]",
        )
        .unwrap();
        let b = parse(
            "teams = 2\nteam_size = 1\nrating_system = \"openskill\"\n\
             widening = [{ after_s = 0, window = 25 }, { seconds = 3, value = 40 }]",
        )
        .unwrap();
        assert_eq!(a.to_core().unwrap(), b.to_core().unwrap());
        let old =
            parse("teams = 2\nteam_size = 1\nrating = \"true_skill\"\nmax_wait_secs = 30").unwrap();
        assert_eq!(old.rating, Some(RatingSystemName::TrueSkill));
        let new = parse("teams = 2\nteam_size = 1\nrating = \"trueskill\"").unwrap();
        assert_eq!(new.rating, Some(RatingSystemName::TrueSkill));
        assert_eq!(old.to_core().unwrap().max_wait_s, Some(30));
    }

    #[test]
    fn errors_name_the_key() {
        let check = |text: &str, key: &str| {
            let spec = parse(text).unwrap();
            let err = Queue::from_spec(&spec).unwrap_err();
            assert_eq!(err.key, key, "{text}: {err}");
        };
        let shape = "name = \"q\"\nteams = 2\nteam_size = 5\n";
        check("teams = 2\nteam_size = 1", "name");
        check("name = \"a b\"\nteams = 2\nteam_size = 1", "name");
        check("name = \"q\"\nteams = 1\nteam_size = 1", "teams");
        check(
            &format!("{shape}rating_widening = [[0, 50], [5, 10]]"),
            "rating_widening",
        );
        check(
            &format!("{shape}latency_widening = [[-1, 0]]"),
            "latency_widening",
        );
        check(
            &format!("{shape}min_quality = [[0, 0.5], [10, 0.8]]"),
            "min_quality",
        );
        check(&format!("{shape}min_quality = [[0, 1.5]]"), "min_quality");
        check(&format!("{shape}min_quality = [[5, 0.5]]"), "min_quality");
        check(&format!("{shape}max_party_size = 6"), "max_party_size");
        check(&format!("{shape}party_weight = 2.0"), "party_weight");
        check(&format!("{shape}regions = []"), "regions");
        check(&format!("{shape}regions = [\"eu\", \"eu\"]"), "regions");
        check(
            &format!("{shape}rating_scale = {{ mean = 1500, sd = 0 }}"),
            "rating_scale",
        );
        check(
            "name = \"q\"\nteams = 2\nteam_size = 1\nrating_scale = { mean = 25, sd = 8 }",
            "rating_scale",
        );
        check(&format!("{shape}scan_limit = 3"), "scan_limit");
        check(&format!("{shape}max_wait_s = 0"), "max_wait_s");
        let unknown = parse("teams = 2\nteam_size = 1\nbogus = 1").unwrap_err();
        assert!(unknown.contains("bogus"), "{unknown}");
        let missing = parse("teams = 2").unwrap_err();
        assert!(missing.contains("team_size"), "{missing}");
    }
}
