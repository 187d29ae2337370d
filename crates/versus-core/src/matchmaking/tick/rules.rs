//! The rules two tickets must meet to share a match: each inside the other's rating window, a
//! region both accept, and no recent rematch unless either has waited past the relaxation.
//!
//! Owns the pairwise test and the exact rematch check behind the filters (`pool::rematch`).
//! Pure functions of the tickets' rows and situations: they read the slab only for that exact
//! check, and write nothing.

use super::clock::Live;
use crate::matchmaking::pool::{Cand, Entry, may_have_met};

/// Whether two tickets may be in the same match.
#[inline]
pub(super) fn compatible(
    slots: &[Option<Entry>],
    a: &Cand,
    al: &Live,
    b: &Cand,
    bl: &Live,
) -> bool {
    (a.rating - b.rating).abs() <= al.window.min(bl.window)
        && al.mask & bl.mask != 0
        && (al.relaxed || bl.relaxed || !recent_conflict(slots, a, b))
}

#[inline(always)]
fn recent_conflict(slots: &[Option<Entry>], a: &Cand, b: &Cand) -> bool {
    (may_have_met(a.recent_bits, b) || may_have_met(b.recent_bits, a)) && met(slots, a, b)
}

/// The exact rematch check behind the filters: rare, and out of line so that the check that
/// calls it stays small enough to inline into the scan.
#[cold]
#[inline(never)]
fn met(slots: &[Option<Entry>], a: &Cand, b: &Cand) -> bool {
    let ea = slots[a.slot as usize].as_ref().expect("live");
    let eb = slots[b.slot as usize].as_ref().expect("live");
    let lists = |x: &Entry, y: &Entry| {
        x.recent
            .iter()
            .any(|p| y.members.iter().any(|m| m.player == *p))
    };
    lists(ea, eb) || lists(eb, ea)
}
