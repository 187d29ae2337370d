//! Parties over real HTTP and WebSocket: invites, joins, hand-over, kicks, ready checks, a
//! 5-stack matched together, a member's disconnect cancelling the party's ticket, and twenty
//! players racing for one free slot.

use serde_json::{Value, json};
use versus_config::{QueueSpec, StepSpec};
use versus_server::config::Queues;

use crate::on_both_backends;
use crate::realtime::Ws;
use crate::sessions::{next_of, spawn};
use crate::support::{Player, TestApp, expect_problem, unique};

on_both_backends!(
    invites_joins_kicks_and_a_leader_hand_over,
    a_five_stack_is_matched_together_and_gets_its_session,
    a_ready_check_nobody_answers_times_out,
    a_member_disconnecting_cancels_the_party_ticket,
    twenty_racing_joins_fill_one_free_slot_once,
    a_party_is_queued_whole_or_not_at_all,
    party_updates_come_in_order_and_are_replayed_after_a_drop,
    a_banned_member_is_taken_out_of_the_party,
    a_leader_leaving_mid_queue_cancels_the_ticket_and_hands_over,
);

pub(crate) async fn call(
    app: &TestApp,
    player: &Player,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let mut request = (app.http.request(method, app.url(path)))
        .bearer_auth(player.client.access_token().unwrap());
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.unwrap()
}

async fn read_party(app: &TestApp, player: &Player, party: &str) -> reqwest::Response {
    let path = format!("/api/v1/parties/{party}");
    call(app, player, reqwest::Method::GET, &path, None).await
}

async fn post(app: &TestApp, player: &Player, path: &str, body: Value) -> reqwest::Response {
    call(app, player, reqwest::Method::POST, path, Some(body)).await
}

pub(crate) async fn ok(response: reqwest::Response) -> Value {
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "{status}: {body}");
    body
}

async fn create(app: &TestApp, leader: &Player, open: bool) -> (String, Value) {
    let response = post(app, leader, "/api/v1/parties", json!({ "open": open })).await;
    assert_eq!(response.status(), 201);
    let party: Value = response.json().await.unwrap();
    (party["party_id"].as_str().unwrap().to_owned(), party)
}

/// `members` join `leader`'s new party by invite; returns the party id.
async fn party_of(app: &TestApp, leader: &Player, members: &[&Player]) -> String {
    let (party, _) = create(app, leader, false).await;
    for member in members {
        let path = format!("/api/v1/parties/{party}/invites");
        ok(post(app, leader, &path, json!({ "player_id": member.id })).await).await;
        ok(post(
            app,
            member,
            &format!("/api/v1/parties/{party}/join"),
            json!({}),
        )
        .await)
        .await;
    }
    party
}

/// The leader starts a ready check and every member answers yes.
async fn all_ready(app: &TestApp, party: &str, leader: &Player, members: &[&Player]) -> Value {
    let path = format!("/api/v1/parties/{party}/ready");
    let mut last = ok(post(app, leader, &path, json!({ "ready": true })).await).await;
    for member in members {
        let body = json!({ "ready": true, "latencies": { "eu": 40 } });
        last = ok(post(app, member, &path, body).await).await;
    }
    last
}

/// The next `party_update` for `reason`, skipping the others.
async fn update_because(ws: &mut Ws, reason: &str) -> Value {
    loop {
        let update = next_of(ws, "party_update").await;
        if update["reason"] == reason {
            return update;
        }
    }
}

fn ids(party: &Value) -> Vec<String> {
    (party["members"].as_array().unwrap().iter())
        .map(|m| m["player_id"].as_str().unwrap().to_owned())
        .collect()
}

