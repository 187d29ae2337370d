//! Guest accounts: device login, linking a username and password, and their refusals.

use serde_json::json;

use crate::on_both_backends;
use crate::support::{Backend, TestApp, expect_problem, spawn_app, spawn_app_with, unique};

on_both_backends!(
    a_device_creates_then_logs_into_its_account,
    a_guest_links_a_username_and_password,
    link_refusals,
    a_guest_cannot_log_in_with_a_password,
    device_ids_are_validated,
    banned_accounts_are_refused,
    device_login_and_link_are_rate_limited,
);

/// A random device id, as a client should make one.
fn new_device_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

async fn a_device_creates_then_logs_into_its_account(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let device = new_device_id();
    let first = app.client.device_login(&device).await.unwrap();
    assert!(first.created, "the first login answers 201");
    assert_eq!(first.tokens.token_type, "Bearer");
    let me = app
        .client
        .authenticated(&first.tokens.access_token)
        .profile()
        .await
        .unwrap();
    assert!(me.username.starts_with("guest-"), "{}", me.username);
    assert_eq!(me.display_name, me.username);

    let again = app.client.device_login(&device).await.unwrap();
    assert!(!again.created, "later logins answer 200");
    assert_ne!(again.tokens.refresh_token, first.tokens.refresh_token);
    let me_again = app
        .client
        .authenticated(&again.tokens.access_token)
        .me()
        .await
        .unwrap();
    assert_eq!(
        me_again.stats.map(|s| s.games),
        Some(0),
        "/me carries the game counts"
    );
    assert_eq!(
        versus_protocol::PlayerProfile {
            stats: None,
            ..me_again
        },
        me
    );
    // Each login is a token family of its own, refreshed as any other.
    app.client
        .refresh(&again.tokens.refresh_token)
        .await
        .unwrap();
    app.client
        .refresh(&first.tokens.refresh_token)
        .await
        .unwrap();

    let other = app.client.device_login(&new_device_id()).await.unwrap();
    assert!(other.created);
    let other_me = app
        .client
        .authenticated(&other.tokens.access_token)
        .me()
        .await
        .unwrap();
    assert_ne!(other_me.id, me.id);
    assert_ne!(other_me.username, me.username);
    app.finish().await;
}

/// Logs a new device in and returns its id, its guest profile and a client for it.
async fn guest(
    app: &TestApp,
) -> (
    String,
    versus_protocol::PlayerProfile,
    versus_client::Client,
) {
    let device = new_device_id();
    let login = app.client.device_login(&device).await.unwrap();
    let client = app.client.authenticated(login.tokens.access_token);
    let profile = client.me().await.unwrap();
    (device, profile, client)
}

async fn a_guest_links_a_username_and_password(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (device, before, client) = guest(&app).await;
    let name = unique("Linked");
    let linked = client.link(&name, "correct horse battery").await.unwrap();
    assert_eq!(linked.id, before.id);
    assert_eq!(linked.username, name);
    // The display name was the generated one, so it follows the username.
    assert_eq!(linked.display_name, name);
    assert_eq!(linked.created_at, before.created_at);
    // The access token held before linking still works: the account is the same.
    let me = client.me().await.unwrap();
    assert_eq!(versus_protocol::PlayerProfile { stats: None, ..me }, linked);

    // Both ways in lead to the same account now.
    let by_password = app
        .client
        .login(&name.to_lowercase(), "correct horse battery")
        .await
        .unwrap();
    let by_device = app.client.device_login(&device).await.unwrap();
    assert!(!by_device.created);
    for access in [by_password.access_token, by_device.tokens.access_token] {
        let me = app.client.authenticated(access).me().await.unwrap();
        assert_eq!(versus_protocol::PlayerProfile { stats: None, ..me }, linked);
    }
    app.finish().await;
}

async fn link_refusals(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (_, _, client) = guest(&app).await;
    let name = unique("first");
    client.link(&name, "correct horse battery").await.unwrap();

    // Once only.
    let err = client
        .link(&unique("second"), "another password")
        .await
        .unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(409));
    assert_eq!(err.code(), Some("already_linked"));
    // An account made with a password has one already.
    let registered = app.player(&unique("reg")).await;
    let err = registered
        .client
        .link(&unique("third"), "another password")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("already_linked"));

    // A taken username, case-insensitively, as at registration.
    let (_, other_before, other) = guest(&app).await;
    let response = app
        .http
        .post(app.url("/api/v1/auth/link"))
        .bearer_auth(other.access_token().unwrap())
        .json(&json!({"username": name.to_uppercase(), "password": "correct horse battery"}))
        .send()
        .await
        .unwrap();
    let body = expect_problem(response, 409, "username_taken").await;
    assert_eq!(body["field"], "username");
    assert_eq!(other.me().await.unwrap(), other_before, "nothing changed");

    // Bad input names its field.
    let link = |body: serde_json::Value| {
        app.http
            .post(app.url("/api/v1/auth/link"))
            .bearer_auth(other.access_token().unwrap())
            .json(&body)
            .send()
    };
    let cases = [
        (
            json!({"username": "a b", "password": "correct horse battery"}),
            "validation_failed",
            "username",
        ),
        (
            json!({"username": unique("ok"), "password": "short"}),
            "validation_failed",
            "password",
        ),
        (
            json!({"username": unique("ok")}),
            "malformed_body",
            "password",
        ),
        (
            json!({"username": unique("ok"), "password": "correct horse battery", "extra": 1}),
            "malformed_body",
            "extra",
        ),
    ];
    for (body, code, field) in cases {
        let problem = expect_problem(link(body.clone()).await.unwrap(), 400, code).await;
        assert_eq!(problem["field"], field, "{body}");
    }

    // Without a valid access token.
    let response = app
        .http
        .post(app.url("/api/v1/auth/link"))
        .json(&json!({"username": unique("anon"), "password": "correct horse battery"}))
        .send()
        .await
        .unwrap();
    expect_problem(response, 401, "unauthorized").await;
    let response = app
        .http
        .post(app.url("/api/v1/auth/link"))
        .bearer_auth(other.access_token().unwrap())
        .body("username=x")
        .send()
        .await
        .unwrap();
    expect_problem(response, 415, "unsupported_media_type").await;
    app.finish().await;
}

