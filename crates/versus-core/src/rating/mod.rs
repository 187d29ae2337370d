//! Rating systems behind one small trait: Elo, Glicko-2, Weng-Lin (OpenSkill) and TrueSkill,
//! all computed by the `skillratings` crate, one file each (`elo.rs`, `glicko2.rs`,
//! `weng_lin.rs`, `trueskill.rs`).
//!
//! The matchmaker only needs [`RatingSystem::win_probabilities`]; the server needs
//! [`RatingSystem::rate`] (results: 1v1, teams, free-for-all placements, draws) and
//! [`RatingSystem::display_rating`] (a conservative figure for leaderboards).
//!
//! TrueSkill is patented (Microsoft): it is available, never a default. Weng-Lin is the default
//! for team and free-for-all queues, Glicko-2 for 1v1 (see [`RatingConfig::default_for`]).
//!
//! Every system works on one record, [`PlayerRating`] (`rating`, `deviation`, `volatility`); a
//! system ignores the fields it has no use for (Elo has no deviation, only Glicko-2 has a
//! volatility). Scales differ between systems: Elo and Glicko-2 live around 1500, Weng-Lin and
//! TrueSkill around 25 by default, but both of those can be run on any scale through their
//! configuration (`initial_rating`, `initial_deviation`, `beta`), which is what a studio wants
//! when it switches a queue from Elo to Weng-Lin without re-scaling every window.
//!
//! This module owns what every system shares: the trait, the rating record, the configuration
//! that picks a system, placements and errors, [`AnyRatingSystem`] and the helpers the systems
//! have in common. Like the rest of the core, no system reads a clock, does IO or draws
//! randomness: a rating changes only by `rate`, from the ratings and placements it is handed.

mod elo;
mod glicko2;
mod trueskill;
mod weng_lin;

pub use elo::Elo;
pub use glicko2::Glicko2;
pub use trueskill::TrueSkill;
pub use weng_lin::WengLin;

use skillratings::{MultiTeamOutcome, Outcomes};

/// One player's rating in whichever system the queue uses.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PlayerRating {
    /// Skill estimate (Elo rating, Glicko-2 rating, Weng-Lin/TrueSkill mu).
    pub rating: f64,
    /// Uncertainty (Glicko-2 RD, Weng-Lin/TrueSkill sigma). Ignored by Elo.
    pub deviation: f64,
    /// Glicko-2 volatility. Ignored by every other system.
    pub volatility: f64,
}

impl PlayerRating {
    pub const fn new(rating: f64, deviation: f64) -> Self {
        Self {
            rating,
            deviation,
            volatility: 0.06,
        }
    }
}

/// Which algorithm a queue rates with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RatingSystemKind {
    Elo,
    Glicko2,
    WengLin,
    TrueSkill,
}

/// A rating system and its parameters.
#[derive(Clone, Debug, PartialEq)]
pub enum RatingConfig {
    /// Elo with factor `k`; teams are rated through their average rating.
    Elo { k: f64, initial_rating: f64 },
    /// Glicko-2 (Glickman) with system constant `tau`; starts at 1500 / 350 / 0.06.
    Glicko2 { tau: f64 },
    /// Weng-Lin Bradley-Terry (OpenSkill). Defaults: 25, 25/3, beta 25/6.
    WengLin {
        beta: f64,
        initial_rating: f64,
        initial_deviation: f64,
    },
    /// TrueSkill (patented by Microsoft: opt-in only). Defaults: 25, 25/3, beta 25/6,
    /// draw probability 0.1, dynamics 25/300.
    TrueSkill {
        beta: f64,
        initial_rating: f64,
        initial_deviation: f64,
        draw_probability: f64,
        dynamics: f64,
    },
}

