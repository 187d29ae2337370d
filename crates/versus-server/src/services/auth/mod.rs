//! Authentication services: password hashing, access/refresh tokens and guest accounts. The
//! extractor that turns a bearer token into the authenticated player is the edge's
//! (`http::auth`).

pub mod guest;
mod password;
mod tokens;

pub use password::PasswordHasher;
pub use tokens::{
    AccessClaims, IssuedTokens, Successor, TokenError, TokenIssuer, hash_refresh_token,
};
