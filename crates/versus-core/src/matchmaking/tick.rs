//! The tick: one deterministic pass that turns searching tickets into matches.
//!
//! Order of work:
//! 1. settle the pool ([`QueueState::maintain`]: release last tick's matches and cancellations,
//!    merge new arrivals into the age and rating lists), expire tickets past `max_wait_s`;
//! 2. backfill requests, oldest first, pick from the rating index;
//! 3. tickets, oldest first, each scanning outward from its own rating (nearest first, bounded
//!    by its window and `scan_limit`, skipping tickets already taken this tick through
//!    a linked list of live positions) for a group that fills a match: every pair of tickets within
//!    both of their windows, one region acceptable to all, no recent rematch, parties whole,
//!    and a packing into teams of exactly `team_size`; teams are then balanced (optimal split
//!    for two teams);
//! 4. report every waiting ticket's position and estimated wait.
//!
//! A ticket's window, acceptable regions and rematch relaxation depend only on its age, so they
//! are computed when the ticket is read (against per-tick cutoffs, [`Clock`]) rather than by a
//! pass over the pool. Matches are written flat into the [`TickOutcome`] (a few growing lists
//! per tick, no allocation per match). Work per tick is O(n + Σ scanned candidates), never a
//! pass over the pool per ticket.

use std::fmt;

use super::config::QueueConfig;
use super::state::{
    BackfillEntry, Cand, Cold, Entry, INLINE_REGIONS, Live, MASKED_BUDGETS, NONE, Pick, QueueState,
    TickScratch, inline_within, may_have_met, members_bits,
};
use super::teams::{self, Piece};
use super::ticket::{Member, PlayerId, RegionId, TicketId, Timestamp, UNREACHABLE_MS};
use crate::rating::{AnyRatingSystem, PlayerRating, RatingSystem, fairness_quality};

/// One team of a formed match.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MatchTeam<'a> {
    /// Tickets placed on this team by this tick (parties whole).
    pub tickets: &'a [TicketId],
    /// Every player of the team (for a backfill, the players already there come first).
    pub players: &'a [PlayerId],
    pub rating_sum: f64,
    /// Predicted probability that this team wins, from the queue's rating system.
    pub win_probability: f64,
}

/// A match formed by a tick: a view into its [`TickOutcome`].
#[derive(Clone, Copy)]
pub struct FormedMatch<'a> {
    /// `Some(request)` when this fills a running match's open slots.
    pub backfill: Option<TicketId>,
    /// Every ticket consumed, team by team.
    pub tickets: &'a [TicketId],
    /// Every player of the match, team by team.
    pub players: &'a [PlayerId],
    /// The region every ticket accepts, with the lowest worst-case latency.
    pub region: RegionId,
    /// Fairness of the predicted outcome in [0, 1]: `1 − (max P − min P)` over teams
    /// (`1 − 2·|P(A) − 0.5|` for two teams).
    pub quality: f64,
    pub formed_at: Timestamp,
    /// The match's teams in the outcome's team list.
    teams: (u32, u32),
    outcome: &'a TickOutcome,
}

impl<'a> FormedMatch<'a> {
    /// The teams, in team order (team `i` of a backfill is team `i` of the running match).
    pub fn teams(&self) -> impl ExactSizeIterator<Item = MatchTeam<'a>> + DoubleEndedIterator + 'a {
        let outcome = self.outcome;
        (self.teams.0 as usize..self.teams.1 as usize).map(move |t| outcome.team(t))
    }
    /// Team `i`. Panics if `i` is not below [`Self::team_count`].
    pub fn team(&self, i: usize) -> MatchTeam<'a> {
        assert!(i < self.team_count(), "team {i} of {}", self.team_count());
        self.outcome.team(self.teams.0 as usize + i)
    }
    pub fn team_count(&self) -> usize {
        (self.teams.1 - self.teams.0) as usize
    }
}

impl PartialEq for FormedMatch<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.backfill == other.backfill
            && self.tickets == other.tickets
            && self.players == other.players
            && self.region == other.region
            && self.quality == other.quality
            && self.formed_at == other.formed_at
            && self.teams().eq(other.teams())
    }
}

impl fmt::Debug for FormedMatch<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FormedMatch")
            .field("backfill", &self.backfill)
            .field("teams", &self.teams().collect::<Vec<_>>())
            .field("region", &self.region)
            .field("quality", &self.quality)
            .field("formed_at", &self.formed_at)
            .finish()
    }
}

/// A ticket still searching after the tick.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WaitingTicket {
    pub ticket: TicketId,
    /// 1 = oldest searching ticket (the next to pick).
    pub position: usize,
    pub waited_ms: u64,
    /// Remaining wait expected from recent time-to-match at this rating (0: any moment, or no
    /// history yet).
    pub estimated_wait_ms: u64,
}

/// A team's first ticket and player in the outcome's lists; it ends where the next team starts
/// (the lists are written in order), which keeps records small: a 100k tick writes 50k matches.
#[derive(Clone, Copy, Debug, PartialEq)]
struct TeamRecord {
    tickets: u32,
    players: u32,
    rating_sum: f64,
    win_probability: f64,
}

/// A match: its first team (it ends where the next match starts) and, for a backfill, the
/// request's index in `TickOutcome::backfills`.
#[derive(Clone, Copy, Debug, PartialEq)]
struct MatchRecord {
    quality: f64,
    formed_at: Timestamp,
    teams: u32,
    backfill: u32,
    region: RegionId,
}

/// What one tick did. Matches are stored flat — one list of teams, tickets and players for the
/// whole tick — and read through [`TickOutcome::matches`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TickOutcome {
    records: Vec<MatchRecord>,
    teams: Vec<TeamRecord>,
    tickets: Vec<TicketId>,
    players: Vec<PlayerId>,
    /// The backfill requests filled, indexed from their records.
    backfills: Vec<TicketId>,
    /// Tickets removed because they waited `max_wait_s`.
    pub expired: Vec<TicketId>,
    /// Backfill requests removed because they waited `max_wait_s`.
    pub expired_backfills: Vec<TicketId>,
    /// Every ticket still searching, oldest first.
    pub waiting: Vec<WaitingTicket>,
}

