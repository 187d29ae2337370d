//! A game session's rules: the lifecycle every session goes through, who may move it, and how a
//! reported result is checked against the session's roster and turned into rating updates.
//!
//! ```text
//! allocating ──▶ ready ──▶ active ──▶ ended
//!     │            │ │        │ │
//!     └▶ cancelled ◀─┘ └▶ abandoned ◀┘ (and active ─▶ cancelled)
//! ```
//! `ready → ended` is allowed too (a game server that reports a result without saying it
//! started). The three ends are final. Pure: the server stores what these functions decide.

use std::fmt;

use crate::matchmaking::PlayerId;
use crate::rating::{Placements, PlayerRating, RatingError, RatingSystem};

/// Where a session is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SessionState {
    /// Formed; a game server is being found.
    Allocating,
    /// A game server holds it; players may connect.
    Ready,
    /// The game is being played.
    Active,
    /// Over, normally (a result may have been recorded).
    Ended,
    /// Never played: no server, the server gave up, an admin stopped it.
    Cancelled,
    /// The game server stopped answering (no heartbeat).
    Abandoned,
}

impl SessionState {
    pub const ALL: [Self; 6] = [
        Self::Allocating,
        Self::Ready,
        Self::Active,
        Self::Ended,
        Self::Cancelled,
        Self::Abandoned,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allocating => "allocating",
            Self::Ready => "ready",
            Self::Active => "active",
            Self::Ended => "ended",
            Self::Cancelled => "cancelled",
            Self::Abandoned => "abandoned",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }

    /// No transition leaves it.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Ended | Self::Cancelled | Self::Abandoned)
    }

    /// A game server holds it: heartbeats are due, a result is accepted.
    pub fn is_live(self) -> bool {
        matches!(self, Self::Ready | Self::Active)
    }

    /// Whether the lifecycle allows `self → to`.
    pub fn can_become(self, to: Self) -> bool {
        use SessionState::*;
        matches!(
            (self, to),
            (Allocating, Ready | Cancelled)
                | (Ready, Active | Ended | Cancelled | Abandoned)
                | (Active, Ended | Cancelled | Abandoned)
        )
    }

    /// `self → to`, or why not.
    pub fn transition(self, to: Self) -> Result<Self, IllegalTransition> {
        if self.can_become(to) {
            Ok(to)
        } else {
            Err(IllegalTransition {
                current: self,
                requested: to,
            })
        }
    }
}

impl fmt::Display for SessionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A transition the lifecycle does not allow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("a {current} session cannot become {requested}")]
pub struct IllegalTransition {
    pub current: SessionState,
    pub requested: SessionState,
}

/// Who moved a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Actor {
    /// Versus itself: matchmaking, allocation, heartbeat timeouts, start-up recovery.
    System,
    /// The game server running the session, through the game-server API.
    GameServer,
    /// A person with an admin account.
    Admin,
}

impl Actor {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::System => "system",
            Self::GameServer => "game_server",
            Self::Admin => "admin",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [Self::System, Self::GameServer, Self::Admin]
            .into_iter()
            .find(|a| a.as_str() == raw)
    }
}

/// One team as the game server reports it: its players and its final rank (1 = best; equal
/// ranks tie).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReportedTeam {
    pub players: Vec<PlayerId>,
    pub rank: u32,
}

/// Why a reported result does not fit the session.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ResultError {
    #[error("the session has {expected} teams; the result reports {got}")]
    TeamCount { expected: usize, got: usize },
    #[error("ranks start at 1")]
    ZeroRank,
    #[error("player {0:?} is not in this session")]
    Stranger(PlayerId),
    #[error("player {0:?} is reported twice")]
    Twice(PlayerId),
    #[error("player {0:?} of the session is missing from the result")]
    Missing(PlayerId),
    #[error("reported team {0} mixes players of different teams of the session")]
    MixedTeam(usize),
}

/// How one player's game went.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    Win,
    Loss,
    Draw,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Win => "win",
            Self::Loss => "loss",
            Self::Draw => "draw",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [Self::Win, Self::Loss, Self::Draw]
            .into_iter()
            .find(|o| o.as_str() == raw)
    }
}

/// A result checked against the roster: the placement of each roster team (in roster order),
/// and each team's outcome — a win for the one team ranked alone at the top, a draw for teams
/// sharing the top rank, a loss for everyone else.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckedResult {
    pub placements: Placements,
    pub outcomes: Vec<Outcome>,
}

/// Checks a reported result against the session's teams (`roster[t]` = team `t`'s players):
/// the same number of teams, every player exactly once, each reported team one of the
/// session's teams (in any order).
pub fn check_result(
    roster: &[Vec<PlayerId>],
    reported: &[ReportedTeam],
) -> Result<CheckedResult, ResultError> {
    if reported.len() != roster.len() {
        return Err(ResultError::TeamCount {
            expected: roster.len(),
            got: reported.len(),
        });
    }
    let team_of = |player: PlayerId| roster.iter().position(|team| team.contains(&player));
    let mut ranks: Vec<Option<u32>> = vec![None; roster.len()];
    let mut seen: Vec<PlayerId> = Vec::new();
    for (i, team) in reported.iter().enumerate() {
        if team.rank == 0 {
            return Err(ResultError::ZeroRank);
        }
        let mut which = None;
        for &player in &team.players {
            if seen.contains(&player) {
                return Err(ResultError::Twice(player));
            }
            seen.push(player);
            let t = team_of(player).ok_or(ResultError::Stranger(player))?;
            if *which.get_or_insert(t) != t {
                return Err(ResultError::MixedTeam(i));
            }
        }
        let Some(t) = which else {
            // An empty reported team: some roster team is then missing a player.
            continue;
        };
        if ranks[t].is_some() {
            return Err(ResultError::MixedTeam(i));
        }
        ranks[t] = Some(team.rank);
    }
    if let Some(&missing) = roster.iter().flatten().find(|p| !seen.contains(p)) {
        return Err(ResultError::Missing(missing));
    }
    let ranks: Vec<u32> = ranks
        .into_iter()
        .map(|r| r.expect("every roster team was reported: every player was"))
        .collect();
    let best = ranks.iter().copied().min().unwrap_or(1);
    let at_best = ranks.iter().filter(|&&r| r == best).count();
    let outcomes = ranks
        .iter()
        .map(|&r| match (r == best, at_best) {
            (true, 1) => Outcome::Win,
            (true, _) => Outcome::Draw,
            (false, _) => Outcome::Loss,
        })
        .collect();
    Ok(CheckedResult {
        placements: Placements::new(ranks),
        outcomes,
    })
}

