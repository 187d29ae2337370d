//! One typed configuration: defaults, then `versus.toml`, then `VERSUS_*` environment variables,
//! then command-line flags. Validated once at start-up; a bad value stops start-up with a message
//! naming the key. Sub-configs are handed down explicitly; there are no globals.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// Environment variables with the `VERSUS_` prefix that are not configuration keys.
const NON_CONFIG_ENV: &[&str] = &["config", "require_backends", "log"];

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address the HTTP server listens on.
    pub bind: SocketAddr,
    /// Where the embedded default keeps its SQLite file and generated secrets.
    pub data_dir: PathBuf,
    /// `postgres://…` switches durable storage to PostgreSQL. It may hold a password.
    pub database_url: Option<SecretString>,
    pub database_max_connections: u32,
    /// The `service` field of every log line.
    pub service_name: String,
    pub log: LogConfig,
    pub auth: AuthConfig,
    pub limits: LimitsConfig,
    pub matchmaking: MatchmakingConfig,
    pub realtime: RealtimeConfig,
    /// The queues players can join. Replaces the shipped defaults entirely when given.
    pub queues: Vec<QueueSettings>,
    /// How long shutdown waits for in-flight requests before giving up on them.
    pub shutdown_grace_secs: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("versus-data"),
            database_url: None,
            database_max_connections: 16,
            service_name: "versus".to_owned(),
            log: LogConfig::default(),
            auth: AuthConfig::default(),
            limits: LimitsConfig::default(),
            matchmaking: MatchmakingConfig::default(),
            realtime: RealtimeConfig::default(),
            queues: QueueSettings::shipped_defaults(),
            shutdown_grace_secs: 20,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One JSON object per line, for log pipelines.
    Json,
    /// Human-readable lines, for a terminal.
    Pretty,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// A `tracing` filter directive such as `info` or `versus_server=debug,info`.
    pub level: String,
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".to_owned(),
            format: LogFormat::Json,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// HMAC key for access tokens, at least 32 bytes. When absent, one is generated once and
    /// kept in `data_dir` (fine for one node; every node of a cluster needs the same key).
    pub jwt_secret: Option<SecretString>,
    /// The `iss` claim written into and required of access tokens.
    pub issuer: String,
    pub access_token_ttl_secs: u64,
    pub refresh_token_ttl_secs: u64,
    pub argon2: Argon2Config,
    /// How many password hashes may run at once; each holds `argon2.memory_kib` of memory.
    pub max_concurrent_hashes: usize,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            jwt_secret: None,
            issuer: "versus".to_owned(),
            access_token_ttl_secs: 15 * 60,
            refresh_token_ttl_secs: 30 * 24 * 3600,
            argon2: Argon2Config::default(),
            max_concurrent_hashes: 4,
        }
    }
}

/// argon2id cost parameters. The defaults are OWASP's minimum recommendation
/// (19 MiB, 2 iterations, 1 lane).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Argon2Config {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for Argon2Config {
    fn default() -> Self {
        Self {
            memory_kib: 19 * 1024,
            iterations: 2,
            parallelism: 1,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// A request still running after this long is answered with 408.
    pub request_timeout_secs: u64,
    /// Auth requests (register, login, refresh, logout) per client IP.
    pub auth_per_ip: RateConfig,
    /// Login attempts per username, whatever the IP.
    pub login_per_username: RateConfig,
    /// Take the client IP from the left-most `X-Forwarded-For` entry. Only turn this on behind
    /// a proxy that sets the header, or clients can pick their own rate-limit key.
    pub trust_forwarded_for: bool,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 64 * 1024,
            request_timeout_secs: 30,
            auth_per_ip: RateConfig {
                per_minute: 120,
                burst: 30,
            },
            login_per_username: RateConfig {
                per_minute: 10,
                burst: 10,
            },
            trust_forwarded_for: false,
        }
    }
}

