//! The Versus load generator: N simulated players against a server on this machine, each
//! signing up, holding a WebSocket open, queueing and waiting for `match_found`, measured
//! from the outside through the SDK (`versus-client`). With a server key it also plays the
//! game servers ([`fleet`]): every session is heartbeaten, played and given a result, and at
//! the end each player's stored games are compared with the results posted for them.
//!
//! It is bounded on every axis: a player count, a duration (plus a short drain for matches formed
//! at the end, plus a hard stop), REST calls in flight, and targets: [`args::loopback_url`]
//! refuses any host that is not this machine. `versus loadgen` parses [`LoadgenArgs`] and
//! calls [`run`]; the crate's own `versus-loadgen` binary does the same.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};
use rand::SeedableRng as _;
use rand::rngs::StdRng;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::JoinSet;
use tokio::time::Instant;
use versus_client::Client;

pub mod args;
mod fleet;
mod player;
mod retry;
mod stats;

pub use args::LoadgenArgs;
pub use stats::{GameServerSummary, GamesCheck, Percentiles, Summary};

use fleet::Fleet;
use player::{Arena, FleetLink, PlayerPlan};
use stats::{Recorder, SummaryHeader};

/// Past the duration and the drain, players still running are cut off after this long.
const HARD_STOP_GRACE: Duration = Duration::from_secs(30);

/// Runs the load described by `args` and reports what it saw. Fails before any load when the
/// URL is not loopback or the server does not answer `/health`.
pub async fn run(args: LoadgenArgs) -> anyhow::Result<Summary> {
    let urls = (args.url.split(','))
        .map(|url| args::loopback_url(url.trim()))
        .collect::<anyhow::Result<Vec<_>>>()?;
    anyhow::ensure!(
        args.requeue_delay.is_finite() && (0.0..=3600.0).contains(&args.requeue_delay),
        "--requeue-delay must be between 0 and 3600 seconds"
    );
    anyhow::ensure!(
        args.play_time.is_finite() && (0.0..=3600.0).contains(&args.play_time),
        "--play-time must be between 0 and 3600 seconds"
    );
    let server_key = args.server_key.as_deref().filter(|key| !key.is_empty());
    let nofile_limit = raise_open_file_limit();
    let wanted_files = u64::from(args.players) + u64::from(args.rest_concurrency) + 64;
    if nofile_limit.is_some_and(|limit| limit < wanted_files) {
        tracing::warn!(
            limit = nofile_limit,
            wanted = wanted_files,
            "the open-file limit is lower than the players need: raise the hard limit (ulimit -Hn)"
        );
    }
    let bases: Vec<String> = (urls.iter())
        .map(|url| url.as_str().trim_end_matches('/').to_owned())
        .collect();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.rest_concurrency as usize)
        .timeout(Duration::from_secs(30))
        .build()
        .context("building the HTTP client")?;
    let mut clients = Vec::with_capacity(bases.len());
    for base in &bases {
        let client = Client::with_http(http.clone(), base.clone());
        client
            .health()
            .await
            .with_context(|| format!("the server at {base} does not answer /health"))?;
        clients.push(client);
    }

    let recorder = Arc::new(Recorder::new());
    // The game-server role: its own task and connection pool, the players' link to it.
    let longest_game = Duration::from_secs_f64(args.play_time * 1.5);
    let mut fleet = None;
    let mut link = None;
    if let Some(server_key) = server_key {
        let servers = Fleet::new(
            &bases,
            server_key,
            args.rest_concurrency as usize,
            Duration::from_secs_f64(args.play_time),
            args.token_key.as_deref().filter(|key| !key.is_empty()),
            Arc::clone(&recorder),
        )?;
        servers.check_key().await?;
        let (arrivals, arrived) = mpsc::unbounded_channel();
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(Arc::new(servers).run(arrived, stopped));
        fleet = Some((task, stop));
        link = Some(FleetLink {
            arrivals,
            longest_game,
        });
    }

    let started = Instant::now();
    let duration = Duration::from_secs(args.duration);
    let arena = Arc::new(Arena {
        clients,
        recorder: Arc::clone(&recorder),
        rest_slots: Semaphore::new(args.rest_concurrency as usize),
        queue: args.queue.clone(),
        requeue: args.requeue,
        requeue_delay: Duration::from_secs_f64(args.requeue_delay),
        deadline: started + duration,
        drain: Duration::from_secs(args.drain),
        fleet: link,
        accounts: Mutex::new(Vec::new()),
    });

    let progress = progress_bar(&args);
    let mut players = JoinSet::new();
    let ramp_up = Duration::from_secs(args.ramp_up).min(duration);
    for (index, plan) in plans(&args, started, ramp_up, bases.len()).enumerate() {
        tracing::trace!(index, username = plan.username, "player planned");
        players.spawn(player::play(Arc::clone(&arena), plan));
    }

    let mut hard_stop = started + duration + arena.drain + HARD_STOP_GRACE;
    if fleet.is_some() {
        hard_stop += longest_game;
    }
    let mut ticker = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            joined = players.join_next() => match joined {
                None => break,
                Some(Err(err)) if err.is_panic() => arena.recorder.error("player task panicked"),
                Some(_) => {}
            },
            _ = ticker.tick() => update_progress(&progress, &arena, &args, started),
            () = tokio::time::sleep_until(hard_stop) => {
                for _ in 0..players.len() {
                    arena.recorder.error("player still running at the hard stop");
                }
                players.abort_all();
                while players.join_next().await.is_some() {}
                break;
            }
        }
    }
    update_progress(&progress, &arena, &args, started);

    // Every player is done: the fleet finishes the games still running, then every player's
    // games are read back.
    let mut games = None;
    if let Some((mut task, stop)) = fleet {
        let _ = stop.send(());
        let finish_by = hard_stop.max(Instant::now() + HARD_STOP_GRACE);
        if tokio::time::timeout_at(finish_by, &mut task).await.is_err() {
            let running = recorder.fleet.games_running.load(Ordering::Relaxed);
            for _ in 0..running {
                recorder.error("fleet: game still running at the hard stop");
            }
            task.abort();
        }
        progress.set_message("reading every player's games back");
        let accounts = std::mem::take(&mut *arena.accounts.lock().expect("poisoned"));
        games = Some(
            fleet::check_games(
                accounts,
                &arena.clients,
                &args.queue,
                &recorder,
                args.rest_concurrency as usize,
            )
            .await,
        );
    }
    progress.finish_and_clear();

    let header = SummaryHeader {
        url: bases.join(","),
        queue: args.queue,
        players: args.players,
        elapsed_s: started.elapsed().as_secs_f64(),
        nofile_limit,
        play_time_s: server_key.map(|_| args.play_time),
        deadline: Some(arena.deadline),
    };
    Ok(recorder.summary(header, games))
}

