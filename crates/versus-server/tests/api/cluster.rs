//! Several nodes as one system over PostgreSQL, Redis and NATS JetStream: a socket on one node
//! gets the events another node produced, numbered the same everywhere, and resumes on any node;
//! players queued through different nodes meet in one matchmaker.

use secrecy::ExposeSecret as _;
use serde_json::{Value, json};

use crate::parties::{call, ok};
use crate::realtime::Ws;
use crate::sessions::{GameServer, with_session_keys};
use crate::support::{Player, TestApp, expect_problem, spawn_cluster, unique};

async fn post(node: &TestApp, player: &Player, path: &str, body: Value) -> Value {
    ok(call(node, player, reqwest::Method::POST, path, Some(body)).await).await
}

/// The next stream event of `kind` (the whole envelope).
async fn next_envelope(ws: &mut Ws, kind: &str) -> Value {
    loop {
        let event = ws.next_event().await;
        if event["type"] == kind {
            return event;
        }
    }
}

#[tokio::test]
async fn a_socket_on_one_node_gets_events_made_on_another_and_resumes_anywhere() {
    let Some(nodes) = spawn_cluster(2, |_| {}).await else {
        return;
    };
    let (node_a, node_b) = (&nodes[0], &nodes[1]);
    let a = node_a.player(&unique("ca")).await;
    let b = node_b.player(&unique("cb")).await;
    let mut a_ws = Ws::connect(node_a, &a, None).await;
    let mut b_ws = Ws::connect(node_b, &b, None).await;

    // B's leader invites A through node B: A's socket on node A hears it.
    let party = post(node_b, &b, "/api/v1/parties", json!({ "open": false })).await;
    let party_id = party["party_id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/parties/{party_id}/invites");
    post(node_b, &b, &path, json!({ "player_id": a.id })).await;
    let invite = next_envelope(&mut a_ws, "party_invite").await;
    assert_eq!(invite["data"]["party_id"], party_id.as_str(), "{invite}");

    // A joins through node A: B's socket on node B hears it.
    post(
        node_a,
        &a,
        &format!("/api/v1/parties/{party_id}/join"),
        json!({}),
    )
    .await;
    let joined = loop {
        let update = next_envelope(&mut b_ws, "party_update").await;
        if update["data"]["reason"] == "joined" {
            break update;
        }
    };
    assert_eq!(joined["data"]["by"], a.id.to_string(), "{joined}");
    let a_joined = loop {
        let update = next_envelope(&mut a_ws, "party_update").await;
        if update["data"]["reason"] == "joined" {
            break update;
        }
    };

    // A's events are numbered once for the cluster: reconnecting to node B after the invite
    // replays exactly what followed it, under the same numbers.
    drop(a_ws);
    let invite_id = invite["id"].as_u64().unwrap();
    let mut again = Ws::connect(node_b, &a, Some(invite_id)).await;
    let mut replayed = Vec::new();
    while let Some(event) = again.try_next(std::time::Duration::from_millis(500)).await {
        replayed.push(event);
    }
    assert!(
        replayed.iter().all(|e| e["type"] != "resume_gap"),
        "{replayed:?}"
    );
    let ids: Vec<u64> = replayed.iter().map(|e| e["id"].as_u64().unwrap()).collect();
    assert_eq!(ids.first(), Some(&(invite_id + 1)), "{replayed:?}");
    assert!(ids.windows(2).all(|w| w[1] == w[0] + 1), "{ids:?}");
    assert!(replayed.contains(&a_joined), "{replayed:?}");

    // Every node reports the event bus in its detailed health.
    for node in [node_a, node_b] {
        let health: Value = (node.http.get(node.url("/health/detailed")).send().await)
            .unwrap()
            .json()
            .await
            .unwrap();
        let events = (health["backends"].as_array().unwrap().iter())
            .find(|b| b["name"] == "events")
            .unwrap_or_else(|| panic!("{health}"));
        assert_eq!(events["kind"], "nats");
        assert_eq!(events["status"], "up", "{health}");
    }

    let mut nodes = nodes;
    let first = nodes.remove(0);
    for node in nodes {
        node.finish().await;
    }
    first.finish().await;
}