impl TickOutcome {
    /// The matches formed: backfills first, then the others in the order they were formed,
    /// except in a queue of two players a match (1v1), which lists its pairs by the rating of
    /// the ticket that picked (cheaper to write: it reads the index in order). Either way the
    /// same pool and time give the same list.
    pub fn matches(
        &self,
    ) -> impl ExactSizeIterator<Item = FormedMatch<'_>> + DoubleEndedIterator + '_ {
        (0..self.records.len()).map(|i| self.view(i))
    }
    pub fn match_count(&self) -> usize {
        self.records.len()
    }
    /// Match `i` in the order of [`Self::matches`].
    pub fn get_match(&self, i: usize) -> Option<FormedMatch<'_>> {
        (i < self.records.len()).then(|| self.view(i))
    }
    /// Appends a match made elsewhere: a replayed outcome, or a hand-made one to test what
    /// consumes outcomes (the simulator's checker, a server's publisher).
    pub fn push_match(
        &mut self,
        backfill: Option<TicketId>,
        teams: &[MatchTeam<'_>],
        region: RegionId,
        quality: f64,
        formed_at: Timestamp,
    ) {
        let first = self.teams.len() as u32;
        for t in teams {
            let mut team = self.open_team();
            self.tickets.extend_from_slice(t.tickets);
            self.players.extend_from_slice(t.players);
            team.rating_sum = t.rating_sum;
            team.win_probability = t.win_probability;
            self.teams.push(team);
        }
        self.push_record(backfill, first, region, quality, formed_at);
    }

    /// Empties every list, keeping their capacity (see [`Matchmaker::tick_into`]).
    pub fn clear(&mut self) {
        self.records.clear();
        self.teams.clear();
        self.tickets.clear();
        self.players.clear();
        self.backfills.clear();
        self.expired.clear();
        self.expired_backfills.clear();
        self.waiting.clear();
    }

    fn push_record(
        &mut self,
        backfill: Option<TicketId>,
        first_team: u32,
        region: RegionId,
        quality: f64,
        formed_at: Timestamp,
    ) {
        let backfill = backfill.map_or(NONE, |id| {
            self.backfills.push(id);
            (self.backfills.len() - 1) as u32
        });
        self.records.push(MatchRecord {
            quality,
            formed_at,
            teams: first_team,
            backfill,
            region,
        });
    }

    fn view(&self, i: usize) -> FormedMatch<'_> {
        let r = &self.records[i];
        let end = self
            .records
            .get(i + 1)
            .map_or(self.teams.len(), |next| next.teams as usize);
        let first = &self.teams[r.teams as usize];
        let (tickets, players) = self.team_end(end - 1);
        FormedMatch {
            backfill: self.backfills.get(r.backfill as usize).copied(),
            tickets: &self.tickets[first.tickets as usize..tickets],
            players: &self.players[first.players as usize..players],
            region: r.region,
            quality: r.quality,
            formed_at: r.formed_at,
            teams: (r.teams, end as u32),
            outcome: self,
        }
    }

    /// Where team `t`'s tickets and players end: where the next team's start.
    fn team_end(&self, t: usize) -> (usize, usize) {
        self.teams
            .get(t + 1)
            .map_or((self.tickets.len(), self.players.len()), |next| {
                (next.tickets as usize, next.players as usize)
            })
    }

    fn team(&self, t: usize) -> MatchTeam<'_> {
        let r = &self.teams[t];
        let (tickets, players) = self.team_end(t);
        MatchTeam {
            tickets: &self.tickets[r.tickets as usize..tickets],
            players: &self.players[r.players as usize..players],
            rating_sum: r.rating_sum,
            win_probability: r.win_probability,
        }
    }

    /// Starts a team: what is pushed from here until the next team starts is on it.
    fn open_team(&self) -> TeamRecord {
        TeamRecord {
            tickets: self.tickets.len() as u32,
            players: self.players.len() as u32,
            rating_sum: 0.0,
            win_probability: 0.0,
        }
    }
}

/// A queue's matchmaker: its configuration and rating system. Stateless between ticks — the pool
/// lives in [`QueueState`], so one matchmaker can serve any number of shards.
#[derive(Clone, Debug)]
pub struct Matchmaker {
    config: QueueConfig,
    rater: AnyRatingSystem,
    widening: Widening,
}

const SELECT_BUDGET: usize = 1_000;
/// Which way a tick forms matches: the fastest for the queue's shape, or always the general
/// group search (to test that the fast paths pick the same).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Path {
    Fastest,
    #[cfg_attr(not(test), allow(dead_code))]
    General,
}

/// Anchors whose index entries are loaded together (see [`touch_ahead`]).
const TOUCH_BATCH: usize = 32;

/// The widening schedules of a queue merged by whole seconds waited — both schedules step on
/// whole seconds — so that a ticket's step is looked up, not searched for: ticket ages are in
/// no order, and a search mispredicts.
#[derive(Clone, Debug)]
struct Widening {
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

