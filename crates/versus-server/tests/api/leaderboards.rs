//! Leaderboards over HTTP: a board rebuilt from the store at start-up, paged both ways without
//! repeats or gaps, around a player, one player's place, and a live result on the board at once.

use std::collections::HashSet;

use serde_json::{Value, json};
use versus_server::seed::{SeedOptions, seed};

use crate::on_both_backends;

use crate::sessions::{GameServer, anyone_meets_anyone, next_of, play, spawn};
use crate::support::{Backend, Player, TestApp, expect_problem, unique};
use uuid::Uuid;

on_both_backends!(
    boards_rank_page_both_ways_and_follow_results,
    an_admin_rollover_keeps_the_old_board_readable,
    seasons_end_on_their_schedule,
    results_racing_a_rollover_count_once_in_their_season,
    a_carry_over_a_stop_interrupted_finishes_at_start_up,
);

async fn get(app: &TestApp, reader: &Player, path: &str) -> reqwest::Response {
    (app.http.get(app.url(path)))
        .bearer_auth(reader.client.access_token().unwrap())
        .send()
        .await
        .unwrap()
}

pub(crate) async fn json(app: &TestApp, reader: &Player, path: &str) -> Value {
    let response = get(app, reader, path).await;
    assert_eq!(response.status(), 200, "GET {path}");
    response.json().await.unwrap()
}

fn players(page: &Value) -> Vec<String> {
    (page["entries"].as_array().unwrap().iter())
        .map(|e| e["player_id"].as_str().unwrap().to_owned())
        .collect()
}

