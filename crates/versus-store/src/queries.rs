//! Every [`Store`] method, written once for both backends: its SQL and its logic. The only
//! per-backend code is the [`Dialect`] impl and the connection setup in `sqlite.rs` /
//! `postgres.rs`.
//!
//! Adding a table and its queries:
//! 1. A migration with the same number in `migrations/sqlite` and `migrations/postgres` (the
//!    DDL is per dialect; keep the column names and meaning identical).
//! 2. The method on [`Store`] (`lib.rs`), implemented below. One statement runs on a pooled
//!    connection (`self.pool().acquire()`); anything that reads and then writes runs in
//!    `begin_write(self.pool())`, locks what its decision depends on with
//!    [`select_for_update`], and ends with `tx.commit()` (returning early rolls back).
//! 3. SQL both dialects accept: `$1, $2, …` placeholders, `ON CONFLICT (…) DO UPDATE SET … =
//!    excluded.…` upserts, `RETURNING`, no casts. Bind plain Rust values ([`Uuid`], `&str`,
//!    `bool`, `&[u8]`, integers), timestamps as [`Timestamp::new`]`(t)?`, JSON as
//!    `sqlx::types::Json`. Read rows into a `#[derive(sqlx::FromRow)]` struct (`record.rs`)
//!    with timestamps as [`Timestamp`].
//! 4. Something the dialects really spell differently goes into [`Dialect`], not into a branch
//!    here.
//! 5. A test in `tests/contract.rs`, which runs it on both backends.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use sqlx::{AssertSqlSafe, Pool, Transaction};
use time::OffsetDateTime;
use tracing::instrument;
use uuid::Uuid;
use versus_core::account::Username;
use versus_core::party::PartyError;
use versus_core::session::SessionState;

use crate::admin::{self, AdminAction};
use crate::dialect::{Dialect, Session, Timestamp, select_for_update, sql};
use crate::parties::{self, PartyFn, PartyRecord};
use crate::record::{
    PLAYER_COLUMNS, PlayerRow, TOKEN_COLUMNS, TokenRow, TokenState, classify,
    classify_player_write, decode_preferences, encode_preferences,
};
use crate::seasons::{self, CarryOver, Rolled, SeasonRecord, SeasonRollover, SeasonStanding};
use crate::sessions::{
    self, BoardRow, BoardStanding, Cursor, HistoryRecord, MatchRecord, NewSession, Recorded,
    ResultToRecord, SessionMove, SessionRecord, StoredRating, Transitioned,
};
use crate::{
    Credentials, DeviceAccount, MatchmakingPreferences, NewPlayer, NewRefreshToken, Player,
    PlayerPatch, Rotation, Store, StoreError, StoreResult, TokenFamily,
};

/// A store on one dialect: all a backend provides to get every [`Store`] method.
pub(crate) trait Backend: Send + Sync + 'static {
    type Db: Dialect;
    fn pool(&self) -> &Pool<Self::Db>;
}

async fn begin_write<D: Dialect>(pool: &Pool<D>) -> StoreResult<Transaction<'static, D>> {
    Ok(pool.begin_with(D::BEGIN_WRITE).await?)
}

