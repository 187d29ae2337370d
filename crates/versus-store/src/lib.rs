//! Durable storage for Versus: one [`Store`] trait, implemented on SQLite (the embedded default)
//! and on PostgreSQL (scale-out), with the same migrations semantics and the same contract tests.
//!
//! Architecture invariant: every method is a complete unit of work. When it returns `Ok`, what it
//! wrote is committed (durable); callers never see transactions or SQL.
//!
//! Timestamps are stored with microsecond precision, in UTC: the store truncates every
//! `OffsetDateTime` it writes with [`stored_timestamp`], so what is read back equals what was
//! written (after that truncation) on both backends. The `Player` returned by
//! [`Store::create_player`] and [`Store::update_player`] already carries the stored values.
//!
//! Every method's SQL and logic is written once, in `queries.rs`, for both backends; what the
//! dialects spell differently is the `Dialect` seam in `dialect.rs`. `sqlite.rs` and
//! `postgres.rs` keep only connection setup, pragmas, migrations and their side of that seam.
//!
//! Migrations live in `migrations/sqlite` and `migrations/postgres`, one file per step in each,
//! same number and same meaning (`0001_accounts.sql`, then `0002_…`). They are embedded and run
//! by `SqliteStore::open` / `PostgresStore::connect`. Never edit a released file: sqlx checks
//! their checksums; add the next number instead.

use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;
use versus_core::account::{DisplayName, Region, Username};
use versus_core::party::PartyError;
use versus_core::session::{Actor, SessionState};

mod admin;
mod bulk;
mod dialect;
mod parties;
mod postgres;
mod queries;
mod record;
mod seasons;
mod sessions;
mod sqlite;
#[cfg(feature = "testing")]
pub mod testing;

/// `true` when backend tests must run rather than be skipped (`CI=true` or
/// `VERSUS_REQUIRE_BACKENDS=1`): outside the `testing` feature too, for the other engines' test
/// helpers (Redis, NATS) in the server crate.
pub fn backends_required() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true"))
        || std::env::var("VERSUS_REQUIRE_BACKENDS").is_ok_and(|v| v == "1")
}

/// A test's backend `engine` at `at` did not answer (`why`): panics when backends are required
/// ([`backends_required`]), else prints `SKIPPED (<engine> unreachable at <at>): <why>` so the
/// caller can skip. `at` must not hold a password.
pub fn skip_unreachable(engine: &str, at: &str, why: &str) {
    if backends_required() {
        panic!(
            "{engine} unreachable at {at}: {why} (backend tests are required because CI=true or \
             VERSUS_REQUIRE_BACKENDS=1; set VERSUS_TEST_{}_URL to a reachable server)",
            engine.to_uppercase()
        );
    }
    eprintln!("SKIPPED ({engine} unreachable at {at}): {why}");
}

pub use admin::AdminAction;
pub use bulk::SeededPlayer;
pub use parties::{PartyFn, PartyRecord};
pub use postgres::PostgresStore;
pub use record::stored_timestamp;
pub use seasons::{
    CarryOver, MAX_CARRY_BATCH, Rolled, SeasonRecord, SeasonRollover, SeasonStanding,
};
pub use sessions::{
    BoardRow, BoardStanding, Cursor, HistoryRecord, MatchRecord, NewSession, Placement, RateFn,
    RatedResult, RatingUpdate, Recorded, ResetFn, ResultToRecord, RosterRating, SessionMove,
    SessionRecord, StoredRating, TransitionRecord, Transitioned,
};
pub use sqlite::SqliteStore;

/// A player account as stored. The password hash is deliberately not part of it: it is only
/// read by [`Store::credentials_by_username`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Player {
    pub id: Uuid,
    pub username: Username,
    pub display_name: DisplayName,
    pub email: Option<String>,
    pub region: Option<Region>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub banned: bool,
    /// May use the admin API (`versus admin grant`).
    pub admin: bool,
    /// `false` for a guest account (made by a device login) until [`Store::link_password`].
    pub has_password: bool,
}

#[derive(Debug, Clone)]
pub struct NewPlayer {
    pub id: Uuid,
    pub username: Username,
    pub display_name: DisplayName,
    /// A PHC string (argon2id); the store never sees a plain password. `None` for a guest
    /// account, which logs in with its device until it is linked.
    pub password_hash: Option<String>,
    pub created_at: OffsetDateTime,
}

