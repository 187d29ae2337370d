//! Rows and domain types: turning stored columns back into domain types (a value that no
//! longer parses is `Corrupt`, never a panic), the one timestamp normalisation, the mapping
//! of constraint violations to `StoreError`s, and the encoding of matchmaking preferences.

use sqlx::types::Json;
use time::{OffsetDateTime, UtcOffset};
use uuid::Uuid;
use versus_core::account::{DisplayName, Region, Username};

use crate::dialect::Timestamp;
use crate::{MatchmakingPreferences, Player, StoreError, StoreResult};

/// The instant a backend stores for `t`: converted to UTC and truncated to whole microseconds
/// (PostgreSQL's precision; SQLite is made to match). Reading a timestamp back yields exactly
/// `stored_timestamp(written)`.
///
/// `None` only when `t` cannot be expressed in UTC within `time`'s supported years.
pub fn stored_timestamp(t: OffsetDateTime) -> Option<OffsetDateTime> {
    let utc = t.checked_to_offset(UtcOffset::UTC)?;
    utc.replace_nanosecond(utc.nanosecond() / 1_000 * 1_000)
        .ok()
}

/// [`stored_timestamp`] for a value about to be bound: an instant outside the storable range is
/// an encode error, as the driver itself would report it.
pub(crate) fn to_stored(t: OffsetDateTime) -> StoreResult<OffsetDateTime> {
    stored_timestamp(t).ok_or_else(|| {
        StoreError::Database(sqlx::Error::Encode(
            format!("timestamp {t} is outside the storable range").into(),
        ))
    })
}

/// The columns of `players` that [`PlayerRow`] reads (by name). Whether there is a password is
/// read, never the hash itself: only `credentials_by_username` reads that.
pub(crate) const PLAYER_COLUMNS: &str = "id, username, display_name, email, region, banned, \
     admin, created_at, updated_at, password_hash IS NOT NULL AS has_password";

/// A player row as stored, before the domain types are re-parsed.
#[derive(sqlx::FromRow)]
pub(crate) struct PlayerRow {
    id: Uuid,
    username: String,
    display_name: String,
    email: Option<String>,
    region: Option<String>,
    banned: bool,
    admin: bool,
    created_at: Timestamp,
    updated_at: Timestamp,
    has_password: bool,
}

impl PlayerRow {
    pub fn into_player(self) -> StoreResult<Player> {
        let corrupt = |field: &str, why: &dyn std::fmt::Display| {
            StoreError::Corrupt(format!("player {}: {field}: {why}", self.id))
        };
        let username = Username::parse(&self.username).map_err(|e| corrupt("username", &e))?;
        let display_name =
            DisplayName::parse(&self.display_name).map_err(|e| corrupt("display_name", &e))?;
        let region = match self.region.as_deref() {
            None => None,
            Some(raw) => Some(Region::parse(raw).map_err(|e| corrupt("region", &e))?),
        };
        Ok(Player {
            id: self.id,
            username,
            display_name,
            email: self.email,
            region,
            created_at: self.created_at.get(),
            updated_at: self.updated_at.get(),
            banned: self.banned,
            admin: self.admin,
            has_password: self.has_password,
        })
    }
}

/// A unique index refused the write.
pub(crate) fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.is_unique_violation())
}

/// Maps a unique violation to the domain error it means; any other error stays a database
/// error. The username check looks for the column (SQLite names it in the message) or the
/// constraint (PostgreSQL reports its name), both of which contain `username_key`.
pub(crate) fn classify(err: StoreError) -> StoreError {
    if let StoreError::Database(sqlx::Error::Database(db)) = &err
        && db.is_unique_violation()
    {
        let on_username = db.constraint().is_some_and(|c| c.contains("username_key"))
            || db.message().contains("username_key");
        return if on_username {
            StoreError::UsernameTaken
        } else {
            StoreError::DuplicateId
        };
    }
    err
}

