//! The rank index behind leaderboards: every ranked player of one board (a queue's season) in
//! order — highest score first, ties to whoever reached the score first, then by player id — with
//! a player's rank, pages before and after any position, and a player's neighbours.
//!
//! Why this shape: a SQL `COUNT(*)` of the players above a score reads every one of them, which
//! at a million players is tens of milliseconds; an order-statistic index answers in
//! microseconds. Entries live in sorted chunks of at most [`MAX_CHUNK`]: finding a position is a
//! binary search over the chunks' last entries and then within one chunk, a rank adds the sizes
//! of the chunks before it (a thousand integers at a million players), and a change moves at most
//! one chunk's entries.
//!
//! Memory is what bounds it (≤ 100 B per player; measured by `examples/rank_index_memory.rs`,
//! figures in `BENCHMARKS.md`): the entry in its chunk (32 B; chunks grow in small steps, not by
//! doubling) and the player's current place, kept as an id → slot map whose entries are 20
//! bytes (a byte-array key has no 16-byte alignment to pad to) plus a 16-byte slot. A map of id
//! → standing would be 48-byte entries, and at a million players hashbrown's two million buckets
//! would take a hundred bytes per player alone.
//!
//! Positions are [`Standing`]s, not offsets: a page "after" a standing starts with the first
//! entry strictly after it, whatever moved in between, so paging never shows an entry twice or
//! skips one that stayed put.

use std::cmp::Ordering;
use std::collections::HashMap;

/// Chunks split beyond this many entries.
pub const MAX_CHUNK: usize = 1024;

/// One player's place on a board. Ordered as the board shows it: higher `score` first, then
/// earlier `reached_at`, then lower `player`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Standing {
    pub score: f64,
    /// When the player reached this score (any monotonic unit, e.g. Unix microseconds).
    pub reached_at: i64,
    pub player: u128,
}

impl Eq for Standing {}

impl Ord for Standing {
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .score
            .total_cmp(&self.score)
            .then(self.reached_at.cmp(&other.reached_at))
            .then(self.player.cmp(&other.player))
    }
}

impl PartialOrd for Standing {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// An entry as a page shows it: its 1-based rank and its standing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ranked {
    pub rank: u64,
    pub standing: Standing,
}

#[derive(Debug, Clone)]
pub struct RankIndex {
    /// Sorted, each non-empty (unless the index is), concatenated in order.
    chunks: Vec<Vec<Standing>>,
    /// Each player's current standing.
    current: Players,
    /// [`MAX_CHUNK`]; smaller in tests, so that they split and drop chunks often.
    max_chunk: usize,
}

impl Default for RankIndex {
    fn default() -> Self {
        Self {
            chunks: Vec::new(),
            current: Players::default(),
            max_chunk: MAX_CHUNK,
        }
    }
}

/// Each player's current standing, compactly: id → slot, slot → (score, reached at).
#[derive(Debug, Clone, Default)]
struct Players {
    slots_by_id: HashMap<[u8; 16], u32>,
    slots: Vec<(f64, i64)>,
    /// Slots of removed players, for the next new one.
    free: Vec<u32>,
}

impl Players {
    fn with_capacity(n: usize) -> Self {
        Self {
            slots_by_id: HashMap::with_capacity(n),
            slots: Vec::with_capacity(n),
            free: Vec::new(),
        }
    }

    fn len(&self) -> usize {
        self.slots_by_id.len()
    }

    fn get(&self, player: u128) -> Option<Standing> {
        let slot = *self.slots_by_id.get(&player.to_be_bytes())?;
        let (score, reached_at) = self.slots[slot as usize];
        Some(Standing {
            score,
            reached_at,
            player,
        })
    }

