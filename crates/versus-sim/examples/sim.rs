//! `cargo run -p versus-sim --release --example sim -- scenarios/ranked-1v1.toml [--json]`
//! (the server binary's `versus sim` does the same through `run_scenario_file`).

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let json = args.iter().any(|a| a == "--json");
    let mut failed = false;
    for path in args.iter().filter(|a| !a.starts_with("--")) {
        match versus_sim::run_scenario_file(std::path::Path::new(path)) {
            Ok(report) if json => println!("{}", serde_json::to_string_pretty(&report).unwrap()),
            Ok(report) => println!("{report}"),
            Err(e) => {
                eprintln!("{path}: {e}");
                failed = true;
            }
        }
    }
    if failed {
        std::process::exit(1);
    }
}