impl RatingConfig {
    pub fn elo() -> Self {
        Self::Elo {
            k: 32.0,
            initial_rating: 1000.0,
        }
    }
    pub fn glicko2() -> Self {
        Self::Glicko2 { tau: 0.5 }
    }
    pub fn weng_lin() -> Self {
        Self::WengLin {
            beta: 25.0 / 6.0,
            initial_rating: 25.0,
            initial_deviation: 25.0 / 3.0,
        }
    }
    /// Weng-Lin on the scale of a skill distribution with mean `mean` and spread `sd` (the
    /// OpenSkill defaults are mean 25, sd 25/3, beta = sd/2): lets windows stay in Elo-like units.
    pub fn weng_lin_scaled(mean: f64, sd: f64) -> Self {
        Self::WengLin {
            beta: sd / 2.0,
            initial_rating: mean,
            initial_deviation: sd,
        }
    }
    pub fn trueskill() -> Self {
        Self::TrueSkill {
            beta: 25.0 / 6.0,
            initial_rating: 25.0,
            initial_deviation: 25.0 / 3.0,
            draw_probability: 0.1,
            dynamics: 25.0 / 300.0,
        }
    }
    /// The default system for a queue shape: Glicko-2 for 1v1, Weng-Lin for everything else.
    /// Never TrueSkill.
    pub fn default_for(teams: usize, team_size: usize) -> Self {
        if teams == 2 && team_size == 1 {
            Self::glicko2()
        } else {
            Self::weng_lin()
        }
    }
    pub fn kind(&self) -> RatingSystemKind {
        match self {
            Self::Elo { .. } => RatingSystemKind::Elo,
            Self::Glicko2 { .. } => RatingSystemKind::Glicko2,
            Self::WengLin { .. } => RatingSystemKind::WengLin,
            Self::TrueSkill { .. } => RatingSystemKind::TrueSkill,
        }
    }
    /// Checks that every parameter is finite and in range.
    pub fn validate(&self) -> Result<(), RatingError> {
        self.system().validate()
    }
    /// Builds the system.
    pub fn build(&self) -> Result<AnyRatingSystem, RatingError> {
        let system = self.system();
        system.validate()?;
        Ok(system)
    }
    /// The system these parameters describe, not yet checked: each system checks its own.
    fn system(&self) -> AnyRatingSystem {
        match *self {
            Self::Elo { k, initial_rating } => AnyRatingSystem::Elo(Elo { k, initial_rating }),
            Self::Glicko2 { tau } => AnyRatingSystem::Glicko2(Glicko2 { tau }),
            Self::WengLin {
                beta,
                initial_rating,
                initial_deviation,
            } => AnyRatingSystem::WengLin(WengLin {
                beta,
                initial_rating,
                initial_deviation,
            }),
            Self::TrueSkill {
                beta,
                initial_rating,
                initial_deviation,
                draw_probability,
                dynamics,
            } => AnyRatingSystem::TrueSkill(TrueSkill {
                beta,
                initial_rating,
                initial_deviation,
                draw_probability,
                dynamics,
            }),
        }
    }
}

/// Final placement of each team, in the order the teams were given: lower is better, equal
/// numbers are ties. A 1v1 win for the first team is `[1, 2]`; a draw is `[1, 1]`; a
/// free-for-all of four is e.g. `[2, 1, 4, 3]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placements(Vec<u32>);