    /// Sets the player's standing; the one it replaces.
    fn insert(&mut self, standing: Standing) -> Option<Standing> {
        let value = (standing.score, standing.reached_at);
        let key = standing.player.to_be_bytes();
        if let Some(&slot) = self.slots_by_id.get(&key) {
            let old = std::mem::replace(&mut self.slots[slot as usize], value);
            return Some(Standing {
                score: old.0,
                reached_at: old.1,
                player: standing.player,
            });
        }
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot as usize] = value;
                slot
            }
            None => {
                if self.slots.len() == self.slots.capacity() {
                    // Grow by a sixteenth, not double: at a million players doubling would
                    // leave 16 MB unused.
                    self.slots.reserve_exact(self.slots.len() / 16 + 16);
                }
                self.slots.push(value);
                u32::try_from(self.slots.len() - 1).expect("fewer than 4 billion players")
            }
        };
        self.slots_by_id.insert(key, slot);
        None
    }

    fn remove(&mut self, player: u128) -> Option<Standing> {
        let slot = self.slots_by_id.remove(&player.to_be_bytes())?;
        self.free.push(slot);
        let (score, reached_at) = self.slots[slot as usize];
        Some(Standing {
            score,
            reached_at,
            player,
        })
    }

    fn standings(&self) -> impl Iterator<Item = Standing> + '_ {
        (self.slots_by_id.iter()).map(|(key, &slot)| {
            let (score, reached_at) = self.slots[slot as usize];
            Standing {
                score,
                reached_at,
                player: u128::from_be_bytes(*key),
            }
        })
    }
}

impl RankIndex {
    pub fn new() -> Self {
        Self::default()
    }

    /// An index of `standings` (one per player; a later one of the same player wins), built in
    /// one sort: what a start-up rebuild from the store uses.
    pub fn from_standings(standings: impl IntoIterator<Item = Standing>) -> Self {
        let standings = standings.into_iter();
        let mut current = Players::with_capacity(standings.size_hint().0);
        for standing in standings {
            current.insert(standing);
        }
        let mut all: Vec<Standing> = current.standings().collect();
        all.sort_unstable();
        Self::sorted(all, current, MAX_CHUNK)
    }

    fn sorted(all: Vec<Standing>, current: Players, max_chunk: usize) -> Self {
        // Half full, so moves do not split at once; a little spare capacity for the first ones.
        let chunks = all
            .chunks(max_chunk / 2)
            .map(|entries| {
                let mut chunk = Vec::with_capacity(entries.len() + max_chunk / 64);
                chunk.extend_from_slice(entries);
                chunk
            })
            .collect();
        Self {
            chunks,
            current,
            max_chunk,
        }
    }

    pub fn len(&self) -> usize {
        self.current.len()
    }

    pub fn is_empty(&self) -> bool {
        self.current.len() == 0
    }

    pub fn standing(&self, player: u128) -> Option<Standing> {
        self.current.get(player)
    }

    /// Puts the player at `standing` (moving them if they were elsewhere).
    pub fn upsert(&mut self, standing: Standing) {
        if let Some(old) = self.current.insert(standing) {
            self.take(&old);
        }
        self.put(standing);
    }

    /// Takes the player off the board; whether they were on it.
    pub fn remove(&mut self, player: u128) -> bool {
        match self.current.remove(player) {
            Some(old) => {
                self.take(&old);
                true
            }
            None => false,
        }
    }

    /// The player's 1-based rank.
    pub fn rank(&self, player: u128) -> Option<u64> {
        let standing = self.current.get(player)?;
        Some(self.before(&standing) + 1)
    }

    /// How many entries come strictly before `standing` (present or not).
    pub fn before(&self, standing: &Standing) -> u64 {
        let chunk = self.chunk_of(standing);
        let earlier: usize = self.chunks[..chunk].iter().map(Vec::len).sum();
        let within = match self.chunks.get(chunk) {
            Some(entries) => entries.partition_point(|s| s < standing),
            None => 0,
        };
        (earlier + within) as u64
    }

