//! The admin API over real HTTP and WebSockets: who may call it, bans closing every door at
//! once, announcements, admin session moves, and the record of it all.

use std::time::Duration;

use serde_json::{Value, json};
use uuid::Uuid;
use versus_store::AdminAction;

use crate::on_both_backends;
use crate::realtime::Ws;
use crate::support::{Backend, Player, TestApp, expect_problem, spawn_app, unique};

on_both_backends!(
    admin_routes_answer_admins_only,
    a_ban_closes_every_door_and_an_unban_reopens_login,
    announcements_reach_every_connected_player,
);

/// Registers a player and makes them an admin on the store, as `versus admin grant` does.
pub(crate) async fn admin(app: &TestApp) -> Player {
    let player = app.player(&unique("admin")).await;
    let profile = app.state.store.player(player.id).await.unwrap().unwrap();
    let record = AdminAction {
        id: Uuid::now_v7(),
        admin_id: None,
        action: "grant_admin".into(),
        target: None,
        details: json!({}),
        at: time::OffsetDateTime::now_utc(),
    };
    let granted = (app.state.store)
        .set_admin(&profile.username, true, &record)
        .await
        .unwrap();
    assert!(granted.unwrap().admin);
    player
}

/// `method path` with `body`, as `token` (or no token).
async fn call(
    app: &TestApp,
    token: Option<&str>,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let mut request = app.http.request(method, app.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.unwrap()
}

async fn admin_routes_answer_admins_only(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let root = admin(&app).await;
    let player = app.player(&unique("plain")).await;
    let target = app.player(&unique("target")).await;
    let session = Uuid::now_v7();
    use reqwest::Method;
    let routes = [
        (
            Method::POST,
            format!("/api/v1/admin/players/{}/ban", target.id),
            Some(json!({"reason": "matrix"})),
        ),
        (
            Method::POST,
            format!("/api/v1/admin/players/{}/unban", target.id),
            Some(json!({})),
        ),
        (
            Method::POST,
            "/api/v1/admin/announcements".to_owned(),
            Some(json!({"message": "hello"})),
        ),
        (Method::GET, "/api/v1/admin/actions".to_owned(), None),
        (
            Method::PUT,
            format!("/api/v1/admin/sessions/{session}/state"),
            Some(json!({"state": "cancelled"})),
        ),
        (
            Method::POST,
            "/api/v1/admin/leaderboards/ranked-1v1/rollover".to_owned(),
            None,
        ),
    ];
    for (method, path, body) in &routes {
        let anonymous = call(&app, None, method.clone(), path, body.clone()).await;
        expect_problem(anonymous, 401, "unauthorized").await;
        let as_player = call(
            &app,
            player.client.access_token(),
            method.clone(),
            path,
            body.clone(),
        )
        .await;
        expect_problem(as_player, 403, "forbidden").await;
        let as_admin = call(
            &app,
            root.client.access_token(),
            method.clone(),
            path,
            body.clone(),
        )
        .await;
        let expected: u16 = if path.contains("/sessions/") {
            404
        } else {
            200
        };
        let status = as_admin.status().as_u16();
        assert!(
            status == expected || (path.ends_with("announcements") && status == 202),
            "{method} {path} as admin → {status}"
        );
    }
    // What admins did is on the record, newest first, with who did it.
    let record: Value = call(
        &app,
        root.client.access_token(),
        Method::GET,
        "/api/v1/admin/actions?limit=2",
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    let items = record["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["action"], "season_rollover");
    assert_eq!(items[0]["target"], "ranked-1v1");
    assert_eq!(items[1]["action"], "announce");
    assert_eq!(items[0]["admin_id"], root.id.to_string().as_str());
    let older: Value = call(
        &app,
        root.client.access_token(),
        Method::GET,
        &format!(
            "/api/v1/admin/actions?cursor={}",
            record["next"].as_str().unwrap()
        ),
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    let kinds: Vec<&str> = (older["items"].as_array().unwrap().iter())
        .map(|a| a["action"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["unban", "ban", "grant_admin"]);
    app.finish().await;
}

async fn a_ban_closes_every_door_and_an_unban_reopens_login(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let root = admin(&app).await;
    let name = unique("rowdy");
    let rowdy = app.player(&name).await;
    let mut ws = Ws::connect(&app, &rowdy, None).await;
    ws.send(
        json!({"type": "queue.join", "data": {"queue": "ranked-1v1", "latencies": {"eu": 30}}}),
    )
    .await;
    let update = ws.next_event().await;
    assert_eq!(update["type"], "queue_update", "{update}");

    let path = format!("/api/v1/admin/players/{}/ban", rowdy.id);
    let banned = call(
        &app,
        root.client.access_token(),
        reqwest::Method::POST,
        &path,
        Some(json!({"reason": "cheating"})),
    )
    .await;
    assert_eq!(banned.status(), 200);
    assert_eq!(banned.json::<Value>().await.unwrap()["banned"], true);

    let (code, _) = ws
        .closed(Duration::from_secs(5))
        .await
        .expect("the socket is closed");
    assert_eq!(code, 4003);
    // Out of the queue, locked out of every route, login, refresh and the socket.
    assert!(!app.state.matchmaking.is_searching(rowdy.id));
    let me = call(
        &app,
        rowdy.client.access_token(),
        reqwest::Method::GET,
        "/api/v1/players/me",
        None,
    )
    .await;
    assert!(matches!(me.status().as_u16(), 401 | 403), "{}", me.status());
    let login = app.client.login(&name, "correct horse battery").await;
    assert!(login.is_err(), "a banned player cannot log in");
    let refreshed = app.client.refresh(&rowdy.refresh_token).await;
    assert!(refreshed.is_err(), "nor refresh");
    let socket = Ws::with_token(&app, rowdy.client.access_token().unwrap(), None).await;
    assert!(matches!(socket, Err(401 | 403)), "nor connect");

    let path = format!("/api/v1/admin/players/{}/unban", rowdy.id);
    let unbanned = call(
        &app,
        root.client.access_token(),
        reqwest::Method::POST,
        &path,
        Some(json!({})),
    )
    .await;
    assert_eq!(unbanned.json::<Value>().await.unwrap()["banned"], false);
    // Tokens carry whole seconds: one issued in the second of the ban counts as before it.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let again = app
        .client
        .login(&name, "correct horse battery")
        .await
        .unwrap();
    let me = app
        .client
        .authenticated(again.access_token)
        .me()
        .await
        .unwrap();
    assert_eq!(me.id, rowdy.id);
    let own = format!("/api/v1/admin/players/{}/ban", root.id);
    let own = call(
        &app,
        root.client.access_token(),
        reqwest::Method::POST,
        &own,
        Some(json!({})),
    )
    .await;
    expect_problem(own, 409, "cannot_ban_self").await;
    let unknown = format!("/api/v1/admin/players/{}/ban", Uuid::now_v7());
    let missing = call(
        &app,
        root.client.access_token(),
        reqwest::Method::POST,
        &unknown,
        Some(json!({})),
    )
    .await;
    expect_problem(missing, 404, "not_found").await;
    app.finish().await;
}

async fn announcements_reach_every_connected_player(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let root = admin(&app).await;
    let mut sockets = Vec::new();
    for i in 0..3 {
        let player = app.player(&unique(&format!("fan{i}"))).await;
        sockets.push(Ws::connect(&app, &player, None).await);
    }
    let sent = call(
        &app,
        root.client.access_token(),
        reqwest::Method::POST,
        "/api/v1/admin/announcements",
        Some(json!({"message": "servers restart in 5 minutes"})),
    )
    .await;
    assert_eq!(sent.status(), 202);
    for ws in &mut sockets {
        let event = ws.next_event().await;
        assert_eq!(event["type"], "system_announcement", "{event}");
        assert_eq!(event["data"]["message"], "servers restart in 5 minutes");
    }
    let blank = call(
        &app,
        root.client.access_token(),
        reqwest::Method::POST,
        "/api/v1/admin/announcements",
        Some(json!({"message": "   "})),
    )
    .await;
    let problem = expect_problem(blank, 400, "validation_failed").await;
    assert_eq!(problem["field"], "message");
    app.finish().await;
}