/// A partial update: `None` leaves a field alone. `region: Some(None)` clears the region.
#[derive(Debug, Clone, Default)]
pub struct PlayerPatch {
    pub display_name: Option<DisplayName>,
    pub region: Option<Option<Region>>,
}

#[derive(Debug, Clone)]
pub struct Credentials {
    pub player: Player,
    /// `None` for a guest account: no password logs into it.
    pub password_hash: Option<String>,
}

/// The account a device logged into, see [`Store::device_account`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceAccount {
    /// The device was already bound to this account.
    Existing(Player),
    /// The device was new: this guest account was created and bound to it.
    Created(Player),
}

impl DeviceAccount {
    pub fn player(&self) -> &Player {
        match self {
            Self::Existing(player) | Self::Created(player) => player,
        }
    }
}

/// One refresh token. Only its SHA-256 hash is stored. Tokens issued by rotation share the
/// `family_id` of the login that started the chain, so re-use of a rotated token can revoke
/// the whole family.
#[derive(Debug, Clone)]
pub struct NewRefreshToken {
    pub id: Uuid,
    pub family_id: Uuid,
    pub player_id: Uuid,
    pub token_hash: Vec<u8>,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
}

/// A login's line of refresh tokens: the player and the family every rotation stays in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenFamily {
    pub player_id: Uuid,
    pub family_id: Uuid,
}

/// What presenting a refresh token for rotation did. Exactly one outcome, decided atomically:
/// two concurrent rotations of the same token never store two successors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotation {
    /// The presented token was live; it is now spent (at `rotated_at`, as stored) and `next` is
    /// stored in its family.
    Rotated {
        player_id: Uuid,
        family_id: Uuid,
        rotated_at: OffsetDateTime,
    },
    /// The presented token was spent at `rotated_at`, less than the grace ago, its successor is
    /// still live and is the `next` offered again: a client repeating a rotation whose answer it
    /// lost. Nothing was written; the caller answers with that successor again.
    Retried {
        player_id: Uuid,
        family_id: Uuid,
        rotated_at: OffsetDateTime,
    },
    /// The token had already been rotated (or revoked by logout) and this is no retry: it is
    /// being replayed. The whole family is now revoked.
    Reused { player_id: Uuid, family_id: Uuid },
    /// The token is past its expiry; nothing was stored.
    Expired,
    /// No such token.
    Unknown,
}

/// Where and how a player likes to be matched: regions best first, modes (queue names) in the
/// player's order. Both lists are stored and read back exactly, order and duplicates included;
/// empty lists are allowed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MatchmakingPreferences {
    pub regions: Vec<Region>,
    pub modes: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A write referred to a player that does not exist.
    #[error("no such player")]
    UnknownPlayer,
    #[error("username is already taken")]
    UsernameTaken,
    /// [`Store::link_password`] on an account that already has a password.
    #[error("the account already has a username and password")]
    AlreadyLinked,
    #[error("a record with this id already exists")]
    DuplicateId,
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// What writes for the caller has stopped (the server is shutting down).
    #[error("the store is closed")]
    Closed,
    #[error("migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
}

impl StoreError {
    /// The database was too busy to take the write in time (SQLite's lock held past its busy
    /// timeout; a pool out of connections): worth retrying, not a fault.
    pub fn is_busy(&self) -> bool {
        match self {
            Self::Database(sqlx::Error::PoolTimedOut) => true,
            Self::Database(sqlx::Error::Database(db)) => {
                // SQLITE_BUSY and SQLITE_LOCKED, with or without extended codes.
                db.code().is_some_and(|code| {
                    let primary = code.parse::<i32>().map(|c| c & 0xff);
                    matches!(primary, Ok(5 | 6))
                }) && self.backend_is_sqlite()
            }
            _ => false,
        }
    }

    fn backend_is_sqlite(&self) -> bool {
        matches!(self, Self::Database(sqlx::Error::Database(db))
            if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some())
    }

