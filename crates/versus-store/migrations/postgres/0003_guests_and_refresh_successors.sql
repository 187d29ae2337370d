-- Guest accounts and refresh-token successors (PostgreSQL). Same semantics as
-- migrations/sqlite/0003_guests_and_refresh_successors.sql.
--
-- A guest account has no password: `players.password_hash` becomes nullable (NULL = no
-- password; password login never succeeds).
ALTER TABLE players ALTER COLUMN password_hash DROP NOT NULL;

-- The devices an account logs in with. A device id is a credential: only its SHA-256 is kept.
-- One device logs into one account; an account may have several devices.
CREATE TABLE player_devices (
    device_hash bytea       NOT NULL,
    player_id   uuid        NOT NULL,
    created_at  timestamptz NOT NULL,
    CONSTRAINT player_devices_pkey PRIMARY KEY (device_hash),
    CONSTRAINT player_devices_player_id_fkey
        FOREIGN KEY (player_id) REFERENCES players (id) ON DELETE CASCADE,
    CONSTRAINT player_devices_device_hash_len CHECK (octet_length(device_hash) = 32)
);

CREATE INDEX player_devices_player_id ON player_devices (player_id);

-- The token a rotation issued in exchange for this one (its `id`), set with `used_at`: what
-- tells a client's retry of the same rotation (answered with that successor within the grace
-- window) from a replay of an older token.
ALTER TABLE refresh_tokens ADD COLUMN replaced_by uuid;
