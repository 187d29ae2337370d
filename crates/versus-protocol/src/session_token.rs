//! Session tokens: what a player shows a game server to join a session, and what the game
//! server checks **offline**, with the key it shares with Versus (`sessions.token_key`).
//!
//! Format (ASCII, URL-safe): `v1.<player>.<session>.<expires>.<mac>` where `player` and
//! `session` are UUIDs in simple form (32 lowercase hex digits), `expires` is the Unix time in
//! seconds after which the token is refused, and `mac` is the unpadded base64url HMAC-SHA256,
//! under the key, of the text before the last dot (`v1.<player>.<session>.<expires>`).
//!
//! A game server verifies a token with [`verify`], naming the session it runs and the player it
//! expects (or `None` to learn who it is). Any change to the text, another key, another
//! session or player, or an expired token is refused.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use uuid::Uuid;

const VERSION: &str = "v1";

/// What a valid token says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionClaims {
    pub player: Uuid,
    pub session: Uuid,
    /// Unix seconds.
    pub expires_at: i64,
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SessionTokenError {
    #[error("not a session token")]
    Malformed,
    #[error("the token's signature does not match (another key, or the token was altered)")]
    BadSignature,
    #[error("the token is for another session")]
    OtherSession,
    #[error("the token is for another player")]
    OtherPlayer,
    #[error("the token has expired")]
    Expired,
}

fn mac(key: &[u8], text: &str) -> Hmac<Sha256> {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(text.as_bytes());
    mac
}

/// A token for `player` in `session`, valid until `expires_at` (Unix seconds).
pub fn sign(key: &[u8], claims: SessionClaims) -> String {
    let text = format!(
        "{VERSION}.{}.{}.{}",
        claims.player.simple(),
        claims.session.simple(),
        claims.expires_at
    );
    let signature = URL_SAFE_NO_PAD.encode(mac(key, &text).finalize().into_bytes());
    format!("{text}.{signature}")
}

/// Checks a token against the key, the session, the player (when given) and the time `now`
/// (Unix seconds). The signature is compared in constant time.
pub fn verify(
    key: &[u8],
    token: &str,
    session: Uuid,
    player: Option<Uuid>,
    now: i64,
) -> Result<SessionClaims, SessionTokenError> {
    let (text, signature) = token.rsplit_once('.').ok_or(SessionTokenError::Malformed)?;
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| SessionTokenError::Malformed)?;
    let mut parts = text.split('.');
    let (Some(VERSION), Some(token_player), Some(token_session), Some(expires), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(SessionTokenError::Malformed);
    };
    let parse = |hex: &str| {
        (hex.len() == 32)
            .then(|| Uuid::try_parse(hex).ok())
            .flatten()
            .ok_or(SessionTokenError::Malformed)
    };
    let claims = SessionClaims {
        player: parse(token_player)?,
        session: parse(token_session)?,
        expires_at: expires.parse().map_err(|_| SessionTokenError::Malformed)?,
    };
    mac(key, text)
        .verify_slice(&signature)
        .map_err(|_| SessionTokenError::BadSignature)?;
    if claims.session != session {
        return Err(SessionTokenError::OtherSession);
    }
    if player.is_some_and(|player| player != claims.player) {
        return Err(SessionTokenError::OtherPlayer);
    }
    if now >= claims.expires_at {
        return Err(SessionTokenError::Expired);
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"a key the game servers share with versus";

    #[test]
    fn only_the_right_token_passes() {
        let (player, session) = (Uuid::now_v7(), Uuid::now_v7());
        let claims = SessionClaims {
            player,
            session,
            expires_at: 1_000,
        };
        let token = sign(KEY, claims);
        assert_eq!(verify(KEY, &token, session, Some(player), 999), Ok(claims));
        assert_eq!(verify(KEY, &token, session, None, 0), Ok(claims));
        let refused = |key: &[u8], token: &str, session, player, now| {
            verify(key, token, session, player, now).unwrap_err()
        };
        use SessionTokenError::*;
        assert_eq!(refused(KEY, &token, session, Some(player), 1_000), Expired);
        assert_eq!(
            refused(b"another key", &token, session, Some(player), 0),
            BadSignature
        );
        assert_eq!(
            refused(KEY, &token, Uuid::now_v7(), Some(player), 0),
            OtherSession
        );
        assert_eq!(
            refused(KEY, &token, session, Some(Uuid::now_v7()), 0),
            OtherPlayer
        );
        // Altered claims: a later expiry, another player, with the old signature.
        let later = token.replace(".1000.", ".9999.");
        assert_eq!(refused(KEY, &later, session, None, 0), BadSignature);
        let other = sign(
            KEY,
            SessionClaims {
                player: Uuid::now_v7(),
                ..claims
            },
        );
        let (_, their_mac) = other.rsplit_once('.').unwrap();
        let (ours, _) = token.rsplit_once('.').unwrap();
        assert_eq!(
            refused(KEY, &format!("{ours}.{their_mac}"), session, None, 0),
            BadSignature
        );
        for garbage in [
            "",
            "v1",
            "v2.a.b.1.x",
            "v1.x.y.z.w",
            &format!("{token}.extra"),
        ] {
            assert!(verify(KEY, garbage, session, None, 0).is_err(), "{garbage}");
        }
    }
}
