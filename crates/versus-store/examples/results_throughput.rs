//! Results applied per second through `Store::record_result` (issue 13), on SQLite or
//! PostgreSQL, with the real rating systems (Glicko-2 for 1v1, Weng-Lin for team queues, as the
//! shipped queues use).
//!
//! ```sh
//! cargo run --release -p versus-store --features testing --example results_throughput -- \
//!     --backend postgres --team-size 1 --sessions 20000 --concurrency 32
//! ```
//!
//! Set-up (not timed): a fresh store (SQLite: a temp file opened with `SqliteStore::open`, WAL
//! and `synchronous=FULL`; PostgreSQL: a fresh database from `testing::postgres_test_db`,
//! dropped at the end, pool of `--pool`), `--players` players and `--sessions` two-team
//! sessions of `--team-size`, players drawn at random so they recur and their ratings are
//! really updated, each moved to `ready`.
//!
//! Timed: one result per session (a random winner) from `--concurrency` tasks. Printed:
//! results/s and the p50 / p99 / max latency of one `record_result` call (pool wait included).
//! Then verified: every call applied, every player's `games` equals the sessions they were in,
//! and a re-post of one result answers `Recorded::Duplicate` with the same answer.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;
use versus_core::account::{DisplayName, Username};
use versus_core::matchmaking::PlayerId;
use versus_core::rating::{AnyRatingSystem, RatingConfig, RatingSystem as _};
use versus_core::session::{self, Actor, ReportedTeam, SessionState};
use versus_store::testing::{postgres_test_db, sqlite_test_store};
use versus_store::{
    NewPlayer, NewSession, PostgresStore, RatedResult, RatingUpdate, Recorded, ResultToRecord,
    RosterRating, Store, Transitioned,
};

const USAGE: &str = "usage: results_throughput [--backend sqlite|postgres] [--team-size N] \
                     [--sessions N] [--concurrency N] [--pool N] [--players N] [--seed N]";

#[derive(Debug, Clone, Copy, PartialEq)]
enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, Clone)]
struct Args {
    backend: Backend,
    team_size: usize,
    sessions: usize,
    concurrency: usize,
    pool: u32,
    players: Option<usize>,
    seed: u64,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        backend: Backend::Postgres,
        team_size: 1,
        sessions: 20_000,
        concurrency: 32,
        pool: 16,
        players: None,
        seed: 13,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--help" || flag == "-h" {
            return Err(USAGE.into());
        }
        let value = it
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        let number = |v: &str| {
            v.parse::<u64>()
                .map_err(|_| format!("{flag}: not a number: {v:?}"))
        };
        match flag.as_str() {
            "--backend" => {
                args.backend = match value.as_str() {
                    "sqlite" => Backend::Sqlite,
                    "postgres" => Backend::Postgres,
                    other => return Err(format!("--backend: sqlite or postgres, not {other:?}")),
                }
            }
            "--team-size" => args.team_size = number(&value)? as usize,
            "--sessions" => args.sessions = number(&value)? as usize,
            "--concurrency" => args.concurrency = number(&value)? as usize,
            "--pool" => args.pool = number(&value)? as u32,
            "--players" => args.players = Some(number(&value)? as usize),
            "--seed" => args.seed = number(&value)?,
            other => return Err(format!("unknown flag {other}\n{USAGE}")),
        }
    }
    if args.team_size == 0 || args.sessions == 0 || args.concurrency == 0 || args.pool == 0 {
        return Err("--team-size, --sessions, --concurrency and --pool must be at least 1".into());
    }
    Ok(args)
}

/// SplitMix64: enough randomness for drawing rosters and winners, reproducible by `--seed`.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// One session to apply a result to: its teams and which team wins.
struct Planned {
    id: Uuid,
    teams: Vec<Vec<Uuid>>,
    winner: usize,
}

