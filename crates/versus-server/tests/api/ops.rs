//! Health, metrics, the OpenAPI document, request ids, panics and graceful shutdown.

use std::time::Duration;

use axum::routing::get;
use serde_json::Value;

use crate::on_both_backends;
use crate::support::{Backend, expect_problem, spawn_app, spawn_app_with, test_config, unique};

on_both_backends!(
    health_reports_each_backend,
    in_flight_requests_finish_on_shutdown
);

async fn health_reports_each_backend(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    assert_eq!(app.client.health().await.unwrap().status, "ok");
    let detailed = app.client.health_detailed().await.unwrap();
    assert_eq!(detailed.status, "ok");
    let store = &detailed.backends[0];
    assert_eq!(store.name, "store");
    assert_eq!(
        store.kind,
        if backend == Backend::Sqlite {
            "sqlite"
        } else {
            "postgres"
        }
    );
    assert_eq!(store.status, "up");
    assert!(store.latency_ms.unwrap() >= 0.0);
    app.finish().await;
}

async fn in_flight_requests_finish_on_shutdown(backend: Backend) {
    // A deliberately slow password hash keeps a login in flight while shutdown starts.
    let Some(app) = spawn_app_with(backend, |config| {
        config.auth.argon2 = versus_server::config::Argon2Config {
            memory_kib: 64 * 1024,
            iterations: 4,
            parallelism: 1,
        };
    })
    .await
    else {
        return;
    };
    let name = unique("slow");
    app.client
        .register(&name, "correct horse battery")
        .await
        .unwrap();
    let client = app.client.clone();
    let login = tokio::spawn(async move { client.login(&name, "correct horse battery").await });
    tokio::time::sleep(Duration::from_millis(30)).await;
    let addr = app.addr;
    app.finish().await;
    login.await.unwrap().expect("the in-flight login completes");
    // And the listener is closed.
    assert!(reqwest::get(format!("http://{addr}/health")).await.is_err());
}

#[tokio::test]
async fn metrics_count_requests_per_route_and_status() {
    let Some(app) = spawn_app(Backend::Sqlite).await else {
        return;
    };
    app.client.health().await.unwrap();
    let _ = app
        .http
        .get(app.url("/api/v1/players/me"))
        .send()
        .await
        .unwrap();
    let text = app.metrics().await;
    assert!(
        text.contains("http_requests_total{method=\"GET\",route=\"/health\",status=\"200\"}"),
        "{text}"
    );
    assert!(
        text.contains(
            "http_requests_total{method=\"GET\",route=\"/api/v1/players/me\",status=\"401\"}"
        ),
        "{text}"
    );
    assert!(text.contains("http_request_duration_seconds_bucket{method=\"GET\",route=\"/health\",status=\"200\",le=\"0.005\"}"), "{text}");
    app.finish().await;
}

#[tokio::test]
async fn openapi_documents_every_endpoint_and_error() {
    let Some(app) = spawn_app(Backend::Sqlite).await else {
        return;
    };
    let doc: Value = app
        .http
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    let paths = doc["paths"].as_object().unwrap();
    let expected = [
        ("/health", "get"),
        ("/health/detailed", "get"),
        ("/metrics", "get"),
        ("/api/v1/auth/register", "post"),
        ("/api/v1/auth/login", "post"),
        ("/api/v1/auth/device", "post"),
        ("/api/v1/auth/link", "post"),
        ("/api/v1/auth/refresh", "post"),
        ("/api/v1/auth/logout", "post"),
        ("/api/v1/auth/profile", "get"),
        ("/api/v1/players/me", "get"),
        ("/api/v1/players/me", "patch"),
        ("/api/v1/players/{id}", "get"),
        ("/api/v1/queue/join", "post"),
        ("/api/v1/queue/leave", "delete"),
        ("/api/v1/queue/status", "get"),
        ("/api/v1/matchmaking/preferences", "get"),
        ("/api/v1/matchmaking/preferences", "put"),
        ("/api/v1/matchmaking/statistics", "get"),
        ("/ws", "get"),
    ];
    for (path, method) in expected {
        let operation = &paths[path][method];
        assert!(operation.is_object(), "{method} {path} is documented");
        let responses = operation["responses"].as_object().unwrap();
        for (status, response) in responses {
            if status.starts_with('4') || status.starts_with('5') {
                let content = response["content"].as_object().unwrap();
                assert!(
                    content.contains_key("application/problem+json") || path == "/health/detailed",
                    "{method} {path} {status} is a problem document"
                );
            }
        }
        let documented_error = responses
            .keys()
            .any(|s| s.starts_with('4') || s.starts_with('5'));
        assert!(
            documented_error || path.starts_with("/health") || path == "/metrics",
            "{method} {path} documents its errors"
        );
    }
    assert!(doc["components"]["schemas"]["Problem"].is_object());
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    let docs = app.http.get(app.url("/docs/")).send().await.unwrap();
    assert_eq!(docs.status(), 200);
    assert!(docs.text().await.unwrap().contains("swagger"));
    app.finish().await;
}

