use serde_json::json;

use crate::on_both_backends;
use crate::support::{Backend, expect_problem, spawn_app, spawn_app_with, unique};

on_both_backends!(
    register_login_refresh_logout,
    usernames_are_unique_case_insensitively,
    refresh_token_reuse_revokes_the_family,
    a_retried_refresh_answers_the_same_pair,
    within_grace_an_older_token_still_revokes_the_family,
    unknown_user_and_wrong_password_look_the_same,
    accounts_and_tokens_survive_a_restart,
    auth_is_rate_limited_per_ip,
    login_is_rate_limited_per_username,
    a_flood_beyond_the_hash_queue_gets_429,
);

async fn register_login_refresh_logout(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let name = unique("ada");

    let registered = app
        .client
        .register(&name, "correct horse battery")
        .await
        .unwrap();
    assert_eq!(registered.player.username, name);
    assert_eq!(registered.player.display_name, name);
    assert_eq!(registered.tokens.token_type, "Bearer");
    assert_eq!(registered.tokens.expires_in, 900);

    let tokens = app
        .client
        .login(&name.to_uppercase(), "correct horse battery")
        .await
        .unwrap();
    let me = app
        .client
        .authenticated(&tokens.access_token)
        .profile()
        .await
        .unwrap();
    assert_eq!(me.id, registered.player.id);

    let rotated = app.client.refresh(&tokens.refresh_token).await.unwrap();
    assert_ne!(rotated.refresh_token, tokens.refresh_token);
    app.client
        .authenticated(&rotated.access_token)
        .me()
        .await
        .unwrap();

    app.client.logout(&rotated.refresh_token).await.unwrap();
    let err = app
        .client
        .refresh(&rotated.refresh_token)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("unauthorized"));
    // Logout is idempotent, and does not reveal whether a token exists.
    app.client.logout(&rotated.refresh_token).await.unwrap();
    app.client.logout("never-issued").await.unwrap();
    app.finish().await;
}

async fn usernames_are_unique_case_insensitively(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let name = unique("Bob");
    app.client
        .register(&name, "correct horse battery")
        .await
        .unwrap();
    let response = app
        .http
        .post(app.url("/api/v1/auth/register"))
        .json(&json!({"username": name.to_lowercase(), "password": "another password"}))
        .send()
        .await
        .unwrap();
    let body = expect_problem(response, 409, "username_taken").await;
    assert_eq!(body["field"], "username");
    app.finish().await;
}

async fn refresh_token_reuse_revokes_the_family(backend: Backend) {
    // Without the grace window, so the immediate replay below is not taken for a retry.
    let Some(app) = spawn_app_with(backend, |config| config.auth.refresh_grace_secs = 0).await
    else {
        return;
    };
    let name = unique("eve");
    app.client
        .register(&name, "correct horse battery")
        .await
        .unwrap();
    let first = app
        .client
        .login(&name, "correct horse battery")
        .await
        .unwrap();
    let second = app.client.refresh(&first.refresh_token).await.unwrap();
    // A thief replays the spent token: refused, and the legitimate newer token dies with it.
    assert_eq!(
        app.client
            .refresh(&first.refresh_token)
            .await
            .unwrap_err()
            .code(),
        Some("unauthorized")
    );
    assert_eq!(
        app.client
            .refresh(&second.refresh_token)
            .await
            .unwrap_err()
            .code(),
        Some("unauthorized")
    );
    // Another login is a separate family and still works.
    let other = app
        .client
        .login(&name, "correct horse battery")
        .await
        .unwrap();
    app.client.refresh(&other.refresh_token).await.unwrap();
    app.finish().await;
}

/// A client whose refresh timed out retries it, perhaps while the first is still running: both
/// get the one new pair, and the login lives on. (The test servers keep the default grace of
/// 10 s; the requests below take milliseconds.)
async fn a_retried_refresh_answers_the_same_pair(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    assert!(app.config.auth.refresh_grace_secs >= 5);
    let name = unique("rita");
    let registered = app
        .client
        .register(&name, "correct horse battery")
        .await
        .unwrap();
    let spent = registered.tokens.refresh_token;
    let (a, b) = tokio::join!(app.client.refresh(&spent), app.client.refresh(&spent));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a, b, "both answers are the same pair");
    assert_ne!(a.refresh_token, spent);
    // A third, sequential retry too.
    assert_eq!(app.client.refresh(&spent).await.unwrap(), a);

    // The family is still usable: the new pair works and rotates as usual.
    let me = app
        .client
        .authenticated(&a.access_token)
        .me()
        .await
        .unwrap();
    assert_eq!(me.username, name);
    let next = app.client.refresh(&a.refresh_token).await.unwrap();
    assert_ne!(next.refresh_token, a.refresh_token);
    app.client.refresh(&next.refresh_token).await.unwrap();
    app.finish().await;
}

async fn within_grace_an_older_token_still_revokes_the_family(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let name = unique("tara");
    let first = app
        .client
        .register(&name, "correct horse battery")
        .await
        .unwrap()
        .tokens;
    let second = app.client.refresh(&first.refresh_token).await.unwrap();
    let third = app.client.refresh(&second.refresh_token).await.unwrap();
    // `first` was rotated moments ago, but its successor is spent: a replay, not a retry.
    let err = app.client.refresh(&first.refresh_token).await.unwrap_err();
    assert_eq!(err.code(), Some("unauthorized"));
    let err = app.client.refresh(&third.refresh_token).await.unwrap_err();
    assert_eq!(err.code(), Some("unauthorized"));
    app.finish().await;
}