impl Placements {
    pub fn new(ranks: Vec<u32>) -> Self {
        Self(ranks)
    }
    /// Team `winner` of `teams` won, every other team shares second place.
    pub fn winner(teams: usize, winner: usize) -> Self {
        Self(
            (0..teams)
                .map(|t| if t == winner { 1 } else { 2 })
                .collect(),
        )
    }
    /// Everybody tied.
    pub fn draw(teams: usize) -> Self {
        Self(vec![1; teams])
    }
    pub fn ranks(&self) -> &[u32] {
        &self.0
    }
    /// Outcome of team `a` against team `b` from `a`'s side.
    fn versus(&self, a: usize, b: usize) -> Outcomes {
        match self.0[a].cmp(&self.0[b]) {
            std::cmp::Ordering::Less => Outcomes::WIN,
            std::cmp::Ordering::Greater => Outcomes::LOSS,
            std::cmp::Ordering::Equal => Outcomes::DRAW,
        }
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RatingError {
    #[error("a result needs at least two teams, got {0}")]
    TooFewTeams(usize),
    #[error("every team needs at least one player")]
    EmptyTeam,
    #[error("{placements} placements given for {teams} teams")]
    PlacementCount { placements: usize, teams: usize },
    #[error("rating values must be finite numbers (deviation > 0 where used)")]
    NonFinite,
    #[error("bad rating configuration: {0}")]
    BadConfig(&'static str),
    #[error("rating system refused the result: {0}")]
    Refused(String),
}

/// The one trait every rating system implements.
pub trait RatingSystem {
    fn kind(&self) -> RatingSystemKind;
    /// The rating a new player starts with.
    fn initial_rating(&self) -> PlayerRating;
    /// Probability that each team wins (sums to 1). Used for the predicted outcome and the
    /// quality of a match.
    fn win_probabilities(&self, teams: &[&[PlayerRating]]) -> Vec<f64>;
    /// New ratings after a result; the output has the shape of `teams`.
    fn rate(
        &self,
        teams: &[&[PlayerRating]],
        placements: &Placements,
    ) -> Result<Vec<Vec<PlayerRating>>, RatingError>;
    /// A conservative rating to show: one that the player's true skill is very likely above
    /// (`rating - 2·RD` for Glicko-2, `mu - 3·sigma` for Weng-Lin/TrueSkill, the rating for Elo).
    fn display_rating(&self, rating: &PlayerRating) -> f64;
}

/// What Weng-Lin and TrueSkill ask of their scale: a positive β, and a finite initial rating
/// and deviation with the deviation positive; `why` names the key that fails (β, start).
fn check_scale(
    beta: f64,
    initial_rating: f64,
    initial_deviation: f64,
    why: [&'static str; 2],
) -> Result<(), RatingError> {
    if !(beta.is_finite() && beta > 0.0) {
        return Err(RatingError::BadConfig(why[0]));
    }
    if !(initial_rating.is_finite() && initial_deviation.is_finite() && initial_deviation > 0.0) {
        return Err(RatingError::BadConfig(why[1]));
    }
    Ok(())
}

/// A player as the `skillratings` systems with a mean and an uncertainty (Weng-Lin, TrueSkill)
/// see one.
fn to_mu_sigma<R: From<(f64, f64)>>(r: &PlayerRating) -> R {
    R::from((r.rating, r.deviation))
}

/// Back from such a system: its mean and uncertainty, and the volatility it does not rate.
fn from_mu_sigma(r: impl skillratings::Rating, old: &PlayerRating) -> PlayerRating {
    PlayerRating {
        rating: r.rating(),
        deviation: r
            .uncertainty()
            .expect("Weng-Lin and TrueSkill ratings have an uncertainty"),
        volatility: old.volatility,
    }
}

/// The checks every system's `rate` starts with.
fn check_result(teams: &[&[PlayerRating]], placements: &Placements) -> Result<(), RatingError> {
    if teams.len() < 2 {
        return Err(RatingError::TooFewTeams(teams.len()));
    }
    if teams.iter().any(|t| t.is_empty()) {
        return Err(RatingError::EmptyTeam);
    }
    if placements.0.len() != teams.len() {
        return Err(RatingError::PlacementCount {
            placements: placements.0.len(),
            teams: teams.len(),
        });
    }
    let finite = teams
        .iter()
        .flat_map(|t| t.iter())
        .all(|p| p.rating.is_finite() && p.deviation.is_finite() && p.volatility.is_finite());
    if !finite {
        return Err(RatingError::NonFinite);
    }
    Ok(())
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    if n == 0 { 0.0 } else { sum / n as f64 }
}

/// Bradley-Terry split of win probability among several teams given logistic strengths.
fn bradley_terry(log_strengths: &[f64]) -> Vec<f64> {
    let max = log_strengths
        .iter()
        .cloned()
        .fold(f64::NEG_INFINITY, f64::max);
    let exps: Vec<f64> = log_strengths.iter().map(|s| (s - max).exp()).collect();
    let total: f64 = exps.iter().sum();
    exps.iter().map(|e| e / total).collect()
}

/// `rate` for a system `skillratings` rates team by team (Weng-Lin, TrueSkill): each player
/// converted with `to` (given its team's index), two teams handed to `two`, more to `multi` with
/// each team's placement, and the new ratings converted back with `from`, in the shape of
/// `teams`.
fn rate_teams<R>(
    teams: &[&[PlayerRating]],
    placements: &Placements,
    to: impl Fn(usize, &PlayerRating) -> R,
    two: impl FnOnce(&[R], &[R], &Outcomes) -> (Vec<R>, Vec<R>),
    multi: impl FnOnce(&[(&[R], MultiTeamOutcome)]) -> Result<Vec<Vec<R>>, RatingError>,
    from: impl Fn(usize, R, &PlayerRating) -> PlayerRating,
) -> Result<Vec<Vec<PlayerRating>>, RatingError> {
    let converted: Vec<Vec<R>> = (teams.iter().enumerate())
        .map(|(t, team)| team.iter().map(|p| to(t, p)).collect())
        .collect();
    let new: Vec<Vec<R>> = if converted.len() == 2 {
        let (a, b) = two(&converted[0], &converted[1], &placements.versus(0, 1));
        vec![a, b]
    } else {
        let with_ranks: Vec<(&[R], MultiTeamOutcome)> = converted
            .iter()
            .zip(placements.ranks())
            .map(|(t, &r)| (t.as_slice(), MultiTeamOutcome::new(r as usize)))
            .collect();
        multi(&with_ranks)?
    };
    Ok((new.into_iter().zip(teams).enumerate())
        .map(|(t, (n, old))| {
            n.into_iter()
                .zip(old.iter())
                .map(|(r, o)| from(t, r, o))
                .collect()
        })
        .collect())
}

/// Any of the four systems, chosen by configuration at run time.
#[derive(Clone, Debug, PartialEq)]
pub enum AnyRatingSystem {
    Elo(Elo),
    Glicko2(Glicko2),
    WengLin(WengLin),
    TrueSkill(TrueSkill),
}

impl AnyRatingSystem {
    /// Whether the system's parameters are in range (see [`RatingConfig::validate`]).
    fn validate(&self) -> Result<(), RatingError> {
        match self {
            Self::Elo(s) => s.validate(),
            Self::Glicko2(s) => s.validate(),
            Self::WengLin(s) => s.validate(),
            Self::TrueSkill(s) => s.validate(),
        }
    }

    fn inner(&self) -> &dyn RatingSystem {
        match self {
            Self::Elo(s) => s,
            Self::Glicko2(s) => s,
            Self::WengLin(s) => s,
            Self::TrueSkill(s) => s,
        }
    }
}

impl AnyRatingSystem {
    /// Probability that `a` beats `b` one on one: [`Self::two_team_win_probability`] of two solo
    /// teams, inlined into the 1v1 tick, which predicts every match it forms.
    #[inline]
    pub fn pair_win_probability(&self, a: &PlayerRating, b: &PlayerRating) -> f64 {
        match self {
            Self::Glicko2(_) => glicko2::expectation(a, b),
            _ => self.two_team_win_probability(std::slice::from_ref(a), std::slice::from_ref(b)),
        }
    }

    /// Probability that team `a` beats team `b`: the same number as
    /// `win_probabilities(&[a, b])[0]`, computed without heap allocation for Elo, Glicko-2 and
    /// Weng-Lin — the matchmaker calls this once per formed match.
    pub fn two_team_win_probability(&self, a: &[PlayerRating], b: &[PlayerRating]) -> f64 {
        match self {
            Self::Elo(_) => Elo::two_team_expectation(a, b),
            Self::Glicko2(_) => Glicko2::two_team_expectation(a, b),
            Self::WengLin(w) => w.two_team_expectation(a, b),
            _ => self.win_probabilities(&[a, b])[0],
        }
    }
}

impl RatingSystem for AnyRatingSystem {
    fn kind(&self) -> RatingSystemKind {
        self.inner().kind()
    }
    fn initial_rating(&self) -> PlayerRating {
        self.inner().initial_rating()
    }
    fn win_probabilities(&self, teams: &[&[PlayerRating]]) -> Vec<f64> {
        self.inner().win_probabilities(teams)
    }
    fn rate(
        &self,
        teams: &[&[PlayerRating]],
        placements: &Placements,
    ) -> Result<Vec<Vec<PlayerRating>>, RatingError> {
        self.inner().rate(teams, placements)
    }
    fn display_rating(&self, rating: &PlayerRating) -> f64 {
        self.inner().display_rating(rating)
    }
}

/// The matchmaker's quality score: fairness of the predicted outcome, in [0, 1].
/// Two teams: `1 − 2·|P(A) − 0.5|`; more: `1 − (max P − min P)`, which is the same for two.
pub fn fairness_quality(win_probabilities: &[f64]) -> f64 {
    if win_probabilities.len() < 2 {
        return 1.0;
    }
    let max = win_probabilities
        .iter()
        .cloned()
        .fold(f64::NEG_INFINITY, f64::max);
    let min = win_probabilities
        .iter()
        .cloned()
        .fold(f64::INFINITY, f64::min);
    (1.0 - (max - min)).clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn team(base: f64, step: f64, sd: f64, n: usize) -> Vec<PlayerRating> {
        (0..n)
            .map(|i| PlayerRating::new(base + step * i as f64, sd * (1.0 + 0.1 * i as f64)))
            .collect()
    }

    /// predicts and rates with finite numbers.
    /// Ratings far above the scale's β (five players at 1500 where β is 4): every system still
    /// predicts and rates with finite numbers.
    #[test]
    fn extreme_scales_stay_finite() {
        let configs = [
            RatingConfig::elo(),
            RatingConfig::glicko2(),
            RatingConfig::weng_lin_scaled(1500.0, 8.3),
            RatingConfig::WengLin {
                beta: 0.5,
                initial_rating: 1e5,
                initial_deviation: 1.0,
            },
            RatingConfig::trueskill(),
        ];
        for c in configs {
            let s = c.build().unwrap();
            let r = s.initial_rating().rating;
            let d = s.initial_rating().deviation / 6.0;
            let teams = [
                team(r, 0.5, d, 5),
                team(r + 3.0, -0.5, d, 5),
                team(r - 2.0, 0.2, d, 5),
            ];
            for k in [2, 3] {
                let refs: Vec<&[PlayerRating]> = teams[..k].iter().map(Vec::as_slice).collect();
                let p = s.win_probabilities(&refs);
                assert!(p.iter().all(|x| x.is_finite()), "{c:?}: {p:?}");
                assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-9, "{c:?}: {p:?}");
                if k == 2 {
                    let fast = s.two_team_win_probability(refs[0], refs[1]);
                    assert!((fast - p[0]).abs() < 1e-9, "{c:?}: {fast} vs {p:?}");
                }
                let rated = s.rate(&refs, &Placements::winner(k, 0)).unwrap();
                for (new, old) in rated.iter().flatten().zip(refs.iter().copied().flatten()) {
                    assert!(new.rating.is_finite() && new.deviation.is_finite(), "{c:?}");
                    // The winners gain, and nobody moves by more than the whole scale.
                    assert!(
                        (new.rating - old.rating).abs() < r.abs().max(1000.0),
                        "{c:?}"
                    );
                }
                let winners_gain = rated[0]
                    .iter()
                    .zip(refs[0])
                    .all(|(n, o)| n.rating >= o.rating);
                assert!(winners_gain, "{c:?}: {:?}", rated[0]);
            }
        }
    }

    #[test]
    fn two_team_fast_path_equals_the_general_one() {
        let a = [
            PlayerRating::new(1510.0, 80.0),
            PlayerRating::new(1390.0, 40.0),
        ];
        let b = [
            PlayerRating::new(1600.0, 120.0),
            PlayerRating::new(1350.0, 60.0),
        ];
        for c in [
            RatingConfig::elo(),
            RatingConfig::glicko2(),
            RatingConfig::weng_lin_scaled(1500.0, 300.0),
            RatingConfig::weng_lin(),
            RatingConfig::trueskill(),
        ] {
            let s = c.build().unwrap();
            let general = s.win_probabilities(&[&a, &b])[0];
            let fast = s.two_team_win_probability(&a, &b);
            assert!((general - fast).abs() < 1e-12, "{c:?}: {general} vs {fast}");
            // Five a side, lopsided and level, on the system's own scale.
            let scale = |r: f64| r / 1500.0 * s.initial_rating().rating;
            let five = |base: f64, step: f64| -> Vec<PlayerRating> {
                (0..5)
                    .map(|i| {
                        let r = scale(base + step * i as f64);
                        PlayerRating::new(r, scale(40.0 + 15.0 * i as f64))
                    })
                    .collect()
            };
            for (x, y) in [
                (five(1500.0, 20.0), five(1480.0, 25.0)),
                (five(2100.0, 50.0), five(900.0, 10.0)),
            ] {
                let general = s.win_probabilities(&[&x, &y])[0];
                let fast = s.two_team_win_probability(&x, &y);
                assert!((general - fast).abs() < 1e-12, "{c:?}: {general} vs {fast}");
            }
            // 1v1, where Glicko-2 takes its own path.
            for (x, y) in [(a[0], b[0]), (a[1], b[1]), (b[1], a[0])] {
                let general = s.win_probabilities(&[&[x], &[y]])[0];
                let fast = s.two_team_win_probability(&[x], &[y]);
                assert!((general - fast).abs() < 1e-12, "{c:?}: {general} vs {fast}");
                let pair = s.pair_win_probability(&x, &y);
                assert!((general - pair).abs() < 1e-12, "{c:?}: {general} vs {pair}");
            }
        }
    }
}
