//! Seasons: the [`crate::Store`] methods' types and queries (written once for both dialects,
//! like `queries.rs`).
//!
//! A rollover is one transaction: the current season's row is locked (results take a share
//! lock on it, so none commits halfway through), every player who played that season is
//! copied into `season_standings` with their final rank, every rating of the queue is softly
//! reset by the caller's closure with its counts zeroed, and the next season starts. Two
//! rollovers of the same season (two nodes, an admin and the schedule) end in one: the second
//! finds the season already ended ([`Rolled::NotCurrent`]).

use sqlx::{AssertSqlSafe, Pool};
use time::OffsetDateTime;
use uuid::Uuid;
use versus_core::rating::PlayerRating;

use crate::admin::{AdminAction, insert_action};
use crate::dialect::{Dialect, Session, Timestamp, select_for_update, sql};
use crate::sessions::{BoardRecord, BoardRow, BoardStanding, StoredRating, row_placeholders};
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

/// A player's carried-over rating and its display rating, from their rating at the season's end.
pub type ResetFn<'a> = dyn Fn(&StoredRating) -> (PlayerRating, f64) + Send + Sync + 'a;

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
    /// Games a player needs to be ranked in the frozen standings.
    pub placement_games: u64,
    pub reset: &'a ResetFn<'a>,
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

/// Rows per statement of the reset: 11 parameters each, under SQLite's limit of 32,766.
const RESET_ROWS: usize = 2_000;

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
    // The final standings: ranked in the boards' order (score, then who reached it first,
    // then player id), unranked below the placement threshold.
    sql(
        "INSERT INTO season_standings (queue, season, player_id, rank, rating, deviation, \
         volatility, display_rating, games, wins, losses, draws, reached_at) \
         SELECT queue, $2, player_id, \
           CASE WHEN games >= $3 THEN ROW_NUMBER() OVER (PARTITION BY games >= $3 \
             ORDER BY display_rating DESC, updated_at, player_id) END, \
           rating, deviation, volatility, display_rating, games, wins, losses, draws, updated_at \
         FROM player_ratings WHERE queue = $1 AND games > 0",
    )
    .bind(roll.queue)
    .bind(ended)
    .bind(i64::try_from(roll.placement_games).unwrap_or(i64::MAX))
    .execute(&mut tx)
    .await?;
    let ratings: Vec<crate::sessions::RatingRow> = sql(AssertSqlSafe(format!(
        "SELECT {} FROM player_ratings WHERE queue = $1",
        crate::sessions::RATING_COLUMNS
    )))
    .bind(roll.queue)
    .fetch_all(&mut tx)
    .await?;
    let reset: Vec<(Uuid, PlayerRating, f64)> = (ratings.into_iter())
        .map(|row| {
            let player = row.player_id;
            let (rating, display) = (roll.reset)(&row.into_stored());
            (player, rating, display)
        })
        .collect();
    for chunk in reset.chunks(RESET_ROWS) {
        let mut upsert = sql(AssertSqlSafe(format!(
            "INSERT INTO player_ratings (player_id, queue, rating, deviation, volatility, \
             display_rating, games, wins, losses, draws, updated_at) VALUES {} \
             ON CONFLICT (player_id, queue) DO UPDATE SET rating = excluded.rating, \
             deviation = excluded.deviation, volatility = excluded.volatility, \
             display_rating = excluded.display_rating, games = 0, wins = 0, losses = 0, \
             draws = 0, updated_at = excluded.updated_at",
            row_placeholders(chunk.len(), 11)
        )));
        for (player, rating, display) in chunk {
            upsert = upsert
                .bind(*player)
                .bind(roll.queue)
                .bind(rating.rating)
                .bind(rating.deviation)
                .bind(rating.volatility)
                .bind(*display)
                .bind(0_i64)
                .bind(0_i64)
                .bind(0_i64)
                .bind(0_i64)
                .bind(at);
        }
        upsert.execute(&mut tx).await?;
    }
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

const STANDING_SELECT: &str = "SELECT s.player_id, s.queue, s.rating, s.deviation, \
     s.volatility, s.display_rating, s.games, s.wins, s.losses, s.draws, \
     s.reached_at AS updated_at, p.display_name \
     FROM season_standings s JOIN players p ON p.id = s.player_id";

/// Where each ranked player of an ended season finished (what its frozen board's index is
/// built from), streamed.
pub(crate) async fn board<D: Dialect>(
    pool: &Pool<D>,
    queue: &str,
    season: u32,
) -> StoreResult<Vec<BoardStanding>> {
    let select = sql(
        "SELECT player_id, display_rating, reached_at FROM season_standings \
         WHERE queue = $1 AND season = $2 AND rank IS NOT NULL",
    )
    .bind(queue)
    .bind(number(season));
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
        sql(AssertSqlSafe(format!(
            "{STANDING_SELECT} WHERE s.queue = $1 AND s.season = $2 AND s.player_id IN ({})",
            crate::sessions::placeholders(3, n)
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

/// A player's final standing in every ended season of `queue` they played, newest first.
pub(crate) async fn player_standings<D: Dialect>(
    pool: &Pool<D>,
    player: Uuid,
    queue: &str,
) -> StoreResult<Vec<SeasonStanding>> {
    #[derive(sqlx::FromRow)]
    struct Row {
        season: i32,
        rank: Option<i64>,
        #[sqlx(flatten)]
        board: BoardRecord,
    }
    let mut db = pool.acquire().await?;
    let rows: Vec<Row> = sql(AssertSqlSafe(format!(
        "SELECT s.season, s.rank, {} WHERE s.player_id = $1 AND s.queue = $2 \
         ORDER BY s.season DESC",
        STANDING_SELECT.trim_start_matches("SELECT ")
    )))
    .bind(player)
    .bind(queue)
    .fetch_all(&mut db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| SeasonStanding {
            season: u32::try_from(r.season).unwrap_or(0),
            rank: r.rank.and_then(|n| u64::try_from(n).ok()),
            row: r.board.into_row(),
        })
        .collect())
}
