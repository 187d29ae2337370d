//! The embedded backend: one SQLite file in WAL mode with `synchronous=FULL`, so every write
//! acknowledged by a `Store` method survives a crash or power loss.
//!
//! The queries are shared (`queries.rs`); this file owns the connection setup and SQLite's side
//! of the [`Dialect`] seam:
//! - Every transaction that reads and then writes starts with `BEGIN IMMEDIATE`: it takes the
//!   write lock up front and waits (busy timeout) for it, instead of upgrading a read lock later
//!   and failing with `SQLITE_BUSY` under concurrency. That one database-wide lock is also what
//!   makes [`crate::Store::rotate_refresh_token`] atomic here, so SQLite needs no row locks.
//! - Column encodings (see `migrations/sqlite`): timestamps as fixed-width UTC text with
//!   microseconds (sorts as text, round-trips exactly); sqlx already stores UUIDs as 16-byte
//!   BLOBs and booleans as 0/1.

use std::path::Path;
use std::str::FromStr as _;
use std::time::Duration;

use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteArgumentsBuffer, SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous, SqliteTypeInfo, SqliteValueRef,
};
use sqlx::{Decode, Encode, Sqlite, Type};
use time::format_description::BorrowedFormatItem;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime};
use tracing::instrument;

use crate::dialect::{Dialect, Timestamp, sqlx_plumbing};
use crate::queries::Backend;
use crate::{StoreError, StoreResult};

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

/// How long a connection waits for another one's write lock before giving up with `SQLITE_BUSY`.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// SQLite has one writer at a time; a few connections are enough for concurrent readers.
const MAX_CONNECTIONS: u32 = 4;

/// The [`crate::Store`] on SQLite.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl Backend for SqliteStore {
    type Db = Sqlite;
    fn pool(&self) -> &SqlitePool {
        &self.pool
    }
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
    /// and gone on [`crate::Store::close`] or drop. For tests; nothing is durable.
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

impl Dialect for Sqlite {
    const BACKEND: &'static str = "sqlite";
    const BEGIN_WRITE: &'static str = "BEGIN IMMEDIATE";
    /// SQLite has no row locks; `BEGIN IMMEDIATE` already holds the database's one write lock.
    const ROW_LOCK: &'static str = "";
    const SHARE_LOCK: &'static str = "";
    sqlx_plumbing!();
}

/// `2026-11-23T20:21:50.123456Z`: fixed width, so text order is time order.
const TIMESTAMP_FORMAT: &[BorrowedFormatItem<'_>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");

impl Type<Sqlite> for Timestamp {
    fn type_info() -> SqliteTypeInfo {
        <str as Type<Sqlite>>::type_info()
    }
}

impl Encode<'_, Sqlite> for Timestamp {
    fn encode_by_ref(&self, buf: &mut SqliteArgumentsBuffer) -> Result<IsNull, BoxDynError> {
        Encode::<Sqlite>::encode(self.get().format(TIMESTAMP_FORMAT)?, buf)
    }
}

impl Decode<'_, Sqlite> for Timestamp {
    fn decode(value: SqliteValueRef<'_>) -> Result<Self, BoxDynError> {
        let raw = <&str as Decode<Sqlite>>::decode(value)?;
        let parsed = PrimitiveDateTime::parse(raw, TIMESTAMP_FORMAT)
            .map(PrimitiveDateTime::assume_utc)
            // Anything else RFC 3339 (written by hand or by sqlx's own encoder) is still accepted.
            .or_else(|_| OffsetDateTime::parse(raw, &Rfc3339))
            .map_err(|e| StoreError::Corrupt(format!("timestamp {raw:?}: {e}")))?;
        Ok(Timestamp::new(parsed)?)
    }
}
