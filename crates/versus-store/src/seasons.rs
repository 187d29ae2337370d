//! Seasons: the [`crate::Store`] methods' types and queries (written once for both dialects,
//! like `queries.rs`).
//!
//! A rollover ([`roll`]) only ends one season and starts the next, in one short transaction:
//! the current season's row is locked (results share-lock it, so none commits halfway) and
//! nothing else is written. A rating row whose `season` is older than its queue's current one is
//! its player's final standing in that season; it is frozen into `season_standings` and carried
//! into the current season (softly reset, counts zeroed) by whichever comes first: the player's
//! next result ([`freeze_standings`], in the result's transaction) or the background
//! [`carry_over`], a few hundred players per transaction. Until then the readers of a past
//! season read both tables. At a million players the one-transaction rollover this replaced
//! held every result for tens of seconds (`BENCHMARKS.md`).
//!
//! Two rollovers of the same season (two nodes, an admin and the schedule) end in one: the
//! second finds the season already ended ([`Rolled::NotCurrent`]).

use sqlx::{AssertSqlSafe, Pool};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::admin::{AdminAction, insert_action};
use crate::dialect::{Dialect, Session, Timestamp, select_for_update, sql};
use crate::sessions::{
    BOARD_SELECT, BoardRecord, BoardRow, BoardStanding, RATING_COLUMNS, RatingRow, ResetFn,
    placeholders, row_placeholders,
};
use crate::{StoreError, StoreResult};

/// One season of one queue.
#[derive(Debug, Clone, PartialEq)]
pub struct SeasonRecord {
    pub queue: String,
    pub number: u32,
    pub started_at: OffsetDateTime,
    /// When the schedule ends it (`None`: only an admin does).
    pub ends_at: Option<OffsetDateTime>,
    /// When it ended; `None` for the current season.
    pub ended_at: Option<OffsetDateTime>,
}

/// What [`crate::Store::roll_season`] is asked to do.
pub struct SeasonRollover<'a> {
    pub queue: &'a str,
    /// The season to end: refused ([`Rolled::NotCurrent`]) unless it is still current.
    pub current: u32,
    /// When it ends.
    pub at: OffsetDateTime,
    /// When the next one starts (`at`, or the schedule's boundary) and ends.
    pub next_starts_at: OffsetDateTime,
    pub next_ends_at: Option<OffsetDateTime>,
    /// Recorded in the same transaction when an admin asked for it.
    pub admin_action: Option<AdminAction>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Rolled {
    /// The new current season.
    Done(SeasonRecord),
    /// The season asked to end is not the current one (already rolled over): the current one.
    NotCurrent(Option<SeasonRecord>),
}

#[derive(sqlx::FromRow)]
struct SeasonRow {
    queue: String,
    number: i32,
    started_at: Timestamp,
    ends_at: Option<Timestamp>,
    ended_at: Option<Timestamp>,
}

impl SeasonRow {
    fn into_record(self) -> StoreResult<SeasonRecord> {
        Ok(SeasonRecord {
            queue: self.queue,
            number: u32::try_from(self.number)
                .map_err(|_| StoreError::Corrupt(format!("season number {}", self.number)))?,
            started_at: self.started_at.get(),
            ends_at: self.ends_at.map(Timestamp::get),
            ended_at: self.ended_at.map(Timestamp::get),
        })
    }
}

const SEASON_COLUMNS: &str = "queue, number, started_at, ends_at, ended_at";

fn number(season: u32) -> i32 {
    i32::try_from(season).unwrap_or(i32::MAX)
}

async fn current_on(on: &mut impl Session, queue: &str) -> StoreResult<Option<SeasonRecord>> {
    let row: Option<SeasonRow> = sql(AssertSqlSafe(format!(
        "SELECT {SEASON_COLUMNS} FROM seasons WHERE queue = $1 AND ended_at IS NULL"
    )))
    .bind(queue)
    .fetch_optional(on)
    .await?;
    row.map(SeasonRow::into_record).transpose()
}