/// [`classify`] for a write whose only foreign key is its `player_id`: a foreign-key violation
/// means there is no such player.
pub(crate) fn classify_player_write(err: StoreError) -> StoreError {
    if let StoreError::Database(sqlx::Error::Database(db)) = &err
        && db.is_foreign_key_violation()
    {
        return StoreError::UnknownPlayer;
    }
    classify(err)
}

/// Preferences as both backends store them: two JSON arrays of strings, order kept (`jsonb`
/// in PostgreSQL, `TEXT` in SQLite; sqlx encodes `Json` for each).
pub(crate) fn encode_preferences(
    prefs: &MatchmakingPreferences,
) -> (Json<Vec<&str>>, Json<&[String]>) {
    let regions = prefs.regions.iter().map(Region::as_str).collect();
    (Json(regions), Json(prefs.modes.as_slice()))
}

/// The inverse of [`encode_preferences`]. Read as any JSON so that anything that is not an
/// array of strings, or a region that no longer parses, is `Corrupt` rather than a decode error.
pub(crate) fn decode_preferences(
    player_id: Uuid,
    (Json(regions), Json(modes)): (Json<serde_json::Value>, Json<serde_json::Value>),
) -> StoreResult<MatchmakingPreferences> {
    let corrupt = |field: &str, why: &dyn std::fmt::Display| {
        StoreError::Corrupt(format!("preferences of player {player_id}: {field}: {why}"))
    };
    let regions: Vec<String> =
        serde_json::from_value(regions).map_err(|e| corrupt("regions", &e))?;
    let modes: Vec<String> = serde_json::from_value(modes).map_err(|e| corrupt("modes", &e))?;
    let regions = regions
        .iter()
        .map(|raw| Region::parse(raw).map_err(|e| corrupt("regions", &e)))
        .collect::<StoreResult<_>>()?;
    Ok(MatchmakingPreferences { regions, modes })
}

/// The columns of `refresh_tokens` that [`TokenRow`] reads.
pub(crate) const TOKEN_COLUMNS: &str =
    "family_id, player_id, token_hash, expires_at, used_at, revoked_at, replaced_by";

/// A refresh token row, as rotation reads it.
#[derive(sqlx::FromRow)]
pub(crate) struct TokenRow {
    pub family_id: Uuid,
    pub player_id: Uuid,
    pub token_hash: Vec<u8>,
    pub expires_at: Timestamp,
    pub used_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
    pub replaced_by: Option<Uuid>,
}

/// What a refresh-token row says about presenting it at some instant.
pub(crate) enum TokenState {
    Live,
    Spent,
    Expired,
}

impl TokenRow {
    pub fn state(&self, now: Timestamp) -> TokenState {
        if self.used_at.is_some() || self.revoked_at.is_some() {
            TokenState::Spent
        } else if now.get() >= self.expires_at.get() {
            TokenState::Expired
        } else {
            TokenState::Live
        }
    }

    /// When a spent token may be presented again as a retry of its rotation: rotated (not
    /// revoked) less than `grace` before `now`. Returns when it was rotated and the successor
    /// that rotation stored, which the caller must still find live.
    pub fn retry_window(&self, now: Timestamp, grace: time::Duration) -> Option<(Timestamp, Uuid)> {
        let (Some(used_at), None, Some(successor)) =
            (self.used_at, self.revoked_at, self.replaced_by)
        else {
            return None;
        };
        let within = grace.is_positive()
            && (used_at.get().checked_add(grace)).is_some_and(|end| now.get() < end);
        within.then_some((used_at, successor))
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn stored_timestamp_truncates_to_micros_in_utc() {
        let t = datetime!(2026-11-23 20:21:50.123456789 +02:00);
        let stored = stored_timestamp(t).unwrap();
        assert_eq!(stored, datetime!(2026-11-23 18:21:50.123456 UTC));
        assert_eq!(stored.offset(), UtcOffset::UTC);
        assert_eq!(stored_timestamp(stored), Some(stored));
        assert!(stored_timestamp(datetime!(9999-12-31 23:00 -05:00)).is_none());
    }
}
