//! The live matchmaking loop over real WebSockets: queue joins, match notifications, the
//! leave-vs-match race, resume after a disconnect, slow readers, hostile frames.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use futures::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use versus_protocol::ws::{Notification, ServerEvent};
use versus_server::config::Queues;
use versus_server::services::events::{Audience, BusEvent};

use crate::on_both_backends;
use crate::support::{Backend, Player, TestApp, expect_problem, spawn_app, spawn_app_with, unique};

pub type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

on_both_backends!(hundred_players_are_matched_and_notified);

/// A raw WebSocket connection: this suite checks the wire protocol itself, not the SDK.
pub struct Ws {
    pub socket: Socket,
}

impl Ws {
    pub async fn connect(app: &TestApp, player: &Player, last_event_id: Option<u64>) -> Ws {
        Self::with_token(app, player.client.access_token().unwrap(), last_event_id)
            .await
            .expect("websocket connects")
    }

    /// Connects with `token` and reads the welcome; the upgrade's HTTP status when refused.
    pub async fn with_token(
        app: &TestApp,
        token: &str,
        last_event_id: Option<u64>,
    ) -> Result<Ws, u16> {
        let mut url = format!("ws://{}/ws", app.addr);
        if let Some(id) = last_event_id {
            url.push_str(&format!("?last_event_id={id}"));
        }
        let mut request = url.into_client_request().unwrap();
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        let socket = match tokio_tungstenite::connect_async(request).await {
            Ok((socket, _)) => socket,
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                return Err(response.status().as_u16());
            }
            Err(err) => panic!("websocket connect: {err}"),
        };
        let mut ws = Ws { socket };
        let welcome = ws.next_event().await;
        assert_eq!(welcome["type"], "welcome", "{welcome}");
        Ok(ws)
    }

    pub async fn send(&mut self, value: Value) {
        self.socket
            .send(Message::text(value.to_string()))
            .await
            .unwrap();
    }

    /// The next JSON frame (pings answered by the library), or panics after 10 s.
    pub async fn next_event(&mut self) -> Value {
        self.try_next(Duration::from_secs(10))
            .await
            .expect("an event within 10 s")
    }

    pub async fn try_next(&mut self, wait: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let frame = tokio::time::timeout_at(deadline, self.socket.next())
                .await
                .ok()??
                .ok()?;
            match frame {
                Message::Text(text) => return Some(serde_json::from_str(text.as_str()).unwrap()),
                Message::Close(_) => return None,
                _ => continue,
            }
        }
    }

    /// Reads until an event of `kind` arrives; returns it and what came before.
    async fn until(&mut self, kind: &str) -> (Value, Vec<Value>) {
        let mut before = Vec::new();
        loop {
            let event = self.next_event().await;
            if event["type"] == kind {
                return (event, before);
            }
            before.push(event);
        }
    }

    /// The close frame's reason, reading past anything still buffered.
    async fn closed_reason(&mut self) -> Option<String> {
        self.closed(Duration::from_secs(10))
            .await
            .map(|(_, reason)| reason)
    }

    /// The close frame's code and reason, reading past anything still buffered; code 1006
    /// (abnormal) for a connection that ended without one, `None` if still open after `wait`.
    pub async fn closed(&mut self, wait: Duration) -> Option<(u16, String)> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, self.socket.next())
                .await
                .ok()?
            {
                Some(Ok(Message::Close(frame))) => {
                    return Some(frame.map_or((1005, String::new()), |f| {
                        (u16::from(f.code), f.reason.to_string())
                    }));
                }
                Some(Ok(_)) => continue,
                Some(Err(err)) => return Some((1006, format!("error: {err}"))),
                None => return Some((1006, String::new())),
            }
        }
    }
}

fn join_1v1() -> Value {
    json!({"type": "queue.join", "data": {"queue": "ranked-1v1", "latencies": {"eu": 30}}})
}

