//! The embedded backend: one SQLite file in WAL mode with `synchronous=FULL`, so every write
//! acknowledged by a `Store` method survives a crash or power loss.
//!
//! Every transaction that reads and then writes starts with `BEGIN IMMEDIATE`: it takes the
//! write lock up front and waits (busy timeout) for it, instead of upgrading a read lock later
//! and failing with `SQLITE_BUSY` under concurrency. That lock is also what makes
//! [`Store::rotate_refresh_token`] atomic here.
//!
//! Column encodings (see `migrations/sqlite`): UUIDs as 16-byte BLOBs, timestamps as fixed-width
//! UTC text with microseconds (sorts as text, round-trips exactly), booleans as 0/1.

use std::path::Path;
use std::str::FromStr as _;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use time::format_description::BorrowedFormatItem;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime};
use tracing::instrument;
use uuid::Uuid;
use versus_core::account::Username;

use crate::record::{
    PlayerRecord, TokenState, classify, classify_player_write, decode_preferences,
    encode_preferences, to_stored, token_state,
};
use crate::{
    Credentials, MatchmakingPreferences, NewPlayer, NewRefreshToken, Player, PlayerPatch, Rotation,
    Store, StoreError, StoreResult,
};

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

/// How long a connection waits for another one's write lock before giving up with `SQLITE_BUSY`.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// SQLite has one writer at a time; a few connections are enough for concurrent readers.
const MAX_CONNECTIONS: u32 = 4;

/// The [`Store`] on SQLite.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating it and its parent directory if missing) the database file at `path` and
    /// applies pending migrations.
    #[instrument(skip_all, fields(path = %path.display()))]
    pub async fn open(path: &Path) -> StoreResult<Self> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|e| StoreError::Database(sqlx::Error::Io(e)))?;
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        let pool = SqlitePoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .connect_with(options)
            .await?;
        Self::migrated(pool).await
    }

    /// A private in-memory database on one connection that lives as long as the store: fast,
    /// and gone on [`Store::close`] or drop. For tests; nothing is durable.
    pub async fn in_memory() -> StoreResult<Self> {
        let options = SqliteConnectOptions::from_str("sqlite::memory:")?
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        // One connection, never retired: a second or replaced connection would see an empty
        // database of its own.
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await?;
        Self::migrated(pool).await
    }

    async fn migrated(pool: SqlitePool) -> StoreResult<Self> {
        if let Err(e) = MIGRATOR.run(&pool).await {
            pool.close().await;
            return Err(e.into());
        }
        Ok(Self { pool })
    }

    /// The underlying pool, for crates that add their own tables in later migrations of this
    /// crate. Prefer adding a `Store` method.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

