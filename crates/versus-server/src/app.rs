//! Building and running the server: `App::build` opens the store, binds the listener (port 0
//! allowed, so tests can run many servers at once) and assembles the router; `App::run_until`
//! serves until a shutdown future resolves, then drains in-flight requests and closes the store.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderName, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use secrecy::ExposeSecret;
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{
    MakeRequestUuid, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::SwaggerUi;
use versus_protocol::Problem;
use versus_protocol::problem::PROBLEM_CONTENT_TYPE;
use versus_store::{PostgresStore, SqliteStore, Store};

use crate::auth::{PasswordHasher, TokenIssuer};
use crate::config::Config;
use crate::error::{problem_for_status, problem_response};
use crate::events::{EventBus, InProcessBus};
use crate::extract::BodyLimit;
use crate::matchmaking::Matchmaking;
use crate::openapi::ApiDoc;
use crate::ratelimit::RateLimits;
use crate::realtime::Hub;
use crate::state::AppState;
use crate::{routes, secrets, telemetry};

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

pub struct App {
    listener: TcpListener,
    router: Router,
    state: AppState,
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
        let bus: Arc<dyn EventBus> = Arc::new(InProcessBus::default());
        let hub = Hub::new(config.realtime.clone());
        tokio::spawn(hub.clone().run(bus.subscribe()));
        let matchmaking = Matchmaking::start(&config.queues, &config.matchmaking, bus.clone())?;
        let state = AppState {
            bus,
            hub,
            matchmaking,
            tokens: Arc::new(TokenIssuer::new(secret.expose_secret(), &config.auth)),
            hasher: PasswordHasher::new(&config.auth.argon2, config.auth.max_concurrent_hashes)?,
            limits: RateLimits::new(&config.limits),
            metrics: telemetry::metrics_handle(),
            started: Instant::now(),
            store,
            config: Arc::new(config),
        };
        let router = router(state.clone());
        let listener = TcpListener::bind(state.config.bind)
            .await
            .with_context(|| format!("binding {}", state.config.bind))?;
        Ok(Self {
            listener,
            router,
            state,
        })
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
        } = self;
        tracing::info!(addr = %listener.local_addr()?, store = state.store.backend(), "versus is serving");

        let janitor = tokio::spawn({
            let state = state.clone();
            async move {
                let mut every = tokio::time::interval(Duration::from_secs(60));
                loop {
                    every.tick().await;
                    state.limits.forget_idle();
                    state.hub.forget_idle();
                    state.matchmaking.forget_finished();
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
        let serve = axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(signal);
        let grace = Duration::from_secs(state.config.shutdown_grace_secs);
        let deadline = async move {
            let mut stopping = stopping_rx;
            let _ = stopping.wait_for(|stopping| *stopping).await;
            tokio::time::sleep(grace).await;
        };
        tokio::select! {
            served = serve => served.context("serving HTTP")?,
            () = deadline => tracing::warn!(grace_secs = grace.as_secs(), "in-flight requests outlived the shutdown grace period"),
        }
        janitor.abort();
        state.store.close().await;
        tracing::info!("versus stopped");
        Ok(())
    }
}

pub fn router(state: AppState) -> Router {
    let (api_router, api) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(routes::health::router())
        .merge(routes::auth::router())
        .merge(routes::players::router())
        .merge(routes::queue::router())
        .merge(routes::ws::router())
        .split_for_parts();
    let routes = api_router
        .merge(SwaggerUi::new("/docs").url("/openapi.json", api))
        .with_state(state.clone());
    with_middleware(routes, &state.config)
}

/// The layers every route runs inside: request ids, tracing, problem bodies, panic catching,
/// body limit, timeout and metrics. Public so tests can wrap routes of their own (e.g. one that
/// panics) in exactly the production stack.
pub fn with_middleware(routes: Router, config: &Config) -> Router {
    let limits = &config.limits;
    routes
        .fallback(|| async {
            problem_response(
                StatusCode::NOT_FOUND,
                &problem_for_status(StatusCode::NOT_FOUND),
            )
        })
        .method_not_allowed_fallback(|| async {
            problem_response(
                StatusCode::METHOD_NOT_ALLOWED,
                &problem_for_status(StatusCode::METHOD_NOT_ALLOWED),
            )
        })
        // Layers wrap from the bottom up: the last one sees the request first.
        .layer(middleware::from_fn(telemetry::record_http_metrics))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            config.request_timeout(),
        ))
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        .layer(axum::Extension(BodyLimit(limits.max_body_bytes)))
        .layer(CatchPanicLayer::custom(|_panic| {
            tracing::error!("a request handler panicked");
            problem_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                &problem_for_status(StatusCode::INTERNAL_SERVER_ERROR),
            )
        }))
        .layer(middleware::from_fn(problem_bodies))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_request(())
                .on_response(
                    |response: &Response, latency: Duration, _span: &tracing::Span| {
                        tracing::info!(
                            status = response.status().as_u16(),
                            latency_ms = latency.as_secs_f64() * 1000.0,
                            "request completed"
                        );
                    },
                ),
        )
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
}

/// The span every log line of a request is written in. Only the path is recorded: the query
/// string may carry a token.
fn request_span(request: &Request<Body>) -> tracing::Span {
    let trace_id = request
        .extensions()
        .get::<RequestId>()
        .and_then(|id| id.header_value().to_str().ok())
        .unwrap_or("-");
    tracing::info_span!(
        "request",
        method = %request.method(),
        path = %request.uri().path(),
        trace_id = %trace_id,
        player_id = tracing::field::Empty,
    )
}

/// Guarantees that every error leaves as `application/problem+json` carrying the request id:
/// handler errors already are problems and get the id added; errors produced by layers or by
/// axum itself (timeouts, 405, body limits) are replaced by a problem for their status.
async fn problem_bodies(request: Request, next: Next) -> Response {
    let request_id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes() == PROBLEM_CONTENT_TYPE.as_bytes());
    let (parts, body) = response.into_parts();
    let mut problem = match is_problem {
        true => match to_bytes(body, 64 * 1024)
            .await
            .ok()
            .and_then(|b| serde_json::from_slice::<Problem>(&b).ok())
        {
            Some(problem) => problem,
            None => problem_for_status(status),
        },
        false => problem_for_status(status),
    };
    problem.request_id = request_id;
    let mut rebuilt = problem_response(status, &problem);
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            rebuilt.headers_mut().insert(name.clone(), value.clone());
        }
    }
    if let Some(allow) = parts.headers.get(header::ALLOW) {
        rebuilt.headers_mut().insert(header::ALLOW, allow.clone());
    }
    rebuilt.into_response()
}
