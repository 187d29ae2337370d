//! The Versus server: HTTP API, auth, limits, metrics and the `versus` command line.
//!
//! Architecture invariant: only this crate knows HTTP. Domain rules come from `versus-core`,
//! storage from `versus-store` behind its trait, wire types from `versus-protocol`.

pub mod app;
pub mod auth;
pub mod cli;
pub mod config;
pub mod error;
pub mod events;
pub mod extract;
pub mod matchmaking;
pub mod openapi;
pub mod ratelimit;
pub mod realtime;
pub mod routes;
pub mod secrets;
pub mod state;
pub mod telemetry;

pub use app::App;
pub use config::Config;
