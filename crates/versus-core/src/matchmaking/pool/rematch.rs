//! Rematch filters: what lets a tick skip the exact recent-opponent check for nearly every
//! pair of tickets it compares.
//!
//! The exact check reads two slab entries and their lists, a few cache misses; with the filters
//! in each ticket's index row it runs only when a filter says the two may have met (58 times in
//! a 100k-ticket 1v1 tick, 926 in a 5v5 one). A filter may raise a false alarm, never clear a
//! real rematch. Filters are pure functions of player ids (hashed without a seed), so a pool
//! built twice filters the same way.

use super::hash::mix64;
use super::index::Cand;
use crate::matchmaking::ticket::{Member, PlayerId};

/// A ticket's recent opponents are a 64-bit Bloom filter (`recent_bits`) of three bits per
/// player, all three taken from a 12-bit hash of the player (its *lane*). Its own players
/// (`self_bits`) are, for a solo ticket, that player's three bits, and for a party its members'
/// lanes side by side (five fit; a bigger party is always checked exactly). So a party's
/// members are tested one by one, as precisely as a solo player, rather than as a merged filter
/// that collides far more often. With one bit per player, three recent opponents collided with
/// a stranger 3/64 of the time; now ≈ 0.3% (tested below).
const LANES: usize = 5;
const LANE_BITS: usize = 12;
const LANE_MASK: u64 = (1 << LANE_BITS) - 1;

fn lane(p: PlayerId) -> u64 {
    mix64((p.0 as u64) ^ ((p.0 >> 64) as u64)) & LANE_MASK
}

/// A lane's three bits in a rematch filter.
#[inline(always)]
fn lane_bits(lane: u64) -> u64 {
    1u64 << (lane & 63)
        | 1u64 << (lane >> 6)
        | 1u64 << (lane.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 58)
}

/// A player's bits in a rematch filter.
pub(super) fn player_bits(p: PlayerId) -> u64 {
    lane_bits(lane(p))
}

/// A ticket's `self_bits`: see [`LANES`].
pub(super) fn self_bits(members: &[Member]) -> u64 {
    match members {
        [solo] => player_bits(solo.player),
        party => (party.iter().take(LANES).enumerate())
            .fold(0, |bits, (i, m)| bits | lane(m.player) << (LANE_BITS * i)),
    }
}

/// Each member's filter bits, from a party of at most [`LANES`] members' `self_bits`.
fn party_member_bits(c: &Cand) -> impl Iterator<Item = u64> + '_ {
    (0..usize::from(c.size)).map(|i| lane_bits(c.self_bits >> (LANE_BITS * i) & LANE_MASK))
}

/// A ticket's players merged into one filter's bits: what a group accumulates.
pub(in crate::matchmaking) fn members_bits(c: &Cand) -> u64 {
    match usize::from(c.size) {
        1 => c.self_bits,
        size if size <= LANES => party_member_bits(c).fold(0, |all, bits| all | bits),
        _ => u64::MAX,
    }
}

/// Whether any of a ticket's players may be in a `recent` filter (false: surely not).
#[inline(always)]
pub(in crate::matchmaking) fn may_have_met(recent: u64, c: &Cand) -> bool {
    if c.size == 1 {
        recent & c.self_bits == c.self_bits
    } else {
        // Most filters are empty (no recent opponents): no lane to look at then.
        recent != 0 && party_may_have_met(recent, c)
    }
}

fn party_may_have_met(recent: u64, c: &Cand) -> bool {
    usize::from(c.size) > LANES || party_member_bits(c).any(|bits| recent & bits == bits)
}

#[cfg(test)]
mod tests {
    use super::super::index::{INLINE_REGIONS, MASKED_BUDGETS};
    use super::*;
    use crate::rating::PlayerRating;

    /// The rematch filters never clear a real rematch, for solos, parties and parties too big
    /// for their lanes, and rarely raise a false one.
    #[test]
    fn rematch_filter_has_no_false_clearances() {
        let cand = |players: &[u128]| {
            let members: Vec<Member> = (players.iter())
                .map(|&p| Member {
                    player: PlayerId(p),
                    rating: PlayerRating::new(1500.0, 50.0),
                })
                .collect();
            Cand {
                rating: 0.0,
                created: 0,
                lat: [0; INLINE_REGIONS],
                self_bits: self_bits(&members),
                recent_bits: 0,
                seq: 0,
                slot: 0,
                size: players.len() as u8,
                masks: [0; MASKED_BUDGETS],
            }
        };
        let mut false_alarms = [0u32; 2];
        for i in 0..4_000u128 {
            let recent: Vec<u128> = (0..3).map(|j| i * 7_919 + j * 104_729).collect();
            let filter = (recent.iter()).fold(0, |b, &p| b | player_bits(PlayerId(p)));
            let (x, y) = (i + 1_000_000, i + 2_000_000);
            for party in [
                &[recent[1]][..],
                &[x, recent[2], y],
                &[x, y, x + 1, y + 1, recent[0]],
                &[x, y, x + 1, y + 1, x + 2, recent[0]],
            ] {
                let c = cand(party);
                assert!(may_have_met(filter, &c), "{party:?}");
                // A group's merged bits hold every member's.
                let merged = members_bits(&c);
                assert!(
                    party
                        .iter()
                        .all(|&p| merged & player_bits(PlayerId(p)) != 0)
                );
            }
            false_alarms[0] += u32::from(may_have_met(filter, &cand(&[x])));
            false_alarms[1] += u32::from(may_have_met(filter, &cand(&[x, y, x + 1])));
        }
        // Expected (1 − e^(−9/64))³ ≈ 0.3% per stranger (one bit per player would be 3/64).
        assert!(false_alarms[0] < 40, "{false_alarms:?}");
        assert!(false_alarms[1] < 3 * 40, "{false_alarms:?}");
    }
}
