//! Building and running the server: `App::build` opens the store, binds the listener (port 0
//! allowed, so tests can run many servers at once), raises the open-file limit and assembles the
//! router; `App::run_until` serves until a shutdown future resolves, then drains in-flight
//! requests and closes the store.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use axum::Router;
use secrecy::ExposeSecret;
use tokio::net::TcpListener;
use versus_store::{PostgresStore, SqliteStore, Store};

use crate::config::Config;
use crate::config::SeasonConfig;
use crate::http::game_server::ServerKey;
use crate::http::ratelimit::RateLimits;
use crate::http::serve::{self, ConnectionLimits};
use crate::http::state::AppState;
use crate::services::admin::Admin;
use crate::services::auth::{Accounts, PasswordHasher, TokenIssuer};
use crate::services::cluster::Leadership;
use crate::services::events::{EventBus, InProcessBus};
use crate::services::hub::Hub;
use crate::services::leaderboards::{BoardSpec, Leaderboards};
use crate::services::matchmaking::{Link, Matchmaking};
use crate::services::nats::{NatsBus, NatsOptions};
use crate::services::parties::Parties;
use crate::services::redis::Redis;
use crate::services::sessions::{SessionDeps, Sessions, allocator};
use crate::{http, secrets, telemetry};
use versus_core::season::{Schedule, SoftReset};

pub struct App {
    listener: TcpListener,
    router: Router,
    state: AppState,
    connections: Arc<ConnectionLimits>,
    /// In a cluster: the matchmaker lease, handed over at a clean stop.
    leadership: Option<Arc<Leadership>>,
}

/// Opens the configured store and applies its migrations.
pub async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    Ok(match &config.database_url {
        Some(url) => Arc::new(
            PostgresStore::connect(url.expose_secret(), config.database_max_connections)
                .await
                .context("connecting to PostgreSQL")?,
        ),
        None => {
            let path = config.sqlite_path();
            Arc::new(
                SqliteStore::open(&path)
                    .await
                    .with_context(|| format!("opening {}", path.display()))?,
            )
        }
    })
}

