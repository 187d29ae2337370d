//! Leaderboards and seasons: one [`RankIndex`] per queue for its current season, rebuilt from
//! the store at start-up and moved after every applied result, so a rank is a lookup in memory
//! (microseconds at a million players; `BENCHMARKS.md`) and a result shows on the board as soon
//! as its transaction commits. A past season's board is frozen in the store
//! (`season_standings`) and built into an index of its own when first read.
//!
//! The store stays the truth: the index holds only (score, when reached, player); names and
//! counts of a page are read from the store with one query.
//!
//! Seasons end on the queue's schedule ([`Leaderboards::run_schedule`]) or early by an admin
//! ([`Leaderboards::rollover`]); the store ends one and starts the next in one short
//! transaction, and the live index is rebuilt. Then a background carry-over freezes each
//! player's final standing and carries their rating into the new season (softly reset, counts
//! zeroed), a batch of players per transaction, so results never wait for a million rows (a
//! player's own next result carries them first if it comes sooner). Until a rating is carried,
//! [`Leaderboards::carried`] shows it as it will be.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, Instant};

use crate::services::events::{BusEvent, EventBus};
use time::OffsetDateTime;
use uuid::Uuid;
use versus_core::leaderboard::{RankIndex, Ranked, Standing};
use versus_core::rating::{AnyRatingSystem, PlayerRating, RatingSystem as _};
use versus_core::season::{Schedule, SoftReset};
use versus_protocol::leaderboards::{
    LeaderboardEntry, LeaderboardPage, LeaderboardStanding, PlayerSeason, SeasonInfo, SeasonList,
};
use versus_store::{
    BoardRow, BoardStanding, CarryOver, Rolled, SeasonRecord, SeasonRollover, Store, StoreError,
    StoredRating,
};

#[derive(Debug, thiserror::Error)]
pub enum LeaderboardError {
    #[error("unknown queue; known: {known}")]
    UnknownQueue { known: String },
    #[error("not a cursor this server gave")]
    BadCursor,
    #[error("the player is not on this board (unrated here, or still in placement games)")]
    NotRanked,
    #[error("no such season; the current one is {current}")]
    NoSuchSeason { current: u32 },
    #[error("leaderboard storage failed")]
    Store(#[from] StoreError),
}

/// Where a page starts: strictly after or strictly before a standing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PageCursor {
    After(Standing),
    Before(Standing),
}

impl PageCursor {
    /// `a` or `b`, the score's bits, when it was reached, the player: opaque to clients.
    pub fn encode(&self) -> String {
        let (dir, s) = match self {
            Self::After(s) => ('a', s),
            Self::Before(s) => ('b', s),
        };
        format!(
            "{dir}{:016x}.{}.{:032x}",
            s.score.to_bits(),
            s.reached_at,
            s.player
        )
    }

