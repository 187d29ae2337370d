-- Seasons per queue, the frozen final standings of ended ones, and the season of each rating
-- history row (SQLite). Same semantics as migrations/postgres/0006_seasons.sql.
--
-- `player_ratings` holds the current season: its counts (games, wins, losses, draws) restart at
-- zero at a rollover and its ratings carry over softly reset. What a player had when a season
-- ended is in `season_standings`.

CREATE TABLE seasons (
    queue      TEXT    NOT NULL,
    number     INTEGER NOT NULL CHECK (number >= 1),
    started_at TEXT    NOT NULL,
    -- When the schedule ends it; NULL: only an admin ends it.
    ends_at    TEXT,
    -- When it did end; NULL for the queue's current season (exactly one per queue).
    ended_at   TEXT,
    PRIMARY KEY (queue, number)
) STRICT;

CREATE UNIQUE INDEX seasons_current ON seasons (queue) WHERE ended_at IS NULL;

-- Every player who played a rated game in an ended season, as it ended. `rank` is NULL for a
-- player still in placement games.
CREATE TABLE season_standings (
    queue          TEXT    NOT NULL,
    season         INTEGER NOT NULL,
    player_id      BLOB    NOT NULL REFERENCES players (id) ON DELETE CASCADE,
    rank           INTEGER,
    rating         REAL    NOT NULL,
    deviation      REAL    NOT NULL,
    volatility     REAL    NOT NULL,
    display_rating REAL    NOT NULL,
    games          INTEGER NOT NULL,
    wins           INTEGER NOT NULL,
    losses         INTEGER NOT NULL,
    draws          INTEGER NOT NULL,
    reached_at     TEXT    NOT NULL,
    PRIMARY KEY (queue, season, player_id)
) STRICT;

CREATE INDEX season_standings_by_rank ON season_standings (queue, season, rank);
CREATE INDEX season_standings_by_player ON season_standings (player_id, queue, season);

ALTER TABLE rating_history ADD COLUMN season INTEGER NOT NULL DEFAULT 1;