async fn invites_joins_kicks_and_a_leader_hand_over(backend: crate::support::Backend) {
    let Some(app) = spawn(backend, |_| {}).await else {
        return;
    };
    let a = app.player(&unique("pa")).await;
    let b = app.player(&unique("pb")).await;
    let c = app.player(&unique("pc")).await;
    let mut b_ws = Ws::connect(&app, &b, None).await;
    let (party, view) = create(&app, &a, false).await;
    assert_eq!(view["leader_id"], a.id.to_string());
    expect_problem(
        post(&app, &a, "/api/v1/parties", json!({})).await,
        409,
        "already_in_party",
    )
    .await;

    // Strangers can neither read nor join; the leader alone invites.
    expect_problem(read_party(&app, &c, &party).await, 403, "not_party_member").await;
    let join = format!("/api/v1/parties/{party}/join");
    expect_problem(post(&app, &c, &join, json!({})).await, 403, "not_invited").await;
    expect_problem(
        post(&app, &c, &join, json!({ "code": view["join_code"] })).await,
        403,
        "bad_join_code",
    )
    .await;
    let invites = format!("/api/v1/parties/{party}/invites");
    expect_problem(
        post(&app, &b, &invites, json!({ "player_id": c.id })).await,
        403,
        "not_party_member",
    )
    .await;
    ok(post(&app, &a, &invites, json!({ "player_id": b.id })).await).await;
    let invite = next_of(&mut b_ws, "party_invite").await;
    assert_eq!(invite["party_id"], party.as_str());
    assert_eq!(invite["invited_by"], a.id.to_string());
    expect_problem(
        post(&app, &a, &invites, json!({ "player_id": b.id })).await,
        409,
        "already_invited",
    )
    .await;
    let joined = ok(post(&app, &b, &join, json!({})).await).await;
    assert_eq!(ids(&joined), [a.id.to_string(), b.id.to_string()]);
    let update = next_of(&mut b_ws, "party_update").await;
    assert_eq!(update["reason"], "joined");
    expect_problem(
        post(
            &app,
            &b,
            &format!("/api/v1/parties/{party}/kick"),
            json!({ "player_id": a.id }),
        )
        .await,
        403,
        "not_party_leader",
    )
    .await;

    // Kicked: told, out, and invited back.
    let kick = format!("/api/v1/parties/{party}/kick");
    let after = ok(post(&app, &a, &kick, json!({ "player_id": b.id })).await).await;
    assert_eq!(ids(&after), [a.id.to_string()]);
    let kicked = next_of(&mut b_ws, "party_update").await;
    assert_eq!(
        (kicked["reason"].as_str(), kicked["party"].is_null()),
        (Some("kicked"), true)
    );
    expect_problem(read_party(&app, &b, &party).await, 403, "not_party_member").await;
    ok(post(&app, &a, &invites, json!({ "player_id": b.id })).await).await;
    ok(post(&app, &b, &join, json!({})).await).await;

    // The leader leaves: the longest-standing member leads; the last one out disbands it.
    let leave = format!("/api/v1/parties/{party}/leave");
    let left = call(&app, &a, reqwest::Method::POST, &leave, None).await;
    assert_eq!(left.status(), 204);
    let handed = update_because(&mut b_ws, "leader_changed").await;
    assert_eq!(handed["party"]["leader_id"], b.id.to_string());
    let versions: Vec<u64> = vec![handed["party"]["version"].as_u64().unwrap()];
    assert!(versions[0] > view["version"].as_u64().unwrap());
    let view = ok(read_party(&app, &b, &party).await).await;
    assert_eq!(view["leader_id"], b.id.to_string());
    assert_eq!(
        call(&app, &b, reqwest::Method::POST, &leave, None)
            .await
            .status(),
        204
    );
    expect_problem(read_party(&app, &b, &party).await, 404, "party_not_found").await;
    app.finish().await;
}

/// A queue config for parties: a 5v5 where anyone meets anyone at once.
fn wide_five_v_five(config: &mut versus_server::Config) {
    let mut five = QueueSpec::new("ranked-5v5", 2, 5);
    five.rating_widening = StepSpec::list(&[(0, 5000.0)]);
    five.recent_opponent_memory = 0;
    config.queues = Queues::from_specs(&[five]).unwrap();
}

