//! The server's integration tests: each starts the real `versus` server on a random port, on
//! SQLite and again on its own PostgreSQL database, and talks to it over HTTP.

mod support;

mod admin;
mod auth;
mod authorization;
mod cluster;
mod connections;
mod credentials;
mod guests;
mod hostile;
mod leaderboards;
mod loadgen;
mod ops;
mod parties;
mod players;
mod realtime;
mod sdk;
mod seed;
mod sessions;
