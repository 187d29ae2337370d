//! After the match, over real HTTP and WebSockets: sessions stored and allocated, session
//! tokens, the game-server API (heartbeats, states, results, backfill, custom sessions), ratings
//! and histories, abandonment, allocation failure, restarts.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use secrecy::SecretString;
use serde_json::{Value, json};
use uuid::Uuid;
use versus_client::session_token;
use versus_config::{QueueSpec, StepSpec};
use versus_server::Config;
use versus_server::config::{AllocatorConfig, Queues};

use crate::on_both_backends;
use crate::realtime::Ws;
use crate::support::{Backend, Player, TestApp, expect_problem, spawn_app_with, unique};

on_both_backends!(
    a_1v1_match_is_played_to_new_ratings,
    a_5v5_match_rates_all_ten_players,
    a_silent_game_server_abandons_its_session,
    failed_allocation_requeues_players_at_the_front,
    results_must_fit_the_roster_and_keys_their_routes,
    a_restart_between_match_and_result_loses_nothing,
    custom_sessions_and_backfill_join_players_to_a_session,
);

pub const SERVER_KEY: &str = "test-game-server-key-0123456789abcdefghijklmnop";
pub const TOKEN_KEY: &str = "test-session-token-key-0123456789abcdefghijklmno";

pub fn with_session_keys(config: &mut Config) {
    config.sessions.server_key = Some(SecretString::from(SERVER_KEY));
    config.sessions.token_key = Some(SecretString::from(TOKEN_KEY));
}

pub(crate) async fn spawn(backend: Backend, tweak: impl FnOnce(&mut Config)) -> Option<TestApp> {
    spawn_app_with(backend, |config| {
        with_session_keys(config);
        tweak(config);
    })
    .await
}

/// The only queue is a duel where anyone meets anyone, again and again (wide windows, no
/// opponent memory): two players can be matched with each other at once and repeatedly.
pub(crate) fn anyone_meets_anyone(config: &mut Config) {
    let mut duel = QueueSpec::new("ranked-1v1", 2, 1);
    duel.rating_widening = StepSpec::list(&[(0, 5000.0)]);
    duel.recent_opponent_memory = 0;
    config.queues = Queues::from_specs(&[duel]).unwrap();
}

/// A game server: the REST calls it makes with the server key.
pub(crate) struct GameServer<'a> {
    pub(crate) app: &'a TestApp,
}

impl GameServer<'_> {
    pub(crate) async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> reqwest::Response {
        let mut request = (self.app.http)
            .request(method, self.app.url(path))
            .bearer_auth(SERVER_KEY);
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.unwrap()
    }

    async fn heartbeat(&self, session: &str) -> reqwest::Response {
        let path = format!("/api/v1/sessions/{session}/heartbeat");
        self.call(reqwest::Method::POST, &path, None).await
    }

    async fn set_state(&self, session: &str, state: &str) -> reqwest::Response {
        let path = format!("/api/v1/sessions/{session}/state");
        let body = json!({ "state": state, "reason": format!("test says {state}") });
        self.call(reqwest::Method::PUT, &path, Some(body)).await
    }

    pub(crate) async fn result(&self, session: &str, teams: Value) -> reqwest::Response {
        let path = format!("/api/v1/sessions/{session}/result");
        self.call(
            reqwest::Method::POST,
            &path,
            Some(json!({ "teams": teams })),
        )
        .await
    }
}

fn join(queue: &str) -> Value {
    json!({"type": "queue.join", "data": {"queue": queue, "latencies": {"eu": 30}}})
}

/// Reads events until one of `kind` arrives.
pub(crate) async fn next_of(ws: &mut Ws, kind: &str) -> Value {
    loop {
        let event = ws.next_event().await;
        if event["type"] == kind {
            return event["data"].clone();
        }
    }
}

pub(crate) struct Seated {
    pub(crate) player: Player,
    pub(crate) ws: Ws,
    matched: Value,
    ready: Value,
}

