//! Leaderboards: one [`RankIndex`] per queue, rebuilt from the store at start-up and moved after
//! every applied result, so a rank is a lookup in memory (microseconds at a million players;
//! `BENCHMARKS.md`) and a result shows on the board as soon as its transaction commits.
//!
//! The store stays the truth: the index holds only (score, when reached, player); names and
//! counts of a page are read from the store with one query. Seasons are not here yet (issue
//! 14): a board is the queue's current ratings.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use uuid::Uuid;
use versus_core::leaderboard::{RankIndex, Ranked, Standing};
use versus_protocol::leaderboards::{LeaderboardEntry, LeaderboardPage, LeaderboardStanding};
use versus_store::{BoardRow, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum LeaderboardError {
    #[error("unknown queue; known: {known}")]
    UnknownQueue { known: String },
    #[error("not a cursor this server gave")]
    BadCursor,
    #[error("the player is not on this board (unrated here, or still in placement games)")]
    NotRanked,
    #[error("leaderboard storage failed")]
    Store(#[from] StoreError),
}

/// Where a page starts: strictly after or strictly before a standing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PageCursor {
    After(Standing),
    Before(Standing),
}

impl PageCursor {
    /// `a` or `b`, the score's bits, when it was reached, the player: opaque to clients.
    pub fn encode(&self) -> String {
        let (dir, s) = match self {
            Self::After(s) => ('a', s),
            Self::Before(s) => ('b', s),
        };
        format!(
            "{dir}{:016x}.{}.{:032x}",
            s.score.to_bits(),
            s.reached_at,
            s.player
        )
    }

    pub fn decode(raw: &str) -> Option<Self> {
        let dir = raw.get(..1)?;
        let mut parts = raw.get(1..)?.split('.');
        let (Some(score), Some(reached_at), Some(player), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        let standing = Standing {
            score: f64::from_bits(u64::from_str_radix(score, 16).ok()?),
            reached_at: reached_at.parse().ok()?,
            player: u128::from_str_radix(player, 16).ok()?,
        };
        if !standing.score.is_finite() {
            return None;
        }
        match dir {
            "a" => Some(Self::After(standing)),
            "b" => Some(Self::Before(standing)),
            _ => None,
        }
    }
}

/// The shape of a cursor, for the OpenAPI document.
pub const CURSOR_PATTERN: &str = r"^[ab][0-9a-f]{16}\.-?[0-9]{1,20}\.[0-9a-f]{32}$";

pub struct Leaderboards {
    store: Arc<dyn Store>,
    boards: HashMap<String, RwLock<RankIndex>>,
    placement_games: u64,
}

fn standing(row: &BoardRow) -> Standing {
    Standing {
        score: row.rating.display_rating,
        reached_at: (row.reached_at.unix_timestamp_nanos() / 1_000) as i64,
        player: row.player_id.as_u128(),
    }
}

impl Leaderboards {
    /// Builds every queue's board from the store.
    pub async fn load<'a>(
        store: Arc<dyn Store>,
        queues: impl IntoIterator<Item = &'a str>,
        placement_games: u64,
    ) -> Result<Arc<Self>, StoreError> {
        let mut boards = HashMap::new();
        for queue in queues {
            let rows = store.leaderboard_rows(queue, placement_games).await?;
            let index = RankIndex::from_standings(rows.iter().map(standing));
            tracing::info!(queue, players = index.len(), "leaderboard loaded");
            boards.insert(queue.to_owned(), RwLock::new(index));
        }
        Ok(Arc::new(Self {
            store,
            boards,
            placement_games,
        }))
    }

    fn board(&self, queue: &str) -> Result<&RwLock<RankIndex>, LeaderboardError> {
        self.boards
            .get(queue)
            .ok_or_else(|| LeaderboardError::UnknownQueue {
                known: self.boards.keys().cloned().collect::<Vec<_>>().join(", "),
            })
    }

    /// After a result commits: its players' places from what the store now holds.
    pub async fn refresh(&self, queue: &str, players: &[Uuid]) -> Result<(), LeaderboardError> {
        let rows = self.store.leaderboard_rows_of(queue, players).await?;
        let board = self.board(queue)?;
        let mut index = board.write().expect("leaderboard lock");
        for row in &rows {
            if row.rating.games >= self.placement_games {
                index.upsert(standing(row));
            }
        }
        Ok(())
    }

    /// The player's rank in `queue`, if they are on the board.
    pub fn rank(&self, queue: &str, player: Uuid) -> Option<u64> {
        let board = self.boards.get(queue)?;
        board
            .read()
            .expect("leaderboard lock")
            .rank(player.as_u128())
    }

    /// A page: from the top, or after / before a cursor.
    pub async fn page(
        &self,
        queue: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<LeaderboardPage, LeaderboardError> {
        let cursor = cursor
            .map(|raw| PageCursor::decode(raw).ok_or(LeaderboardError::BadCursor))
            .transpose()?;
        let (ranked, total) = {
            let index = self.board(queue)?.read().expect("leaderboard lock");
            let ranked = match cursor {
                None => index.after(None, limit),
                Some(PageCursor::After(s)) => index.after(Some(&s), limit),
                Some(PageCursor::Before(s)) => index.preceding(&s, limit),
            };
            (ranked, index.len() as u64)
        };
        self.window(queue, &ranked, total).await
    }

    /// The player and up to `limit` neighbours on each side.
    pub async fn around(
        &self,
        queue: &str,
        player: Uuid,
        limit: usize,
    ) -> Result<LeaderboardPage, LeaderboardError> {
        let (ranked, total) = {
            let index = self.board(queue)?.read().expect("leaderboard lock");
            let ranked = (index.around(player.as_u128(), limit, limit))
                .ok_or(LeaderboardError::NotRanked)?;
            (ranked, index.len() as u64)
        };
        self.window(queue, &ranked, total).await
    }

    /// One player's rank and percentile.
    pub async fn standing(
        &self,
        queue: &str,
        player: Uuid,
    ) -> Result<LeaderboardStanding, LeaderboardError> {
        let (ranked, total) = {
            let index = self.board(queue)?.read().expect("leaderboard lock");
            let ranked =
                (index.around(player.as_u128(), 0, 0)).ok_or(LeaderboardError::NotRanked)?;
            (ranked, index.len() as u64)
        };
        let entry =
            (self.entries(queue, &ranked).await?.pop()).ok_or(LeaderboardError::NotRanked)?;
        let percentile = 100.0 * (total - entry.rank) as f64 / total as f64;
        Ok(LeaderboardStanding {
            queue: queue.to_owned(),
            total,
            entry,
            percentile,
        })
    }

    /// A slice of a board of `total` as a page, with cursors to either side when there is more.
    async fn window(
        &self,
        queue: &str,
        ranked: &[Ranked],
        total: u64,
    ) -> Result<LeaderboardPage, LeaderboardError> {
        let next = (ranked.last())
            .filter(|last| last.rank < total)
            .map(|last| PageCursor::After(last.standing).encode());
        let prev = (ranked.first())
            .filter(|first| first.rank > 1)
            .map(|first| PageCursor::Before(first.standing).encode());
        Ok(LeaderboardPage {
            queue: queue.to_owned(),
            total,
            entries: self.entries(queue, ranked).await?,
            next,
            prev,
        })
    }

    /// Names and counts for a slice of the board, in its order.
    async fn entries(
        &self,
        queue: &str,
        ranked: &[Ranked],
    ) -> Result<Vec<LeaderboardEntry>, LeaderboardError> {
        let ids: Vec<Uuid> = ranked
            .iter()
            .map(|r| Uuid::from_u128(r.standing.player))
            .collect();
        let rows: HashMap<Uuid, BoardRow> = (self.store.leaderboard_rows_of(queue, &ids).await?)
            .into_iter()
            .map(|row| (row.player_id, row))
            .collect();
        Ok(ranked
            .iter()
            .filter_map(|r| {
                let row = rows.get(&Uuid::from_u128(r.standing.player))?;
                Some(LeaderboardEntry {
                    rank: r.rank,
                    player_id: row.player_id,
                    display_name: row.display_name.clone(),
                    // The index's score: what this rank was decided on, even if a result has
                    // moved the player since.
                    rating: r.standing.score,
                    games: row.rating.games,
                    wins: row.rating.wins,
                })
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_anything_else() {
        let s = Standing {
            score: -12.5,
            reached_at: -3,
            player: u128::MAX - 7,
        };
        for cursor in [PageCursor::After(s), PageCursor::Before(s)] {
            let raw = cursor.encode();
            assert!(regex_like(&raw), "{raw}");
            assert_eq!(PageCursor::decode(&raw), Some(cursor));
        }
        for bad in [
            "",
            "a",
            "c0.0.0",
            "a7ff8000000000000.0.0",
            "azz.1.2",
            "a0000000000000000.1",
        ] {
            assert_eq!(PageCursor::decode(bad), None, "{bad}");
        }
    }

    /// The shape the OpenAPI document gives cursors (`CURSOR_PATTERN`), checked by hand.
    fn regex_like(raw: &str) -> bool {
        let mut parts = raw[1..].split('.');
        raw.starts_with(['a', 'b'])
            && parts.next().is_some_and(|p| p.len() == 16)
            && parts.next().is_some_and(|p| p.parse::<i64>().is_ok())
            && parts.next().is_some_and(|p| p.len() == 32)
    }
}