    /// Up to `limit` entries strictly after `cursor` (from the top without one).
    pub fn after(&self, cursor: Option<&Standing>, limit: usize) -> Vec<Ranked> {
        let start = match cursor {
            None => 0,
            Some(cursor) => {
                let before = self.before(cursor) as usize;
                // `before` counts entries < cursor; skip the cursor itself when present.
                before + usize::from(self.contains(cursor))
            }
        };
        self.slice(start, limit)
    }

    /// Up to `limit` entries strictly before `cursor`, in board order (the previous page).
    pub fn preceding(&self, cursor: &Standing, limit: usize) -> Vec<Ranked> {
        let end = self.before(cursor) as usize;
        let start = end.saturating_sub(limit);
        self.slice(start, end - start)
    }

    /// The player and up to `above` entries before and `below` after them.
    pub fn around(&self, player: u128, above: usize, below: usize) -> Option<Vec<Ranked>> {
        let standing = self.current.get(player)?;
        let at = self.before(&standing) as usize;
        let start = at.saturating_sub(above);
        Some(self.slice(start, at - start + 1 + below))
    }

    fn contains(&self, standing: &Standing) -> bool {
        self.current.get(standing.player).as_ref() == Some(standing)
    }

    /// `count` entries from 0-based position `start`.
    fn slice(&self, start: usize, count: usize) -> Vec<Ranked> {
        let mut out = Vec::with_capacity(count.min(self.len()));
        let mut skipped = 0;
        for chunk in &self.chunks {
            if out.len() == count {
                break;
            }
            if skipped + chunk.len() <= start {
                skipped += chunk.len();
                continue;
            }
            let from = start.saturating_sub(skipped);
            for (i, standing) in chunk.iter().enumerate().skip(from) {
                if out.len() == count {
                    break;
                }
                out.push(Ranked {
                    rank: (skipped + i + 1) as u64,
                    standing: *standing,
                });
            }
            skipped += chunk.len();
        }
        out
    }

    /// The chunk `standing` belongs in: the first whose last entry is not before it, or the
    /// last chunk.
    fn chunk_of(&self, standing: &Standing) -> usize {
        let first_not_before = self
            .chunks
            .partition_point(|chunk| chunk.last().is_some_and(|last| last < standing));
        first_not_before.min(self.chunks.len().saturating_sub(1))
    }

    fn put(&mut self, standing: Standing) {
        if self.chunks.is_empty() {
            self.chunks.push(vec![standing]);
            return;
        }
        let c = self.chunk_of(&standing);
        let chunk = &mut self.chunks[c];
        let at = chunk.partition_point(|s| s < &standing);
        if chunk.len() == chunk.capacity() {
            // In steps of a sixteenth of a full chunk, not doubling: a doubled chunk would hold
            // twice the memory its entries need until it splits.
            chunk.reserve_exact(self.max_chunk / 16 + 1);
        }
        chunk.insert(at, standing);
        if chunk.len() > self.max_chunk {
            let upper = chunk.split_off(chunk.len() / 2);
            self.chunks.insert(c + 1, upper);
        }
    }

