//! Rating systems behind one small trait: Elo, Glicko-2, Weng-Lin (OpenSkill) and TrueSkill,
//! all computed by the `skillratings` crate.
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

use skillratings::{
    MultiTeamOutcome, Outcomes,
    elo::{EloConfig, EloRating},
    glicko2::{Glicko2Config, Glicko2Rating},
    trueskill::{TrueSkillConfig, TrueSkillRating},
    weng_lin::{WengLinConfig, WengLinRating},
};

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
        let bad = |what: &'static str| Err(RatingError::BadConfig(what));
        match *self {
            Self::Elo { k, initial_rating } => {
                if !(k.is_finite() && k > 0.0) {
                    return bad("elo k must be a positive number");
                }
                if !initial_rating.is_finite() {
                    return bad("elo initial_rating must be finite");
                }
            }
            Self::Glicko2 { tau } => {
                if !(tau.is_finite() && tau > 0.0) {
                    return bad("glicko2 tau must be a positive number");
                }
            }
            Self::WengLin {
                beta,
                initial_rating,
                initial_deviation,
            } => {
                if !(beta.is_finite() && beta > 0.0) {
                    return bad("weng_lin beta must be a positive number");
                }
                if !(initial_rating.is_finite()
                    && initial_deviation.is_finite()
                    && initial_deviation > 0.0)
                {
                    return bad("weng_lin initial rating/deviation must be finite, deviation > 0");
                }
            }
            Self::TrueSkill {
                beta,
                initial_rating,
                initial_deviation,
                draw_probability,
                dynamics,
            } => {
                if !(beta.is_finite() && beta > 0.0) {
                    return bad("trueskill beta must be a positive number");
                }
                if !(initial_rating.is_finite()
                    && initial_deviation.is_finite()
                    && initial_deviation > 0.0)
                {
                    return bad("trueskill initial rating/deviation must be finite, deviation > 0");
                }
                if !(0.0..1.0).contains(&draw_probability) {
                    return bad("trueskill draw_probability must be in [0, 1)");
                }
                if !(dynamics.is_finite() && dynamics >= 0.0) {
                    return bad("trueskill dynamics must be >= 0");
                }
            }
        }
        Ok(())
    }
    /// Builds the system.
    pub fn build(&self) -> Result<AnyRatingSystem, RatingError> {
        self.validate()?;
        Ok(match *self {
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
        })
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

/// Elo. Teams are rated as one player with the team's average rating; every member moves by
/// the team's change. Several teams: each team scores against every other team (sum of deltas).
#[derive(Clone, Debug, PartialEq)]
pub struct Elo {
    pub k: f64,
    pub initial_rating: f64,
}

impl Elo {
    /// One player over a rating period (simultaneous update, as FIDE does).
    pub fn rate_period(&self, player: f64, results: &[(f64, Outcomes)]) -> f64 {
        let rs: Vec<(EloRating, Outcomes)> = results
            .iter()
            .map(|&(r, o)| (EloRating { rating: r }, o))
            .collect();
        // skillratings updates sequentially inside a period; FIDE sums expected scores at the
        // start rating, so compute the period change from the start rating.
        let delta: f64 = rs
            .iter()
            .map(|(opp, o)| {
                let (e, _) = skillratings::elo::expected_score(&EloRating { rating: player }, opp);
                o.to_chess_points() - e
            })
            .sum();
        self.k.mul_add(delta, player)
    }
}

impl RatingSystem for Elo {
    fn kind(&self) -> RatingSystemKind {
        RatingSystemKind::Elo
    }
    fn initial_rating(&self) -> PlayerRating {
        PlayerRating::new(self.initial_rating, 0.0)
    }
    fn win_probabilities(&self, teams: &[&[PlayerRating]]) -> Vec<f64> {
        let strengths: Vec<f64> = teams
            .iter()
            .map(|t| mean(t.iter().map(|p| p.rating)) * std::f64::consts::LN_10 / 400.0)
            .collect();
        bradley_terry(&strengths)
    }
    fn rate(
        &self,
        teams: &[&[PlayerRating]],
        placements: &Placements,
    ) -> Result<Vec<Vec<PlayerRating>>, RatingError> {
        check_result(teams, placements)?;
        let config = EloConfig { k: self.k };
        let avgs: Vec<f64> = teams
            .iter()
            .map(|t| mean(t.iter().map(|p| p.rating)))
            .collect();
        let deltas: Vec<f64> = (0..teams.len())
            .map(|i| {
                (0..teams.len())
                    .filter(|&j| j != i)
                    .map(|j| {
                        let (new, _) = skillratings::elo::elo(
                            &EloRating { rating: avgs[i] },
                            &EloRating { rating: avgs[j] },
                            &placements.versus(i, j),
                            &config,
                        );
                        new.rating - avgs[i]
                    })
                    .sum()
            })
            .collect();
        Ok(teams
            .iter()
            .zip(deltas)
            .map(|(t, d)| {
                t.iter()
                    .map(|p| PlayerRating {
                        rating: p.rating + d,
                        ..*p
                    })
                    .collect()
            })
            .collect())
    }
    fn display_rating(&self, rating: &PlayerRating) -> f64 {
        rating.rating
    }
}

/// Glicko-2. A match is one rating period for each player; in team and free-for-all matches a
/// player plays one game against each other team, represented by a composite player (average
/// rating, root-mean-square deviation, average volatility).
#[derive(Clone, Debug, PartialEq)]
pub struct Glicko2 {
    pub tau: f64,
}

impl Glicko2 {
    fn config(&self) -> Glicko2Config {
        Glicko2Config {
            tau: self.tau,
            ..Glicko2Config::default()
        }
    }
    /// One player over a rating period: Glickman's algorithm, steps 1 to 8.
    pub fn rate_period(
        &self,
        player: &PlayerRating,
        results: &[(PlayerRating, Outcomes)],
    ) -> PlayerRating {
        let rs: Vec<(Glicko2Rating, Outcomes)> =
            results.iter().map(|(r, o)| (to_g2(r), *o)).collect();
        from_g2(skillratings::glicko2::glicko2_rating_period(
            &to_g2(player),
            &rs,
            &self.config(),
        ))
    }
    fn composite(team: &[PlayerRating]) -> PlayerRating {
        PlayerRating {
            rating: mean(team.iter().map(|p| p.rating)),
            deviation: mean(team.iter().map(|p| p.deviation * p.deviation)).sqrt(),
            volatility: mean(team.iter().map(|p| p.volatility)),
        }
    }
}

fn to_g2(r: &PlayerRating) -> Glicko2Rating {
    Glicko2Rating {
        rating: r.rating,
        deviation: r.deviation,
        volatility: r.volatility,
    }
}
fn from_g2(r: Glicko2Rating) -> PlayerRating {
    PlayerRating {
        rating: r.rating,
        deviation: r.deviation,
        volatility: r.volatility,
    }
}

impl RatingSystem for Glicko2 {
    fn kind(&self) -> RatingSystemKind {
        RatingSystemKind::Glicko2
    }
    fn initial_rating(&self) -> PlayerRating {
        PlayerRating {
            rating: 1500.0,
            deviation: 350.0,
            volatility: 0.06,
        }
    }
    fn win_probabilities(&self, teams: &[&[PlayerRating]]) -> Vec<f64> {
        let composites: Vec<PlayerRating> = teams.iter().map(|t| Self::composite(t)).collect();
        if composites.len() == 2 {
            let (a, b) = skillratings::glicko2::expected_score(
                &to_g2(&composites[0]),
                &to_g2(&composites[1]),
            );
            return vec![a, b];
        }
        // Several teams: Bradley-Terry on the Glicko-2 scale, damped by g(phi) of the pooled
        // deviation, which reduces to Glicko-2's expected score for two teams of equal RD.
        let phi2 = mean(composites.iter().map(|c| (c.deviation / 173.7178).powi(2))) * 2.0;
        let g = (1.0 + 3.0 * phi2 / (std::f64::consts::PI.powi(2)))
            .sqrt()
            .recip();
        let strengths: Vec<f64> = composites
            .iter()
            .map(|c| g * (c.rating - 1500.0) / 173.7178)
            .collect();
        bradley_terry(&strengths)
    }
    fn rate(
        &self,
        teams: &[&[PlayerRating]],
        placements: &Placements,
    ) -> Result<Vec<Vec<PlayerRating>>, RatingError> {
        check_result(teams, placements)?;
        if teams
            .iter()
            .flat_map(|t| t.iter())
            .any(|p| p.deviation <= 0.0)
        {
            return Err(RatingError::NonFinite);
        }
        let config = self.config();
        if teams.len() == 2 && teams[0].len() == 1 && teams[1].len() == 1 {
            let (a, b) = skillratings::glicko2::glicko2(
                &to_g2(&teams[0][0]),
                &to_g2(&teams[1][0]),
                &placements.versus(0, 1),
                &config,
            );
            return Ok(vec![vec![from_g2(a)], vec![from_g2(b)]]);
        }
        let composites: Vec<PlayerRating> = teams.iter().map(|t| Self::composite(t)).collect();
        Ok(teams
            .iter()
            .enumerate()
            .map(|(i, team)| {
                let results: Vec<(PlayerRating, Outcomes)> = (0..teams.len())
                    .filter(|&j| j != i)
                    .map(|j| (composites[j], placements.versus(i, j)))
                    .collect();
                team.iter().map(|p| self.rate_period(p, &results)).collect()
            })
            .collect())
    }
    fn display_rating(&self, rating: &PlayerRating) -> f64 {
        rating.rating - 2.0 * rating.deviation
    }
}

/// Weng-Lin (OpenSkill), Bradley-Terry full-pairing model. Native support for teams and
/// free-for-all placements.
#[derive(Clone, Debug, PartialEq)]
pub struct WengLin {
    pub beta: f64,
    pub initial_rating: f64,
    pub initial_deviation: f64,
}

impl WengLin {
    /// Bradley-Terry's c = √(Σσ² + 2β²), from the sum of every player's variance.
    fn spread(&self, variance: f64) -> f64 {
        (variance + 2.0 * self.beta * self.beta).sqrt()
    }

    /// `win_probabilities(&[a, b])[0]` written as one logistic over the team sums: one `exp`,
    /// no allocation, and no software fused multiply-add (the baseline x86-64 target has no FMA
    /// instruction) — a 5v5 tick predicts every match it forms.
    fn two_team_expectation(&self, a: &[PlayerRating], b: &[PlayerRating]) -> f64 {
        let (mut diff, mut var) = (0.0, 0.0);
        for p in a {
            diff += p.rating;
            var += p.deviation * p.deviation;
        }
        for p in b {
            diff -= p.rating;
            var += p.deviation * p.deviation;
        }
        (1.0 + (-diff / self.spread(var)).exp()).recip()
    }

    fn config(&self) -> WengLinConfig {
        WengLinConfig {
            beta: self.beta,
            // Scaled so a rescaled system behaves like the default one.
            uncertainty_tolerance: 0.000_001 * (self.beta / (25.0 / 6.0)).powi(2),
        }
    }
}

fn to_wl(r: &PlayerRating) -> WengLinRating {
    WengLinRating {
        rating: r.rating,
        uncertainty: r.deviation,
    }
}
fn from_wl(r: WengLinRating, old: &PlayerRating) -> PlayerRating {
    PlayerRating {
        rating: r.rating,
        deviation: r.uncertainty,
        volatility: old.volatility,
    }
}

impl RatingSystem for WengLin {
    fn kind(&self) -> RatingSystemKind {
        RatingSystemKind::WengLin
    }
    fn initial_rating(&self) -> PlayerRating {
        PlayerRating::new(self.initial_rating, self.initial_deviation)
    }
    fn win_probabilities(&self, teams: &[&[PlayerRating]]) -> Vec<f64> {
        // Bradley-Terry over team sums with c = √(Σσ² + 2β²), as skillratings'
        // `expected_score_multi_team` (and `_two_teams`) compute it, but with the largest
        // exponent taken out first: their e^(μ/c) overflows to ∞ (∞/∞ = NaN) once team sums
        // are ~700 c, e.g. five players rated 1500 on a scale whose β is 4.
        let sums: Vec<f64> = teams
            .iter()
            .map(|t| t.iter().map(|p| p.rating).sum())
            .collect();
        let var: f64 = teams
            .iter()
            .flat_map(|t| t.iter())
            .map(|p| p.deviation * p.deviation)
            .sum();
        let c = self.spread(var);
        let top = sums.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let e: Vec<f64> = sums.iter().map(|s| ((s - top) / c).exp()).collect();
        let total: f64 = e.iter().sum();
        e.into_iter().map(|x| x / total).collect()
    }
    fn rate(
        &self,
        teams: &[&[PlayerRating]],
        placements: &Placements,
    ) -> Result<Vec<Vec<PlayerRating>>, RatingError> {
        check_result(teams, placements)?;
        let config = self.config();
        // The update depends on differences of team sums only: moving each team's sum by the
        // same amount (the mean team sum, spread over its players) leaves it unchanged and
        // keeps skillratings' e^(μ/c) far from overflow (see `win_probabilities`).
        let sums: Vec<f64> = teams
            .iter()
            .map(|t| t.iter().map(|p| p.rating).sum())
            .collect();
        let mean_sum = sums.iter().sum::<f64>() / sums.len().max(1) as f64;
        let shift: Vec<f64> = teams
            .iter()
            .map(|t| {
                if t.is_empty() {
                    0.0
                } else {
                    mean_sum / t.len() as f64
                }
            })
            .collect();
        let converted: Vec<Vec<WengLinRating>> = teams
            .iter()
            .zip(&shift)
            .map(|(t, &k)| {
                t.iter()
                    .map(|p| WengLinRating {
                        rating: p.rating - k,
                        ..to_wl(p)
                    })
                    .collect()
            })
            .collect();
        let new: Vec<Vec<WengLinRating>> = if converted.len() == 2 {
            let (a, b) = skillratings::weng_lin::weng_lin_two_teams(
                &converted[0],
                &converted[1],
                &placements.versus(0, 1),
                &config,
            );
            vec![a, b]
        } else {
            let with_ranks: Vec<(&[WengLinRating], MultiTeamOutcome)> = converted
                .iter()
                .zip(placements.ranks())
                .map(|(t, &r)| (t.as_slice(), MultiTeamOutcome::new(r as usize)))
                .collect();
            skillratings::weng_lin::weng_lin_multi_team(&with_ranks, &config)
        };
        Ok(new
            .into_iter()
            .zip(teams)
            .zip(&shift)
            .map(|((n, old), &k)| {
                n.into_iter()
                    .zip(old.iter())
                    .map(|(r, o)| {
                        from_wl(
                            WengLinRating {
                                rating: r.rating + k,
                                ..r
                            },
                            o,
                        )
                    })
                    .collect()
            })
            .collect())
    }
    fn display_rating(&self, rating: &PlayerRating) -> f64 {
        rating.rating - 3.0 * rating.deviation
    }
}

/// TrueSkill (Herbrich, Minka, Graepel). Patented by Microsoft: opt-in only.
#[derive(Clone, Debug, PartialEq)]
pub struct TrueSkill {
    pub beta: f64,
    pub initial_rating: f64,
    pub initial_deviation: f64,
    pub draw_probability: f64,
    pub dynamics: f64,
}

impl TrueSkill {
    fn config(&self) -> TrueSkillConfig {
        TrueSkillConfig {
            draw_probability: self.draw_probability,
            beta: self.beta,
            dynamics_factor: self.dynamics,
        }
    }
    /// TrueSkill's own "match quality" (the draw probability relative to a perfect match):
    /// 0.447 for two new players. Not the matchmaker's quality score.
    pub fn draw_quality(&self, teams: &[&[PlayerRating]]) -> f64 {
        let converted: Vec<Vec<TrueSkillRating>> = teams
            .iter()
            .map(|t| t.iter().map(to_ts).collect())
            .collect();
        if converted.len() == 2 {
            return skillratings::trueskill::match_quality_two_teams(
                &converted[0],
                &converted[1],
                &self.config(),
            );
        }
        let refs: Vec<&[TrueSkillRating]> = converted.iter().map(Vec::as_slice).collect();
        skillratings::trueskill::match_quality_multi_team(&refs, &self.config(), None)
            .unwrap_or(0.0)
    }
}

fn to_ts(r: &PlayerRating) -> TrueSkillRating {
    TrueSkillRating {
        rating: r.rating,
        uncertainty: r.deviation,
    }
}
fn from_ts(r: TrueSkillRating, old: &PlayerRating) -> PlayerRating {
    PlayerRating {
        rating: r.rating,
        deviation: r.uncertainty,
        volatility: old.volatility,
    }
}

impl RatingSystem for TrueSkill {
    fn kind(&self) -> RatingSystemKind {
        RatingSystemKind::TrueSkill
    }
    fn initial_rating(&self) -> PlayerRating {
        PlayerRating::new(self.initial_rating, self.initial_deviation)
    }
    fn win_probabilities(&self, teams: &[&[PlayerRating]]) -> Vec<f64> {
        let config = self.config();
        let converted: Vec<Vec<TrueSkillRating>> = teams
            .iter()
            .map(|t| t.iter().map(to_ts).collect())
            .collect();
        if converted.len() == 2 {
            let (a, b) = skillratings::trueskill::expected_score_two_teams(
                &converted[0],
                &converted[1],
                &config,
            );
            return vec![a, b];
        }
        let refs: Vec<&[TrueSkillRating]> = converted.iter().map(Vec::as_slice).collect();
        skillratings::trueskill::expected_score_multi_team(&refs, &config)
    }
    fn rate(
        &self,
        teams: &[&[PlayerRating]],
        placements: &Placements,
    ) -> Result<Vec<Vec<PlayerRating>>, RatingError> {
        check_result(teams, placements)?;
        let config = self.config();
        let converted: Vec<Vec<TrueSkillRating>> = teams
            .iter()
            .map(|t| t.iter().map(to_ts).collect())
            .collect();
        let new: Vec<Vec<TrueSkillRating>> = if converted.len() == 2 {
            let (a, b) = skillratings::trueskill::trueskill_two_teams(
                &converted[0],
                &converted[1],
                &placements.versus(0, 1),
                &config,
            );
            vec![a, b]
        } else {
            let with_ranks: Vec<(&[TrueSkillRating], MultiTeamOutcome)> = converted
                .iter()
                .zip(placements.ranks())
                .map(|(t, &r)| (t.as_slice(), MultiTeamOutcome::new(r as usize)))
                .collect();
            skillratings::trueskill::trueskill_multi_team(&with_ranks, &config, None)
                .map_err(|e| RatingError::Refused(format!("{e:?}")))?
        };
        Ok(new
            .into_iter()
            .zip(teams)
            .map(|(n, old)| {
                n.into_iter()
                    .zip(old.iter())
                    .map(|(r, o)| from_ts(r, o))
                    .collect()
            })
            .collect())
    }
    fn display_rating(&self, rating: &PlayerRating) -> f64 {
        rating.rating - 3.0 * rating.deviation
    }
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
            Self::Glicko2(_) => glicko2_expectation(a, b),
            _ => self.two_team_win_probability(std::slice::from_ref(a), std::slice::from_ref(b)),
        }
    }

    /// Probability that team `a` beats team `b`: the same number as
    /// `win_probabilities(&[a, b])[0]`, computed without heap allocation for Elo, Glicko-2 and
    /// Weng-Lin — the matchmaker calls this once per formed match.
    pub fn two_team_win_probability(&self, a: &[PlayerRating], b: &[PlayerRating]) -> f64 {
        match self {
            Self::Elo(_) => {
                let ra = EloRating {
                    rating: mean(a.iter().map(|p| p.rating)),
                };
                let rb = EloRating {
                    rating: mean(b.iter().map(|p| p.rating)),
                };
                skillratings::elo::expected_score(&ra, &rb).0
            }
            Self::Glicko2(_) if a.len() == 1 && b.len() == 1 => glicko2_expectation(&a[0], &b[0]),
            Self::Glicko2(_) => {
                let (ca, cb) = (Glicko2::composite(a), Glicko2::composite(b));
                skillratings::glicko2::expected_score(&to_g2(&ca), &to_g2(&cb)).0
            }
            Self::WengLin(w) => w.two_team_expectation(a, b),
            _ => self.win_probabilities(&[a, b])[0],
        }
    }
}

