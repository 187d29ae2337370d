//! The seam between the shared queries (`queries.rs`) and the two backends: what a SQL dialect
//! must say for one query text to run on both, and the small statement API the queries use.
//!
//! Both dialects accept `$1, $2, …` placeholders (sqlx binds SQLite's `$N` by number), the same
//! `INSERT … ON CONFLICT … DO UPDATE SET … = excluded.…` upsert and `RETURNING`, so query text
//! needs no rendering. What differs lives in [`Dialect`] and in the column types' `Encode` /
//! `Decode` impls, written next to each backend:
//! - how a read-then-write transaction starts ([`Dialect::BEGIN_WRITE`]) and how it locks the
//!   rows it depends on ([`Dialect::ROW_LOCK`]);
//! - column encodings: [`Timestamp`] (fixed-width UTC text in SQLite, `timestamptz` in
//!   PostgreSQL); UUIDs, booleans and `sqlx::types::Json` are already encoded per backend by sqlx.
//!
//! Why [`Param`], [`Record`] and the plumbing methods: generic code cannot prove
//! `Uuid: Encode<D>` from `D: Dialect` (Rust only implies bounds on `D` itself), so it would
//! need a where-clause listing every column type and row type, repeated on every generic item
//! and grown by every new table. Instead `Param` and `Record` ask for both backends at once,
//! and each concrete `Dialect` impl ([`sqlx_plumbing!`]) turns that into its own bound. A new
//! column type or row struct needs no new bound anywhere: it is a `Param` / `Record` as soon as
//! sqlx handles it on both backends.

use sqlx::pool::PoolConnection;
use sqlx::postgres::PgRow;
use sqlx::query::Query;
use sqlx::sqlite::SqliteRow;
use sqlx::{
    Database, Encode, Executor, FromRow, IntoArguments, Postgres, SqlSafeStr, Sqlite, Transaction,
    Type,
};
use time::OffsetDateTime;

use crate::record::to_stored;
use crate::{StoreError, StoreResult};

/// What one SQL dialect contributes. Implemented by `sqlx::Sqlite` (in `sqlite.rs`) and
/// `sqlx::Postgres` (in `postgres.rs`).
pub(crate) trait Dialect: Database<Arguments: IntoArguments<Self>> {
    /// `"sqlite"` or `"postgres"`, as [`crate::Store::backend`] reports it.
    const BACKEND: &'static str;

    /// How a transaction that will read and then write begins: it must serialise against every
    /// other such transaction on the rows it locks.
    const BEGIN_WRITE: &'static str;

    /// Appended to a `SELECT` by [`select_for_update`]: locks the selected rows until the
    /// transaction ends, so a concurrent read-then-write of the same rows waits for this one.
    const ROW_LOCK: &'static str;

    /// Appended to a `SELECT` to share-lock its rows: other share locks pass, [`Self::ROW_LOCK`]
    /// waits (and is waited for).
    const SHARE_LOCK: &'static str;

    // Plumbing, the same text in every impl: [`sqlx_plumbing!`].

    /// The identity: generic code cannot name the `Executor` impl of `&mut Self::Connection`.
    fn executor(conn: &mut Self::Connection) -> impl Executor<'_, Database = Self>;

    /// Binds the next `$N`.
    fn bind<'q, T: Param<'q>>(
        query: Query<'static, Self, Self::Arguments>,
        value: T,
    ) -> Query<'static, Self, Self::Arguments>;

    fn decode<R: Record>(row: &Self::Row) -> sqlx::Result<R>;

    fn rows_affected(done: &Self::QueryResult) -> u64;
}

/// The plumbing methods of a [`Dialect`] impl. Their text is the same for every backend, but
/// they cannot be default methods: each body relies on a bound (`&mut SqliteConnection:
/// Executor`, `T: Encode<Sqlite>`, …) that only holds once `Self` is a concrete database.
macro_rules! sqlx_plumbing {
    () => {
        fn executor(
            conn: &mut <Self as ::sqlx::Database>::Connection,
        ) -> impl ::sqlx::Executor<'_, Database = Self> {
            conn
        }

        fn bind<'q, T: $crate::dialect::Param<'q>>(
            query: ::sqlx::query::Query<'static, Self, <Self as ::sqlx::Database>::Arguments>,
            value: T,
        ) -> ::sqlx::query::Query<'static, Self, <Self as ::sqlx::Database>::Arguments> {
            query.bind(value)
        }

        fn decode<R: $crate::dialect::Record>(
            row: &<Self as ::sqlx::Database>::Row,
        ) -> ::sqlx::Result<R> {
            ::sqlx::FromRow::from_row(row)
        }

        fn rows_affected(done: &<Self as ::sqlx::Database>::QueryResult) -> u64 {
            done.rows_affected()
        }
    };
}
pub(crate) use sqlx_plumbing;

