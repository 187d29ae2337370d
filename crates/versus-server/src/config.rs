//! One typed configuration: defaults, then `versus.toml`, then `VERSUS_*` environment variables,
//! then command-line flags. Validated once at start-up; a bad value stops start-up with a message
//! naming the key. Sub-configs are handed down explicitly; there are no globals.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use time::OffsetDateTime;
use versus_core::season::{Schedule, SoftReset};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use versus_config::{Queue, QueueSpec};

/// Bounds on `auth.max_concurrent_hashes` and `auth.hash_queue`: far beyond any useful value,
/// low enough that a typo cannot claim gigabytes at start-up or queue minutes of hashing.
const MAX_HASH_WORKERS: usize = 256;
const MAX_HASH_QUEUE: usize = 65_536;

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
    /// `redis://…`, `rediss://…`, `redis+cluster://host:port,host:port` or
    /// `redis+sentinel://host:port,host:port/master`: the state nodes share (rate limits,
    /// presence, heartbeats, the matchmaker's lease and journal). Unset, it stays in this
    /// process. It may hold a password.
    pub redis_url: Option<SecretString>,
    /// `nats://…` carries events between nodes over NATS JetStream (`NatsBus`); unset, events
    /// stay in this process. It may hold credentials.
    pub nats_url: Option<SecretString>,
    /// Copies JetStream keeps of the event stream when it creates it (1–5): 3 on a NATS
    /// cluster of three, so an acknowledged event survives losing a NATS server.
    pub nats_stream_replicas: usize,
    /// What this cluster's names start with on Redis (keys) and NATS (subjects, the stream), so
    /// that several clusters can share one of each.
    pub cluster_prefix: String,
    /// The `service` field of every log line.
    pub service_name: String,
    pub log: LogConfig,
    pub auth: AuthConfig,
    pub limits: LimitsConfig,
    pub matchmaking: MatchmakingConfig,
    pub realtime: RealtimeConfig,
    pub sessions: SessionsConfig,
    pub leaderboards: LeaderboardsConfig,
    pub parties: PartiesConfig,
    /// The queues players can join. Replaces the shipped defaults entirely when given.
    pub queues: Queues,
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
            redis_url: None,
            nats_url: None,
            nats_stream_replicas: 1,
            cluster_prefix: "versus".to_owned(),
            service_name: "versus".to_owned(),
            log: LogConfig::default(),
            auth: AuthConfig::default(),
            limits: LimitsConfig::default(),
            matchmaking: MatchmakingConfig::default(),
            realtime: RealtimeConfig::default(),
            sessions: SessionsConfig::default(),
            leaderboards: LeaderboardsConfig::default(),
            parties: PartiesConfig::default(),
            queues: Queues::default(),
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
    /// For this long after a refresh token was rotated, presenting it again answers the same
    /// new pair (a client retrying a refresh whose answer it lost) instead of revoking the
    /// login as a replay. 0 disables it. Kept short: within it a stolen spent token is
    /// answered too.
    pub refresh_grace_secs: u64,
    pub argon2: Argon2Config,
    /// How many password hashes may run at once: the number of hashing threads, each holding a
    /// buffer of `argon2.memory_kib` from start-up on.
    pub max_concurrent_hashes: usize,
    /// How many hashes may wait for a thread; beyond that a register or login gets 429.
    pub hash_queue: usize,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            jwt_secret: None,
            issuer: "versus".to_owned(),
            access_token_ttl_secs: 15 * 60,
            refresh_token_ttl_secs: 30 * 24 * 3600,
            refresh_grace_secs: 10,
            argon2: Argon2Config::default(),
            max_concurrent_hashes: 4,
            hash_queue: 256,
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
    /// Auth requests (register, login, device login, link, refresh, logout) per client IP.
    pub auth_per_ip: RateConfig,
    /// Login attempts per username, whatever the IP.
    pub login_per_username: RateConfig,
    /// Take the client IP from the left-most `X-Forwarded-For` entry. Only turn this on behind
    /// a proxy that sets the header, or clients can pick their own rate-limit key.
    pub trust_forwarded_for: bool,
    /// A connection is closed unless it sends a whole request head within this long of opening
    /// (or of the first byte of its next request).
    pub header_read_timeout_secs: u64,
    /// A keep-alive connection with no request for this long is closed. Not applied while a
    /// request is served (`request_timeout_secs` is) nor to WebSockets (they ping).
    pub idle_timeout_secs: u64,
    /// Open connections at most, WebSockets included; lowered at start-up to what the
    /// open-file limit leaves. Beyond it new connections are closed at once.
    pub max_connections: usize,
    /// Open connections from one client address at most (an IPv6 client: its /64), counted by
    /// the peer address, not `X-Forwarded-For`; 0 = no cap.
    pub max_connections_per_ip: usize,
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
            // A request head is a few hundred bytes, sent at once by any client, even over a
            // poor mobile link; 10 s is ample for it and limits how long a half-sent
            // connection holds a descriptor.
            header_read_timeout_secs: 10,
            // Above the 60 s idle timeout of AWS's load balancers: a balancer must drop an idle
            // connection before we do, or it may send a request on one we are closing and
            // answer 502. Also nginx's default keep-alive.
            idle_timeout_secs: 75,
            // A player holds about two connections (WebSocket, REST keep-alive): 20,000 is the
            // 10,000 players of the benchmark, ~20 KiB of memory each (BENCHMARKS.md).
            max_connections: 20_000,
            // Room for a few hundred players behind one NAT (an office, a LAN event, carrier
            // NAT) while one host can hold no more than 5% of `max_connections`.
            max_connections_per_ip: 1_000,
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

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LeaderboardsConfig {
    /// Rated games a player needs in a queue's season before they appear on its leaderboard.
    pub placement_games: u64,
    /// Season schedules by queue name. A queue without one has one season until an admin
    /// rolls it over.
    pub seasons: BTreeMap<String, SeasonConfig>,
}