impl Planned {
    fn reported(&self) -> Vec<ReportedTeam> {
        (self.teams.iter().enumerate())
            .map(|(t, team)| ReportedTeam {
                players: team.iter().map(|p| PlayerId(p.as_u128())).collect(),
                rank: if t == self.winner { 1 } else { 2 },
            })
            .collect()
    }

    fn result_hash(&self) -> Vec<u8> {
        let mut hash = self.id.as_bytes().to_vec();
        hash.push(self.winner as u8);
        hash
    }
}

/// What the server's result route does inside the transaction: check the result against the
/// roster as stored, rate it with the queue's system, one update per player.
fn rated(
    system: &AnyRatingSystem,
    reported: &[ReportedTeam],
    roster: &[Vec<RosterRating>],
) -> Result<RatedResult, String> {
    let ids: Vec<Vec<PlayerId>> = (roster.iter())
        .map(|t| t.iter().map(|m| PlayerId(m.player_id.as_u128())).collect())
        .collect();
    let checked = session::check_result(&ids, reported).map_err(|e| e.to_string())?;
    let before: Vec<Vec<_>> = (roster.iter())
        .map(|t| {
            (t.iter())
                .map(|m| (m.rating.as_ref()).map_or_else(|| system.initial_rating(), |s| s.rating))
                .collect()
        })
        .collect();
    let after = session::rate(system, &before, &checked).map_err(|e| e.to_string())?;
    let mut updates = Vec::new();
    let mut changes = Vec::new();
    for (t, team) in roster.iter().enumerate() {
        for (i, member) in team.iter().enumerate() {
            let update = RatingUpdate {
                player_id: member.player_id,
                outcome: checked.outcomes[t],
                before: before[t][i],
                before_display: system.display_rating(&before[t][i]),
                after: after[t][i],
                after_display: system.display_rating(&after[t][i]),
            };
            changes.push(json!({
                "player_id": member.player_id,
                "outcome": update.outcome.as_str(),
                "before": update.before_display,
                "after": update.after_display,
            }));
            updates.push(update);
        }
    }
    Ok(RatedResult {
        updates,
        answer: json!({ "changes": changes }),
    })
}

async fn record(
    store: &dyn Store,
    system: &AnyRatingSystem,
    planned: &Planned,
) -> Result<Recorded, String> {
    let reported = planned.reported();
    let rate = |roster: &[Vec<RosterRating>]| rated(system, &reported, roster);
    let body = json!({ "winner": planned.winner });
    store
        .record_result(ResultToRecord {
            session_id: planned.id,
            result: body,
            result_hash: planned.result_hash(),
            at: OffsetDateTime::now_utc(),
            rate: &rate,
            carry: &|s| (s.rating, s.display_rating),
        })
        .await
        .map_err(|e| format!("record_result {}: {e}", planned.id))
}

/// Runs `work(i)` for `i in 0..n` from `concurrency` tasks; the first error wins.
async fn in_parallel<F, Fut>(n: usize, concurrency: usize, work: F) -> Result<(), String>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<(), String>> + Send + 'static,
{
    let next = Arc::new(AtomicUsize::new(0));
    let work = Arc::new(work);
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (next, work) = (next.clone(), work.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        return Ok::<(), String>(());
                    }
                    work(i).await?;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.map_err(|e| e.to_string())??;
    }
    Ok(())
}