#[tokio::test]
async fn players_queued_through_different_nodes_meet_in_one_matchmaker() {
    let Some(nodes) = spawn_cluster(2, |config| {
        with_session_keys(config);
        config.leaderboards.placement_games = 1;
    })
    .await
    else {
        return;
    };
    let (node_a, node_b) = (&nodes[0], &nodes[1]);
    let a = node_a.player(&unique("ma")).await;
    let b = node_b.player(&unique("mb")).await;
    let mut a_ws = Ws::connect(node_a, &a, None).await;
    let mut b_ws = Ws::connect(node_b, &b, None).await;
    let join = json!({ "type": "queue.join", "data": { "queue": "ranked-1v1", "latencies": { "eu": 30 } } });
    a_ws.send(join.clone()).await;
    b_ws.send(join).await;
    let a_found = next_envelope(&mut a_ws, "match_found").await;
    let b_found = next_envelope(&mut b_ws, "match_found").await;
    assert_eq!(a_found["data"]["match_id"], b_found["data"]["match_id"]);
    let a_ready = next_envelope(&mut a_ws, "session_ready").await;
    let b_ready = next_envelope(&mut b_ws, "session_ready").await;
    assert_eq!(a_ready["data"]["session_id"], a_found["data"]["match_id"]);
    assert_eq!(b_ready["data"]["session_id"], a_found["data"]["match_id"]);
    // Either node answers either player's status.
    for (node, player) in [(node_a, &b), (node_b, &a)] {
        let status = ok(call(
            node,
            player,
            reqwest::Method::GET,
            "/api/v1/queue/status",
            None,
        )
        .await)
        .await;
        assert_eq!(status["state"], "matched", "{status}");
        assert_eq!(status["match_id"], a_found["data"]["match_id"], "{status}");
    }

    // The game server talks to the other node than the one that formed the session: its
    // heartbeats count, its result is applied once, every board shows the new ratings.
    let session = a_ready["data"]["session_id"].as_str().unwrap().to_owned();
    // Node A started first, so it took the lease: the session was formed there.
    let game_server = GameServer { app: node_b };
    let path = format!("/api/v1/sessions/{session}/heartbeat");
    let beat = game_server.call(reqwest::Method::POST, &path, None).await;
    assert_eq!(beat.status(), 200, "{:?}", beat.text().await);
    let teams = json!([{"players": [a.id], "rank": 1}, {"players": [b.id], "rank": 2}]);
    assert_eq!(
        game_server.result(&session, teams.clone()).await.status(),
        200
    );
    for ws in [&mut a_ws, &mut b_ws] {
        next_envelope(ws, "rating_update").await;
    }
    // The same result again through the other node (its first answer lost, say): the same 200,
    // its rating changes announced again — and dropped by the bus, so nobody hears twice.
    let again = GameServer { app: node_a }.result(&session, teams).await;
    assert_eq!(again.status(), 200);
    for ws in [&mut a_ws, &mut b_ws] {
        let twice = event_within(ws, "rating_update", std::time::Duration::from_secs(1)).await;
        assert_eq!(twice, None, "rating_update twice");
    }
    // The other node hears of the result on the bus and refreshes its board from the store.
    for node in [node_b, node_a] {
        let path = "/api/v1/leaderboards/ranked-1v1?limit=10";
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let board = ok(call(node, &a, reqwest::Method::GET, path, None).await).await;
            let ranked: Vec<String> = (board["entries"].as_array().unwrap().iter())
                .map(|e| e["player_id"].as_str().unwrap().to_owned())
                .collect();
            if ranked == [a.id.to_string(), b.id.to_string()] {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "{board}");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    // An admin's early rollover through B: A's board moves to the new season too.
    let root = crate::admin::admin(node_b).await;
    let rolled = ok(call(
        node_b,
        &root,
        reqwest::Method::POST,
        "/api/v1/admin/leaderboards/ranked-1v1/rollover",
        None,
    )
    .await)
    .await;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let path = "/api/v1/leaderboards/ranked-1v1";
        let board = ok(call(node_a, &a, reqwest::Method::GET, path, None).await).await;
        if board["season"]["number"] == rolled["number"] {
            assert_eq!(board["total"], 0, "{board}");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{board}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    // One searching ticket per player across nodes: joined through A, refused through B, and
    // left through B.
    let c = node_a.player(&unique("mc")).await;
    let five = json!({ "queue": "ranked-5v5", "latencies": { "eu": 30 } });
    post(node_a, &c, "/api/v1/queue/join", five.clone()).await;
    let path = "/api/v1/queue/join";
    expect_problem(
        call(node_b, &c, reqwest::Method::POST, path, Some(five)).await,
        409,
        "already_queued",
    )
    .await;
    let stats_a = ok(call(
        node_a,
        &c,
        reqwest::Method::GET,
        "/api/v1/matchmaking/statistics",
        None,
    )
    .await)
    .await;
    let stats_b = ok(call(
        node_b,
        &c,
        reqwest::Method::GET,
        "/api/v1/matchmaking/statistics",
        None,
    )
    .await)
    .await;
    let searching = |stats: &Value| {
        (stats["queues"].as_array().unwrap().iter())
            .find(|q| q["queue"] == "ranked-5v5")
            .map(|q| q["searching_tickets"].clone())
    };
    assert_eq!(
        searching(&stats_a),
        searching(&stats_b),
        "{stats_a} {stats_b}"
    );
    let left = ok(call(
        node_b,
        &c,
        reqwest::Method::DELETE,
        "/api/v1/queue/leave",
        None,
    )
    .await)
    .await;
    assert_eq!(left["state"], "cancelled", "{left}");

    // A clean stop of the matchmaker's node (A) hands the lease over at once: B loads the
    // journal and answers for the searching ticket within a couple of seconds.
    let d = node_b.player(&unique("md")).await;
    let five = json!({ "queue": "ranked-5v5", "latencies": { "eu": 30 } });
    let keyed_join = |node: &TestApp, key: &str| {
        (node.http.post(node.url("/api/v1/queue/join")))
            .bearer_auth(d.client.access_token().unwrap())
            .header("Idempotency-Key", key)
            .json(&five)
            .send()
    };
    let d_ticket: Value = keyed_join(node_b, "d-join-1")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut nodes = nodes;
    let stopped = std::time::Instant::now();
    let restarted = nodes.remove(0).restart().await;
    loop {
        let path = "/api/v1/queue/status";
        let status = call(&restarted, &d, reqwest::Method::GET, path, None).await;
        if status.status() == 200 {
            let status: Value = status.json().await.unwrap();
            assert_eq!(status["ticket_id"], d_ticket["ticket_id"], "{status}");
            assert_eq!(status["state"], "searching", "{status}");
            break;
        }
        let waited = stopped.elapsed();
        assert!(
            waited < std::time::Duration::from_secs(3),
            "no matchmaker {waited:?} after a clean stop"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    eprintln!(
        "clean stop: the ticket answered through the new matchmaker {:?} after",
        stopped.elapsed()
    );
    // The join's key moved with its ticket: the same join sent again (its answer lost, say)
    // is answered with that ticket, not refused as a second one.
    let node_b = &nodes[0];
    let again = keyed_join(node_b, "d-join-1").await.unwrap();
    assert_eq!(again.status(), 200);
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["ticket_id"], d_ticket["ticket_id"], "{again}");
    let other = keyed_join(node_b, "d-join-2").await.unwrap();
    expect_problem(other, 409, "already_queued").await;
    let first = restarted;
    for node in nodes {
        node.finish().await;
    }
    first.finish().await;
}

/// A forming entry as the matchmaker journals it (`matchmaking::journal::FormingMatch`), for a
/// one-against-one match of `players` (ticket, player) in `session`. Written by hand: a format
/// change must keep reading what a node of the previous version left.
fn forming_entry(session: uuid::Uuid, players: &[(uuid::Uuid, uuid::Uuid)]) -> Value {
    let joined_at_ms = time::OffsetDateTime::now_utc().unix_timestamp() * 1000 - 2000;
    let tickets: Vec<Value> = (players.iter().enumerate())
        .map(|(team, (ticket, player))| {
            json!({
                "ticket": {
                    "ticket_id": ticket,
                    "players": [[player, [1500.0, 350.0, 0.06]]],
                    "region_latency_ms": [30, 30, 30],
                    "joined_at_ms": joined_at_ms,
                },
                "team": team,
                "update": {
                    "ticket_id": ticket, "queue": "ranked-1v1", "state": "matched",
                    "position": null, "estimated_wait": null, "elapsed_s": 2.0,
                    "match_id": session,
                },
            })
        })
        .collect();
    let teams: Vec<Value> = (players.iter())
        .map(|(_, player)| {
            json!({ "players": [{ "player_id": player, "display_rating": 1500.0 }],
                    "win_probability": 0.5 })
        })
        .collect();
    json!({ "session_id": session, "region": "eu", "quality": 0.9, "teams": teams, "tickets": tickets })
}

/// The next event of `kind` within `wait`, if any.
async fn event_within(ws: &mut Ws, kind: &str, wait: std::time::Duration) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let event = ws.try_next(left).await?;
        if event["type"] == kind {
            return Some(event);
        }
    }
}

/// What a matchmaker that stopped left between a tick and its sessions, the next one finishes:
/// a match never stored is stored under its id and its players told; a match stored and
/// announced already is not announced twice; one stored while its game server was being found
/// is allocated again; a match whose tickets went back to the queue is dropped, the tickets kept
/// searching; a join retried with its key gets its matched ticket.
#[tokio::test]
async fn a_new_matchmaker_finishes_the_matches_the_old_one_left_forming() {
    let Some(mut nodes) = spawn_cluster(2, with_session_keys).await else {
        return;
    };
    let (a, b) = (&nodes[0], &nodes[1]);
    let join = json!({ "type": "queue.join", "data": { "queue": "ranked-1v1", "latencies": { "eu": 30 } } });
    // Stored and announced by A (which leads: it started first).
    let p3 = b.player(&unique("f3")).await;
    let p4 = b.player(&unique("f4")).await;
    let mut p3_ws = Ws::connect(b, &p3, None).await;
    let mut p4_ws = Ws::connect(b, &p4, None).await;
    p3_ws.send(join.clone()).await;
    p4_ws.send(join).await;
    let found = next_envelope(&mut p3_ws, "match_found").await;
    next_envelope(&mut p4_ws, "match_found").await;
    let stored: uuid::Uuid = found["data"]["match_id"].as_str().unwrap().parse().unwrap();
    let tickets = |ws_found: &Value| {
        ws_found["data"]["ticket_id"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap()
    };
    let p3_ticket: uuid::Uuid = tickets(&found);
    let p4_status =
        ok(call(b, &p4, reqwest::Method::GET, "/api/v1/queue/status", None).await).await;
    let p4_ticket: uuid::Uuid = p4_status["ticket_id"].as_str().unwrap().parse().unwrap();
    // Never stored: the old matchmaker died after its tick.
    let p1 = b.player(&unique("f1")).await;
    let p2 = b.player(&unique("f2")).await;
    let mut p1_ws = Ws::connect(b, &p1, None).await;
    let mut p2_ws = Ws::connect(b, &p2, None).await;
    let unstored = uuid::Uuid::now_v7();
    // Put back (no game server) after forming: its ticket is in the journal again.
    let p5 = b.player(&unique("f5")).await;
    let p5_ticket = uuid::Uuid::now_v7();
    let put_back = uuid::Uuid::now_v7();

    // Stored while its game server was being found, when the old matchmaker died.
    let p6 = b.player(&unique("f6")).await;
    let p7 = b.player(&unique("f7")).await;
    let mut p6_ws = Ws::connect(b, &p6, None).await;
    let allocating = uuid::Uuid::now_v7();
    let database = a.config.database_url.as_ref().unwrap().expose_secret();
    let pool = sqlx::PgPool::connect(database).await.unwrap();
    sqlx::query(
        "INSERT INTO game_sessions (id, queue, ranked, region, state, created_at, updated_at) \
         VALUES ($1, 'ranked-1v1', true, 'eu', 'allocating', now(), now())",
    )
    .bind(allocating)
    .execute(&pool)
    .await
    .unwrap();
    for (team, player) in [p6.id, p7.id].into_iter().enumerate() {
        sqlx::query(
            "INSERT INTO session_players (session_id, player_id, team, slot, joined_at) \
             VALUES ($1, $2, $3, 0, now())",
        )
        .bind(allocating)
        .bind(player)
        .bind(team as i32)
        .execute(&pool)
        .await
        .unwrap();
    }
    sqlx::query(
        "INSERT INTO session_transitions (session_id, seq, from_state, to_state, actor, reason, at) \
         VALUES ($1, 1, NULL, 'allocating', 'system', 'formed', now())",
    )
    .bind(allocating)
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;

    let redis_url = a.config.redis_url.as_ref().unwrap().expose_secret();
    let prefix = &a.config.cluster_prefix;
    let mut redis = redis::Client::open(redis_url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let forming = format!("{prefix}:{{matchmaker}}:forming:ranked-1v1");
    let journal = format!("{prefix}:{{matchmaker}}:journal:ranked-1v1");
    let other = uuid::Uuid::now_v7();
    let p1_ticket = uuid::Uuid::now_v7();
    let mut unstored_entry = forming_entry(
        unstored,
        &[(p1_ticket, p1.id), (uuid::Uuid::now_v7(), p2.id)],
    );
    // p1's join went through with a key whose answer was lost with the old matchmaker.
    let join_body = json!({ "queue": "ranked-1v1", "latencies": { "eu": 30 } });
    unstored_entry["tickets"][0]["ticket"]["idempotency"] =
        json!({ "player": p1.id, "key": "p1-join", "request": join_body });
    let entries = [
        (unstored, unstored_entry),
        (
            stored,
            forming_entry(stored, &[(p3_ticket, p3.id), (p4_ticket, p4.id)]),
        ),
        (
            allocating,
            forming_entry(
                allocating,
                &[(uuid::Uuid::now_v7(), p6.id), (uuid::Uuid::now_v7(), p7.id)],
            ),
        ),
        (
            put_back,
            forming_entry(
                put_back,
                &[(p5_ticket, p5.id), (uuid::Uuid::now_v7(), other)],
            ),
        ),
    ];
    for (session, entry) in &entries {
        let _: () = redis::cmd("HSET")
            .arg(&forming)
            .arg(session.to_string())
            .arg(entry.to_string())
            .query_async(&mut redis)
            .await
            .unwrap();
    }
    let (_, put_back_entry) = entries.iter().find(|(id, _)| *id == put_back).unwrap();
    let searching = &put_back_entry["tickets"][0]["ticket"];
    let _: () = redis::cmd("HSET")
        .arg(&journal)
        .arg(p5_ticket.to_string())
        .arg(searching.to_string())
        .query_async(&mut redis)
        .await
        .unwrap();

    // A stops: B takes the lease, loads the journal and finishes what was forming.
    let restarted = nodes.remove(0).restart().await;
    let b = &nodes[0];
    for ws in [&mut p1_ws, &mut p2_ws] {
        let found = next_envelope(ws, "match_found").await;
        assert_eq!(found["data"]["match_id"], unstored.to_string(), "{found}");
        let ready = next_envelope(ws, "session_ready").await;
        assert_eq!(ready["data"]["session_id"], unstored.to_string(), "{ready}");
    }
    // The allocation is done again: its players hear where to play.
    let ready = next_envelope(&mut p6_ws, "session_ready").await;
    assert_eq!(
        ready["data"]["session_id"],
        allocating.to_string(),
        "{ready}"
    );
    // p1 sends its join again: the ticket it made, matched into that match — not a second one.
    let again = (b.http.post(b.url("/api/v1/queue/join")))
        .bearer_auth(p1.client.access_token().unwrap())
        .header("Idempotency-Key", "p1-join")
        .json(&join_body)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 200);
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["ticket_id"], p1_ticket.to_string(), "{again}");
    assert_eq!(again["state"], "matched", "{again}");
    assert_eq!(again["match_id"], unstored.to_string(), "{again}");
    let game_server = GameServer { app: b };
    let path = format!("/api/v1/sessions/{unstored}");
    let session = game_server.call(reqwest::Method::GET, &path, None).await;
    assert_eq!(session.status(), 200, "the unstored match is stored now");
    let path = format!("/api/v1/sessions/{put_back}");
    let session = game_server.call(reqwest::Method::GET, &path, None).await;
    assert_eq!(session.status(), 404, "a match put back is not stored");
    let status = ok(call(b, &p5, reqwest::Method::GET, "/api/v1/queue/status", None).await).await;
    assert_eq!(status["ticket_id"], p5_ticket.to_string(), "{status}");
    assert_eq!(status["state"], "searching", "{status}");
    // Announced again, and dropped by the bus: no second match_found.
    for ws in [&mut p3_ws, &mut p4_ws] {
        let again = event_within(ws, "match_found", std::time::Duration::from_secs(1)).await;
        assert_eq!(again, None, "announced twice");
    }
    // Nothing is left forming.
    let left: Vec<String> = redis::cmd("HKEYS")
        .arg(&forming)
        .query_async(&mut redis)
        .await
        .unwrap();
    assert!(left.is_empty(), "{left:?}");

    for node in nodes {
        node.finish().await;
    }
    restarted.finish().await;
}