/// One plan per player: a stable name, generated (or given) latencies, a start time on the
/// ramp.
fn plans(
    args: &LoadgenArgs,
    started: Instant,
    ramp_up: Duration,
    nodes: usize,
) -> impl Iterator<Item = PlayerPlan> + '_ {
    let mut rng = StdRng::seed_from_u64(args.seed);
    let players = args.players;
    (0..players).map(move |index| {
        let latencies = match &args.region_latencies {
            Some(given) => given.0.clone(),
            None => args::generated_latencies(&args.regions, &mut rng),
        };
        PlayerPlan {
            username: format!("{}{}_{index}", args.name_prefix, args.seed),
            password: format!("loadgen-{}-password", args.seed),
            latencies,
            start_at: started + ramp_up.mul_f64(f64::from(index) / f64::from(players)),
            node: index as usize % nodes.max(1),
        }
    })
}

/// Raises the soft open-file limit to the hard limit (thousands of sockets need it, here and in
/// the server, which uses this one); returns the limit now in force.
pub fn raise_open_file_limit() -> Option<u64> {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => Some(limit),
        Err(err) => {
            tracing::warn!(error = %err, "could not raise the open-file limit");
            rlimit::getrlimit(rlimit::Resource::NOFILE)
                .ok()
                .map(|(soft, _)| soft)
        }
    }
}

fn progress_bar(args: &LoadgenArgs) -> ProgressBar {
    if args.json {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(args.duration);
    bar.set_style(
        ProgressStyle::with_template("{spinner} {elapsed_precise} [{bar:30}] {pos}/{len} s  {msg}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar
}

fn update_progress(bar: &ProgressBar, arena: &Arena, args: &LoadgenArgs, started: Instant) {
    let recorder = &arena.recorder;
    let load = |counter: &std::sync::atomic::AtomicU64| counter.load(Ordering::Relaxed);
    bar.set_position(started.elapsed().as_secs().min(args.duration));
    let games = match arena.fleet {
        Some(_) => format!(
            " · games {} · results {}",
            load(&recorder.fleet.games_running),
            load(&recorder.fleet.results_posted)
        ),
        None => String::new(),
    };
    bar.set_message(format!(
        "connected {}/{} · searching {} · tickets {}{games} · events {} · errors {}",
        load(&recorder.connected_now),
        args.players,
        load(&recorder.searching_now),
        load(&recorder.tickets_joined),
        load(&recorder.events_received),
        load(&recorder.errors_total),
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn refuses_targets_off_this_machine() {
        let args = LoadgenArgs {
            url: "http://192.0.2.1:8080".into(),
            ..LoadgenArgs::default()
        };
        let err = run(args).await.unwrap_err();
        assert!(err.to_string().contains("only targets loopback"), "{err}");
    }

    #[tokio::test]
    async fn a_server_that_is_not_there_fails_before_any_load() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let args = LoadgenArgs {
            url: format!("http://127.0.0.1:{port}"),
            ..LoadgenArgs::default()
        };
        let err = run(args).await.unwrap_err();
        assert!(err.to_string().contains("/health"), "{err}");
    }

    #[test]
    fn plans_are_reproducible_and_ramp_evenly() {
        let args = LoadgenArgs {
            players: 4,
            seed: 7,
            ..LoadgenArgs::default()
        };
        let started = Instant::now();
        let ramp = Duration::from_secs(8);
        let a: Vec<PlayerPlan> = plans(&args, started, ramp, 2).collect();
        let b: Vec<PlayerPlan> = plans(&args, started, ramp, 2).collect();
        assert_eq!(a.len(), 4);
        assert_eq!(a[3].username, "lg7_3");
        let offsets: Vec<u64> = a.iter().map(|p| (p.start_at - started).as_secs()).collect();
        assert_eq!(offsets, [0, 2, 4, 6]);
        assert!(a.iter().zip(&b).all(|(x, y)| x.latencies == y.latencies));
    }

    #[test]
    fn the_open_file_limit_is_raised_to_the_hard_limit() {
        let limit = raise_open_file_limit().expect("linux has RLIMIT_NOFILE");
        let (soft, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE).unwrap();
        assert_eq!(soft, limit);
        assert!(soft == hard || hard == rlimit::INFINITY);
    }
}