/// The queue's current season; season 1 (`started_at`, `ends_at`) when it has none yet.
pub(crate) async fn open<D: Dialect>(
    pool: &Pool<D>,
    queue: &str,
    started_at: OffsetDateTime,
    ends_at: Option<OffsetDateTime>,
) -> StoreResult<SeasonRecord> {
    let mut db = pool.acquire().await?;
    if let Some(current) = current_on(&mut db, queue).await? {
        return Ok(current);
    }
    // Two nodes starting at once: one insert wins, both read the winner.
    sql(
        "INSERT INTO seasons (queue, number, started_at, ends_at, ended_at) \
         VALUES ($1, 1, $2, $3, NULL) ON CONFLICT DO NOTHING",
    )
    .bind(queue)
    .bind(Timestamp::new(started_at)?)
    .bind(ends_at.map(Timestamp::new).transpose()?)
    .execute(&mut db)
    .await?;
    current_on(&mut db, queue)
        .await?
        .ok_or_else(|| StoreError::Corrupt(format!("queue {queue} has no current season")))
}

/// Moves the current season's scheduled end (the schedule in config changed).
pub(crate) async fn reschedule<D: Dialect>(
    pool: &Pool<D>,
    queue: &str,
    season: u32,
    ends_at: Option<OffsetDateTime>,
) -> StoreResult<()> {
    let mut db = pool.acquire().await?;
    sql("UPDATE seasons SET ends_at = $1 WHERE queue = $2 AND number = $3 AND ended_at IS NULL")
        .bind(ends_at.map(Timestamp::new).transpose()?)
        .bind(queue)
        .bind(number(season))
        .execute(&mut db)
        .await?;
    Ok(())
}

/// Every season of the queue, oldest first.
pub(crate) async fn list<D: Dialect>(
    pool: &Pool<D>,
    queue: &str,
) -> StoreResult<Vec<SeasonRecord>> {
    let mut db = pool.acquire().await?;
    let rows: Vec<SeasonRow> = sql(AssertSqlSafe(format!(
        "SELECT {SEASON_COLUMNS} FROM seasons WHERE queue = $1 ORDER BY number"
    )))
    .bind(queue)
    .fetch_all(&mut db)
    .await?;
    rows.into_iter().map(SeasonRow::into_record).collect()
}

/// The season a result in `queue` counts for, share-locked until the result's transaction
/// ends so a rollover waits for it (and it for a rollover). 1 for a queue without seasons.
pub(crate) async fn of_result(tx: &mut impl Session, queue: &str) -> StoreResult<u32> {
    let row: Option<(i32,)> = sql(AssertSqlSafe(format!(
        "SELECT number FROM seasons WHERE queue = $1 AND ended_at IS NULL {}",
        share_lock(tx)
    )))
    .bind(queue)
    .fetch_optional(tx)
    .await?;
    Ok(row.map_or(1, |(n,)| u32::try_from(n).unwrap_or(1)))
}

fn share_lock<S: Session>(_: &S) -> &'static str {
    <S::Db as Dialect>::SHARE_LOCK
}

pub(crate) async fn roll<D: Dialect>(
    pool: &Pool<D>,
    roll: SeasonRollover<'_>,
) -> StoreResult<Rolled> {
    let at = Timestamp::new(roll.at)?;
    let mut tx = pool.begin_with(D::BEGIN_WRITE).await?;
    let current: Option<(i32,)> =
        select_for_update("SELECT number FROM seasons WHERE queue = $1 AND ended_at IS NULL")
            .bind(roll.queue)
            .fetch_optional(&mut tx)
            .await?;
    if current.map(|(n,)| n) != Some(number(roll.current)) {
        drop(tx);
        let mut db = pool.acquire().await?;
        return Ok(Rolled::NotCurrent(current_on(&mut db, roll.queue).await?));
    }
    let ended = number(roll.current);
    sql("UPDATE seasons SET ended_at = $1 WHERE queue = $2 AND number = $3")
        .bind(at)
        .bind(roll.queue)
        .bind(ended)
        .execute(&mut tx)
        .await?;
    sql(
        "INSERT INTO seasons (queue, number, started_at, ends_at, ended_at) \
         VALUES ($1, $2, $3, $4, NULL)",
    )
    .bind(roll.queue)
    .bind(ended + 1)
    .bind(Timestamp::new(roll.next_starts_at)?)
    .bind(roll.next_ends_at.map(Timestamp::new).transpose()?)
    .execute(&mut tx)
    .await?;
    if let Some(action) = &roll.admin_action {
        insert_action(&mut tx, action).await?;
    }
    let next = current_on(&mut tx, roll.queue)
        .await?
        .ok_or_else(|| StoreError::Corrupt("the new season vanished".into()))?;
    tx.commit().await?;
    Ok(Rolled::Done(next))
}

