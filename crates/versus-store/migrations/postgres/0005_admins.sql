-- Admin accounts and the record of what admins do (PostgreSQL). Same semantics as
-- migrations/sqlite/0005_admins.sql.

ALTER TABLE players ADD COLUMN admin boolean NOT NULL DEFAULT false;

-- One row per admin action: who (NULL for the server's own command line), what, on what, when.
CREATE TABLE admin_actions (
    id        uuid        NOT NULL PRIMARY KEY,
    admin_id  uuid        REFERENCES players (id) ON DELETE SET NULL,
    action    text        NOT NULL,
    target    text,
    details   jsonb       NOT NULL,
    at        timestamptz NOT NULL
);

CREATE INDEX admin_actions_by_time ON admin_actions (at, id);
