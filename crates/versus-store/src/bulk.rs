//! Bulk demo data: players with a rating each, in multi-row statements (`versus seed --fast`,
//! the million-player leaderboard benchmark). Written once for both dialects, like
//! `queries.rs`.

use sqlx::{AssertSqlSafe, Pool};
use time::OffsetDateTime;
use uuid::Uuid;
use versus_core::account::Region;

use crate::dialect::{Dialect, Timestamp, sql};
use crate::sessions::{StoredRating, row_placeholders};
use crate::{NewPlayer, StoreResult};

/// A demo player with their rating in one queue (`rating.queue`).
#[derive(Debug, Clone)]
pub struct SeededPlayer {
    pub player: NewPlayer,
    pub region: Option<Region>,
    pub rating: StoredRating,
    /// When the rating was reached (a board's tie-break).
    pub reached_at: OffsetDateTime,
}

/// Rows per statement: 11 parameters each, under SQLite's limit of 32,766.
const ROWS: usize = 1_000;

pub(crate) async fn seed<D: Dialect>(pool: &Pool<D>, players: &[SeededPlayer]) -> StoreResult<u64> {
    let mut tx = pool.begin_with(D::BEGIN_WRITE).await?;
    let mut inserted = 0;
    for chunk in players.chunks(ROWS) {
        let mut insert = sql(AssertSqlSafe(format!(
            "INSERT INTO players (id, username, username_key, display_name, password_hash, \
             region, created_at, updated_at) VALUES {} ON CONFLICT DO NOTHING RETURNING id",
            row_placeholders(chunk.len(), 8)
        )));
        for seeded in chunk {
            let p = &seeded.player;
            let created = Timestamp::new(p.created_at)?;
            insert = insert
                .bind(p.id)
                .bind(p.username.as_str())
                .bind(p.username.key())
                .bind(p.display_name.as_str())
                .bind(p.password_hash.as_deref())
                .bind(seeded.region.as_ref().map(Region::as_str))
                .bind(created)
                .bind(created);
        }
        // A player skipped (the id or username exists) gets no rating either.
        let created: Vec<(Uuid,)> = insert.fetch_all(&mut tx).await?;
        let created: std::collections::HashSet<Uuid> =
            created.into_iter().map(|(id,)| id).collect();
        let rated: Vec<&SeededPlayer> = (chunk.iter())
            .filter(|s| created.contains(&s.player.id))
            .collect();
        inserted += rated.len() as u64;
        if rated.is_empty() {
            continue;
        }
        let mut ratings = sql(AssertSqlSafe(format!(
            "INSERT INTO player_ratings (player_id, queue, rating, deviation, volatility, \
             display_rating, games, wins, losses, draws, updated_at, season) VALUES {}",
            row_placeholders(rated.len(), 12)
        )));
        for seeded in rated {
            let r = &seeded.rating;
            let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
            ratings = ratings
                .bind(seeded.player.id)
                .bind(r.queue.as_str())
                .bind(r.rating.rating)
                .bind(r.rating.deviation)
                .bind(r.rating.volatility)
                .bind(r.display_rating)
                .bind(count(r.games))
                .bind(count(r.wins))
                .bind(count(r.losses))
                .bind(count(r.draws))
                .bind(Timestamp::new(seeded.reached_at)?)
                .bind(i32::try_from(r.season).unwrap_or(i32::MAX));
        }
        ratings.execute(&mut tx).await?;
    }
    tx.commit().await?;
    Ok(inserted)
}