/// A token bucket: `burst` requests at once, refilled at `per_minute`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateConfig {
    pub per_minute: u32,
    pub burst: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MatchmakingConfig {
    /// Milliseconds between matchmaker ticks, per queue.
    pub tick_ms: u64,
    /// A searching ticket whose owner has no live WebSocket is cancelled after this long.
    pub disconnect_grace_secs: u64,
    /// A searching ticket gets a `queue_update` at least this often (and whenever its position
    /// changes, at most once per tick).
    pub queue_update_interval_secs: u64,
    /// How long an `Idempotency-Key` on a join is remembered.
    pub idempotency_ttl_secs: u64,
}

impl Default for MatchmakingConfig {
    fn default() -> Self {
        Self {
            tick_ms: 1000,
            disconnect_grace_secs: 30,
            queue_update_interval_secs: 5,
            idempotency_ttl_secs: 600,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RealtimeConfig {
    /// Stream events kept per player for replay after a reconnect...
    pub replay_buffer: usize,
    /// ...and for at most this long: a resume is for short drops (twice the default
    /// `matchmaking.disconnect_grace_secs`); older history is read over REST.
    pub replay_max_age_secs: u64,
    /// Frames queued for one connection before it is cut off as a slow reader.
    pub send_buffer: usize,
    /// A send blocked this long marks the peer as stalled.
    pub send_timeout_secs: u64,
    /// Seconds between server pings; three missed pongs close the connection.
    pub ping_interval_secs: u64,
    /// Largest inbound frame, bytes.
    pub max_frame_bytes: usize,
    /// Inbound messages per second per connection, and the burst allowed.
    pub inbound_per_second: u32,
    pub inbound_burst: u32,
    /// Rate-limited messages tolerated per connection before it is closed for abuse.
    pub abuse_close_after: u32,
    /// Mailboxes (replay buffers) of players with no connection are dropped after this long.
    pub mailbox_idle_secs: u64,
}

impl Default for RealtimeConfig {
    fn default() -> Self {
        Self {
            replay_buffer: 256,
            replay_max_age_secs: 60,
            send_buffer: 512,
            send_timeout_secs: 10,
            ping_interval_secs: 15,
            max_frame_bytes: 16 * 1024,
            inbound_per_second: 10,
            inbound_burst: 20,
            abuse_close_after: 50,
            mailbox_idle_secs: 600,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RatingSystemName {
    Elo,
    Glicko2,
    WengLin,
    /// Patented (Microsoft); only used when a queue asks for it.
    TrueSkill,
}

#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum PartyRating {
    Average,
    Max,
    /// `(1 − weight)·average + weight·max`.
    WeightedTowardMax {
        weight: f64,
    },
}

/// One queue, as configured. Ratings are on a 1500-centred scale for every system, so rating
/// windows mean the same whichever system a queue uses.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueSettings {
    pub name: String,
    pub teams: usize,
    pub team_size: usize,
    #[serde(default = "QueueSettings::default_rating")]
    pub rating: RatingSystemName,
    #[serde(default = "QueueSettings::default_regions")]
    pub regions: Vec<String>,
    #[serde(default = "QueueSettings::default_latency_budget")]
    pub latency_budget_ms: u32,
    /// `[[after_seconds, extra_ms], ...]`
    #[serde(default = "QueueSettings::default_latency_widening")]
    pub latency_widening: Vec<(u32, f64)>,
    /// `[[after_seconds, rating_window], ...]`
    #[serde(default = "QueueSettings::default_rating_widening")]
    pub rating_widening: Vec<(u32, f64)>,
    #[serde(default = "QueueSettings::default_recent_opponents")]
    pub recent_opponent_memory: usize,
    /// Largest party; defaults to the team size.
    #[serde(default)]
    pub max_party_size: Option<usize>,
    #[serde(default = "QueueSettings::default_party_rating")]
    pub party_rating: PartyRating,
    #[serde(default)]
    pub backfill: bool,
    /// Tickets expire after this long (seconds).
    #[serde(default = "QueueSettings::default_max_wait")]
    pub max_wait_secs: u32,
}

impl QueueSettings {
    fn default_rating() -> RatingSystemName {
        RatingSystemName::WengLin
    }
    fn default_regions() -> Vec<String> {
        ["eu", "na", "asia"].map(String::from).to_vec()
    }
    fn default_latency_budget() -> u32 {
        120
    }
    fn default_latency_widening() -> Vec<(u32, f64)> {
        vec![(0, 0.0), (20, 30.0), (45, 80.0)]
    }
    fn default_rating_widening() -> Vec<(u32, f64)> {
        vec![(0, 50.0), (5, 100.0), (15, 200.0), (30, 300.0), (60, 450.0)]
    }
    fn default_recent_opponents() -> usize {
        3
    }
    fn default_party_rating() -> PartyRating {
        PartyRating::WeightedTowardMax { weight: 0.5 }
    }
    fn default_max_wait() -> u32 {
        600
    }

    fn new(name: &str, teams: usize, team_size: usize, rating: RatingSystemName) -> Self {
        Self {
            name: name.to_owned(),
            teams,
            team_size,
            rating,
            regions: Self::default_regions(),
            latency_budget_ms: Self::default_latency_budget(),
            latency_widening: Self::default_latency_widening(),
            rating_widening: Self::default_rating_widening(),
            recent_opponent_memory: Self::default_recent_opponents(),
            max_party_size: None,
            party_rating: Self::default_party_rating(),
            backfill: false,
            max_wait_secs: Self::default_max_wait(),
        }
    }

    /// `ranked-1v1` (Glicko-2), `ranked-5v5` (Weng-Lin, parties up to 5, backfill) and
    /// `casual-ffa-8` (Weng-Lin, free-for-all of 8).
    pub fn shipped_defaults() -> Vec<Self> {
        let mut five = Self::new("ranked-5v5", 2, 5, RatingSystemName::WengLin);
        five.backfill = true;
        vec![
            Self::new("ranked-1v1", 2, 1, RatingSystemName::Glicko2),
            five,
            Self::new("casual-ffa-8", 8, 1, RatingSystemName::WengLin),
        ]
    }

    /// The matchmaker's configuration for this queue.
    pub fn to_core(&self) -> Result<versus_core::matchmaking::QueueConfig, String> {
        use versus_core::matchmaking::{PartyAggregation, QueueConfig, Schedule};
        use versus_core::rating::RatingConfig;
        if self.teams < 2 || self.team_size == 0 {
            return Err("needs at least 2 teams of at least 1 player".into());
        }
        if self.regions.is_empty() || self.regions.len() > 255 {
            return Err("regions: needs 1 to 255 regions".into());
        }
        if self.rating_widening.is_empty() || self.latency_widening.is_empty() {
            return Err("widening schedules must not be empty".into());
        }
        let mut config = QueueConfig::new(self.teams, self.team_size);
        config.rating = match self.rating {
            RatingSystemName::Elo => RatingConfig::Elo {
                k: 32.0,
                initial_rating: 1500.0,
            },
            RatingSystemName::Glicko2 => RatingConfig::glicko2(),
            RatingSystemName::WengLin => RatingConfig::weng_lin_scaled(1500.0, 350.0),
            RatingSystemName::TrueSkill => match RatingConfig::trueskill() {
                RatingConfig::TrueSkill {
                    draw_probability, ..
                } => RatingConfig::TrueSkill {
                    beta: 175.0,
                    initial_rating: 1500.0,
                    initial_deviation: 350.0,
                    draw_probability,
                    dynamics: 350.0 / 100.0,
                },
                other => other,
            },
        };
        config.regions = self.regions.clone();
        config.latency_budget_ms = self.latency_budget_ms;
        config.latency_widening = Schedule::new(self.latency_widening.clone());
        config.rating_widening = Schedule::new(self.rating_widening.clone());
        config.recent_opponent_memory = self.recent_opponent_memory;
        config.max_party_size = self.max_party_size.unwrap_or(self.team_size);
        config.party_aggregation = match self.party_rating {
            PartyRating::Average => PartyAggregation::Average,
            PartyRating::Max => PartyAggregation::Max,
            PartyRating::WeightedTowardMax { weight } => {
                PartyAggregation::WeightedTowardMax(weight)
            }
        };
        config.backfill = self.backfill;
        config.max_wait_s = Some(self.max_wait_secs);
        config.validate().map_err(|err| err.to_string())?;
        Ok(config)
    }
}

/// Flags given on the command line; they win over every other source.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub bind: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration file {0} does not exist")]
    MissingFile(PathBuf),
    /// Not a `source`: figment's message already names the key and where it came from, and a
    /// chained source would print it twice.
    #[error("invalid configuration: {0}")]
    Parse(Box<figment::Error>),
    #[error("invalid configuration: `{key}` {reason}")]
    Invalid { key: &'static str, reason: String },
}

impl From<Box<figment::Error>> for ConfigError {
    fn from(err: Box<figment::Error>) -> Self {
        Self::Parse(err)
    }
}

impl Config {
    /// Loads the configuration. `file` is the explicit `--config`/`VERSUS_CONFIG` path, which
    /// must exist; without it `./versus.toml` is read when present.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Self, ConfigError> {
        let toml_path = match file {
            Some(path) if !path.exists() => return Err(ConfigError::MissingFile(path.to_owned())),
            Some(path) => path.to_owned(),
            None => PathBuf::from("versus.toml"),
        };
        let env = Env::prefixed("VERSUS_")
            .filter(|key| {
                let key = key.as_str().to_ascii_lowercase();
                !NON_CONFIG_ENV.contains(&key.as_str()) && !key.starts_with("test_")
            })
            .split("__");
        let mut figment = Figment::new().merge(Toml::file(toml_path)).merge(env);
        if let Some(bind) = overrides.bind {
            figment = figment.merge(Serialized::default("bind", bind));
        }
        if let Some(dir) = &overrides.data_dir {
            figment = figment.merge(Serialized::default("data_dir", dir));
        }
        let config: Config = figment.extract().map_err(Box::new)?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        fn invalid(key: &'static str, reason: impl Into<String>) -> Result<(), ConfigError> {
            Err(ConfigError::Invalid {
                key,
                reason: reason.into(),
            })
        }
        if let Some(url) = &self.database_url {
            let url = url.expose_secret();
            if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                return invalid(
                    "database_url",
                    "must start with postgres:// or postgresql://",
                );
            }
        }
        if self.database_max_connections == 0 {
            return invalid("database_max_connections", "must be at least 1");
        }
        if let Some(secret) = &self.auth.jwt_secret
            && secret.expose_secret().len() < 32
        {
            return invalid("auth.jwt_secret", "must be at least 32 bytes long");
        }
        if !(60..=24 * 3600).contains(&self.auth.access_token_ttl_secs) {
            return invalid("auth.access_token_ttl_secs", "must be between 60 and 86400");
        }
        if self.auth.refresh_token_ttl_secs < self.auth.access_token_ttl_secs {
            return invalid(
                "auth.refresh_token_ttl_secs",
                "must not be shorter than the access token's",
            );
        }
        if let Err(err) = argon2::Params::new(
            self.auth.argon2.memory_kib,
            self.auth.argon2.iterations,
            self.auth.argon2.parallelism,
            None,
        ) {
            return invalid("auth.argon2", err.to_string());
        }
        if self.auth.max_concurrent_hashes == 0 {
            return invalid("auth.max_concurrent_hashes", "must be at least 1");
        }
        if self.limits.max_body_bytes < 1024 {
            return invalid("limits.max_body_bytes", "must be at least 1024");
        }
        if self.limits.request_timeout_secs == 0 {
            return invalid("limits.request_timeout_secs", "must be at least 1");
        }
        for (key, rate) in [
            ("limits.auth_per_ip", self.limits.auth_per_ip),
            ("limits.login_per_username", self.limits.login_per_username),
        ] {
            if rate.per_minute == 0 || rate.burst == 0 {
                return invalid(key, "per_minute and burst must be at least 1");
            }
        }
        if self.matchmaking.tick_ms < 10 || self.matchmaking.tick_ms > 60_000 {
            return invalid("matchmaking.tick_ms", "must be between 10 and 60000");
        }
        let realtime = &self.realtime;
        if realtime.replay_buffer == 0
            || realtime.send_buffer == 0
            || realtime.ping_interval_secs == 0
        {
            return invalid(
                "realtime",
                "replay_buffer, send_buffer and ping_interval_secs must be at least 1",
            );
        }
        if realtime.max_frame_bytes < 256
            || realtime.inbound_per_second == 0
            || realtime.inbound_burst == 0
        {
            return invalid(
                "realtime",
                "max_frame_bytes must be at least 256 and inbound rates at least 1",
            );
        }
        if self.queues.is_empty() {
            return invalid("queues", "at least one queue is needed");
        }
        let mut names = std::collections::HashSet::new();
        for queue in &self.queues {
            let valid_name = !queue.name.is_empty()
                && queue.name.len() <= 64
                && queue
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !valid_name || !names.insert(queue.name.as_str()) {
                return invalid(
                    "queues.name",
                    format!("{:?} must be unique, 1-64 of [A-Za-z0-9_-]", queue.name),
                );
            }
            if let Err(why) = queue.to_core() {
                return Err(ConfigError::Invalid {
                    key: "queues",
                    reason: format!("queue {:?}: {why}", queue.name),
                });
            }
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log.level).is_err() {
            return invalid(
                "log.level",
                format!("{:?} is not a valid filter", self.log.level),
            );
        }
        Ok(())
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.limits.request_timeout_secs)
    }

    pub fn sqlite_path(&self) -> PathBuf {
        self.data_dir.join("versus.db")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        Config::default().validate().unwrap();
    }

    #[test]
    fn bad_values_name_their_key() {
        let mut config = Config::default();
        config.auth.access_token_ttl_secs = 1;
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("auth.access_token_ttl_secs"), "{err}");

        let config = Config {
            database_url: Some(SecretString::from("mysql://x")),
            ..Config::default()
        };
        assert!(
            config
                .validate()
                .unwrap_err()
                .to_string()
                .contains("database_url")
        );
    }

