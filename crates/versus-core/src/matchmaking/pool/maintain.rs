//! Settling the pool between ticks: [`QueueState::maintain`].
//!
//! Owns the work a tick leaves for later. A tick only *marks* the tickets it matches; this
//! releases them (slab entries, lookup maps), forgets cancelled and expired tickets, merges
//! arrivals into the age list and the rating index, rebuilds the index's positions and its
//! party list, and makes the next tick's working lists ready (its links between live
//! positions, its pair slots, room to record the tickets it matches), with their pages
//! already mapped, so that the tick itself neither allocates nor page-faults. The bench builds
//! a fresh pool per run: when those lists grew inside the timed tick, copies and page faults
//! included, a 1v1 tick was 8% slower. Like the rest of the pool it reads no clock.

use super::index::{NO_PARTY, merge_sorted};
use super::{Aged, QueueState};

impl QueueState {
    /// Settles the pool between ticks: releases the tickets the last tick matched, forgets
    /// cancelled and expired ones, and merges tickets added since into the age and rating
    /// lists (O(n + k log k)). Every tick runs it first; a server runs it right after publishing
    /// a tick's matches, so the next tick starts on a settled pool.
    pub fn maintain(&mut self) {
        if self.dirty {
            self.release_matched();
            let live = &self.live;
            self.ages.retain(|a| live[a.slot as usize]);
            self.index.retain_live(live);
            self.arrivals.retain(|(c, _)| live[c.slot as usize]);
            // Slots are reused only now, once nothing refers to them.
            self.free.append(&mut self.freed_pending);
            self.dirty = false;
            self.pos_stale = true;
        }
        if !self.arrivals.is_empty() {
            self.arrivals
                .sort_unstable_by_key(|(c, _)| (c.created, c.seq));
            let aged: Vec<Aged> = self
                .arrivals
                .iter()
                .map(|(c, k)| Aged {
                    created: c.created,
                    seq: c.seq,
                    id: k.id,
                    rating: c.rating,
                    slot: c.slot,
                })
                .collect();
            merge_sorted(&mut self.ages, &aged, |a, b| {
                (a.created, a.seq) <= (b.created, b.seq)
            });
            self.arrivals.sort_unstable_by(|(a, _), (b, _)| {
                a.rating.total_cmp(&b.rating).then(a.seq.cmp(&b.seq))
            });
            self.index.merge(&self.arrivals);
            self.arrivals.clear();
            self.pos_stale = true;
        }
        if self.pos_stale {
            let ix = &mut self.index;
            ix.pos.clear();
            ix.pos.resize(self.slots.len(), u32::MAX);
            for (i, c) in ix.cands.iter().enumerate() {
                ix.pos[c.slot as usize] = i as u32;
            }
            ix.age_pos.clear();
            ix.age_pos
                .extend(self.ages.iter().map(|a| ix.pos[a.slot as usize]));
            self.pos_stale = false;
            self.scratch.forget_links();
            ix.party_stale = self.limits.max_party > 1;
        }
        if self.index.party_stale {
            self.index_parties();
        }
        self.scratch.prepare(
            self.index.len(),
            self.limits.teams * self.limits.team_size == 2,
        );
        // The tick releases into `matched` (one per ticket at most).
        grow_mapped(&mut self.matched, self.index.len(), 0);
    }

    /// Rewrites the index's `party_members` in index order: a match's parties sit near one another in
    /// rating, so a tick writing their players out reads one small stretch of this list
    /// instead of two dependent cache misses per party (slab entry, then its member list),
    /// which were a third of a 5v5 tick. Parties already indexed are copied from the previous
    /// list, which is in the previous index order (a nearly sequential read); new ones from
    /// the slab.
    fn index_parties(&mut self) {
        let ix = &mut self.index;
        // A new list of the exact size (every held ticket is indexed by now) rather than a
        // second one kept for the next rebuild, which would hold as much again between ticks.
        let players = (self.party_counts.iter().enumerate().skip(2))
            .map(|(size, &n)| size * n as usize)
            .sum();
        let mut fresh = Vec::with_capacity(players);
        for (c, k) in ix.cands.iter().zip(ix.cold.iter_mut()) {
            let start = u32::try_from(fresh.len()).expect("fewer than 2^32 players in parties");
            if c.size == 1 {
                k.party = start;
                continue;
            }
            match k.party {
                NO_PARTY => fresh.extend_from_slice(
                    &self.slots[c.slot as usize]
                        .as_ref()
                        .expect("an indexed ticket is in its slot")
                        .members,
                ),
                at => {
                    fresh.extend_from_slice(&ix.party_members[at as usize..][..usize::from(c.size)])
                }
            }
            k.party = start;
        }
        ix.party_members = fresh;
        ix.party_stale = false;
    }

    /// Drops the entries of the tickets the last tick matched and their lookup-map entries.
    fn release_matched(&mut self) {
        if self.matched.is_empty() {
            return;
        }
        let mut matched = std::mem::take(&mut self.matched);
        // Many: one sequential pass over the slab and over each map beats that many random
        // accesses (a slot is matched-and-unreleased exactly when it holds a ticket but is not
        // live: cancelled and expired tickets left their slot at once).
        let bulk = matched.len() * 8 >= self.by_id.len();
        if bulk {
            for (slot, entry) in self.slots.iter_mut().enumerate() {
                if let Some(e) = entry
                    && !self.live[slot]
                {
                    self.party_counts[e.members.len()] -= 1;
                    *entry = None;
                    self.freed_pending.push(slot as u32);
                }
            }
            let live = &self.live;
            self.by_id.retain(|_, s| live[*s as usize]);
            self.searching.retain(|_, s| live[*s as usize]);
        } else {
            for &slot in &matched {
                let entry = self.slots[slot as usize]
                    .take()
                    .expect("a matched slot holds its ticket until released");
                self.party_counts[entry.members.len()] -= 1;
                if self.by_id.get(&entry.id) == Some(&slot) {
                    self.by_id.remove(&entry.id);
                }
                for m in entry.members.iter() {
                    if self.searching.get(&m.player) == Some(&slot) {
                        self.searching.remove(&m.player);
                    }
                }
                self.freed_pending.push(slot);
            }
        }
        matched.clear();
        self.matched = matched;
    }
}

/// Gives `list` room for `len` items, written once so that its pages are mapped: a list grown
/// inside a tick pays for the copy and for a page fault per 4 KiB touched.
fn grow_mapped<T: Copy>(list: &mut Vec<T>, len: usize, fill: T) {
    if list.capacity() < len {
        let held = list.len();
        list.resize(len, fill);
        list.truncate(held);
    }
}