async fn a_guest_cannot_log_in_with_a_password(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (_, guest, _) = guest(&app).await;
    let attempt = |username: String| {
        app.http
            .post(app.url("/api/v1/auth/login"))
            .json(&json!({"username": username, "password": "any password at all"}))
            .send()
    };
    // Answered as an unknown username is, after the same one argon2 verification.
    let hasher = &app.state.hasher;
    let before = hasher.verifications();
    let as_guest = expect_problem(
        attempt(guest.username.clone()).await.unwrap(),
        401,
        "invalid_credentials",
    )
    .await;
    assert_eq!(hasher.verifications(), before + 1);
    let unknown = expect_problem(
        attempt(unique("nobody")).await.unwrap(),
        401,
        "invalid_credentials",
    )
    .await;
    assert_eq!(hasher.verifications(), before + 2);
    assert_eq!(as_guest["detail"], unknown["detail"]);
    app.finish().await;
}

async fn device_ids_are_validated(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let post = |body: serde_json::Value| {
        app.http
            .post(app.url("/api/v1/auth/device"))
            .json(&body)
            .send()
    };
    for bad in [
        "short",
        "has a space in it",
        "tab\there-device",
        "née-device-id",
        &"x".repeat(129),
    ] {
        let problem = expect_problem(
            post(json!({"device_id": bad})).await.unwrap(),
            400,
            "validation_failed",
        )
        .await;
        assert_eq!(problem["field"], "device_id", "{bad:?}");
        // A device id is a credential: never echoed.
        assert!(
            !problem.to_string().contains(bad),
            "{bad:?} echoed in {problem}"
        );
    }
    for (body, field) in [
        (json!({}), "device_id"),
        (json!({"device_id": 123456}), "device_id"),
        (
            json!({"device_id": new_device_id(), "extra": true}),
            "extra",
        ),
    ] {
        let problem =
            expect_problem(post(body.clone()).await.unwrap(), 400, "malformed_body").await;
        assert_eq!(problem["field"], field, "{body}");
    }
    let response = app
        .http
        .post(app.url("/api/v1/auth/device"))
        .body(format!("device_id={}", new_device_id()))
        .send()
        .await
        .unwrap();
    expect_problem(response, 415, "unsupported_media_type").await;
    // The bounds are inclusive, and any visible ASCII goes.
    for good in [
        "abcdef",
        "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~",
        &"x".repeat(128),
    ] {
        assert!(
            app.client.device_login(good).await.unwrap().created,
            "{good:?}"
        );
    }
    app.finish().await;
}

async fn banned_accounts_are_refused(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (device, guest, client) = guest(&app).await;
    app.ban(guest.id).await;
    let response = app
        .http
        .post(app.url("/api/v1/auth/device"))
        .json(&json!({"device_id": device}))
        .send()
        .await
        .unwrap();
    expect_problem(response, 403, "forbidden").await;
    // Its access token is still valid until it expires; linking is refused all the same.
    let err = client
        .link(&unique("banned"), "correct horse battery")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("forbidden"));

    // As a password login is.
    let name = unique("mallory");
    let registered = app.player(&name).await;
    app.ban(registered.id).await;
    let err = app
        .client
        .login(&name, "correct horse battery")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("forbidden"));
    app.finish().await;
}

async fn device_login_and_link_are_rate_limited(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |config| {
        config.limits.auth_per_ip = versus_server::config::RateConfig {
            per_minute: 1,
            burst: 2,
        };
    })
    .await
    else {
        return;
    };
    let login = app.client.device_login(&new_device_id()).await.unwrap();
    let client = app.client.authenticated(login.tokens.access_token);
    app.client.device_login(&new_device_id()).await.unwrap();
    let response = app
        .http
        .post(app.url("/api/v1/auth/device"))
        .json(&json!({"device_id": new_device_id()}))
        .send()
        .await
        .unwrap();
    assert!(response.headers().contains_key("retry-after"));
    expect_problem(response, 429, "rate_limited").await;
    let err = client
        .link(&unique("limited"), "correct horse battery")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("rate_limited"));
    app.finish().await;
}
