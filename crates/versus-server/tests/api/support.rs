//! `spawn_app`: a real server per test, with its own data dir (SQLite) or database (PostgreSQL).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use secrecy::{ExposeSecret as _, SecretString};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use versus_client::Client;
use versus_server::config::{
    Argon2Config, AuthConfig, LimitsConfig, LogConfig, LogFormat, RateConfig,
};
use versus_server::http::serve::ConnectionLimits;
use versus_server::{App, Config};
use versus_store::testing::{TestDatabase, postgres_test_db};

/// The signing key of every test server, so tests can forge tokens (expired, other issuer).
pub const JWT_SECRET: &str = "test-signing-key-that-is-long-enough-0123456789";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct TestApp {
    pub addr: SocketAddr,
    pub state: versus_server::http::state::AppState,
    pub connections: Arc<ConnectionLimits>,
    pub client: Client,
    pub http: reqwest::Client,
    pub config: Config,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<anyhow::Result<()>>>,
    database: Option<TestDatabase>,
    data_dir: PathBuf,
    /// What a cluster's first node removes when it finishes: `(NATS url, Redis url, prefix)`.
    nats_stream: Option<(String, String, String)>,
}

pub fn test_config(data_dir: PathBuf) -> Config {
    let defaults = Config::default();
    let generous = RateConfig {
        per_minute: 100_000,
        burst: 10_000,
    };
    Config {
        bind: SocketAddr::from(([127, 0, 0, 1], 0)),
        data_dir,
        log: LogConfig {
            level: "warn".into(),
            format: LogFormat::Json,
        },
        auth: AuthConfig {
            jwt_secret: Some(SecretString::from(JWT_SECRET)),
            // The cheapest argon2id parameters: tests measure behaviour, not hashing cost.
            argon2: Argon2Config {
                memory_kib: 1024,
                iterations: 1,
                parallelism: 1,
            },
            ..defaults.auth
        },
        limits: LimitsConfig {
            auth_per_ip: generous,
            login_per_username: generous,
            ..defaults.limits
        },
        // Fast ticks keep the real-time tests short.
        matchmaking: versus_server::config::MatchmakingConfig {
            tick_ms: 50,
            ..defaults.matchmaking
        },
        ..defaults
    }
}

/// Starts a server on `backend`, or returns `None` when PostgreSQL is unreachable and skipping
/// is allowed (the store's test helper prints why, and panics instead under CI).
pub async fn spawn_app(backend: Backend) -> Option<TestApp> {
    spawn_app_with(backend, |_| {}).await
}

pub async fn spawn_app_with(backend: Backend, tweak: impl FnOnce(&mut Config)) -> Option<TestApp> {
    let data_dir = std::env::temp_dir().join(format!("versus-test-{}", uuid::Uuid::now_v7()));
    let mut config = test_config(data_dir.clone());
    let database = match backend {
        Backend::Sqlite => None,
        Backend::Postgres => {
            let db = postgres_test_db().await?;
            config.database_url = Some(SecretString::from(db.url.clone()));
            config.database_max_connections = 8;
            Some(db)
        }
    };
    tweak(&mut config);
    let mut app = start(config).await;
    app.database = database;
    app.data_dir = data_dir;
    Some(app)
}

/// `n` servers as one cluster: one PostgreSQL database, one data dir (so one set of generated
/// secrets) and one NATS stream (a prefix of its own). `None` when PostgreSQL or NATS is
/// unreachable and skipping is allowed. Finish the others before the first, which removes
/// what they share.
pub async fn spawn_cluster(n: usize, tweak: impl Fn(&mut Config)) -> Option<Vec<TestApp>> {
    let nats = versus_server::services::nats::test_url().await?;
    let redis = versus_server::services::redis::test_url().await?;
    let database = postgres_test_db().await?;
    let data_dir = std::env::temp_dir().join(format!("versus-test-{}", uuid::Uuid::now_v7()));
    let prefix = format!("t{}", uuid::Uuid::now_v7().simple());
    let mut nodes = Vec::with_capacity(n);
    for _ in 0..n {
        let mut config = test_config(data_dir.clone());
        config.database_url = Some(SecretString::from(database.url.clone()));
        config.database_max_connections = 8;
        config.nats_url = Some(SecretString::from(nats.clone()));
        config.redis_url = Some(SecretString::from(redis.clone()));
        config.cluster_prefix = prefix.clone();
        tweak(&mut config);
        nodes.push(start(config).await);
    }
    nodes[0].database = Some(database);
    nodes[0].data_dir = data_dir;
    nodes[0].nats_stream = Some((nats, redis, prefix));
    Some(nodes)
}

