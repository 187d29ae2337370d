//! Authentication services: password hashing and access/refresh tokens. The extractor that turns
//! a bearer token into the authenticated player is the edge's (`http::auth`).

mod password;
mod tokens;

pub use password::{HashError, PasswordHasher};
pub use tokens::{AccessClaims, IssuedTokens, TokenError, TokenIssuer, hash_refresh_token};
