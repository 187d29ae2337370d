//! Test helpers (crate feature `testing`): a throw-away PostgreSQL database and a temp-file
//! SQLite store per test, for this crate's contract tests and for integration tests elsewhere.
//!
//! ```ignore
//! use versus_store::testing::{postgres_test_db, sqlite_test_store};
//!
//! let (sqlite, _dir) = sqlite_test_store().await; // keep `_dir` alive while the store is used
//!
//! if let Some(db) = postgres_test_db().await {   // `None`: skipped (reported on stderr)
//!     let store = db.store().await;              // or PostgresStore::connect(&db.url, n)
//!     // ...
//!     store.close().await;
//!     db.drop().await;                           // drops the database
//! }
//! ```
//!
//! Environment:
//! - `VERSUS_TEST_POSTGRES_URL`: an admin URL for a role allowed to create databases; default
//!   [`DEFAULT_POSTGRES_URL`].
//! - `CI=true` or `VERSUS_REQUIRE_BACKENDS=1`: an unreachable PostgreSQL makes
//!   [`postgres_test_db`] panic instead of skipping, so CI cannot pass with the suite unrun.
//!
//! Databases are named `versus_test_<uuid v7>`. One left behind by a panicking test is dropped
//! by a later [`postgres_test_db`] call once it is an hour old (the v7 UUID carries its birth
//! time), so they do not pile up.

use std::path::PathBuf;
use std::time::Duration;

use sqlx::{AssertSqlSafe, Connection as _, PgConnection};
use uuid::Uuid;

use crate::{PostgresStore, SqliteStore};

/// Used when `VERSUS_TEST_POSTGRES_URL` is not set.
pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
/// The file name [`sqlite_test_store`] uses inside its temporary directory.
pub const SQLITE_TEST_FILE: &str = "versus.sqlite3";

const PREFIX: &str = "versus_test_";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const STALE_AFTER: Duration = Duration::from_secs(60 * 60);

/// A fresh, migrated-on-connect PostgreSQL database of its own for one test.
#[derive(Debug)]
#[must_use = "call `drop().await` when done, or the database is left behind for an hour"]
pub struct TestDatabase {
    /// Connection URL of the new database.
    pub url: String,
    /// Its name, `versus_test_<uuid>`.
    pub name: String,
    /// The admin URL it was created through.
    pub admin_url: String,
}

impl TestDatabase {
    /// A [`PostgresStore`] on this database (pool of 8), migrations applied. Panics on failure.
    pub async fn store(&self) -> PostgresStore {
        PostgresStore::connect(&self.url, 8)
            .await
            .unwrap_or_else(|e| panic!("connecting to test database {}: {e}", self.name))
    }

    /// Drops the database, terminating any connection still open to it. A failure is reported
    /// on stderr, not raised: the test itself has already passed or failed.
    pub async fn drop(self) {
        let result = async {
            let mut admin = PgConnection::connect(&self.admin_url).await?;
            drop_database(&mut admin, &self.name).await?;
            admin.close().await
        }
        .await;
        if let Err(e) = result {
            eprintln!("warning: could not drop test database {}: {e}", self.name);
        }
    }
}

/// Creates a fresh database on the server at `VERSUS_TEST_POSTGRES_URL`.
///
/// When the server cannot be reached: panics if `CI=true` or `VERSUS_REQUIRE_BACKENDS=1`,
/// otherwise prints `SKIPPED (postgres unreachable at …): <why>` to stderr and returns `None`.
/// Panics if the server is reachable but the database cannot be created.
pub async fn postgres_test_db() -> Option<TestDatabase> {
    let admin_url =
        std::env::var("VERSUS_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_POSTGRES_URL.into());
    let mut admin =
        match tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect(&admin_url)).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => return unreachable(&admin_url, &e.to_string()),
            Err(_) => return unreachable(&admin_url, &format!("no answer in {CONNECT_TIMEOUT:?}")),
        };

    reap_stale_databases(&mut admin).await;

    let name = format!("{PREFIX}{}", Uuid::now_v7().simple());
    sqlx::query(AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .execute(&mut admin)
        .await
        .unwrap_or_else(|e| panic!("creating test database {name} at {admin_url}: {e}"));
    let _ = admin.close().await;

    Some(TestDatabase {
        url: with_database(&admin_url, &name),
        name,
        admin_url,
    })
}

/// A [`SqliteStore`] on a fresh file (`SQLITE_TEST_FILE`) in a new temporary directory. The
/// directory is deleted when the returned guard drops, so keep it alive as long as the store;
/// reopen the same file with `SqliteStore::open(&dir.path().join(SQLITE_TEST_FILE))`.
/// Panics on failure.
pub async fn sqlite_test_store() -> (SqliteStore, tempfile::TempDir) {
    let dir = tempfile::Builder::new()
        .prefix("versus-store-test-")
        .tempdir()
        .expect("creating a temporary directory");
    let store = SqliteStore::open(&sqlite_test_path(&dir))
        .await
        .expect("opening the SQLite test store");
    (store, dir)
}

/// Where [`sqlite_test_store`] put its database file.
pub fn sqlite_test_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join(SQLITE_TEST_FILE)
}

pub use crate::backends_required;

fn unreachable(admin_url: &str, why: &str) -> Option<TestDatabase> {
    crate::skip_unreachable("postgres", &redact(admin_url), why);
    None
}

async fn drop_database(admin: &mut PgConnection, name: &str) -> sqlx::Result<()> {
    sqlx::query(AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
    )))
    .execute(admin)
    .await
    .map(drop)
}

/// Drops `versus_test_*` databases whose v7 UUID is older than [`STALE_AFTER`]; best effort.
async fn reap_stale_databases(admin: &mut PgConnection) {
    let Ok(names) = sqlx::query_scalar::<_, String>(
        "SELECT datname FROM pg_database WHERE datname LIKE 'versus\\_test\\_%'",
    )
    .fetch_all(&mut *admin)
    .await
    else {
        return;
    };
    let now = std::time::SystemTime::now();
    for name in names {
        let Some(born) = name
            .strip_prefix(PREFIX)
            .and_then(|id| Uuid::try_parse(id).ok())
            .and_then(|id| id.get_timestamp())
        else {
            continue;
        };
        let (secs, nanos) = born.to_unix();
        let born = std::time::UNIX_EPOCH + Duration::new(secs, nanos);
        if now.duration_since(born).is_ok_and(|age| age > STALE_AFTER) {
            let _ = drop_database(admin, &name).await;
        }
    }
}

/// `url` with its database (path) replaced by `name`, query string kept.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| authority_start + i);
    let mut out = format!("{}/{name}", &base[..path_start]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let rest = &url[scheme_end..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => match rest[..at].split_once(':') {
            Some((user, _password)) => {
                format!("{}{user}:***{}", &url[..scheme_end], &rest[at..])
            }
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_is_replaced_in_urls() {
        let check = |url: &str, expected: &str| assert_eq!(with_database(url, "db"), expected);
        check(
            "postgres://postgres@127.0.0.1:5432/test",
            "postgres://postgres@127.0.0.1:5432/db",
        );
        check(
            "postgres://u:p@h/test?sslmode=disable",
            "postgres://u:p@h/db?sslmode=disable",
        );
        check("postgres://h:5432", "postgres://h:5432/db");
        check(
            "postgres://h?application_name=x",
            "postgres://h/db?application_name=x",
        );
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact("postgres://h/db"), "postgres://h/db");
    }
}