impl Default for LeaderboardsConfig {
    fn default() -> Self {
        Self {
            placement_games: 5,
            seasons: BTreeMap::new(),
        }
    }
}

/// `[parties]`: how big a party may grow and how long invites and ready checks last. A queue
/// takes a party only up to its own `max_party_size`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PartiesConfig {
    pub max_size: usize,
    /// Invites a party may have pending at once.
    pub max_pending_invites: usize,
    pub invite_ttl_secs: u64,
    /// How long members have to answer a ready check.
    pub ready_check_timeout_secs: u64,
}

impl Default for PartiesConfig {
    fn default() -> Self {
        Self {
            max_size: 5,
            max_pending_invites: 10,
            invite_ttl_secs: 300,
            ready_check_timeout_secs: 30,
        }
    }
}

/// `[leaderboards.seasons.<queue>]`: when the queue's seasons end and how ratings carry over.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeasonConfig {
    /// The schedule's first boundary (RFC 3339). Seasons end at `start + k·length`.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub start: Option<OffsetDateTime>,
    /// Season length in days (or `length_secs`); with neither, `end` ends one season.
    pub length_days: Option<u32>,
    pub length_secs: Option<u64>,
    /// A fixed end for the season that includes it (RFC 3339), instead of a length.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub end: Option<OffsetDateTime>,
    /// Share of the way back to the initial rating each rating moves at a rollover (0–1).
    #[serde(default = "SeasonConfig::default_pull")]
    pub reset_pull: f64,
    /// Share of the way back to the initial deviation each deviation widens (0–1).
    #[serde(default = "SeasonConfig::default_widen")]
    pub reset_widen: f64,
}

impl SeasonConfig {
    fn default_pull() -> f64 {
        0.5
    }

    fn default_widen() -> f64 {
        0.5
    }