async fn a_five_stack_is_matched_together_and_gets_its_session(backend: crate::support::Backend) {
    let Some(app) = spawn(backend, wide_five_v_five).await else {
        return;
    };
    let mut stack = Vec::new();
    for i in 0..5 {
        let player = app.player(&unique(&format!("stack{i}"))).await;
        let ws = Ws::connect(&app, &player, None).await;
        stack.push((player, ws));
    }
    let members: Vec<&Player> = stack[1..].iter().map(|(p, _)| p).collect();
    let party = party_of(&app, &stack[0].0, &members).await;
    let ready = all_ready(&app, &party, &stack[0].0, &members).await;
    assert_eq!(ready["ready_check"]["state"], "passed", "{ready}");
    let check = next_of(&mut stack[1].1, "ready_check").await;
    assert_eq!(check["party_id"], party.as_str());
    let join = json!({ "queue": "ranked-5v5", "latencies": { "eu": 30 }, "party_id": party });
    let ticket = ok(post(&app, &stack[0].0, "/api/v1/queue/join", join).await).await;
    assert_eq!(ticket["state"], "searching");
    // Five solo players fill the other team.
    let mut solos = Vec::new();
    for i in 0..5 {
        let player = app.player(&unique(&format!("solo{i}"))).await;
        let mut ws = Ws::connect(&app, &player, None).await;
        ws.send(
            json!({"type": "queue.join", "data": {"queue": "ranked-5v5", "latencies": {"eu": 30}}}),
        )
        .await;
        solos.push((player, ws));
    }
    let stack_ids: Vec<String> = stack.iter().map(|(p, _)| p.id.to_string()).collect();
    let mut session = None;
    for (player, ws) in &mut stack {
        let found = next_of(ws, "match_found").await;
        let team = (found["teams"].as_array().unwrap().iter())
            .find(|t| {
                (t["players"].as_array().unwrap().iter())
                    .any(|p| p["player_id"] == player.id.to_string())
            })
            .unwrap()
            .clone();
        let mates: Vec<String> = (team["players"].as_array().unwrap().iter())
            .map(|p| p["player_id"].as_str().unwrap().to_owned())
            .collect();
        let mut sorted = mates.clone();
        sorted.sort();
        let mut expected = stack_ids.clone();
        expected.sort();
        assert_eq!(sorted, expected, "the party is one team, never split");
        let ready = next_of(ws, "session_ready").await;
        let id = ready["session_id"].as_str().unwrap().to_owned();
        assert_eq!(*session.get_or_insert(id.clone()), id);
    }
    for (_, ws) in &mut solos {
        let ready = next_of(ws, "session_ready").await;
        assert_eq!(ready["session_id"].as_str(), session.as_deref());
    }
    let view = ok(call(
        &app,
        &stack[2].0,
        reqwest::Method::GET,
        &format!("/api/v1/parties/{party}"),
        None,
    )
    .await)
    .await;
    assert_eq!(view["queue"]["state"], "matched", "{view}");
    assert!(view["ready_check"].is_null(), "spent on the ticket: {view}");
    app.finish().await;
}

