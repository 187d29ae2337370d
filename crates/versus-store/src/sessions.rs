//! Game sessions, results and ratings: the types the [`crate::Store`] methods of issue 13 take
//! and return, and their queries (written once for both dialects, like `queries.rs`).
//!
//! A result and every rating it changes are one transaction ([`record_result`]): the session
//! row is locked first, then the roster's `players` rows in id order (so two results sharing a
//! player serialise, and never deadlock), then the ratings are read, rated by the caller's
//! closure, and written with one history row each.

use sqlx::types::Json;
use sqlx::{AssertSqlSafe, Pool};
use time::OffsetDateTime;
use uuid::Uuid;
use versus_core::rating::PlayerRating;
use versus_core::session::{Actor, Outcome, SessionState};

use crate::dialect::{Dialect, Session, Statement, Timestamp, select_for_update, sql};
use crate::record::classify_player_write;
use crate::{StoreError, StoreResult};

/// A session to store: in `allocating` with its first transition, or already placed.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub id: Uuid,
    pub queue: String,
    pub ranked: bool,
    pub region: Option<String>,
    /// Player ids by team, in roster order.
    pub teams: Vec<Vec<Uuid>>,
    /// Why it was created (the first transition's reason).
    pub reason: String,
    pub actor: Actor,
    pub at: OffsetDateTime,
    pub placed: Placement,
}

/// Where a new session stands once stored. An allocator that answers at once, in memory, is
/// asked before the write, and its answer is stored with the session as its second transition
/// (same time, same transaction): one write instead of two for every match.
#[derive(Debug, Clone, PartialEq)]
pub enum Placement {
    /// `allocating`: the game server is asked after the session is stored.
    Allocating,
    /// `ready` on `endpoint`.
    Ready { endpoint: String, reason: String },
    /// `cancelled`: no game server could take it.
    Cancelled { reason: String },
}

impl Placement {
    /// The state the session is stored in.
    pub fn state(&self) -> SessionState {
        match self {
            Placement::Allocating => SessionState::Allocating,
            Placement::Ready { .. } => SessionState::Ready,
            Placement::Cancelled { .. } => SessionState::Cancelled,
        }
    }

    /// Its game server, once it has one.
    pub fn endpoint(&self) -> Option<&str> {
        match self {
            Placement::Ready { endpoint, .. } => Some(endpoint),
            _ => None,
        }
    }

    /// The second transition's reason, when there is one.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Placement::Allocating => None,
            Placement::Ready { reason, .. } | Placement::Cancelled { reason } => Some(reason),
        }
    }
}

/// A session as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRecord {
    pub id: Uuid,
    pub queue: String,
    pub ranked: bool,
    pub region: Option<String>,
    pub endpoint: Option<String>,
    pub state: SessionState,
    pub teams: Vec<Vec<Uuid>>,
    pub created_at: OffsetDateTime,
    /// Oldest first; the first one has no `from`.
    pub transitions: Vec<TransitionRecord>,
    /// The reported result's body, once there is one.
    pub result: Option<serde_json::Value>,
}

impl SessionRecord {
    pub fn players(&self) -> impl Iterator<Item = Uuid> + '_ {
        self.teams.iter().flatten().copied()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct TransitionRecord {
    pub from: Option<SessionState>,
    pub to: SessionState,
    pub actor: Actor,
    pub reason: String,
    pub at: OffsetDateTime,
}

/// One move of a session's lifecycle, asked of [`crate::Store::transition_sessions`].
#[derive(Debug, Clone, PartialEq)]
pub struct SessionMove {
    pub id: Uuid,
    pub to: SessionState,
    pub actor: Actor,
    pub reason: String,
    /// Becomes its game server, when given.
    pub endpoint: Option<String>,
    pub at: OffsetDateTime,
}

/// What [`crate::Store::transition_sessions`] did with one move.
#[derive(Debug, Clone, PartialEq)]
pub enum Transitioned {
    /// Stored; the session as it now is.
    Done(SessionRecord),
    /// The lifecycle forbids it from `current`; nothing was written.
    Illegal {
        current: SessionState,
    },
    Unknown,
}

/// A player's rating in one queue, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRating {
    pub queue: String,
    pub rating: PlayerRating,
    pub display_rating: f64,
    pub games: u64,
    pub wins: u64,
    pub losses: u64,
    pub draws: u64,
    /// The season these counts belong to. Older than the queue's current season: the player
    /// has not played since it ended and the row is their final standing there, not yet carried
    /// over (see [`StoredRating::carried`]).
    pub season: u32,
}

impl StoredRating {
    /// The rating as it stands in season `current`: carried over by `reset` once per season
    /// ended since its own (counts zeroed), or unchanged when it is already `current`'s.
    pub fn carried(&self, current: u32, reset: &ResetFn<'_>) -> StoredRating {
        let mut rating = self.clone();
        while rating.season < current {
            let (carried, display) = reset(&rating);
            rating = StoredRating {
                queue: rating.queue,
                rating: carried,
                display_rating: display,
                games: 0,
                wins: 0,
                losses: 0,
                draws: 0,
                season: rating.season + 1,
            };
        }
        rating
    }
}

/// A rating carried into the next season (a soft reset) and its display rating, from the
/// rating at the season's end.
pub type ResetFn<'a> = dyn Fn(&StoredRating) -> (PlayerRating, f64) + Send + Sync + 'a;

/// One roster member as [`record_result`]'s closure sees them: `None` for a player who has no
/// rating in the queue yet.
#[derive(Debug, Clone, PartialEq)]
pub struct RosterRating {
    pub player_id: Uuid,
    pub rating: Option<StoredRating>,
}

