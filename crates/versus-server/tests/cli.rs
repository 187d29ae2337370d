//! The `versus` binary as an operator meets it: start on the embedded default, use it, stop it
//! with SIGTERM, start it again on the same data dir. Also checks that every log line is JSON
//! with the agreed fields and that no password or token ever reaches the log.

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_versus");

struct Server {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
    base: String,
}

fn start(data_dir: &Path) -> Server {
    let mut child = Command::new(BIN)
        .args(["serve", "--bind", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .env("VERSUS_AUTH__ARGON2__MEMORY_KIB", "1024")
        .env("VERSUS_AUTH__ARGON2__ITERATIONS", "1")
        .env("VERSUS_LOG__LEVEL", "info")
        .current_dir(data_dir.parent().unwrap())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the versus binary starts");
    let stdout = child.stdout.take().unwrap();
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut server = Server {
        child,
        lines,
        seen: Vec::new(),
        base: String::new(),
    };
    while server.base.is_empty() {
        let line = server
            .next_line()
            .expect("the server logs that it is serving");
        let parsed: Value = serde_json::from_str(&line).unwrap();
        if parsed["event"] == "versus is serving" {
            server.base = format!("http://{}", parsed["details"]["addr"].as_str().unwrap());
        }
    }
    server
}

impl Server {
    fn next_line(&mut self) -> Option<String> {
        let line = self.lines.recv_timeout(Duration::from_secs(30)).ok()?;
        self.seen.push(line.clone());
        Some(line)
    }

    /// Sends SIGTERM, waits for a clean exit and returns every log line.
    fn stop(mut self) -> Vec<String> {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let exit = self.child.wait().unwrap();
        assert!(exit.success(), "versus exits 0 on SIGTERM, got {exit}");
        while self.next_line().is_some() {}
        self.seen
    }
}

fn data_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir()
        .join(format!("versus-cli-{}", uuid::Uuid::now_v7()))
        .join("data");
    std::fs::create_dir_all(dir.parent().unwrap()).unwrap();
    dir
}

#[tokio::test]
async fn serve_stop_restart_keeps_data_and_logs_no_secrets() {
    let dir = data_dir();
    let password = "hunter2-but-longer-Σ";
    let server = start(&dir);
    let client = versus_client::Client::new(server.base.clone());
    let registered = client.register("operator_test", password).await.unwrap();
    let tokens = client.login("operator_test", password).await.unwrap();
    let lines = server.stop();

    assert!(
        dir.join("versus.db").exists(),
        "SQLite file in the data dir"
    );
    assert!(
        dir.join("jwt-secret").exists(),
        "generated signing key kept in the data dir"
    );

    // Admin rights are granted on the store, by username, while the server is down.
    let admin = |args: &[&str]| {
        Command::new(BIN)
            .arg("admin")
            .args(args)
            .arg("--data-dir")
            .arg(&dir)
            .env("VERSUS_LOG__LEVEL", "warn")
            .output()
            .unwrap()
    };
    let granted = admin(&["grant", "Operator_Test"]);
    assert!(granted.status.success(), "{granted:?}");
    assert!(String::from_utf8_lossy(&granted.stdout).contains("is now an admin"));
    let missing = admin(&["grant", "nobody_here"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no player is called"));

    let server = start(&dir);
    let client = versus_client::Client::new(server.base.clone());
    let announced = reqwest::Client::new()
        .post(format!("{}/api/v1/admin/announcements", server.base))
        .bearer_auth(&tokens.access_token)
        .json(&serde_json::json!({ "message": "maintenance at noon" }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        announced.status(),
        202,
        "the granted admin may use the admin API"
    );
    // The old access token is still valid: the generated key survived the restart.
    let me = client
        .authenticated(&tokens.access_token)
        .me()
        .await
        .unwrap();
    assert_eq!(me.id, registered.player.id);
    client.login("operator_test", password).await.unwrap();
    let mut all = lines;
    all.extend(server.stop());

    let secrets = [
        password,
        &tokens.access_token,
        &tokens.refresh_token,
        &registered.tokens.access_token,
        &registered.tokens.refresh_token,
    ];
    for line in &all {
        let parsed: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("log line is not JSON ({e}): {line}"));
        for key in [
            "timestamp",
            "level",
            "service",
            "event",
            "player_id",
            "session_id",
            "trace_id",
            "details",
        ] {
            assert!(parsed.get(key).is_some(), "log line lacks {key}: {line}");
        }
        for secret in secrets {
            assert!(
                !line.contains(secret),
                "a secret leaked into the log: {line}"
            );
        }
    }
    let completed: Vec<&String> = all
        .iter()
        .filter(|l| l.contains("request completed"))
        .collect();
    assert!(!completed.is_empty());
    let login_line: Value = serde_json::from_str(
        all.iter()
            .find(|l| l.contains("player logged in"))
            .expect("a login is logged"),
    )
    .unwrap();
    assert_eq!(login_line["player_id"], registered.player.id.to_string());
    assert!(
        login_line["trace_id"]
            .as_str()
            .is_some_and(|t| t.len() == 36)
    );
    let _ = std::fs::remove_dir_all(dir.parent().unwrap());
}

#[test]
fn bad_configuration_stops_start_up_naming_the_key() {
    let dir = data_dir();
    for (key, value, named) in [
        (
            "VERSUS_AUTH__ACCESS_TOKEN_TTL_SECS",
            "soon",
            "access_token_ttl_secs",
        ),
        (
            "VERSUS_AUTH__ACCESS_TOKEN_TTL_SECS",
            "5",
            "auth.access_token_ttl_secs",
        ),
        ("VERSUS_DATABASE_URL", "mysql://nope", "database_url"),
        ("VERSUS_BIND", "not-an-address", "bind"),
    ] {
        let output = Command::new(BIN)
            .args(["serve", "--data-dir"])
            .arg(&dir)
            .env(key, value)
            .output()
            .unwrap();
        assert!(!output.status.success(), "{key}={value} must stop start-up");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.to_lowercase().contains(named),
            "{key}={value}: error should name {named}: {stderr}"
        );
    }
    let toml = dir.parent().unwrap().join("bad.toml");
    std::fs::write(&toml, "[limits]\nmax_body_bytes = -3\n").unwrap();
    let output = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&toml)
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("max_body_bytes"));
    let _ = std::fs::remove_dir_all(dir.parent().unwrap());
}

