//! Parties (issue 15): the [`crate::Store`] methods' types and queries, written once for both
//! dialects. A change is one transaction: the party row is locked, its members and invites are
//! read into a [`versus_core::party::Party`], the caller's closure applies one rule, and the
//! party is written back whole (it is a handful of rows) with its version bumped. A player in
//! two parties is impossible: a unique index on the member's id turns the second membership into
//! [`PartyError::AlreadyInParty`].

use std::collections::{BTreeMap, HashMap};

use sqlx::Pool;
use sqlx::types::Json;
use time::OffsetDateTime;
use uuid::Uuid;
use versus_core::matchmaking::PlayerId;
use versus_core::party::{Invite, Member, Party, PartyError, ReadyCheck};

use crate::dialect::{Dialect, Session, Timestamp, select_for_update, sql};
use crate::record::is_unique_violation;
use crate::{StoreError, StoreResult};

/// A party as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct PartyRecord {
    pub id: Uuid,
    /// The rules' state (members in join order, invites, the ready check).
    pub party: Party,
    pub join_code: String,
    pub max_size: usize,
    /// Bumped by every change: orders `party_update` events.
    pub version: u64,
    /// Round-trip latency per region each member gave with their ready answer.
    pub latencies: HashMap<Uuid, BTreeMap<String, u32>>,
    /// The queue and ticket of the party's latest queue join.
    pub ticket: Option<(String, Uuid)>,
    pub created_at: OffsetDateTime,
}

impl PartyRecord {
    pub fn leader(&self) -> Uuid {
        Uuid::from_u128(self.party.leader.0)
    }

    /// Members in join order.
    pub fn members(&self) -> Vec<Uuid> {
        (self.party.members.iter())
            .map(|m| Uuid::from_u128(m.player.0))
            .collect()
    }
}

/// One change to a party, decided under its lock. `Err` writes nothing.
pub type PartyFn<'a> = dyn FnMut(&mut PartyRecord) -> Result<(), PartyError> + Send + 'a;