/// The columns of a standing, in `season_standings`' order, from a `player_ratings` row.
const STANDING_COLUMNS: &str = "queue, season, player_id, rank, rating, deviation, volatility, \
     display_rating, games, wins, losses, draws, reached_at";

/// Freezes the final standing of `players` (rated in `queue`, their rows not yet carried over)
/// before a result overwrites it; unranked until [`rank_standings`].
pub(crate) async fn freeze_standings(
    tx: &mut impl Session,
    queue: &str,
    players: &[Uuid],
) -> StoreResult<()> {
    let mut insert = sql(AssertSqlSafe(format!(
        "INSERT INTO season_standings ({STANDING_COLUMNS}) \
         SELECT queue, season, player_id, NULL, rating, deviation, volatility, display_rating, \
           games, wins, losses, draws, updated_at \
         FROM player_ratings WHERE queue = $1 AND games > 0 AND player_id IN ({}) \
         ON CONFLICT (queue, season, player_id) DO NOTHING",
        placeholders(2, players.len())
    )))
    .bind(queue);
    for player in players {
        insert = insert.bind(*player);
    }
    insert.execute(tx).await?;
    Ok(())
}

/// One batch of the carry-over that follows a rollover: see [`crate::Store::carry_over`].
pub struct CarryOver<'a> {
    pub queue: &'a str,
    /// The current season: every rating of an earlier one is carried into it.
    pub current: u32,
    /// Players after this one (by id); `None` starts from the first.
    pub after: Option<Uuid>,
    /// Players per batch (one transaction).
    pub limit: usize,
    pub reset: &'a ResetFn<'a>,
    /// The season `rank` knows the final ranks of (the one that just ended).
    pub ended: u32,
    /// A player's final rank in `ended`; `None`: unranked (or unknown, filled later by
    /// [`crate::Store::rank_standings`]).
    pub rank: &'a (dyn Fn(Uuid) -> Option<u64> + Send + Sync + 'a),
}

/// Columns per row of [`carry_over`]'s standings insert: under SQLite's 32,766 parameters at
/// the largest batch.
const STANDING_PARAMS: usize = 13;
const RESET_PARAMS: usize = 12;
pub const MAX_CARRY_BATCH: usize = 2_000;

