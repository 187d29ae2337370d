//! The tick: one deterministic pass that turns searching tickets into matches.
//!
//! Order of work, top-down in [`Matchmaker::tick_into`]:
//! 1. settle the pool ([`QueueState::maintain`]: release last tick's matches and cancellations,
//!    merge new arrivals into the age and rating lists), expire tickets past `max_wait_s`;
//! 2. backfill requests, oldest first, pick from the rating index ([`backfill`]);
//! 3. tickets, oldest first ([`scan`]), each scanning outward from its own rating (nearest
//!    first, bounded by its window and `scan_limit`, skipping tickets already taken this tick
//!    through a linked list of live positions, [`links`]) for a group that fills a match
//!    ([`group`]): every pair of tickets within both of their windows, one region acceptable to
//!    all, no recent rematch ([`rules`]), parties whole, and a packing into teams of exactly
//!    `team_size`; teams are then balanced (optimal split for two teams). A 1v1 queue takes a
//!    dedicated pair loop instead ([`pairs`]), held by a test to the same matches;
//! 4. report every waiting ticket's position and estimated wait.
//!
//! A ticket's window, acceptable regions and rematch relaxation depend only on its age, so they
//! are computed when the ticket is read ([`clock`]) rather than by a pass over the pool. Matches
//! are written flat into the [`TickOutcome`] ([`form`]; a few growing lists per tick, no
//! allocation per match). Work per tick is O(n + Σ scanned candidates), never a pass over the
//! pool per ticket.
//!
//! Owns the matchmaker (configuration, rating system, widening table) and the tick's working
//! memory ([`TickScratch`]); the tickets and the index are the pool's, which a tick reads and
//! whose tickets it only marks matched. Architecture invariant: no clock reads (time is the
//! `now` argument), no IO, no randomness, no iteration over hash maps in anything that shapes
//! an outcome. Built for a tick over 100k tickets: numbers in BENCHMARKS.md.

mod backfill;
mod clock;
mod form;
mod group;
mod links;
mod pairs;
mod rules;
mod scan;
mod scratch;

pub(in crate::matchmaking) use scratch::TickScratch;

use clock::{Clock, Widening};

use super::config::{ConfigError, QueueConfig};
use super::outcome::{TickOutcome, WaitingTicket};
use super::pool::QueueState;
use super::ticket::Timestamp;
use crate::rating::AnyRatingSystem;

/// A queue's matchmaker: its configuration and rating system. Stateless between ticks — the pool
/// lives in [`QueueState`], so one matchmaker can serve any number of shards.
#[derive(Clone, Debug)]
pub struct Matchmaker {
    config: QueueConfig,
    rater: AnyRatingSystem,
    widening: Widening,
}

/// Most candidates one group search (or one backfill's fill) may try: an anchor whose
/// neighbourhood cannot form a match must not cost the tick without bound.
const SELECT_BUDGET: usize = 1_000;

/// Which way a tick forms matches: the fastest for the queue's shape, or always the general
/// group search (to test that the fast paths pick the same).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Path {
    Fastest,
    #[cfg_attr(not(test), allow(dead_code))]
    General,
}

impl Matchmaker {
    pub fn new(config: QueueConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let rater = config.rating.build().map_err(|_| ConfigError::Invalid {
            key: "rating",
            why: "invalid rating system parameters",
        })?;
        Ok(Self {
            widening: Widening::new(&config),
            config,
            rater,
        })
    }
    pub fn config(&self) -> &QueueConfig {
        &self.config
    }
    pub fn rating_system(&self) -> &AnyRatingSystem {
        &self.rater
    }
    /// An empty pool for this queue.
    pub fn new_state(&self) -> QueueState {
        QueueState::new(&self.config)
    }

    /// Runs one tick at time `now`. Deterministic: the same state and `now` give the same outcome.
    pub fn tick(&self, now: Timestamp, state: &mut QueueState) -> TickOutcome {
        let mut out = TickOutcome::default();
        self.tick_into(now, state, &mut out);
        out
    }

    /// [`Self::tick`] writing into `out` (cleared first): a caller that keeps one outcome across
    /// ticks reuses its lists and ticks without allocating. Call [`QueueState::maintain`] once
    /// the outcome is consumed to settle the pool off the latency path (the next tick does it
    /// otherwise).
    pub fn tick_into(&self, now: Timestamp, st: &mut QueueState, out: &mut TickOutcome) {
        self.tick_with(now, st, out, Path::Fastest);
    }

    fn tick_with(&self, now: Timestamp, st: &mut QueueState, out: &mut TickOutcome, path: Path) {
        out.clear();
        st.maintain();
        let clock = Clock::new(&self.config, &self.widening, now);
        let n = st.index().len();
        // The links `maintain` made ready are this tick's to consume.
        st.scratch_mut().forget_links();
        self.expire(now, st, out);
        let ppm = self.config.players_per_match();
        out.reserve(n / ppm, n / ppm * self.config.teams, n);
        self.run_backfills(now, &clock, st, out);
        if ppm == 2 && path == Path::Fastest {
            self.run_pairs(now, &clock, st, out);
        } else {
            self.run_tickets(now, &clock, st, out);
        }
        st.settle_waits();
        self.report_waiting(now, st, out);
    }

    fn expire(&self, now: Timestamp, st: &mut QueueState, out: &mut TickOutcome) {
        let Some(max_s) = self.config.max_wait_s else {
            return;
        };
        let max_ms = u64::from(max_s) * 1000;
        for k in 0..st.ages().len() {
            let aged = st.ages()[k];
            if now.millis().saturating_sub(aged.created) < max_ms {
                break;
            }
            out.expired.push(aged.id);
            let c = st.index().age_positions()[k] as usize;
            st.scratch_mut().links.unlink(c);
            st.release(aged.slot);
        }
        st.retain_backfills(|b| {
            let keep = now.since(b.req.created_at) < max_ms;
            if !keep {
                out.expired_backfills.push(b.req.id);
            }
            keep
        });
    }

    fn report_waiting(&self, now: Timestamp, st: &QueueState, out: &mut TickOutcome) {
        out.waiting.reserve(st.len());
        let mut position = 0;
        // Liveness from the links (a small list) rather than the entries: after a big tick
        // most tickets are gone and their entries need not be read at all.
        let links = &st.scratch().links;
        for (a, &p) in st.ages().iter().zip(st.index().age_positions()) {
            if !links.is_live(p as usize) {
                continue;
            }
            position += 1;
            let waited = now.millis().saturating_sub(a.created);
            out.waiting.push(WaitingTicket {
                ticket: a.id,
                position,
                waited_ms: waited,
                estimated_wait_ms: st.estimated_wait(a.rating, waited),
            });
        }
    }
}