async fn a_ready_check_nobody_answers_times_out(backend: crate::support::Backend) {
    let Some(app) = spawn(backend, |config| {
        config.parties.ready_check_timeout_secs = 1
    })
    .await
    else {
        return;
    };
    let a = app.player(&unique("ra")).await;
    let b = app.player(&unique("rb")).await;
    let party = party_of(&app, &a, &[&b]).await;
    let mut b_ws = Ws::connect(&app, &b, None).await;
    let ready = format!("/api/v1/parties/{party}/ready");
    expect_problem(
        post(&app, &b, &ready, json!({ "ready": true })).await,
        409,
        "no_ready_check",
    )
    .await;
    let started = ok(post(&app, &a, &ready, json!({ "ready": true })).await).await;
    assert_eq!(started["ready_check"]["state"], "running");
    let running = next_of(&mut b_ws, "ready_check").await;
    assert_eq!(running["state"], "running");
    assert_eq!(running["waiting"], json!([b.id]));
    let timed_out = next_of(&mut b_ws, "ready_check").await;
    assert_eq!(timed_out["state"], "timed_out", "{timed_out}");
    assert_eq!(timed_out["waiting"], json!([b.id]));
    // Too late now; the leader cannot queue.
    expect_problem(
        post(&app, &b, &ready, json!({ "ready": true })).await,
        409,
        "no_ready_check",
    )
    .await;
    let join = json!({ "queue": "ranked-5v5", "party_id": party });
    expect_problem(
        post(&app, &a, "/api/v1/queue/join", join).await,
        409,
        "party_not_ready",
    )
    .await;
    app.finish().await;
}

async fn a_member_disconnecting_cancels_the_party_ticket(backend: crate::support::Backend) {
    let Some(app) = spawn(backend, |config| {
        config.matchmaking.disconnect_grace_secs = 1
    })
    .await
    else {
        return;
    };
    let a = app.player(&unique("da")).await;
    let b = app.player(&unique("db")).await;
    let mut a_ws = Ws::connect(&app, &a, None).await;
    let b_ws = Ws::connect(&app, &b, None).await;
    let party = party_of(&app, &a, &[&b]).await;
    all_ready(&app, &party, &a, &[&b]).await;
    // Nobody else plays 5v5: the ticket waits.
    let join = json!({ "queue": "ranked-5v5", "latencies": { "eu": 30 }, "party_id": party });
    ok(post(&app, &a, "/api/v1/queue/join", join).await).await;
    drop(b_ws);
    let cancelled = update_because(&mut a_ws, "queue_cancelled").await;
    assert!(
        cancelled["detail"]
            .as_str()
            .unwrap()
            .ends_with("disconnected"),
        "{cancelled}"
    );
    let status = ok(call(&app, &a, reqwest::Method::GET, "/api/v1/queue/status", None).await).await;
    assert_eq!(status["state"], "cancelled", "{status}");
    app.finish().await;
}

async fn twenty_racing_joins_fill_one_free_slot_once(backend: crate::support::Backend) {
    let Some(app) = spawn(backend, |config| config.parties.max_size = 2).await else {
        return;
    };
    let leader = app.player(&unique("host")).await;
    let (party, view) = create(&app, &leader, true).await;
    let mut racers = Vec::new();
    for i in 0..20 {
        racers.push(app.player(&unique(&format!("race{i}"))).await);
    }
    let path = format!("/api/v1/parties/{party}/join");
    let body = json!({ "code": view["join_code"] });
    let answers =
        futures::future::join_all(racers.iter().map(|p| post(&app, p, &path, body.clone()))).await;
    let mut won = 0;
    for answer in answers {
        match answer.status().as_u16() {
            200 => won += 1,
            409 => {
                let problem: Value = answer.json().await.unwrap();
                assert_eq!(problem["code"], "party_full", "{problem}");
            }
            other => panic!("{other}: {:?}", answer.text().await),
        }
    }
    assert_eq!(won, 1, "exactly one racer gets the slot");
    let view = ok(call(
        &app,
        &leader,
        reqwest::Method::GET,
        &format!("/api/v1/parties/{party}"),
        None,
    )
    .await)
    .await;
    assert_eq!(view["members"].as_array().unwrap().len(), 2);
    app.finish().await;
}

