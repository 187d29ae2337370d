//! Who played whom recently. The tick reads recent opponents from each ticket (the server has
//! them in its match history); this is the in-memory bookkeeping for callers without one
//! (the simulator, tests, an embedded server), bounded to the last `n` matches per player.

use std::collections::VecDeque;

use super::outcome::FormedMatch;
use super::pool::IdMap;
use super::ticket::PlayerId;

#[derive(Clone, Debug, Default)]
pub struct OpponentMemory {
    n: usize,
    recent: IdMap<PlayerId, VecDeque<Box<[PlayerId]>>>,
}

impl OpponentMemory {
    /// Remembers each player's opponents over their last `n` matches (0 remembers nothing).
    pub fn new(n: usize) -> Self {
        Self {
            n,
            recent: IdMap::default(),
        }
    }

    /// Records a formed match: every player's opponents are the players of the other teams.
    pub fn record(&mut self, m: &FormedMatch<'_>) {
        if self.n == 0 {
            return;
        }
        for (t, team) in m.teams().enumerate() {
            let opponents: Box<[PlayerId]> = m
                .teams()
                .enumerate()
                .filter(|&(u, _)| u != t)
                .flat_map(|(_, o)| o.players.iter().copied())
                .collect();
            for &p in team.players {
                let ring = self.recent.entry(p).or_default();
                if ring.len() == self.n {
                    ring.pop_front();
                }
                ring.push_back(opponents.clone());
            }
        }
    }

    /// Distinct recent opponents of any of `players` (a ticket's members), sorted.
    pub fn opponents_of(&self, players: impl IntoIterator<Item = PlayerId>) -> Vec<PlayerId> {
        let mut out: Vec<PlayerId> = players
            .into_iter()
            .filter_map(|p| self.recent.get(&p))
            .flat_map(|ring| ring.iter().flat_map(|m| m.iter().copied()))
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Drops a player's history (e.g. on account deletion, or to bound memory).
    pub fn forget(&mut self, player: PlayerId) {
        self.recent.remove(&player);
    }
}
