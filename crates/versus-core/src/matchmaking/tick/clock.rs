//! A ticket's situation at a tick — its rating window, the regions it accepts and whether the
//! rematch rule still binds it — as a function of its age.
//!
//! Owns the queue's widening table ([`Widening`]) and the tick's view of time ([`Clock`]).
//! Time here is only the tick's `now` argument, never a clock read. Nothing is refreshed by a
//! pass over the pool: a ticket's situation is computed when the scan reads it, from its
//! creation time, the per-second table and the region masks its index row carries (see
//! `Cand::masks`), so a tick over 100k tickets makes no pass over the index at all.

use crate::matchmaking::config::QueueConfig;
use crate::matchmaking::pool::{Cand, Entry, INLINE_REGIONS, MASKED_BUDGETS, inline_within};
use crate::matchmaking::ticket::{Timestamp, UNREACHABLE_MS};

/// A ticket's situation at this tick: all functions of its age, computed when it is read.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Live {
    pub window: f64,
    pub mask: u64,
    pub relaxed: bool,
}

/// A candidate under consideration: its index position and its situation.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Pick {
    pub c: u32,
    pub live: Live,
}

/// The widening schedules of a queue merged by whole seconds waited — both schedules step on
/// whole seconds — so that a ticket's step is looked up, not searched for: ticket ages are in
/// no order, and a search mispredicts.
#[derive(Clone, Debug)]
pub(super) struct Widening {
    /// Seconds 0..=min(last step, [`Self::TABLE_S`]); the last entry holds on unless `tail` has
    /// more steps.
    by_second: Vec<Step>,
    /// Steps after [`Self::TABLE_S`] seconds, with their start: rare, searched.
    tail: Vec<(u64, Step)>,
}

/// The widening in force: rating window, latency budget in ms, and the budget's index among
/// the queue's distinct budgets when tickets carry a precomputed mask for it ([`Cand::masks`]).
#[derive(Clone, Copy, Debug)]
struct Step {
    window: f64,
    budget: u64,
    masked: Option<u8>,
}

impl Widening {
    /// An hour: longer schedules are unusual, and the table stays at 84 KiB.
    const TABLE_S: u64 = 3_600;

    pub(super) fn new(cfg: &QueueConfig) -> Self {
        let budgets = cfg.latency_budgets();
        let at = |waited_s: u64| {
            let budget = cfg.latency_budget_at(waited_s);
            Step {
                window: cfg.rating_widening.at(waited_s * 1000),
                budget,
                masked: (budgets.iter().position(|&b| b == budget))
                    .filter(|&j| j < MASKED_BUDGETS)
                    .map(|j| j as u8),
            }
        };
        let afters = || {
            (cfg.rating_widening.steps().iter())
                .chain(cfg.latency_widening.steps())
                .map(|st| u64::from(st.after_s))
        };
        let horizon = afters().max().unwrap_or(0).min(Self::TABLE_S);
        let mut tail: Vec<(u64, Step)> = afters()
            .filter(|&a| a > Self::TABLE_S)
            .map(|a| (a, at(a)))
            .collect();
        tail.sort_by_key(|t| t.0);
        tail.dedup_by_key(|t| t.0);
        Self {
            by_second: (0..=horizon).map(at).collect(),
            tail,
        }
    }

    #[inline(always)]
    fn at(&self, waited_s: u64) -> Step {
        match self.by_second.get(waited_s as usize) {
            Some(&step) => step,
            None => self.beyond(waited_s),
        }
    }

    #[cold]
    fn beyond(&self, waited_s: u64) -> Step {
        (self.tail.iter().rev())
            .find(|t| t.0 <= waited_s)
            .map_or(self.by_second[self.by_second.len() - 1], |t| t.1)
    }
}

/// A tick's view of time: turns a ticket's creation time into its situation.
pub(super) struct Clock<'m> {
    now_ms: u64,
    widening: &'m Widening,
    /// Tickets created at or before this are free of the rematch rule.
    relax: i64,
    /// One bit per region of the queue.
    regions: u64,
    inline: bool,
}

impl<'m> Clock<'m> {
    pub(super) fn new(cfg: &QueueConfig, widening: &'m Widening, now: Timestamp) -> Self {
        let now_ms = now.millis();
        let relax = cfg.rematch_relax_after_s.map_or(i64::MIN, |after_s| {
            if after_s == 0 {
                i64::MAX
            } else {
                now_ms as i64 - i64::from(after_s) * 1000
            }
        });
        Self {
            now_ms,
            widening,
            relax,
            regions: u64::MAX >> (64 - cfg.regions.len()),
            inline: cfg.regions.len() <= INLINE_REGIONS,
        }
    }

    /// Milliseconds a ticket created at `created` (ms) has waited.
    #[inline(always)]
    pub(super) fn waited_ms(&self, created: u64) -> u64 {
        self.now_ms.saturating_sub(created)
    }