    fn new(cfg: &QueueConfig) -> Self {
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
struct Clock<'m> {
    now_ms: u64,
    widening: &'m Widening,
    /// Tickets created at or before this are free of the rematch rule.
    relax: i64,
    /// One bit per region of the queue.
    regions: u64,
    inline: bool,
}

impl<'m> Clock<'m> {
    fn new(cfg: &QueueConfig, widening: &'m Widening, now: Timestamp) -> Self {
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

    /// The ticket's rating window, acceptable regions among `within` and rematch relaxation
    /// now. A candidate only ever shares a region with its anchor's group, so its regions are
    /// looked up among the anchor's alone (one or two, not all of them).
    #[inline(always)]
    fn live(&self, c: &Cand, slots: &[Option<Entry>], within: u64) -> Live {
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

/// Anchors come in age order, scattered over the rating index, so each one's index entry is a
/// cache miss. Reading the entries of the next batch of anchors together lets the CPU fetch them
/// in parallel (the loads are independent): one memory latency per batch instead of per anchor.
/// (Prefetch instructions, tried through one `unsafe` call, did no better: BENCHMARKS.md.)
/// `COLD`: whether the scan reads the tickets' [`Cold`] parts too (the 1v1 scan does not).
fn touch_ahead<const COLD: bool>(sc: &TickScratch, from: usize, reach: usize) {
    let end = (from + TOUCH_BATCH).min(sc.age_pos.len());
    let Some(ahead) = sc.age_pos.get(from..end) else {
        return;
    };
    let n = sc.cands.len();
    let (mut acc, mut near) = (0u64, 0u64);
    let mut touch = |c: usize| {
        acc ^= sc.cands[c].created;
        if COLD {
            acc ^= sc.cold[c].rating_sum.to_bits();
        }
    };
    // Taken already (most anchors of a big match's tick): nothing to fetch.
    let mut live = live_mask(sc, ahead);
    while live != 0 {
        let p = ahead[live.trailing_zeros() as usize] as usize;
        live &= live - 1;
        // The anchor and its nearest live neighbours on each side, through the links: once
        // half the pool is matched they are rarely next door.
        touch(p);
        if COLD && let Some(last) = sc.party.len().checked_sub(1) {
            // The parties near the anchor in rating, whose players a match here would write.
            let at = (sc.cold[p].party as usize).min(last);
            near ^= sc.party[at.saturating_sub(2)].player.0 as u64;
            near ^= sc.party[at].player.0 as u64;
            near ^= sc.party[(at + 2).min(last)].player.0 as u64;
        }
        let (mut l, mut r) = (sc.prev[p], sc.next[p]);
        for _ in 0..reach {
            if l != NONE {
                touch(l as usize);
                l = sc.prev[l as usize];
            }
            if (r as usize) < n {
                touch(r as usize);
                r = sc.next[r as usize];
            }
        }
    }
    std::hint::black_box((acc, near));
}

/// Calls `visit` with each anchor still in the scan at its turn, oldest first, having loaded
/// the next batch's index entries ahead ([`touch_ahead`], with `COLD` and `reach`). Most anchors
/// were taken as someone's partner before their turn (half in 1v1, five in six in 5v5): they
/// are skipped by a mask of each batch's live ones rather than by a branch per anchor, which
/// mispredicts; one taken by an earlier anchor of the same batch is caught before its visit.
#[inline(always)]
fn for_each_live_anchor<const COLD: bool>(
    st: &mut QueueState,
    reach: usize,
    mut visit: impl FnMut(&mut QueueState, usize),
) {
    let n = st.scratch.age_pos.len();
    for batch in (0..n).step_by(TOUCH_BATCH) {
        touch_ahead::<COLD>(&st.scratch, batch + TOUCH_BATCH, reach);
        let sc = &st.scratch;
        let mut live = live_mask(sc, &sc.age_pos[batch..(batch + TOUCH_BATCH).min(n)]);
        while live != 0 {
            let k = batch + live.trailing_zeros() as usize;
            live &= live - 1;
            let ai = st.scratch.age_pos[k] as usize;
            if is_live(&st.scratch, ai) {
                visit(st, ai);
            }
        }
    }
}

/// Bit `i` set when index position `positions[i]` is still in the scan: how a batch of anchors
/// skips the taken ones without a branch per anchor, which would mispredict.
fn live_mask(sc: &TickScratch, positions: &[u32]) -> u64 {
    (positions.iter().enumerate()).fold(0u64, |m, (i, &p)| {
        m | u64::from(is_live(sc, p as usize)) << i
    })
}

const _: () = assert!(TOUCH_BATCH <= 64, "a batch's live anchors are a u64 mask");

impl Matchmaker {
    pub fn new(config: QueueConfig) -> Result<Self, super::ConfigError> {
        config.validate()?;
        let rater = config
            .rating
            .build()
            .map_err(|_| super::ConfigError::Invalid {
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
        let n = st.scratch.cands.len();
        // The links `maintain` made ready are this tick's to consume.
        st.scratch.links_ready = false;
        self.expire(now, st, out);
        let ppm = self.config.players_per_match();
        out.records.reserve(n / ppm);
        out.teams.reserve(n / ppm * self.config.teams);
        out.tickets.reserve(n);
        out.players.reserve(n);
        self.run_backfills(now, &clock, st, out);
        if ppm == 2 && path == Path::Fastest {
            self.run_pairs(now, &clock, st, out);
        } else {
            self.run_tickets(now, &clock, st, out);
        }
        st.waits.settle();
        self.report_waiting(now, st, out);
    }

    fn expire(&self, now: Timestamp, st: &mut QueueState, out: &mut TickOutcome) {
        let Some(max_s) = self.config.max_wait_s else {
            return;
        };
        let max_ms = u64::from(max_s) * 1000;
        for k in 0..st.ages.len() {
            let aged = st.ages[k];
            if now.millis().saturating_sub(aged.created) < max_ms {
                break;
            }
            out.expired.push(aged.id);
            let c = st.scratch.age_pos[k] as usize;
            unlink(&mut st.scratch, c);
            st.release(aged.slot);
        }
        st.backfills.retain(|b| {
            let keep = now.since(b.req.created_at) < max_ms;
            if !keep {
                out.expired_backfills.push(b.req.id);
            }
            keep
        });
    }

    /// [`Self::run_tickets`] for 1v1 (two solo tickets a match): each anchor takes the nearest
    /// compatible ticket — the pick the general path makes (tested equal), without its group
    /// bookkeeping, which is most of the work of a 1v1 tick.
    fn run_pairs(&self, now: Timestamp, clock: &Clock, st: &mut QueueState, out: &mut TickOutcome) {
        for_each_live_anchor::<false>(st, 1, |st, ai| self.pair_anchor(now, clock, st, ai));
        self.write_pairs(now, st, out);
    }

    /// One anchor of [`Self::run_pairs`]: takes it and the nearest compatible ticket, if any.
    #[inline(always)]
    fn pair_anchor(&self, now: Timestamp, clock: &Clock, st: &mut QueueState, ai: usize) {
        let (slots, sc) = (&st.slots, &st.scratch);
        let a = &sc.cands[ai];
        let al = clock.live(a, slots, u64::MAX);
        if al.mask == 0 {
            // No region within its budget yet: nobody can be compatible.
            return;
        }
        let mut scan = Outward::around(sc, ai, a.rating, al.window, self.config.scan_limit);
        while let Some(c) = scan.next(sc) {
            let cand = &sc.cands[c];
            let cl = clock.live(cand, slots, al.mask);
            if compatible(slots, a, &al, cand, &cl) {
                let (a, b) = (
                    Pick {
                        c: ai as u32,
                        live: al,
                    },
                    Pick {
                        c: c as u32,
                        live: cl,
                    },
                );
                self.form_pair(now, st, a, b);
                return;
            }
        }
    }

    fn run_tickets(
        &self,
        now: Timestamp,
        clock: &Clock,
        st: &mut QueueState,
        out: &mut TickOutcome,
    ) {
        let need_total = self.config.players_per_match();
        // A pair is usually found next door; a bigger match scans further.
        let reach = if need_total == 2 { 1 } else { 3 };
        // Party sizes no packing of the pool could use (4-stacks with no solo to fill the
        // fifth seats): their tickets would scan to `scan_limit` and search to the budget every
        // tick for nothing. Counted before this tick's matches, so this never skips a ticket
        // that could be matched.
        let (teams, team_size) = (self.config.teams, self.config.team_size);
        let unpackable = (1..=team_size)
            .filter(|&k| {
                st.party_counts[k] > 0 && !teams::can_pack(&st.party_counts, k, teams, team_size)
            })
            .fold(0u64, |bits, k| bits | 1 << k);
        for_each_live_anchor::<true>(st, reach, |st, ai| {
            if unpackable != 0 && unpackable >> st.scratch.cands[ai].size & 1 != 0 {
                return;
            }
            if let Some(anchor) = self.find_group(clock, st, ai, need_total) {
                self.form_match(now, st, anchor, out);
            }
        });
    }

    /// Looks for tickets that complete a match with anchor `ai`. On success the group is in
    /// `scratch.chosen` and the team of each piece (anchor first) in `scratch.assign`; returns
    /// the anchor.
    fn find_group(
        &self,
        clock: &Clock,
        st: &mut QueueState,
        ai: usize,
        need_total: usize,
    ) -> Option<Pick> {
        let QueueState { slots, scratch, .. } = st;
        let sc = scratch;
        let a = sc.cands[ai];
        let al = clock.live(&a, slots, u64::MAX);
        let anchor = Pick {
            c: ai as u32,
            live: al,
        };
        let need = need_total.saturating_sub(usize::from(a.size));
        // No region within its budget yet: nobody can be compatible, so skip the scan (a
        // region outage would otherwise cost every ticket `scan_limit` checks per tick).
        if need == 0 || al.mask == 0 {
            return None;
        }
        sc.pool.clear();
        let mut pool_players = 0usize;
        let mut budget = SELECT_BUDGET;
        let mut scan = Outward::around(sc, ai, a.rating, al.window, self.config.scan_limit);
        while let Some(c) = scan.next(sc) {
            let cand = &sc.cands[c];
            let size = usize::from(cand.size);
            if size > need {
                continue;
            }
            let cl = clock.live(cand, slots, al.mask);
            if !compatible(slots, &a, &al, cand, &cl) {
                continue;
            }
            let pick = Pick {
                c: c as u32,
                live: cl,
            };
            sc.pool.push(pick);
            pool_players += size;
            if pool_players < need {
                continue;
            }
            // Try groups that include this newest candidate (groups without it were tried).
            sc.chosen.clear();
            sc.chosen.push(pick);
            let last = sc.pool.len() - 1;
            let pool = std::mem::take(&mut sc.pool);
            // suffix[i] = players in pool[i..last]: a branch that cannot reach `need` stops.
            sc.suffix.clear();
            sc.suffix.resize(last + 1, 0);
            for i in (0..last).rev() {
                sc.suffix[i] = sc.suffix[i + 1] + usize::from(sc.cands[pool[i].c as usize].size);
            }
            let found = select(
                self,
                slots,
                sc,
                ai,
                &pool[..last],
                0,
                need - size,
                al.mask & cl.mask,
                Bounds::EMPTY.with(cand, &cl),
                &mut budget,
            );
            sc.pool = pool;
            if found {
                return Some(anchor);
            }
            if budget == 0 {
                break;
            }
        }
        None
    }

    fn run_backfills(
        &self,
        now: Timestamp,
        clock: &Clock,
        st: &mut QueueState,
        out: &mut TickOutcome,
    ) {
        let mut i = 0;
        while i < st.backfills.len() {
            if let Some(assignments) = self.fill_backfill(now, clock, st, i) {
                let req = st.backfills.remove(i).req;
                let (id, region) = (Some(req.id), req.region);
                self.emit(now, st, id, region, &req.teams, &assignments, out);
            } else {
                i += 1;
            }
        }
    }

    /// Candidates for backfill request `bi`, as (pick, team) pairs.
    fn fill_backfill(
        &self,
        now: Timestamp,
        clock: &Clock,
        st: &mut QueueState,
        bi: usize,
    ) -> Option<Vec<(Pick, usize)>> {
        let QueueState {
            slots,
            scratch: sc,
            backfills,
            ..
        } = st;
        let bf = &backfills[bi];
        let waited = now.since(bf.req.created_at);
        let window = self.config.rating_widening.at(waited);
        let region_bit = 1u64 << bf.req.region.0;
        let mut open = bf.req.open_slots.clone();
        let need: usize = open.iter().sum();
        let max_open = *open.iter().max().unwrap_or(&0);
        let p = sc.cands.partition_point(|c| c.rating < bf.target);
        let mut scan = Outward::from(sc, p, bf.target, window, self.config.scan_limit);
        let mut pool: Vec<Pick> = Vec::new();
        let mut players = 0usize;
        let mut budget = SELECT_BUDGET;
        while let Some(c) = scan.next(sc) {
            let cand = &sc.cands[c];
            if usize::from(cand.size) > max_open {
                continue;
            }
            let cl = clock.live(cand, slots, region_bit);
            if cl.mask & region_bit == 0
                || (cand.rating - bf.target).abs() > window.min(cl.window)
                || (!cl.relaxed && backfill_conflict(slots, bf, cand))
            {
                continue;
            }
            let pick = Pick {
                c: c as u32,
                live: cl,
            };
            let size = usize::from(cand.size);
            pool.push(pick);
            players += size;
            if players < need {
                continue;
            }
            let mut chosen: Vec<(Pick, usize)> = Vec::new();
            let last = pool.len() - 1;
            for t in 0..open.len() {
                if open[t] >= size {
                    open[t] -= size;
                    chosen.push((pick, t));
                    if fill(
                        slots,
                        &sc.cands,
                        &pool[..last],
                        0,
                        &mut open,
                        need - size,
                        &mut chosen,
                        &mut budget,
                    ) {
                        return Some(chosen);
                    }
                    chosen.pop();
                    open[t] += size;
                }
            }
            if budget == 0 {
                break;
            }
        }
        None
    }

    fn form_match(&self, now: Timestamp, st: &mut QueueState, anchor: Pick, out: &mut TickOutcome) {
        let QueueState {
            slots, scratch: sc, ..
        } = &mut *st;
        let group = || std::iter::once(&anchor).chain(sc.chosen.iter());
        let mask = group().fold(u64::MAX, |m, p| m & p.live.mask);
        let region = choose_region(mask, slots, || group().map(|p| &sc.cands[p.c as usize]));
        let mut placed = std::mem::take(&mut sc.placed);
        placed.clear();
        placed.extend(group().zip(&sc.assign).map(|(p, &t)| (*p, t)));
        self.emit(now, st, None, region, &[], &placed, out);
        st.scratch.placed = placed;
    }

    /// Writes a match whose team `t` is `existing[t]` (players already in a running match, for a
    /// backfill) followed by the tickets `placed` on `t`; takes those tickets out of the pool
    /// and predicts the outcome.
    #[allow(clippy::too_many_arguments)]
    fn emit(
        &self,
        now: Timestamp,
        st: &mut QueueState,
        backfill: Option<TicketId>,
        region: RegionId,
        existing: &[Vec<Member>],
        placed: &[(Pick, usize)],
        out: &mut TickOutcome,
    ) {
        let first_team = out.teams.len() as u32;
        let sc = &mut st.scratch;
        sc.ratings.clear();
        let mut bounds = [0usize; 65];
        for t in 0..self.config.teams {
            let mut team = out.open_team();
            for m in existing.get(t).into_iter().flatten() {
                out.players.push(m.player);
                team.rating_sum += m.rating.rating;
                sc.ratings.push(m.rating);
            }
            for (pick, _) in placed.iter().filter(|(_, on)| *on == t) {
                let c = pick.c as usize;
                team.rating_sum +=
                    push_ticket(out, &mut sc.ratings, &sc.party, &sc.cands[c], &sc.cold[c]);
            }
            out.teams.push(team);
            bounds[t + 1] = sc.ratings.len();
        }
        for (pick, _) in placed {
            take(st, pick.c as usize, now);
        }
        let quality = self.predict(first_team as usize, &st.scratch.ratings, &bounds, out);
        out.push_record(backfill, first_team, region, quality, now);
    }

    /// [`Self::form_match`] for two solo tickets (1v1), without the general bookkeeping: takes
    /// them and notes the pair at the picking ticket's index position; [`Self::write_pairs`]
    /// writes it out after the scan.
    fn form_pair(&self, now: Timestamp, st: &mut QueueState, a: Pick, b: Pick) {
        let sc = &st.scratch;
        let (ca, cb) = (&sc.cands[a.c as usize], &sc.cands[b.c as usize]);
        let region = choose_region(a.live.mask & b.live.mask, &st.slots, || {
            [ca, cb].into_iter()
        });
        st.scratch.mate[a.c as usize] = b.c;
        st.scratch.mate_region[a.c as usize] = region;
        take(st, a.c as usize, now);
        take(st, b.c as usize, now);
    }

    /// Writes the pairs [`Self::run_pairs`] formed, walking the index in order: what only the
    /// outcome needs (ids, players, ratings for the prediction) is in the cold rows, read here
    /// as one sequential stream (a pair's two tickets are next to each other in it) rather than
    /// as two random loads per pair in the order the pairs formed, which cost 1.4 ms of a
    /// 100k tick's 8. The matches are listed by the picking ticket's rating then.
    fn write_pairs(&self, now: Timestamp, st: &mut QueueState, out: &mut TickOutcome) {
        let sc = &mut st.scratch;
        let n = sc.mate.len();
        for from in (0..n).step_by(64) {
            // Half the positions pick: a mask per 64 rather than a branch each, which would
            // mispredict.
            let chunk = &sc.mate[from..(from + 64).min(n)];
            let mut anchors =
                (chunk.iter().enumerate()).fold(0u64, |m, (i, &b)| m | u64::from(b != NONE) << i);
            while anchors != 0 {
                let a = from + anchors.trailing_zeros() as usize;
                anchors &= anchors - 1;
                let b = sc.mate[a] as usize;
                let region = sc.mate_region[a];
                sc.mate[a] = NONE;
                let (ka, kb) = (&sc.cold[a], &sc.cold[b]);
                let p0 = (self.rater).pair_win_probability(&ka.predictive(), &kb.predictive());
                let first_team = out.teams.len() as u32;
                let (t, p) = (out.tickets.len() as u32, out.players.len() as u32);
                out.tickets.extend_from_slice(&[ka.id, kb.id]);
                out.players.extend_from_slice(&[ka.player, kb.player]);
                let team = |i: u32, k: &Cold, win_probability: f64| TeamRecord {
                    tickets: t + i,
                    players: p + i,
                    rating_sum: k.rating,
                    win_probability,
                };
                out.teams
                    .extend_from_slice(&[team(0, ka, p0), team(1, kb, 1.0 - p0)]);
                let quality = fairness_quality(&[p0, 1.0 - p0]);
                out.push_record(None, first_team, region, quality, now);
            }
        }
    }

    /// Fills in the win probability of the teams from `first_team` on (their players' ratings
    /// are `ratings[bounds[t]..bounds[t + 1]]`); returns the quality.
    fn predict(
        &self,
        first_team: usize,
        ratings: &[PlayerRating],
        bounds: &[usize; 65],
        out: &mut TickOutcome,
    ) -> f64 {
        let teams = &mut out.teams[first_team..];
        let slice = |t: usize| &ratings[bounds[t]..bounds[t + 1]];
        if teams.len() == 2 {
            let p0 = self.rater.two_team_win_probability(slice(0), slice(1));
            teams[0].win_probability = p0;
            teams[1].win_probability = 1.0 - p0;
            return fairness_quality(&[p0, 1.0 - p0]);
        }
        let refs: Vec<&[PlayerRating]> = (0..teams.len()).map(slice).collect();
        let p = self.rater.win_probabilities(&refs);
        for (t, p) in teams.iter_mut().zip(&p) {
            t.win_probability = *p;
        }
        fairness_quality(&p)
    }

    fn report_waiting(&self, now: Timestamp, st: &QueueState, out: &mut TickOutcome) {
        out.waiting.reserve(st.live_count);
        let mut position = 0;
        // Liveness from the links (a small list) rather than the entries: after a big tick
        // most tickets are gone and their entries need not be read at all.
        for (a, &p) in st.ages.iter().zip(&st.scratch.age_pos) {
            if !is_live(&st.scratch, p as usize) {
                continue;
            }
            position += 1;
            let waited = now.millis().saturating_sub(a.created);
            out.waiting.push(WaitingTicket {
                ticket: a.id,
                position,
                waited_ms: waited,
                estimated_wait_ms: st.waits.estimate(a.rating, waited),
            });
        }
    }
}

/// The region in `mask` (acceptable to every ticket of the group) with the lowest worst-case
/// latency; ties go to the lowest index.
fn choose_region<'c, I: Iterator<Item = &'c Cand>>(
    mask: u64,
    slots: &[Option<Entry>],
    group: impl Fn() -> I,
) -> RegionId {
    let mut region = mask.trailing_zeros() as u8;
    if mask.count_ones() > 1 {
        let mut best = u32::MAX;
        let mut bits = mask;
        while bits != 0 {
            let r = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            let worst = group()
                .map(|cand| {
                    if r < INLINE_REGIONS && cand.lat[r] != u16::MAX {
                        u32::from(cand.lat[r])
                    } else {
                        slots[cand.slot as usize]
                            .as_ref()
                            .and_then(|e| e.latency.get(r).copied())
                            .unwrap_or(u32::MAX)
                    }
                })
                .max()
                .unwrap_or(0);
            if worst < best {
                best = worst;
                region = r as u8;
            }
        }
    }
    RegionId(region)
}

/// Appends a ticket and its players to the team being written; returns its rating sum.
fn push_ticket(
    out: &mut TickOutcome,
    ratings: &mut Vec<PlayerRating>,
    party: &[Member],
    cand: &Cand,
    cold: &Cold,
) -> f64 {
    out.tickets.push(cold.id);
    if cand.size == 1 {
        out.players.push(cold.player);
        ratings.push(cold.predictive());
        return cold.rating;
    }
    let mut sum = 0.0;
    for m in &party[cold.party as usize..][..usize::from(cand.size)] {
        out.players.push(m.player);
        ratings.push(m.rating);
        sum += m.rating.rating;
    }
    sum
}

/// Takes index position `c` into a match: it leaves the scan and the searching pool, and its
/// wait feeds the estimates.
#[inline(always)]
fn take(st: &mut QueueState, c: usize, now: Timestamp) {
    let cand = &st.scratch.cands[c];
    let (slot, rating, created) = (cand.slot, cand.rating, cand.created);
    st.waits
        .record(rating, now.millis().saturating_sub(created));
    unlink(&mut st.scratch, c);
    st.mark_matched(slot);
}

/// Marks a position's `next` link once it has left this tick's scan.
const DEAD: u32 = 1 << 31;

/// Removes live index position `c` from this tick's scan. `next[c]` keeps the nearest live
/// position to its right then (flagged [`DEAD`]) and `prev[c]` the nearest to its left, so a
/// walk that starts on a removed position still reaches the nearest live one: positions removed
/// never come back within a tick.
fn unlink(sc: &mut TickScratch, c: usize) {
    let (p, q) = (sc.prev[c], sc.next[c]);
    if p != NONE {
        sc.next[p as usize] = q;
    }
    if let Some(back) = sc.prev.get_mut(q as usize) {
        *back = p;
    }
    sc.next[c] = q | DEAD;
}

fn is_live(sc: &TickScratch, c: usize) -> bool {
    sc.next[c] & DEAD == 0
}

/// Nearest live position ≥ `i` (`n` if none).
fn live_at_or_after(sc: &TickScratch, i: usize) -> u32 {
    let mut c = i as u32;
    while let Some(&q) = sc.next.get(c as usize) {
        if q & DEAD == 0 {
            break;
        }
        c = q & !DEAD;
    }
    c
}

/// Nearest live position < `i` (`NONE` if none).
fn live_before(sc: &TickScratch, i: usize) -> u32 {
    let mut c = (i as u32).wrapping_sub(1);
    while c != NONE && !is_live(sc, c as usize) {
        c = sc.prev[c as usize];
    }
    c
}

/// The rating index read outward from a rating, nearest first, skipping tickets taken this
/// tick, until the next one is beyond `window` or `limit` have been read.
struct Outward {
    /// Next candidate below (`NONE`: none) and above (`n`: none).
    l: u32,
    r: u32,
    center: f64,
    window: f64,
    left: usize,
}

impl Outward {
    /// Around live position `at` (not included).
    fn around(sc: &TickScratch, at: usize, center: f64, window: f64, limit: usize) -> Self {
        Self {
            l: sc.prev[at],
            r: sc.next[at],
            center,
            window,
            left: limit,
        }
    }

    /// Around a position that may be taken: `at` itself is the first candidate above.
    fn from(sc: &TickScratch, at: usize, center: f64, window: f64, limit: usize) -> Self {
        Self {
            l: live_before(sc, at),
            r: live_at_or_after(sc, at),
            center,
            window,
            left: limit,
        }
    }

    #[inline]
    fn next(&mut self, sc: &TickScratch) -> Option<usize> {
        if self.left == 0 {
            return None;
        }
        let dl = if self.l != NONE {
            self.center - sc.cands[self.l as usize].rating
        } else {
            f64::INFINITY
        };
        let dr = if (self.r as usize) < sc.cands.len() {
            sc.cands[self.r as usize].rating - self.center
        } else {
            f64::INFINITY
        };
        let c = if dl <= dr {
            if dl > self.window {
                return None;
            }
            let c = self.l as usize;
            self.l = sc.prev[c];
            c
        } else {
            if dr > self.window {
                return None;
            }
            let c = self.r as usize;
            self.r = sc.next[c];
            c
        };
        self.left -= 1;
        Some(c)
    }
}

/// Whether two tickets may be in the same match.
#[inline]
fn compatible(slots: &[Option<Entry>], a: &Cand, al: &Live, b: &Cand, bl: &Live) -> bool {
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

fn backfill_conflict(slots: &[Option<Entry>], bf: &BackfillEntry, c: &Cand) -> bool {
    if c.recent_bits & bf.existing_bits == 0 {
        return false;
    }
    let e = slots[c.slot as usize].as_ref().expect("live");
    e.recent
        .iter()
        .any(|p| bf.req.teams.iter().flatten().any(|m| m.player == *p))
}

/// What the tickets chosen so far ask of the next one: the rating interval inside all of their
/// windows, their own rating range (which must sit inside the newcomer's window), and the
/// fingerprints of those still bound by the rematch rule. With it a candidate is judged against
/// the whole group in a few comparisons instead of one pairwise check per chosen ticket.
#[derive(Clone, Copy, Debug)]
struct Bounds {
    lo: f64,
    hi: f64,
    min: f64,
    max: f64,
    self_bits: u64,
    recent_bits: u64,
}

impl Bounds {
    const EMPTY: Bounds = Bounds {
        lo: f64::NEG_INFINITY,
        hi: f64::INFINITY,
        min: f64::INFINITY,
        max: f64::NEG_INFINITY,
        self_bits: 0,
        recent_bits: 0,
    };
    /// Margin (rating points) within which rounding could make the interval test disagree with
    /// the pairwise one; such a candidate gets the pairwise test.
    const MARGIN: f64 = 1e-6;

    fn with(self, c: &Cand, l: &Live) -> Bounds {
        let bound = !l.relaxed;
        Bounds {
            lo: self.lo.max(c.rating - l.window),
            hi: self.hi.min(c.rating + l.window),
            min: self.min.min(c.rating),
            max: self.max.max(c.rating),
            self_bits: self.self_bits | if bound { members_bits(c) } else { 0 },
            recent_bits: self.recent_bits | if bound { c.recent_bits } else { 0 },
        }
    }

    /// Whether `c` is compatible with every ticket in the group (regions are checked by the
    /// caller's running mask); `None` when only the pairwise test can tell: a rating within
    /// [`Self::MARGIN`] of a bound, or a rematch fingerprint in common.
    fn admits(&self, c: &Cand, l: &Live) -> Option<bool> {
        let m = Self::MARGIN;
        let (lo, hi) = (c.rating - l.window, c.rating + l.window);
        if c.rating < self.lo - m
            || c.rating > self.hi + m
            || self.min < lo - m
            || self.max > hi + m
        {
            return Some(false);
        }
        let clear = c.rating >= self.lo + m
            && c.rating <= self.hi - m
            && self.min >= lo + m
            && self.max <= hi - m;
        let rematch = !l.relaxed
            && (c.recent_bits & self.self_bits != 0 || may_have_met(self.recent_bits, c));
        (clear && !rematch).then_some(true)
    }
}

/// Depth-first choice of pool members (nearest first) completing a match with the anchor and
/// the tickets already in `sc.chosen`. At a complete group, checks the team packing.
#[allow(clippy::too_many_arguments)]
fn select(
    mm: &Matchmaker,
    slots: &[Option<Entry>],
    sc: &mut TickScratch,
    anchor: usize,
    pool: &[Pick],
    start: usize,
    need: usize,
    mask: u64,
    bounds: Bounds,
    budget: &mut usize,
) -> bool {
    if need == 0 {
        return pack(mm, sc, anchor);
    }
    for idx in start..pool.len() {
        if *budget == 0 || sc.suffix[idx] < need {
            return false;
        }
        *budget -= 1;
        let pick = pool[idx];
        let cand = &sc.cands[pick.c as usize];
        let size = usize::from(cand.size);
        if size > need || mask & pick.live.mask == 0 {
            continue;
        }
        let fits = bounds.admits(cand, &pick.live).unwrap_or_else(|| {
            sc.chosen
                .iter()
                .all(|x| compatible(slots, &sc.cands[x.c as usize], &x.live, cand, &pick.live))
        });
        if !fits {
            continue;
        }
        let inner = bounds.with(cand, &pick.live);
        sc.chosen.push(pick);
        if select(
            mm,
            slots,
            sc,
            anchor,
            pool,
            idx + 1,
            need - size,
            mask & pick.live.mask,
            inner,
            budget,
        ) {
            return true;
        }
        sc.chosen.pop();
    }
    false
}

/// Splits anchor + chosen into teams; result in `sc.assign` (anchor first, then `chosen` order).
fn pack(mm: &Matchmaker, sc: &mut TickScratch, anchor: usize) -> bool {
    sc.pieces.clear();
    for c in std::iter::once(anchor as u32).chain(sc.chosen.iter().map(|p| p.c)) {
        sc.pieces.push(Piece {
            size: usize::from(sc.cands[c as usize].size),
            sum: sc.cold[c as usize].rating_sum,
        });
    }
    teams::partition(
        &sc.pieces,
        mm.config.teams,
        mm.config.team_size,
        &mut sc.teams,
        &mut sc.assign,
    )
}

/// Depth-first fill of a backfill's open slots from `pool`.
#[allow(clippy::too_many_arguments)]
fn fill(
    slots: &[Option<Entry>],
    cands: &[Cand],
    pool: &[Pick],
    start: usize,
    open: &mut [usize],
    need: usize,
    chosen: &mut Vec<(Pick, usize)>,
    budget: &mut usize,
) -> bool {
    if need == 0 {
        return true;
    }
    for idx in start..pool.len() {
        if *budget == 0 {
            return false;
        }
        *budget -= 1;
        let pick = pool[idx];
        let cand = &cands[pick.c as usize];
        let size = usize::from(cand.size);
        if size > need
            || !chosen
                .iter()
                .all(|(x, _)| compatible(slots, &cands[x.c as usize], &x.live, cand, &pick.live))
        {
            continue;
        }
        for t in 0..open.len() {
            if open[t] >= size {
                open[t] -= size;
                chosen.push((pick, t));
                if fill(
                    slots,
                    cands,
                    pool,
                    idx + 1,
                    open,
                    need - size,
                    chosen,
                    budget,
                ) {
                    return true;
                }
                chosen.pop();
                open[t] += size;
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;
    use crate::matchmaking::{QueueConfig, Schedule, Ticket};

    /// 4-stacks in a 5v5 queue cannot be packed without solos: they are skipped while there
    /// are none, and matched as soon as two solos arrive.
    #[test]
    fn unpackable_parties_wait_until_the_pool_can_pack_them() {
        let mm = Matchmaker::new(QueueConfig::new(2, 5)).unwrap();
        let mut st = mm.new_state();
        let mut next = 1u128;
        let mut ticket = |size: usize, st: &mut QueueState| {
            let members = (0..size)
                .map(|i| Member {
                    player: PlayerId(next * 10 + i as u128),
                    rating: PlayerRating::new(1500.0 + i as f64, 50.0),
                })
                .collect();
            st.add(Ticket {
                id: TicketId(next),
                members,
                region_latency_ms: vec![20],
                created_at: Timestamp::from_secs(100),
                recent_opponents: vec![],
            })
            .unwrap();
            next += 1;
        };
        for _ in 0..4 {
            ticket(4, &mut st);
        }
        let out = mm.tick(Timestamp::from_secs(101), &mut st);
        assert_eq!(out.match_count(), 0);
        assert_eq!(st.len(), 4);
        ticket(1, &mut st);
        ticket(1, &mut st);
        let out = mm.tick(Timestamp::from_secs(102), &mut st);
        assert_eq!(out.match_count(), 1);
        let m = out.get_match(0).unwrap();
        assert!(m.teams().all(|t| t.players.len() == 5));
        assert_eq!(st.len(), 2);
        // The other two 4-stacks are unpackable again, and skipped.
        assert_eq!(mm.tick(Timestamp::from_secs(103), &mut st).match_count(), 0);
    }

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
        for (c, k) in st.scratch.cands.iter().zip(&st.scratch.cold) {
            let waited_s = now.millis().saturating_sub(c.created) / 1000;
            let budget = cfg.latency_budget_at(waited_s);
            // With few regions latencies are kept as u16: 65535 ms or more counts as
            // unreachable (see `Clock::live`).
            let want = (latencies[k.id.0 as usize].iter().enumerate())
                .filter(|&(_, &ms)| ms < u32::from(u16::MAX) && u64::from(ms) <= budget)
                .fold(0u64, |m, (r, _)| m | 1 << r);
            let live = clock.live(c, &st.slots, u64::MAX);
            assert_eq!(live.mask, want, "budget {budget}, latencies {:?}", c.lat);
            // Among some regions only: those of them.
            assert_eq!(clock.live(c, &st.slots, 0b10110).mask, want & 0b10110);
            match mm.widening.at(waited_s).masked {
                Some(_) => masked += 1,
                None => compared += 1,
            }
        }
        assert!(masked > 500 && compared > 500, "{masked} / {compared}");
    }

    /// Records keep only where each team and match starts: the views must end each one where
    /// the next starts, including empty teams (a backfill's team with no new ticket) and the
    /// last match.
    #[test]
    fn outcome_views_read_back_what_was_pushed() {
        let team = |tickets: &'static [TicketId], players: &'static [PlayerId], w: f64| MatchTeam {
            tickets,
            players,
            rating_sum: 10.0 * w,
            win_probability: w,
        };
        let matches: [(Option<TicketId>, Vec<MatchTeam<'static>>); 3] = [
            (
                Some(TicketId(900)),
                vec![
                    team(&[], &[PlayerId(50), PlayerId(51)], 0.4),
                    team(&[TicketId(1)], &[PlayerId(60), PlayerId(1)], 0.6),
                ],
            ),
            (
                None,
                vec![
                    team(
                        &[TicketId(2), TicketId(3)],
                        &[PlayerId(2), PlayerId(3)],
                        0.3,
                    ),
                    team(&[TicketId(4)], &[PlayerId(4), PlayerId(5)], 0.3),
                    team(&[TicketId(6)], &[PlayerId(6)], 0.4),
                ],
            ),
            (
                None,
                vec![
                    team(&[TicketId(7)], &[PlayerId(7)], 0.5),
                    team(&[TicketId(8)], &[PlayerId(8)], 0.5),
                ],
            ),
        ];
        let mut out = TickOutcome::default();
        for (i, (backfill, teams)) in matches.iter().enumerate() {
            let at = Timestamp::from_secs(i as u64);
            out.push_match(*backfill, teams, RegionId(i as u8), 0.1 * i as f64, at);
        }
        assert_eq!(out.match_count(), 3);
        for (i, (m, (backfill, teams))) in out.matches().zip(&matches).enumerate() {
            assert_eq!(m.backfill, *backfill);
            assert_eq!(m.region, RegionId(i as u8));
            assert_eq!(m.formed_at, Timestamp::from_secs(i as u64));
            assert_eq!(m.team_count(), teams.len());
            assert!(m.teams().eq(teams.iter().copied()), "match {i}: {m:?}");
            assert_eq!(m.team(teams.len() - 1), teams[teams.len() - 1]);
            let tickets: Vec<TicketId> = teams.iter().flat_map(|t| t.tickets.to_vec()).collect();
            let players: Vec<PlayerId> = teams.iter().flat_map(|t| t.players.to_vec()).collect();
            assert_eq!((m.tickets, m.players), (&tickets[..], &players[..]));
        }
        assert!(out.get_match(3).is_none());
        assert_eq!(out.matches().next_back(), out.get_match(2));
    }

    /// The 1v1 fast path forms exactly the matches of the general group search, tick after
    /// tick, on crowded pools where windows, regions, rematches and the scan limit all bite.
    #[test]
    fn pairs_match_the_general_path() {
        for seed in 0..40u64 {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let mut cfg = QueueConfig::new(2, 1);
            cfg.regions = vec!["eu".into(), "na".into(), "asia".into()];
            cfg.latency_budget_ms = 70;
            cfg.latency_widening = Schedule::new(vec![(0, 0.0), (8, 40.0)]);
            cfg.rating_widening = Schedule::new(vec![(0, 15.0), (4, 60.0), (12, 250.0)]);
            cfg.rematch_relax_after_s = Some(10);
            cfg.max_wait_s = Some(30);
            cfg.scan_limit = rng.random_range(2..40);
            let mm = Matchmaker::new(cfg).unwrap();
            let (mut fast, mut general) = (mm.new_state(), mm.new_state());
            let (mut out_fast, mut out_general) = (TickOutcome::default(), TickOutcome::default());
            let mut next = 1u128;
            for tick in 0..25u64 {
                let now = Timestamp::from_secs(1_000 + tick);
                for _ in 0..rng.random_range(0..120) {
                    let player = PlayerId(next);
                    let t = Ticket {
                        id: TicketId(next),
                        members: vec![Member {
                            player,
                            rating: PlayerRating::new(rng.random_range(1300.0..1700.0), 80.0),
                        }],
                        region_latency_ms: (0..3)
                            .map(|_| {
                                if rng.random_bool(0.1) {
                                    UNREACHABLE_MS
                                } else {
                                    rng.random_range(10..140)
                                }
                            })
                            .collect(),
                        created_at: Timestamp::from_millis(
                            now.millis() - rng.random_range(0..1_000),
                        ),
                        recent_opponents: (0..rng.random_range(0..4))
                            .map(|_| PlayerId(rng.random_range(1..=next)))
                            .collect(),
                    };
                    next += 1;
                    fast.add(t.clone()).unwrap();
                    general.add(t).unwrap();
                }
                if rng.random_bool(0.3) {
                    let id = TicketId(rng.random_range(1..next));
                    assert_eq!(fast.cancel(id), general.cancel(id));
                }
                mm.tick_with(now, &mut fast, &mut out_fast, Path::Fastest);
                mm.tick_with(now, &mut general, &mut out_general, Path::General);
                // The same matches; the fast path lists them by rating, not as formed.
                fn by_ticket(out: &TickOutcome) -> Vec<FormedMatch<'_>> {
                    let mut ms: Vec<_> = out.matches().collect();
                    ms.sort_by_key(|m| m.tickets[0]);
                    ms
                }
                assert_eq!(
                    by_ticket(&out_fast),
                    by_ticket(&out_general),
                    "seed {seed}, tick {tick}"
                );
                let fast_rest = (&out_fast.expired, &out_fast.waiting);
                assert_eq!(fast_rest, (&out_general.expired, &out_general.waiting));
            }
            assert!(out_fast.match_count() > 0 || fast.len() < 2);
        }
    }
}