fn millis(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

fn at(ms: i64) -> StoreResult<Timestamp> {
    let t = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .map_err(|e| StoreError::Corrupt(format!("party time {ms}: {e}")))?;
    Timestamp::new(t)
}

#[derive(sqlx::FromRow)]
struct PartyRow {
    id: Uuid,
    leader_id: Uuid,
    open: bool,
    join_code: String,
    max_size: i32,
    version: i64,
    ready_started_at: Option<Timestamp>,
    ready_deadline: Option<Timestamp>,
    ready_passed: bool,
    queue: Option<String>,
    ticket_id: Option<Uuid>,
    created_at: Timestamp,
}

#[derive(sqlx::FromRow)]
struct MemberRow {
    player_id: Uuid,
    joined_at: Timestamp,
    ready: Option<bool>,
    latencies: Json<BTreeMap<String, u32>>,
}

#[derive(sqlx::FromRow)]
struct InviteRow {
    player_id: Uuid,
    invited_by: Uuid,
    expires_at: Timestamp,
}

const PARTY_COLUMNS: &str = "id, leader_id, open, join_code, max_size, version, \
     ready_started_at, ready_deadline, ready_passed, queue, ticket_id, created_at";

async fn read(on: &mut impl Session, id: Uuid, lock: bool) -> StoreResult<Option<PartyRecord>> {
    let select = format!("SELECT {PARTY_COLUMNS} FROM parties WHERE id = $1");
    let row: Option<PartyRow> = if lock {
        select_for_update(&select)
            .bind(id)
            .fetch_optional(on)
            .await?
    } else {
        sql(sqlx::AssertSqlSafe(select))
            .bind(id)
            .fetch_optional(on)
            .await?
    };
    let Some(row) = row else { return Ok(None) };
    let members: Vec<MemberRow> = sql(
        "SELECT player_id, joined_at, ready, latencies FROM party_members \
         WHERE party_id = $1 ORDER BY position",
    )
    .bind(id)
    .fetch_all(on)
    .await?;
    let invites: Vec<InviteRow> = sql(
        "SELECT player_id, invited_by, expires_at FROM party_invites \
         WHERE party_id = $1 ORDER BY expires_at, player_id",
    )
    .bind(id)
    .fetch_all(on)
    .await?;
    let ready_check = match (row.ready_started_at, row.ready_deadline) {
        (Some(started), Some(deadline)) => Some(ReadyCheck {
            started_at: millis(started.get()),
            deadline: millis(deadline.get()),
            passed: row.ready_passed,
        }),
        _ => None,
    };
    let mut latencies = HashMap::new();
    let members = (members.into_iter())
        .map(|m| {
            latencies.insert(m.player_id, m.latencies.0);
            Member {
                player: PlayerId(m.player_id.as_u128()),
                joined_at: millis(m.joined_at.get()),
                ready: m.ready,
            }
        })
        .collect();
    Ok(Some(PartyRecord {
        id: row.id,
        party: Party {
            leader: PlayerId(row.leader_id.as_u128()),
            members,
            invites: (invites.into_iter())
                .map(|i| Invite {
                    player: PlayerId(i.player_id.as_u128()),
                    invited_by: PlayerId(i.invited_by.as_u128()),
                    expires_at: millis(i.expires_at.get()),
                })
                .collect(),
            open: row.open,
            ready_check,
        },
        join_code: row.join_code,
        max_size: usize::try_from(row.max_size).unwrap_or(1),
        version: u64::try_from(row.version).unwrap_or(0),
        latencies,
        ticket: row.queue.zip(row.ticket_id),
        created_at: row.created_at.get(),
    }))
}

/// Writes the party's members and invites (replacing what was there).
async fn write_rows(tx: &mut impl Session, record: &PartyRecord) -> StoreResult<()> {
    sql("DELETE FROM party_members WHERE party_id = $1")
        .bind(record.id)
        .execute(tx)
        .await?;
    sql("DELETE FROM party_invites WHERE party_id = $1")
        .bind(record.id)
        .execute(tx)
        .await?;
    for (position, member) in record.party.members.iter().enumerate() {
        let player = Uuid::from_u128(member.player.0);
        let latencies = record.latencies.get(&player).cloned().unwrap_or_default();
        sql(
            "INSERT INTO party_members (party_id, player_id, position, joined_at, ready, \
             latencies) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(record.id)
        .bind(player)
        .bind(i32::try_from(position).unwrap_or(i32::MAX))
        .bind(at(member.joined_at)?)
        .bind(member.ready)
        .bind(Json(latencies))
        .execute(tx)
        .await?;
    }
    for invite in &record.party.invites {
        sql(
            "INSERT INTO party_invites (party_id, player_id, invited_by, expires_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(record.id)
        .bind(Uuid::from_u128(invite.player.0))
        .bind(Uuid::from_u128(invite.invited_by.0))
        .bind(at(invite.expires_at)?)
        .execute(tx)
        .await?;
    }
    Ok(())
}

fn party_columns(
    record: &PartyRecord,
) -> StoreResult<(Option<Timestamp>, Option<Timestamp>, bool)> {
    Ok(match record.party.ready_check {
        Some(check) => (
            Some(at(check.started_at)?),
            Some(at(check.deadline)?),
            check.passed,
        ),
        None => (None, None, false),
    })
}

pub(crate) async fn create<D: Dialect>(
    pool: &Pool<D>,
    record: &PartyRecord,
) -> StoreResult<Result<(), PartyError>> {
    let mut tx = pool.begin_with(D::BEGIN_WRITE).await?;
    let (started, deadline, passed) = party_columns(record)?;
    let now = Timestamp::new(record.created_at)?;
    let inserted = sql(
        "INSERT INTO parties (id, leader_id, open, join_code, max_size, version, \
         ready_started_at, ready_deadline, ready_passed, queue, ticket_id, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12)",
    )
    .bind(record.id)
    .bind(record.leader())
    .bind(record.party.open)
    .bind(record.join_code.as_str())
    .bind(i32::try_from(record.max_size).unwrap_or(i32::MAX))
    .bind(i64::try_from(record.version).unwrap_or(0))
    .bind(started)
    .bind(deadline)
    .bind(passed)
    .bind(record.ticket.as_ref().map(|(queue, _)| queue.as_str()))
    .bind(record.ticket.as_ref().map(|(_, ticket)| *ticket))
    .bind(now)
    .execute(&mut tx)
    .await;
    if let Err(err) = inserted {
        return Err(crate::record::classify_player_write(err));
    }
    match write_rows(&mut tx, record).await {
        Err(StoreError::Database(err)) if is_unique_violation(&err) => {
            return Ok(Err(PartyError::AlreadyInParty));
        }
        Err(err) => return Err(crate::record::classify_player_write(err)),
        Ok(()) => {}
    }
    tx.commit().await?;
    Ok(Ok(()))
}

pub(crate) async fn get<D: Dialect>(pool: &Pool<D>, id: Uuid) -> StoreResult<Option<PartyRecord>> {
    let mut db = pool.acquire().await?;
    read(&mut db, id, false).await
}

/// The party `player` is in, if any.
pub(crate) async fn of_player<D: Dialect>(
    pool: &Pool<D>,
    player: Uuid,
) -> StoreResult<Option<Uuid>> {
    let mut db = pool.acquire().await?;
    let row: Option<(Uuid,)> = sql("SELECT party_id FROM party_members WHERE player_id = $1")
        .bind(player)
        .fetch_optional(&mut db)
        .await?;
    Ok(row.map(|(id,)| id))
}

/// Parties with a ready check still running (what a restarted node must time out).
pub(crate) async fn running_ready_checks<D: Dialect>(
    pool: &Pool<D>,
) -> StoreResult<Vec<(Uuid, OffsetDateTime)>> {
    let mut db = pool.acquire().await?;
    let rows: Vec<(Uuid, Timestamp)> = sql("SELECT id, ready_deadline FROM parties \
         WHERE ready_deadline IS NOT NULL AND NOT ready_passed")
    .fetch_all(&mut db)
    .await?;
    Ok(rows.into_iter().map(|(id, t)| (id, t.get())).collect())
}

pub(crate) async fn update<D: Dialect>(
    pool: &Pool<D>,
    id: Uuid,
    now: OffsetDateTime,
    change: &mut PartyFn<'_>,
) -> StoreResult<Option<Result<PartyRecord, PartyError>>> {
    let mut tx = pool.begin_with(D::BEGIN_WRITE).await?;
    let Some(mut record) = read(&mut tx, id, true).await? else {
        return Ok(None);
    };
    if let Err(refused) = change(&mut record) {
        return Ok(Some(Err(refused)));
    }
    record.version += 1;
    if record.party.members.is_empty() {
        sql("DELETE FROM parties WHERE id = $1")
            .bind(id)
            .execute(&mut tx)
            .await?;
        tx.commit().await?;
        return Ok(Some(Ok(record)));
    }
    let (started, deadline, passed) = party_columns(&record)?;
    sql(
        "UPDATE parties SET leader_id = $1, open = $2, version = $3, ready_started_at = $4, \
         ready_deadline = $5, ready_passed = $6, queue = $7, ticket_id = $8, updated_at = $9 \
         WHERE id = $10",
    )
    .bind(record.leader())
    .bind(record.party.open)
    .bind(i64::try_from(record.version).unwrap_or(i64::MAX))
    .bind(started)
    .bind(deadline)
    .bind(passed)
    .bind(record.ticket.as_ref().map(|(queue, _)| queue.as_str()))
    .bind(record.ticket.as_ref().map(|(_, ticket)| *ticket))
    .bind(Timestamp::new(now)?)
    .bind(id)
    .execute(&mut tx)
    .await?;
    match write_rows(&mut tx, &record).await {
        Err(StoreError::Database(err)) if is_unique_violation(&err) => {
            return Ok(Some(Err(PartyError::AlreadyInParty)));
        }
        Err(err) => return Err(crate::record::classify_player_write(err)),
        Ok(()) => {}
    }
    tx.commit().await?;
    Ok(Some(Ok(record)))
}