impl App {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let store = open_store(&config).await?;
        let secret = secrets::jwt_secret(&config)?;
        let (server_key, server_key_file) = secrets::server_key(&config)?;
        if let Some(path) = &server_key_file {
            tracing::info!(
                path = %path.display(),
                "game servers authenticate with the server key kept in this file \
                 (set sessions.server_key to choose it)"
            );
        }
        let nats = match &config.nats_url {
            Some(url) => Some(
                NatsBus::connect(NatsOptions {
                    url: url.expose_secret().to_owned(),
                    prefix: config.cluster_prefix.clone(),
                    replicas: config.nats_stream_replicas,
                    per_player: config.realtime.replay_buffer as i64,
                    replay_max_age: Duration::from_secs(config.realtime.replay_max_age_secs),
                    revocations_max_age: Duration::from_secs(
                        config.auth.access_token_ttl_secs + 60,
                    ),
                })
                .await?,
            ),
            None => None,
        };
        let bus: Arc<dyn EventBus> = match &nats {
            Some(nats) => nats.clone(),
            None => Arc::new(InProcessBus::default()),
        };
        let redis = match &config.redis_url {
            Some(url) => Some(Redis::connect(url.expose_secret(), &config.cluster_prefix).await?),
            None => None,
        };
        // Unique per process: presence entries name the node and connection holding a socket.
        let node = format!("node-{}", uuid::Uuid::now_v7().simple());
        let hub = Hub::new(config.realtime.clone());
        if let Some(redis) = &redis {
            hub.join_cluster(redis.clone(), node.clone());
        }
        if bus.numbers_events() {
            tokio::spawn(hub.clone().run_numbered(bus.clone()));
        } else {
            tokio::spawn(hub.clone().run(bus.subscribe()));
        }
        let (formed_tx, formed_rx) = tokio::sync::mpsc::unbounded_channel();
        let boards = (config.queues.iter())
            .map(|q| {
                let season = config.leaderboards.seasons.get(&q.name);
                Ok(BoardSpec {
                    queue: q.name.clone(),
                    rater: q.config.rating.build()?,
                    schedule: season.map_or(Schedule::Endless, SeasonConfig::schedule),
                    reset: season.map_or(
                        SoftReset::new(0.5, 0.5).expect("in range"),
                        SeasonConfig::reset,
                    ),
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let leaderboards =
            Leaderboards::load(store.clone(), boards, config.leaderboards.placement_games)
                .await
                .context("loading the leaderboards")?;
        tokio::spawn(leaderboards.clone().run_schedule());
        if nats.is_some() {
            tokio::spawn(leaderboards.clone().follow(bus.clone()));
        }
        let matchmaking = Matchmaking::start(
            config.queues.iter(),
            &config.matchmaking,
            bus.clone(),
            store.clone(),
            leaderboards.clone(),
            formed_tx,
        );
        // A cluster: one node (the lease holder) runs the queues, the others call it.
        let mut leadership = None;
        if let (Some(redis), Some(nats)) = (&redis, &nats) {
            let lease = Leadership::start(redis.clone(), node.clone()).await;
            let link = Link::new(nats.client(), &config.cluster_prefix);
            matchmaking.join_cluster(lease.clone(), link, redis.clone(), node.clone());
            leadership = Some(lease);
        }
        let deps = SessionDeps {
            store: store.clone(),
            bus: bus.clone(),
            matchmaking: matchmaking.clone(),
            allocator: allocator::from_config(&config.sessions.allocator)?,
            leaderboards: leaderboards.clone(),
            redis: redis.clone(),
        };
        let sessions = Sessions::new(
            deps,
            config.queues.iter(),
            secrets::session_token_key(&config)?
                .expose_secret()
                .to_vec(),
            config.sessions.clone(),
        );
        // Before the first request: sessions the last stop interrupted are settled, and live
        // ones get their heartbeat clocks and game-server slots back.
        sessions
            .recover()
            .await
            .context("recovering game sessions")?;
        tokio::spawn(sessions.clone().run(formed_rx));
        tokio::spawn(sessions.clone().sweep());
        let admin = Admin::new(store.clone(), bus.clone(), matchmaking.clone());
        let parties = Parties::new(
            store.clone(),
            bus.clone(),
            matchmaking.clone(),
            &config.parties,
        );
        parties
            .recover()
            .await
            .context("recovering parties' ready checks")?;
        if let Some(leadership) = &leadership {
            parties.sweep_expired_checks(leadership.clone());
        }
        let accounts = Accounts::new(
            store.clone(),
            Duration::from_secs(config.auth.access_token_ttl_secs),
        );
        tokio::spawn(accounts.clone().run(bus.subscribe()));
        let state = AppState {
            accounts,
            bus,
            hub,
            matchmaking,
            server_key: Arc::new(ServerKey::new(&server_key)),
            sessions,
            admin,
            leaderboards,
            parties,
            tokens: Arc::new(TokenIssuer::new(secret.expose_secret(), &config.auth)),
            hasher: PasswordHasher::new(
                &config.auth.argon2,
                config.auth.max_concurrent_hashes,
                config.auth.hash_queue,
            )?,
            limits: RateLimits::new(&config.limits, redis.clone()),
            redis,
            metrics: telemetry::metrics_handle(),
            started: Instant::now(),
            store,
            config: Arc::new(config),
        };
        let router = http::router(state.clone());
        // Every connection is a descriptor: the usual soft default (1024) would otherwise be
        // the real connection cap.
        let fd_limit = versus_loadgen::raise_open_file_limit();
        let connections = ConnectionLimits::new(&state.config.limits, fd_limit);
        let listener = TcpListener::bind(state.config.bind)
            .await
            .with_context(|| format!("binding {}", state.config.bind))?;
        Ok(Self {
            listener,
            router,
            state,
            connections,
            leadership,
        })
    }

    /// The connection caps in force and the connections open, for tests and embedders.
    pub fn connections(&self) -> Arc<ConnectionLimits> {
        self.connections.clone()
    }

    /// The shared state, for tests and embedders that publish events or inspect the hub.
    pub fn state(&self) -> AppState {
        self.state.clone()
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Serves until `shutdown` resolves; then stops accepting, gives in-flight requests up to
    /// `shutdown_grace_secs` to finish, and closes the store.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Self {
            listener,
            router,
            state,
            connections,
            leadership,
        } = self;
        tracing::info!(
            addr = %listener.local_addr()?,
            store = state.store.backend(),
            max_connections = connections.max(),
            "versus is serving"
        );

        let janitor = tokio::spawn({
            let state = state.clone();
            async move {
                let mut every = tokio::time::interval(Duration::from_secs(60));
                loop {
                    every.tick().await;
                    state.limits.forget_idle();
                    state.hub.forget_idle();
                    state.matchmaking.forget_finished();
                    state.accounts.forget_old();
                }
            }
        });

        let (stopping_tx, stopping_rx) = tokio::sync::watch::channel(false);
        let hub = state.hub.clone();
        let signal = async move {
            shutdown.await;
            tracing::info!("shutdown requested; draining in-flight requests");
            // WebSockets never finish on their own: ask them to close so the drain can end.
            hub.close_all();
            let _ = stopping_tx.send(true);
        };
        let serve = serve::serve(listener, router, connections, signal);
        let grace = Duration::from_secs(state.config.shutdown_grace_secs);
        let deadline = async move {
            let mut stopping = stopping_rx;
            let _ = stopping.wait_for(|stopping| *stopping).await;
            tokio::time::sleep(grace).await;
        };
        tokio::select! {
            () = serve => {}
            () = deadline => tracing::warn!(grace_secs = grace.as_secs(), "in-flight requests outlived the shutdown grace period"),
        }
        janitor.abort();
        // The next node takes the matchmaker at its next renewal (~1 s), not when the lease
        // would have run out; the searching tickets are in the journal.
        if let Some(leadership) = leadership {
            leadership.release().await;
        }
        state.store.close().await;
        tracing::info!("versus stopped");
        Ok(())
    }
}