/// `n` new players join `queue` over their sockets; returns them with their `match_found` and
/// `session_ready`, and the session id they share.
pub(crate) async fn play(app: &TestApp, queue: &str, n: usize) -> (Vec<Seated>, String) {
    let mut waiting = Vec::new();
    for i in 0..n {
        let player = app.player(&unique(&format!("s{i}"))).await;
        let mut ws = Ws::connect(app, &player, None).await;
        ws.send(join(queue)).await;
        waiting.push((player, ws));
    }
    let mut seated = Vec::new();
    for (player, mut ws) in waiting {
        let matched = next_of(&mut ws, "match_found").await;
        let ready = next_of(&mut ws, "session_ready").await;
        assert_eq!(ready["session_id"], matched["match_id"], "{ready}");
        seated.push(Seated {
            player,
            ws,
            matched,
            ready,
        });
    }
    let session = seated[0].ready["session_id"].as_str().unwrap().to_owned();
    assert!(
        seated
            .iter()
            .all(|s| s.ready["session_id"] == session.as_str())
    );
    (seated, session)
}

fn verify(ready: &Value, player: Uuid) -> Result<(), session_token::SessionTokenError> {
    let session = Uuid::parse_str(ready["session_id"].as_str().unwrap()).unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let token = ready["token"].as_str().unwrap();
    session_token::verify(TOKEN_KEY.as_bytes(), token, session, Some(player), now).map(|_| ())
}

async fn get_json(player: &Player, app: &TestApp, path: &str) -> Value {
    let response = (app.http.get(app.url(path)))
        .bearer_auth(player.client.access_token().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "GET {path}");
    response.json().await.unwrap()
}

/// The rating a `match_found` says `player` was matched on.
fn matched_rating(matched: &Value, player: Uuid) -> f64 {
    (matched["teams"].as_array().unwrap().iter())
        .flat_map(|t| t["players"].as_array().unwrap())
        .find(|p| p["player_id"] == player.to_string().as_str())
        .map(|p| p["display_rating"].as_f64().unwrap())
        .unwrap()
}

async fn a_1v1_match_is_played_to_new_ratings(backend: Backend) {
    // Wide windows and no opponent memory, so the two can meet again at once.
    let Some(app) = spawn(backend, |config| {
        anyone_meets_anyone(config);
    })
    .await
    else {
        return;
    };
    let gs = GameServer { app: &app };
    let (mut seated, session) = play(&app, "ranked-1v1", 2).await;
    for s in &seated {
        assert_eq!(
            s.ready["endpoint"], "127.0.0.1:7777",
            "the shipped static endpoint"
        );
        verify(&s.ready, s.player.id).expect("a valid token for its player and session");
        let other = seated.iter().find(|o| o.player.id != s.player.id).unwrap();
        assert_eq!(
            verify(&s.ready, other.player.id),
            Err(session_token::SessionTokenError::OtherPlayer)
        );
    }
    // The session is stored and readable by its players and its game server.
    let view = get_json(
        &seated[0].player,
        &app,
        &format!("/api/v1/sessions/{session}"),
    )
    .await;
    assert_eq!(view["state"], "ready");
    let outsider = app.player(&unique("outsider")).await;
    let refused = (app
        .http
        .get(app.url(&format!("/api/v1/sessions/{session}"))))
    .bearer_auth(outsider.client.access_token().unwrap())
    .send()
    .await
    .unwrap();
    expect_problem(refused, 403, "forbidden").await;

    let beat = gs.heartbeat(&session).await;
    assert_eq!(beat.status(), 200);
    assert_eq!(beat.json::<Value>().await.unwrap()["state"], "ready");
    assert_eq!(gs.set_state(&session, "active").await.status(), 200);
    for s in &mut seated {
        let update = next_of(&mut s.ws, "game_state_update").await;
        assert_eq!(
            (update["state"].as_str(), update["reason"].as_str()),
            (Some("active"), Some("test says active"))
        );
    }
    // The same change again (a game server that lost the first answer) is the same 200, with
    // nothing new told: the ended state below is the next update the players get.
    let again = gs.set_state(&session, "active").await;
    assert_eq!(again.status(), 200);
    assert_eq!(again.json::<Value>().await.unwrap()["state"], "active");

    let (winner, loser) = (seated[0].player.id, seated[1].player.id);
    let teams = json!([{"players": [winner], "rank": 1}, {"players": [loser], "rank": 2}]);
    let applied = gs.result(&session, teams.clone()).await;
    assert_eq!(applied.status(), 200);
    let applied: Value = applied.json().await.unwrap();
    let again: Value = gs.result(&session, teams).await.json().await.unwrap();
    assert_eq!(applied, again, "the same result answers the same");
    let other = json!([{"players": [loser], "rank": 1}, {"players": [winner], "rank": 2}]);
    expect_problem(gs.result(&session, other).await, 409, "result_conflict").await;

    let illegal = gs.set_state(&session, "active").await;
    let problem = expect_problem(illegal, 409, "illegal_transition").await;
    assert!(
        problem["detail"].as_str().unwrap().contains("ended"),
        "{problem}"
    );
    for s in &mut seated {
        let ended = next_of(&mut s.ws, "game_state_update").await;
        assert_eq!(ended["state"], "ended");
        let change = next_of(&mut s.ws, "rating_update").await;
        assert_eq!(change["session_id"], session.as_str());
        let won = s.player.id == winner;
        assert_eq!(change["outcome"], if won { "win" } else { "loss" });
        assert_eq!(change["change"].as_f64().unwrap() > 0.0, won, "{change}");
    }
    let ratings = get_json(
        &seated[0].player,
        &app,
        &format!("/api/v1/players/{winner}/ratings"),
    )
    .await;
    let duel = &ratings["ratings"][0];
    assert_eq!(
        (
            duel["queue"].as_str(),
            duel["games"].as_u64(),
            duel["wins"].as_u64()
        ),
        (Some("ranked-1v1"), Some(1), Some(1))
    );
    let history = get_json(
        &seated[1].player,
        &app,
        &format!("/api/v1/players/{loser}/ratings/ranked-1v1/history"),
    )
    .await;
    assert_eq!(history["items"].as_array().unwrap().len(), 1);
    assert_eq!(
        history["items"][0]["after"],
        ratings_of(&app, &seated[1].player, loser).await
    );
    let matches = get_json(
        &seated[1].player,
        &app,
        &format!("/api/v1/players/{loser}/matches"),
    )
    .await;
    assert_eq!(matches["items"][0]["session_id"], session.as_str());
    assert_eq!(matches["items"][0]["outcome"], "loss");
    let me = get_json(&seated[0].player, &app, "/api/v1/players/me").await;
    assert_eq!(me["stats"]["wins"], 1, "{me}");
    // After the end, the game server holds nothing: heartbeats are refused.
    expect_problem(gs.heartbeat(&session).await, 409, "session_not_live").await;

    // The next match uses the stored ratings: the winner is matched higher than the loser.
    let mut rematch = Vec::new();
    for s in seated {
        let mut ws = s.ws;
        ws.send(join("ranked-1v1")).await;
        rematch.push((s.player, ws));
    }
    let mut found = Vec::new();
    for (_, ws) in &mut rematch {
        found.push(next_of(ws, "match_found").await);
    }
    assert!(matched_rating(&found[0], winner) > matched_rating(&found[0], loser));
    app.finish().await;
}

