//! `versus seed`: demo data through the real rules, deterministic and never doubled.

use versus_server::seed::{SeedOptions, SeedReport, seed};

use crate::on_both_backends;
use crate::support::{Backend, spawn_app};

on_both_backends!(
    demo_data_is_played_through_the_rules_once,
    fast_demo_data_fills_a_board_in_bulk,
);

async fn demo_data_is_played_through_the_rules_once(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let store = &*app.state.store;
    let duel = SeedOptions {
        players: 50,
        matches: 20,
        seed: 7,
        force: false,
        queue: Some("ranked-1v1".into()),
        fast: false,
        parties: 5,
    };
    let report = seed(store, &app.config, &duel).await.unwrap();
    assert_eq!(
        report,
        SeedReport {
            players_created: 50,
            matches_played: 20,
            parties_created: 5,
            already_there: 0
        }
    );
    // Parties of two to five distinct seeded players (those found through a player who played).
    let rated = store.leaderboard_rows("ranked-1v1", 1, 0).await.unwrap();
    let mut parties = std::collections::HashSet::new();
    for row in &rated {
        if let Some(party) = store.party_of(row.player_id).await.unwrap() {
            parties.insert(party);
        }
    }
    assert!((1..=5).contains(&parties.len()), "{parties:?}");
    for party in parties {
        let members = store.party(party).await.unwrap().unwrap().members();
        assert!((2..=5).contains(&members.len()), "{members:?}");
    }
    let refused = seed(store, &app.config, &duel).await.unwrap_err();
    assert!(refused.to_string().contains("--force"), "{refused}");
    let again = seed(
        store,
        &app.config,
        &SeedOptions {
            force: true,
            ..duel.clone()
        },
    )
    .await
    .unwrap();
    assert_eq!(
        again.players_created + again.matches_played,
        0,
        "the same seed adds nothing"
    );
    assert_eq!(again.already_there, 75);

    // Teams too, on the same accounts (a different seed draws other names: new accounts).
    let teams = SeedOptions {
        players: 30,
        matches: 6,
        seed: 8,
        force: true,
        queue: Some("ranked-5v5".into()),
        fast: false,
        parties: 0,
    };
    assert_eq!(
        seed(store, &app.config, &teams)
            .await
            .unwrap()
            .matches_played,
        6
    );

    // Every game is in the ratings and the histories, which chain to them.
    let mut games = 0;
    let mut logged_in = false;
    let players = store.player_count().await.unwrap();
    assert_eq!(players, 80);
    for session in store
        .sessions_in_states(&[versus_core::session::SessionState::Ended])
        .await
        .unwrap()
    {
        for player in session.players() {
            let rating = store
                .player_rating(player, &session.queue)
                .await
                .unwrap()
                .unwrap();
            let history = store
                .rating_history(player, &session.queue, None, None, 1000)
                .await
                .unwrap();
            assert_eq!(history.len() as u64, rating.games);
            assert_eq!(history[0].after, rating.rating);
            games += 1;
            if !logged_in {
                let account = store.player(player).await.unwrap().unwrap();
                assert!(account.region.is_some(), "demo players have a region");
                app.client
                    .login(
                        account.username.as_str(),
                        versus_server::seed::DEMO_PASSWORD,
                    )
                    .await
                    .expect("demo accounts log in with the demo password");
                logged_in = true;
            }
        }
    }
    assert_eq!(games, 20 * 2 + 6 * 10, "every seat of every match");
    app.finish().await;
}

async fn fast_demo_data_fills_a_board_in_bulk(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let fast = SeedOptions {
        players: 6_000,
        matches: 0,
        seed: 11,
        force: false,
        queue: Some("ranked-1v1".into()),
        fast: true,
        parties: 0,
    };
    let report = seed(&*app.state.store, &app.config, &fast).await.unwrap();
    assert_eq!(report.players_created, 6_000);
    let again = SeedOptions {
        force: true,
        ..fast.clone()
    };
    let report = seed(&*app.state.store, &app.config, &again).await.unwrap();
    assert_eq!((report.players_created, report.already_there), (0, 6_000));
    let store = &*app.state.store;
    let rows = store.leaderboard_rows("ranked-1v1", 1, 0).await.unwrap();
    assert_eq!(rows.len(), 6_000);
    let placement = app.config.leaderboards.placement_games;
    for row in &rows {
        let r = &row.rating;
        assert!(r.games >= placement, "{r:?}");
        assert_eq!(r.wins + r.losses + r.draws, r.games, "{r:?}");
    }
    let spread: Vec<f64> = rows.iter().map(|r| r.rating.rating.rating).collect();
    let mean = spread.iter().sum::<f64>() / spread.len() as f64;
    assert!(
        (1400.0..1600.0).contains(&mean),
        "around the initial rating: {mean}"
    );
    // The board is rebuilt from them at start-up, and the accounts log in.
    let app = app.restart().await;
    let reader = app.player("fast_reader").await;
    let board = crate::leaderboards::json(&app, &reader, "/api/v1/leaderboards/ranked-1v1").await;
    assert_eq!(board["total"], 6_000);
    let name = (app
        .state
        .store
        .player(rows[0].player_id)
        .await
        .unwrap()
        .unwrap())
    .username
    .as_str()
    .to_owned();
    let login = (app.http.post(app.url("/api/v1/auth/login")))
        .json(
            &serde_json::json!({"username": name, "password": versus_server::seed::DEMO_PASSWORD}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    app.finish().await;
}
