-- Game sessions, their rosters and transitions, results, and the ratings results change
-- (PostgreSQL). Same semantics as migrations/sqlite/0004_sessions.sql.
--
-- A session is stored before any player hears of its match, so no match lives only in memory.
-- Its result and the answer given for it are kept with it: a repeated POST of the same result
-- (same hash) gets the same answer, a different one is refused.

CREATE TABLE game_sessions (
    id            uuid        NOT NULL PRIMARY KEY,
    queue         text        NOT NULL,
    ranked        boolean     NOT NULL,
    region        text,
    endpoint      text,
    -- versus_core::session::SessionState::as_str()
    state         text        NOT NULL,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,
    result        jsonb,
    result_hash   bytea,
    result_answer jsonb,
    -- When the result was recorded: what match history pages on (newest first).
    result_at     timestamptz
);

CREATE INDEX game_sessions_unfinished ON game_sessions (state)
    WHERE state IN ('allocating', 'ready', 'active');

CREATE TABLE session_players (
    session_id uuid        NOT NULL REFERENCES game_sessions (id) ON DELETE CASCADE,
    player_id  uuid        NOT NULL REFERENCES players (id) ON DELETE CASCADE,
    team       integer     NOT NULL CHECK (team >= 0),
    -- Order within the team: matched players first, backfilled ones after.
    slot       integer     NOT NULL CHECK (slot >= 0),
    joined_at  timestamptz NOT NULL,
    PRIMARY KEY (session_id, player_id)
);

CREATE INDEX session_players_player_id ON session_players (player_id);

CREATE TABLE session_transitions (
    session_id uuid        NOT NULL REFERENCES game_sessions (id) ON DELETE CASCADE,
    seq        integer     NOT NULL,
    from_state text,
    to_state   text        NOT NULL,
    -- versus_core::session::Actor::as_str()
    actor      text        NOT NULL,
    reason     text        NOT NULL,
    at         timestamptz NOT NULL,
    PRIMARY KEY (session_id, seq)
);

-- A player's current rating in one queue. Absent until their first rated result.
CREATE TABLE player_ratings (
    player_id      uuid             NOT NULL REFERENCES players (id) ON DELETE CASCADE,
    queue          text             NOT NULL,
    rating         double precision NOT NULL,
    deviation      double precision NOT NULL,
    volatility     double precision NOT NULL,
    display_rating double precision NOT NULL,
    games          bigint           NOT NULL,
    wins           bigint           NOT NULL,
    losses         bigint           NOT NULL,
    draws          bigint           NOT NULL,
    updated_at     timestamptz      NOT NULL,
    PRIMARY KEY (player_id, queue)
);

-- One row per player per rated session: each row's `before` is the previous row's `after`.
CREATE TABLE rating_history (
    player_id         uuid             NOT NULL REFERENCES players (id) ON DELETE CASCADE,
    session_id        uuid             NOT NULL REFERENCES game_sessions (id) ON DELETE CASCADE,
    queue             text             NOT NULL,
    -- versus_core::session::Outcome::as_str()
    outcome           text             NOT NULL,
    before_rating     double precision NOT NULL,
    before_deviation  double precision NOT NULL,
    before_volatility double precision NOT NULL,
    before_display    double precision NOT NULL,
    after_rating      double precision NOT NULL,
    after_deviation   double precision NOT NULL,
    after_volatility  double precision NOT NULL,
    after_display     double precision NOT NULL,
    at                timestamptz      NOT NULL,
    PRIMARY KEY (player_id, session_id)
);

CREATE INDEX rating_history_by_time ON rating_history (player_id, queue, at, session_id);