    /// The store was closed (the server is stopping): retrying cannot help.
    pub fn is_closed(&self) -> bool {
        matches!(self, Self::Closed | Self::Database(sqlx::Error::PoolClosed))
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// `"sqlite"` or `"postgres"`, for health reports and logs.
    fn backend(&self) -> &'static str;

    /// A cheap round trip to the database; returns how long it took.
    async fn ping(&self) -> StoreResult<Duration>;

    /// Waits for in-flight queries and closes every connection.
    async fn close(&self);

    async fn create_player(&self, player: NewPlayer) -> StoreResult<Player>;
    /// The account bound to the device whose id hashes to `device_hash` (SHA-256, 32 bytes);
    /// when there is none, creates `guest` (normally without a password) and binds the device
    /// to it, atomically. Two concurrent first logins of one device end in one account, the
    /// other answered as [`DeviceAccount::Existing`]. [`StoreError::UsernameTaken`] when the
    /// guest's generated username is taken: the caller picks another and calls again.
    async fn device_account(
        &self,
        device_hash: &[u8],
        guest: NewPlayer,
    ) -> StoreResult<DeviceAccount>;
    /// Upgrades an account without a password (a guest) in place: it keeps its id and data and
    /// gets `username` and `password_hash`; a display name still equal to the old username
    /// follows the new one. [`StoreError::AlreadyLinked`] when it has a password already,
    /// [`StoreError::UsernameTaken`], [`StoreError::UnknownPlayer`].
    async fn link_password(
        &self,
        player_id: Uuid,
        username: &Username,
        password_hash: &str,
        now: OffsetDateTime,
    ) -> StoreResult<Player>;
    async fn player(&self, id: Uuid) -> StoreResult<Option<Player>>;
    /// How many accounts exist (guests included).
    async fn player_count(&self) -> StoreResult<u64>;
    /// Looks the username up case-insensitively.
    async fn credentials_by_username(
        &self,
        username: &Username,
    ) -> StoreResult<Option<Credentials>>;
    /// Applies the patch and bumps `updated_at`; `None` when the player does not exist.
    async fn update_player(
        &self,
        id: Uuid,
        patch: PlayerPatch,
        now: OffsetDateTime,
    ) -> StoreResult<Option<Player>>;

    async fn insert_refresh_token(&self, token: NewRefreshToken) -> StoreResult<()>;
    /// Spends `presented_hash` and stores `next` in the same family, atomically. `next.family_id`
    /// and `next.player_id` are overwritten with the presented token's family and player.
    ///
    /// A token spent less than `grace` before `now` whose successor is still live and has
    /// `next`'s hash is a retry ([`Rotation::Retried`]; nothing stored): callers derive `next`
    /// from the presented token, so a retry offers the same successor. Any other spent token is
    /// a replay and revokes the family. A zero `grace` makes every second presentation a replay.
    async fn rotate_refresh_token(
        &self,
        presented_hash: &[u8],
        next: NewRefreshToken,
        grace: time::Duration,
        now: OffsetDateTime,
    ) -> StoreResult<Rotation>;
    /// Revokes the family the token belongs to (logout). Returns the player and the family when
    /// the token was known, whatever its state, so logout is idempotent.
    async fn revoke_refresh_family(
        &self,
        token_hash: &[u8],
        now: OffsetDateTime,
    ) -> StoreResult<Option<TokenFamily>>;
    /// Revokes every refresh token a player holds (password change, ban).
    async fn revoke_all_refresh_tokens(
        &self,
        player_id: Uuid,
        now: OffsetDateTime,
    ) -> StoreResult<u64>;

    /// The player's matchmaking preferences; `None` when they never set any (or the player
    /// does not exist).
    async fn matchmaking_preferences(
        &self,
        player_id: Uuid,
    ) -> StoreResult<Option<MatchmakingPreferences>>;
    /// Stores `prefs` as the player's preferences, replacing any previous ones (an upsert), and
    /// stamps them with `now`. [`StoreError::UnknownPlayer`] when there is no such player.
    async fn set_matchmaking_preferences(
        &self,
        player_id: Uuid,
        prefs: &MatchmakingPreferences,
        now: OffsetDateTime,
    ) -> StoreResult<()>;

    /// Grants (`admin`) or revokes admin rights by username, recording `action` (its target set
    /// to the player) in the same transaction; `None` when there is no such player.
    async fn set_admin(
        &self,
        username: &Username,
        admin: bool,
        action: &AdminAction,
    ) -> StoreResult<Option<Player>>;
    /// Bans or unbans a player, recording `action` in the same transaction; a ban also revokes
    /// every refresh token the player holds (under the lock rotation takes, so none is issued
    /// past it). `None` when there is no such player.
    async fn set_banned(
        &self,
        player_id: Uuid,
        banned: bool,
        action: &AdminAction,
    ) -> StoreResult<Option<Player>>;
    /// Records an admin action that changed nothing stored (an announcement).
    async fn record_admin_action(&self, action: &AdminAction) -> StoreResult<()>;
    /// Admin actions, newest first, strictly after `before`.
    async fn admin_actions(
        &self,
        before: Option<Cursor>,
        limit: u32,
    ) -> StoreResult<Vec<AdminAction>>;

    /// The queue's current season; season 1 (`started_at`, ending at `ends_at`) when it has
    /// none yet.
    async fn open_season(
        &self,
        queue: &str,
        started_at: OffsetDateTime,
        ends_at: Option<OffsetDateTime>,
    ) -> StoreResult<SeasonRecord>;
    /// Moves the scheduled end of the queue's current season `season`.
    async fn reschedule_season(
        &self,
        queue: &str,
        season: u32,
        ends_at: Option<OffsetDateTime>,
    ) -> StoreResult<()>;
    /// Every season of the queue, oldest first.
    async fn seasons(&self, queue: &str) -> StoreResult<Vec<SeasonRecord>>;
    /// Ends a season and starts the next in one short transaction; see [`SeasonRollover`].
    /// Ratings are carried into the new season afterwards, by [`Store::carry_over`] or by the
    /// player's next result, whichever comes first.
    async fn roll_season(&self, roll: SeasonRollover<'_>) -> StoreResult<Rolled>;
    /// One batch of the carry-over after a rollover, in one transaction: up to `limit` ratings
    /// of an earlier season than `current` (players after `after`, by id) get their final
    /// standing frozen and are carried into `current`. The last player handled, to continue
    /// after; `None` when none was left.
    async fn carry_over(&self, batch: CarryOver<'_>) -> StoreResult<Option<Uuid>>;
    /// The oldest season a rating of `queue` was not carried out of yet: a carry-over that did
    /// not finish (the node stopped). `None`: every rating is in `current`.
    async fn oldest_uncarried_season(&self, queue: &str, current: u32) -> StoreResult<Option<u32>>;
    /// Ranks the standings of `season` a result froze before the carry-over reached them
    /// (those with at least `min_games`); how many were ranked.
    async fn rank_standings(
        &self,
        queue: &str,
        season: u32,
        min_games: u64,
        rank: &(dyn Fn(Uuid) -> Option<u64> + Send + Sync + '_),
    ) -> StoreResult<u64>;
    /// Where each ranked player of an ended season finished: its frozen board's index. Players
    /// frozen but not ranked yet count when they have `min_games`.
    async fn season_board(
        &self,
        queue: &str,
        season: u32,
        min_games: u64,
    ) -> StoreResult<Vec<BoardStanding>>;
    /// Where each player of `queue` with at least `min_games` in `season` stands: a board's
    /// index, read with nothing else (at a million players the names would cost hundreds of MB).
    async fn leaderboard_standings(
        &self,
        queue: &str,
        season: u32,
        min_games: u64,
    ) -> StoreResult<Vec<BoardStanding>>;
    /// The final standings of `players` in an ended season (those who played it).
    async fn season_standings_of(
        &self,
        queue: &str,
        season: u32,
        players: &[Uuid],
    ) -> StoreResult<Vec<BoardRow>>;
    /// A player's final standing in each ended season of `queue` they played, newest first.
    async fn player_seasons(
        &self,
        player_id: Uuid,
        queue: &str,
    ) -> StoreResult<Vec<SeasonStanding>>;

    /// Stores a new party with its members and invites. `Err(AlreadyInParty)` when a member
    /// is in another party already.
    async fn create_party(&self, party: &PartyRecord) -> StoreResult<Result<(), PartyError>>;
    async fn party(&self, id: Uuid) -> StoreResult<Option<PartyRecord>>;
    /// The party the player is in.
    async fn party_of(&self, player_id: Uuid) -> StoreResult<Option<Uuid>>;
    /// Applies `change` to the party under its lock and stores the result whole, its version
    /// bumped (a party left with no member is deleted). `None`: no such party; `Some(Err)`: the
    /// change was refused and nothing was written.
    async fn update_party(
        &self,
        id: Uuid,
        now: OffsetDateTime,
        change: &mut PartyFn<'_>,
    ) -> StoreResult<Option<Result<PartyRecord, PartyError>>>;
    /// Parties whose ready check is still running, with its deadline.
    async fn running_ready_checks(&self) -> StoreResult<Vec<(Uuid, OffsetDateTime)>>;

    /// Demo players with a rating each, in bulk (one transaction per call); a player whose id
    /// or username exists is skipped with their rating. How many were inserted.
    async fn seed_rated_players(&self, players: &[SeededPlayer]) -> StoreResult<u64>;

    /// Stores new sessions with their rosters and first transitions (the second too when the
    /// session comes already [`Placement`]-ed), all in one transaction: all or none.
    /// [`StoreError::UnknownPlayer`] when a roster player does not exist,
    /// [`StoreError::DuplicateId`] when an id is taken.
    async fn create_sessions(&self, sessions: &[NewSession]) -> StoreResult<()>;
    /// [`Store::create_sessions`] for one.
    async fn create_session(&self, session: NewSession) -> StoreResult<()> {
        self.create_sessions(std::slice::from_ref(&session)).await
    }
    async fn session(&self, id: Uuid) -> StoreResult<Option<SessionRecord>>;
    /// Every session in one of `states`, oldest first (start-up recovery).
    async fn sessions_in_states(&self, states: &[SessionState]) -> StoreResult<Vec<SessionRecord>>;
    /// Moves each session as asked when its lifecycle allows it from its state at that point
    /// (decided under a lock, so concurrent moves are serialised; a later move of the same
    /// session in the batch sees the earlier one), storing each transition, all in one
    /// transaction. One outcome per move, in order.
    async fn transition_sessions(&self, moves: &[SessionMove]) -> StoreResult<Vec<Transitioned>>;
    /// [`Store::transition_sessions`] for one move; `endpoint`, when given, becomes the
    /// session's game server.
    async fn transition_session(
        &self,
        id: Uuid,
        to: SessionState,
        actor: Actor,
        reason: &str,
        endpoint: Option<&str>,
        at: OffsetDateTime,
    ) -> StoreResult<Transitioned> {
        let moves = [SessionMove {
            id,
            to,
            actor,
            reason: reason.to_owned(),
            endpoint: endpoint.map(str::to_owned),
            at,
        }];
        let mut outcomes = self.transition_sessions(&moves).await?;
        Ok(outcomes.pop().unwrap_or(Transitioned::Unknown))
    }
    /// Adds backfilled players (id, team) to a live session's roster, after its current players;
    /// players already on it are skipped. Returns the session as it now is (unchanged when it is
    /// no longer live), `None` when unknown.
    async fn add_session_players(
        &self,
        id: Uuid,
        players: &[(Uuid, usize)],
        at: OffsetDateTime,
    ) -> StoreResult<Option<SessionRecord>>;
    /// The player's rating in `queue`; `None` before their first rated result there.
    async fn player_rating(
        &self,
        player_id: Uuid,
        queue: &str,
    ) -> StoreResult<Option<StoredRating>>;
    /// Every queue the player has a rating in, by queue name.
    async fn player_ratings(&self, player_id: Uuid) -> StoreResult<Vec<StoredRating>>;
    /// Every player of `queue` with at least `min_games` there in `season`, with names and counts.
    async fn leaderboard_rows(
        &self,
        queue: &str,
        season: u32,
        min_games: u64,
    ) -> StoreResult<Vec<BoardRow>>;
    /// The leaderboard rows of these players in `queue` (those rated there).
    async fn leaderboard_rows_of(
        &self,
        queue: &str,
        players: &[Uuid],
    ) -> StoreResult<Vec<BoardRow>>;
    /// Records a session's one result and every rating change it makes, atomically; see
    /// [`Recorded`].
    async fn record_result(&self, result: ResultToRecord<'_>) -> StoreResult<Recorded>;
    /// The player's rating history in `queue` (in one season, or all), newest first, strictly
    /// after `before`.
    async fn rating_history(
        &self,
        player_id: Uuid,
        queue: &str,
        season: Option<u32>,
        before: Option<Cursor>,
        limit: u32,
    ) -> StoreResult<Vec<HistoryRecord>>;
    /// The sessions the player has a result in, newest result first, strictly after `before`.
    async fn match_history(
        &self,
        player_id: Uuid,
        before: Option<Cursor>,
        limit: u32,
    ) -> StoreResult<Vec<MatchRecord>>;
}