async fn hundred_players_are_matched_and_notified(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let mut sockets = Vec::new();
    for i in 0..100 {
        let player = app.player(&unique(&format!("p{i}"))).await;
        let ws = Ws::connect(&app, &player, None).await;
        sockets.push((player, ws));
    }
    for (_, ws) in &mut sockets {
        ws.send(join_1v1()).await;
    }
    let mut by_match: HashMap<String, HashSet<String>> = HashMap::new();
    for (player, ws) in &mut sockets {
        let (found, before) = ws.until("match_found").await;
        assert!(
            before.iter().all(|e| e["type"] == "queue_update"),
            "{before:?}"
        );
        let data = &found["data"];
        let players: Vec<String> = data["teams"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|t| {
                t["players"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| p["player_id"].as_str().unwrap().to_owned())
            })
            .collect();
        assert_eq!(players.len(), 2);
        assert!(players.contains(&player.id.to_string()));
        assert!(
            data["quality"].as_f64().unwrap() > 0.9,
            "equal ratings make a coin flip"
        );
        by_match
            .entry(data["match_id"].as_str().unwrap().to_owned())
            .or_default()
            .extend(players);
        // The matched state is visible over REST at once.
        let status = player.client.queue_status_raw(&app).await;
        assert_eq!(status["state"], "matched");
        assert_eq!(status["match_id"], data["match_id"]);
    }
    assert_eq!(by_match.len(), 50, "100 players, 50 matches");
    assert!(by_match.values().all(|players| players.len() == 2));
    let metrics = app.metrics().await;
    for name in [
        "game_websocket_connections",
        "game_queue_waiting_seconds_bucket{queue=\"ranked-1v1\"",
        "game_matchmaking_success_total{queue=\"ranked-1v1\"}",
        "game_matchmaking_tick_duration_seconds_bucket{queue=\"ranked-1v1\"",
        "game_matchmaking_settle_duration_seconds_bucket{queue=\"ranked-1v1\"",
        "game_queue_searching_tickets{queue=\"ranked-1v1\"}",
        "game_ws_events_sent_total",
    ] {
        assert!(metrics.contains(name), "/metrics lacks {name}");
    }
    app.finish().await;
}

trait StatusExt {
    async fn queue_status_raw(&self, app: &TestApp) -> Value;
}