async fn unknown_user_and_wrong_password_look_the_same(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let name = unique("carol");
    app.client
        .register(&name, "correct horse battery")
        .await
        .unwrap();

    let attempt = |username: String| {
        let http = app.http.clone();
        let url = app.url("/api/v1/auth/login");
        async move {
            http.post(url)
                .json(&json!({"username": username, "password": "wrong password!"}))
                .send()
                .await
                .unwrap()
        }
    };
    // The same answer, and the same work behind it: one argon2 verification each (an unknown
    // user's against the decoy, whose cost `auth::password` tests is the configured one). Counted
    // rather than timed: a timing bound flaked on this shared host.
    let hasher = &app.state.hasher;
    let before = hasher.verifications();
    let wrong_password =
        expect_problem(attempt(name.clone()).await, 401, "invalid_credentials").await;
    assert_eq!(hasher.verifications(), before + 1);
    let unknown_user =
        expect_problem(attempt(unique("nobody")).await, 401, "invalid_credentials").await;
    assert_eq!(hasher.verifications(), before + 2);
    // A name that cannot be a username at all costs the same.
    let impossible = expect_problem(attempt("x".into()).await, 401, "invalid_credentials").await;
    assert_eq!(hasher.verifications(), before + 3);
    assert_eq!(wrong_password["detail"], unknown_user["detail"]);
    assert_eq!(wrong_password["detail"], impossible["detail"]);
    app.finish().await;
}

async fn accounts_and_tokens_survive_a_restart(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let name = unique("dave");
    let registered = app
        .client
        .register(&name, "correct horse battery")
        .await
        .unwrap();
    let app = app.restart().await;
    // The access token is still valid (same signing key), the refresh token still rotates.
    let me = app
        .client
        .authenticated(&registered.tokens.access_token)
        .me()
        .await
        .unwrap();
    assert_eq!(me.username, name);
    app.client
        .refresh(&registered.tokens.refresh_token)
        .await
        .unwrap();
    app.client
        .login(&name, "correct horse battery")
        .await
        .unwrap();
    app.finish().await;
}

async fn auth_is_rate_limited_per_ip(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |config| {
        config.limits.auth_per_ip = versus_server::config::RateConfig {
            per_minute: 60,
            burst: 3,
        };
    })
    .await
    else {
        return;
    };
    for _ in 0..3 {
        app.client.logout("whatever").await.unwrap();
    }
    let response = app
        .http
        .post(app.url("/api/v1/auth/login"))
        .json(&json!({"username": "someone", "password": "something"}))
        .send()
        .await
        .unwrap();
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry_after), "Retry-After {retry_after}");
    expect_problem(response, 429, "rate_limited").await;
    app.finish().await;
}

async fn login_is_rate_limited_per_username(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |config| {
        config.limits.login_per_username = versus_server::config::RateConfig {
            per_minute: 1,
            burst: 2,
        };
    })
    .await
    else {
        return;
    };
    let name = unique("frank");
    app.client
        .register(&name, "correct horse battery")
        .await
        .unwrap();
    app.client
        .login(&name, "wrong password 1")
        .await
        .unwrap_err();
    app.client
        .login(&name, "wrong password 2")
        .await
        .unwrap_err();
    // Even the right password waits now: the bucket belongs to the username, not the guess.
    let err = app
        .client
        .login(&name.to_uppercase(), "correct horse battery")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("rate_limited"));
    // Other usernames are unaffected.
    let other = unique("grace");
    app.client
        .register(&other, "correct horse battery")
        .await
        .unwrap();
    app.client
        .login(&other, "correct horse battery")
        .await
        .unwrap();
    app.finish().await;
}

async fn a_flood_beyond_the_hash_queue_gets_429(backend: Backend) {
    // One hashing thread and one place in its queue, at a cost that takes tens of milliseconds
    // a hash: 24 registrations sent at once cannot all find room, and those that do not are
    // told when to come back instead of piling up.
    let Some(app) = spawn_app_with(backend, |config| {
        config.auth.max_concurrent_hashes = 1;
        config.auth.hash_queue = 1;
        config.auth.argon2 = versus_server::config::Argon2Config {
            memory_kib: 8 * 1024,
            iterations: 2,
            parallelism: 1,
        };
    })
    .await
    else {
        return;
    };
    let attempts = (0..24).map(|_| {
        let http = app.http.clone();
        let url = app.url("/api/v1/auth/register");
        let username = unique("flood");
        async move {
            http.post(url)
                .json(&json!({"username": username, "password": "correct horse battery"}))
                .send()
                .await
                .unwrap()
        }
    });
    let (mut created, mut refused) = (0, 0);
    for response in futures::future::join_all(attempts).await {
        match response.status().as_u16() {
            201 => created += 1,
            429 => {
                let retry_after: u64 = response.headers()["retry-after"]
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                assert!(retry_after >= 1, "Retry-After {retry_after}");
                expect_problem(response, 429, "rate_limited").await;
                refused += 1;
            }
            other => panic!("unexpected status {other}"),
        }
    }
    // The first to arrive always finds room.
    assert!(created >= 1, "{created} created, {refused} refused");
    assert!(refused >= 1, "{created} created, {refused} refused");
    // The queue drained: the next sign-up is served.
    app.client
        .register(&unique("after"), "correct horse battery")
        .await
        .unwrap();
    app.finish().await;
}