/// One player's change from a result.
#[derive(Debug, Clone, PartialEq)]
pub struct RatingUpdate {
    pub player_id: Uuid,
    pub outcome: Outcome,
    pub before: PlayerRating,
    pub before_display: f64,
    pub after: PlayerRating,
    pub after_display: f64,
}

/// What the caller's closure decides inside the result's transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct RatedResult {
    /// Every player's change; empty for an unranked session (nothing rated, no history).
    pub updates: Vec<RatingUpdate>,
    /// The answer to give now and to every repeat of the same result.
    pub answer: serde_json::Value,
}

/// Rates a result from the roster (by team, in roster order) and its current ratings. `Err` is
/// a result that does not fit the roster: nothing is written ([`Recorded::Rejected`]).
pub type RateFn<'a> =
    dyn Fn(&[Vec<RosterRating>]) -> Result<RatedResult, String> + Send + Sync + 'a;

pub struct ResultToRecord<'a> {
    pub session_id: Uuid,
    /// The result as reported, stored as is.
    pub result: serde_json::Value,
    /// What tells a repeat of the same result from a different one.
    pub result_hash: Vec<u8>,
    pub at: OffsetDateTime,
    pub rate: &'a RateFn<'a>,
    /// How a rating of an ended season carries into the current one: a player's first result
    /// after a rollover may come before the background carry-over reached them.
    pub carry: &'a ResetFn<'a>,
}

/// What [`crate::Store::record_result`] did. Exactly one outcome per session: of two concurrent
/// reports, one applies and the other is a duplicate or a conflict.
#[derive(Debug, Clone, PartialEq)]
pub enum Recorded {
    /// Stored with its rating changes; the session is `ended`.
    Applied(serde_json::Value),
    /// The same result was already applied: its answer, nothing written.
    Duplicate(serde_json::Value),
    /// A different result was already applied.
    Conflict,
    /// The session cannot take a result in this state.
    NotLive(SessionState),
    /// The closure refused it.
    Rejected(String),
    Unknown,
}

/// A place in a newest-first listing: rows strictly older than (`at`, `id`) come after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub at: OffsetDateTime,
    pub id: Uuid,
}

/// One row of a player's rating history in a queue.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryRecord {
    pub queue: String,
    pub session_id: Uuid,
    pub outcome: Outcome,
    pub before: PlayerRating,
    pub before_display: f64,
    pub after: PlayerRating,
    pub after_display: f64,
    pub at: OffsetDateTime,
    /// The queue's season it counted for.
    pub season: u32,
}

/// One match of a player's history: a session with a recorded result.
#[derive(Debug, Clone, PartialEq)]
pub struct MatchRecord {
    pub session_id: Uuid,
    pub queue: String,
    /// The player's team (index into `teams`).
    pub team: usize,
    pub teams: Vec<Vec<Uuid>>,
    pub result: serde_json::Value,
    /// `None` when the session was not ranked.
    pub outcome: Option<Outcome>,
    pub rating_change: Option<f64>,
    pub ended_at: OffsetDateTime,
}