    pub fn decode(raw: &str) -> Option<Self> {
        let dir = raw.get(..1)?;
        let mut parts = raw.get(1..)?.split('.');
        let (Some(score), Some(reached_at), Some(player), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        let standing = Standing {
            score: f64::from_bits(u64::from_str_radix(score, 16).ok()?),
            reached_at: reached_at.parse().ok()?,
            player: u128::from_str_radix(player, 16).ok()?,
        };
        if !standing.score.is_finite() {
            return None;
        }
        match dir {
            "a" => Some(Self::After(standing)),
            "b" => Some(Self::Before(standing)),
            _ => None,
        }
    }
}

/// The shape of a cursor, for the OpenAPI document.
pub const CURSOR_PATTERN: &str = r"^[ab][0-9a-f]{16}\.-?[0-9]{1,20}\.[0-9a-f]{32}$";

/// What a queue's board is built from.
pub struct BoardSpec {
    pub queue: String,
    pub rater: AnyRatingSystem,
    pub schedule: Schedule,
    pub reset: SoftReset,
}

pub struct Leaderboards {
    store: Arc<dyn Store>,
    boards: HashMap<String, Board>,
    placement_games: u64,
    /// In a cluster: where this node's results and rollovers are told to the others
    /// ([`Self::follow`]), and this node's name in what it tells.
    cluster_bus: OnceLock<Arc<dyn EventBus>>,
    instance: Uuid,
}

struct Board {
    rater: AnyRatingSystem,
    schedule: Schedule,
    reset: SoftReset,
    live: RwLock<Live>,
    /// Held by whatever moves the live index (a refresh, a rollover's rebuild), so a rebuild
    /// cannot lose a refresh made while it read the store.
    moving: tokio::sync::Mutex<()>,
    /// Held by a carry-over from its rollover to its end: the next rollover waits for it, so
    /// a rating is never more than one season behind.
    carrying: Arc<tokio::sync::Mutex<()>>,
    /// The past season read last: its record and frozen board.
    past: tokio::sync::Mutex<Option<(SeasonRecord, Arc<RankIndex>)>>,
    /// Names and counts of recently shown players by (season, player): a hot page (the top
    /// 100) is served from memory, not a store read of a hundred scattered rows (~12 ms on
    /// PostgreSQL at a million players).
    entries: std::sync::Mutex<HashMap<(u32, Uuid), (BoardRow, Instant)>>,
}

struct Live {
    season: SeasonRecord,
    index: RankIndex,
}

/// Which board of a queue a request reads.
enum Which {
    Live,
    Past(SeasonRecord, Arc<RankIndex>),
}

fn standing(row: &BoardRow) -> Standing {
    place(&BoardStanding {
        player_id: row.player_id,
        display_rating: row.rating.display_rating,
        reached_at: row.reached_at,
    })
}

fn place(row: &BoardStanding) -> Standing {
    Standing {
        score: row.display_rating,
        reached_at: (row.reached_at.unix_timestamp_nanos() / 1_000) as i64,
        player: row.player_id.as_u128(),
    }
}

fn at(unix: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(unix).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

impl Leaderboards {
    /// Opens every queue's current season (season 1 on a new store, its end as the schedule
    /// now says) and builds its board from the store.
    pub async fn load(
        store: Arc<dyn Store>,
        specs: Vec<BoardSpec>,
        placement_games: u64,
    ) -> Result<Arc<Self>, StoreError> {
        let now = OffsetDateTime::now_utc();
        let mut boards = HashMap::new();
        for spec in specs {
            let queue = spec.queue.as_str();
            let ends_at = spec.schedule.end_of(now.unix_timestamp()).map(at);
            let mut season = store.open_season(queue, now, ends_at).await?;
            let scheduled = (spec.schedule)
                .end_of(season.started_at.unix_timestamp())
                .map(at);
            if season.ends_at != scheduled {
                tracing::info!(queue, season = season.number, ends_at = ?scheduled, "season end moved to the configured schedule");
                store
                    .reschedule_season(queue, season.number, scheduled)
                    .await?;
                season.ends_at = scheduled;
            }
            let rows = (store)
                .leaderboard_standings(queue, season.number, placement_games)
                .await?;
            let index = RankIndex::from_standings(rows.iter().map(place));
            drop(rows);
            tracing::info!(
                queue,
                season = season.number,
                players = index.len(),
                "leaderboard loaded"
            );
            let board = Board {
                rater: spec.rater,
                schedule: spec.schedule,
                reset: spec.reset,
                live: RwLock::new(Live { season, index }),
                moving: tokio::sync::Mutex::new(()),
                carrying: Arc::default(),
                past: tokio::sync::Mutex::new(None),
                entries: std::sync::Mutex::default(),
            };
            boards.insert(spec.queue, board);
        }
        Ok(Arc::new(Self {
            store,
            boards,
            placement_games,
            cluster_bus: OnceLock::new(),
            instance: Uuid::now_v7(),
        }))
    }

    fn board(&self, queue: &str) -> Result<&Board, LeaderboardError> {
        self.boards
            .get(queue)
            .ok_or_else(|| LeaderboardError::UnknownQueue {
                known: self.boards.keys().cloned().collect::<Vec<_>>().join(", "),
            })
    }

    /// After a result commits: its players' places from what the store now holds.
    pub async fn refresh(&self, queue: &str, players: &[Uuid]) -> Result<(), LeaderboardError> {
        let board = self.board(queue)?;
        let _moving = board.moving.lock().await;
        let rows = self.store.leaderboard_rows_of(queue, players).await?;
        let season = {
            let mut live = board.live.write().expect("leaderboard lock");
            for row in &rows {
                // A result of the season a rollover just ended, refreshed after it: its
                // players are on the frozen board, not this one.
                if row.rating.season == live.season.number
                    && row.rating.games >= self.placement_games
                {
                    live.index.upsert(standing(row));
                }
            }
            live.season.number
        };
        board.remember(season, &rows);
        Ok(())
    }

    /// The player's rank in `queue`'s current season, if they are on the board.
    pub fn rank(&self, queue: &str, player: Uuid) -> Option<u64> {
        let board = self.boards.get(queue)?;
        let live = board.live.read().expect("leaderboard lock");
        live.index.rank(player.as_u128())
    }

    /// The queue's current season.
    pub fn current_season(&self, queue: &str) -> Result<SeasonRecord, LeaderboardError> {
        Ok(self
            .board(queue)?
            .live
            .read()
            .expect("leaderboard lock")
            .season
            .clone())
    }

    /// Ends the queue's current season now and starts the next (an admin's early rollover,
    /// recorded as `admin`'s action). Answers the new season.
    pub async fn rollover(
        self: &Arc<Self>,
        queue: &str,
        admin: Option<Uuid>,
    ) -> Result<SeasonRecord, LeaderboardError> {
        let current = self.current_season(queue)?;
        let now = OffsetDateTime::now_utc().unix_timestamp();
        // On a task of its own: a caller that gives up (a request timeout) must not roll back
        // a rollover halfway; at a million players it takes longer than a request may.
        let this = self.clone();
        let queue = queue.to_owned();
        let roll = tokio::spawn(async move { this.roll(&queue, current.number, now, admin).await });
        match roll.await {
            Ok(rolled) => rolled,
            Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
            // The runtime is shutting down.
            Err(_) => Err(StoreError::Closed.into()),
        }
    }

    /// Ends season `ending` at `ended_at` (Unix seconds) unless it already ended; the new
    /// season starts where the schedule says. Returns once the new season has started; its
    /// carry-over goes on in the background.
    async fn roll(
        self: &Arc<Self>,
        queue: &str,
        ending: u32,
        ended_at: i64,
        admin: Option<Uuid>,
    ) -> Result<SeasonRecord, LeaderboardError> {
        let board = self.board(queue)?;
        let carrying = board.carrying.clone().lock_owned().await;
        let _moving = board.moving.lock().await;
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let starts = board.schedule.next_start(ended_at, now);
        let admin_action = admin.map(|admin| {
            crate::services::admin::action(
                admin,
                "season_rollover",
                Some(queue.to_owned()),
                serde_json::json!({ "ended_season": ending }),
            )
        });
        let rolled = self
            .store
            .roll_season(SeasonRollover {
                queue,
                current: ending,
                at: at(starts),
                next_starts_at: at(starts),
                next_ends_at: board.schedule.end_of(starts).map(at),
                admin_action,
            })
            .await?;
        let (season, ours) = match rolled {
            Rolled::Done(season) => {
                metrics::counter!("leaderboard_season_rollovers_total", "queue" => queue.to_owned()).increment(1);
                tracing::info!(queue, ended = ending, season = season.number, admin = ?admin, "season rolled over");
                if let Some(bus) = self.cluster_bus.get() {
                    bus.publish(BusEvent::SeasonRolled {
                        queue: queue.to_owned(),
                        ended: ending,
                    });
                }
                (season, true)
            }
            // Another node (or the schedule) was first: take what it started.
            Rolled::NotCurrent(Some(season)) => (season, false),
            Rolled::NotCurrent(None) => {
                return Err(
                    StoreError::Corrupt(format!("queue {queue} has no current season")).into(),
                );
            }
        };
        // Whoever played the new season already (a result can commit right after the flip).
        let rows = (self.store)
            .leaderboard_standings(queue, season.number, self.placement_games)
            .await?;
        let index = RankIndex::from_standings(rows.iter().map(place));
        *board.live.write().expect("leaderboard lock") = Live {
            season: season.clone(),
            index,
        };
        // What was cached as the live season's rows is now a past season's, read from its
        // frozen standings instead.
        board.entries.lock().expect("entry cache lock").clear();
        if ours {
            let this = self.clone();
            let queue = queue.to_owned();
            let current = season.number;
            tokio::spawn(async move {
                this.carry_over(&queue, ending, current).await;
                drop(carrying);
            });
        }
        Ok(season)
    }

    /// Freezes every final standing of season `ended` and carries its ratings into `current`,
    /// a batch per transaction, retrying until done (a store outage only delays it).
    async fn carry_over(&self, queue: &str, ended: u32, current: u32) {
        let Ok(board) = self.board(queue) else { return };
        let started = Instant::now();
        let reset = |stored: &StoredRating| board.carry(stored);
        let mut backoff = Backoff::default();
        // The final ranks, from the store: a result committed just before the rollover may not
        // have reached the live index yet.
        let frozen = loop {
            match self.frozen_board(queue, ended).await {
                Ok((_, frozen)) => break frozen,
                Err(LeaderboardError::Store(err)) if err.is_closed() => return,
                Err(err) => {
                    tracing::warn!(queue, season = ended, error = %err, "reading a frozen board failed; retrying");
                    backoff.wait().await;
                }
            }
        };
        let rank = |player: Uuid| frozen.rank(player.as_u128());
        let (mut after, mut batches) = (None, 0_u64);
        // SQLite's writers poll for the write lock (its busy timeout) instead of queueing for
        // it: batches back to back starved a result's transaction past its 5 s timeout. Idle as
        // long as each batch took, so every other writer gets half the time.
        let yield_between = self.store.backend() == "sqlite";
        loop {
            let batch_started = Instant::now();
            let batch = CarryOver {
                queue,
                current,
                after,
                limit: CARRY_BATCH,
                reset: &reset,
                ended,
                rank: &rank,
            };
            match self.store.carry_over(batch).await {
                Ok(Some(last)) => {
                    after = Some(last);
                    batches += 1;
                    backoff = Backoff::default();
                    if yield_between {
                        tokio::time::sleep(batch_started.elapsed()).await;
                    }
                }
                Ok(None) => break,
                Err(err) if err.is_closed() => return,
                Err(err) => {
                    tracing::warn!(queue, season = ended, error = %err, "season carry-over batch failed; retrying");
                    backoff.wait().await;
                }
            }
        }
        loop {
            match (self.store)
                .rank_standings(queue, ended, self.placement_games, &rank)
                .await
            {
                Ok(ranked) => {
                    tracing::info!(
                        queue,
                        season = ended,
                        batches,
                        batch = CARRY_BATCH,
                        ranked_after_results = ranked,
                        seconds = started.elapsed().as_secs_f64(),
                        "season carry-over done"
                    );
                    return;
                }
                Err(err) if err.is_closed() => return,
                Err(err) => {
                    tracing::warn!(queue, season = ended, error = %err, "ranking frozen standings failed; retrying");
                    backoff.wait().await;
                }
            }
        }
    }

    /// The frozen board of ended season `number`, built from the store and kept as the past
    /// season read last.
    async fn frozen_board(
        &self,
        queue: &str,
        number: u32,
    ) -> Result<(SeasonRecord, Arc<RankIndex>), LeaderboardError> {
        let board = self.board(queue)?;
        let mut past = board.past.lock().await;
        if let Some((record, index)) = past.as_ref()
            && record.number == number
        {
            return Ok((record.clone(), index.clone()));
        }
        let current = board.live.read().expect("leaderboard lock").season.number;
        let record = (self.store.seasons(queue).await?.into_iter())
            .find(|s| s.number == number && s.ended_at.is_some())
            .ok_or(LeaderboardError::NoSuchSeason { current })?;
        let rows = (self.store)
            .season_board(queue, number, self.placement_games)
            .await?;
        let index = Arc::new(RankIndex::from_standings(rows.iter().map(place)));
        drop(rows);
        tracing::info!(
            queue,
            season = number,
            players = index.len(),
            "past season's board loaded"
        );
        *past = Some((record.clone(), index.clone()));
        Ok((record, index))
    }

    /// Finishes the carry-over a stopped node left unfinished, if any (at start-up).
    async fn resume_carry_over(self: Arc<Self>, queue: String) {
        let Ok(board) = self.board(&queue) else {
            return;
        };
        let _carrying = board.carrying.clone().lock_owned().await;
        let current = board.live.read().expect("leaderboard lock").season.number;
        match self.store.oldest_uncarried_season(&queue, current).await {
            Ok(Some(ended)) => {
                tracing::info!(
                    queue,
                    season = ended,
                    "resuming an unfinished season carry-over"
                );
                self.carry_over(&queue, ended, current).await;
            }
            Ok(None) => {}
            Err(err) => {
                tracing::error!(queue, error = %err, "could not check for an unfinished season carry-over");
            }
        }
    }

    /// `stored` as it stands in its queue's current season: carried over (softly reset,
    /// counts zeroed) if the carry-over has not reached it yet.
    pub fn carried(&self, stored: StoredRating) -> StoredRating {
        let Some(board) = self.boards.get(&stored.queue) else {
            return stored;
        };
        let current = board.live.read().expect("leaderboard lock").season.number;
        if stored.season >= current {
            return stored;
        }
        stored.carried(current, &|rating: &StoredRating| board.carry(rating))
    }

    /// How a rating of `queue` carries into the next season: for the store, which carries a
    /// player's rating itself when their result comes before the carry-over.
    pub fn carry(&self, queue: &str, stored: &StoredRating) -> Option<(PlayerRating, f64)> {
        Some(self.boards.get(queue)?.carry(stored))
    }

    /// Rolls every queue's season over when its scheduled end has come, checking once a second.
    /// In a cluster: refreshes this node's boards from the store for ratings other nodes'
    /// results changed (`BusEvent::Ratings`), moves a board to the season another node rolled
    /// over to (`BusEvent::SeasonRolled`), and from now on tells the other nodes of this node's
    /// rollovers; until the bus closes.
    pub async fn follow(self: Arc<Self>, bus: Arc<dyn EventBus>) {
        let mut subscription = bus.subscribe();
        let _ = self.cluster_bus.set(bus);
        while let Some(event) = subscription.recv().await {
            match &*event {
                BusEvent::Ratings {
                    queue,
                    players,
                    from,
                } if *from != self.instance => {
                    if let Err(err) = self.refresh(queue, players).await {
                        tracing::warn!(queue, error = %err, "leaderboard not refreshed from another node's result");
                    }
                }
                BusEvent::SeasonRolled { queue, ended } => {
                    let behind = self.current_season(queue).is_ok_and(|s| s.number == *ended);
                    let now = OffsetDateTime::now_utc().unix_timestamp();
                    // The store has the new season: `roll` finds it started and takes it.
                    if behind && let Err(err) = self.roll(queue, *ended, now, None).await {
                        tracing::warn!(queue, error = %err, "leaderboard not moved to the new season");
                    }
                }
                _ => {}
            }
        }
    }

    /// Results this node applied changed `players`' ratings in `queue` (its own board already
    /// refreshed): in a cluster, the other nodes refresh theirs.
    pub fn tell_others(&self, queue: &str, players: Vec<Uuid>) {
        if let Some(bus) = self.cluster_bus.get() {
            bus.publish(BusEvent::Ratings {
                queue: queue.to_owned(),
                players,
                from: self.instance,
            });
        }
    }

    pub async fn run_schedule(self: Arc<Self>) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        for queue in self.boards.keys() {
            tokio::spawn(self.clone().resume_carry_over(queue.clone()));
        }
        loop {
            tick.tick().await;
            let now = OffsetDateTime::now_utc();
            for (queue, board) in &self.boards {
                let due = {
                    let live = board.live.read().expect("leaderboard lock");
                    (live.season.ends_at)
                        .filter(|end| *end <= now)
                        .map(|end| (live.season.number, end.unix_timestamp()))
                };
                if let Some((number, end)) = due
                    && let Err(err) = self.roll(queue, number, end, None).await
                {
                    tracing::error!(queue, season = number, error = %err, "scheduled season rollover failed; retrying");
                }
            }
        }
    }

    /// `season` of `queue` on the wire.
    pub fn season_info(
        &self,
        queue: &str,
        season: &SeasonRecord,
    ) -> Result<SeasonInfo, LeaderboardError> {
        Ok(info(season, &self.current_season(queue)?))
    }

    /// The queue's seasons, oldest first.
    pub async fn seasons(&self, queue: &str) -> Result<SeasonList, LeaderboardError> {
        let current = self.current_season(queue)?;
        let seasons = self.store.seasons(queue).await?;
        Ok(SeasonList {
            queue: queue.to_owned(),
            seasons: seasons.iter().map(|s| info(s, &current)).collect(),
        })
    }

    /// A player's final standing in every past season of the queue they played.
    pub async fn player_seasons(
        &self,
        queue: &str,
        player: Uuid,
    ) -> Result<Vec<PlayerSeason>, LeaderboardError> {
        let board = self.board(queue)?;
        // A standing the carry-over has not ranked yet: its rank is on the frozen board.
        let frozen = board.past.lock().await.clone();
        let rank_of = |season: u32| {
            (frozen.as_ref())
                .filter(|(record, _)| record.number == season)
                .and_then(|(_, index)| index.rank(player.as_u128()))
        };
        Ok(
            (self.store.player_seasons(player, queue).await?.into_iter())
                .map(|s| PlayerSeason {
                    season: s.season,
                    rank: s.rank.or_else(|| rank_of(s.season)),
                    rating: s.row.rating.display_rating,
                    games: s.row.rating.games,
                    wins: s.row.rating.wins,
                    losses: s.row.rating.losses,
                    draws: s.row.rating.draws,
                })
                .collect(),
        )
    }

    /// The board of `season` (`None`: the current one).
    async fn which(&self, queue: &str, season: Option<u32>) -> Result<Which, LeaderboardError> {
        let board = self.board(queue)?;
        let current = board.live.read().expect("leaderboard lock").season.number;
        let wanted = season.unwrap_or(current);
        if wanted == current {
            return Ok(Which::Live);
        }
        if wanted == 0 || wanted > current {
            return Err(LeaderboardError::NoSuchSeason { current });
        }
        let (record, index) = self.frozen_board(queue, wanted).await?;
        Ok(Which::Past(record, index))
    }

    /// Reads a board: `read` gets its index, the answer comes with the season it is of.
    async fn read<T>(
        &self,
        queue: &str,
        season: Option<u32>,
        read: impl FnOnce(&RankIndex) -> T,
    ) -> Result<(T, Which, SeasonInfo), LeaderboardError> {
        let which = self.which(queue, season).await?;
        let board = self.board(queue)?;
        let live = board.live.read().expect("leaderboard lock");
        let (out, info) = match &which {
            Which::Live => (read(&live.index), info(&live.season, &live.season)),
            Which::Past(record, index) => (read(index), info(record, &live.season)),
        };
        Ok((out, which, info))
    }

    /// A page: from the top, or after / before a cursor.
    pub async fn page(
        &self,
        queue: &str,
        season: Option<u32>,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<LeaderboardPage, LeaderboardError> {
        let cursor = cursor
            .map(|raw| PageCursor::decode(raw).ok_or(LeaderboardError::BadCursor))
            .transpose()?;
        let ((ranked, total), which, season) = self
            .read(queue, season, |index| {
                let ranked = match cursor {
                    None => index.after(None, limit),
                    Some(PageCursor::After(s)) => index.after(Some(&s), limit),
                    Some(PageCursor::Before(s)) => index.preceding(&s, limit),
                };
                (ranked, index.len() as u64)
            })
            .await?;
        self.window(queue, &which, season, &ranked, total).await
    }

    /// The player and up to `limit` neighbours on each side.
    pub async fn around(
        &self,
        queue: &str,
        season: Option<u32>,
        player: Uuid,
        limit: usize,
    ) -> Result<LeaderboardPage, LeaderboardError> {
        let ((ranked, total), which, season) = self
            .read(queue, season, |index| {
                (
                    index.around(player.as_u128(), limit, limit),
                    index.len() as u64,
                )
            })
            .await?;
        let ranked = ranked.ok_or(LeaderboardError::NotRanked)?;
        self.window(queue, &which, season, &ranked, total).await
    }

    /// One player's rank and percentile.
    pub async fn standing(
        &self,
        queue: &str,
        season: Option<u32>,
        player: Uuid,
    ) -> Result<LeaderboardStanding, LeaderboardError> {
        let ((ranked, total), which, season) = self
            .read(queue, season, |index| {
                (index.around(player.as_u128(), 0, 0), index.len() as u64)
            })
            .await?;
        let ranked = ranked.ok_or(LeaderboardError::NotRanked)?;
        let entry = (self.entries(queue, &which, &ranked).await?.pop())
            .ok_or(LeaderboardError::NotRanked)?;
        let percentile = 100.0 * (total - entry.rank) as f64 / total as f64;
        Ok(LeaderboardStanding {
            queue: queue.to_owned(),
            season,
            total,
            entry,
            percentile,
        })
    }

    /// A slice of a board of `total` as a page, with cursors to either side when there is more.
    async fn window(
        &self,
        queue: &str,
        which: &Which,
        season: SeasonInfo,
        ranked: &[Ranked],
        total: u64,
    ) -> Result<LeaderboardPage, LeaderboardError> {
        let next = (ranked.last())
            .filter(|last| last.rank < total)
            .map(|last| PageCursor::After(last.standing).encode());
        let prev = (ranked.first())
            .filter(|first| first.rank > 1)
            .map(|first| PageCursor::Before(first.standing).encode());
        Ok(LeaderboardPage {
            queue: queue.to_owned(),
            season,
            total,
            entries: self.entries(queue, which, ranked).await?,
            next,
            prev,
        })
    }

    /// Names and counts for a slice of the board, in its order: from the entry cache, the
    /// rest read from the store in one query (and cached).
    async fn entries(
        &self,
        queue: &str,
        which: &Which,
        ranked: &[Ranked],
    ) -> Result<Vec<LeaderboardEntry>, LeaderboardError> {
        let board = self.board(queue)?;
        let season = match which {
            Which::Live => board.live.read().expect("leaderboard lock").season.number,
            Which::Past(record, _) => record.number,
        };
        let ids: Vec<Uuid> = ranked
            .iter()
            .map(|r| Uuid::from_u128(r.standing.player))
            .collect();
        let mut rows: HashMap<Uuid, BoardRow> = HashMap::with_capacity(ids.len());
        let missing: Vec<Uuid> = {
            let cache = board.entries.lock().expect("entry cache lock");
            let fresh_since = Instant::now().checked_sub(ENTRY_TTL);
            ids.iter()
                .filter(|id| match cache.get(&(season, **id)) {
                    Some((row, cached)) if fresh_since.is_none_or(|t| *cached >= t) => {
                        rows.insert(**id, row.clone());
                        false
                    }
                    _ => true,
                })
                .copied()
                .collect()
        };
        if !missing.is_empty() {
            let read = match which {
                Which::Live => self.store.leaderboard_rows_of(queue, &missing).await?,
                Which::Past(record, _) => {
                    (self.store)
                        .season_standings_of(queue, record.number, &missing)
                        .await?
                }
            };
            board.remember(season, &read);
            rows.extend(read.into_iter().map(|row| (row.player_id, row)));
        }
        Ok(ranked
            .iter()
            .filter_map(|r| {
                let row = rows.get(&Uuid::from_u128(r.standing.player))?;
                Some(LeaderboardEntry {
                    rank: r.rank,
                    player_id: row.player_id,
                    display_name: row.display_name.clone(),
                    // The index's score: what this rank was decided on, even if a result has
                    // moved the player since.
                    rating: r.standing.score,
                    games: row.rating.games,
                    wins: row.rating.wins,
                })
            })
            .collect())
    }
}

/// How long a cached entry's name and counts are shown without a store read. Results update
/// their players' entries at once; a renamed player shows the new name within this.
const ENTRY_TTL: Duration = Duration::from_secs(10);
/// Entries cached per queue before the cache starts afresh (a few MB).
const ENTRY_CACHE_MAX: usize = 50_000;

/// The carry-over's wait before retrying a failed store call: 100 ms, doubling up to 5 s.
struct Backoff(Duration);

impl Default for Backoff {
    fn default() -> Self {
        Self(Duration::from_millis(100))
    }
}

impl Backoff {
    async fn wait(&mut self) {
        tokio::time::sleep(self.0).await;
        self.0 = (self.0 * 2).min(Duration::from_secs(5));
    }
}

/// Players per carry-over transaction: long enough to be cheap per player, short enough that a
/// result waiting on one of its rows waits a few tens of milliseconds.
const CARRY_BATCH: usize = 1_000;

impl Board {
    fn carry(&self, stored: &StoredRating) -> (PlayerRating, f64) {
        let rating = self.reset.apply(stored.rating, self.rater.initial_rating());
        (rating, self.rater.display_rating(&rating))
    }

    /// Caches rows just read from the store (a page's, or a result's players').
    fn remember(&self, season: u32, rows: &[BoardRow]) {
        let mut cache = self.entries.lock().expect("entry cache lock");
        if cache.len() + rows.len() > ENTRY_CACHE_MAX {
            cache.clear();
        }
        let now = Instant::now();
        for row in rows {
            cache.insert((season, row.player_id), (row.clone(), now));
        }
    }
}

/// A season on the wire; `current` is the queue's current season (whose end is the next reset).
fn info(season: &SeasonRecord, current: &SeasonRecord) -> SeasonInfo {
    SeasonInfo {
        number: season.number,
        started_at: season.started_at,
        ends_at: season.ended_at.or(season.ends_at),
        current: season.number == current.number,
        next_reset: current.ends_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_anything_else() {
        let s = Standing {
            score: -12.5,
            reached_at: -3,
            player: u128::MAX - 7,
        };
        for cursor in [PageCursor::After(s), PageCursor::Before(s)] {
            let raw = cursor.encode();
            assert!(regex_like(&raw), "{raw}");
            assert_eq!(PageCursor::decode(&raw), Some(cursor));
        }
        for bad in [
            "",
            "a",
            "c0.0.0",
            "a7ff8000000000000.0.0",
            "azz.1.2",
            "a0000000000000000.1",
        ] {
            assert_eq!(PageCursor::decode(bad), None, "{bad}");
        }
    }

    /// The shape the OpenAPI document gives cursors (`CURSOR_PATTERN`), checked by hand.
    fn regex_like(raw: &str) -> bool {
        let mut parts = raw[1..].split('.');
        raw.starts_with(['a', 'b'])
            && parts.next().is_some_and(|p| p.len() == 16)
            && parts.next().is_some_and(|p| p.parse::<i64>().is_ok())
            && parts.next().is_some_and(|p| p.len() == 32)
    }
}
