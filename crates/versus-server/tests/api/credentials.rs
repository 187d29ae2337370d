//! Credentials under open sockets and on every route: a socket lives as long as the token it
//! runs on (unless renewed with `auth`) and the login behind it; a token for a player who does
//! not exist is refused everywhere, and nothing is created for them.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::realtime::Ws;
use crate::support::{Backend, JWT_SECRET, Player, TestApp, expect_problem, spawn_app, unique};

/// The claims of one of the server's own access tokens (read, not verified).
fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWT has a payload");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// A token the server itself could have issued, for `player` under login `family`, expiring
/// `ttl_secs` from now.
fn token_for(player: Uuid, family: &Value, ttl_secs: i64) -> String {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let claims = json!({
        "sub": player, "fam": family, "iss": "versus", "iat": now, "exp": now + ttl_secs,
        "jti": Uuid::new_v4(), "typ": "access",
    });
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(JWT_SECRET.as_bytes()),
    )
    .unwrap()
}

/// A token of `player`'s own login, expiring in `ttl_secs`.
fn short_token(player: &Player, ttl_secs: i64) -> String {
    let claims = claims_of(player.client.access_token().unwrap());
    token_for(player.id, &claims["fam"], ttl_secs)
}

async fn logout(app: &TestApp, refresh_token: &str) {
    let response = app
        .http
        .post(app.url("/api/v1/auth/logout"))
        .json(&json!({"refresh_token": refresh_token}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
}

#[tokio::test]
async fn a_socket_closes_when_its_token_expires_unless_renewed() {
    let Some(app) = spawn_app(Backend::Sqlite).await else {
        return;
    };
    let player = app.player(&unique("expiring")).await;
    let other = app.player(&unique("other")).await;

    // Not renewed: closed at expiry with the documented code.
    let mut ws = Ws::with_token(&app, &short_token(&player, 2), None)
        .await
        .unwrap();
    let closed = ws.closed(Duration::from_secs(15)).await;
    assert_eq!(closed, Some((4001, "access token expired".to_owned())));

    // Renewed over the socket before expiry: it lives on past the old deadline.
    let mut ws = Ws::with_token(&app, &short_token(&player, 3), None)
        .await
        .unwrap();
    // Another player's token does not renew it.
    ws.send(json!({"type": "auth", "data": {"token": other.client.access_token().unwrap()}}))
        .await;
    let refused = ws.next_event().await;
    assert_eq!(
        (&refused["type"], &refused["data"]["code"]),
        (&json!("error"), &json!("forbidden")),
        "{refused}"
    );
    // Nor does a token that is no token.
    ws.send(json!({"type": "auth", "data": {"token": "forged.token.here"}}))
        .await;
    let refused = ws.next_event().await;
    assert_eq!(refused["data"]["code"], "unauthorized", "{refused}");
    let fresh = player.client.access_token().unwrap();
    ws.send(json!({"type": "auth", "data": {"token": fresh}}))
        .await;
    let renewed = ws.next_event().await;
    assert_eq!(renewed["type"], "authenticated", "{renewed}");
    assert_eq!(
        renewed["data"]["token_expires_at"],
        claims_of(fresh)["exp"],
        "{renewed}"
    );
    assert_eq!(
        ws.closed(Duration::from_secs(6)).await,
        None,
        "still open after the first token's expiry"
    );
    ws.send(json!({"type": "ping"})).await;
    assert_eq!(ws.next_event().await["type"], "pong");
    app.finish().await;
}

/// The SDK keeps a socket past its token's expiry by itself: it refreshes and sends `auth`;
/// and after a `token expired` close it reconnects with a fresh token.
#[tokio::test]
async fn the_sdk_renews_its_socket_token_by_itself() {
    use std::sync::Arc;
    use versus_client::credentials::RefreshingTokens;
    use versus_client::ws::{ReconnectPolicy, ReconnectingSocket, WsEvent};
    use versus_protocol::ws::ServerEvent;

    let Some(app) = spawn_app(Backend::Sqlite).await else {
        return;
    };
    let player = app.player(&unique("renewer")).await;
    let tokens = Arc::new(RefreshingTokens::new(&app.client, &player.refresh_token));
    let mut socket = ReconnectingSocket::new(
        app.client.base_url(),
        short_token(&player, 3),
        ReconnectPolicy::default(),
    )
    .with_token_source(tokens.clone());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(8);
    let (mut renewed, mut drops) = (0, 0);
    while let Ok(event) = tokio::time::timeout_at(deadline, socket.next()).await {
        match event.expect("the SDK keeps the socket") {
            WsEvent::Event(envelope) => {
                if let ServerEvent::Authenticated(_) = envelope.event {
                    renewed += 1;
                }
            }
            WsEvent::Disconnected { error, .. } => {
                drops += 1;
                eprintln!("dropped: {error}");
            }
            WsEvent::Connected { .. } | WsEvent::ResumeGap(_) => {}
        }
    }
    assert_eq!(
        renewed, 1,
        "renewed once, before the 3-second token expired"
    );
    assert_eq!(drops, 0, "never dropped");
    assert!(socket.is_connected());
    assert_ne!(
        tokens.refresh_token().await,
        player.refresh_token,
        "the pair rotated"
    );

    // Without renewing in time (a token shorter than the SDK's margin can save), the close
    // for expiry is followed by a reconnect with a fresh token.
    let mut socket = ReconnectingSocket::new(
        app.client.base_url(),
        short_token(&player, 1),
        ReconnectPolicy::default(),
    )
    .with_token_source(Arc::new(SlowFirst {
        calls: Default::default(),
        token: player.client.access_token().unwrap().to_owned(),
    }));
    let mut reconnected = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while let Ok(event) = tokio::time::timeout_at(deadline, socket.next()).await {
        if let WsEvent::Connected {
            resumed_after: Some(_),
            ..
        } = event.expect("keeps going")
        {
            reconnected = true;
            break;
        }
    }
    assert!(reconnected, "reconnected after the expiry close");
    app.finish().await;

    /// A source too slow (and failing) to renew in time at first, then handing out a good token.
    struct SlowFirst {
        calls: std::sync::atomic::AtomicUsize,
        token: String,
    }
    impl versus_client::credentials::TokenSource for SlowFirst {
        fn fresh_token(&self) -> versus_client::credentials::TokenFuture<'_> {
            let call = (self.calls).fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Box::pin(async move {
                if call == 0 {
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    return Err(versus_client::ClientError::InvalidRequest("not yet".into()));
                }
                Ok(self.token.clone())
            })
        }
    }
}

crate::on_both_backends!(
    logging_out_ends_that_logins_sockets_and_tokens,
    a_reused_refresh_token_ends_the_login_everywhere,
    tokens_of_players_who_do_not_exist_are_refused_everywhere,
);

async fn logging_out_ends_that_logins_sockets_and_tokens(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let player = app.player(&unique("leaver")).await;
    let username = player.client.me().await.unwrap().username;
    // A second login of the same player (another device).
    let second = app
        .client
        .login(&username, "correct horse battery")
        .await
        .unwrap();
    let mut first_socket = Ws::connect(&app, &player, None).await;

    // The other device logs out: this socket and token are untouched.
    logout(&app, &second.refresh_token).await;
    assert_eq!(first_socket.closed(Duration::from_millis(500)).await, None);
    first_socket.send(json!({"type": "ping"})).await;
    assert_eq!(first_socket.next_event().await["type"], "pong");
    assert!(player.client.me().await.is_ok());

    // This login logs out: its socket closes promptly, its access token stops working.
    logout(&app, &player.refresh_token).await;
    assert_eq!(
        first_socket.closed(Duration::from_secs(5)).await,
        Some((4003, "credentials revoked: log in again".to_owned()))
    );
    let refused = app
        .http
        .get(app.url("/api/v1/players/me"))
        .bearer_auth(player.client.access_token().unwrap())
        .send()
        .await
        .unwrap();
    expect_problem(refused, 401, "unauthorized").await;
    let again = Ws::with_token(&app, player.client.access_token().unwrap(), None).await;
    assert_eq!(again.err(), Some(401));
    // A new login works at once.
    let relogin = app
        .client
        .login(&username, "correct horse battery")
        .await
        .unwrap();
    assert!(
        Ws::with_token(&app, &relogin.access_token, None)
            .await
            .is_ok()
    );
    app.finish().await;
}

async fn a_reused_refresh_token_ends_the_login_everywhere(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let player = app.player(&unique("reuser")).await;
    let mut ws = Ws::connect(&app, &player, None).await;
    let rotated = app.client.refresh(&player.refresh_token).await.unwrap();
    // Renewing the socket with the rotated pair's token keeps it on the same login.
    ws.send(json!({"type": "auth", "data": {"token": rotated.access_token}}))
        .await;
    assert_eq!(ws.next_event().await["type"], "authenticated");
    // The spent token presented again (after any grace): the family is revoked.
    let mut reused = false;
    for _ in 0..100 {
        match app.client.refresh(&player.refresh_token).await {
            Err(err) if err.status().map(|s| s.as_u16()) == Some(401) => {
                reused = true;
                break;
            }
            // Within a retry grace the same pair comes back; wait it out.
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    assert!(reused, "the spent refresh token is refused");
    assert_eq!(
        ws.closed(Duration::from_secs(5)).await,
        Some((4003, "credentials revoked: log in again".to_owned()))
    );
    let refused = app
        .http
        .get(app.url("/api/v1/players/me"))
        .bearer_auth(&rotated.access_token)
        .send()
        .await
        .unwrap();
    expect_problem(refused, 401, "unauthorized").await;
    app.finish().await;
}

/// Every route a player's token opens, with a body it accepts.
fn player_routes() -> Vec<(Method, &'static str, Option<Value>)> {
    vec![
        (Method::GET, "/api/v1/auth/profile", None),
        (Method::GET, "/api/v1/players/me", None),
        (
            Method::PATCH,
            "/api/v1/players/me",
            Some(json!({"display_name": "Ghost"})),
        ),
        (
            Method::PUT,
            "/api/v1/matchmaking/preferences",
            Some(json!({"regions": ["eu"], "modes": []})),
        ),
        (Method::GET, "/api/v1/matchmaking/preferences", None),
        (
            Method::POST,
            "/api/v1/queue/join",
            Some(json!({"queue": "ranked-1v1", "latencies": {"eu": 20}})),
        ),
        (Method::GET, "/api/v1/queue/status", None),
        (Method::DELETE, "/api/v1/queue/leave", None),
        (Method::GET, "/api/v1/matchmaking/statistics", None),
    ]
}

async fn tokens_of_players_who_do_not_exist_are_refused_everywhere(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let real = app.player(&unique("real")).await;
    // Validly signed (a leaked key, or an account deleted since): no such player.
    let ghost = Uuid::now_v7();
    let token = token_for(ghost, &json!(Uuid::now_v7()), 600);
    for (method, path, body) in player_routes() {
        let mut request = app
            .http
            .request(method.clone(), app.url(path))
            .bearer_auth(&token);
        if let Some(body) = &body {
            request = request.json(body);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401, "{method} {path}");
        expect_problem(response, 401, "unauthorized").await;
    }
    assert_eq!(Ws::with_token(&app, &token, None).await.err(), Some(401));
    // Nothing was created for the ghost: no ticket in any queue.
    let stats = real.client.matchmaking_statistics().await.unwrap();
    assert!(
        stats.queues.iter().all(|q| q.searching_tickets == 0),
        "{stats:?}"
    );
    app.finish().await;
}