pub(crate) async fn carry_over<D: Dialect>(
    pool: &Pool<D>,
    batch: CarryOver<'_>,
) -> StoreResult<Option<Uuid>> {
    #[derive(sqlx::FromRow)]
    struct Stale {
        #[sqlx(flatten)]
        rating: RatingRow,
        updated_at: Timestamp,
    }
    let limit = batch.limit.clamp(1, MAX_CARRY_BATCH);
    let current = number(batch.current);
    let mut tx = pool.begin_with(D::BEGIN_WRITE).await?;
    // A range of the primary key (player, queue) per batch, its end found first by a walk of
    // the key alone: a plan PostgreSQL keeps whatever its statistics say (one query with the
    // season filter and the order was planned as a sort of the whole table on fresh data).
    let after = batch.after.unwrap_or(Uuid::nil());
    let keys: Vec<(Uuid,)> = sql(AssertSqlSafe(format!(
        "SELECT player_id FROM player_ratings WHERE player_id > $1 ORDER BY player_id LIMIT {limit}"
    )))
    .bind(after)
    .fetch_all(&mut tx)
    .await?;
    let Some(&(last,)) = keys.last() else {
        return Ok(None);
    };
    let rows: Vec<Stale> = select_for_update(&format!(
        "SELECT {RATING_COLUMNS}, updated_at FROM player_ratings \
         WHERE player_id > $1 AND player_id <= $2 AND queue = $3 AND season < $4"
    ))
    .bind(after)
    .bind(last)
    .bind(batch.queue)
    .bind(current)
    .fetch_all(&mut tx)
    .await?;
    if rows.is_empty() {
        return Ok(Some(last));
    }
    let played: Vec<&Stale> = rows.iter().filter(|row| row.rating.games > 0).collect();
    if !played.is_empty() {
        let mut insert = sql(AssertSqlSafe(format!(
            "INSERT INTO season_standings ({STANDING_COLUMNS}) VALUES {} \
             ON CONFLICT (queue, season, player_id) DO UPDATE SET rank = excluded.rank",
            row_placeholders(played.len(), STANDING_PARAMS)
        )));
        for row in played {
            let r = &row.rating;
            let rank = (r.season == number(batch.ended))
                .then(|| (batch.rank)(r.player_id))
                .flatten()
                .map(|rank| i64::try_from(rank).unwrap_or(i64::MAX));
            insert = insert
                .bind(batch.queue)
                .bind(r.season)
                .bind(r.player_id)
                .bind(rank)
                .bind(r.rating)
                .bind(r.deviation)
                .bind(r.volatility)
                .bind(r.display_rating)
                .bind(r.games)
                .bind(r.wins)
                .bind(r.losses)
                .bind(r.draws)
                .bind(row.updated_at);
        }
        insert.execute(&mut tx).await?;
    }
    let mut upsert = sql(AssertSqlSafe(format!(
        "INSERT INTO player_ratings (player_id, queue, rating, deviation, volatility, \
         display_rating, games, wins, losses, draws, updated_at, season) VALUES {} \
         ON CONFLICT (player_id, queue) DO UPDATE SET rating = excluded.rating, \
         deviation = excluded.deviation, volatility = excluded.volatility, \
         display_rating = excluded.display_rating, games = 0, wins = 0, losses = 0, \
         draws = 0, updated_at = excluded.updated_at, season = excluded.season",
        row_placeholders(rows.len(), RESET_PARAMS)
    )));
    for row in rows {
        let updated_at = row.updated_at;
        let player = row.rating.player_id;
        let carried = row.rating.into_stored().carried(batch.current, batch.reset);
        upsert = upsert
            .bind(player)
            .bind(batch.queue)
            .bind(carried.rating.rating)
            .bind(carried.rating.deviation)
            .bind(carried.rating.volatility)
            .bind(carried.display_rating)
            .bind(0_i64)
            .bind(0_i64)
            .bind(0_i64)
            .bind(0_i64)
            .bind(updated_at)
            .bind(current);
    }
    upsert.execute(&mut tx).await?;
    tx.commit().await?;
    Ok(Some(last))
}

/// The oldest season a rating of `queue` has not been carried out of (`None`: all are in
/// `current`): what a node starting up finds of a carry-over that did not finish.
pub(crate) async fn oldest_uncarried<D: Dialect>(
    pool: &Pool<D>,
    queue: &str,
    current: u32,
) -> StoreResult<Option<u32>> {
    let mut db = pool.acquire().await?;
    let oldest: Option<(Option<i32>,)> =
        sql("SELECT MIN(season) FROM player_ratings WHERE queue = $1 AND season < $2")
            .bind(queue)
            .bind(number(current))
            .fetch_optional(&mut db)
            .await?;
    Ok(oldest
        .and_then(|(n,)| n)
        .and_then(|n| u32::try_from(n).ok()))
}