impl StatusExt for versus_client::Client {
    async fn queue_status_raw(&self, app: &TestApp) -> Value {
        let response = app
            .http
            .get(app.url("/api/v1/queue/status"))
            .bearer_auth(self.access_token().unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }
}

async fn rest(
    app: &TestApp,
    player: &Player,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let mut request = app
        .http
        .request(method, app.url(path))
        .bearer_auth(player.client.access_token().unwrap());
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn leave_racing_a_match_has_exactly_one_outcome() {
    let Some(app) = spawn_app_with(Backend::Sqlite, |c| c.matchmaking.tick_ms = 20).await else {
        return;
    };
    let (mut left, mut matched) = (0, 0);
    for round in 0..40u64 {
        let a = app.player(&unique("racer_a")).await;
        let b = app.player(&unique("racer_b")).await;
        let mut wa = Ws::connect(&app, &a, None).await;
        let join = json!({"queue": "ranked-1v1", "latencies": {"eu": 30}});
        assert_eq!(
            rest(
                &app,
                &a,
                reqwest::Method::POST,
                "/api/v1/queue/join",
                Some(join.clone())
            )
            .await
            .status(),
            201
        );
        assert_eq!(
            rest(
                &app,
                &b,
                reqwest::Method::POST,
                "/api/v1/queue/join",
                Some(join)
            )
            .await
            .status(),
            201
        );
        tokio::time::sleep(Duration::from_millis(round % 25)).await;
        let response = rest(
            &app,
            &a,
            reqwest::Method::DELETE,
            "/api/v1/queue/leave",
            None,
        )
        .await;
        match response.status().as_u16() {
            200 => {
                left += 1;
                // The leave won: A is in no match; B searches on (then leaves for the next round).
                let (update, _) = wa.until("queue_update").await;
                let mut update = update;
                while update["data"]["state"] == "searching" {
                    update = wa.until("queue_update").await.0;
                }
                assert_eq!(update["data"]["state"], "cancelled");
                assert!(
                    wa.try_next(Duration::from_millis(150))
                        .await
                        .is_none_or(|e| e["type"] != "match_found")
                );
                assert_eq!(
                    rest(
                        &app,
                        &b,
                        reqwest::Method::DELETE,
                        "/api/v1/queue/leave",
                        None
                    )
                    .await
                    .status(),
                    200
                );
            }
            409 => {
                matched += 1;
                let problem = expect_problem(response, 409, "already_matched").await;
                let (found, _) = wa.until("match_found").await;
                let match_id = found["data"]["match_id"].as_str().unwrap();
                assert!(
                    problem["detail"].as_str().unwrap().contains(match_id),
                    "{problem}"
                );
                let status = b.client.queue_status_raw(&app).await;
                assert_eq!(status["match_id"], match_id);
            }
            other => panic!("leave answered {other}"),
        }
    }
    assert_eq!(left + matched, 40);
    eprintln!("leave won {left} times, the match won {matched} times");
    app.finish().await;
}

#[tokio::test]
async fn a_reconnect_replays_missed_events() {
    let Some(app) = spawn_app(Backend::Sqlite).await else {
        return;
    };
    let a = app.player(&unique("resumer")).await;
    let b = app.player(&unique("partner")).await;
    let mut wa = Ws::connect(&app, &a, None).await;
    wa.send(join_1v1()).await;
    let (first, _) = wa.until("queue_update").await;
    let seen = first["id"].as_u64().unwrap();
    drop(wa);
    // While A is away, B arrives and they are matched.
    let mut wb = Ws::connect(&app, &b, None).await;
    wb.send(join_1v1()).await;
    let (found_b, _) = wb.until("match_found").await;
    let mut wa = Ws::connect(&app, &a, Some(seen)).await;
    let (found_a, replayed) = wa.until("match_found").await;
    assert_eq!(found_a["data"]["match_id"], found_b["data"]["match_id"]);
    let mut ids: Vec<u64> = replayed
        .iter()
        .chain([&found_a])
        .map(|e| e["id"].as_u64().unwrap())
        .collect();
    ids.retain(|id| *id > seen);
    assert_eq!(
        ids.first().copied(),
        Some(seen + 1),
        "replay starts right after the last seen event"
    );
    assert!(ids.windows(2).all(|w| w[1] == w[0] + 1), "no gaps: {ids:?}");
    app.finish().await;
}

#[tokio::test]
async fn a_resume_from_too_long_ago_reports_the_gap() {
    let Some(app) = spawn_app_with(Backend::Sqlite, |c| c.realtime.replay_buffer = 5).await else {
        return;
    };
    let a = app.player(&unique("gappy")).await;
    for i in 0..20 {
        app.state.bus.publish(BusEvent::Event {
            audience: Audience::Player(a.id),
            event: ServerEvent::Notification(Notification {
                kind: "test".into(),
                message: i.to_string(),
            }),
        });
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut ws = Ws::connect(&app, &a, Some(2)).await;
    let gap = ws.next_event().await;
    assert_eq!(gap["type"], "resume_gap");
    assert_eq!(gap["data"]["oldest_available"], 16);
    let replayed: Vec<u64> = [ws.next_event().await, ws.next_event().await]
        .iter()
        .map(|e| e["id"].as_u64().unwrap())
        .collect();
    assert_eq!(replayed, [16, 17]);
    app.finish().await;
}

#[tokio::test]
async fn leaving_the_queue_stops_updates() {
    let Some(app) = spawn_app_with(Backend::Sqlite, |c| {
        c.matchmaking.queue_update_interval_secs = 0
    })
    .await
    else {
        return;
    };
    let a = app.player(&unique("leaver")).await;
    let mut ws = Ws::connect(&app, &a, None).await;
    ws.send(join_1v1()).await;
    // With an update interval of 0 a searching ticket hears about itself on every tick.
    ws.until("queue_update").await;
    ws.until("queue_update").await;
    ws.send(json!({"type": "queue.leave"})).await;
    loop {
        let (update, _) = ws.until("queue_update").await;
        if update["data"]["state"] == "cancelled" {
            break;
        }
    }
    assert!(
        ws.try_next(Duration::from_millis(500)).await.is_none(),
        "no updates after leaving"
    );
    let response = rest(
        &app,
        &a,
        reqwest::Method::DELETE,
        "/api/v1/queue/leave",
        None,
    )
    .await;
    expect_problem(response, 404, "not_queued").await;
    app.finish().await;
}

#[tokio::test]
async fn a_stalled_reader_is_cut_off_while_others_keep_flowing() {
    let Some(app) = spawn_app_with(Backend::Sqlite, |c| {
        c.realtime.send_buffer = 16;
        c.realtime.send_timeout_secs = 2;
    })
    .await
    else {
        return;
    };
    let stalled = app.player(&unique("stalled")).await;
    let reader = app.player(&unique("reader")).await;
    let mut stalled_ws = Ws::connect(&app, &stalled, None).await;
    let mut reader_ws = Ws::connect(&app, &reader, None).await;
    let big = "x".repeat(8 * 1024);
    let total = 2_000;
    // The publisher keeps at most a few events ahead of the reading client, so only the stalled
    // one can fall behind.
    let received = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let publisher = {
        let bus = app.state.bus.clone();
        let (s, r) = (stalled.id, reader.id);
        let received = received.clone();
        tokio::spawn(async move {
            for i in 0..total {
                while i > received.load(std::sync::atomic::Ordering::Relaxed) + 8 {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                bus.publish(BusEvent::Event {
                    audience: Audience::Players(vec![s, r]),
                    event: ServerEvent::Notification(Notification {
                        kind: i.to_string(),
                        message: big.clone(),
                    }),
                });
            }
        })
    };
    for i in 0..total {
        let event = reader_ws.next_event().await;
        assert_eq!(
            event["data"]["kind"],
            i.to_string(),
            "the reader gets every event in order"
        );
        received.store(i + 1, std::sync::atomic::Ordering::Relaxed);
    }
    publisher.await.unwrap();
    assert!(
        !app.state.hub.is_connected(stalled.id),
        "the stalled reader was cut off"
    );
    let reason = stalled_ws.closed_reason().await;
    assert!(
        reason
            .as_deref()
            .is_some_and(|r| r.is_empty() || r.contains("not reading")),
        "{reason:?}"
    );
    app.finish().await;
}

#[tokio::test]
async fn hostile_frames_get_errors_or_a_close_never_a_crash() {
    let Some(app) = spawn_app_with(Backend::Sqlite, |c| {
        c.realtime.inbound_per_second = 5;
        c.realtime.inbound_burst = 5;
        c.realtime.abuse_close_after = 10;
    })
    .await
    else {
        return;
    };
    let player = app.player(&unique("hostile")).await;
    let mut ws = Ws::connect(&app, &player, None).await;
    for (frame, code) in [
        (Message::text("{not json"), "invalid_message"),
        (
            Message::text(r#"{"type":"teleport","data":{}}"#),
            "invalid_message",
        ),
        (
            Message::text(r#"{"type":"queue.join","data":{"queue":"nope"}}"#),
            "validation_failed",
        ),
        (Message::binary(vec![0u8, 159, 146, 150]), "invalid_message"),
    ] {
        ws.socket.send(frame).await.unwrap();
        let event = ws.next_event().await;
        assert_eq!(event["type"], "error", "{event}");
        assert_eq!(event["data"]["code"], code, "{event}");
    }
    ws.send(json!({"type": "ping", "data": {"n": 1}})).await;
    let pong = ws.next_event().await;
    assert_eq!(
        (pong["type"].as_str(), &pong["data"]["echo"]),
        (Some("pong"), &json!({"n": 1}))
    );

    // A flood: rate-limited errors, then a close.
    for _ in 0..40 {
        if ws
            .socket
            .send(Message::text(r#"{"type":"ping"}"#))
            .await
            .is_err()
        {
            break;
        }
    }
    let mut limited = false;
    while let Some(event) = ws.try_next(Duration::from_secs(5)).await {
        limited |= event["data"]["code"] == "rate_limited";
    }
    assert!(
        limited,
        "the flood was answered with rate_limited errors before the close"
    );

    // Binary frames and control pings count too: a flood of either is closed for policy.
    for flood in [
        Message::binary(vec![1u8; 8]),
        Message::Ping(vec![1u8].into()),
    ] {
        let mut ws = Ws::connect(&app, &player, None).await;
        for _ in 0..200 {
            if ws.socket.send(flood.clone()).await.is_err() {
                break;
            }
        }
        let closed = ws.closed(Duration::from_secs(10)).await;
        assert_eq!(
            closed,
            Some((1008, "too many messages".to_owned())),
            "{flood:?}"
        );
    }

    // An oversized frame closes the connection, saying why.
    let mut ws = Ws::connect(&app, &player, None).await;
    let _ = ws.socket.send(Message::text("x".repeat(64 * 1024))).await;
    assert_eq!(
        ws.closed(Duration::from_secs(10)).await,
        Some((1009, "frame too large".to_owned()))
    );

    // Still serving everyone.
    let mut ws = Ws::connect(&app, &player, None).await;
    ws.send(json!({"type": "ping"})).await;
    assert_eq!(ws.next_event().await["type"], "pong");
    app.finish().await;
}

#[tokio::test]
async fn websocket_auth_and_one_socket_per_player() {
    let Some(app) = spawn_app(Backend::Sqlite).await else {
        return;
    };
    let player = app.player(&unique("single")).await;
    for url in [
        format!("ws://{}/ws", app.addr),
        format!("ws://{}/ws?token=forged.token.here", app.addr),
    ] {
        match tokio_tungstenite::connect_async(url).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), 401)
            }
            other => panic!("expected a 401, got {:?}", other.map(|_| ())),
        }
    }
    let response = app
        .http
        .get(app.url("/ws"))
        .bearer_auth(player.client.access_token().unwrap())
        .send()
        .await
        .unwrap();
    expect_problem(response, 400, "validation_failed").await;

    // The token in the query string, as browsers send it.
    let url = format!(
        "ws://{}/ws?token={}",
        app.addr,
        player.client.access_token().unwrap()
    );
    let (socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let mut first = Ws { socket };
    assert_eq!(first.next_event().await["type"], "welcome");
    let mut second = Ws::connect(&app, &player, None).await;
    let reason = first.closed_reason().await.unwrap_or_default();
    assert!(reason.contains("replaced"), "{reason:?}");
    second.send(json!({"type": "ping"})).await;
    assert_eq!(second.next_event().await["type"], "pong");
    app.finish().await;
}

#[tokio::test]
async fn rest_queue_lifecycle_idempotency_and_statistics() {
    let Some(app) = spawn_app(Backend::Sqlite).await else {
        return;
    };
    let a = app.player(&unique("rester")).await;
    let post = |key: Option<&str>, body: Value| {
        let mut request = app
            .http
            .post(app.url("/api/v1/queue/join"))
            .bearer_auth(a.client.access_token().unwrap())
            .json(&body);
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        request.send()
    };
    let body = json!({"queue": "ranked-5v5", "latencies": {"eu": 40, "na": 120}});
    let first = post(Some("k-1"), body.clone()).await.unwrap();
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    let again = post(Some("k-1"), body.clone()).await.unwrap();
    assert_eq!(again.status(), 200);
    let again: Value = again.json().await.unwrap();
    assert_eq!(
        first["ticket_id"], again["ticket_id"],
        "same key, same ticket"
    );
    expect_problem(
        post(None, body.clone()).await.unwrap(),
        409,
        "already_queued",
    )
    .await;
    // The same key with another request is a client bug, not a retry.
    let other = json!({"queue": "ranked-5v5", "latencies": {"eu": 41}});
    let reused = expect_problem(
        post(Some("k-1"), other).await.unwrap(),
        409,
        "idempotency_key_reused",
    )
    .await;
    assert_eq!(reused["field"], "Idempotency-Key");
    for bad_key in ["with space", "tab\there", ""] {
        let problem = expect_problem(
            post(Some(bad_key), body.clone()).await.unwrap(),
            400,
            "validation_failed",
        )
        .await;
        assert_eq!(problem["field"], "Idempotency-Key", "{bad_key:?}");
    }

    for (bad, field) in [
        (json!({"queue": "nope"}), "queue"),
        (
            json!({"queue": "ranked-1v1", "latencies": {"mars": 5}}),
            "latencies.mars",
        ),
        (
            json!({"queue": "ranked-1v1", "latencies": {"eu": -5}}),
            "latencies.eu",
        ),
        (
            json!({"queue": "ranked-1v1", "latencies": {"eu": "fast"}}),
            "latencies.eu",
        ),
    ] {
        let response = post(None, bad.clone()).await.unwrap();
        assert_eq!(response.status(), 400, "{bad}");
        let problem: Value = response.json().await.unwrap();
        assert_eq!(problem["field"], field, "{bad}: {problem}");
    }

    // A ticket knows its place from the moment it is accepted, before any tick.
    assert_eq!(first["position"], 1, "{first}");
    assert!(first["estimated_wait_s"].is_number(), "{first}");
    let status = a.client.queue_status_raw(&app).await;
    assert_eq!(status["state"], "searching");
    assert_eq!(status["queue"], "ranked-5v5");
    assert_eq!(status["position"], 1, "{status}");
    assert!(status["estimated_wait_s"].is_number(), "{status}");
    assert!(status["elapsed_s"].as_f64().unwrap() >= 0.0);
    let left = rest(
        &app,
        &a,
        reqwest::Method::DELETE,
        "/api/v1/queue/leave",
        None,
    )
    .await;
    assert_eq!(left.status(), 200);
    assert_eq!(left.json::<Value>().await.unwrap()["state"], "cancelled");

    // Concurrent retries with one key: one ticket, whichever answer comes first.
    let (x, y) = tokio::join!(
        post(Some("k-2"), body.clone()),
        post(Some("k-2"), body.clone())
    );
    let (x, y) = (x.unwrap(), y.unwrap());
    let statuses = [x.status().as_u16(), y.status().as_u16()];
    assert!(
        statuses.contains(&201) && statuses.contains(&200),
        "{statuses:?}"
    );
    let (x, y): (Value, Value) = (x.json().await.unwrap(), y.json().await.unwrap());
    assert_eq!(x["ticket_id"], y["ticket_id"]);
    assert_eq!(
        rest(
            &app,
            &a,
            reqwest::Method::DELETE,
            "/api/v1/queue/leave",
            None
        )
        .await
        .status(),
        200
    );

    let prefs = rest(
        &app,
        &a,
        reqwest::Method::PUT,
        "/api/v1/matchmaking/preferences",
        Some(json!({"regions": ["na", "eu"], "modes": ["ranked-1v1"]})),
    )
    .await;
    assert_eq!(prefs.status(), 200);
    let app = app.restart().await;
    let prefs: Value = rest(
        &app,
        &a,
        reqwest::Method::GET,
        "/api/v1/matchmaking/preferences",
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(
        prefs,
        json!({"regions": ["na", "eu"], "modes": ["ranked-1v1"]}),
        "preferences are durable"
    );
    for (bad, field) in [
        (json!({"regions": ["Not A Region"]}), "regions[0]"),
        (json!({"modes": ["ranked-99v99"]}), "modes[0]"),
    ] {
        let response = rest(
            &app,
            &a,
            reqwest::Method::PUT,
            "/api/v1/matchmaking/preferences",
            Some(bad),
        )
        .await;
        assert_eq!(response.json::<Value>().await.unwrap()["field"], field);
    }

    let stats: Value = rest(
        &app,
        &a,
        reqwest::Method::GET,
        "/api/v1/matchmaking/statistics",
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    let names: Vec<&str> = stats["queues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["queue"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["casual-ffa-8", "ranked-1v1", "ranked-5v5"]);
    app.finish().await;
}

#[tokio::test]
async fn tickets_expire_after_the_maximum_wait() {
    let Some(app) = spawn_app_with(Backend::Sqlite, |c| {
        let mut specs = Queues::shipped_specs();
        for queue in &mut specs {
            queue.max_wait_s = 1;
        }
        c.queues = Queues::from_specs(&specs).unwrap();
    })
    .await
    else {
        return;
    };
    let a = app.player(&unique("waiter")).await;
    let mut ws = Ws::connect(&app, &a, None).await;
    ws.send(join_1v1()).await;
    loop {
        let (update, _) = ws.until("queue_update").await;
        if update["data"]["state"] == "expired" {
            break;
        }
    }
    assert_eq!(a.client.queue_status_raw(&app).await["state"], "expired");
    // A new join is allowed after expiry.
    ws.send(join_1v1()).await;
    let (update, _) = ws.until("queue_update").await;
    assert_eq!(update["data"]["state"], "searching");
    app.finish().await;
}