    /// The calendar this describes (checked by [`Config::validate`]).
    pub fn schedule(&self) -> Schedule {
        let length = (self.length_secs)
            .map(|s| i64::try_from(s).unwrap_or(i64::MAX))
            .or(self.length_days.map(|d| i64::from(d) * 86_400));
        match (length, self.end) {
            (Some(length), _) => Schedule::Every {
                start: self.start.map_or(0, OffsetDateTime::unix_timestamp),
                length,
            },
            (None, Some(end)) => Schedule::Until {
                end: end.unix_timestamp(),
            },
            (None, None) => Schedule::Endless,
        }
    }

    pub fn reset(&self) -> SoftReset {
        SoftReset {
            pull: self.reset_pull,
            widen: self.reset_widen,
        }
    }

    fn check(&self) -> Result<(), String> {
        if self.length_days.is_some() && self.length_secs.is_some() {
            return Err("give `length_days` or `length_secs`, not both".into());
        }
        let has_length = self.length_days.is_some() || self.length_secs.is_some();
        if has_length && self.end.is_some() {
            return Err("give a length or an `end`, not both".into());
        }
        if has_length && self.start.is_none() {
            return Err("a length needs a `start` (RFC 3339)".into());
        }
        if self.length_days == Some(0) || self.length_secs == Some(0) {
            return Err("a season lasts at least a second".into());
        }
        if let Err(share) = SoftReset::new(self.reset_pull, self.reset_widen) {
            return Err(format!("`reset_{share}` must be between 0 and 1"));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MatchmakingConfig {
    /// Milliseconds between matchmaker ticks, per queue. 250 by default: a tick's matches are
    /// stored and started together, so a longer tick means bigger write bursts that results
    /// queue behind (`BENCHMARKS.md`, result → `rating_update`), while the simulator shows the
    /// same match quality at 250 ms as at 1 s and a lower time to match.
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
            tick_ms: 250,
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

/// Game sessions: how a formed match gets a game server, and how game servers and players
/// prove who they are to the session routes.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SessionsConfig {
    /// What game servers send as `Authorization: Bearer <server_key>`, at least 32 bytes of
    /// printable ASCII. When absent, one is generated once into `data_dir` (file `server-key`).
    pub server_key: Option<SecretString>,
    /// HMAC key of the session tokens players present to their game server, at least 32 bytes.
    /// When absent, one is generated once into `data_dir` (file `session-token-key`).
    pub token_key: Option<SecretString>,
    /// How long a session token is valid.
    pub token_ttl_secs: u64,
    /// A running session whose game server has not sent a heartbeat for this long is abandoned.
    pub heartbeat_ttl_secs: u64,
    /// An allocated session whose game server has not reported ready within this long is
    /// cancelled.
    pub ready_timeout_secs: u64,
    pub allocator: AllocatorConfig,
}

impl Default for SessionsConfig {
    fn default() -> Self {
        Self {
            server_key: None,
            token_key: None,
            token_ttl_secs: 3600,
            heartbeat_ttl_secs: 30,
            ready_timeout_secs: 60,
            allocator: AllocatorConfig::default(),
        }
    }
}

/// Where a formed match's game server comes from, chosen by `kind`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum AllocatorConfig {
    /// A fixed list of game servers, each hosting up to `capacity` sessions at once. The
    /// embedded default: one local server.
    Static {
        #[serde(default = "default_static_endpoints")]
        endpoints: Vec<StaticEndpoint>,
    },
    /// A fleet behind an HTTP allocation service (for example an Agones allocator
    /// front-end), asked for each session.
    Http {
        /// Where allocation requests are POSTed.
        url: String,
        /// Deadline of one attempt, milliseconds.
        #[serde(default = "default_allocator_timeout_ms")]
        timeout_ms: u64,
        /// Further attempts after a timeout, a connection error or a 5xx.
        #[serde(default = "default_allocator_retries")]
        retries: u32,
    },
}

impl Default for AllocatorConfig {
    fn default() -> Self {
        Self::Static {
            endpoints: default_static_endpoints(),
        }
    }
}

/// One game server of the static allocator.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticEndpoint {
    /// What players connect to, `host:port`.
    pub address: String,
    /// Sessions it hosts at once.
    pub capacity: u32,
}

fn default_static_endpoints() -> Vec<StaticEndpoint> {
    vec![StaticEndpoint {
        address: "127.0.0.1:7777".to_owned(),
        capacity: 1000,
    }]
}

fn default_allocator_timeout_ms() -> u64 {
    2000
}

fn default_allocator_retries() -> u32 {
    2
}

/// Bound on `sessions.allocator.retries`: with the backoff between attempts, a formed match
/// must not wait minutes for a fleet that is down.
pub const MAX_ALLOCATOR_RETRIES: u32 = 10;

/// The queues players can join, validated when the configuration is read: each `[[queues]]`
/// entry is a [`QueueSpec`] — the same table, defaults and names as a scenario's `[queue]` —
/// turned into a [`Queue`] (a name and a validated matchmaker configuration). Giving any
/// replaces the shipped defaults entirely.
#[derive(Debug, Clone, PartialEq)]
pub struct Queues(Vec<Queue>);

impl Queues {
    /// Validates every entry and the names across them. The error names the entry and its key.
    pub fn from_specs(specs: &[QueueSpec]) -> Result<Self, String> {
        if specs.is_empty() {
            return Err("at least one queue is needed".to_owned());
        }
        let mut queues: Vec<Queue> = Vec::with_capacity(specs.len());
        for (i, spec) in specs.iter().enumerate() {
            let queue = Queue::from_spec(spec).map_err(|err| match &spec.name {
                Some(name) => format!("queues[{i}] ({name:?}): {err}"),
                None => format!("queues[{i}]: {err}"),
            })?;
            if queues.iter().any(|q| q.name == queue.name) {
                return Err(format!(
                    "queues[{i}]: `name`: {:?} is used by another queue",
                    queue.name
                ));
            }
            queues.push(queue);
        }
        Ok(Self(queues))
    }

