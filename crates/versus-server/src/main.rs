use clap::Parser as _;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // A dependency may bring a second rustls provider into the graph; pick one explicitly.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let cli = versus_server::cli::Cli::parse();
    match versus_server::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("versus: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
