//! Access tokens are short-lived HS256 JWTs checked without touching the store. Refresh tokens
//! are 256 bits, handed out once and stored only as a SHA-256 hash; each use spends one and
//! issues the next in the same family (see `versus_store::Rotation`).
//!
//! A login's refresh token is random. Its successors are derived: HMAC-SHA256 of the presented
//! token under a server key, so unpredictable without that key, yet the same every time the
//! same token is presented. That is what lets a retried refresh (within the grace window) be
//! answered with the very pair the first attempt issued, without storing any plain token: the
//! store only decides whether it is a retry, and the access token is dated at the rotation and
//! its `jti` derived the same way, so it comes out identical too.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit as _, Mac as _};
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

/// The refresh token a rotation of a presented token issues, before the store has decided the
/// rotation; [`TokenIssuer::rotated`] completes it into the pair.
pub struct Successor {
    pub refresh_token: String,
    /// Family and player are placeholders: the store takes them from the presented token.
    pub refresh_record: NewRefreshToken,
}

pub struct TokenIssuer {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    issuer: String,
    access_ttl: time::Duration,
    refresh_ttl: time::Duration,
    refresh_grace: time::Duration,
    /// Keyed with a subkey of the signing secret rather than the secret itself, so nothing
    /// derived here is ever computed under the key that signs access tokens.
    derivation: Hmac<Sha256>,
}

/// Labels of the values derived from one token; none contains the 0 byte that ends it.
const SUBKEY_LABEL: &[u8] = b"versus refresh-token derivation v1";
const SUCCESSOR_LABEL: &[u8] = b"refresh successor";
const JTI_LABEL: &[u8] = b"access jti";

impl TokenIssuer {
    pub fn new(secret: &[u8], config: &AuthConfig) -> Self {
        let subkey = Hmac::<Sha256>::new_from_slice(secret)
            .expect("HMAC takes keys of any length")
            .chain_update(SUBKEY_LABEL)
            .finalize()
            .into_bytes();
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
            refresh_grace: time::Duration::seconds(config.refresh_grace_secs as i64),
            derivation: Hmac::<Sha256>::new_from_slice(&subkey)
                .expect("HMAC takes keys of any length"),
        }
    }

    /// How long after a rotation presenting the same token again is a retry, not a replay.
    pub fn refresh_grace(&self) -> time::Duration {
        self.refresh_grace
    }

    pub fn access_ttl_secs(&self) -> u64 {
        self.access_ttl.whole_seconds() as u64
    }

    pub fn issue_access(&self, player_id: Uuid, family_id: Uuid, now: OffsetDateTime) -> String {
        self.access(player_id, family_id, now, Uuid::new_v4())
    }

    fn access(&self, player_id: Uuid, family_id: Uuid, iat: OffsetDateTime, jti: Uuid) -> String {
        let claims = AccessClaims {
            sub: player_id,
            fam: family_id,
            iss: self.issuer.clone(),
            iat: iat.unix_timestamp(),
            exp: (iat + self.access_ttl).unix_timestamp(),
            jti,
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

    /// The refresh token that rotating `presented` issues: the same for every presentation of
    /// that token, and unguessable without the server's key.
    pub fn successor(&self, presented: &str, now: OffsetDateTime) -> Successor {
        let refresh_token = URL_SAFE_NO_PAD.encode(self.derive(SUCCESSOR_LABEL, presented));
        Successor {
            refresh_record: NewRefreshToken {
                id: Uuid::now_v7(),
                family_id: Uuid::nil(),
                player_id: Uuid::nil(),
                token_hash: hash_refresh_token(&refresh_token),
                created_at: now,
                expires_at: now + self.refresh_ttl,
            },
            refresh_token,
        }
    }

    /// The pair a rotation answers with, first time or retry alike: the access token is dated
    /// at the rotation (as the store reports it) and its `jti` derived from the successor, so a
    /// retry gets the same bytes.
    pub fn rotated(
        &self,
        successor: Successor,
        player_id: Uuid,
        family_id: Uuid,
        rotated_at: OffsetDateTime,
    ) -> IssuedTokens {
        let jti_bytes = self.derive(JTI_LABEL, &successor.refresh_token);
        let mut jti = [0u8; 16];
        jti.copy_from_slice(&jti_bytes[..16]);
        let jti = uuid::Builder::from_random_bytes(jti).into_uuid();
        IssuedTokens {
            access_token: self.access(player_id, family_id, rotated_at, jti),
            refresh_token: successor.refresh_token,
            refresh_record: successor.refresh_record,
            expires_in: self.access_ttl_secs(),
        }
    }

    fn derive(&self, label: &[u8], input: &str) -> [u8; 32] {
        self.derivation
            .clone()
            .chain_update(label)
            .chain_update([0])
            .chain_update(input.as_bytes())
            .finalize()
            .into_bytes()
            .into()
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
    fn a_rotation_answers_the_same_pair_every_time() {
        let issuer = issuer();
        let (player, family) = (Uuid::now_v7(), Uuid::now_v7());
        let rotated_at = OffsetDateTime::now_utc();
        let presented = issuer.issue(player, family, rotated_at).refresh_token;
        let first = issuer.rotated(
            issuer.successor(&presented, rotated_at),
            player,
            family,
            rotated_at,
        );
        // A retry a few seconds later, on another node sharing the key.
        let later = rotated_at + time::Duration::seconds(3);
        let other_node = TokenIssuer::new(&[7u8; 32], &AuthConfig::default());
        let retry = other_node.rotated(
            other_node.successor(&presented, later),
            player,
            family,
            rotated_at,
        );
        assert_eq!(retry.refresh_token, first.refresh_token);
        assert_eq!(retry.access_token, first.access_token);
        assert_eq!(
            retry.refresh_record.token_hash,
            hash_refresh_token(&first.refresh_token)
        );
        let claims = issuer.verify_access(&first.access_token).unwrap();
        assert_eq!((claims.sub, claims.fam), (player, family));
        assert_eq!(claims.iat, rotated_at.unix_timestamp());

        // Another token, or another key, derives another successor.
        let elsewhere = issuer.successor(&issuer.issue(player, family, later).refresh_token, later);
        assert_ne!(elsewhere.refresh_token, first.refresh_token);
        let foreign = TokenIssuer::new(&[8u8; 32], &AuthConfig::default());
        assert_ne!(
            foreign.successor(&presented, later).refresh_token,
            first.refresh_token
        );
        // 256 bits, like a random one.
        assert_eq!(
            URL_SAFE_NO_PAD.decode(&first.refresh_token).unwrap().len(),
            32
        );
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
