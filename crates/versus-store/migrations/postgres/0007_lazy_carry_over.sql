-- A season rollover no longer rewrites every rating in the transaction that ends the season
-- (at a million players that held every result for tens of seconds). Each rating row says
-- which season its counts belong to; a row of an ended season is its player's final standing
-- there, carried into the current season (softly reset, counts zeroed) by the first of: the
-- player's next result, or the background carry-over that follows every rollover in batches.
-- Same semantics as migrations/sqlite/0007_lazy_carry_over.sql.

ALTER TABLE player_ratings ADD COLUMN season integer NOT NULL DEFAULT 1;

-- Every row so far was reset by the rollover that started its queue's current season.
UPDATE player_ratings r SET season = s.number
FROM seasons s WHERE s.queue = r.queue AND s.ended_at IS NULL;

-- Nothing reads standings by rank (a past board is an in-memory index built from them), and
-- at a million players its random inserts were half a rollover's time.
DROP INDEX season_standings_by_rank;