async fn boards_rank_page_both_ways_and_follow_results(backend: Backend) {
    let Some(app) = spawn(backend, |config| {
        config.leaderboards.placement_games = 2;
        // The live part replays one pairing.
        anyone_meets_anyone(config);
    })
    .await
    else {
        return;
    };
    let options = SeedOptions {
        players: 40,
        matches: 120,
        seed: 3,
        force: false,
        queue: Some("ranked-1v1".into()),
        fast: false,
        parties: 0,
    };
    seed(&*app.state.store, &app.config, &options)
        .await
        .unwrap();
    // Seeded behind the server's back: the board is rebuilt from the store at start-up.
    let app = app.restart().await;
    let reader = app.player(&unique("reader")).await;
    let top = json(&app, &reader, "/api/v1/leaderboards/ranked-1v1?limit=10").await;
    let total = top["total"].as_u64().unwrap();
    assert!(
        total > 20 && total <= 40,
        "players past 2 placement games: {total}"
    );
    let ratings: Vec<f64> = (top["entries"].as_array().unwrap().iter())
        .map(|e| e["rating"].as_f64().unwrap())
        .collect();
    assert!(ratings.windows(2).all(|w| w[0] >= w[1]), "{ratings:?}");
    assert_eq!(top["entries"][0]["rank"], 1);
    assert!(
        (top["entries"].as_array().unwrap().iter()).all(|e| e["games"].as_u64().unwrap() >= 2),
        "only players past their placement games"
    );
    assert!(top["prev"].is_null());

    // Forward in pages of 7 to the end, then back from there: every player exactly once.
    let mut forward = Vec::new();
    let mut page = json(&app, &reader, "/api/v1/leaderboards/ranked-1v1?limit=7").await;
    loop {
        forward.extend(players(&page));
        let Some(next) = page["next"].as_str() else {
            break;
        };
        page = json(
            &app,
            &reader,
            &format!("/api/v1/leaderboards/ranked-1v1?limit=7&cursor={next}"),
        )
        .await;
    }
    assert_eq!(forward.len() as u64, total);
    assert_eq!(forward.iter().collect::<HashSet<_>>().len(), forward.len());
    let mut backward = players(&page);
    while let Some(prev) = page["prev"].as_str() {
        page = json(
            &app,
            &reader,
            &format!("/api/v1/leaderboards/ranked-1v1?limit=7&cursor={prev}"),
        )
        .await;
        let mut earlier = players(&page);
        earlier.extend(backward);
        backward = earlier;
    }
    assert_eq!(backward, forward, "paging back retraces the board");

    // Around the 15th player, and their own place.
    let middle = forward[14].clone();
    let around = json(
        &app,
        &reader,
        &format!("/api/v1/leaderboards/ranked-1v1/around/{middle}?limit=3"),
    )
    .await;
    assert_eq!(players(&around), forward[11..18]);
    let place = json(
        &app,
        &reader,
        &format!("/api/v1/leaderboards/ranked-1v1/players/{middle}"),
    )
    .await;
    assert_eq!(place["entry"]["rank"], 15);
    let percentile = place["percentile"].as_f64().unwrap();
    assert!((percentile - 100.0 * (total - 15) as f64 / total as f64).abs() < 1e-9);
    let ratings = json(&app, &reader, &format!("/api/v1/players/{middle}/ratings")).await;
    assert_eq!(
        ratings["ratings"][0]["rank"], 15,
        "the rank is in the player's ratings"
    );

    // Not on the board, unknown board, bad cursor.
    let unranked = get(
        &app,
        &reader,
        &format!("/api/v1/leaderboards/ranked-1v1/players/{}", reader.id),
    )
    .await;
    expect_problem(unranked, 404, "not_ranked").await;
    expect_problem(
        get(&app, &reader, "/api/v1/leaderboards/nope").await,
        404,
        "queue_not_found",
    )
    .await;
    let bad = get(&app, &reader, "/api/v1/leaderboards/ranked-1v1?cursor=a12").await;
    expect_problem(bad, 400, "validation_failed").await;

    // Live results move the board as soon as they are applied (placement: two games each).
    let (mut duel, session) = play(&app, "ranked-1v1", 2).await;
    let gs = GameServer { app: &app };
    let (a, b) = (duel[0].player.id, duel[1].player.id);
    let report = json!([{"players": [a], "rank": 1}, {"players": [b], "rank": 2}]);
    assert_eq!(gs.result(&session, report.clone()).await.status(), 200);
    let still_placing = get(
        &app,
        &reader,
        &format!("/api/v1/leaderboards/ranked-1v1/players/{a}"),
    )
    .await;
    expect_problem(still_placing, 404, "not_ranked").await;
    for seat in &mut duel {
        seat.ws.send(json!({"type": "queue.join", "data": {"queue": "ranked-1v1", "latencies": {"eu": 30}}})).await;
    }
    let mut rematch = None;
    for seat in &mut duel {
        rematch = Some(
            next_of(&mut seat.ws, "session_ready").await["session_id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    assert_eq!(gs.result(&rematch.unwrap(), report).await.status(), 200);
    // On the board as soon as the second result is answered: no waiting.
    let place = json(
        &app,
        &reader,
        &format!("/api/v1/leaderboards/ranked-1v1/players/{a}"),
    )
    .await;
    assert_eq!(place["entry"]["games"], 2);
    assert_eq!(place["entry"]["wins"], 2);
    assert_eq!(place["total"], total + 2, "both players passed placement");
    let ratings = json(&app, &reader, &format!("/api/v1/players/{a}/ratings")).await;
    assert_eq!(
        place["entry"]["rating"],
        ratings["ratings"][0]["display_rating"]
    );
    assert_eq!(place["entry"]["rank"], ratings["ratings"][0]["rank"]);
    let me = json(&app, &duel[0].player, "/api/v1/players/me").await;
    assert_eq!(
        me["stats"]["ranks"],
        json!([{"queue": "ranked-1v1", "rank": place["entry"]["rank"]}])
    );
    app.finish().await;
}

async fn an_admin_rollover_keeps_the_old_board_readable(backend: Backend) {
    let Some(app) = spawn(backend, |config| {
        config.leaderboards.placement_games = 1;
        anyone_meets_anyone(config);
    })
    .await
    else {
        return;
    };
    let options = SeedOptions {
        players: 20,
        matches: 40,
        seed: 9,
        force: true,
        queue: Some("ranked-1v1".into()),
        fast: false,
        parties: 0,
    };
    seed(&*app.state.store, &app.config, &options)
        .await
        .unwrap();
    let app = app.restart().await;
    let root = crate::admin::admin(&app).await;
    let reader = app.player(&unique("reader")).await;
    let board = json(&app, &reader, "/api/v1/leaderboards/ranked-1v1?limit=100").await;
    let season = board["season"]["number"].as_u64().unwrap();
    assert_eq!(board["season"]["current"], true);
    assert!(
        board["season"]["next_reset"].is_null(),
        "no schedule: {board}"
    );
    let standings = players(&board);
    assert!(!standings.is_empty());
    let top = standings[0].clone();

    // An admin ends the season now: the board starts empty, the old one stays as it was.
    let rolled = (app.http)
        .post(app.url("/api/v1/admin/leaderboards/ranked-1v1/rollover"))
        .bearer_auth(root.client.access_token().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(rolled.status(), 200);
    let rolled: Value = rolled.json().await.unwrap();
    assert_eq!(rolled["number"].as_u64().unwrap(), season + 1);
    assert_eq!(rolled["current"], true);
    let fresh = json(&app, &reader, "/api/v1/leaderboards/ranked-1v1").await;
    assert_eq!(fresh["total"], 0, "everyone plays placement again: {fresh}");
    let old = json(
        &app,
        &reader,
        &format!("/api/v1/leaderboards/ranked-1v1?limit=100&season={season}"),
    )
    .await;
    assert_eq!(players(&old), standings, "frozen as it ended");
    assert_eq!(old["season"]["current"], false);
    assert_eq!(old["entries"], board["entries"]);
    let place = json(
        &app,
        &reader,
        &format!("/api/v1/leaderboards/ranked-1v1/players/{top}?season={season}"),
    )
    .await;
    assert_eq!(place["entry"]["rank"], 1);
    let around = json(
        &app,
        &reader,
        &format!("/api/v1/leaderboards/ranked-1v1/around/{top}?limit=2&season={season}"),
    )
    .await;
    assert_eq!(players(&around), standings[..3.min(standings.len())]);
    let mine = json(
        &app,
        &reader,
        &format!("/api/v1/players/{top}/seasons/ranked-1v1"),
    )
    .await;
    assert_eq!(mine["seasons"][0]["season"].as_u64().unwrap(), season);
    assert_eq!(mine["seasons"][0]["rank"], 1);
    let kept = json(
        &app,
        &reader,
        &format!("/api/v1/players/{top}/ratings/ranked-1v1/history?season={season}"),
    )
    .await;
    assert!(!kept["items"].as_array().unwrap().is_empty());
    assert!(
        (kept["items"].as_array().unwrap().iter()).all(|h| h["season"].as_u64() == Some(season))
    );
    let now = json(&app, &reader, &format!("/api/v1/players/{top}/ratings")).await;
    assert_eq!(now["ratings"][0]["games"], 0, "counts restart");
    expect_problem(
        get(&app, &reader, "/api/v1/leaderboards/ranked-1v1?season=99").await,
        404,
        "season_not_found",
    )
    .await;

    app.finish().await;
}

async fn seasons_end_on_their_schedule(backend: Backend) {
    use versus_server::config::SeasonConfig;
    let start = time::OffsetDateTime::now_utc();
    let Some(app) = spawn(backend, |config| {
        // One-second seasons on a calendar that starts now.
        let season = SeasonConfig {
            start: Some(start),
            length_days: None,
            length_secs: Some(1),
            end: None,
            reset_pull: 0.5,
            reset_widen: 0.5,
        };
        config
            .leaderboards
            .seasons
            .insert("ranked-1v1".into(), season);
    })
    .await
    else {
        return;
    };
    let reader = app.player(&unique("reader")).await;
    let board = json(&app, &reader, "/api/v1/leaderboards/ranked-1v1").await;
    assert!(board["season"]["next_reset"].is_string(), "{board}");
    assert_eq!(board["season"]["ends_at"], board["season"]["next_reset"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let seasons = loop {
        let list = json(&app, &reader, "/api/v1/leaderboards/ranked-1v1/seasons").await;
        let seasons = list["seasons"].as_array().unwrap().clone();
        if seasons.len() >= 3 {
            break seasons;
        }
        assert!(std::time::Instant::now() < deadline, "no rollover: {list}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    let parse = |v: &Value| {
        time::OffsetDateTime::parse(
            v.as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap()
    };
    for pair in seasons.windows(2) {
        assert_eq!(pair[0]["current"], false);
        // Each ends where the next starts, on a whole second of the calendar.
        assert_eq!(pair[0]["ends_at"], pair[1]["started_at"]);
        let boundary = parse(&pair[1]["started_at"]);
        assert_eq!(
            boundary.nanosecond(),
            0,
            "the calendar is in whole seconds: {pair:?}"
        );
    }
    assert_eq!(seasons.last().unwrap()["current"], true);
    app.finish().await;
}

/// Results posted while an admin rolls the season over: each is applied once, in the season
/// its transaction saw; season 1 freezes with every player exactly once, as their last season-1
/// result left them; the carry-over leaves every rating in season 2 with only season 2's games.
async fn results_racing_a_rollover_count_once_in_their_season(backend: Backend) {
    const QUEUE: &str = "ranked-1v1";
    let Some(app) = spawn(backend, |config| {
        config.leaderboards.placement_games = 1;
        anyone_meets_anyone(config);
    })
    .await
    else {
        return;
    };
    let options = SeedOptions {
        players: 600,
        matches: 0,
        seed: 5,
        force: true,
        queue: Some(QUEUE.into()),
        fast: true,
        parties: 0,
    };
    seed(&*app.state.store, &app.config, &options)
        .await
        .unwrap();
    let app = app.restart().await;
    let store = app.state.store.clone();
    let root = crate::admin::admin(&app).await;
    let before = store.season_board(QUEUE, 1, 1).await.unwrap();
    assert!(before.len() > 500, "{}", before.len());
    let gs = GameServer { app: &app };
    let mut sessions = Vec::new();
    for pair in before.chunks(2).take(40) {
        let ids = [pair[0].player_id, pair[1].player_id];
        let body = json!({"queue": QUEUE, "ranked": true, "teams": [{"players": [ids[0]]}, {"players": [ids[1]]}]});
        let created = gs
            .call(reqwest::Method::POST, "/api/v1/sessions", Some(body))
            .await;
        assert_eq!(created.status(), 201);
        let view: Value = created.json().await.unwrap();
        sessions.push((view["session_id"].as_str().unwrap().to_owned(), ids));
    }

    let post = |i: usize| {
        let (id, ids) = &sessions[i];
        let teams = json!([{"players": [ids[0]], "rank": 1}, {"players": [ids[1]], "rank": 2}]);
        let gs = &gs;
        async move {
            let response = gs.result(id, teams).await;
            assert_eq!(response.status(), 200, "{:?}", response.text().await);
        }
    };
    // Ten results before the rollover, twenty racing it, ten after it.
    for i in 0..10 {
        post(i).await;
    }
    let rollover = async {
        let rolled = (app.http)
            .post(app.url(&format!("/api/v1/admin/leaderboards/{QUEUE}/rollover")))
            .bearer_auth(root.client.access_token().unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(rolled.status(), 200);
    };
    let racing = futures::future::join_all((10..30).map(|i| {
        let post = &post;
        async move {
            tokio::time::sleep(std::time::Duration::from_millis(3 * (i as u64 - 10))).await;
            post(i).await;
        }
    }));
    tokio::join!(rollover, racing);
    for i in 30..40 {
        post(i).await;
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while store
        .oldest_uncarried_season(QUEUE, 2)
        .await
        .unwrap()
        .is_some()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the carry-over did not finish"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    // Where each player's result landed, from their history: exactly one row per result.
    let mut last_of_season_one = std::collections::HashMap::new();
    let mut season_two_games = std::collections::HashMap::new();
    for (session, ids) in &sessions {
        for player in ids {
            let history = store
                .rating_history(*player, QUEUE, None, None, 10)
                .await
                .unwrap();
            let rows: Vec<_> = (history.iter())
                .filter(|h| h.session_id.to_string() == *session)
                .collect();
            assert_eq!(rows.len(), 1, "applied once: {history:?}");
            match rows[0].season {
                1 => {
                    last_of_season_one.insert(*player, rows[0].after_display);
                }
                2 => *season_two_games.entry(*player).or_insert(0_u64) += 1,
                other => panic!("season {other}"),
            }
        }
    }
    eprintln!(
        "results in season 1: {} players, in season 2: {} players",
        last_of_season_one.len(),
        season_two_games.len()
    );
    // Season 1 frozen: the same players, once each; those who played it last, as they ended.
    let frozen = store.season_board(QUEUE, 1, 1).await.unwrap();
    assert_eq!(frozen.len(), before.len(), "no standing lost or doubled");
    let unique: HashSet<Uuid> = frozen.iter().map(|s| s.player_id).collect();
    assert_eq!(unique.len(), frozen.len());
    for standing in &frozen {
        let expected = last_of_season_one
            .get(&standing.player_id)
            .copied()
            .unwrap_or_else(|| {
                (before.iter().find(|b| b.player_id == standing.player_id))
                    .unwrap()
                    .display_rating
            });
        assert!(
            (standing.display_rating - expected).abs() < 1e-9,
            "{standing:?} vs {expected}"
        );
    }
    let board: Vec<Uuid> = frozen.iter().map(|s| s.player_id).collect();
    let rows = store.season_standings_of(QUEUE, 1, &board).await.unwrap();
    assert_eq!(rows.len(), frozen.len());
    // Season 2: every rating carried, with exactly its own games; its board is who played it.
    for (_, ids) in &sessions {
        for player in ids {
            let rating = store.player_rating(*player, QUEUE).await.unwrap().unwrap();
            assert_eq!(rating.season, 2);
            assert_eq!(
                rating.games,
                season_two_games.get(player).copied().unwrap_or(0)
            );
        }
    }
    let live = json(
        &app,
        &root,
        &format!("/api/v1/leaderboards/{QUEUE}?limit=100"),
    )
    .await;
    assert_eq!(
        live["total"].as_u64().unwrap(),
        season_two_games.len() as u64,
        "{live}"
    );
    let untouched = store
        .player_rating(before[599.min(before.len() - 1)].player_id, QUEUE)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((untouched.season, untouched.games), (2, 0));
    app.finish().await;
}

/// A node stopped between a rollover and the end of its carry-over (here: the store rolled
/// over with no server running it): the next start finishes it, ranks and all.
async fn a_carry_over_a_stop_interrupted_finishes_at_start_up(backend: Backend) {
    const QUEUE: &str = "ranked-1v1";
    let Some(app) = spawn(backend, |config| {
        config.leaderboards.placement_games = 1;
        anyone_meets_anyone(config);
    })
    .await
    else {
        return;
    };
    let options = SeedOptions {
        players: 50,
        matches: 0,
        seed: 3,
        force: true,
        queue: Some(QUEUE.into()),
        fast: true,
        parties: 0,
    };
    seed(&*app.state.store, &app.config, &options)
        .await
        .unwrap();
    let app = app.restart().await;
    let reader = app.player(&unique("reader")).await;
    let board = json(
        &app,
        &reader,
        &format!("/api/v1/leaderboards/{QUEUE}?limit=100"),
    )
    .await;
    let standings = players(&board);
    let now = time::OffsetDateTime::now_utc();
    let rolled = (app.state.store)
        .roll_season(versus_store::SeasonRollover {
            queue: QUEUE,
            current: 1,
            at: now,
            next_starts_at: now,
            next_ends_at: None,
            admin_action: None,
        })
        .await
        .unwrap();
    assert!(matches!(rolled, versus_store::Rolled::Done(_)));
    let app = app.restart().await;
    let store = app.state.store.clone();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while store
        .oldest_uncarried_season(QUEUE, 2)
        .await
        .unwrap()
        .is_some()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the carry-over was not resumed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let old = json(
        &app,
        &reader,
        &format!("/api/v1/leaderboards/{QUEUE}?limit=100&season=1"),
    )
    .await;
    assert_eq!(players(&old), standings, "frozen as it ended");
    for (i, player) in standings.iter().enumerate().take(5) {
        let rows = store
            .player_seasons(player.parse().unwrap(), QUEUE)
            .await
            .unwrap();
        assert_eq!(
            rows[0].rank,
            Some(i as u64 + 1),
            "rank stored by the resumed carry-over"
        );
    }
    let fresh = json(&app, &reader, &format!("/api/v1/leaderboards/{QUEUE}")).await;
    assert_eq!(fresh["total"], 0, "{fresh}");
    app.finish().await;
}
