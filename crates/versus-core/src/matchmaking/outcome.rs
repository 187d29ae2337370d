//! What a tick hands back: the matches it formed, the tickets it expired, and every waiting
//! ticket's position and estimated wait.
//!
//! Owns the outcome's lists and the views ([`FormedMatch`], [`MatchTeam`]) that read them. It
//! never decides anything: the tick writes into it through the few methods below, and the
//! records it keeps are only where each team and match starts. Like the rest of the core it does
//! no IO and reads no clock (a match's `formed_at` is the tick's `now`).
//!
//! The outcome is flat because a 100k-ticket tick writes ~50k matches: a few lists per tick,
//! records holding only where each team and match starts (each ends where the next one starts),
//! matches read as views, all of it reused across ticks by a caller that keeps one outcome
//! ([`Matchmaker::tick_into`](super::Matchmaker::tick_into)): no allocation per match.

use std::fmt;

use super::NONE;
use super::ticket::{PlayerId, RegionId, TicketId, Timestamp};

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
/// The tick holds one between [`TickOutcome::open_team`] and [`TickOutcome::close_team`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct TeamRecord {
    tickets: u32,
    players: u32,
    pub(super) rating_sum: f64,
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

    /// Empties every list, keeping their capacity (see
    /// [`Matchmaker::tick_into`](super::Matchmaker::tick_into)).
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
}

/// Writing, for the tick: a match is its teams (each opened, filled with tickets and players,
/// closed), then its record. Nothing here allocates once the lists have held a tick this big.
impl TickOutcome {
    /// Room for a tick's worth of matches, so that writing them does not grow the lists.
    pub(super) fn reserve(&mut self, matches: usize, teams: usize, tickets: usize) {
        self.records.reserve(matches);
        self.teams.reserve(teams);
        self.tickets.reserve(tickets);
        self.players.reserve(tickets);
    }

    /// Teams written so far: the next match's first team.
    #[inline]
    pub(super) fn team_count(&self) -> usize {
        self.teams.len()
    }

    /// Starts a team: what is pushed from here until the next team starts is on it.
    #[inline]
    pub(super) fn open_team(&self) -> TeamRecord {
        TeamRecord {
            tickets: self.tickets.len() as u32,
            players: self.players.len() as u32,
            rating_sum: 0.0,
            win_probability: 0.0,
        }
    }

    #[inline]
    pub(super) fn push_ticket(&mut self, id: TicketId) {
        self.tickets.push(id);
    }

    #[inline]
    pub(super) fn push_player(&mut self, player: PlayerId) {
        self.players.push(player);
    }

    /// Ends the team [`Self::open_team`] started (its win probability is set once every team
    /// of the match is written).
    #[inline]
    pub(super) fn close_team(&mut self, team: TeamRecord) {
        self.teams.push(team);
    }

    /// The win probabilities of the teams from `first_team` on, in order.
    #[inline]
    pub(super) fn set_win_probabilities(&mut self, first_team: usize, p: &[f64]) {
        for (t, p) in self.teams[first_team..].iter_mut().zip(p) {
            t.win_probability = *p;
        }
    }

    /// Appends a match of two solo tickets, both teams at once: the 1v1 write-out, which
    /// writes half as many matches as a 1v1 tick has tickets.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    pub(super) fn push_pair(
        &mut self,
        tickets: [TicketId; 2],
        players: [PlayerId; 2],
        ratings: [f64; 2],
        win_probability: f64,
        region: RegionId,
        quality: f64,
        formed_at: Timestamp,
    ) {
        let first_team = self.teams.len() as u32;
        let (t, p) = (self.tickets.len() as u32, self.players.len() as u32);
        self.tickets.extend_from_slice(&tickets);
        self.players.extend_from_slice(&players);
        let team = |i: u32, rating_sum: f64, win_probability: f64| TeamRecord {
            tickets: t + i,
            players: p + i,
            rating_sum,
            win_probability,
        };
        self.teams.extend_from_slice(&[
            team(0, ratings[0], win_probability),
            team(1, ratings[1], 1.0 - win_probability),
        ]);
        self.push_record(None, first_team, region, quality, formed_at);
    }

    /// Ends a match whose teams start at `first_team`.
    pub(super) fn push_record(
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
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