/// The stored rating value (`rating`, `deviation`, `display_rating`) of `player` in ranked-1v1.
async fn ratings_of(app: &TestApp, reader: &Player, player: Uuid) -> Value {
    let ratings = get_json(reader, app, &format!("/api/v1/players/{player}/ratings")).await;
    let queue = &ratings["ratings"][0];
    json!({
        "rating": queue["rating"],
        "deviation": queue["deviation"],
        "display_rating": queue["display_rating"],
    })
}

async fn a_5v5_match_rates_all_ten_players(backend: Backend) {
    let Some(app) = spawn(backend, |_| {}).await else {
        return;
    };
    let gs = GameServer { app: &app };
    let (mut seated, session) = play(&app, "ranked-5v5", 10).await;
    let teams: Vec<Vec<String>> = (seated[0].matched["teams"].as_array().unwrap().iter())
        .map(|t| {
            (t["players"].as_array().unwrap().iter())
                .map(|p| p["player_id"].as_str().unwrap().to_owned())
                .collect()
        })
        .collect();
    assert_eq!(teams.iter().map(Vec::len).collect::<Vec<_>>(), [5, 5]);
    assert_eq!(gs.heartbeat(&session).await.status(), 200);
    assert_eq!(gs.set_state(&session, "active").await.status(), 200);
    // Reported in the other order than formed: ranks, not positions, decide.
    let report = json!([{"players": teams[1], "rank": 1}, {"players": teams[0], "rank": 2}]);
    let applied: Value = gs.result(&session, report).await.json().await.unwrap();
    assert_eq!(applied["players"].as_array().unwrap().len(), 10);
    for s in &mut seated {
        let change = next_of(&mut s.ws, "rating_update").await;
        let won = teams[1].contains(&s.player.id.to_string());
        assert_eq!(
            change["outcome"],
            if won { "win" } else { "loss" },
            "{change}"
        );
        assert_eq!(change["change"].as_f64().unwrap() > 0.0, won);
        let history = get_json(
            &s.player,
            &app,
            &format!("/api/v1/players/{}/ratings/ranked-5v5/history", s.player.id),
        )
        .await;
        assert_eq!(history["items"].as_array().unwrap().len(), 1);
    }
    app.finish().await;
}