    #[test]
    fn the_example_file_lists_valid_settings() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../versus.example.toml");
        let config: Config = Figment::new()
            .merge(Toml::file_exact(path))
            .extract()
            .unwrap();
        config.validate().unwrap();
        let defaults = Config::default();
        assert_eq!(config.bind, defaults.bind);
        assert_eq!(
            config.auth.access_token_ttl_secs,
            defaults.auth.access_token_ttl_secs
        );
        assert_eq!(config.limits.max_body_bytes, defaults.limits.max_body_bytes);
        let names =
            |queues: &[QueueSettings]| queues.iter().map(|q| q.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(&config.queues), names(&defaults.queues));
        assert_eq!(config.matchmaking.tick_ms, defaults.matchmaking.tick_ms);
        assert_eq!(config.realtime.send_buffer, defaults.realtime.send_buffer);
    }

    #[test]
    fn toml_type_errors_name_their_key() {
        let figment =
            Figment::new().merge(Toml::string("[auth]\naccess_token_ttl_secs = \"soon\""));
        let err = figment.extract::<Config>().unwrap_err().to_string();
        assert!(err.contains("access_token_ttl_secs"), "{err}");
        let figment = Figment::new().merge(Toml::string("bogus_key = 1"));
        let err = figment.extract::<Config>().unwrap_err().to_string();
        assert!(err.contains("bogus_key"), "{err}");
    }
}
