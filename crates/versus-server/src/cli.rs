//! The `versus` command line: `serve`, `migrate`, `admin`, `sim`, `loadgen`, `version`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use versus_core::account::Username;
use versus_store::AdminAction;

use crate::app::{App, open_store};
use crate::config::{Config, Overrides};
use crate::telemetry;

#[derive(Debug, Parser)]
#[command(name = "versus", version, about = "Versus game backend")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, clap::Args)]
pub struct ConfigArgs {
    /// Configuration file (TOML). Without it, ./versus.toml is read when present.
    #[arg(long, env = "VERSUS_CONFIG")]
    pub config: Option<PathBuf>,
    /// Directory for the embedded SQLite database and generated secrets.
    #[arg(long, env = "VERSUS_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (every role in one process).
    Serve {
        #[command(flatten)]
        config: ConfigArgs,
        /// Address to listen on, e.g. 0.0.0.0:8080.
        #[arg(long, env = "VERSUS_BIND")]
        bind: Option<SocketAddr>,
    },
    /// Apply database migrations and exit.
    Migrate {
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Run the matchmaker against generated traffic and print a report.
    Sim {
        /// Scenario file (TOML); see scenarios/README.md for its keys.
        #[arg(long)]
        scenario: PathBuf,
        /// Run the traffic through this queue of the server's configuration (defaults, then
        /// ./versus.toml or --config, then VERSUS_* variables, as `serve` reads them), ticking
        /// at its `matchmaking.tick_ms`, instead of the scenario's own `[queue]`.
        #[arg(long)]
        queue: Option<String>,
        /// Configuration file for --queue.
        #[arg(long, requires = "queue")]
        config: Option<PathBuf>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Simulate players against a running server (loopback only) and print a summary.
    Loadgen(versus_loadgen::LoadgenArgs),
    /// Fill the configured store with demo data played through the real rules: players, and
    /// matches as sessions whose results set ratings. Every demo account's password is
    /// `versus-demo-password`.
    Seed {
        #[command(flatten)]
        config: ConfigArgs,
        /// Accounts to create.
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(2..=10_000_000))]
        players: u32,
        /// Matches to play among them.
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(0..=100_000_000))]
        matches: u32,
        /// Seeds every draw: the same seed makes the same data, and adds nothing a second time.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Add to a store that already has players.
        #[arg(long)]
        force: bool,
        /// The queue the matches are played in (default: the first configured).
        #[arg(long)]
        queue: Option<String>,
        /// Draw ratings directly and insert in bulk (no matches played; `--matches` is
        /// ignored): for a million-player leaderboard.
        #[arg(long)]
        fast: bool,
        /// Parties to form among the seeded players (2 to `parties.max_size` members each).
        #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
        parties: u32,
    },
    /// Grant or revoke admin rights (the admin API) on the configured store.
    Admin {
        #[command(subcommand)]
        action: AdminCommand,
    },
    /// Print the version and exit.
    Version,
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Make the player with this username an admin.
    Grant {
        username: String,
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Take admin rights away from the player with this username.
    Revoke {
        username: String,
        #[command(flatten)]
        config: ConfigArgs,
    },
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve { config, bind } => {
            let config = load(&config, bind)?;
            telemetry::init_logging(&config.log, &config.service_name);
            let app = App::build(config).await?;
            app.run_until(shutdown_signal()).await
        }
        Command::Migrate { config } => {
            let config = load(&config, None)?;
            telemetry::init_logging(&config.log, &config.service_name);
            let store = open_store(&config).await?;
            tracing::info!(store = store.backend(), "migrations applied");
            store.close().await;
            Ok(())
        }
        Command::Sim {
            scenario: path,
            queue,
            config,
            json,
        } => {
            let mut scenario = versus_sim::read_scenario(&path)?;
            match queue {
                Some(name) => {
                    let config = Config::load(config.as_deref(), &Overrides::default())?;
                    let queue = config.queues.get(&name).ok_or_else(|| {
                        let known: Vec<&str> =
                            config.queues.iter().map(|q| q.name.as_str()).collect();
                        anyhow::anyhow!(
                            "no queue {name:?} in the configuration; queues: {}",
                            known.join(", ")
                        )
                    })?;
                    if scenario.queue.is_some() {
                        eprintln!(
                            "queue {name:?} of the configuration replaces the scenario's [queue]"
                        );
                    }
                    scenario.serve_queue(queue.spec.clone(), config.matchmaking.tick_ms)?;
                }
                None => scenario.validate()?,
            }
            let report = versus_sim::run(&scenario);
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!("{report}");
            }
            if report.violations > 0 {
                anyhow::bail!("{} constraint violations", report.violations);
            }
            Ok(())
        }
        Command::Loadgen(args) => {
            let json = args.json;
            let summary = versus_loadgen::run(args).await?;
            println!("{}", summary.render(json));
            if let Some(failure) = summary.loop_failure() {
                anyhow::bail!("RESULTS CHECK FAILED: {failure}");
            }
            Ok(())
        }
        Command::Seed {
            config,
            players,
            matches,
            seed,
            force,
            queue,
            fast,
            parties,
        } => {
            let config = load(&config, None)?;
            telemetry::init_logging(&config.log, &config.service_name);
            let store = open_store(&config).await?;
            let options = crate::seed::SeedOptions {
                players,
                matches,
                seed,
                force,
                queue,
                fast,
                parties,
            };
            let report = crate::seed::seed(&*store, &config, &options).await;
            store.close().await;
            let report = report?;
            println!(
                "{} players created, {} matches played, {} parties formed, {} already there \
                 (password: {})",
                report.players_created,
                report.matches_played,
                report.parties_created,
                report.already_there,
                crate::seed::DEMO_PASSWORD
            );
            Ok(())
        }
        Command::Admin { action } => {
            let (username, admin, config) = match &action {
                AdminCommand::Grant { username, config } => (username, true, config),
                AdminCommand::Revoke { username, config } => (username, false, config),
            };
            let config = load(config, None)?;
            telemetry::init_logging(&config.log, &config.service_name);
            let username =
                Username::parse(username).map_err(|err| anyhow::anyhow!("USERNAME: {err}"))?;
            let store = open_store(&config).await?;
            let record = AdminAction {
                id: uuid::Uuid::now_v7(),
                admin_id: None,
                action: if admin { "grant_admin" } else { "revoke_admin" }.to_owned(),
                target: None,
                details: serde_json::json!({ "by": "command line", "username": username.as_str() }),
                at: time::OffsetDateTime::now_utc(),
            };
            let changed = store.set_admin(&username, admin, &record).await;
            store.close().await;
            match changed? {
                Some(player) => {
                    let now = if admin {
                        "is now an admin"
                    } else {
                        "is no longer an admin"
                    };
                    println!("{} ({}) {now}", player.username, player.id);
                    Ok(())
                }
                None => anyhow::bail!("no player is called {username:?}"),
            }
        }
        Command::Version => {
            println!("versus {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
    }
}

fn load(args: &ConfigArgs, bind: Option<SocketAddr>) -> anyhow::Result<Config> {
    let overrides = Overrides {
        bind,
        data_dir: args.data_dir.clone(),
    };
    Ok(Config::load(args.config.as_deref(), &overrides)?)
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
