//! The Versus server: the `versus` command line, the HTTP edge and the live services behind it.
//!
//! Two rooms, one rule between them:
//! - [`http`] is the edge: the router and its middleware, extractors, the one `ApiError`, the
//!   OpenAPI description, the WebSocket connection, and one module of handlers per resource.
//! - [`services`] are what runs behind it: matchmaking (one actor per queue), the realtime hub,
//!   the event bus, password hashing and tokens. They speak domain types and return plain error
//!   enums.
//!
//! Architecture invariant: services never import the HTTP edge (no `axum`, no `ApiError`, no
//! `crate::http`); the edge maps their errors to problems once. A test below keeps it.
//! Only this crate knows HTTP. Domain rules come from `versus-core`, storage from `versus-store`
//! behind its trait, wire types from `versus-protocol`.

pub mod app;
pub mod cli;
pub mod config;
pub mod http;
pub mod secrets;
pub mod seed;
pub mod services;
pub mod telemetry;

pub use app::App;
pub use config::Config;

#[cfg(test)]
mod architecture {
    use std::path::Path;

    /// Paths a service must never name: the edge, and the HTTP stack it is built on.
    const EDGE: &[&str] = &["crate::http", "axum", "tower", "ApiError", "StatusCode"];

    fn sources(dir: &Path, out: &mut Vec<(String, String)>) {
        for entry in std::fs::read_dir(dir).expect("services folder is readable") {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                sources(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).expect("source is readable");
                out.push((path.display().to_string(), text));
            }
        }
    }

    #[test]
    fn services_never_import_the_http_edge() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/services");
        let mut files = Vec::new();
        sources(&root, &mut files);
        assert!(
            files.len() >= 5,
            "found only {} service sources",
            files.len()
        );
        let mut offences = Vec::new();
        for (path, text) in &files {
            for (n, line) in text.lines().enumerate() {
                let code = line.split("//").next().unwrap_or_default();
                if let Some(name) = EDGE.iter().find(|name| code.contains(*name)) {
                    offences.push(format!("{path}:{}: names `{name}`: {line}", n + 1));
                }
            }
        }
        assert!(
            offences.is_empty(),
            "services must not import the HTTP edge:\n{}",
            offences.join("\n")
        );
    }
}
