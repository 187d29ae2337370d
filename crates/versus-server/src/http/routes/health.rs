//! Liveness, per-backend health and Prometheus metrics.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use versus_protocol::{BackendHealth, DetailedHealth, Health};

use crate::http::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(health))
        .routes(routes!(health_detailed))
        .routes(routes!(prometheus_metrics))
}

/// Liveness: answers as long as the process serves HTTP.
#[utoipa::path(get, path = "/health", tag = "ops", responses((status = 200, body = Health)))]
async fn health() -> Json<Health> {
    Json(Health {
        status: "ok".to_owned(),
    })
}

/// Each backend with its status and round-trip latency. 503 when any is down.
#[utoipa::path(
    get, path = "/health/detailed", tag = "ops",
    responses(
        (status = 200, description = "Every backend is up", body = DetailedHealth),
        (status = 503, description = "At least one backend is down", body = DetailedHealth),
    )
)]
async fn health_detailed(State(state): State<AppState>) -> impl IntoResponse {
    let store = state.store.ping().await.map_err(|err| {
        tracing::warn!(error = %err, "store health probe failed");
        "unreachable".to_owned()
    });
    if let Ok(latency) = &store {
        metrics::histogram!("store_query_duration_seconds", "backend" => state.store.backend())
            .record(latency.as_secs_f64());
    }
    let mut backends = vec![backend("store", state.store.backend(), store)];
    if let Some(redis) = &state.redis {
        let probe = redis.ping().await.map_err(|err| err.to_string());
        backends.push(backend("shared_state", "redis", probe));
    }
    if let Some((kind, probe)) = state.bus.probe().await {
        backends.push(backend("events", kind, probe));
    }
    let all_up = backends.iter().all(|b| b.status == "up");
    let body = DetailedHealth {
        status: if all_up { "ok" } else { "degraded" }.to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        uptime_seconds: state.started.elapsed().as_secs(),
        backends,
    };
    let status = if all_up {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}

fn backend(name: &str, kind: &str, probe: Result<std::time::Duration, String>) -> BackendHealth {
    let (status, latency_ms, error) = match probe {
        Ok(latency) => ("up", Some(latency.as_secs_f64() * 1000.0), None),
        Err(error) => ("down", None, Some(error)),
    };
    BackendHealth {
        name: name.to_owned(),
        kind: kind.to_owned(),
        status: status.to_owned(),
        latency_ms,
        error,
    }
}

/// Prometheus text exposition.
#[utoipa::path(
    get, path = "/metrics", tag = "ops",
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain"))
)]
async fn prometheus_metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}