async fn a_party_is_queued_whole_or_not_at_all(backend: crate::support::Backend) {
    let Some(app) = spawn(backend, |_| {}).await else {
        return;
    };
    let a = app.player(&unique("qa")).await;
    let b = app.player(&unique("qb")).await;
    let party = party_of(&app, &a, &[&b]).await;
    let solo = json!({ "queue": "ranked-5v5", "latencies": { "eu": 30 } });
    expect_problem(
        post(&app, &b, "/api/v1/queue/join", solo.clone()).await,
        409,
        "in_party",
    )
    .await;
    let whole = json!({ "queue": "ranked-5v5", "latencies": { "eu": 30 }, "party_id": party });
    expect_problem(
        post(&app, &a, "/api/v1/queue/join", whole.clone()).await,
        409,
        "party_not_ready",
    )
    .await;
    all_ready(&app, &party, &a, &[&b]).await;
    expect_problem(
        post(&app, &b, "/api/v1/queue/join", whole.clone()).await,
        403,
        "not_party_leader",
    )
    .await;
    // A member already searching alone (joined before the party): the party cannot queue.
    let c = app.player(&unique("qc")).await;
    ok(post(&app, &c, "/api/v1/queue/join", solo).await).await;
    let path = format!("/api/v1/parties/{party}/invites");
    ok(post(&app, &a, &path, json!({ "player_id": c.id })).await).await;
    ok(post(
        &app,
        &c,
        &format!("/api/v1/parties/{party}/join"),
        json!({}),
    )
    .await)
    .await;
    all_ready(&app, &party, &a, &[&b, &c]).await;
    let problem = expect_problem(
        post(&app, &a, "/api/v1/queue/join", whole.clone()).await,
        409,
        "member_queued",
    )
    .await;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains(&c.id.to_string())
    );
    // A queue that takes no party this big refuses it, naming the limit.
    ok(call(
        &app,
        &c,
        reqwest::Method::DELETE,
        "/api/v1/queue/leave",
        None,
    )
    .await)
    .await;
    let ffa = json!({ "queue": "ranked-1v1", "latencies": { "eu": 30 }, "party_id": party });
    let response = post(&app, &a, "/api/v1/queue/join", ffa).await;
    assert_eq!(response.status(), 400);
    let problem: Value = response.json().await.unwrap();
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("allows 1 to 1"),
        "{problem}"
    );
    app.finish().await;
}

/// The leader leaving while the party searches: the ticket is cancelled, every member is told
/// why, the longest-standing member leads, and the new leader can queue the party again once
/// it is ready (the first ready check does not carry over).
async fn a_leader_leaving_mid_queue_cancels_the_ticket_and_hands_over(
    backend: crate::support::Backend,
) {
    let Some(app) = spawn(backend, |_| {}).await else {
        return;
    };
    let a = app.player(&unique("la")).await;
    let b = app.player(&unique("lb")).await;
    let c = app.player(&unique("lc")).await;
    let party = party_of(&app, &a, &[&b, &c]).await;
    let mut b_ws = Ws::connect(&app, &b, None).await;
    let mut c_ws = Ws::connect(&app, &c, None).await;
    all_ready(&app, &party, &a, &[&b, &c]).await;
    // Nobody else plays 5v5: the ticket waits.
    let join = json!({ "queue": "ranked-5v5", "latencies": { "eu": 30 }, "party_id": party });
    ok(post(&app, &a, "/api/v1/queue/join", join.clone()).await).await;
    let status = ok(call(&app, &b, reqwest::Method::GET, "/api/v1/queue/status", None).await).await;
    assert_eq!(status["state"], "searching", "{status}");

    let path = format!("/api/v1/parties/{party}/leave");
    ok(post(&app, &a, &path, json!({})).await).await;
    for ws in [&mut b_ws, &mut c_ws] {
        let cancelled = update_because(ws, "queue_cancelled").await;
        assert_eq!(
            cancelled["party"]["leader_id"],
            b.id.to_string(),
            "{cancelled}"
        );
        assert_eq!(cancelled["by"], a.id.to_string(), "{cancelled}");
    }
    for player in [&a, &b, &c] {
        let status = ok(call(
            &app,
            player,
            reqwest::Method::GET,
            "/api/v1/queue/status",
            None,
        )
        .await)
        .await;
        assert_eq!(status["state"], "cancelled", "{status}");
    }
    let view = ok(read_party(&app, &b, &party).await).await;
    assert_eq!(view["leader_id"], b.id.to_string());
    assert_eq!(ids(&view), [b.id.to_string(), c.id.to_string()]);
    assert_eq!(read_party(&app, &a, &party).await.status(), 403);

    // The old check is gone: the new leader must run one before queueing again.
    expect_problem(
        post(&app, &b, "/api/v1/queue/join", join.clone()).await,
        409,
        "party_not_ready",
    )
    .await;
    all_ready(&app, &party, &b, &[&c]).await;
    ok(post(&app, &b, "/api/v1/queue/join", join).await).await;
    let status = ok(call(&app, &c, reqwest::Method::GET, "/api/v1/queue/status", None).await).await;
    assert_eq!(status["state"], "searching", "{status}");
    // The one who left can queue alone.
    let solo = json!({ "queue": "ranked-5v5", "latencies": { "eu": 30 } });
    ok(post(&app, &a, "/api/v1/queue/join", solo).await).await;
    app.finish().await;
}

