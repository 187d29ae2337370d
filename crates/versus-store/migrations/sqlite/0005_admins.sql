-- Admin accounts and the record of what admins do (SQLite). Same semantics as
-- migrations/postgres/0005_admins.sql.

ALTER TABLE players ADD COLUMN admin INTEGER NOT NULL DEFAULT 0 CHECK (admin IN (0, 1));

-- One row per admin action: who (NULL for the server's own command line), what, on what, when.
CREATE TABLE admin_actions (
    id        BLOB NOT NULL PRIMARY KEY CHECK (length(id) = 16),
    admin_id  BLOB REFERENCES players (id) ON DELETE SET NULL,
    action    TEXT NOT NULL,
    target    TEXT,
    details   TEXT NOT NULL,
    at        TEXT NOT NULL
) STRICT;

CREATE INDEX admin_actions_by_time ON admin_actions (at, id);