    /// The ticket's rating window, acceptable regions among `within` and rematch relaxation
    /// now. A candidate only ever shares a region with its anchor's group, so its regions are
    /// looked up among the anchor's alone (one or two, not all of them).
    #[inline(always)]
    pub(super) fn live(&self, c: &Cand, slots: &[Option<Entry>], within: u64) -> Live {
        let created = c.created as i64;
        let Step {
            window,
            budget,
            masked,
        } = self
            .widening
            .at(self.now_ms.saturating_sub(c.created) / 1000);
        let mut mask = 0u64;
        let mut bits = within & self.regions;
        if let (true, Some(j)) = (self.inline, masked) {
            mask = u64::from(c.masks[usize::from(j) % MASKED_BUDGETS]) & bits;
        } else if self.inline {
            while bits != 0 {
                let r = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                mask |= u64::from(inline_within(c.lat[r % INLINE_REGIONS], budget)) << r;
            }
        } else if let Some(e) = &slots[c.slot as usize] {
            while bits != 0 {
                let r = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                let lat = e.latency[r];
                mask |= u64::from(lat != UNREACHABLE_MS && u64::from(lat) <= budget) << r;
            }
        }
        Live {
            window,
            mask,
            relaxed: created <= self.relax,
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;
    use crate::matchmaking::{Matchmaker, Member, PlayerId, Schedule, Ticket, TicketId};
    use crate::rating::PlayerRating;

    /// The per-second table gives every wait the steps the schedules give it, past the table's
    /// hour too, and marks exactly the budgets that tickets carry a precomputed mask for.
    #[test]
    fn widening_table_agrees_with_the_schedules() {
        let mut cfg = QueueConfig::new(2, 1);
        cfg.rating_widening = Schedule::new(vec![
            (0, 20.0),
            (7, 60.0),
            (3600, 100.0),
            (3700, 400.0),
            (90_000, 900.0),
        ]);
        cfg.latency_widening = Schedule::new(vec![
            (0, 0.0),
            (30, 10.0),
            (45, 20.0),
            (50, 30.0),
            (4000, 500.0),
        ]);
        cfg.latency_budget_ms = 40;
        let w = Widening::new(&cfg);
        let budgets = cfg.latency_budgets();
        assert_eq!(budgets, vec![40, 50, 60, 70, 540]);
        for s in (0..5000).chain([89_999, 90_000, 1_000_000]) {
            let step = w.at(s);
            assert_eq!(step.window, cfg.rating_widening.at(s * 1000), "{s} s");
            assert_eq!(step.budget, cfg.latency_budget_at(s), "{s} s");
            let j = budgets.iter().position(|&b| b == step.budget);
            let masked = j.filter(|&j| j < MASKED_BUDGETS).map(|j| j as u8);
            assert_eq!(step.masked, masked, "{s} s");
        }
        // Any finite extra is a valid step: a huge one saturates the budget.
        cfg.latency_widening = Schedule::new(vec![(0, 0.0), (10, 1e300)]);
        let w = Widening::new(&cfg);
        assert_eq!(w.at(10).budget, u64::MAX);
        let mm = Matchmaker::new(cfg).unwrap();
        let mut st = mm.new_state();
        for i in 0..2u128 {
            st.add(Ticket {
                id: TicketId(i),
                members: vec![Member {
                    player: PlayerId(i),
                    rating: PlayerRating::new(1500.0, 50.0),
                }],
                region_latency_ms: vec![60_000],
                created_at: Timestamp::from_secs(0),
                recent_opponents: vec![],
            })
            .unwrap();
        }
        assert_eq!(mm.tick(Timestamp::from_secs(20), &mut st).match_count(), 1);
    }

    /// A ticket's acceptable regions are the same whether looked up in its precomputed masks
    /// (the first three budgets) or compared region by region (the later ones), and they are
    /// the regions within the budget its wait has reached.
    #[test]
    fn region_masks_are_the_regions_within_budget() {
        let mut cfg = QueueConfig::new(2, 1);
        cfg.regions = (0..5).map(|r| format!("r{r}")).collect();
        cfg.latency_budget_ms = 50;
        cfg.latency_widening = Schedule::new(vec![
            (0, 0.0),
            (10, 25.0),
            (20, 50.0),
            (30, 90.0),
            (40, 65_500.0),
        ]);
        let mm = Matchmaker::new(cfg.clone()).unwrap();
        let mut st = mm.new_state();
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let now = Timestamp::from_secs(1_000);
        let mut latencies: Vec<Vec<u32>> = Vec::new();
        for i in 0..2_000u128 {
            let latency: Vec<u32> = (0..5)
                .map(|_| match rng.random_range(0..10) {
                    0 => UNREACHABLE_MS,
                    1 => rng.random_range(65_000..70_000),
                    _ => rng.random_range(0..200),
                })
                .collect();
            latencies.push(latency.clone());
            st.add(Ticket {
                id: TicketId(i),
                members: vec![Member {
                    player: PlayerId(i),
                    rating: PlayerRating::new(1500.0, 50.0),
                }],
                region_latency_ms: latency,
                created_at: Timestamp::from_millis(now.millis() - rng.random_range(0..60_000)),
                recent_opponents: vec![],
            })
            .unwrap();
        }
        st.maintain();
        let clock = Clock::new(mm.config(), &mm.widening, now);
        let (mut masked, mut compared) = (0, 0);
        for (c, k) in st.index().cands().iter().zip(st.index().cold()) {
            let waited_s = now.millis().saturating_sub(c.created) / 1000;
            let budget = cfg.latency_budget_at(waited_s);
            // With few regions latencies are kept as u16: 65535 ms or more counts as
            // unreachable (see `Clock::live`).
            let want = (latencies[k.id.0 as usize].iter().enumerate())
                .filter(|&(_, &ms)| ms < u32::from(u16::MAX) && u64::from(ms) <= budget)
                .fold(0u64, |m, (r, _)| m | 1 << r);
            let live = clock.live(c, st.slots(), u64::MAX);
            assert_eq!(live.mask, want, "budget {budget}, latencies {:?}", c.lat);
            // Among some regions only: those of them.
            assert_eq!(clock.live(c, st.slots(), 0b10110).mask, want & 0b10110);
            match mm.widening.at(waited_s).masked {
                Some(_) => masked += 1,
                None => compared += 1,
            }
        }
        assert!(masked > 500 && compared > 500, "{masked} / {compared}");
    }
}