/// `party_update` events carry the party's version in the order the changes happened, and a
/// member who was away gets the ones they missed on reconnecting with their last event id.
async fn party_updates_come_in_order_and_are_replayed_after_a_drop(
    backend: crate::support::Backend,
) {
    let Some(app) = spawn(backend, |_| {}).await else {
        return;
    };
    let a = app.player(&unique("oa")).await;
    let b = app.player(&unique("ob")).await;
    let c = app.player(&unique("oc")).await;
    let mut b_ws = Ws::connect(&app, &b, None).await;
    let party = party_of(&app, &a, &[&b]).await;
    let seen = loop {
        let event = b_ws.next_event().await;
        if event["type"] == "party_update" {
            break event;
        }
    };
    let last = seen["id"].as_u64().unwrap();
    drop(b_ws);
    // While b is away: c is invited and joins, then a hands the lead over by leaving.
    let invites = format!("/api/v1/parties/{party}/invites");
    ok(post(&app, &a, &invites, json!({ "player_id": c.id })).await).await;
    ok(post(
        &app,
        &c,
        &format!("/api/v1/parties/{party}/join"),
        json!({}),
    )
    .await)
    .await;
    let leave = format!("/api/v1/parties/{party}/leave");
    assert_eq!(
        call(&app, &a, reqwest::Method::POST, &leave, None)
            .await
            .status(),
        204
    );
    let mut b_ws = Ws::connect(&app, &b, Some(last)).await;
    let mut versions = vec![seen["data"]["party"]["version"].as_u64().unwrap()];
    let mut reasons = Vec::new();
    while reasons.last().map(String::as_str) != Some("leader_changed") {
        let event = b_ws.next_event().await;
        if event["type"] == "party_update" {
            versions.push(event["data"]["party"]["version"].as_u64().unwrap());
            reasons.push(event["data"]["reason"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(reasons, ["invited", "joined", "leader_changed"]);
    assert!(versions.windows(2).all(|w| w[0] < w[1]), "{versions:?}");
    app.finish().await;
}

async fn a_banned_member_is_taken_out_of_the_party(backend: crate::support::Backend) {
    let Some(app) = spawn(backend, |_| {}).await else {
        return;
    };
    let root = crate::admin::admin(&app).await;
    let a = app.player(&unique("ba")).await;
    let b = app.player(&unique("bb")).await;
    let party = party_of(&app, &a, &[&b]).await;
    let banned = post(
        &app,
        &root,
        &format!("/api/v1/admin/players/{}/ban", b.id),
        json!({}),
    )
    .await;
    assert_eq!(banned.status(), 200);
    let view = ok(read_party(&app, &a, &party).await).await;
    assert_eq!(ids(&view), [a.id.to_string()]);
    app.finish().await;
}
