//! The pure domain of Versus: account rules, the matchmaker, rating systems, the session
//! lifecycle and results.
//!
//! Architecture invariant: nothing here does IO, reads a clock, spawns a task or draws randomness
//! it was not handed. Time is an input; so is any RNG. That keeps every rule here deterministic,
//! property-testable and benchmarkable on its own.

pub mod account;
pub mod leaderboard;
pub mod matchmaking;
pub mod party;
pub mod rating;
pub mod season;
pub mod session;