async fn a_silent_game_server_abandons_its_session(backend: Backend) {
    let Some(app) = spawn(backend, |config| {
        config.sessions.heartbeat_ttl_secs = 1;
        config.sessions.ready_timeout_secs = 1;
        // One slot: the next match can only be allocated once the abandoned one released it.
        config.sessions.allocator = AllocatorConfig::Static {
            endpoints: vec![versus_server::config::StaticEndpoint {
                address: "10.1.2.3:7000".into(),
                capacity: 1,
            }],
        };
    })
    .await
    else {
        return;
    };
    let gs = GameServer { app: &app };
    let (mut seated, session) = play(&app, "ranked-1v1", 2).await;
    for s in &mut seated {
        let update = next_of(&mut s.ws, "game_state_update").await;
        assert_eq!(update["state"], "abandoned", "{update}");
        assert!(
            update["reason"].as_str().unwrap().contains("heartbeat"),
            "{update}"
        );
    }
    expect_problem(gs.heartbeat(&session).await, 409, "session_not_live").await;
    let teams = json!([{"players": [seated[0].player.id], "rank": 1}, {"players": [seated[1].player.id], "rank": 2}]);
    expect_problem(gs.result(&session, teams).await, 409, "session_not_live").await;
    let (_, next) = play(&app, "ranked-1v1", 2).await;
    assert_ne!(next, session, "the released slot takes the next match");
    assert!(
        app.metrics()
            .await
            .contains("game_sessions_abandoned_total")
    );
    app.finish().await;
}