async fn run(args: Args, store: Arc<dyn Store>) -> Result<(), String> {
    let teams = 2;
    let per_session = teams * args.team_size;
    let n_players = (args.players)
        .unwrap_or_else(|| 2000.max(per_session * args.concurrency * 4))
        .max(per_session);
    let (queue, config) = if args.team_size == 1 {
        ("ranked-1v1", RatingConfig::glicko2())
    } else {
        (
            "ranked-team",
            RatingConfig::weng_lin_scaled(1500.0, 350.0), // the shipped 5v5 queue's scale
        )
    };
    let system = Arc::new(config.build().map_err(|e| e.to_string())?);
    println!(
        "backend {} | team size {} ({}) | {} sessions | {} players | concurrency {} | pool {}",
        store.backend(),
        args.team_size,
        match &*system {
            AnyRatingSystem::Glicko2(_) => "Glicko-2",
            AnyRatingSystem::WengLin(_) => "Weng-Lin",
            _ => "other",
        },
        args.sessions,
        n_players,
        args.concurrency,
        match args.backend {
            Backend::Sqlite => "sqlite default".to_owned(),
            Backend::Postgres => args.pool.to_string(),
        },
    );

    // Set-up, not timed.
    let setup = Instant::now();
    let players: Arc<Vec<Uuid>> = Arc::new((0..n_players).map(|_| Uuid::now_v7()).collect());
    {
        let (store, players) = (store.clone(), players.clone());
        in_parallel(n_players, args.concurrency, move |i| {
            let (store, id) = (store.clone(), players[i]);
            async move {
                let username = Username::parse(&format!("bench{i}")).map_err(|e| e.to_string())?;
                (store.create_player(NewPlayer {
                    id,
                    display_name: DisplayName::from(&username),
                    username,
                    password_hash: None,
                    created_at: OffsetDateTime::now_utc(),
                }))
                .await
                .map(drop)
                .map_err(|e| format!("create_player: {e}"))
            }
        })
        .await?;
    }
    let mut rng = Rng(args.seed);
    let mut games = vec![0u64; n_players];
    let mut plan = Vec::with_capacity(args.sessions);
    for _ in 0..args.sessions {
        // `per_session` distinct players: a partial Fisher–Yates over a scratch index list.
        let mut picked: Vec<usize> = Vec::with_capacity(per_session);
        while picked.len() < per_session {
            let p = rng.below(n_players);
            if !picked.contains(&p) {
                picked.push(p);
            }
        }
        for &p in &picked {
            games[p] += 1;
        }
        plan.push(Planned {
            id: Uuid::now_v7(),
            teams: picked
                .chunks(args.team_size)
                .map(|team| team.iter().map(|&p| players[p]).collect())
                .collect(),
            winner: rng.below(teams),
        });
    }
    let plan = Arc::new(plan);
    {
        let (store, plan) = (store.clone(), plan.clone());
        let queue = queue.to_owned();
        in_parallel(args.sessions, args.concurrency, move |i| {
            let (store, plan, queue) = (store.clone(), plan.clone(), queue.clone());
            async move {
                let planned = &plan[i];
                let at = OffsetDateTime::now_utc();
                (store.create_session(NewSession {
                    id: planned.id,
                    queue,
                    ranked: true,
                    region: Some("eu".into()),
                    teams: planned.teams.clone(),
                    reason: "matched".into(),
                    actor: Actor::System,
                    at,
                    placed: versus_store::Placement::Allocating,
                }))
                .await
                .map_err(|e| format!("create_session: {e}"))?;
                match (store.transition_session(
                    planned.id,
                    SessionState::Ready,
                    Actor::System,
                    "allocated",
                    Some("10.0.0.1:7777"),
                    at,
                ))
                .await
                {
                    Ok(Transitioned::Done(_)) => Ok(()),
                    other => Err(format!("to ready: {other:?}")),
                }
            }
        })
        .await?;
    }
    println!("set-up {:.1} s (not timed)", setup.elapsed().as_secs_f64());

    // Timed: one result per session.
    let histograms = Arc::new(std::sync::Mutex::new(
        Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).map_err(|e| e.to_string())?,
    ));
    let not_applied = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    {
        let next = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..args.concurrency)
            .map(|_| {
                let (store, system, plan, next) =
                    (store.clone(), system.clone(), plan.clone(), next.clone());
                let (histograms, not_applied) = (histograms.clone(), not_applied.clone());
                tokio::spawn(async move {
                    let mut mine = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)
                        .map_err(|e| e.to_string())?;
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= plan.len() {
                            break;
                        }
                        let call = Instant::now();
                        let recorded = record(&*store, &system, &plan[i]).await?;
                        let micros = call.elapsed().as_micros().max(1) as u64;
                        mine.saturating_record(micros);
                        if !matches!(recorded, Recorded::Applied(_)) {
                            eprintln!("session {}: {recorded:?}", plan[i].id);
                            not_applied.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    histograms
                        .lock()
                        .map_err(|e| e.to_string())?
                        .add(&mine)
                        .map_err(|e| e.to_string())?;
                    Ok::<_, String>(())
                })
            })
            .collect();
        for task in tasks {
            task.await.map_err(|e| e.to_string())??;
        }
    }
    let elapsed = started.elapsed();
    let histogram = histograms.lock().map_err(|e| e.to_string())?.clone();
    let ms = |micros: u64| Duration::from_micros(micros).as_secs_f64() * 1000.0;
    println!(
        "applied {} results in {:.2} s: {:.0} results/s | record_result p50 {:.2} ms, \
         p99 {:.2} ms, max {:.2} ms",
        args.sessions,
        elapsed.as_secs_f64(),
        args.sessions as f64 / elapsed.as_secs_f64(),
        ms(histogram.value_at_quantile(0.50)),
        ms(histogram.value_at_quantile(0.99)),
        ms(histogram.max()),
    );

    // Verification.
    let mut failures = Vec::new();
    let not_applied = not_applied.load(Ordering::Relaxed);
    if not_applied > 0 {
        failures.push(format!("{not_applied} results not applied"));
    }
    let mut wrong = 0usize;
    let mut rated_players = 0usize;
    for (i, &player) in players.iter().enumerate() {
        let stored = (store.player_rating(player, queue))
            .await
            .map_err(|e| format!("player_rating: {e}"))?;
        let got = stored.as_ref().map_or(0, |s| s.games);
        rated_players += usize::from(stored.is_some());
        if got != games[i] {
            wrong += 1;
            if wrong <= 5 {
                eprintln!("player {player}: games {got}, sessions {}", games[i]);
            }
        }
    }
    if wrong > 0 {
        failures.push(format!("{wrong} players' games differ from their sessions"));
    }
    let first = &plan[0];
    let applied_answer = (store.session(first.id))
        .await
        .map_err(|e| format!("session: {e}"))?
        .map(|s| (s.state, s.result));
    let again = record(&*store, &system, first).await?;
    let duplicate = matches!(&again, Recorded::Duplicate(_));
    if !duplicate {
        failures.push(format!("a re-post answered {again:?}, not Duplicate"));
    }
    if !matches!(applied_answer, Some((SessionState::Ended, Some(_)))) {
        failures.push(format!(
            "session 0 is {applied_answer:?}, not ended with its result"
        ));
    }
    let total_games: u64 = games.iter().sum();
    if failures.is_empty() {
        println!(
            "verified: {} results applied, {} players' games = their sessions ({} rated, {} \
             player-games), re-post of one result = Duplicate",
            args.sessions, n_players, rated_players, total_games
        );
        Ok(())
    } else {
        Err(format!("VERIFICATION FAILED: {}", failures.join("; ")))
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let outcome = match args.backend {
        Backend::Sqlite => {
            let (store, _dir) = sqlite_test_store().await;
            let store: Arc<dyn Store> = Arc::new(store);
            let outcome = run(args, store.clone()).await;
            store.close().await;
            outcome
        }
        Backend::Postgres => {
            let Some(db) = postgres_test_db().await else {
                eprintln!("PostgreSQL unreachable (VERSUS_TEST_POSTGRES_URL)");
                return ExitCode::FAILURE;
            };
            println!("database {} (dropped at the end)", db.name);
            let outcome = match PostgresStore::connect(&db.url, args.pool).await {
                Ok(store) => {
                    let store: Arc<dyn Store> = Arc::new(store);
                    let outcome = run(args, store.clone()).await;
                    store.close().await;
                    outcome
                }
                Err(e) => Err(format!("connecting: {e}")),
            };
            db.drop().await;
            outcome
        }
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
