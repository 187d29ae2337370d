//! The services behind the HTTP edge: matchmaking (one actor per queue), the realtime hub, the
//! event bus between them, authentication (password hashing, tokens), and game sessions (finding a
//! game server for a formed match).
//!
//! Architecture invariant: nothing here imports the HTTP edge — no `axum`, no `tower`, no
//! `crate::http`, no `ApiError`. Services take domain and wire types and return plain error
//! enums; the edge maps each error to a problem (REST) and to the same words on the WebSocket.
//! A test in `lib.rs` reads this folder's sources and fails on such an import.

pub mod admin;
pub mod auth;
pub mod cluster;
pub mod events;
pub mod hub;
pub mod leaderboards;
pub mod matchmaking;
pub mod nats;
pub mod parties;
pub mod redis;
pub mod sessions;