#[test]
fn version_and_migrate() {
    let output = Command::new(BIN).arg("version").output().unwrap();
    assert!(output.status.success());
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        format!("versus {}", env!("CARGO_PKG_VERSION"))
    );

    let dir = data_dir();
    // VERSUS_* variables that are not settings (the test harness's own) must not stop start-up.
    let output = Command::new(BIN)
        .args(["migrate", "--data-dir"])
        .arg(&dir)
        .env("VERSUS_REQUIRE_BACKENDS", "1")
        .env("VERSUS_TEST_POSTGRES_URL", "postgres://nowhere")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(dir.join("versus.db").exists());
    let seed = |force: bool| {
        let mut command = Command::new(BIN);
        command
            .args(["seed", "--players", "10", "--matches", "3", "--data-dir"])
            .arg(&dir)
            .env("VERSUS_LOG__LEVEL", "warn");
        if force {
            command.arg("--force");
        }
        command.output().unwrap()
    };
    let seeded = seed(false);
    assert!(seeded.status.success(), "{seeded:?}");
    let said = String::from_utf8_lossy(&seeded.stdout);
    assert!(
        said.contains("10 players created, 3 matches played"),
        "{said}"
    );
    assert!(
        !seed(false).status.success(),
        "a store with players is refused"
    );
    let again = seed(true);
    assert!(String::from_utf8_lossy(&again.stdout).contains("0 players created, 0 matches played"));
    let _ = std::fs::remove_dir_all(dir.parent().unwrap());
}

