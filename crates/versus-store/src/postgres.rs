//! The scale-out backend: PostgreSQL through a connection pool.
//!
//! Refresh-token changes are serialised per player: each such transaction first locks the
//! owning `players` row (`FOR NO KEY UPDATE`, which does not block foreign-key checks), then
//! reads the token in a fresh statement. So of two concurrent rotations of one token the second
//! waits, then sees it spent and takes the re-use path; and a logout racing a rotation cannot
//! leave the freshly issued token out of the revocation. One lock per transaction, so no
//! deadlocks. Timestamps are `timestamptz` (microseconds); values are truncated to
//! microseconds before they are bound so a read returns exactly what was written.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgPool, PgPoolOptions};
use time::OffsetDateTime;
use tracing::instrument;
use uuid::Uuid;
use versus_core::account::Username;

use crate::record::{
    PlayerRecord, TokenState, classify, classify_player_write, decode_preferences,
    encode_preferences, to_stored, token_state,
};
use crate::{
    Credentials, MatchmakingPreferences, NewPlayer, NewRefreshToken, Player, PlayerPatch, Rotation,
    Store, StoreResult,
};

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

/// How long acquiring a pooled connection may take before the call fails.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// The [`Store`] on PostgreSQL.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    /// Connects a pool of at most `max_connections` (at least 1) to `url` and applies pending
    /// migrations (sqlx holds an advisory lock while migrating, so concurrent starts are safe).
    /// The URL is not logged: it may carry a password.
    #[instrument(skip(url))]
    pub async fn connect(url: &str, max_connections: u32) -> StoreResult<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect(url)
            .await?;
        if let Err(e) = MIGRATOR.run(&pool).await {
            pool.close().await;
            return Err(e.into());
        }
        Ok(Self { pool })
    }

    /// The underlying pool. Prefer adding a `Store` method.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

#[derive(sqlx::FromRow)]
struct PlayerRow {
    id: Uuid,
    username: String,
    display_name: String,
    email: Option<String>,
    region: Option<String>,
    banned: bool,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
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
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
        .into_player()
    }
}

#[derive(sqlx::FromRow)]
struct TokenRow {
    family_id: Uuid,
    player_id: Uuid,
    expires_at: OffsetDateTime,
    used_at: Option<OffsetDateTime>,
    revoked_at: Option<OffsetDateTime>,
}

const PLAYER_COLUMNS: &str =
    "id, username, display_name, email, region, banned, created_at, updated_at";

#[async_trait]
impl Store for PostgresStore {
    fn backend(&self) -> &'static str {
        "postgres"
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
        sqlx::query(
            "INSERT INTO players \
             (id, username, username_key, display_name, password_hash, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $6)",
        )
        .bind(player.id)
        .bind(player.username.as_str())
        .bind(player.username.key())
        .bind(player.display_name.as_str())
        .bind(&player.password_hash)
        .bind(created_at)
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
            "SELECT {PLAYER_COLUMNS} FROM players WHERE id = $1"
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
            "SELECT {PLAYER_COLUMNS}, password_hash FROM players WHERE username_key = $1"
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
        let row: Option<PlayerRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "UPDATE players SET \
                 display_name = COALESCE($1, display_name), \
                 region = CASE WHEN $2 THEN $3 ELSE region END, \
                 updated_at = $4 \
             WHERE id = $5 \
             RETURNING {PLAYER_COLUMNS}"
        )))
        .bind(display_name)
        .bind(set_region)
        .bind(region)
        .bind(to_stored(now)?)
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
        let now = to_stored(now)?;
        let mut tx = self.pool.begin().await?;
        if lock_token_owner(&mut tx, presented_hash).await?.is_none() {
            return Ok(Rotation::Unknown);
        }
        // A new statement under READ COMMITTED: it sees whatever the previous holder of the
        // lock committed, e.g. `used_at` set by the winner of a race.
        let row: Option<TokenRow> = sqlx::query_as(
            "SELECT family_id, player_id, expires_at, used_at, revoked_at \
             FROM refresh_tokens WHERE token_hash = $1",
        )
        .bind(presented_hash)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(Rotation::Unknown);
        };
        match token_state(row.used_at, row.revoked_at, row.expires_at, now) {
            TokenState::Expired => Ok(Rotation::Expired),
            TokenState::Spent => {
                sqlx::query(
                    "UPDATE refresh_tokens SET revoked_at = $1 \
                     WHERE family_id = $2 AND revoked_at IS NULL",
                )
                .bind(now)
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
                sqlx::query("UPDATE refresh_tokens SET used_at = $1 WHERE token_hash = $2")
                    .bind(now)
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
        let now = to_stored(now)?;
        let mut tx = self.pool.begin().await?;
        if lock_token_owner(&mut tx, token_hash).await?.is_none() {
            return Ok(None);
        }
        let row: Option<(Uuid, Uuid)> =
            sqlx::query_as("SELECT family_id, player_id FROM refresh_tokens WHERE token_hash = $1")
                .bind(token_hash)
                .fetch_optional(&mut *tx)
                .await?;
        let Some((family_id, player_id)) = row else {
            return Ok(None);
        };
        sqlx::query(
            "UPDATE refresh_tokens SET revoked_at = $1 \
             WHERE family_id = $2 AND revoked_at IS NULL",
        )
        .bind(now)
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
        let now = to_stored(now)?;
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT 1 FROM players WHERE id = $1 FOR NO KEY UPDATE")
            .bind(player_id)
            .execute(&mut *tx)
            .await?;
        let done = sqlx::query(
            "UPDATE refresh_tokens SET revoked_at = $1 \
             WHERE player_id = $2 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(player_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }

    #[instrument(skip(self))]
    async fn matchmaking_preferences(
        &self,
        player_id: Uuid,
    ) -> StoreResult<Option<MatchmakingPreferences>> {
        let row: Option<(String, String)> = sqlx::query_as(
            "SELECT regions::text, modes::text FROM matchmaking_preferences WHERE player_id = $1",
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
             VALUES ($1, $2::jsonb, $3::jsonb, $4) \
             ON CONFLICT (player_id) DO UPDATE SET regions = excluded.regions, \
             modes = excluded.modes, updated_at = excluded.updated_at",
        )
        .bind(player_id)
        .bind(regions)
        .bind(modes)
        .bind(to_stored(now)?)
        .execute(&self.pool)
        .await
        .map_err(classify_player_write)?;
        Ok(())
    }
}

/// Locks the `players` row owning the token (see the module docs); `None` when the token is
/// unknown.
async fn lock_token_owner(
    tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
    token_hash: &[u8],
) -> StoreResult<Option<Uuid>> {
    let owner: Option<Uuid> = sqlx::query_scalar(
        "SELECT p.id FROM players p JOIN refresh_tokens t ON t.player_id = p.id \
         WHERE t.token_hash = $1 FOR NO KEY UPDATE OF p",
    )
    .bind(token_hash)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(owner)
}

async fn insert_token<'e, E>(
    executor: E,
    token: &NewRefreshToken,
    family_id: Uuid,
    player_id: Uuid,
) -> StoreResult<()>
where
    E: sqlx::PgExecutor<'e>,
{
    sqlx::query(
        "INSERT INTO refresh_tokens \
         (id, family_id, player_id, token_hash, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(token.id)
    .bind(family_id)
    .bind(player_id)
    .bind(&token.token_hash)
    .bind(to_stored(token.created_at)?)
    .bind(to_stored(token.expires_at)?)
    .execute(executor)
    .await
    .map_err(classify)?;
    Ok(())
}
