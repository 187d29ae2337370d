-- Matchmaking preferences (PostgreSQL). Same semantics as
-- migrations/sqlite/0002_matchmaking_preferences.sql.
--
-- One row per player who ever set them; no row means "never set". `regions` (Region::as_str,
-- best first) and `modes` (queue names) are JSON arrays of strings, order as written.

CREATE TABLE matchmaking_preferences (
    player_id  uuid        NOT NULL,
    regions    jsonb       NOT NULL,
    modes      jsonb       NOT NULL,
    updated_at timestamptz NOT NULL,
    CONSTRAINT matchmaking_preferences_pkey PRIMARY KEY (player_id),
    CONSTRAINT matchmaking_preferences_player_id_fkey
        FOREIGN KEY (player_id) REFERENCES players (id) ON DELETE CASCADE,
    CONSTRAINT matchmaking_preferences_regions_array CHECK (jsonb_typeof(regions) = 'array'),
    CONSTRAINT matchmaking_preferences_modes_array CHECK (jsonb_typeof(modes) = 'array')
);
