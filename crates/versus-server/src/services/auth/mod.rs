//! Authentication services: password hashing, access/refresh tokens, guest accounts, and
//! whether a token's player may still act (revoked logins, bans, accounts gone). The extractor
//! that turns a bearer token into the authenticated player is the edge's (`http::auth`).

mod accounts;
pub mod guest;
mod password;
mod tokens;

pub use accounts::{Accounts, Standing};
pub use password::{HashError, PasswordHasher};
pub use tokens::{
    AccessClaims, IssuedTokens, Successor, TokenError, TokenIssuer, hash_refresh_token,
};