/// Glickman's E(μ, μj, g(√(φ² + φj²))) for one player against another, as skillratings
/// computes it, with a plain square root for its `hypot` (no overflow at these magnitudes) and
/// the scale's divisions folded into constants: several times cheaper, within 1e-15.
#[inline]
fn glicko2_expectation(x: &PlayerRating, y: &PlayerRating) -> f64 {
    const SCALE: f64 = 173.7178;
    // g(φ) = 1 / √(1 + 3φ²/π²), with φ² = (σx² + σy²) / SCALE².
    const G: f64 = 3.0 / (std::f64::consts::PI * std::f64::consts::PI * SCALE * SCALE);
    let phi2 = x.deviation * x.deviation + y.deviation * y.deviation;
    let g = (1.0 + G * phi2).sqrt().recip();
    (1.0 + (-g * (x.rating - y.rating) * SCALE.recip()).exp()).recip()
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

    fn team(base: f64, step: f64, sd: f64, n: usize) -> Vec<PlayerRating> {
        (0..n)
            .map(|i| PlayerRating::new(base + step * i as f64, sd * (1.0 + 0.1 * i as f64)))
            .collect()
    }

    /// Weng-Lin's expectation is computed here (overflow-safe); it must stay skillratings'.
    #[test]
    fn weng_lin_expectation_is_skillratings_one() {
        for (beta, scale) in [(25.0 / 6.0, 25.0 / 1500.0), (150.0, 1.0)] {
            let w = WengLin {
                beta,
                initial_rating: 1500.0 * scale,
                initial_deviation: 300.0 * scale,
            };
            let teams = [
                team(1500.0 * scale, 20.0 * scale, 40.0 * scale, 5),
                team(1450.0 * scale, 35.0 * scale, 60.0 * scale, 5),
                team(1620.0 * scale, -10.0 * scale, 30.0 * scale, 5),
            ];
            let wl: Vec<Vec<WengLinRating>> = teams
                .iter()
                .map(|t| t.iter().map(to_wl).collect())
                .collect();
            for k in [2, 3] {
                let ours =
                    w.win_probabilities(&teams[..k].iter().map(Vec::as_slice).collect::<Vec<_>>());
                let refs: Vec<&[WengLinRating]> = wl[..k].iter().map(Vec::as_slice).collect();
                let theirs = skillratings::weng_lin::expected_score_multi_team(&refs, &w.config());
                for (a, b) in ours.iter().zip(&theirs) {
                    assert!((a - b).abs() < 1e-12, "{k} teams: {ours:?} vs {theirs:?}");
                }
            }
        }
    }

    /// Weng-Lin at 1500 on a scale whose β is 4, teams of unequal size (a 5-stack, a 4-stack,
    /// a trio): the team sums are ~1,000·c (skillratings' e^(μ/c) overflows) while their
    /// differences are moderate, so shifting each team's sum by the same amount keeps the
    /// update finite and the stronger side gaining.
    #[test]
    fn weng_lin_rates_unequal_teams_at_extreme_scales() {
        let s = RatingConfig::weng_lin_scaled(1500.0, 8.3).build().unwrap();
        let teams = [
            team(1500.0, 0.5, 1.4, 5),
            team(1503.0, -0.5, 1.4, 4),
            team(1498.0, 0.2, 1.4, 3),
        ];
        for k in [2, 3] {
            let refs: Vec<&[PlayerRating]> = teams[..k].iter().map(Vec::as_slice).collect();
            let rated = s.rate(&refs, &Placements::winner(k, 0)).unwrap();
            for (new, old) in rated.iter().flatten().zip(refs.iter().copied().flatten()) {
                assert!(
                    new.rating.is_finite() && new.deviation.is_finite(),
                    "{rated:?}"
                );
                assert!((new.rating - old.rating).abs() < 50.0, "{rated:?}");
            }
            assert!(
                rated[0]
                    .iter()
                    .zip(refs[0])
                    .all(|(n, o)| n.rating >= o.rating)
            );
        }
    }

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
