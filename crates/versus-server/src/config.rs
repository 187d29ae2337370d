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
                let key = key.as_str();
                !NON_CONFIG_ENV.contains(&key) && !key.starts_with("test_")
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