#[async_trait]
impl<B: Backend> Store for B {
    fn backend(&self) -> &'static str {
        B::Db::BACKEND
    }

    async fn ping(&self) -> StoreResult<Duration> {
        let started = Instant::now();
        let mut db = self.pool().acquire().await?;
        sql("SELECT 1").execute(&mut db).await?;
        Ok(started.elapsed())
    }

    async fn close(&self) {
        self.pool().close().await;
    }

    #[instrument(skip_all, fields(player.id = %player.id))]
    async fn create_player(&self, player: NewPlayer) -> StoreResult<Player> {
        let mut db = self.pool().acquire().await?;
        insert_player(&mut db, player).await
    }

    #[instrument(skip_all, fields(player.id = %guest.id))]
    async fn device_account(
        &self,
        device_hash: &[u8],
        guest: NewPlayer,
    ) -> StoreResult<DeviceAccount> {
        // Read first, outside a write transaction: logging in with a known device is the common
        // case and should not take SQLite's write lock.
        if let Some(player) = player_by_device(self.pool(), device_hash).await? {
            return Ok(DeviceAccount::Existing(player));
        }
        let created_at = Timestamp::new(guest.created_at)?;
        let mut tx = begin_write(self.pool()).await?;
        let player = insert_player(&mut tx, guest).await?;
        let bound = sql(
            "INSERT INTO player_devices (device_hash, player_id, created_at) \
                         VALUES ($1, $2, $3) ON CONFLICT (device_hash) DO NOTHING",
        )
        .bind(device_hash)
        .bind(player.id)
        .bind(created_at)
        .execute(&mut tx)
        .await
        .map_err(classify)?;
        if bound == 0 {
            // A concurrent first login of this device bound it since the read above (PostgreSQL
            // waited for it to commit): drop the guest made here and answer with that account.
            drop(tx);
            return player_by_device(self.pool(), device_hash)
                .await?
                .map(DeviceAccount::Existing)
                .ok_or(StoreError::UnknownPlayer);
        }
        tx.commit().await?;
        Ok(DeviceAccount::Created(player))
    }

    #[instrument(skip(self, username, password_hash))]
    async fn link_password(
        &self,
        player_id: Uuid,
        username: &Username,
        password_hash: &str,
        now: OffsetDateTime,
    ) -> StoreResult<Player> {
        let now = Timestamp::new(now)?;
        let mut db = self.pool().acquire().await?;
        // `password_hash IS NULL` in the same statement: two concurrent links cannot both win.
        // SET reads the old row, so a display name still equal to the old username follows it.
        let row: Option<PlayerRow> = sql(AssertSqlSafe(format!(
            "UPDATE players SET \
                 display_name = CASE WHEN display_name = username THEN $1 ELSE display_name END, \
                 username = $1, username_key = $2, password_hash = $3, updated_at = $4 \
             WHERE id = $5 AND password_hash IS NULL \
             RETURNING {PLAYER_COLUMNS}"
        )))
        .bind(username.as_str())
        .bind(username.key())
        .bind(password_hash)
        .bind(now)
        .bind(player_id)
        .fetch_optional(&mut db)
        .await
        .map_err(classify)?;
        if let Some(row) = row {
            return row.into_player();
        }
        let exists: Option<(Uuid,)> = sql("SELECT id FROM players WHERE id = $1")
            .bind(player_id)
            .fetch_optional(&mut db)
            .await?;
        Err(match exists {
            Some(_) => StoreError::AlreadyLinked,
            None => StoreError::UnknownPlayer,
        })
    }

    #[instrument(skip(self))]
    async fn player(&self, id: Uuid) -> StoreResult<Option<Player>> {
        let mut db = self.pool().acquire().await?;
        let row: Option<PlayerRow> = sql(AssertSqlSafe(format!(
            "SELECT {PLAYER_COLUMNS} FROM players WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&mut db)
        .await?;
        row.map(PlayerRow::into_player).transpose()
    }

    #[instrument(skip(self))]
    async fn player_count(&self) -> StoreResult<u64> {
        let mut db = self.pool().acquire().await?;
        let (count,): (i64,) = sql("SELECT COUNT(*) FROM players")
            .fetch_optional(&mut db)
            .await?
            .unwrap_or((0,));
        Ok(u64::try_from(count).unwrap_or(0))
    }

    #[instrument(skip_all, fields(username = %username))]
    async fn credentials_by_username(
        &self,
        username: &Username,
    ) -> StoreResult<Option<Credentials>> {
        #[derive(sqlx::FromRow)]
        struct Row {
            #[sqlx(flatten)]
            player: PlayerRow,
            password_hash: Option<String>,
        }
        let mut db = self.pool().acquire().await?;
        let row: Option<Row> = sql(AssertSqlSafe(format!(
            "SELECT {PLAYER_COLUMNS}, password_hash FROM players WHERE username_key = $1"
        )))
        .bind(username.key())
        .fetch_optional(&mut db)
        .await?;
        row.map(|row| {
            Ok(Credentials {
                player: row.player.into_player()?,
                password_hash: row.password_hash,
            })
        })
        .transpose()
    }

    #[instrument(skip(self, patch))]
    async fn update_player(
        &self,
        id: Uuid,
        patch: PlayerPatch,
        now: OffsetDateTime,
    ) -> StoreResult<Option<Player>> {
        let display_name = patch.display_name.as_ref().map(|d| d.as_str());
        let set_region = patch.region.is_some();
        let region = patch
            .region
            .as_ref()
            .and_then(|r| r.as_ref().map(|r| r.as_str()));
        let now = Timestamp::new(now)?;
        let mut db = self.pool().acquire().await?;
        // One statement, so no transaction is needed for it to be atomic.
        let row: Option<PlayerRow> = sql(AssertSqlSafe(format!(
            "UPDATE players SET \
                 display_name = COALESCE($1, display_name), \
                 region = CASE WHEN $2 THEN $3 ELSE region END, \
                 updated_at = $4 \
             WHERE id = $5 \
             RETURNING {PLAYER_COLUMNS}"
        )))
        .bind(display_name)
        .bind(set_region)
        .bind(region)
        .bind(now)
        .bind(id)
        .fetch_optional(&mut db)
        .await?;
        row.map(PlayerRow::into_player).transpose()
    }

    #[instrument(skip_all, fields(player.id = %token.player_id, token.family = %token.family_id))]
    async fn insert_refresh_token(&self, token: NewRefreshToken) -> StoreResult<()> {
        let mut db = self.pool().acquire().await?;
        insert_token(&mut db, &token, token.family_id, token.player_id).await
    }

    #[instrument(skip_all)]
    async fn rotate_refresh_token(
        &self,
        presented_hash: &[u8],
        next: NewRefreshToken,
        grace: time::Duration,
        now: OffsetDateTime,
    ) -> StoreResult<Rotation> {
        let now = Timestamp::new(now)?;
        let mut tx = begin_write(self.pool()).await?;
        if lock_token_owner(&mut tx, presented_hash).await?.is_none() {
            return Ok(Rotation::Unknown);
        }
        // A new statement after the lock: under PostgreSQL's READ COMMITTED it sees whatever
        // the previous holder of the lock committed, e.g. `used_at` set by the winner of a race.
        let Some(row) = token_where(&mut tx, "token_hash", presented_hash).await? else {
            return Ok(Rotation::Unknown);
        };
        match row.state(now) {
            // Dropping `tx` rolls it back: nothing is stored, nothing spent.
            TokenState::Expired => Ok(Rotation::Expired),
            TokenState::Spent => {
                // Decided under the same lock as the rotation it repeats, so of two concurrent
                // presentations one rotates and the other sees that rotation and retries it.
                if let Some((rotated_at, successor_id)) = row.retry_window(now, grace) {
                    let successor = token_where(&mut tx, "id", successor_id).await?;
                    let repeats = successor.is_some_and(|successor| {
                        matches!(successor.state(now), TokenState::Live)
                            && successor.token_hash == next.token_hash
                    });
                    if repeats {
                        return Ok(Rotation::Retried {
                            player_id: row.player_id,
                            family_id: row.family_id,
                            rotated_at: rotated_at.get(),
                        });
                    }
                }
                revoke_family(&mut tx, row.family_id, now).await?;
                tx.commit().await?;
                tracing::debug!(player.id = %row.player_id, token.family = %row.family_id,
                    "refresh token presented again; family revoked");
                Ok(Rotation::Reused {
                    player_id: row.player_id,
                    family_id: row.family_id,
                })
            }
            TokenState::Live => {
                sql("UPDATE refresh_tokens SET used_at = $1, replaced_by = $2 \
                     WHERE token_hash = $3")
                .bind(now)
                .bind(next.id)
                .bind(presented_hash)
                .execute(&mut tx)
                .await?;
                insert_token(&mut tx, &next, row.family_id, row.player_id).await?;
                tx.commit().await?;
                Ok(Rotation::Rotated {
                    player_id: row.player_id,
                    family_id: row.family_id,
                    rotated_at: now.get(),
                })
            }
        }
    }

    #[instrument(skip_all)]
    async fn revoke_refresh_family(
        &self,
        token_hash: &[u8],
        now: OffsetDateTime,
    ) -> StoreResult<Option<TokenFamily>> {
        let now = Timestamp::new(now)?;
        let mut tx = begin_write(self.pool()).await?;
        if lock_token_owner(&mut tx, token_hash).await?.is_none() {
            return Ok(None);
        }
        let row: Option<(Uuid, Uuid)> =
            sql("SELECT family_id, player_id FROM refresh_tokens WHERE token_hash = $1")
                .bind(token_hash)
                .fetch_optional(&mut tx)
                .await?;
        let Some((family_id, player_id)) = row else {
            return Ok(None);
        };
        revoke_family(&mut tx, family_id, now).await?;
        tx.commit().await?;
        Ok(Some(TokenFamily {
            player_id,
            family_id,
        }))
    }

    #[instrument(skip(self))]
    async fn revoke_all_refresh_tokens(
        &self,
        player_id: Uuid,
        now: OffsetDateTime,
    ) -> StoreResult<u64> {
        let now = Timestamp::new(now)?;
        let mut tx = begin_write(self.pool()).await?;
        // The lock rotation takes: a rotation racing this cannot issue a token it misses.
        select_for_update("SELECT id FROM players WHERE id = $1")
            .bind(player_id)
            .execute(&mut tx)
            .await?;
        let revoked = sql("UPDATE refresh_tokens SET revoked_at = $1 \
                           WHERE player_id = $2 AND revoked_at IS NULL")
        .bind(now)
        .bind(player_id)
        .execute(&mut tx)
        .await?;
        tx.commit().await?;
        Ok(revoked)
    }

    #[instrument(skip(self))]
    async fn matchmaking_preferences(
        &self,
        player_id: Uuid,
    ) -> StoreResult<Option<MatchmakingPreferences>> {
        let mut db = self.pool().acquire().await?;
        let row = sql("SELECT regions, modes FROM matchmaking_preferences WHERE player_id = $1")
            .bind(player_id)
            .fetch_optional(&mut db)
            .await?;
        row.map(|columns| decode_preferences(player_id, columns))
            .transpose()
    }

    #[instrument(skip(self, prefs))]
    async fn set_matchmaking_preferences(
        &self,
        player_id: Uuid,
        prefs: &MatchmakingPreferences,
        now: OffsetDateTime,
    ) -> StoreResult<()> {
        let (regions, modes) = encode_preferences(prefs);
        let now = Timestamp::new(now)?;
        let mut db = self.pool().acquire().await?;
        sql(
            "INSERT INTO matchmaking_preferences (player_id, regions, modes, updated_at) \
             VALUES ($1, $2, $3, $4) \
             ON CONFLICT (player_id) DO UPDATE SET regions = excluded.regions, \
             modes = excluded.modes, updated_at = excluded.updated_at",
        )
        .bind(player_id)
        .bind(regions)
        .bind(modes)
        .bind(now)
        .execute(&mut db)
        .await
        .map_err(classify_player_write)?;
        Ok(())
    }
    #[instrument(skip(self, action))]
    async fn set_admin(
        &self,
        username: &Username,
        admin: bool,
        action: &AdminAction,
    ) -> StoreResult<Option<Player>> {
        admin::set_admin(self.pool(), username, admin, action).await
    }

    #[instrument(skip(self, action))]
    async fn set_banned(
        &self,
        player_id: Uuid,
        banned: bool,
        action: &AdminAction,
    ) -> StoreResult<Option<Player>> {
        admin::set_banned(self.pool(), player_id, banned, action).await
    }

    #[instrument(skip_all, fields(action = %action.action))]
    async fn record_admin_action(&self, action: &AdminAction) -> StoreResult<()> {
        admin::record(self.pool(), action).await
    }

    #[instrument(skip(self))]
    async fn admin_actions(
        &self,
        before: Option<Cursor>,
        limit: u32,
    ) -> StoreResult<Vec<AdminAction>> {
        admin::actions(self.pool(), before, limit).await
    }

    #[instrument(skip_all, fields(party.id = %party.id))]
    async fn create_party(&self, party: &PartyRecord) -> StoreResult<Result<(), PartyError>> {
        parties::create(self.pool(), party).await
    }

    #[instrument(skip(self))]
    async fn party(&self, id: Uuid) -> StoreResult<Option<PartyRecord>> {
        parties::get(self.pool(), id).await
    }

    #[instrument(skip(self))]
    async fn party_of(&self, player_id: Uuid) -> StoreResult<Option<Uuid>> {
        parties::of_player(self.pool(), player_id).await
    }

    #[instrument(skip(self, change))]
    async fn update_party(
        &self,
        id: Uuid,
        now: OffsetDateTime,
        change: &mut PartyFn<'_>,
    ) -> StoreResult<Option<Result<PartyRecord, PartyError>>> {
        parties::update(self.pool(), id, now, change).await
    }

    #[instrument(skip(self))]
    async fn running_ready_checks(&self) -> StoreResult<Vec<(Uuid, OffsetDateTime)>> {
        parties::running_ready_checks(self.pool()).await
    }

    #[instrument(skip_all, fields(players = players.len()))]
    async fn seed_rated_players(&self, players: &[crate::SeededPlayer]) -> StoreResult<u64> {
        crate::bulk::seed(self.pool(), players).await
    }

    #[instrument(skip(self))]
    async fn open_season(
        &self,
        queue: &str,
        started_at: OffsetDateTime,
        ends_at: Option<OffsetDateTime>,
    ) -> StoreResult<SeasonRecord> {
        seasons::open(self.pool(), queue, started_at, ends_at).await
    }

    #[instrument(skip(self))]
    async fn reschedule_season(
        &self,
        queue: &str,
        season: u32,
        ends_at: Option<OffsetDateTime>,
    ) -> StoreResult<()> {
        seasons::reschedule(self.pool(), queue, season, ends_at).await
    }

    #[instrument(skip(self))]
    async fn seasons(&self, queue: &str) -> StoreResult<Vec<SeasonRecord>> {
        seasons::list(self.pool(), queue).await
    }

    #[instrument(skip_all, fields(queue = roll.queue, season = roll.current))]
    async fn roll_season(&self, roll: SeasonRollover<'_>) -> StoreResult<Rolled> {
        seasons::roll(self.pool(), roll).await
    }

    #[instrument(skip_all, fields(queue = batch.queue, season = batch.current))]
    async fn carry_over(&self, batch: CarryOver<'_>) -> StoreResult<Option<Uuid>> {
        seasons::carry_over(self.pool(), batch).await
    }

    #[instrument(skip(self))]
    async fn oldest_uncarried_season(&self, queue: &str, current: u32) -> StoreResult<Option<u32>> {
        seasons::oldest_uncarried(self.pool(), queue, current).await
    }

    #[instrument(skip(self, rank))]
    async fn rank_standings(
        &self,
        queue: &str,
        season: u32,
        min_games: u64,
        rank: &(dyn Fn(Uuid) -> Option<u64> + Send + Sync + '_),
    ) -> StoreResult<u64> {
        seasons::rank_standings(self.pool(), queue, season, min_games, rank).await
    }

    #[instrument(skip(self))]
    async fn season_board(
        &self,
        queue: &str,
        season: u32,
        min_games: u64,
    ) -> StoreResult<Vec<BoardStanding>> {
        seasons::board(self.pool(), queue, season, min_games).await
    }

    #[instrument(skip(self))]
    async fn leaderboard_standings(
        &self,
        queue: &str,
        season: u32,
        min_games: u64,
    ) -> StoreResult<Vec<BoardStanding>> {
        sessions::board_standings(self.pool(), queue, season, min_games).await
    }

    #[instrument(skip(self, players))]
    async fn season_standings_of(
        &self,
        queue: &str,
        season: u32,
        players: &[Uuid],
    ) -> StoreResult<Vec<BoardRow>> {
        seasons::standings_of(self.pool(), queue, season, players).await
    }

    #[instrument(skip(self))]
    async fn player_seasons(
        &self,
        player_id: Uuid,
        queue: &str,
    ) -> StoreResult<Vec<SeasonStanding>> {
        seasons::player_standings(self.pool(), player_id, queue).await
    }

    #[instrument(skip_all, fields(sessions = sessions.len()))]
    async fn create_sessions(&self, sessions: &[NewSession]) -> StoreResult<()> {
        sessions::create(self.pool(), sessions).await
    }

    #[instrument(skip(self))]
    async fn session(&self, id: Uuid) -> StoreResult<Option<SessionRecord>> {
        let mut db = self.pool().acquire().await?;
        sessions::read(&mut db, id).await
    }

    #[instrument(skip(self))]
    async fn sessions_in_states(&self, states: &[SessionState]) -> StoreResult<Vec<SessionRecord>> {
        sessions::in_states(self.pool(), states).await
    }

    #[instrument(skip_all, fields(moves = moves.len()))]
    async fn transition_sessions(&self, moves: &[SessionMove]) -> StoreResult<Vec<Transitioned>> {
        sessions::transition(self.pool(), moves).await
    }

    #[instrument(skip(self, players))]
    async fn add_session_players(
        &self,
        id: Uuid,
        players: &[(Uuid, usize)],
        at: OffsetDateTime,
    ) -> StoreResult<Option<SessionRecord>> {
        sessions::add_players(self.pool(), id, players, at).await
    }

    #[instrument(skip(self))]
    async fn player_rating(
        &self,
        player_id: Uuid,
        queue: &str,
    ) -> StoreResult<Option<StoredRating>> {
        sessions::rating(self.pool(), player_id, queue).await
    }

    #[instrument(skip(self))]
    async fn player_ratings(&self, player_id: Uuid) -> StoreResult<Vec<StoredRating>> {
        sessions::ratings(self.pool(), player_id).await
    }

    #[instrument(skip(self))]
    async fn leaderboard_rows(
        &self,
        queue: &str,
        season: u32,
        min_games: u64,
    ) -> StoreResult<Vec<BoardRow>> {
        sessions::board(self.pool(), queue, season, min_games).await
    }

    #[instrument(skip(self, players))]
    async fn leaderboard_rows_of(
        &self,
        queue: &str,
        players: &[Uuid],
    ) -> StoreResult<Vec<BoardRow>> {
        sessions::board_rows(self.pool(), queue, players).await
    }

    #[instrument(skip_all, fields(session.id = %result.session_id))]
    async fn record_result(&self, result: ResultToRecord<'_>) -> StoreResult<Recorded> {
        sessions::record_result(self.pool(), result).await
    }

    #[instrument(skip(self))]
    async fn rating_history(
        &self,
        player_id: Uuid,
        queue: &str,
        season: Option<u32>,
        before: Option<Cursor>,
        limit: u32,
    ) -> StoreResult<Vec<HistoryRecord>> {
        sessions::rating_history(self.pool(), player_id, queue, season, before, limit).await
    }

    #[instrument(skip(self))]
    async fn match_history(
        &self,
        player_id: Uuid,
        before: Option<Cursor>,
        limit: u32,
    ) -> StoreResult<Vec<MatchRecord>> {
        sessions::match_history(self.pool(), player_id, before, limit).await
    }
}

/// Locks the `players` row owning the token and returns its id; `None` when the token is
/// unknown. Every refresh-token transaction takes this one lock first, so they are serialised
/// per player: of two concurrent rotations of one token the second waits, then sees it spent;
/// a logout racing a rotation cannot miss the freshly issued token. One lock per transaction,
/// so no deadlocks. (PostgreSQL's `FOR NO KEY UPDATE` does not block foreign-key checks.)
async fn lock_token_owner(tx: &mut impl Session, token_hash: &[u8]) -> StoreResult<Option<Uuid>> {
    let owner: Option<(Uuid,)> = select_for_update(
        "SELECT id FROM players \
         WHERE id = (SELECT player_id FROM refresh_tokens WHERE token_hash = $1)",
    )
    .bind(token_hash)
    .fetch_optional(tx)
    .await?;
    Ok(owner.map(|(id,)| id))
}

/// The refresh token whose `column` (`token_hash` or `id`, both unique) is `value`.
async fn token_where<'q>(
    on: &mut impl Session,
    column: &'static str,
    value: impl crate::dialect::Param<'q>,
) -> StoreResult<Option<TokenRow>> {
    sql(AssertSqlSafe(format!(
        "SELECT {TOKEN_COLUMNS} FROM refresh_tokens WHERE {column} = $1"
    )))
    .bind(value)
    .fetch_optional(on)
    .await
}

/// The player the device is bound to, read on a pooled connection.
async fn player_by_device<D: Dialect>(
    pool: &Pool<D>,
    device_hash: &[u8],
) -> StoreResult<Option<Player>> {
    let mut db = pool.acquire().await?;
    let row: Option<PlayerRow> = sql(AssertSqlSafe(format!(
        "SELECT {PLAYER_COLUMNS} FROM players \
         WHERE id = (SELECT player_id FROM player_devices WHERE device_hash = $1)"
    )))
    .bind(device_hash)
    .fetch_optional(&mut db)
    .await?;
    row.map(PlayerRow::into_player).transpose()
}

async fn insert_player(on: &mut impl Session, player: NewPlayer) -> StoreResult<Player> {
    let created_at = Timestamp::new(player.created_at)?;
    sql("INSERT INTO players \
         (id, username, username_key, display_name, password_hash, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $6)")
    .bind(player.id)
    .bind(player.username.as_str())
    .bind(player.username.key())
    .bind(player.display_name.as_str())
    .bind(player.password_hash.as_deref())
    .bind(created_at)
    .execute(on)
    .await
    .map_err(classify)?;
    Ok(Player {
        id: player.id,
        has_password: player.password_hash.is_some(),
        username: player.username,
        display_name: player.display_name,
        email: None,
        region: None,
        created_at: created_at.get(),
        updated_at: created_at.get(),
        banned: false,
        admin: false,
    })
}

/// Revokes every live token of the family.
async fn revoke_family(tx: &mut impl Session, family_id: Uuid, now: Timestamp) -> StoreResult<()> {
    sql("UPDATE refresh_tokens SET revoked_at = $1 WHERE family_id = $2 AND revoked_at IS NULL")
        .bind(now)
        .bind(family_id)
        .execute(tx)
        .await?;
    Ok(())
}

async fn insert_token(
    on: &mut impl Session,
    token: &NewRefreshToken,
    family_id: Uuid,
    player_id: Uuid,
) -> StoreResult<()> {
    sql("INSERT INTO refresh_tokens \
         (id, family_id, player_id, token_hash, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6)")
    .bind(token.id)
    .bind(family_id)
    .bind(player_id)
    .bind(&token.token_hash)
    .bind(Timestamp::new(token.created_at)?)
    .bind(Timestamp::new(token.expires_at)?)
    .execute(on)
    .await
    .map_err(classify)?;
    Ok(())
}