/// `2026-11-23T20:21:50.123456Z`: fixed width, so text order is time order.
const TIMESTAMP_FORMAT: &[BorrowedFormatItem<'_>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");

fn encode_time(t: OffsetDateTime) -> StoreResult<String> {
    to_stored(t)?
        .format(TIMESTAMP_FORMAT)
        .map_err(|e| StoreError::Database(sqlx::Error::Encode(Box::new(e))))
}

fn decode_time(raw: &str) -> StoreResult<OffsetDateTime> {
    PrimitiveDateTime::parse(raw, TIMESTAMP_FORMAT)
        .map(PrimitiveDateTime::assume_utc)
        // Anything else RFC 3339 (written by hand or by sqlx's own encoder) is still accepted.
        .or_else(|_| OffsetDateTime::parse(raw, &Rfc3339))
        .map_err(|e| StoreError::Corrupt(format!("timestamp {raw:?}: {e}")))
}

fn decode_opt_time(raw: Option<String>) -> StoreResult<Option<OffsetDateTime>> {
    raw.as_deref().map(decode_time).transpose()
}

#[derive(sqlx::FromRow)]
struct PlayerRow {
    id: Uuid,
    username: String,
    display_name: String,
    email: Option<String>,
    region: Option<String>,
    banned: bool,
    created_at: String,
    updated_at: String,
}

impl PlayerRow {
    fn into_player(self) -> StoreResult<Player> {
        PlayerRecord {
            id: self.id,
            username: self.username,
            display_name: self.display_name,
            email: self.email,
            region: self.region,
            banned: self.banned,
            created_at: decode_time(&self.created_at)?,
            updated_at: decode_time(&self.updated_at)?,
        }
        .into_player()
    }
}

#[derive(sqlx::FromRow)]
struct TokenRow {
    family_id: Uuid,
    player_id: Uuid,
    expires_at: String,
    used_at: Option<String>,
    revoked_at: Option<String>,
}

const PLAYER_COLUMNS: &str =
    "id, username, display_name, email, region, banned, created_at, updated_at";

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn ping(&self) -> StoreResult<Duration> {
        let started = Instant::now();
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(started.elapsed())
    }

    async fn close(&self) {
        self.pool.close().await;
    }

    #[instrument(skip_all, fields(player.id = %player.id))]
    async fn create_player(&self, player: NewPlayer) -> StoreResult<Player> {
        let created_at = to_stored(player.created_at)?;
        let stamp = encode_time(created_at)?;
        sqlx::query(
            "INSERT INTO players \
             (id, username, username_key, display_name, password_hash, created_at, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
        )
        .bind(player.id)
        .bind(player.username.as_str())
        .bind(player.username.key())
        .bind(player.display_name.as_str())
        .bind(&player.password_hash)
        .bind(&stamp)
        .execute(&self.pool)
        .await
        .map_err(classify)?;
        Ok(Player {
            id: player.id,
            username: player.username,
            display_name: player.display_name,
            email: None,
            region: None,
            created_at,
            updated_at: created_at,
            banned: false,
        })
    }

    #[instrument(skip(self))]
    async fn player(&self, id: Uuid) -> StoreResult<Option<Player>> {
        let row: Option<PlayerRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {PLAYER_COLUMNS} FROM players WHERE id = ?1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(PlayerRow::into_player).transpose()
    }

    #[instrument(skip_all, fields(username = %username))]
    async fn credentials_by_username(
        &self,
        username: &Username,
    ) -> StoreResult<Option<Credentials>> {
        #[derive(sqlx::FromRow)]
        struct Row {
            #[sqlx(flatten)]
            player: PlayerRow,
            password_hash: String,
        }
        let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {PLAYER_COLUMNS}, password_hash FROM players WHERE username_key = ?1"
        )))
        .bind(username.key())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(Credentials {
                player: row.player.into_player()?,
                password_hash: row.password_hash,
            })
        })
        .transpose()
    }

    #[instrument(skip(self, patch))]
    async fn update_player(
        &self,
        id: Uuid,
        patch: PlayerPatch,
        now: OffsetDateTime,
    ) -> StoreResult<Option<Player>> {
        let display_name = patch.display_name.as_ref().map(|d| d.as_str());
        let set_region = patch.region.is_some();
        let region = patch
            .region
            .as_ref()
            .and_then(|r| r.as_ref().map(|r| r.as_str()));
        // One statement, so no transaction is needed for it to be atomic.
        let row: Option<PlayerRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "UPDATE players SET \
                 display_name = COALESCE(?1, display_name), \
                 region = CASE WHEN ?2 THEN ?3 ELSE region END, \
                 updated_at = ?4 \
             WHERE id = ?5 \
             RETURNING {PLAYER_COLUMNS}"
        )))
        .bind(display_name)
        .bind(set_region)
        .bind(region)
        .bind(encode_time(now)?)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(PlayerRow::into_player).transpose()
    }

    #[instrument(skip_all, fields(player.id = %token.player_id, token.family = %token.family_id))]
    async fn insert_refresh_token(&self, token: NewRefreshToken) -> StoreResult<()> {
        insert_token(&self.pool, &token, token.family_id, token.player_id).await
    }

    #[instrument(skip_all)]
    async fn rotate_refresh_token(
        &self,
        presented_hash: &[u8],
        next: NewRefreshToken,
        now: OffsetDateTime,
    ) -> StoreResult<Rotation> {
        let now_text = encode_time(now)?;
        let now = to_stored(now)?;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let row: Option<TokenRow> = sqlx::query_as(
            "SELECT family_id, player_id, expires_at, used_at, revoked_at \
             FROM refresh_tokens WHERE token_hash = ?1",
        )
        .bind(presented_hash)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(Rotation::Unknown);
        };
        let state = token_state(
            decode_opt_time(row.used_at)?,
            decode_opt_time(row.revoked_at)?,
            decode_time(&row.expires_at)?,
            now,
        );
        match state {
            TokenState::Expired => Ok(Rotation::Expired),
            TokenState::Spent => {
                sqlx::query(
                    "UPDATE refresh_tokens SET revoked_at = ?1 \
                     WHERE family_id = ?2 AND revoked_at IS NULL",
                )
                .bind(&now_text)
                .bind(row.family_id)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                tracing::debug!(player.id = %row.player_id, token.family = %row.family_id,
                    "refresh token presented again; family revoked");
                Ok(Rotation::Reused {
                    player_id: row.player_id,
                    family_id: row.family_id,
                })
            }
            TokenState::Live => {
                sqlx::query("UPDATE refresh_tokens SET used_at = ?1 WHERE token_hash = ?2")
                    .bind(&now_text)
                    .bind(presented_hash)
                    .execute(&mut *tx)
                    .await?;
                insert_token(&mut *tx, &next, row.family_id, row.player_id).await?;
                tx.commit().await?;
                Ok(Rotation::Rotated {
                    player_id: row.player_id,
                })
            }
        }
    }

    #[instrument(skip_all)]
    async fn revoke_refresh_family(
        &self,
        token_hash: &[u8],
        now: OffsetDateTime,
    ) -> StoreResult<Option<Uuid>> {
        let now_text = encode_time(now)?;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let row: Option<(Uuid, Uuid)> =
            sqlx::query_as("SELECT family_id, player_id FROM refresh_tokens WHERE token_hash = ?1")
                .bind(token_hash)
                .fetch_optional(&mut *tx)
                .await?;
        let Some((family_id, player_id)) = row else {
            return Ok(None);
        };
        sqlx::query(
            "UPDATE refresh_tokens SET revoked_at = ?1 \
             WHERE family_id = ?2 AND revoked_at IS NULL",
        )
        .bind(&now_text)
        .bind(family_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(player_id))
    }

    #[instrument(skip(self))]
    async fn revoke_all_refresh_tokens(
        &self,
        player_id: Uuid,
        now: OffsetDateTime,
    ) -> StoreResult<u64> {
        let done = sqlx::query(
            "UPDATE refresh_tokens SET revoked_at = ?1 \
             WHERE player_id = ?2 AND revoked_at IS NULL",
        )
        .bind(encode_time(now)?)
        .bind(player_id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    #[instrument(skip(self))]
    async fn matchmaking_preferences(
        &self,
        player_id: Uuid,
    ) -> StoreResult<Option<MatchmakingPreferences>> {
        let row: Option<(String, String)> = sqlx::query_as(
            "SELECT regions, modes FROM matchmaking_preferences WHERE player_id = ?1",
        )
        .bind(player_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|(regions, modes)| decode_preferences(player_id, &regions, &modes))
            .transpose()
    }

    #[instrument(skip(self, prefs))]
    async fn set_matchmaking_preferences(
        &self,
        player_id: Uuid,
        prefs: &MatchmakingPreferences,
        now: OffsetDateTime,
    ) -> StoreResult<()> {
        let (regions, modes) = encode_preferences(prefs);
        sqlx::query(
            "INSERT INTO matchmaking_preferences (player_id, regions, modes, updated_at) \
             VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (player_id) DO UPDATE SET regions = excluded.regions, \
             modes = excluded.modes, updated_at = excluded.updated_at",
        )
        .bind(player_id)
        .bind(regions)
        .bind(modes)
        .bind(encode_time(now)?)
        .execute(&self.pool)
        .await
        .map_err(classify_player_write)?;
        Ok(())
    }
}

async fn insert_token<'e, E>(
    executor: E,
    token: &NewRefreshToken,
    family_id: Uuid,
    player_id: Uuid,
) -> StoreResult<()>
where
    E: sqlx::SqliteExecutor<'e>,
{
    sqlx::query(
        "INSERT INTO refresh_tokens \
         (id, family_id, player_id, token_hash, created_at, expires_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )
    .bind(token.id)
    .bind(family_id)
    .bind(player_id)
    .bind(&token.token_hash)
    .bind(encode_time(token.created_at)?)
    .bind(encode_time(token.expires_at)?)
    .execute(executor)
    .await
    .map_err(classify)?;
    Ok(())
}
