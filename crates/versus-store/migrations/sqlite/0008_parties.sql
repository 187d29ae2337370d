-- Parties: who plays together (issue 15). Same semantics as migrations/postgres/0008_parties.sql.
-- A party is small (a handful of members), so every change rewrites its member and invite
-- rows under a lock on the party row; `version` orders the `party_update` events.

CREATE TABLE parties (
    id              BLOB    NOT NULL PRIMARY KEY CHECK (length(id) = 16),
    leader_id       BLOB    NOT NULL REFERENCES players (id) ON DELETE CASCADE,
    open            INTEGER NOT NULL CHECK (open IN (0, 1)),
    -- Lets anyone holding it join an open party.
    join_code       TEXT    NOT NULL UNIQUE,
    max_size        INTEGER NOT NULL CHECK (max_size >= 1),
    version         INTEGER NOT NULL,
    -- The running or passed ready check; NULL: none.
    ready_started_at TEXT,
    ready_deadline  TEXT,
    ready_passed    INTEGER NOT NULL DEFAULT 0 CHECK (ready_passed IN (0, 1)),
    -- The party's ticket while it is queued (or was last).
    queue           TEXT,
    ticket_id       BLOB,
    created_at      TEXT    NOT NULL,
    updated_at      TEXT    NOT NULL
) STRICT;

CREATE TABLE party_members (
    party_id  BLOB    NOT NULL REFERENCES parties (id) ON DELETE CASCADE,
    player_id BLOB    NOT NULL REFERENCES players (id) ON DELETE CASCADE,
    -- Join order decides who leads next.
    position  INTEGER NOT NULL,
    joined_at TEXT    NOT NULL,
    ready     INTEGER CHECK (ready IN (0, 1)),
    -- Round-trip latency per region (JSON object), given with the member's ready answer.
    latencies TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(latencies)),
    PRIMARY KEY (party_id, player_id)
) STRICT;

-- A player is in at most one party.
CREATE UNIQUE INDEX party_members_one_party ON party_members (player_id);

CREATE TABLE party_invites (
    party_id   BLOB NOT NULL REFERENCES parties (id) ON DELETE CASCADE,
    player_id  BLOB NOT NULL REFERENCES players (id) ON DELETE CASCADE,
    invited_by BLOB NOT NULL,
    expires_at TEXT NOT NULL,
    PRIMARY KEY (party_id, player_id)
) STRICT;

CREATE INDEX party_invites_by_player ON party_invites (player_id);