/// A value both backends can bind as a parameter (`'q`: how long the value borrows, e.g. a
/// `&str`; it is encoded when bound).
pub(crate) trait Param<'q>:
    Encode<'q, Sqlite> + Type<Sqlite> + Encode<'q, Postgres> + Type<Postgres> + Send
{
}

impl<'q, T> Param<'q> for T where
    T: Encode<'q, Sqlite> + Type<Sqlite> + Encode<'q, Postgres> + Type<Postgres> + Send
{
}

/// A row both backends can decode: a `#[derive(sqlx::FromRow)]` struct, or a tuple, of
/// column types both backends decode.
pub(crate) trait Record:
    for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send
{
}

impl<T> Record for T where T: for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send {}

/// A timestamp column. Holds the value [`crate::stored_timestamp`] makes of an instant, so what
/// is bound is exactly what is read back. Each backend implements its encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Timestamp(OffsetDateTime);

impl Timestamp {
    /// An instant outside the storable range is an encode error, as the driver would report it.
    pub fn new(t: OffsetDateTime) -> StoreResult<Self> {
        to_stored(t).map(Self)
    }

    pub fn get(self) -> OffsetDateTime {
        self.0
    }
}

/// Where statements run: a pooled connection (one statement is its own unit of work) or a
/// transaction begun with [`Dialect::BEGIN_WRITE`].
pub(crate) trait Session: Send {
    type Db: Dialect;
    fn connection(&mut self) -> &mut <Self::Db as Database>::Connection;
}

impl<D: Dialect> Session for PoolConnection<D> {
    type Db = D;
    fn connection(&mut self) -> &mut D::Connection {
        self
    }
}

impl<D: Dialect> Session for Transaction<'_, D> {
    type Db = D;
    fn connection(&mut self) -> &mut D::Connection {
        self
    }
}

/// One SQL statement and its bound parameters; the dialect is inferred from the session it
/// runs on.
pub(crate) struct Statement<D: Dialect> {
    query: Query<'static, D, D::Arguments>,
}

/// A statement from query text with `$N` placeholders.
pub(crate) fn sql<D: Dialect>(text: impl SqlSafeStr) -> Statement<D> {
    Statement {
        query: sqlx::query(text),
    }
}

/// `select` followed by the dialect's row lock; run it inside a [`Dialect::BEGIN_WRITE`]
/// transaction.
pub(crate) fn select_for_update<D: Dialect>(select: &str) -> Statement<D> {
    sql(sqlx::AssertSqlSafe(format!("{select} {}", D::ROW_LOCK)))
}

impl<D: Dialect> Statement<D> {
    pub fn bind<'q>(self, value: impl Param<'q>) -> Self {
        Self {
            query: D::bind(self.query, value),
        }
    }

    /// Runs the statement; returns how many rows it changed.
    pub async fn execute(self, on: &mut impl Session<Db = D>) -> StoreResult<u64> {
        let done = self.query.execute(D::executor(on.connection())).await?;
        Ok(D::rows_affected(&done))
    }

    pub async fn fetch_optional<R: Record>(
        self,
        on: &mut impl Session<Db = D>,
    ) -> StoreResult<Option<R>> {
        let row = self
            .query
            .fetch_optional(D::executor(on.connection()))
            .await?;
        row.map(|row| decoded(D::decode(&row))).transpose()
    }

    /// Hands each row to `each` as it arrives, without holding the result set: for reads of
    /// a million rows whose caller keeps only a little of each.
    pub async fn for_each<R: Record>(
        self,
        on: &mut impl Session<Db = D>,
        mut each: impl FnMut(R),
    ) -> StoreResult<()> {
        use futures::TryStreamExt as _;
        let mut rows = self.query.fetch(D::executor(on.connection()));
        while let Some(row) = rows.try_next().await? {
            each(decoded(D::decode(&row))?);
        }
        Ok(())
    }

    pub async fn fetch_all<R: Record>(self, on: &mut impl Session<Db = D>) -> StoreResult<Vec<R>> {
        let rows = self.query.fetch_all(D::executor(on.connection())).await?;
        rows.iter().map(|row| decoded(D::decode(row))).collect()
    }
}

/// A column type's `Decode` reports a stored value that no longer parses by returning a
/// [`StoreError`] (e.g. `Corrupt`); sqlx wraps it, this unwraps it. Any other failure stays a
/// database error.
fn decoded<R>(result: sqlx::Result<R>) -> StoreResult<R> {
    result.map_err(|err| match err {
        sqlx::Error::ColumnDecode { index, source } => match source.downcast::<StoreError>() {
            Ok(store_error) => *store_error,
            Err(source) => StoreError::Database(sqlx::Error::ColumnDecode { index, source }),
        },
        other => StoreError::Database(other),
    })
}
