//! Game sessions: a formed match given a game server, and the session's life on it.

pub mod allocator;
