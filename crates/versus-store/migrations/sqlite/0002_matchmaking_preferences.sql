-- Matchmaking preferences (SQLite). Same semantics as
-- migrations/postgres/0002_matchmaking_preferences.sql.
--
-- One row per player who ever set them; no row means "never set". `regions` (Region::as_str,
-- best first) and `modes` (queue names) are JSON arrays of strings as TEXT, order as written.
-- Encodings as in 0001: UUIDs are 16-byte BLOBs, timestamps fixed-width UTC TEXT.

CREATE TABLE matchmaking_preferences (
    player_id  BLOB NOT NULL PRIMARY KEY REFERENCES players (id) ON DELETE CASCADE,
    regions    TEXT NOT NULL CHECK (json_valid(regions) AND json_type(regions) = 'array'),
    modes      TEXT NOT NULL CHECK (json_valid(modes) AND json_type(modes) = 'array'),
    updated_at TEXT NOT NULL
) STRICT;
