-- Parties: who plays together (issue 15). Same semantics as migrations/sqlite/0008_parties.sql.
-- A party is small (a handful of members), so every change rewrites its member and invite
-- rows under a lock on the party row; `version` orders the `party_update` events.

CREATE TABLE parties (
    id              uuid        NOT NULL PRIMARY KEY,
    leader_id       uuid        NOT NULL REFERENCES players (id) ON DELETE CASCADE,
    open            boolean     NOT NULL,
    -- Lets anyone holding it join an open party.
    join_code       text        NOT NULL UNIQUE,
    max_size        integer     NOT NULL CHECK (max_size >= 1),
    version         bigint      NOT NULL,
    -- The running or passed ready check; NULL: none.
    ready_started_at timestamptz,
    ready_deadline  timestamptz,
    ready_passed    boolean     NOT NULL DEFAULT false,
    -- The party's ticket while it is queued (or was last).
    queue           text,
    ticket_id       uuid,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL
);

CREATE TABLE party_members (
    party_id  uuid        NOT NULL REFERENCES parties (id) ON DELETE CASCADE,
    player_id uuid        NOT NULL REFERENCES players (id) ON DELETE CASCADE,
    -- Join order decides who leads next.
    position  integer     NOT NULL,
    joined_at timestamptz NOT NULL,
    ready     boolean,
    -- Round-trip latency per region (JSON object), given with the member's ready answer.
    latencies jsonb       NOT NULL DEFAULT '{}',
    PRIMARY KEY (party_id, player_id)
);

-- A player is in at most one party.
CREATE UNIQUE INDEX party_members_one_party ON party_members (player_id);

CREATE TABLE party_invites (
    party_id   uuid        NOT NULL REFERENCES parties (id) ON DELETE CASCADE,
    player_id  uuid        NOT NULL REFERENCES players (id) ON DELETE CASCADE,
    invited_by uuid        NOT NULL,
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (party_id, player_id)
);

CREATE INDEX party_invites_by_player ON party_invites (player_id);
