//! Game sessions: what follows a formed match — storing it, finding it a game server
//! ([`allocator`]), heartbeats, state changes, the result and the ratings it changes
//! ([`Sessions`]).

pub mod allocator;
mod service;

pub(crate) use service::rated_result;
pub use service::{
    SessionDeps, SessionError, Sessions, decode_cursor, encode_cursor, page, state_name,
};
