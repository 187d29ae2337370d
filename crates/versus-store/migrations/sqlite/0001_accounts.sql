-- Accounts and refresh tokens (SQLite). Same semantics as migrations/postgres/0001_accounts.sql.
--
-- Encodings: UUIDs are 16-byte BLOBs; timestamps are UTC TEXT of one fixed width,
-- 'YYYY-MM-DDTHH:MM:SS.ffffffZ' (microseconds), so they sort as text and round-trip exactly;
-- booleans are INTEGER 0/1. STRICT tables refuse values of the wrong type.

CREATE TABLE players (
    id            BLOB    NOT NULL PRIMARY KEY CHECK (length(id) = 16),
    username      TEXT    NOT NULL,
    -- Username::key(): the case-folded form that uniqueness is decided on.
    username_key  TEXT    NOT NULL UNIQUE,
    display_name  TEXT    NOT NULL,
    email         TEXT,
    region        TEXT,
    password_hash TEXT    NOT NULL,
    banned        INTEGER NOT NULL DEFAULT 0 CHECK (banned IN (0, 1)),
    created_at    TEXT    NOT NULL,
    updated_at    TEXT    NOT NULL
) STRICT;

CREATE TABLE refresh_tokens (
    id         BLOB NOT NULL PRIMARY KEY CHECK (length(id) = 16),
    family_id  BLOB NOT NULL CHECK (length(family_id) = 16),
    player_id  BLOB NOT NULL REFERENCES players (id) ON DELETE CASCADE,
    -- SHA-256 of the token; the token itself is never stored.
    token_hash BLOB NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    used_at    TEXT,
    revoked_at TEXT
) STRICT;

CREATE INDEX refresh_tokens_family_id ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_player_id ON refresh_tokens (player_id);
