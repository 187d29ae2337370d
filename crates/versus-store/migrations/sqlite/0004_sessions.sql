-- Game sessions, their rosters and transitions, results, and the ratings results change
-- (SQLite). Same semantics as migrations/postgres/0004_sessions.sql.
--
-- A session is stored before any player hears of its match, so no match lives only in memory.
-- Its result and the answer given for it are kept with it: a repeated POST of the same result
-- (same hash) gets the same answer, a different one is refused.

CREATE TABLE game_sessions (
    id            BLOB    NOT NULL PRIMARY KEY CHECK (length(id) = 16),
    queue         TEXT    NOT NULL,
    ranked        INTEGER NOT NULL CHECK (ranked IN (0, 1)),
    region        TEXT,
    endpoint      TEXT,
    -- versus_core::session::SessionState::as_str()
    state         TEXT    NOT NULL,
    created_at    TEXT    NOT NULL,
    updated_at    TEXT    NOT NULL,
    result        TEXT,
    result_hash   BLOB,
    result_answer TEXT,
    -- When the result was recorded: what match history pages on (newest first).
    result_at     TEXT
) STRICT;

CREATE INDEX game_sessions_unfinished ON game_sessions (state)
    WHERE state IN ('allocating', 'ready', 'active');

CREATE TABLE session_players (
    session_id BLOB    NOT NULL REFERENCES game_sessions (id) ON DELETE CASCADE,
    player_id  BLOB    NOT NULL REFERENCES players (id) ON DELETE CASCADE,
    team       INTEGER NOT NULL CHECK (team >= 0),
    -- Order within the team: matched players first, backfilled ones after.
    slot       INTEGER NOT NULL CHECK (slot >= 0),
    joined_at  TEXT    NOT NULL,
    PRIMARY KEY (session_id, player_id)
) STRICT;

CREATE INDEX session_players_player_id ON session_players (player_id);

CREATE TABLE session_transitions (
    session_id BLOB    NOT NULL REFERENCES game_sessions (id) ON DELETE CASCADE,
    seq        INTEGER NOT NULL,
    from_state TEXT,
    to_state   TEXT    NOT NULL,
    -- versus_core::session::Actor::as_str()
    actor      TEXT    NOT NULL,
    reason     TEXT    NOT NULL,
    at         TEXT    NOT NULL,
    PRIMARY KEY (session_id, seq)
) STRICT;

-- A player's current rating in one queue. Absent until their first rated result.
CREATE TABLE player_ratings (
    player_id      BLOB    NOT NULL REFERENCES players (id) ON DELETE CASCADE,
    queue          TEXT    NOT NULL,
    rating         REAL    NOT NULL,
    deviation      REAL    NOT NULL,
    volatility     REAL    NOT NULL,
    display_rating REAL    NOT NULL,
    games          INTEGER NOT NULL,
    wins           INTEGER NOT NULL,
    losses         INTEGER NOT NULL,
    draws          INTEGER NOT NULL,
    updated_at     TEXT    NOT NULL,
    PRIMARY KEY (player_id, queue)
) STRICT;

-- One row per player per rated session: each row's `before` is the previous row's `after`.
CREATE TABLE rating_history (
    player_id         BLOB NOT NULL REFERENCES players (id) ON DELETE CASCADE,
    session_id        BLOB NOT NULL REFERENCES game_sessions (id) ON DELETE CASCADE,
    queue             TEXT NOT NULL,
    -- versus_core::session::Outcome::as_str()
    outcome           TEXT NOT NULL,
    before_rating     REAL NOT NULL,
    before_deviation  REAL NOT NULL,
    before_volatility REAL NOT NULL,
    before_display    REAL NOT NULL,
    after_rating      REAL NOT NULL,
    after_deviation   REAL NOT NULL,
    after_volatility  REAL NOT NULL,
    after_display     REAL NOT NULL,
    at                TEXT NOT NULL,
    PRIMARY KEY (player_id, session_id)
) STRICT;

CREATE INDEX rating_history_by_time ON rating_history (player_id, queue, at, session_id);