/// An HTTP allocator that refuses its first `fail_first` calls with 503.
async fn fleet(fail_first: usize) -> (String, Arc<AtomicUsize>) {
    use axum::routing::post;
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let router = axum::Router::new().route(
        "/allocate",
        post(move |axum::Json(body): axum::Json<Value>| {
            let counter = counter.clone();
            async move {
                assert!(body["session_id"].is_string() && body["teams"].is_array(), "{body}");
                let n = counter.fetch_add(1, Ordering::SeqCst);
                if n < fail_first {
                    (axum::http::StatusCode::SERVICE_UNAVAILABLE, axum::Json(json!({})))
                } else {
                    (
                        axum::http::StatusCode::OK,
                        axum::Json(json!({"address": "10.9.9.9", "ports": [{"name": "default", "port": 7654}]})),
                    )
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (format!("http://{addr}/allocate"), calls)
}

async fn failed_allocation_requeues_players_at_the_front(backend: Backend) {
    // Every attempt of the first match's allocation fails (1 try + 1 retry), then the fleet
    // recovers.
    let (url, calls) = fleet(2).await;
    let Some(app) = spawn(backend, move |config| {
        config.sessions.allocator = AllocatorConfig::Http {
            url,
            timeout_ms: 1000,
            retries: 1,
        };
    })
    .await
    else {
        return;
    };
    let mut waiting = Vec::new();
    for i in 0..2 {
        let player = app.player(&unique(&format!("f{i}"))).await;
        let mut ws = Ws::connect(&app, &player, None).await;
        ws.send(join("ranked-1v1")).await;
        waiting.push((player, ws));
    }
    let mut first_ticket = Vec::new();
    for (_, ws) in &mut waiting {
        let found = next_of(ws, "match_found").await;
        first_ticket.push(found["ticket_id"].clone());
        let cancelled = next_of(ws, "game_state_update").await;
        assert_eq!(cancelled["state"], "cancelled", "{cancelled}");
        assert!(
            cancelled["reason"]
                .as_str()
                .unwrap()
                .contains("game server"),
            "{cancelled}"
        );
    }
    // Requeued at the front with the same ticket, matched again, and this time allocated.
    for (i, (player, ws)) in waiting.iter_mut().enumerate() {
        let again = next_of(ws, "match_found").await;
        assert_eq!(
            again["ticket_id"], first_ticket[i],
            "the same ticket, its wait kept"
        );
        let ready = next_of(ws, "session_ready").await;
        assert_eq!(ready["endpoint"], "10.9.9.9:7654");
        verify(&ready, player.id).unwrap();
    }
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    app.finish().await;
}

async fn results_must_fit_the_roster_and_keys_their_routes(backend: Backend) {
    let Some(app) = spawn(backend, |_| {}).await else {
        return;
    };
    let gs = GameServer { app: &app };
    let (seated, session) = play(&app, "ranked-1v1", 2).await;
    let (a, b) = (seated[0].player.id, seated[1].player.id);
    let stranger = Uuid::now_v7();
    for teams in [
        json!([{"players": [a], "rank": 1}]),
        json!([{"players": [a], "rank": 1}, {"players": [stranger], "rank": 2}]),
        json!([{"players": [a, b], "rank": 1}, {"players": [], "rank": 2}]),
        json!([{"players": [a], "rank": 1}, {"players": [a], "rank": 2}]),
    ] {
        let problem = expect_problem(
            gs.result(&session, teams.clone()).await,
            400,
            "validation_failed",
        )
        .await;
        assert_eq!(problem["field"], "teams", "{teams} → {problem}");
    }
    let teams = json!([{"players": [a], "rank": 1}, {"players": [b], "rank": 1}]);
    let unknown = Uuid::now_v7();
    expect_problem(
        gs.result(&unknown.to_string(), teams.clone()).await,
        404,
        "session_not_found",
    )
    .await;
    expect_problem(gs.heartbeat("not-a-uuid").await, 400, "validation_failed").await;

    // A player's token on game-server routes, the server key on player routes, nothing at all.
    let player_token = seated[0].player.client.access_token().unwrap().to_owned();
    let as_player = (app
        .http
        .post(app.url(&format!("/api/v1/sessions/{session}/result"))))
    .bearer_auth(&player_token)
    .json(&json!({ "teams": teams }))
    .send()
    .await
    .unwrap();
    expect_problem(as_player, 401, "unauthorized").await;
    let bare = (app
        .http
        .post(app.url(&format!("/api/v1/sessions/{session}/heartbeat"))))
    .send()
    .await
    .unwrap();
    expect_problem(bare, 401, "unauthorized").await;
    let key_as_player = (app.http.get(app.url("/api/v1/players/me")))
        .bearer_auth(SERVER_KEY)
        .send()
        .await
        .unwrap();
    expect_problem(key_as_player, 401, "unauthorized").await;

    // A draw is a result too; then the session is over.
    let drawn: Value = gs.result(&session, teams).await.json().await.unwrap();
    assert!(
        drawn["players"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["outcome"] == "draw"),
        "{drawn}"
    );

    // Tokens: forged with another key, expired, for another session.
    let ready = &seated[0].ready;
    let token = ready["token"].as_str().unwrap();
    let id = Uuid::parse_str(&session).unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    use session_token::SessionTokenError as E;
    assert_eq!(
        session_token::verify(
            b"another-key-entirely-0123456789abcdef",
            token,
            id,
            Some(a),
            now
        ),
        Err(E::BadSignature)
    );
    assert_eq!(
        session_token::verify(TOKEN_KEY.as_bytes(), token, unknown, Some(a), now),
        Err(E::OtherSession)
    );
    let expires = ready["expires_at"].as_i64().unwrap();
    assert_eq!(
        session_token::verify(TOKEN_KEY.as_bytes(), token, id, Some(a), expires + 1),
        Err(E::Expired)
    );
    let mut forged = token.to_owned();
    forged.replace_range(3..4, if &forged[3..4] == "0" { "1" } else { "0" });
    assert_eq!(
        session_token::verify(TOKEN_KEY.as_bytes(), &forged, id, None, now),
        Err(E::BadSignature)
    );
    app.finish().await;
}

async fn a_restart_between_match_and_result_loses_nothing(backend: Backend) {
    let Some(app) = spawn(backend, |_| {}).await else {
        return;
    };
    let (seated, session) = play(&app, "ranked-1v1", 2).await;
    let gs = GameServer { app: &app };
    assert_eq!(gs.set_state(&session, "active").await.status(), 200);
    let players: Vec<Uuid> = seated.iter().map(|s| s.player.id).collect();
    // A second match of theirs was still finding a game server when the server stopped.
    let interrupted = Uuid::now_v7();
    (app.state.store)
        .create_session(versus_store::NewSession {
            id: interrupted,
            queue: "ranked-1v1".into(),
            ranked: true,
            region: Some("eu".into()),
            teams: vec![vec![players[0]], vec![players[1]]],
            reason: "matched".into(),
            actor: versus_core::session::Actor::System,
            at: time::OffsetDateTime::now_utc(),
            placed: versus_store::Placement::Allocating,
        })
        .await
        .unwrap();
    let mut first = seated.into_iter().next().unwrap();
    let heard = next_of(&mut first.ws, "game_state_update").await;
    assert_eq!(heard["state"], "active");
    let app = app.restart().await;
    let gs = GameServer { app: &app };
    let beat: Value = gs.heartbeat(&session).await.json().await.unwrap();
    assert_eq!(beat["state"], "active", "{beat}");
    let cancelled = app.state.store.session(interrupted).await.unwrap().unwrap();
    assert_eq!(
        cancelled.state,
        versus_core::session::SessionState::Cancelled
    );
    // Told when they resume their event stream (ids from the old process replay everything).
    let mut resumed = Ws::connect(&app, &first.player, Some(1_000_000)).await;
    let told = next_of(&mut resumed, "game_state_update").await;
    assert_eq!(
        told["session_id"],
        interrupted.to_string().as_str(),
        "{told}"
    );
    assert_eq!(told["state"], "cancelled");
    assert!(
        told["reason"].as_str().unwrap().contains("restarted"),
        "{told}"
    );
    let teams = json!([{"players": [players[1]], "rank": 1}, {"players": [players[0]], "rank": 2}]);
    let applied = gs.result(&session, teams).await;
    assert_eq!(applied.status(), 200);
    let rating = app
        .state
        .store
        .player_rating(players[1], "ranked-1v1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((rating.games, rating.wins), (1, 1));
    app.finish().await;
}

async fn custom_sessions_and_backfill_join_players_to_a_session(backend: Backend) {
    let Some(app) = spawn(backend, |_| {}).await else {
        return;
    };
    let gs = GameServer { app: &app };
    let mut roster = Vec::new();
    for i in 0..10 {
        let player = app.player(&unique(&format!("c{i}"))).await;
        let ws = Ws::connect(&app, &player, None).await;
        roster.push((player, ws));
    }
    let ids: Vec<Uuid> = roster.iter().map(|(p, _)| p.id).collect();
    let body = json!({"queue": "ranked-5v5", "ranked": false, "teams": [{"players": &ids[..5]}, {"players": &ids[5..]}]});
    let created = gs
        .call(reqwest::Method::POST, "/api/v1/sessions", Some(body))
        .await;
    assert_eq!(created.status(), 201);
    let view: Value = created.json().await.unwrap();
    assert_eq!(view["state"], "ready");
    let session = view["session_id"].as_str().unwrap().to_owned();
    for (player, ws) in &mut roster {
        let ready = next_of(ws, "session_ready").await;
        assert_eq!(ready["session_id"], session.as_str());
        verify(&ready, player.id).unwrap();
    }
    let twice = json!({"queue": "ranked-5v5", "ranked": true, "teams": [{"players": [ids[0]]}, {"players": [ids[0]]}]});
    let problem = expect_problem(
        gs.call(reqwest::Method::POST, "/api/v1/sessions", Some(twice))
            .await,
        400,
        "validation_failed",
    )
    .await;
    assert_eq!(problem["field"], "teams");

    // A player left team 1: the queue fills the slot before anything else.
    let slots = json!({"slots": [{"team": 1, "count": 1}]});
    let path = format!("/api/v1/sessions/{session}/backfill");
    let requested = gs.call(reqwest::Method::POST, &path, Some(slots)).await;
    assert_eq!(requested.status(), 202, "{:?}", requested.text().await);
    let newcomer = app.player(&unique("late")).await;
    let mut ws = Ws::connect(&app, &newcomer, None).await;
    ws.send(join("ranked-5v5")).await;
    let found = next_of(&mut ws, "match_found").await;
    assert_eq!(found["match_id"], session.as_str());
    let ready = next_of(&mut ws, "session_ready").await;
    assert_eq!(ready["session_id"], session.as_str());
    verify(&ready, newcomer.id).unwrap();
    let view: Value = gs
        .call(
            reqwest::Method::GET,
            &format!("/api/v1/sessions/{session}"),
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        view["teams"][1]["players"].as_array().unwrap().len(),
        6,
        "{view}"
    );
    app.finish().await;
}
