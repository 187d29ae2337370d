-- Guest accounts and refresh-token successors (SQLite). Same semantics as
-- migrations/postgres/0003_guests_and_refresh_successors.sql.
--
-- A guest account has no password: `players.password_hash` becomes nullable (NULL = no
-- password; password login never succeeds). SQLite cannot drop a NOT NULL constraint in place,
-- and rebuilding `players` would cascade-delete every row that references it, so the column is
-- replaced instead: copy, drop, rename (SQLite 3.35 and later).
ALTER TABLE players ADD COLUMN password_hash_nullable TEXT;
UPDATE players SET password_hash_nullable = password_hash;
ALTER TABLE players DROP COLUMN password_hash;
ALTER TABLE players RENAME COLUMN password_hash_nullable TO password_hash;

-- The devices an account logs in with. A device id is a credential: only its SHA-256 is kept.
-- One device logs into one account; an account may have several devices.
CREATE TABLE player_devices (
    device_hash BLOB NOT NULL PRIMARY KEY CHECK (length(device_hash) = 32),
    player_id   BLOB NOT NULL REFERENCES players (id) ON DELETE CASCADE,
    created_at  TEXT NOT NULL
) STRICT;

CREATE INDEX player_devices_player_id ON player_devices (player_id);

-- The token a rotation issued in exchange for this one (its `id`), set with `used_at`: what
-- tells a client's retry of the same rotation (answered with that successor within the grace
-- window) from a replay of an older token.
ALTER TABLE refresh_tokens ADD COLUMN replaced_by BLOB
    CHECK (replaced_by IS NULL OR length(replaced_by) = 16);
