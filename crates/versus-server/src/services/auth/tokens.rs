//! Access tokens are short-lived HS256 JWTs checked without touching the store. Refresh tokens
//! are 256 random bits, handed out once and stored only as a SHA-256 hash; each use spends one
//! and issues the next in the same family (see `versus_store::Rotation`).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;
use versus_store::NewRefreshToken;

use crate::config::AuthConfig;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessClaims {
    pub sub: Uuid,
    /// The refresh-token family (the login) this token was issued under: what a logout or a
    /// revoked family ends, live sockets included.
    pub fam: Uuid,
    pub iss: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: Uuid,
    /// Guards against a token of another kind, signed with the same key, being used as access.
    pub typ: String,
}

const ACCESS_TYP: &str = "access";

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("token has expired")]
    Expired,
    #[error("token is invalid")]
    Invalid,
}

/// What a login or refresh hands out: the access token, the plain refresh token for the client,
/// and the record to store for it.
pub struct IssuedTokens {
    pub access_token: String,
    pub refresh_token: String,
    pub refresh_record: NewRefreshToken,
    pub expires_in: u64,
}

pub struct TokenIssuer {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    issuer: String,
    access_ttl: time::Duration,
    refresh_ttl: time::Duration,
}

impl TokenIssuer {
    pub fn new(secret: &[u8], config: &AuthConfig) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[&config.issuer]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        validation.leeway = 5;
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            issuer: config.issuer.clone(),
            access_ttl: time::Duration::seconds(config.access_token_ttl_secs as i64),
            refresh_ttl: time::Duration::seconds(config.refresh_token_ttl_secs as i64),
        }
    }

    pub fn access_ttl_secs(&self) -> u64 {
        self.access_ttl.whole_seconds() as u64
    }

    pub fn issue_access(&self, player_id: Uuid, family_id: Uuid, now: OffsetDateTime) -> String {
        let claims = AccessClaims {
            sub: player_id,
            fam: family_id,
            iss: self.issuer.clone(),
            iat: now.unix_timestamp(),
            exp: (now + self.access_ttl).unix_timestamp(),
            jti: Uuid::new_v4(),
            typ: ACCESS_TYP.to_owned(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 encoding of plain claims cannot fail")
    }

    pub fn verify_access(&self, token: &str) -> Result<AccessClaims, TokenError> {
        let data = jsonwebtoken::decode::<AccessClaims>(token, &self.decoding, &self.validation)
            .map_err(|err| match err.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid,
            })?;
        if data.claims.typ != ACCESS_TYP {
            return Err(TokenError::Invalid);
        }
        Ok(data.claims)
    }

    /// Issues both tokens. `family_id` is a new family at login and the presented token's family
    /// on refresh (the store enforces the latter).
    pub fn issue(&self, player_id: Uuid, family_id: Uuid, now: OffsetDateTime) -> IssuedTokens {
        let mut raw = [0u8; 32];
        rand::rng().fill_bytes(&mut raw);
        let refresh_token = URL_SAFE_NO_PAD.encode(raw);
        IssuedTokens {
            access_token: self.issue_access(player_id, family_id, now),
            refresh_record: NewRefreshToken {
                id: Uuid::now_v7(),
                family_id,
                player_id,
                token_hash: hash_refresh_token(&refresh_token),
                created_at: now,
                expires_at: now + self.refresh_ttl,
            },
            refresh_token,
            expires_in: self.access_ttl_secs(),
        }
    }
}

pub fn hash_refresh_token(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issuer() -> TokenIssuer {
        TokenIssuer::new(&[7u8; 32], &AuthConfig::default())
    }

    #[test]
    fn access_tokens_round_trip() {
        let issuer = issuer();
        let player = Uuid::now_v7();
        let token = issuer.issue_access(player, Uuid::now_v7(), OffsetDateTime::now_utc());
        assert_eq!(issuer.verify_access(&token).unwrap().sub, player);
    }

    #[test]
    fn expired_tokens_are_refused() {
        let issuer = issuer();
        let long_ago = OffsetDateTime::now_utc() - time::Duration::hours(1);
        let token = issuer.issue_access(Uuid::now_v7(), Uuid::now_v7(), long_ago);
        assert_eq!(
            issuer.verify_access(&token).unwrap_err(),
            TokenError::Expired
        );
    }

    #[test]
    fn tampered_and_foreign_tokens_are_refused() {
        let issuer = issuer();
        let token = issuer.issue_access(Uuid::now_v7(), Uuid::now_v7(), OffsetDateTime::now_utc());
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        // Swap in another player's id without re-signing.
        let forged_claims = serde_json::json!({
            "sub": Uuid::now_v7(), "iss": "versus", "iat": 0, "exp": i64::MAX / 2,
            "jti": Uuid::new_v4(), "typ": "access"
        });
        parts[1] = URL_SAFE_NO_PAD.encode(forged_claims.to_string());
        assert_eq!(
            issuer.verify_access(&parts.join(".")).unwrap_err(),
            TokenError::Invalid
        );

        let other = TokenIssuer::new(&[8u8; 32], &AuthConfig::default());
        let foreign = other.issue_access(Uuid::now_v7(), Uuid::now_v7(), OffsetDateTime::now_utc());
        assert_eq!(
            issuer.verify_access(&foreign).unwrap_err(),
            TokenError::Invalid
        );

        for junk in ["", "a.b.c", "not a jwt", "eyJhbGciOiJub25lIn0.e30."] {
            assert_eq!(issuer.verify_access(junk).unwrap_err(), TokenError::Invalid);
        }
    }

    #[test]
    fn refresh_tokens_are_random_and_stored_hashed() {
        let issuer = issuer();
        let now = OffsetDateTime::now_utc();
        let a = issuer.issue(Uuid::now_v7(), Uuid::now_v7(), now);
        let b = issuer.issue(Uuid::now_v7(), Uuid::now_v7(), now);
        assert_ne!(a.refresh_token, b.refresh_token);
        assert_eq!(
            a.refresh_record.token_hash,
            hash_refresh_token(&a.refresh_token)
        );
        assert_ne!(a.refresh_record.token_hash, a.refresh_token.as_bytes());
        assert_eq!(a.expires_in, 900);
    }
}