async fn start(config: Config) -> TestApp {
    versus_server::telemetry::init_logging(&config.log, "versus-test");
    let app = App::build(config.clone())
        .await
        .expect("the test server builds");
    let addr = app.local_addr();
    let state = app.state();
    let connections = app.connections();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async move {
        let _ = stopped.await;
    }));
    let base = format!("http://{addr}");
    TestApp {
        addr,
        state,
        connections,
        client: Client::new(base),
        http: reqwest::Client::new(),
        config,
        stop: Some(stop),
        server: Some(server),
        database: None,
        data_dir: PathBuf::new(),
        nats_stream: None,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The Prometheus exposition of `/metrics`.
    pub async fn metrics(&self) -> String {
        let response = self.http.get(self.url("/metrics")).send().await.unwrap();
        response.text().await.unwrap()
    }

    /// Stops the server gracefully and starts it again on the same data (new port).
    pub async fn restart(mut self) -> TestApp {
        self.shutdown().await;
        let mut restarted = start(self.config.clone()).await;
        restarted.database = self.database.take();
        restarted.data_dir = std::mem::take(&mut self.data_dir);
        restarted.nats_stream = self.nats_stream.take();
        restarted
    }

    async fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server
                .await
                .expect("server task")
                .expect("server stops cleanly");
        }
    }

    /// Stops the server and removes its data. Tests call this at the end; a panicking test
    /// leaves its PostgreSQL database for the store helper's hourly sweep.
    pub async fn finish(mut self) {
        self.shutdown().await;
        if let Some(db) = self.database.take() {
            db.drop().await;
        }
        if !self.data_dir.as_os_str().is_empty() {
            let _ = std::fs::remove_dir_all(&self.data_dir);
        }
        if let Some((nats, redis, prefix)) = self.nats_stream.take() {
            let _ = versus_server::services::nats::delete_stream(&nats, &prefix).await;
            if let Ok(redis) = versus_server::services::redis::Redis::connect(&redis, &prefix).await
            {
                let _ = redis.forget_everything().await;
            }
        }
    }

    /// Bans a player in the database behind the server's back: there is no ban endpoint yet.
    pub async fn ban(&self, player_id: uuid::Uuid) {
        macro_rules! ban_on {
            ($pool:expr) => {{
                let pool = $pool.await.unwrap();
                let sql = "UPDATE players SET banned = TRUE WHERE id = $1";
                sqlx::query(sql)
                    .bind(player_id)
                    .execute(&pool)
                    .await
                    .unwrap();
                pool.close().await;
            }};
        }
        match &self.config.database_url {
            Some(url) => ban_on!(sqlx::PgPool::connect(url.expose_secret())),
            None => ban_on!(sqlx::SqlitePool::connect_with(
                sqlx::sqlite::SqliteConnectOptions::new().filename(self.config.sqlite_path())
            )),
        }
    }

    /// Registers a fresh player and returns a client authenticated as them.
    pub async fn player(&self, username: &str) -> Player {
        let response = self
            .client
            .register(username, "correct horse battery")
            .await
            .expect("register");
        Player {
            id: response.player.id,
            refresh_token: response.tokens.refresh_token.clone(),
            client: self.client.authenticated(response.tokens.access_token),
        }
    }
}

pub struct Player {
    pub id: uuid::Uuid,
    pub refresh_token: String,
    pub client: Client,
}

/// Declares each listed `async fn name(backend: Backend)` as a test on SQLite and on PostgreSQL.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test] async fn $name() { super::$name($crate::support::Backend::Sqlite).await })*
        }
        mod postgres {
            $(#[tokio::test] async fn $name() { super::$name($crate::support::Backend::Postgres).await })*
        }
    };
}

/// A unique username per call, so tests sharing a server never collide.
pub fn unique(prefix: &str) -> String {
    let id = uuid::Uuid::now_v7().simple().to_string();
    format!("{prefix}_{}", &id[id.len() - 12..])
}

/// Asserts a response is a problem document with the given status and code; returns its body.
pub async fn expect_problem(
    response: reqwest::Response,
    status: u16,
    code: &str,
) -> serde_json::Value {
    assert_eq!(response.status().as_u16(), status, "status");
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(content_type.as_deref(), Some("application/problem+json"));
    let body: serde_json::Value = response.json().await.expect("a JSON problem body");
    assert_eq!(body["code"], code, "problem code in {body}");
    assert_eq!(body["status"], status);
    assert!(body["request_id"].is_string(), "request id in {body}");
    body
}