/// New ratings for every player of a checked result: `before[t][i]` is team `t`'s player `i`.
pub fn rate(
    system: &impl RatingSystem,
    before: &[Vec<PlayerRating>],
    result: &CheckedResult,
) -> Result<Vec<Vec<PlayerRating>>, RatingError> {
    let teams: Vec<&[PlayerRating]> = before.iter().map(Vec::as_slice).collect();
    system.rate(&teams, &result.placements)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rating::RatingConfig;

    const fn p(n: u128) -> PlayerId {
        PlayerId(n)
    }

    fn team(players: &[u128], rank: u32) -> ReportedTeam {
        ReportedTeam {
            players: players.iter().map(|&n| p(n)).collect(),
            rank,
        }
    }

    #[test]
    fn the_lifecycle_allows_exactly_its_arrows() {
        use SessionState::*;
        let allowed = [
            (Allocating, Ready),
            (Allocating, Cancelled),
            (Ready, Active),
            (Ready, Ended),
            (Ready, Cancelled),
            (Ready, Abandoned),
            (Active, Ended),
            (Active, Cancelled),
            (Active, Abandoned),
        ];
        for from in SessionState::ALL {
            for to in SessionState::ALL {
                let legal = allowed.contains(&(from, to));
                assert_eq!(from.can_become(to), legal, "{from} -> {to}");
                assert_eq!(from.transition(to).is_ok(), legal);
            }
            assert_eq!(SessionState::parse(from.as_str()), Some(from));
            if from.is_final() {
                assert!(SessionState::ALL.iter().all(|&to| !from.can_become(to)));
            }
        }
        assert_eq!(
            Ended.transition(Active),
            Err(IllegalTransition {
                current: Ended,
                requested: Active
            })
        );
    }

    #[test]
    fn a_result_must_fit_the_roster() {
        let roster = vec![vec![p(1), p(2)], vec![p(3), p(4)]];
        // In any order of teams and players.
        let ok = check_result(&roster, &[team(&[4, 3], 1), team(&[2, 1], 2)]).unwrap();
        assert_eq!(ok.placements.ranks(), [2, 1]);
        assert_eq!(ok.outcomes, [Outcome::Loss, Outcome::Win]);
        let draw = check_result(&roster, &[team(&[1, 2], 1), team(&[3, 4], 1)]).unwrap();
        assert_eq!(draw.outcomes, [Outcome::Draw, Outcome::Draw]);
        let check = |reported: &[ReportedTeam]| check_result(&roster, reported).unwrap_err();
        assert_eq!(
            check(&[team(&[1, 2, 3, 4], 1)]),
            ResultError::TeamCount {
                expected: 2,
                got: 1
            }
        );
        assert_eq!(
            check(&[team(&[1, 2], 0), team(&[3, 4], 1)]),
            ResultError::ZeroRank
        );
        assert_eq!(
            check(&[team(&[1, 9], 1), team(&[3, 4], 2)]),
            ResultError::Stranger(p(9))
        );
        assert_eq!(
            check(&[team(&[1, 1], 1), team(&[3, 4], 2)]),
            ResultError::Twice(p(1))
        );
        assert_eq!(
            check(&[team(&[1], 1), team(&[3, 4], 2)]),
            ResultError::Missing(p(2))
        );
        assert_eq!(
            check(&[team(&[1, 3], 1), team(&[2, 4], 2)]),
            ResultError::MixedTeam(0)
        );
        assert_eq!(
            check(&[team(&[1, 2], 1), team(&[], 2)]),
            ResultError::Missing(p(3))
        );
    }

    #[test]
    fn free_for_all_places_and_rates_every_player() {
        let roster: Vec<Vec<PlayerId>> = (1..=4).map(|n| vec![p(n)]).collect();
        let result = check_result(
            &roster,
            &[team(&[3], 1), team(&[1], 2), team(&[4], 3), team(&[2], 4)],
        )
        .unwrap();
        assert_eq!(
            result.outcomes,
            [Outcome::Loss, Outcome::Loss, Outcome::Win, Outcome::Loss]
        );
        let system = RatingConfig::weng_lin_scaled(1500.0, 350.0)
            .build()
            .unwrap();
        let before = vec![vec![PlayerRating::new(1500.0, 350.0)]; 4];
        let after = rate(&system, &before, &result).unwrap();
        assert!(after[2][0].rating > 1500.0, "the winner rises");
        assert!(
            after[1][0].rating < after[0][0].rating,
            "last falls furthest"
        );
    }
}
