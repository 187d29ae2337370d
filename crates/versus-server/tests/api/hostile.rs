//! Hostile and malformed input: every answer is a 4xx problem document, never a 500 or a hang,
//! and the server keeps serving.

use reqwest::Method;
use serde_json::json;

use crate::on_both_backends;
use crate::support::{Backend, expect_problem, spawn_app, unique};

on_both_backends!(
    malformed_bodies_are_4xx_naming_the_field,
    odd_requests_are_4xx,
    strange_but_valid_input_is_kept_verbatim
);

async fn malformed_bodies_are_4xx_naming_the_field(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let register = app.url("/api/v1/auth/register");
    let too_long = "p".repeat(129);
    let cases: Vec<(serde_json::Value, &str, Option<&str>)> = vec![
        (
            json!({"username": 5, "password": "correct horse"}),
            "malformed_body",
            Some("username"),
        ),
        (
            json!({"username": "okname", "password": ["x"]}),
            "malformed_body",
            Some("password"),
        ),
        (
            json!({"username": "okname"}),
            "malformed_body",
            Some("password"),
        ),
        (
            json!({"username": "okname", "password": "correct horse", "admin": true}),
            "malformed_body",
            Some("admin"),
        ),
        (
            json!({"username": "no spaces", "password": "correct horse"}),
            "validation_failed",
            Some("username"),
        ),
        (
            json!({"username": "ab", "password": "correct horse"}),
            "validation_failed",
            Some("username"),
        ),
        (
            json!({"username": "x".repeat(33), "password": "correct horse"}),
            "validation_failed",
            Some("username"),
        ),
        (
            json!({"username": "名前名前", "password": "correct horse"}),
            "validation_failed",
            Some("username"),
        ),
        (
            json!({"username": "a' OR '1'='1", "password": "correct horse"}),
            "validation_failed",
            Some("username"),
        ),
        (
            json!({"username": "okname", "password": "short"}),
            "validation_failed",
            Some("password"),
        ),
        (
            json!({"username": "okname", "password": too_long}),
            "validation_failed",
            Some("password"),
        ),
        (
            json!({"username": "okname", "password": "correct horse", "display_name": " "}),
            "validation_failed",
            Some("display_name"),
        ),
        (json!([1, 2, 3]), "malformed_body", None),
        (json!(null), "malformed_body", None),
    ];
    for (body, code, field) in cases {
        let response = app.http.post(&register).json(&body).send().await.unwrap();
        let problem = expect_problem(response, 400, code).await;
        assert_eq!(problem["field"].as_str(), field, "for {body}");
    }

    let raw_cases: Vec<(&[u8], u16, &str)> = vec![
        (b"", 400, "malformed_body"),
        (b"{", 400, "malformed_body"),
        (b"{\"username\": \"a\", }", 400, "malformed_body"),
        (b"\xff\xfe\x00garbage", 400, "malformed_body"),
        (
            b"{\"username\":\"okname\",\"password\":\"correct horse\"} {}",
            400,
            "malformed_body",
        ),
    ];
    for (bytes, status, code) in raw_cases {
        let response = app
            .http
            .post(&register)
            .header("content-type", "application/json")
            .body(bytes.to_vec())
            .send()
            .await
            .unwrap();
        expect_problem(response, status, code).await;
    }

    // Deep nesting is refused by the JSON parser's recursion limit, not by a stack overflow.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let response = app
        .http
        .post(&register)
        .header("content-type", "application/json")
        .body(deep)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        413,
        "100 kB is over the default 64 KiB limit"
    );
    let deep = format!("{}{}", "[".repeat(5_000), "]".repeat(5_000));
    let response = app
        .http
        .post(&register)
        .header("content-type", "application/json")
        .body(deep)
        .send()
        .await
        .unwrap();
    expect_problem(response, 400, "malformed_body").await;

    // Oversized bodies, with and without a Content-Length.
    let huge = json!({"username": "okname", "password": "x".repeat(200_000)});
    let response = app.http.post(&register).json(&huge).send().await.unwrap();
    expect_problem(response, 413, "payload_too_large").await;
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..100).map(|_| Ok(vec![b' '; 4096])).collect();
    let response = app
        .http
        .post(&register)
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    expect_problem(response, 413, "payload_too_large").await;

    // Wrong or missing content type.
    let response = app
        .http
        .post(&register)
        .body(r#"{"username":"okname","password":"correct horse"}"#)
        .send()
        .await
        .unwrap();
    expect_problem(response, 415, "unsupported_media_type").await;
    let response = app
        .http
        .post(&register)
        .header("content-type", "text/plain")
        .body(r#"{"username":"okname","password":"correct horse"}"#)
        .send()
        .await
        .unwrap();
    expect_problem(response, 415, "unsupported_media_type").await;

    // And it still works.
    app.client
        .register(&unique("still"), "correct horse battery")
        .await
        .unwrap();
    app.finish().await;
}

async fn odd_requests_are_4xx(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let player = app.player(&unique("odd")).await;
    let token = player.client.access_token().unwrap().to_owned();

    for (method, path, status, code) in [
        (
            Method::DELETE,
            "/api/v1/auth/register",
            405,
            "method_not_allowed",
        ),
        (Method::GET, "/api/v1/auth/login", 405, "method_not_allowed"),
        (Method::PUT, "/api/v1/players/me", 405, "method_not_allowed"),
        (Method::GET, "/api/v1/nothing-here", 404, "not_found"),
        (
            Method::GET,
            "/api/v1/players/not-a-uuid",
            400,
            "validation_failed",
        ),
        (
            Method::GET,
            "/api/v1/players/' OR 1=1 --",
            400,
            "validation_failed",
        ),
        (
            Method::GET,
            "/api/v1/players/%F0%9F%8E%AE",
            400,
            "validation_failed",
        ),
        (
            Method::GET,
            "/api/v1/players/00000000-0000-0000-0000-000000000000",
            404,
            "not_found",
        ),
    ] {
        let response = app
            .http
            .request(method.clone(), app.url(path))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        let problem = expect_problem(response, status, code).await;
        if code == "validation_failed" {
            assert_eq!(problem["field"], "id");
        }
    }
    let response = app
        .http
        .get(app.url("/api/v1/players/%FF%FE"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_client_error());
    expect_problem(response, 400, "bad_request").await;
    app.finish().await;
}

async fn strange_but_valid_input_is_kept_verbatim(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let name = unique("Robert_DROP");
    // Passwords may hold anything printable or not: they are only ever hashed.
    let password = "pässwörd'; DROP TABLE players; -- 🎮\u{0}";
    let registered = app
        .http
        .post(app.url("/api/v1/auth/register"))
        .json(&json!({"username": name, "password": password, "display_name": "Ĵőšé ✨ 名前"}))
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status(), 201);
    let body: serde_json::Value = registered.json().await.unwrap();
    assert_eq!(body["player"]["display_name"], "Ĵőšé ✨ 名前");
    app.client.login(&name, password).await.unwrap();
    assert_eq!(
        app.client
            .login(&name, "pässwörd'; DROP TABLE players; -- 🎮")
            .await
            .unwrap_err()
            .code(),
        Some("invalid_credentials")
    );
    app.finish().await;
}
