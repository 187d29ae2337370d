//! A write that waited out SQLite's lock is load, not a fault: `StoreError::is_busy` says so,
//! and the edge answers 503 instead of 500.

use std::time::Duration;

use sqlx::Connection as _;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use versus_store::StoreError;

#[tokio::test]
async fn a_write_that_waited_out_sqlites_lock_is_busy() {
    let dir = tempfile::tempdir().unwrap();
    let options = SqliteConnectOptions::new()
        .filename(dir.path().join("busy.db"))
        .create_if_missing(true)
        .busy_timeout(Duration::ZERO);
    let mut holder = SqliteConnection::connect_with(&options).await.unwrap();
    sqlx::query("CREATE TABLE t (x INTEGER)")
        .execute(&mut holder)
        .await
        .unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut holder)
        .await
        .unwrap();
    let mut waiter = SqliteConnection::connect_with(&options).await.unwrap();
    let err = sqlx::query("INSERT INTO t VALUES (1)")
        .execute(&mut waiter)
        .await
        .unwrap_err();
    let err = StoreError::Database(err);
    assert!(err.is_busy(), "{err}");
    assert!(!StoreError::UnknownPlayer.is_busy());
    assert!(!StoreError::Corrupt("x".into()).is_busy());
}
