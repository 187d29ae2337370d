//! Every player-scoped endpoint, tried with another player's token and with forged, tampered,
//! expired and missing tokens.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::Method;
use serde_json::{Value, json};

use crate::on_both_backends;
use crate::support::{Backend, JWT_SECRET, TestApp, expect_problem, spawn_app, unique};

on_both_backends!(
    bad_tokens_are_refused_everywhere,
    another_players_token_reaches_only_its_own_data
);

/// Every endpoint that needs a player's access token: (method, path, body).
fn player_scoped(target: uuid::Uuid) -> Vec<(Method, String, Option<Value>)> {
    vec![
        (Method::GET, "/api/v1/auth/profile".into(), None),
        (Method::GET, "/api/v1/players/me".into(), None),
        (
            Method::PATCH,
            "/api/v1/players/me".into(),
            Some(json!({"display_name": "Mallory"})),
        ),
        (Method::GET, format!("/api/v1/players/{target}"), None),
    ]
}

fn forge(claims: Value, secret: &[u8], algorithm: Algorithm) -> String {
    jsonwebtoken::encode(
        &Header::new(algorithm),
        &claims,
        &EncodingKey::from_secret(secret),
    )
    .unwrap()
}

async fn call(
    app: &TestApp,
    method: &Method,
    path: &str,
    body: &Option<Value>,
    token: Option<&str>,
) -> reqwest::Response {
    let mut request = app.http.request(method.clone(), app.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    request.send().await.unwrap()
}

async fn bad_tokens_are_refused_everywhere(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let victim = app.player(&unique("victim")).await;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let claims = |sub: uuid::Uuid, iat: i64, exp: i64, iss: &str, typ: &str| json!({"sub": sub, "iss": iss, "iat": iat, "exp": exp, "jti": uuid::Uuid::new_v4(), "typ": typ});
    let secret = JWT_SECRET.as_bytes();
    let valid = victim.client.access_token().unwrap().to_owned();
    let mut tampered: Vec<String> = valid.split('.').map(str::to_owned).collect();
    tampered[1] = URL_SAFE_NO_PAD
        .encode(claims(uuid::Uuid::now_v7(), now, now + 600, "versus", "access").to_string());
    let tampered = tampered.join(".");
    let unsigned = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(claims(victim.id, now, now + 600, "versus", "access").to_string())
    );
    let bad_tokens = [
        (
            "expired",
            forge(
                claims(victim.id, now - 7200, now - 3600, "versus", "access"),
                secret,
                Algorithm::HS256,
            ),
        ),
        (
            "wrong key",
            forge(
                claims(victim.id, now, now + 600, "versus", "access"),
                b"another-key-another-key-another-key!",
                Algorithm::HS256,
            ),
        ),
        (
            "wrong issuer",
            forge(
                claims(victim.id, now, now + 600, "someone-else", "access"),
                secret,
                Algorithm::HS256,
            ),
        ),
        (
            "not an access token",
            forge(
                claims(victim.id, now, now + 600, "versus", "refresh"),
                secret,
                Algorithm::HS256,
            ),
        ),
        (
            "other algorithm",
            forge(
                claims(victim.id, now, now + 600, "versus", "access"),
                secret,
                Algorithm::HS512,
            ),
        ),
        ("tampered payload", tampered),
        ("alg none", unsigned),
        ("garbage", "definitely.not.ajwt".to_owned()),
        ("refresh token as access", victim.refresh_token.clone()),
    ];
    for (method, path, body) in player_scoped(victim.id) {
        let response = call(&app, &method, &path, &body, None).await;
        expect_problem(response, 401, "unauthorized").await;
        for (what, token) in &bad_tokens {
            let response = call(&app, &method, &path, &body, Some(token)).await;
            assert_eq!(
                response.status(),
                401,
                "{method} {path} with a {what} token"
            );
            assert_eq!(response.headers()["www-authenticate"], "Bearer");
            expect_problem(response, 401, "unauthorized").await;
        }
        let response = app
            .http
            .request(method.clone(), app.url(&path))
            .header("authorization", "Basic dXNlcjpwYXNz")
            .send()
            .await
            .unwrap();
        expect_problem(response, 401, "unauthorized").await;
    }
    // The victim's profile is untouched.
    assert_eq!(
        victim.client.me().await.unwrap().display_name,
        victim.client.me().await.unwrap().username
    );
    app.finish().await;
}

async fn another_players_token_reaches_only_its_own_data(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let alice = app.player(&unique("alice")).await;
    let mallory = app.player(&unique("mallory")).await;
    let mallory_token = mallory.client.access_token().unwrap().to_owned();
    for (method, path, body) in player_scoped(alice.id) {
        let response = call(&app, &method, &path, &body, Some(&mallory_token)).await;
        assert_eq!(response.status(), 200, "{method} {path}");
        let seen: Value = response.json().await.unwrap();
        if path.ends_with(&alice.id.to_string()) {
            // The public view of Alice: nothing private.
            assert_eq!(seen["id"], alice.id.to_string());
            assert!(
                seen.get("email").is_none() && seen.get("updated_at").is_none(),
                "{seen}"
            );
        } else {
            assert_eq!(
                seen["id"],
                mallory.id.to_string(),
                "{method} {path} must act on the caller"
            );
        }
    }
    let alice_now = alice.client.me().await.unwrap();
    assert_ne!(alice_now.display_name, "Mallory");
    // Mallory cannot log Alice out with her own refresh token, nor rotate Alice's chain.
    app.client.logout(&mallory.refresh_token).await.unwrap();
    app.client.refresh(&alice.refresh_token).await.unwrap();
    app.finish().await;
}
