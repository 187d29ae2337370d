//! The scale-out backend: PostgreSQL through a connection pool.
//!
//! The queries are shared (`queries.rs`); this file owns the connection setup and PostgreSQL's
//! side of the [`Dialect`] seam:
//! - Read-then-write transactions are plain `BEGIN` (READ COMMITTED) and lock the rows their
//!   decision depends on with `FOR NO KEY UPDATE`, which does not block foreign-key checks.
//!   Refresh-token changes all lock the owning `players` row first (see `queries.rs`).
//! - Timestamps are `timestamptz` (microseconds); [`Timestamp`] is already truncated to
//!   microseconds, so a read returns exactly what was written.

use std::time::Duration;

use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgArgumentBuffer, PgPool, PgPoolOptions, PgTypeInfo, PgValueRef};
use sqlx::{Decode, Encode, Postgres, Type};
use time::OffsetDateTime;
use tracing::instrument;

use crate::StoreResult;
use crate::dialect::{Dialect, Timestamp, sqlx_plumbing};
use crate::queries::Backend;

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

/// How long acquiring a pooled connection may take before the call fails.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// The [`crate::Store`] on PostgreSQL.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
}

impl Backend for PostgresStore {
    type Db = Postgres;
    fn pool(&self) -> &PgPool {
        &self.pool
    }
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

impl Dialect for Postgres {
    const BACKEND: &'static str = "postgres";
    const BEGIN_WRITE: &'static str = "BEGIN";
    const ROW_LOCK: &'static str = "FOR NO KEY UPDATE";
    const SHARE_LOCK: &'static str = "FOR SHARE";
    sqlx_plumbing!();
}

impl Type<Postgres> for Timestamp {
    fn type_info() -> PgTypeInfo {
        <OffsetDateTime as Type<Postgres>>::type_info()
    }
}

impl Encode<'_, Postgres> for Timestamp {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        Encode::<Postgres>::encode(self.get(), buf)
    }
}

impl Decode<'_, Postgres> for Timestamp {
    fn decode(value: PgValueRef<'_>) -> Result<Self, BoxDynError> {
        Ok(Timestamp::new(
            <OffsetDateTime as Decode<Postgres>>::decode(value)?,
        )?)
    }
}