#[tokio::test]
async fn request_ids_are_echoed_and_kept() {
    let Some(app) = spawn_app(Backend::Sqlite).await else {
        return;
    };
    let response = app.http.get(app.url("/health")).send().await.unwrap();
    let generated = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(generated.len(), 36, "a UUID: {generated}");
    let response = app
        .http
        .get(app.url("/nowhere"))
        .header("x-request-id", "trace-me-123")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "trace-me-123");
    let problem = expect_problem(response, 404, "not_found").await;
    assert_eq!(problem["request_id"], "trace-me-123");
    app.finish().await;
}

async fn boom() -> &'static str {
    panic!("handler bug")
}

#[tokio::test]
async fn a_panicking_handler_answers_500_and_the_server_lives_on() {
    let config = test_config(std::env::temp_dir());
    let routes = axum::Router::new()
        .route("/boom", get(boom))
        .route("/fine", get(|| async { "fine" }));
    let app = versus_server::http::with_middleware(routes, &config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    for _ in 0..3 {
        let response = reqwest::get(format!("http://{addr}/boom")).await.unwrap();
        let problem = expect_problem(response, 500, "internal_error").await;
        assert!(
            !problem["detail"].as_str().unwrap().contains("handler bug"),
            "panic message is not leaked"
        );
    }
    assert_eq!(
        reqwest::get(format!("http://{addr}/fine"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "fine"
    );
    server.abort();
}

/// Every error body is written once, by the problem middleware: an `ApiError` arrives as a value
/// (its problem, with the request id added), a bare error status gets the problem for its
/// status, and a handler's own JSON answer on an error status (the 503 of `/health/detailed`)
/// is left as it is.
#[tokio::test]
async fn error_bodies_are_written_once_by_the_middleware() {
    use axum::http::StatusCode;
    use versus_server::http::error::ApiError;

    let config = test_config(std::env::temp_dir());
    let routes = axum::Router::new()
        .route(
            "/conflict",
            get(|| async {
                ApiError::Conflict {
                    code: "already_queued",
                    field: Some("queue"),
                    detail: "already searching".into(),
                }
            }),
        )
        .route("/teapot", get(|| async { StatusCode::IM_A_TEAPOT }))
        .route(
            "/degraded",
            get(|| async {
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    axum::Json(serde_json::json!({"status": "degraded"})),
                )
            }),
        );
    let app = versus_server::http::with_middleware(routes, &config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let get = |path: &str| {
        reqwest::Client::new()
            .get(format!("http://{addr}{path}"))
            .header("x-request-id", "rid-7")
            .send()
    };
    let problem = expect_problem(get("/conflict").await.unwrap(), 409, "already_queued").await;
    assert_eq!(problem["field"], "queue");
    assert_eq!(problem["detail"], "already searching");
    assert_eq!(problem["request_id"], "rid-7");
    let problem = expect_problem(get("/teapot").await.unwrap(), 418, "bad_request").await;
    assert_eq!(problem["request_id"], "rid-7");
    let degraded = get("/degraded").await.unwrap();
    assert_eq!(degraded.status(), 503);
    let body: serde_json::Value = degraded.json().await.unwrap();
    assert_eq!(body, serde_json::json!({"status": "degraded"}));
    server.abort();
}
