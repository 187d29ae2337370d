//! Admin accounts, bans and the record of admin actions: the types the [`crate::Store`] methods
//! take and return, and their queries (written once for both dialects, like `queries.rs`).
//!
//! Every change an admin makes is stored in the same transaction as its record, so the record
//! never claims what did not happen, nor misses what did.

use sqlx::types::Json;
use sqlx::{AssertSqlSafe, Pool};
use time::OffsetDateTime;
use uuid::Uuid;
use versus_core::account::Username;

use crate::dialect::{Dialect, Session, Timestamp, select_for_update, sql};
use crate::record::{PLAYER_COLUMNS, PlayerRow};
use crate::sessions::Cursor;
use crate::{Player, StoreResult};

/// One admin action, as recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct AdminAction {
    pub id: Uuid,
    /// `None` for the server's own command line (`versus admin grant`).
    pub admin_id: Option<Uuid>,
    /// e.g. `ban`, `unban`, `grant_admin`, `announce`.
    pub action: String,
    /// What it acted on (a player id, a queue), when anything.
    pub target: Option<String>,
    pub details: serde_json::Value,
    pub at: OffsetDateTime,
}

pub(crate) async fn insert_action(on: &mut impl Session, action: &AdminAction) -> StoreResult<()> {
    sql(
        "INSERT INTO admin_actions (id, admin_id, action, target, details, at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(action.id)
    .bind(action.admin_id)
    .bind(action.action.as_str())
    .bind(action.target.as_deref())
    .bind(Json(&action.details))
    .bind(Timestamp::new(action.at)?)
    .execute(on)
    .await
    .map_err(crate::record::classify)?;
    Ok(())
}

pub(crate) async fn record<D: Dialect>(pool: &Pool<D>, action: &AdminAction) -> StoreResult<()> {
    let mut db = pool.acquire().await?;
    insert_action(&mut db, action).await
}

pub(crate) async fn set_admin<D: Dialect>(
    pool: &Pool<D>,
    username: &Username,
    admin: bool,
    action: &AdminAction,
) -> StoreResult<Option<Player>> {
    let at = Timestamp::new(action.at)?;
    let mut tx = pool.begin_with(D::BEGIN_WRITE).await?;
    let row: Option<PlayerRow> = sql(AssertSqlSafe(format!(
        "UPDATE players SET admin = $1, updated_at = $2 WHERE username_key = $3 \
         RETURNING {PLAYER_COLUMNS}"
    )))
    .bind(admin)
    .bind(at)
    .bind(username.key())
    .fetch_optional(&mut tx)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let player = row.into_player()?;
    let action = AdminAction {
        target: Some(player.id.to_string()),
        ..action.clone()
    };
    insert_action(&mut tx, &action).await?;
    tx.commit().await?;
    Ok(Some(player))
}

pub(crate) async fn set_banned<D: Dialect>(
    pool: &Pool<D>,
    player_id: Uuid,
    banned: bool,
    action: &AdminAction,
) -> StoreResult<Option<Player>> {
    let at = Timestamp::new(action.at)?;
    let mut tx = pool.begin_with(D::BEGIN_WRITE).await?;
    // The lock refresh-token rotation takes: no token can be issued past the ban.
    let exists: Option<(Uuid,)> = select_for_update("SELECT id FROM players WHERE id = $1")
        .bind(player_id)
        .fetch_optional(&mut tx)
        .await?;
    if exists.is_none() {
        return Ok(None);
    }
    let row: Option<PlayerRow> = sql(AssertSqlSafe(format!(
        "UPDATE players SET banned = $1, updated_at = $2 WHERE id = $3 RETURNING {PLAYER_COLUMNS}"
    )))
    .bind(banned)
    .bind(at)
    .bind(player_id)
    .fetch_optional(&mut tx)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    if banned {
        sql(
            "UPDATE refresh_tokens SET revoked_at = $1 WHERE player_id = $2 AND revoked_at IS NULL",
        )
        .bind(at)
        .bind(player_id)
        .execute(&mut tx)
        .await?;
    }
    insert_action(&mut tx, action).await?;
    tx.commit().await?;
    row.into_player().map(Some)
}

#[derive(sqlx::FromRow)]
struct ActionRow {
    id: Uuid,
    admin_id: Option<Uuid>,
    action: String,
    target: Option<String>,
    details: Json<serde_json::Value>,
    at: Timestamp,
}

pub(crate) async fn actions<D: Dialect>(
    pool: &Pool<D>,
    before: Option<Cursor>,
    limit: u32,
) -> StoreResult<Vec<AdminAction>> {
    let after_cursor = if before.is_some() {
        "WHERE (at, id) < ($1, $2)"
    } else {
        ""
    };
    let mut db = pool.acquire().await?;
    let mut select = sql(AssertSqlSafe(format!(
        "SELECT id, admin_id, action, target, details, at FROM admin_actions {after_cursor} \
         ORDER BY at DESC, id DESC LIMIT {limit}"
    )));
    if let Some(cursor) = before {
        select = select.bind(Timestamp::new(cursor.at)?).bind(cursor.id);
    }
    let rows: Vec<ActionRow> = select.fetch_all(&mut db).await?;
    Ok(rows
        .into_iter()
        .map(|row| AdminAction {
            id: row.id,
            admin_id: row.admin_id,
            action: row.action,
            target: row.target,
            details: row.details.0,
            at: row.at.get(),
        })
        .collect())
}