    /// `ranked-1v1` (Glicko-2), `ranked-5v5` (Weng-Lin, parties up to 5, backfill) and
    /// `casual-ffa-8` (Weng-Lin, free-for-all of 8), every other key at its default.
    pub fn shipped_specs() -> Vec<QueueSpec> {
        let mut five = QueueSpec::new("ranked-5v5", 2, 5);
        five.backfill = true;
        vec![
            QueueSpec::new("ranked-1v1", 2, 1),
            five,
            QueueSpec::new("casual-ffa-8", 8, 1),
        ]
    }

    pub fn get(&self, name: &str) -> Option<&Queue> {
        self.0.iter().find(|q| q.name == name)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Queue> {
        self.0.iter()
    }
}

impl Default for Queues {
    fn default() -> Self {
        Self::from_specs(&Self::shipped_specs()).expect("the shipped queues are valid")
    }
}

impl<'de> Deserialize<'de> for Queues {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let specs = Vec::<QueueSpec>::deserialize(deserializer)?;
        Self::from_specs(&specs).map_err(serde::de::Error::custom)
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
        if let Some(url) = &self.nats_url {
            let url = url.expose_secret();
            if !["nats://", "tls://", "ws://", "wss://"]
                .iter()
                .any(|s| url.starts_with(s))
            {
                return invalid(
                    "nats_url",
                    "must start with nats://, tls://, ws:// or wss://",
                );
            }
        }
        if let Some(url) = &self.redis_url {
            let url = url.expose_secret();
            let schemes = [
                "redis://",
                "rediss://",
                "redis+cluster://",
                "redis+sentinel://",
            ];
            if !schemes.iter().any(|s| url.starts_with(s)) {
                return invalid(
                    "redis_url",
                    "must start with redis://, rediss://, redis+cluster:// or redis+sentinel://",
                );
            }
        }
        // One of the two alone would be a cluster that only half works (events shared but
        // queues per node, or the reverse); SQLite is one machine's file.
        if self.redis_url.is_some() != self.nats_url.is_some() {
            return invalid(
                "redis_url",
                "a cluster needs both redis_url and nats_url (set both, or neither)",
            );
        }
        if self.nats_url.is_some() && self.database_url.is_none() {
            return invalid(
                "database_url",
                "a cluster (redis_url, nats_url) needs PostgreSQL: set database_url",
            );
        }
        if !(1..=5).contains(&self.nats_stream_replicas) {
            return invalid("nats_stream_replicas", "must be between 1 and 5");
        }
        let prefix_ok = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
        if self.cluster_prefix.is_empty() || !self.cluster_prefix.chars().all(prefix_ok) {
            return invalid("cluster_prefix", "must be letters, digits, '_' or '-'");
        }
        if self.database_max_connections == 0 {
            return invalid("database_max_connections", "must be at least 1");
        }
        if !(1..=64).contains(&self.parties.max_size) {
            return invalid("parties.max_size", "must be 1 to 64");
        }
        if !(1..=100).contains(&self.parties.max_pending_invites) {
            return invalid("parties.max_pending_invites", "must be 1 to 100");
        }
        if !(1..=86_400).contains(&self.parties.invite_ttl_secs) {
            return invalid("parties.invite_ttl_secs", "must be 1 to 86400");
        }
        if !(1..=600).contains(&self.parties.ready_check_timeout_secs) {
            return invalid("parties.ready_check_timeout_secs", "must be 1 to 600");
        }
        if self.leaderboards.placement_games > 1000 {
            return invalid("leaderboards.placement_games", "must be at most 1000");
        }
        for (queue, season) in &self.leaderboards.seasons {
            if !self.queues.iter().any(|q| &q.name == queue) {
                return invalid(
                    "leaderboards.seasons",
                    format!("{queue:?} is not a configured queue"),
                );
            }
            if let Err(reason) = season.check() {
                return invalid("leaderboards.seasons", format!("{queue}: {reason}"));
            }
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
        // At most the shortest access-token lifetime, so the access token a retry gets again,
        // dated at the rotation, is never expired on arrival.
        if self.auth.refresh_grace_secs > 60 {
            return invalid("auth.refresh_grace_secs", "must be between 0 and 60");
        }
        if let Err(err) = argon2::Params::new(
            self.auth.argon2.memory_kib,
            self.auth.argon2.iterations,
            self.auth.argon2.parallelism,
            None,
        ) {
            return invalid("auth.argon2", err.to_string());
        }
        // Each is a thread holding `argon2.memory_kib` for the life of the process.
        if !(1..=MAX_HASH_WORKERS).contains(&self.auth.max_concurrent_hashes) {
            return invalid(
                "auth.max_concurrent_hashes",
                format!("must be between 1 and {MAX_HASH_WORKERS}"),
            );
        }
        if self.auth.hash_queue > MAX_HASH_QUEUE {
            return invalid(
                "auth.hash_queue",
                format!("must be at most {MAX_HASH_QUEUE}"),
            );
        }
        if self.limits.max_body_bytes < 1024 {
            return invalid("limits.max_body_bytes", "must be at least 1024");
        }
        if self.limits.request_timeout_secs == 0 {
            return invalid("limits.request_timeout_secs", "must be at least 1");
        }
        if self.limits.header_read_timeout_secs == 0 {
            return invalid("limits.header_read_timeout_secs", "must be at least 1");
        }
        if self.limits.idle_timeout_secs == 0 {
            return invalid("limits.idle_timeout_secs", "must be at least 1");
        }
        if self.limits.max_connections == 0 {
            return invalid("limits.max_connections", "must be at least 1");
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
        self.sessions.validate()?;
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

impl SessionsConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        fn invalid(key: &'static str, reason: impl Into<String>) -> Result<(), ConfigError> {
            Err(ConfigError::Invalid {
                key,
                reason: reason.into(),
            })
        }
        if let Some(key) = &self.server_key {
            let key = key.expose_secret();
            if key.len() < 32 {
                return invalid("sessions.server_key", "must be at least 32 bytes long");
            }
            // Game servers send it in an `Authorization` header, where only visible ASCII
            // survives intact.
            if !key.bytes().all(|b| b.is_ascii_graphic()) {
                return invalid(
                    "sessions.server_key",
                    "must be printable ASCII without spaces",
                );
            }
        }
        if let Some(key) = &self.token_key
            && key.expose_secret().len() < 32
        {
            return invalid("sessions.token_key", "must be at least 32 bytes long");
        }
        for (key, value) in [
            ("sessions.token_ttl_secs", self.token_ttl_secs),
            ("sessions.heartbeat_ttl_secs", self.heartbeat_ttl_secs),
            ("sessions.ready_timeout_secs", self.ready_timeout_secs),
        ] {
            if value == 0 {
                return invalid(key, "must be at least 1");
            }
        }
        match &self.allocator {
            AllocatorConfig::Static { endpoints } => {
                if endpoints.is_empty() {
                    return invalid(
                        "sessions.allocator.endpoints",
                        "at least one game server is needed",
                    );
                }
                for (i, endpoint) in endpoints.iter().enumerate() {
                    if endpoint.address.trim().is_empty() {
                        return invalid(
                            "sessions.allocator.endpoints",
                            format!("[{i}]: `address` must not be empty"),
                        );
                    }
                    if endpoint.capacity == 0 {
                        return invalid(
                            "sessions.allocator.endpoints",
                            format!(
                                "[{i}] ({}): `capacity` must be at least 1",
                                endpoint.address
                            ),
                        );
                    }
                    // A session restored after a restart finds its server by address.
                    if endpoints[..i].iter().any(|e| e.address == endpoint.address) {
                        return invalid(
                            "sessions.allocator.endpoints",
                            format!("[{i}]: `address` {:?} is listed twice", endpoint.address),
                        );
                    }
                }
            }
            AllocatorConfig::Http {
                url,
                timeout_ms,
                retries,
            } => {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return invalid(
                        "sessions.allocator.url",
                        "must start with http:// or https://",
                    );
                }
                if *timeout_ms == 0 {
                    return invalid("sessions.allocator.timeout_ms", "must be at least 1");
                }
                if *retries > MAX_ALLOCATOR_RETRIES {
                    return invalid(
                        "sessions.allocator.retries",
                        format!("must be at most {MAX_ALLOCATOR_RETRIES}"),
                    );
                }
            }
        }
        Ok(())
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

        let names = |limits: LimitsConfig, key: &str| {
            let config = Config {
                limits,
                ..Config::default()
            };
            let err = config.validate().unwrap_err().to_string();
            assert!(err.contains(key), "{err}");
        };
        let defaults = LimitsConfig::default;
        names(
            LimitsConfig {
                header_read_timeout_secs: 0,
                ..defaults()
            },
            "limits.header_read_timeout_secs",
        );
        names(
            LimitsConfig {
                idle_timeout_secs: 0,
                ..defaults()
            },
            "limits.idle_timeout_secs",
        );
        names(
            LimitsConfig {
                max_connections: 0,
                ..defaults()
            },
            "limits.max_connections",
        );
        for (workers, queue, key) in [
            (0, 0, "auth.max_concurrent_hashes"),
            (257, 0, "auth.max_concurrent_hashes"),
            (4, 65_537, "auth.hash_queue"),
        ] {
            let mut config = Config::default();
            config.auth.max_concurrent_hashes = workers;
            config.auth.hash_queue = queue;
            let err = config.validate().unwrap_err().to_string();
            assert!(err.contains(key), "{err}");
        }
        let mut config = Config::default();
        config.auth.refresh_grace_secs = 61;
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("auth.refresh_grace_secs"), "{err}");
        config.auth.refresh_grace_secs = 0;
        config.validate().unwrap();

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
        let connection_limits = |limits: &LimitsConfig| {
            (
                limits.header_read_timeout_secs,
                limits.idle_timeout_secs,
                limits.max_connections,
                limits.max_connections_per_ip,
            )
        };
        assert_eq!(
            connection_limits(&config.limits),
            connection_limits(&defaults.limits)
        );
        assert_eq!(
            config.auth.access_token_ttl_secs,
            defaults.auth.access_token_ttl_secs
        );
        assert_eq!(
            config.auth.refresh_grace_secs,
            defaults.auth.refresh_grace_secs
        );
        assert_eq!(config.limits.max_body_bytes, defaults.limits.max_body_bytes);
        assert_eq!(
            config.auth.max_concurrent_hashes,
            defaults.auth.max_concurrent_hashes
        );
        assert_eq!(config.auth.hash_queue, defaults.auth.hash_queue);
        // The example spells out what the defaults leave implicit: the same queues are served.
        let served = |queues: &Queues| {
            queues
                .iter()
                .map(|q| (q.name.clone(), q.config.clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(served(&config.queues), served(&defaults.queues));
        assert_eq!(config.matchmaking.tick_ms, defaults.matchmaking.tick_ms);
        assert_eq!(config.realtime.send_buffer, defaults.realtime.send_buffer);
        assert_eq!(config.sessions.allocator, defaults.sessions.allocator);
        assert_eq!(
            (
                config.sessions.token_ttl_secs,
                config.sessions.heartbeat_ttl_secs,
                config.sessions.ready_timeout_secs
            ),
            (
                defaults.sessions.token_ttl_secs,
                defaults.sessions.heartbeat_ttl_secs,
                defaults.sessions.ready_timeout_secs
            )
        );
    }

    #[test]
    fn a_bad_queue_names_its_entry_and_key() {
        let check = |toml: &str, words: &[&str]| {
            let err = Figment::new()
                .merge(Toml::string(toml))
                .extract::<Config>()
                .unwrap_err()
                .to_string();
            for word in words {
                assert!(err.contains(word), "{toml}: {err}");
            }
        };
        check(
            "[[queues]]\nname = \"duo\"\nteams = 2\nteam_size = 2\nmax_party_size = 3",
            &["queues[0]", "duo", "max_party_size"],
        );
        check(
            "[[queues]]\nname = \"a\"\nteams = 2\nteam_size = 1\n\
             [[queues]]\nname = \"a\"\nteams = 2\nteam_size = 1",
            &["queues[1]", "name"],
        );
        check(
            "[[queues]]\nteams = 2\nteam_size = 1",
            &["queues[0]", "name"],
        );
        check("queues = []", &["at least one queue"]);
    }

    fn parse(toml: &str) -> Result<Config, String> {
        let config: Config = Figment::new()
            .merge(Toml::string(toml))
            .extract()
            .map_err(|err| err.to_string())?;
        config.validate().map_err(|err| err.to_string())?;
        Ok(config)
    }

    #[test]
    fn sessions_default_to_one_local_game_server() {
        let sessions = parse("").unwrap().sessions;
        assert!(sessions.server_key.is_none() && sessions.token_key.is_none());
        assert_eq!(
            (
                sessions.token_ttl_secs,
                sessions.heartbeat_ttl_secs,
                sessions.ready_timeout_secs
            ),
            (3600, 30, 60)
        );
        assert_eq!(
            sessions.allocator,
            AllocatorConfig::Static {
                endpoints: vec![StaticEndpoint {
                    address: "127.0.0.1:7777".to_owned(),
                    capacity: 1000,
                }],
            }
        );
    }

    #[test]
    fn the_allocator_is_chosen_by_kind() {
        let config = parse(
            "[sessions]\nheartbeat_ttl_secs = 10\n\
             [sessions.allocator]\nkind = \"http\"\nurl = \"http://127.0.0.1:9000/allocate\"",
        )
        .unwrap();
        assert_eq!(config.sessions.heartbeat_ttl_secs, 10);
        assert_eq!(
            config.sessions.allocator,
            AllocatorConfig::Http {
                url: "http://127.0.0.1:9000/allocate".to_owned(),
                timeout_ms: 2000,
                retries: 2,
            }
        );
        let config = parse(
            "[sessions.allocator]\nkind = \"static\"\nendpoints = [\n\
             { address = \"10.0.0.1:7777\", capacity = 8 },\n\
             { address = \"10.0.0.2:7777\", capacity = 16 },\n]",
        )
        .unwrap();
        let AllocatorConfig::Static { endpoints } = config.sessions.allocator else {
            panic!("expected the static allocator");
        };
        assert_eq!(endpoints.len(), 2);
        assert_eq!(endpoints[1].address, "10.0.0.2:7777");
        assert_eq!(endpoints[1].capacity, 16);
        // A static allocator without `endpoints` gets the default server.
        let config = parse("[sessions.allocator]\nkind = \"static\"").unwrap();
        assert_eq!(config.sessions.allocator, AllocatorConfig::default());
    }

    #[test]
    fn bad_sessions_settings_name_their_key() {
        let key = "k".repeat(32);
        parse(&format!(
            "[sessions]\nserver_key = \"{key}\"\ntoken_key = \"{key}\""
        ))
        .unwrap();
        for (toml, words) in [
            (
                "[sessions]\nserver_key = \"short\"",
                &["sessions.server_key", "32 bytes"][..],
            ),
            (
                &format!("[sessions]\nserver_key = \"{key} x\"") as &str,
                &["sessions.server_key", "printable"],
            ),
            ("[sessions]\ntoken_key = \"short\"", &["sessions.token_key"]),
            (
                "[sessions]\ntoken_ttl_secs = 0",
                &["sessions.token_ttl_secs"],
            ),
            (
                "[sessions]\nheartbeat_ttl_secs = 0",
                &["sessions.heartbeat_ttl_secs"],
            ),
            (
                "[sessions]\nready_timeout_secs = 0",
                &["sessions.ready_timeout_secs"],
            ),
            (
                "[sessions.allocator]\nkind = \"static\"\nendpoints = []",
                &["sessions.allocator.endpoints", "at least one"],
            ),
            (
                "[sessions.allocator]\nkind = \"static\"\n\
                 endpoints = [{ address = \"a:1\", capacity = 0 }]",
                &["sessions.allocator.endpoints", "[0]", "capacity"],
            ),
            (
                "[sessions.allocator]\nkind = \"static\"\n\
                 endpoints = [{ address = \"a:1\", capacity = 1 }, { address = \" \", capacity = 1 }]",
                &["sessions.allocator.endpoints", "[1]", "address"],
            ),
            (
                "[sessions.allocator]\nkind = \"static\"\n\
                 endpoints = [{ address = \"a:1\", capacity = 1 }, { address = \"a:1\", capacity = 1 }]",
                &["sessions.allocator.endpoints", "[1]", "twice"],
            ),
            (
                "[sessions.allocator]\nkind = \"http\"\nurl = \"ftp://x\"",
                &["sessions.allocator.url", "http://"],
            ),
            (
                "[sessions.allocator]\nkind = \"http\"\nurl = \"http://x\"\ntimeout_ms = 0",
                &["sessions.allocator.timeout_ms"],
            ),
            (
                "[sessions.allocator]\nkind = \"http\"\nurl = \"http://x\"\nretries = 11",
                &["sessions.allocator.retries"],
            ),
            // Errors of the TOML itself name the key too.
            ("[sessions.allocator]\nkind = \"http\"", &["url"]),
            ("[sessions.allocator]\nkind = \"agones\"", &["agones"]),
            (
                "[sessions.allocator]\nkind = \"http\"\nurl = \"http://x\"\nendpoints = []",
                &["endpoints"],
            ),
            (
                "[sessions.allocator]\nkind = \"static\"\n\
                 endpoints = [{ address = \"a:1\", capacity = 1, weight = 2 }]",
                &["weight"],
            ),
            ("[sessions]\nheartbeat_ttl = 5", &["heartbeat_ttl"]),
        ] {
            let err = parse(toml).unwrap_err();
            for word in words {
                assert!(err.contains(word), "{toml}: {err}");
            }
        }
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
