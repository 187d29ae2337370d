//! The HTTP edge: the accept loop and its connection limits, the router and the one middleware
//! stack every route runs inside, extractors, the one error type, the OpenAPI description, the
//! WebSocket connection, and one module of handlers per resource.
//!
//! The edge parses requests into domain types, calls a service or the store, and maps the answer
//! (or the service's error enum) to wire types. It owns every HTTP concern: status codes, problem
//! documents, headers, rate limits by client IP. Services never see any of it.

pub mod auth;
pub mod error;
pub mod extract;
pub mod game_server;
pub mod openapi;
pub mod ratelimit;
pub mod routes;
pub mod serve;
pub mod socket;
pub mod state;

use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
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

use crate::config::Config;
use error::problem_for_status;
use extract::BodyLimit;
use openapi::ApiDoc;
use state::AppState;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Every route of the API, the OpenAPI document and its viewer, inside [`with_middleware`].
pub fn router(state: AppState) -> Router {
    let (api_router, routes_api) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(routes::health::router())
        .merge(routes::auth::router())
        .merge(routes::players::router())
        .merge(routes::queue::router())
        .merge(routes::parties::router())
        .merge(routes::sessions::router())
        .merge(routes::admin::router())
        .merge(routes::leaderboards::router())
        .merge(routes::ws::router())
        .split_for_parts();
    let api = openapi::finish(routes_api, &state.config);
    let routes = api_router
        .merge(SwaggerUi::new("/docs").external_url_unchecked("/openapi.json", api))
        .with_state(state.clone());
    with_middleware(routes, &state.config)
}

/// The layers every route runs inside: request ids, tracing, problem bodies, panic catching,
/// body limit, timeout and metrics. Public so tests can wrap routes of their own (e.g. one that
/// panics) in exactly the production stack.
pub fn with_middleware(routes: Router, config: &Config) -> Router {
    let limits = &config.limits;
    routes
        // Bare statuses: `problem_bodies` gives every error its problem document.
        .fallback(|| async { StatusCode::NOT_FOUND })
        .method_not_allowed_fallback(|| async { StatusCode::METHOD_NOT_ALLOWED })
        // Layers wrap from the bottom up: the last one sees the request first.
        .layer(middleware::from_fn(record_http_metrics))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            config.request_timeout(),
        ))
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        .layer(axum::Extension(BodyLimit(limits.max_body_bytes)))
        .layer(CatchPanicLayer::custom(|_panic| {
            tracing::error!("a request handler panicked");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
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

/// Writes every error response's body, once: an [`ApiError`](error::ApiError) leaves its problem
/// as a response extension (no body), and anything else that fails — a layer's timeout or body
/// limit, axum's 405, a panic — gets the problem for its status. Either way the body is
/// `application/problem+json` and carries the request id. A handler's own JSON body on an error
/// status (the 503 of `/health/detailed` lists the backends) is its answer and stays.
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
    let (mut parts, body) = response.into_parts();
    let mut problem = match parts.extensions.remove::<Problem>() {
        Some(problem) => problem,
        None if is_json(&parts.headers) => return Response::from_parts(parts, body),
        None => problem_for_status(status),
    };
    problem.request_id = request_id;
    let body = serde_json::to_vec(&problem).expect("a Problem always serialises");
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(PROBLEM_CONTENT_TYPE),
    );
    Response::from_parts(parts, Body::from(body))
}

fn is_json(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes() == b"application/json")
}

/// Records request count and latency per route template (never the raw path, which would make
/// one series per player id) and status.
async fn record_http_metrics(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    let labels = [("method", method), ("route", route), ("status", status)];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels)
        .record(started.elapsed().as_secs_f64());
    response
}