/// Ranks the standings of `season` frozen unranked by results that came before the carry-over
/// (those with at least `min_games`). How many were ranked.
pub(crate) async fn rank_standings<D: Dialect>(
    pool: &Pool<D>,
    queue: &str,
    season: u32,
    min_games: u64,
    rank: &(dyn Fn(Uuid) -> Option<u64> + Send + Sync + '_),
) -> StoreResult<u64> {
    let unranked: Vec<(Uuid,)> = {
        let mut db = pool.acquire().await?;
        sql("SELECT player_id FROM season_standings \
             WHERE queue = $1 AND season = $2 AND rank IS NULL AND games >= $3")
        .bind(queue)
        .bind(number(season))
        .bind(i64::try_from(min_games).unwrap_or(i64::MAX))
        .fetch_all(&mut db)
        .await?
    };
    let mut ranked = 0;
    for chunk in unranked.chunks(500) {
        let mut tx = pool.begin_with(D::BEGIN_WRITE).await?;
        for (player,) in chunk {
            let Some(place) = rank(*player) else { continue };
            ranked += sql("UPDATE season_standings SET rank = $1 \
                 WHERE queue = $2 AND season = $3 AND player_id = $4")
            .bind(i64::try_from(place).unwrap_or(i64::MAX))
            .bind(queue)
            .bind(number(season))
            .bind(*player)
            .execute(&mut tx)
            .await?;
        }
        tx.commit().await?;
    }
    Ok(ranked)
}

/// A standing in [`BOARD_SELECT`]'s columns, so the two tables' rows read as one.
const STANDING_SELECT: &str = "SELECT s.player_id, s.queue, s.rating, s.deviation, \
     s.volatility, s.display_rating, s.games, s.wins, s.losses, s.draws, s.season, \
     s.reached_at AS updated_at, p.display_name \
     FROM season_standings s JOIN players p ON p.id = s.player_id";

/// Where each ranked player of an ended season finished (what its frozen board's index is
/// built from), streamed: the frozen standings and the ratings not carried out of it yet.
/// `min_games` places the standings frozen by a result before the carry-over ranked them.
pub(crate) async fn board<D: Dialect>(
    pool: &Pool<D>,
    queue: &str,
    season: u32,
    min_games: u64,
) -> StoreResult<Vec<BoardStanding>> {
    let select = sql(
        "SELECT player_id, display_rating, reached_at FROM season_standings \
         WHERE queue = $1 AND season = $2 AND (rank IS NOT NULL OR games >= $3) \
         UNION ALL \
         SELECT player_id, display_rating, updated_at FROM player_ratings \
         WHERE queue = $1 AND season = $2 AND games >= $3",
    )
    .bind(queue)
    .bind(number(season))
    .bind(i64::try_from(min_games).unwrap_or(i64::MAX));
    crate::sessions::standings(pool, select).await
}

/// The standings of `players` in an ended season (those who played it).
pub(crate) async fn standings_of<D: Dialect>(
    pool: &Pool<D>,
    queue: &str,
    season: u32,
    players: &[Uuid],
) -> StoreResult<Vec<BoardRow>> {
    crate::sessions::board_rows_of(pool, players, |n| {
        let ids = placeholders(3, n);
        sql(AssertSqlSafe(format!(
            "{STANDING_SELECT} WHERE s.queue = $1 AND s.season = $2 AND s.player_id IN ({ids}) \
             UNION ALL \
             {BOARD_SELECT} WHERE r.queue = $1 AND r.season = $2 AND r.games > 0 \
             AND r.player_id IN ({ids})"
        )))
        .bind(queue)
        .bind(number(season))
    })
    .await
}

/// One player's final standing in an ended season.
#[derive(Debug, Clone, PartialEq)]
pub struct SeasonStanding {
    pub season: u32,
    /// `None`: still in placement games when it ended.
    pub rank: Option<u64>,
    pub row: BoardRow,
}

/// A player's final standing in every ended season of `queue` they played, newest first
/// (the one their rating was not carried out of yet unranked: the caller knows its rank).
pub(crate) async fn player_standings<D: Dialect>(
    pool: &Pool<D>,
    player: Uuid,
    queue: &str,
) -> StoreResult<Vec<SeasonStanding>> {
    #[derive(sqlx::FromRow)]
    struct Row {
        rank: Option<i64>,
        #[sqlx(flatten)]
        board: BoardRecord,
    }
    let mut db = pool.acquire().await?;
    let rows: Vec<Row> = sql(AssertSqlSafe(format!(
        "SELECT s.rank, {} WHERE s.player_id = $1 AND s.queue = $2 \
         UNION ALL \
         SELECT NULL, {} WHERE r.player_id = $1 AND r.queue = $2 AND r.games > 0 \
         AND r.season < (SELECT number FROM seasons WHERE queue = $2 AND ended_at IS NULL)",
        STANDING_SELECT.trim_start_matches("SELECT "),
        BOARD_SELECT.trim_start_matches("SELECT "),
    )))
    .bind(player)
    .bind(queue)
    .fetch_all(&mut db)
    .await?;
    let mut standings: Vec<SeasonStanding> = rows
        .into_iter()
        .map(|r| {
            let row = r.board.into_row();
            SeasonStanding {
                season: row.rating.season,
                rank: r.rank.and_then(|n| u64::try_from(n).ok()),
                row,
            }
        })
        .collect();
    standings.sort_by_key(|s| std::cmp::Reverse(s.season));
    Ok(standings)
}