/// `($1, …, $columns), ($columns+1, …), …` for `rows` rows of a multi-row `INSERT`.
pub(crate) fn row_placeholders(rows: usize, columns: usize) -> String {
    (0..rows)
        .map(|row| format!("({})", placeholders(row * columns + 1, columns)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `$from, $from+1, …` for `n` values.
pub(crate) fn placeholders(from: usize, n: usize) -> String {
    (from..from + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn corrupt(what: &str, raw: &str) -> StoreError {
    StoreError::Corrupt(format!("{what}: {raw:?}"))
}

fn parse_state(raw: &str) -> StoreResult<SessionState> {
    SessionState::parse(raw).ok_or_else(|| corrupt("session state", raw))
}

fn index(raw: i32) -> StoreResult<usize> {
    usize::try_from(raw).map_err(|_| corrupt("team", &raw.to_string()))
}

fn count(raw: i64) -> u64 {
    u64::try_from(raw).unwrap_or(0)
}

/// Rows per multi-row `INSERT`: every statement stays under SQLite's parameter limit.
const ROWS_PER_INSERT: usize = 100;

/// Stores every session in one transaction (all or none), each table's rows in a few
/// multi-row statements: a tick's matches cost one commit, not one each.
pub(crate) async fn create<D: Dialect>(pool: &Pool<D>, new: &[NewSession]) -> StoreResult<()> {
    let times = (new.iter())
        .map(|s| Timestamp::new(s.at))
        .collect::<StoreResult<Vec<_>>>()?;
    let mut tx = pool.begin_with(D::BEGIN_WRITE).await?;
    let sessions: Vec<(&NewSession, Timestamp)> = new.iter().zip(times).collect();
    for chunk in sessions.chunks(ROWS_PER_INSERT) {
        let values = row_placeholders(chunk.len(), 8);
        let mut insert = sql(AssertSqlSafe(format!(
            "INSERT INTO game_sessions (id, queue, ranked, region, endpoint, state, created_at, \
             updated_at) VALUES {values}"
        )));
        for (session, at) in chunk {
            insert = insert
                .bind(session.id)
                .bind(session.queue.as_str())
                .bind(session.ranked)
                .bind(session.region.as_deref())
                .bind(session.placed.endpoint())
                .bind(session.placed.state().as_str())
                .bind(*at)
                .bind(*at);
        }
        insert
            .execute(&mut tx)
            .await
            .map_err(crate::record::classify)?;
    }
    let roster: Vec<(Uuid, Timestamp, Uuid, usize, usize)> = (sessions.iter())
        .flat_map(|&(session, at)| {
            (session.teams.iter().enumerate()).flat_map(move |(t, team)| {
                (team.iter().enumerate()).map(move |(s, p)| (session.id, at, *p, t, s))
            })
        })
        .collect();
    for chunk in roster.chunks(ROWS_PER_INSERT) {
        insert_roster_rows(&mut tx, chunk).await?;
    }
    // A new session's transitions are numbered from 1: no `MAX(seq)` to look up.
    let transitions: Vec<TransitionRow<'_>> = (sessions.iter())
        .flat_map(|&(session, at)| {
            let row = |seq, from, to, reason| TransitionRow {
                session: session.id,
                seq,
                from,
                to,
                actor: session.actor,
                reason,
                at,
            };
            let first = row(1, None, SessionState::Allocating, session.reason.as_str());
            let placed = (session.placed.reason()).map(|reason| {
                row(
                    2,
                    Some(SessionState::Allocating),
                    session.placed.state(),
                    reason,
                )
            });
            std::iter::once(first).chain(placed)
        })
        .collect();
    insert_transitions(&mut tx, &transitions).await?;
    tx.commit().await?;
    Ok(())
}

/// `(session, joined at, player, team, slot)` rows of `session_players`, at most
/// [`ROWS_PER_INSERT`].
async fn insert_roster_rows(
    tx: &mut impl Session,
    rows: &[(Uuid, Timestamp, Uuid, usize, usize)],
) -> StoreResult<()> {
    let values = row_placeholders(rows.len(), 5);
    let mut insert = sql(AssertSqlSafe(format!(
        "INSERT INTO session_players (session_id, joined_at, player_id, team, slot) \
         VALUES {values}"
    )));
    for &(session, at, player, team, slot) in rows {
        insert = insert
            .bind(session)
            .bind(at)
            .bind(player)
            .bind(i32::try_from(team).unwrap_or(i32::MAX))
            .bind(i32::try_from(slot).unwrap_or(i32::MAX));
    }
    insert.execute(tx).await.map_err(classify_player_write)?;
    Ok(())
}

async fn insert_transition(
    tx: &mut impl Session,
    session: Uuid,
    from: Option<SessionState>,
    to: SessionState,
    actor: Actor,
    reason: &str,
    at: Timestamp,
) -> StoreResult<()> {
    sql("INSERT INTO session_transitions (session_id, seq, from_state, to_state, actor, reason, at) \
         SELECT $1, COALESCE(MAX(seq), 0) + 1, $2, $3, $4, $5, $6 \
         FROM session_transitions WHERE session_id = $1")
    .bind(session)
    .bind(from.map(SessionState::as_str))
    .bind(to.as_str())
    .bind(actor.as_str())
    .bind(reason)
    .bind(at)
    .execute(tx)
    .await?;
    Ok(())
}

#[derive(sqlx::FromRow)]
struct SessionRow {
    id: Uuid,
    queue: String,
    ranked: bool,
    region: Option<String>,
    endpoint: Option<String>,
    state: String,
    created_at: Timestamp,
    result: Option<Json<serde_json::Value>>,
}

const SESSION_COLUMNS: &str = "id, queue, ranked, region, endpoint, state, created_at, result";

pub(crate) async fn read(on: &mut impl Session, id: Uuid) -> StoreResult<Option<SessionRecord>> {
    Ok(read_many(on, &[id]).await?.remove(&id))
}

/// The session's players by team, in roster order.
async fn roster(on: &mut impl Session, id: Uuid) -> StoreResult<Vec<Vec<Uuid>>> {
    let rows: Vec<(Uuid, i32)> = sql(
        "SELECT player_id, team FROM session_players WHERE session_id = $1 ORDER BY team, slot",
    )
    .bind(id)
    .fetch_all(on)
    .await?;
    let mut teams: Vec<Vec<Uuid>> = Vec::new();
    for (player, team) in rows {
        let team = index(team)?;
        if teams.len() <= team {
            teams.resize_with(team + 1, Vec::new);
        }
        teams[team].push(player);
    }
    Ok(teams)
}

pub(crate) async fn in_states<D: Dialect>(
    pool: &Pool<D>,
    states: &[SessionState],
) -> StoreResult<Vec<SessionRecord>> {
    if states.is_empty() {
        return Ok(Vec::new());
    }
    let mut db = pool.acquire().await?;
    let mut select = sql(AssertSqlSafe(format!(
        "SELECT id FROM game_sessions WHERE state IN ({}) ORDER BY created_at, id",
        placeholders(1, states.len())
    )));
    for state in states {
        select = select.bind(state.as_str());
    }
    let ids: Vec<Uuid> = (select.fetch_all::<(Uuid,)>(&mut db).await?)
        .into_iter()
        .map(|(id,)| id)
        .collect();
    let mut records = read_many(&mut db, &ids).await?;
    Ok(ids.iter().filter_map(|id| records.remove(id)).collect())
}

/// Every move in one transaction, in order (a later move of the same session sees the
/// earlier one): the sessions are locked in id order, each move is checked against the
/// lifecycle as the session then is, and the allowed ones are written with a few statements
/// for the whole batch. Moves that arrive together (a tick's games starting) cost one commit.
pub(crate) async fn transition<D: Dialect>(
    pool: &Pool<D>,
    moves: &[SessionMove],
) -> StoreResult<Vec<Transitioned>> {
    let Some(last) = moves.iter().map(|m| m.at).max() else {
        return Ok(Vec::new());
    };
    let updated_at = Timestamp::new(last)?;
    let mut ids: Vec<Uuid> = moves.iter().map(|m| m.id).collect();
    ids.sort_unstable();
    ids.dedup();
    let mut tx = pool.begin_with(D::BEGIN_WRITE).await?;
    for chunk in ids.chunks(IN_LIST) {
        let mut lock = select_for_update(&format!(
            "SELECT id FROM game_sessions WHERE id IN ({}) ORDER BY id",
            placeholders(1, chunk.len())
        ));
        for id in chunk {
            lock = lock.bind(*id);
        }
        lock.execute(&mut tx).await?;
    }
    let mut records = read_many(&mut tx, &ids).await?;
    let mut outcomes = Vec::with_capacity(moves.len());
    let mut rows = Vec::new();
    for m in moves {
        let Some(record) = records.get_mut(&m.id) else {
            outcomes.push(Transitioned::Unknown);
            continue;
        };
        let from = record.state;
        if !from.can_become(m.to) {
            outcomes.push(Transitioned::Illegal { current: from });
            continue;
        }
        record.state = m.to;
        if let Some(endpoint) = &m.endpoint {
            record.endpoint = Some(endpoint.clone());
        }
        let at = Timestamp::new(m.at)?;
        record.transitions.push(TransitionRecord {
            from: Some(from),
            to: m.to,
            actor: m.actor,
            reason: m.reason.clone(),
            // As stored (microseconds), so the answer equals a later read.
            at: at.get(),
        });
        let seq = i32::try_from(record.transitions.len()).unwrap_or(i32::MAX);
        rows.push(TransitionRow {
            session: m.id,
            seq,
            from: Some(from),
            to: m.to,
            actor: m.actor,
            reason: &m.reason,
            at,
        });
        outcomes.push(Transitioned::Done(record.clone()));
    }
    // One UPDATE per distinct (state, endpoint) the moved sessions end in: usually one.
    let mut groups: std::collections::BTreeMap<(&str, Option<&str>), Vec<Uuid>> =
        std::collections::BTreeMap::new();
    let moved: std::collections::BTreeSet<Uuid> = rows.iter().map(|row| row.session).collect();
    for id in &moved {
        let record = &records[id];
        (groups.entry((record.state.as_str(), record.endpoint.as_deref())))
            .or_default()
            .push(*id);
    }
    for ((state, endpoint), ids) in groups {
        for chunk in ids.chunks(IN_LIST) {
            let mut update = sql(AssertSqlSafe(format!(
                "UPDATE game_sessions SET state = $1, updated_at = $2, \
                 endpoint = COALESCE($3, endpoint) WHERE id IN ({})",
                placeholders(4, chunk.len())
            )))
            .bind(state)
            .bind(updated_at)
            .bind(endpoint);
            for id in chunk {
                update = update.bind(*id);
            }
            update.execute(&mut tx).await?;
        }
    }
    insert_transitions(&mut tx, &rows).await?;
    tx.commit().await?;
    Ok(outcomes)
}

/// A `session_transitions` row to insert.
struct TransitionRow<'a> {
    session: Uuid,
    seq: i32,
    from: Option<SessionState>,
    to: SessionState,
    actor: Actor,
    reason: &'a str,
    at: Timestamp,
}

async fn insert_transitions(tx: &mut impl Session, rows: &[TransitionRow<'_>]) -> StoreResult<()> {
    for chunk in rows.chunks(ROWS_PER_INSERT) {
        let mut insert = sql(AssertSqlSafe(format!(
            "INSERT INTO session_transitions (session_id, seq, from_state, to_state, actor, \
             reason, at) VALUES {}",
            row_placeholders(chunk.len(), 7)
        )));
        for row in chunk {
            insert = insert
                .bind(row.session)
                .bind(row.seq)
                .bind(row.from.map(SessionState::as_str))
                .bind(row.to.as_str())
                .bind(row.actor.as_str())
                .bind(row.reason)
                .bind(row.at);
        }
        insert.execute(tx).await?;
    }
    Ok(())
}

/// Ids per `IN (…)` list: under SQLite's parameter limit with room for the other binds.
const IN_LIST: usize = 500;

/// The sessions with these ids (those that exist), read with three statements per
/// [`IN_LIST`] ids, whatever their number.
async fn read_many(
    on: &mut impl Session,
    ids: &[Uuid],
) -> StoreResult<std::collections::HashMap<Uuid, SessionRecord>> {
    let mut records = std::collections::HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(IN_LIST) {
        let list = placeholders(1, chunk.len());
        let mut sessions = sql(AssertSqlSafe(format!(
            "SELECT {SESSION_COLUMNS} FROM game_sessions WHERE id IN ({list})"
        )));
        let mut players = sql(AssertSqlSafe(format!(
            "SELECT session_id, player_id, team FROM session_players \
             WHERE session_id IN ({list}) ORDER BY session_id, team, slot"
        )));
        let mut transitions = sql(AssertSqlSafe(format!(
            "SELECT session_id, from_state, to_state, actor, reason, at FROM session_transitions \
             WHERE session_id IN ({list}) ORDER BY session_id, seq"
        )));
        for id in chunk {
            sessions = sessions.bind(*id);
            players = players.bind(*id);
            transitions = transitions.bind(*id);
        }
        for row in sessions.fetch_all::<SessionRow>(on).await? {
            let record = SessionRecord {
                id: row.id,
                queue: row.queue,
                ranked: row.ranked,
                region: row.region,
                endpoint: row.endpoint,
                state: parse_state(&row.state)?,
                teams: Vec::new(),
                created_at: row.created_at.get(),
                transitions: Vec::new(),
                result: row.result.map(|Json(v)| v),
            };
            records.insert(record.id, record);
        }
        let players: Vec<(Uuid, Uuid, i32)> = players.fetch_all(on).await?;
        for (session, player, team) in players {
            if let Some(record) = records.get_mut(&session) {
                let team = index(team)?;
                if record.teams.len() <= team {
                    record.teams.resize_with(team + 1, Vec::new);
                }
                record.teams[team].push(player);
            }
        }
        let transitions: Vec<(Uuid, Option<String>, String, String, String, Timestamp)> =
            transitions.fetch_all(on).await?;
        for (session, from, to, actor, reason, at) in transitions {
            if let Some(record) = records.get_mut(&session) {
                record
                    .transitions
                    .push(transition_record(from, &to, &actor, reason, at)?);
            }
        }
    }
    Ok(records)
}

fn transition_record(
    from: Option<String>,
    to: &str,
    actor: &str,
    reason: String,
    at: Timestamp,
) -> StoreResult<TransitionRecord> {
    Ok(TransitionRecord {
        from: from.as_deref().map(parse_state).transpose()?,
        to: parse_state(to)?,
        actor: Actor::parse(actor).ok_or_else(|| corrupt("actor", actor))?,
        reason,
        at: at.get(),
    })
}

pub(crate) async fn add_players<D: Dialect>(
    pool: &Pool<D>,
    id: Uuid,
    players: &[(Uuid, usize)],
    at: OffsetDateTime,
) -> StoreResult<Option<SessionRecord>> {
    let at = Timestamp::new(at)?;
    let mut tx = pool.begin_with(D::BEGIN_WRITE).await?;
    let current: Option<(String,)> =
        select_for_update("SELECT state FROM game_sessions WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut tx)
            .await?;
    let Some((current,)) = current else {
        return Ok(None);
    };
    if !parse_state(&current)?.is_live() {
        // Too late to join: the caller finds the state in the record and requeues them.
        drop(tx);
        let mut db = pool.acquire().await?;
        return read(&mut db, id).await;
    }
    let teams = roster(&mut tx, id).await?;
    let mut next_slot: Vec<usize> = teams.iter().map(Vec::len).collect();
    let mut roster = Vec::with_capacity(players.len());
    for &(player, team) in players {
        if teams.iter().flatten().any(|p| *p == player) {
            continue;
        }
        if next_slot.len() <= team {
            next_slot.resize(team + 1, 0);
        }
        roster.push((player, team, next_slot[team]));
        next_slot[team] += 1;
    }
    let rows: Vec<_> = (roster.iter())
        .map(|&(player, team, slot)| (id, at, player, team, slot))
        .collect();
    for chunk in rows.chunks(ROWS_PER_INSERT) {
        insert_roster_rows(&mut tx, chunk).await?;
    }
    let record = read(&mut tx, id).await?;
    tx.commit().await?;
    Ok(record)
}

#[derive(sqlx::FromRow)]
pub(crate) struct RatingRow {
    pub(crate) player_id: Uuid,
    pub(crate) queue: String,
    pub(crate) rating: f64,
    pub(crate) deviation: f64,
    pub(crate) volatility: f64,
    pub(crate) display_rating: f64,
    pub(crate) games: i64,
    pub(crate) wins: i64,
    pub(crate) losses: i64,
    pub(crate) draws: i64,
    pub(crate) season: i32,
}

pub(crate) const RATING_COLUMNS: &str = "player_id, queue, rating, deviation, volatility, display_rating, \
                              games, wins, losses, draws, season";

impl RatingRow {
    pub(crate) fn into_stored(self) -> StoredRating {
        StoredRating {
            queue: self.queue,
            rating: PlayerRating {
                rating: self.rating,
                deviation: self.deviation,
                volatility: self.volatility,
            },
            display_rating: self.display_rating,
            games: count(self.games),
            wins: count(self.wins),
            losses: count(self.losses),
            draws: count(self.draws),
            season: u32::try_from(self.season).unwrap_or(1),
        }
    }
}

pub(crate) async fn rating<D: Dialect>(
    pool: &Pool<D>,
    player: Uuid,
    queue: &str,
) -> StoreResult<Option<StoredRating>> {
    let mut db = pool.acquire().await?;
    let row: Option<RatingRow> = sql(AssertSqlSafe(format!(
        "SELECT {RATING_COLUMNS} FROM player_ratings WHERE player_id = $1 AND queue = $2"
    )))
    .bind(player)
    .bind(queue)
    .fetch_optional(&mut db)
    .await?;
    Ok(row.map(RatingRow::into_stored))
}

pub(crate) async fn ratings<D: Dialect>(
    pool: &Pool<D>,
    player: Uuid,
) -> StoreResult<Vec<StoredRating>> {
    let mut db = pool.acquire().await?;
    let rows: Vec<RatingRow> = sql(AssertSqlSafe(format!(
        "SELECT {RATING_COLUMNS} FROM player_ratings WHERE player_id = $1 ORDER BY queue"
    )))
    .bind(player)
    .fetch_all(&mut db)
    .await?;
    Ok(rows.into_iter().map(RatingRow::into_stored).collect())
}

pub(crate) async fn record_result<D: Dialect>(
    pool: &Pool<D>,
    result: ResultToRecord<'_>,
) -> StoreResult<Recorded> {
    let at = Timestamp::new(result.at)?;
    let id = result.session_id;
    let mut tx = pool.begin_with(D::BEGIN_WRITE).await?;
    type Row = (
        String,
        String,
        Option<Vec<u8>>,
        Option<Json<serde_json::Value>>,
    );
    let row: Option<Row> = select_for_update(
        "SELECT state, queue, result_hash, result_answer FROM game_sessions WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&mut tx)
    .await?;
    let Some((state, queue, hash, answer)) = row else {
        return Ok(Recorded::Unknown);
    };
    if let Some(hash) = hash {
        return Ok(match answer {
            Some(Json(answer)) if hash == result.result_hash => Recorded::Duplicate(answer),
            _ => Recorded::Conflict,
        });
    }
    let state = parse_state(&state)?;
    // A game server may end its session first and report the result after.
    if !(state.is_live() || state == SessionState::Ended) {
        return Ok(Recorded::NotLive(state));
    }
    // Before any rating is read: a rollover in progress finishes first (its reset is what this
    // result then rates from), and none starts until this commits.
    let season = crate::seasons::of_result(&mut tx, &queue).await?;
    let teams = roster(&mut tx, id).await?;
    let mut players: Vec<Uuid> = teams.iter().flatten().copied().collect();
    if players.is_empty() {
        return Ok(Recorded::Rejected("the session has no players".into()));
    }
    players.sort_unstable();
    let mut lock = select_for_update(&format!(
        "SELECT id FROM players WHERE id IN ({}) ORDER BY id",
        placeholders(1, players.len())
    ));
    for player in &players {
        lock = lock.bind(*player);
    }
    lock.execute(&mut tx).await?;
    // Locked in id order, as the carry-over locks its batch: whichever of the two holds a
    // player's rating row is the one that freezes their standing, and neither waits on the
    // other's standings insert.
    let mut select = select_for_update(&format!(
        "SELECT {RATING_COLUMNS} FROM player_ratings WHERE queue = $1 AND player_id IN ({}) \
         ORDER BY player_id",
        placeholders(2, players.len())
    ))
    .bind(queue.as_str());
    for player in &players {
        select = select.bind(*player);
    }
    let mut current: std::collections::HashMap<Uuid, StoredRating> =
        (select.fetch_all::<RatingRow>(&mut tx).await?.into_iter())
            .map(|row| (row.player_id, row.into_stored()))
            .collect();
    // Players the rollover's carry-over has not reached yet: their row is still their final
    // standing in the ended season, frozen here before this result overwrites it.
    let stale: Vec<Uuid> = (current.iter())
        .filter(|(_, r)| r.season < season)
        .map(|(player, _)| *player)
        .collect();
    if !stale.is_empty() {
        crate::seasons::freeze_standings(&mut tx, &queue, &stale).await?;
        for player in &stale {
            if let Some(rating) = current.get_mut(player) {
                *rating = rating.carried(season, result.carry);
            }
        }
    }
    let roster: Vec<Vec<RosterRating>> = (teams.iter())
        .map(|team| {
            (team.iter())
                .map(|&player_id| RosterRating {
                    player_id,
                    rating: current.remove(&player_id),
                })
                .collect()
        })
        .collect();
    let rated = match (result.rate)(&roster) {
        Ok(rated) => rated,
        Err(why) => return Ok(Recorded::Rejected(why)),
    };
    write_ratings(&mut tx, &queue, id, season, &rated.updates, at).await?;
    sql(
        "UPDATE game_sessions SET state = $1, updated_at = $2, result = $3, result_hash = $4, \
         result_answer = $5, result_at = $2 WHERE id = $6",
    )
    .bind(SessionState::Ended.as_str())
    .bind(at)
    .bind(Json(&result.result))
    .bind(result.result_hash.as_slice())
    .bind(Json(&rated.answer))
    .bind(id)
    .execute(&mut tx)
    .await?;
    if state != SessionState::Ended {
        insert_transition(
            &mut tx,
            id,
            Some(state),
            SessionState::Ended,
            Actor::GameServer,
            "result reported",
            at,
        )
        .await?;
    }
    tx.commit().await?;
    Ok(Recorded::Applied(rated.answer))
}

/// Every update's new rating (and its counters) and history row: two statements, whatever the
/// team size.
async fn write_ratings(
    tx: &mut impl Session,
    queue: &str,
    session: Uuid,
    season: u32,
    updates: &[RatingUpdate],
    at: Timestamp,
) -> StoreResult<()> {
    for chunk in updates.chunks(50) {
        const PER_ROW: usize = 8;
        let values = (0..chunk.len())
            .map(|i| {
                let p = 4 + PER_ROW * i;
                format!(
                    "(${}, $1, ${}, ${}, ${}, ${}, 1, ${}, ${}, ${}, $2, $3)",
                    p,
                    p + 1,
                    p + 2,
                    p + 3,
                    p + 4,
                    p + 5,
                    p + 6,
                    p + 7
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        // A row of an ended season (not yet carried over) starts its counts afresh.
        let mut upsert = sql(AssertSqlSafe(format!(
            "INSERT INTO player_ratings (player_id, queue, rating, deviation, volatility, \
             display_rating, games, wins, losses, draws, updated_at, season) VALUES {values} \
             ON CONFLICT (player_id, queue) DO UPDATE SET rating = excluded.rating, \
             deviation = excluded.deviation, volatility = excluded.volatility, \
             display_rating = excluded.display_rating, \
             games = CASE WHEN player_ratings.season = excluded.season \
               THEN player_ratings.games + 1 ELSE 1 END, \
             wins = CASE WHEN player_ratings.season = excluded.season \
               THEN player_ratings.wins + excluded.wins ELSE excluded.wins END, \
             losses = CASE WHEN player_ratings.season = excluded.season \
               THEN player_ratings.losses + excluded.losses ELSE excluded.losses END, \
             draws = CASE WHEN player_ratings.season = excluded.season \
               THEN player_ratings.draws + excluded.draws ELSE excluded.draws END, \
             updated_at = excluded.updated_at, season = excluded.season"
        )))
        .bind(queue)
        .bind(at)
        .bind(i32::try_from(season).unwrap_or(i32::MAX));
        for u in chunk {
            let tally = |o: Outcome| i64::from(u.outcome == o);
            upsert = upsert
                .bind(u.player_id)
                .bind(u.after.rating)
                .bind(u.after.deviation)
                .bind(u.after.volatility)
                .bind(u.after_display)
                .bind(tally(Outcome::Win))
                .bind(tally(Outcome::Loss))
                .bind(tally(Outcome::Draw));
        }
        upsert.execute(tx).await.map_err(classify_player_write)?;

        const HISTORY_ROW: usize = 10;
        let values = (0..chunk.len())
            .map(|i| {
                let p = 5 + HISTORY_ROW * i;
                let cols: Vec<String> = (p..p + HISTORY_ROW).map(|n| format!("${n}")).collect();
                format!("({}, $3, $1, $2, $4)", cols.join(", "))
            })
            .collect::<Vec<_>>()
            .join(", ");
        let mut history = sql(AssertSqlSafe(format!(
            "INSERT INTO rating_history (player_id, outcome, before_rating, before_deviation, \
             before_volatility, before_display, after_rating, after_deviation, after_volatility, \
             after_display, session_id, queue, at, season) VALUES {values}"
        )))
        .bind(queue)
        .bind(at)
        .bind(session)
        .bind(i32::try_from(season).unwrap_or(i32::MAX));
        for u in chunk {
            history = history
                .bind(u.player_id)
                .bind(u.outcome.as_str())
                .bind(u.before.rating)
                .bind(u.before.deviation)
                .bind(u.before.volatility)
                .bind(u.before_display)
                .bind(u.after.rating)
                .bind(u.after.deviation)
                .bind(u.after.volatility)
                .bind(u.after_display);
        }
        history.execute(tx).await.map_err(classify_player_write)?;
    }
    Ok(())
}

#[derive(sqlx::FromRow)]
struct HistoryRow {
    queue: String,
    session_id: Uuid,
    outcome: String,
    before_rating: f64,
    before_deviation: f64,
    before_volatility: f64,
    before_display: f64,
    after_rating: f64,
    after_deviation: f64,
    after_volatility: f64,
    after_display: f64,
    at: Timestamp,
    season: i32,
}

pub(crate) async fn rating_history<D: Dialect>(
    pool: &Pool<D>,
    player: Uuid,
    queue: &str,
    season: Option<u32>,
    before: Option<Cursor>,
    limit: u32,
) -> StoreResult<Vec<HistoryRecord>> {
    let in_season = if season.is_some() {
        "AND season = $3"
    } else {
        "AND $3 IS NULL"
    };
    let after_cursor = if before.is_some() {
        "AND (at, session_id) < ($4, $5)"
    } else {
        ""
    };
    let mut db = pool.acquire().await?;
    let mut select = sql(AssertSqlSafe(format!(
        "SELECT queue, session_id, outcome, before_rating, before_deviation, before_volatility, \
         before_display, after_rating, after_deviation, after_volatility, after_display, at, \
         season FROM rating_history WHERE player_id = $1 AND queue = $2 {in_season} \
         {after_cursor} ORDER BY at DESC, session_id DESC LIMIT {limit}"
    )))
    .bind(player)
    .bind(queue)
    .bind(season.map(|n| i32::try_from(n).unwrap_or(i32::MAX)));
    if let Some(cursor) = before {
        select = select.bind(Timestamp::new(cursor.at)?).bind(cursor.id);
    }
    let rows: Vec<HistoryRow> = select.fetch_all(&mut db).await?;
    (rows.into_iter())
        .map(|row| {
            let rating = |rating, deviation, volatility| PlayerRating {
                rating,
                deviation,
                volatility,
            };
            Ok(HistoryRecord {
                outcome: Outcome::parse(&row.outcome)
                    .ok_or_else(|| corrupt("outcome", &row.outcome))?,
                queue: row.queue,
                session_id: row.session_id,
                before: rating(
                    row.before_rating,
                    row.before_deviation,
                    row.before_volatility,
                ),
                before_display: row.before_display,
                after: rating(row.after_rating, row.after_deviation, row.after_volatility),
                after_display: row.after_display,
                at: row.at.get(),
                season: u32::try_from(row.season).unwrap_or(0),
            })
        })
        .collect()
}

#[derive(sqlx::FromRow)]
struct MatchRow {
    session_id: Uuid,
    queue: String,
    team: i32,
    result: Json<serde_json::Value>,
    outcome: Option<String>,
    rating_change: Option<f64>,
    result_at: Timestamp,
}

pub(crate) async fn match_history<D: Dialect>(
    pool: &Pool<D>,
    player: Uuid,
    before: Option<Cursor>,
    limit: u32,
) -> StoreResult<Vec<MatchRecord>> {
    let after_cursor = if before.is_some() {
        "AND (s.result_at, s.id) < ($2, $3)"
    } else {
        ""
    };
    let mut db = pool.acquire().await?;
    let mut select = sql(AssertSqlSafe(format!(
        "SELECT s.id AS session_id, s.queue, sp.team, s.result, h.outcome, \
         h.after_display - h.before_display AS rating_change, s.result_at \
         FROM session_players sp JOIN game_sessions s ON s.id = sp.session_id \
         LEFT JOIN rating_history h ON h.player_id = sp.player_id AND h.session_id = s.id \
         WHERE sp.player_id = $1 AND s.result_at IS NOT NULL {after_cursor} \
         ORDER BY s.result_at DESC, s.id DESC LIMIT {limit}"
    )))
    .bind(player);
    if let Some(cursor) = before {
        select = select.bind(Timestamp::new(cursor.at)?).bind(cursor.id);
    }
    let rows: Vec<MatchRow> = select.fetch_all(&mut db).await?;
    let mut matches = Vec::with_capacity(rows.len());
    for row in rows {
        matches.push(MatchRecord {
            teams: roster(&mut db, row.session_id).await?,
            session_id: row.session_id,
            queue: row.queue,
            team: index(row.team)?,
            result: row.result.0,
            outcome: (row.outcome.as_deref())
                .map(|raw| Outcome::parse(raw).ok_or_else(|| corrupt("outcome", raw)))
                .transpose()?,
            rating_change: row.rating_change,
            ended_at: row.result_at.get(),
        });
    }
    Ok(matches)
}

/// A player's place-deciding facts in one queue, for a leaderboard.
#[derive(Debug, Clone, PartialEq)]
pub struct BoardStanding {
    pub player_id: Uuid,
    pub display_rating: f64,
    /// When the rating last changed (ties go to whoever reached the score first).
    pub reached_at: OffsetDateTime,
}

/// A player's row on a board: rating, counts and name.
#[derive(Debug, Clone, PartialEq)]
pub struct BoardRow {
    pub player_id: Uuid,
    pub display_name: String,
    pub rating: StoredRating,
    /// When the rating last changed: ties on a board go to whoever reached the score first.
    pub reached_at: OffsetDateTime,
}

#[derive(sqlx::FromRow)]
pub(crate) struct BoardRecord {
    #[sqlx(flatten)]
    rating: RatingRow,
    display_name: String,
    updated_at: Timestamp,
}

impl BoardRecord {
    pub(crate) fn into_row(self) -> BoardRow {
        BoardRow {
            player_id: self.rating.player_id,
            display_name: self.display_name,
            rating: self.rating.into_stored(),
            reached_at: self.updated_at.get(),
        }
    }
}

pub(crate) const BOARD_SELECT: &str = "SELECT r.player_id, r.queue, r.rating, r.deviation, r.volatility, \
     r.display_rating, r.games, r.wins, r.losses, r.draws, r.season, r.updated_at, p.display_name \
     FROM player_ratings r JOIN players p ON p.id = r.player_id";

/// Every player of `queue` with at least `min_games` in `season` (what a board is rebuilt from).
pub(crate) async fn board<D: Dialect>(
    pool: &Pool<D>,
    queue: &str,
    season: u32,
    min_games: u64,
) -> StoreResult<Vec<BoardRow>> {
    let mut db = pool.acquire().await?;
    let rows: Vec<BoardRecord> = sql(AssertSqlSafe(format!(
        "{BOARD_SELECT} WHERE r.queue = $1 AND r.games >= $2 AND r.season = $3"
    )))
    .bind(queue)
    .bind(i64::try_from(min_games).unwrap_or(i64::MAX))
    .bind(i32::try_from(season).unwrap_or(i32::MAX))
    .fetch_all(&mut db)
    .await?;
    Ok(rows.into_iter().map(BoardRecord::into_row).collect())
}

/// Where each player of `queue` with at least `min_games` in `season` stands (what a board's
/// index is built from), streamed: no names, nothing per row but what the index keeps.
pub(crate) async fn board_standings<D: Dialect>(
    pool: &Pool<D>,
    queue: &str,
    season: u32,
    min_games: u64,
) -> StoreResult<Vec<BoardStanding>> {
    let select = sql(
        "SELECT player_id, display_rating, updated_at FROM player_ratings \
         WHERE queue = $1 AND games >= $2 AND season = $3",
    )
    .bind(queue)
    .bind(i64::try_from(min_games).unwrap_or(i64::MAX))
    .bind(i32::try_from(season).unwrap_or(i32::MAX));
    standings(pool, select).await
}

/// Streams `select`'s (player, display rating, reached at) rows into standings.
pub(crate) async fn standings<D: Dialect>(
    pool: &Pool<D>,
    select: Statement<D>,
) -> StoreResult<Vec<BoardStanding>> {
    let mut db = pool.acquire().await?;
    let mut standings = Vec::new();
    select
        .for_each(
            &mut db,
            |(player_id, display_rating, reached_at): (Uuid, f64, Timestamp)| {
                standings.push(BoardStanding {
                    player_id,
                    display_rating,
                    reached_at: reached_at.get(),
                });
            },
        )
        .await?;
    Ok(standings)
}

/// The board rows of `players` in `queue` (those rated there), in no particular order.
pub(crate) async fn board_rows<D: Dialect>(
    pool: &Pool<D>,
    queue: &str,
    players: &[Uuid],
) -> StoreResult<Vec<BoardRow>> {
    board_rows_of(pool, players, |n| {
        sql(AssertSqlSafe(format!(
            "{BOARD_SELECT} WHERE r.queue = $1 AND r.player_id IN ({})",
            placeholders(2, n)
        )))
        .bind(queue)
    })
    .await
}

/// The board rows `select` finds for `players`, a few hundred ids per statement:
/// `select(n)` is the statement for `n` of them, its other parameters bound, ending in an
/// `IN (…)` list whose `n` placeholders come last.
pub(crate) async fn board_rows_of<D: Dialect>(
    pool: &Pool<D>,
    players: &[Uuid],
    select: impl Fn(usize) -> Statement<D>,
) -> StoreResult<Vec<BoardRow>> {
    if players.is_empty() {
        return Ok(Vec::new());
    }
    let mut db = pool.acquire().await?;
    let mut rows = Vec::with_capacity(players.len());
    for chunk in players.chunks(500) {
        let mut statement = select(chunk.len());
        for player in chunk {
            statement = statement.bind(*player);
        }
        let found: Vec<BoardRecord> = statement.fetch_all(&mut db).await?;
        rows.extend(found.into_iter().map(BoardRecord::into_row));
    }
    Ok(rows)
}
