//! `versus-loadgen`: the load generator on its own (`versus loadgen` is the same thing inside
//! the main binary). Parses arguments, runs, prints the summary.

use std::process::ExitCode;

use clap::Parser;
use versus_loadgen::LoadgenArgs;

#[derive(Parser)]
#[command(name = "versus-loadgen", version, about, after_help = versus_loadgen::args::AFTER_HELP)]
struct Cli {
    #[command(flatten)]
    args: LoadgenArgs,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let Cli { args } = Cli::parse();
    let json = args.json;
    match versus_loadgen::run(args).await {
        Ok(summary) => {
            println!("{}", summary.render(json));
            match summary.loop_failure() {
                None => ExitCode::SUCCESS,
                Some(failure) => {
                    eprintln!("versus-loadgen: RESULTS CHECK FAILED: {failure}");
                    ExitCode::FAILURE
                }
            }
        }
        Err(err) => {
            eprintln!("versus-loadgen: {err:#}");
            ExitCode::FAILURE
        }
    }
}