    fn take(&mut self, standing: &Standing) {
        let c = self.chunk_of(standing);
        let chunk = &mut self.chunks[c];
        if let Ok(at) = chunk.binary_search(standing) {
            chunk.remove(at);
            if chunk.is_empty() && self.chunks.len() > 1 {
                self.chunks.remove(c);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn standing(player: u128, score: f64, reached_at: i64) -> Standing {
        Standing {
            score,
            reached_at,
            player,
        }
    }

    #[test]
    fn ties_go_to_whoever_reached_the_score_first() {
        let mut index = RankIndex::new();
        index.upsert(standing(1, 1500.0, 20));
        index.upsert(standing(2, 1500.0, 10));
        index.upsert(standing(3, 1600.0, 30));
        assert_eq!(
            (index.rank(3), index.rank(2), index.rank(1)),
            (Some(1), Some(2), Some(3))
        );
        index.upsert(standing(3, 1400.0, 40));
        assert_eq!(index.rank(3), Some(3));
        assert!(index.remove(2));
        assert_eq!(index.rank(1), Some(1));
        assert_eq!(index.rank(2), None);
        assert!(!index.remove(2));
    }

    #[derive(Debug, Clone)]
    enum Op {
        Upsert(u128, i32, i64),
        Remove(u128),
    }

    fn ops() -> impl Strategy<Value = Vec<Op>> {
        let op = prop_oneof![
            4 => (0u128..400, 0i32..60, 0i64..5).prop_map(|(p, s, t)| Op::Upsert(p, s, t)),
            1 => (0u128..400).prop_map(Op::Remove),
        ];
        prop::collection::vec(op, 0..3000)
    }

    /// `from_standings` with chunks of at most 8, so every path (split, empty chunk) runs.
    fn small(standings: impl IntoIterator<Item = Standing>) -> RankIndex {
        let big = RankIndex::from_standings(standings);
        let mut all: Vec<Standing> = big.current.standings().collect();
        all.sort_unstable();
        RankIndex::sorted(all, big.current, 8)
    }

    fn model(index: &RankIndex) -> Vec<Standing> {
        let mut all: Vec<Standing> = index.current.standings().collect();
        all.sort();
        all
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        #[test]
        fn ranks_and_pages_match_a_sorted_list(base in 0usize..3000, ops in ops()) {
            let mut index = small(
                (0..base as u128).map(|p| standing(1000 + p, (p % 97) as f64, p as i64)),
            );
            for op in ops {
                match op {
                    Op::Upsert(p, s, t) => index.upsert(standing(p, f64::from(s), t)),
                    Op::Remove(p) => { index.remove(p); }
                }
            }
            let sorted = model(&index);
            prop_assert_eq!(index.len(), sorted.len());
            let all: Vec<Standing> = index.after(None, usize::MAX).iter().map(|r| r.standing).collect();
            prop_assert_eq!(&all, &sorted);
            for (i, s) in sorted.iter().enumerate().step_by(37) {
                prop_assert_eq!(index.rank(s.player), Some(i as u64 + 1));
                let next: Vec<Standing> = index.after(Some(s), 5).iter().map(|r| r.standing).collect();
                prop_assert_eq!(&next[..], &sorted[i + 1..(i + 6).min(sorted.len())]);
                let prev: Vec<Standing> = index.preceding(s, 5).iter().map(|r| r.standing).collect();
                prop_assert_eq!(&prev[..], &sorted[i.saturating_sub(5)..i]);
                let around = index.around(s.player, 2, 3).unwrap();
                prop_assert_eq!(around.iter().find(|r| r.standing.player == s.player).map(|r| r.rank), Some(i as u64 + 1));
            }
        }

        /// Paging forward while the board changes between pages: among players who did not
        /// move, none is shown twice and none is skipped.
        #[test]
        fn paging_while_ranks_move_neither_repeats_nor_skips(
            n in 50u128..600,
            moves in prop::collection::vec((0u128..600, 0i32..100), 0..200),
            page in 1usize..40,
        ) {
            let mut index = small((0..n).map(|p| standing(p, f64::from((p % 50) as i32), p as i64)));
            let mut moved = std::collections::HashSet::new();
            let mut seen = Vec::new();
            let mut cursor: Option<Standing> = None;
            let mut moves = moves.into_iter();
            loop {
                let items = index.after(cursor.as_ref(), page);
                let Some(last) = items.last() else { break };
                seen.extend(items.iter().map(|r| r.standing.player));
                cursor = Some(last.standing);
                for (p, s) in moves.by_ref().take(3) {
                    if p < n {
                        moved.insert(p);
                        index.upsert(standing(p, f64::from(s), 1000));
                    }
                }
            }
            let mut counts = std::collections::HashMap::new();
            for p in &seen {
                *counts.entry(*p).or_insert(0) += 1;
            }
            for p in 0..n {
                if !moved.contains(&p) {
                    prop_assert_eq!(counts.get(&p).copied(), Some(1), "player {} who stayed put", p);
                }
            }
        }
    }
}
