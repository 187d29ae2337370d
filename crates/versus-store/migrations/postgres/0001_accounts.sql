-- Accounts and refresh tokens (PostgreSQL). Same semantics as migrations/sqlite/0001_accounts.sql.
--
-- Timestamps are timestamptz (microsecond precision); the store truncates to microseconds
-- before writing so both backends read back exactly what they wrote.

CREATE TABLE players (
    id            uuid        NOT NULL,
    username      text        NOT NULL,
    -- Username::key(): the case-folded form that uniqueness is decided on.
    username_key  text        NOT NULL,
    display_name  text        NOT NULL,
    email         text,
    region        text,
    password_hash text        NOT NULL,
    banned        boolean     NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,
    CONSTRAINT players_pkey PRIMARY KEY (id),
    CONSTRAINT players_username_key_unique UNIQUE (username_key)
);

CREATE TABLE refresh_tokens (
    id         uuid        NOT NULL,
    family_id  uuid        NOT NULL,
    player_id  uuid        NOT NULL,
    -- SHA-256 of the token; the token itself is never stored.
    token_hash bytea       NOT NULL,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    used_at    timestamptz,
    revoked_at timestamptz,
    CONSTRAINT refresh_tokens_pkey PRIMARY KEY (id),
    CONSTRAINT refresh_tokens_player_id_fkey
        FOREIGN KEY (player_id) REFERENCES players (id) ON DELETE CASCADE,
    CONSTRAINT refresh_tokens_token_hash_unique UNIQUE (token_hash),
    CONSTRAINT refresh_tokens_token_hash_len CHECK (octet_length(token_hash) = 32)
);

CREATE INDEX refresh_tokens_family_id ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_player_id ON refresh_tokens (player_id);
