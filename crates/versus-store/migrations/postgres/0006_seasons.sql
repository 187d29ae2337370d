-- Seasons per queue, the frozen final standings of ended ones, and the season of each rating
-- history row (PostgreSQL). Same semantics as migrations/sqlite/0006_seasons.sql.
--
-- `player_ratings` holds the current season: its counts (games, wins, losses, draws) restart at
-- zero at a rollover and its ratings carry over softly reset. What a player had when a season
-- ended is in `season_standings`.

CREATE TABLE seasons (
    queue      text        NOT NULL,
    number     integer     NOT NULL CHECK (number >= 1),
    started_at timestamptz NOT NULL,
    -- When the schedule ends it; NULL: only an admin ends it.
    ends_at    timestamptz,
    -- When it did end; NULL for the queue's current season (exactly one per queue).
    ended_at   timestamptz,
    PRIMARY KEY (queue, number)
);

CREATE UNIQUE INDEX seasons_current ON seasons (queue) WHERE ended_at IS NULL;

-- Every player who played a rated game in an ended season, as it ended. `rank` is NULL for a
-- player still in placement games.
CREATE TABLE season_standings (
    queue          text             NOT NULL,
    season         integer          NOT NULL,
    player_id      uuid             NOT NULL REFERENCES players (id) ON DELETE CASCADE,
    rank           bigint,
    rating         double precision NOT NULL,
    deviation      double precision NOT NULL,
    volatility     double precision NOT NULL,
    display_rating double precision NOT NULL,
    games          bigint           NOT NULL,
    wins           bigint           NOT NULL,
    losses         bigint           NOT NULL,
    draws          bigint           NOT NULL,
    reached_at     timestamptz      NOT NULL,
    PRIMARY KEY (queue, season, player_id)
);

CREATE INDEX season_standings_by_rank ON season_standings (queue, season, rank);
CREATE INDEX season_standings_by_player ON season_standings (player_id, queue, season);

ALTER TABLE rating_history ADD COLUMN season integer NOT NULL DEFAULT 1;