#[test]
fn sim_prints_a_json_report() {
    let scenario = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../scenarios/low-population-night.toml"
    );
    let output = Command::new(BIN)
        .args(["sim", "--json", "--scenario", scenario])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    for key in [
        "tickets",
        "players",
        "matches",
        "unmatched",
        "ttm_p50_s",
        "ttm_p95_s",
        "ttm_max_s",
        "mean_team_rating_gap",
        "p95_team_rating_gap",
        "mean_quality",
        "pct_within_latency_budget",
        "tick_p50_ms",
        "tick_p99_ms",
        "violations",
    ] {
        assert!(report.get(key).is_some(), "report lacks {key}");
    }
    assert_eq!(report["violations"], 0);
    let missing = Command::new(BIN)
        .args(["sim", "--scenario", "/nonexistent.toml"])
        .output()
        .unwrap();
    assert!(!missing.status.success());
}

/// `versus sim --queue NAME` runs a scenario's traffic through a queue of the server's
/// configuration, ticking at its `matchmaking.tick_ms`: the same report as a scenario that
/// carries that queue table itself.
#[test]
fn sim_runs_a_queue_of_the_servers_configuration() {
    let dir = data_dir();
    let root = dir.parent().unwrap();
    let queue = "name = \"duel\"\nteams = 2\nteam_size = 1\nregions = [\"eu\", \"na\"]\n\
                 rating_widening = [[0, 40], [10, 200]]\n";
    let config = root.join("versus.toml");
    std::fs::write(
        &config,
        format!("[matchmaking]\ntick_ms = 500\n\n[[queues]]\n{queue}"),
    )
    .unwrap();
    let traffic = "seed = 3\nduration_s = 60\narrivals_per_s = 10\n\
                   [[regions]]\nname = \"eu\"\nshare = 2\n[[regions]]\nname = \"na\"\n";
    let bare = root.join("traffic.toml");
    std::fs::write(&bare, traffic).unwrap();
    let whole = root.join("whole.toml");
    std::fs::write(&whole, format!("tick_ms = 500\n{traffic}[queue]\n{queue}")).unwrap();
    let sim = |args: &[&str]| {
        let output = Command::new(BIN)
            .arg("sim")
            .args(args)
            .current_dir(root)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        let report = (output.status.success())
            .then(|| serde_json::from_slice::<Value>(&output.stdout).unwrap());
        (report, stderr)
    };
    let without_timings = |mut report: Value| {
        let fields = report.as_object_mut().unwrap();
        fields.remove("tick_p50_ms");
        fields.remove("tick_p99_ms");
        report
    };
    let bare = bare.to_str().unwrap();
    let config = config.to_str().unwrap();
    let (served, stderr) = sim(&[
        "--json",
        "--scenario",
        bare,
        "--queue",
        "duel",
        "--config",
        config,
    ]);
    let served = served.unwrap_or_else(|| panic!("{stderr}"));
    assert_eq!(served["violations"], 0);
    assert!(served["matches"].as_u64().unwrap() > 100, "{served}");
    let (own, stderr) = sim(&["--json", "--scenario", whole.to_str().unwrap()]);
    let own = own.unwrap_or_else(|| panic!("{stderr}"));
    assert_eq!(without_timings(served.clone()), without_timings(own));
    // ./versus.toml is what `serve` reads without --config, and so does `sim`.
    let (local, stderr) = sim(&["--json", "--scenario", bare, "--queue", "duel"]);
    assert_eq!(
        without_timings(local.unwrap_or_else(|| panic!("{stderr}"))),
        without_timings(served)
    );
    // A scenario's own queue gives way, and says so.
    let (_, stderr) = sim(&[
        "--json",
        "--scenario",
        whole.to_str().unwrap(),
        "--queue",
        "duel",
    ]);
    assert!(
        stderr.contains("replaces the scenario's [queue]"),
        "{stderr}"
    );
    let (missing, stderr) = sim(&["--scenario", bare, "--queue", "nope", "--config", config]);
    assert!(missing.is_none() && stderr.contains("duel"), "{stderr}");
    let (without_queue, stderr) = sim(&["--scenario", bare]);
    assert!(
        without_queue.is_none() && stderr.contains("queue"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(root);
}
