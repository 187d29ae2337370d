//! The load generator against a real server with its game-server role: every session our
//! players are sent to is played to a result, and every result is stored exactly once.

use std::collections::BTreeMap;

use versus_loadgen::LoadgenArgs;
use versus_loadgen::args::RegionLatencies;
use versus_server::Config;

use crate::sessions::{SERVER_KEY, TOKEN_KEY, anyone_meets_anyone, with_session_keys};
use crate::support::{Backend, TestApp, spawn_app_with, unique};

/// Game servers' keys, and a duel queue where anyone meets anyone at once: after a few games the
/// players' ratings spread, and a short run must still form matches.
fn config(config: &mut Config) {
    with_session_keys(config);
    anyone_meets_anyone(config);
}

fn loadgen(app: &TestApp, name_prefix: &str, duration: u64) -> LoadgenArgs {
    LoadgenArgs {
        url: format!("http://{}", app.addr),
        players: 20,
        duration,
        ramp_up: 1,
        requeue: true,
        region_latencies: Some(RegionLatencies(BTreeMap::from([("eu".into(), 30)]))),
        name_prefix: name_prefix.into(),
        drain: 5,
        json: true,
        server_key: Some(SERVER_KEY.into()),
        token_key: Some(TOKEN_KEY.into()),
        play_time: 0.5,
        ..LoadgenArgs::default()
    }
}

#[tokio::test]
async fn the_game_server_role_plays_every_game_to_one_stored_result() {
    let Some(app) = spawn_app_with(Backend::Sqlite, config).await else {
        return;
    };
    let prefix = unique("lg");
    for (run, duration) in [(1, 10), (2, 4)] {
        // The second run logs the same players in: their earlier games are not this run's.
        let summary = versus_loadgen::run(loadgen(&app, &prefix, duration))
            .await
            .unwrap();
        let servers = summary.game_servers.as_ref().expect("the game-server role");
        let report = summary.render(false);
        eprintln!("run {run}:\n{report}");
        assert!(servers.results_posted > 0, "run {run}: {report}");
        assert_eq!(servers.games.players_checked, 20, "run {run}: {report}");
        assert!(servers.games.is_clean(), "run {run}: {report}");
        assert_eq!(summary.loop_failure(), None);
        assert_eq!(
            (servers.result_conflicts, servers.results_failed),
            (0, 0),
            "run {run}: {report}"
        );
        assert_eq!(servers.rating_updates_missing, 0, "run {run}: {report}");
        assert_eq!(
            servers.rating_update_ms.count, servers.rating_updates_expected,
            "run {run}: {report}"
        );
        assert!(servers.token_checks >= servers.sessions_seen * 2 - 2);
        assert_eq!(servers.token_failures, 0, "run {run}: {report}");
        assert_eq!(summary.errors_total, 0, "run {run}: {report}");
    }
    app.finish().await;
}

#[tokio::test]
async fn a_wrong_server_key_stops_the_run_before_any_load() {
    let Some(app) = spawn_app_with(Backend::Sqlite, config).await else {
        return;
    };
    let args = LoadgenArgs {
        server_key: Some("not-the-key-the-server-was-given-0123456789".into()),
        ..loadgen(&app, &unique("lg"), 1)
    };
    let err = versus_loadgen::run(args).await.unwrap_err();
    assert!(err.to_string().contains("refuses --server-key"), "{err:#}");
    app.finish().await;
}
