//! Glicko-2 (Glickman): a rating, its deviation and a volatility per player.
//!
//! Owns the Glicko-2 system over `skillratings::glicko2`, and the cheap one-on-one expectation
//! the 1v1 tick predicts every match with. Pure: ratings and placements in, ratings out; no
//! clock, no IO, no randomness.

use skillratings::Outcomes;
use skillratings::glicko2::{Glicko2Config, Glicko2Rating};

use super::{
    Placements, PlayerRating, RatingError, RatingSystem, RatingSystemKind, bradley_terry,
    check_result, mean,
};

/// Glicko-2. A match is one rating period for each player; in team and free-for-all matches a
/// player plays one game against each other team, represented by a composite player (average
/// rating, root-mean-square deviation, average volatility).
#[derive(Clone, Debug, PartialEq)]
pub struct Glicko2 {
    pub tau: f64,
}

impl Glicko2 {
    pub(super) fn validate(&self) -> Result<(), RatingError> {
        if !(self.tau.is_finite() && self.tau > 0.0) {
            return Err(RatingError::BadConfig(
                "glicko2 tau must be a positive number",
            ));
        }
        Ok(())
    }

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
    /// `win_probabilities(&[a, b])[0]` without allocating: Glickman's expectation for two
    /// players, of the teams' composite players otherwise.
    #[inline]
    pub(super) fn two_team_expectation(a: &[PlayerRating], b: &[PlayerRating]) -> f64 {
        if a.len() == 1 && b.len() == 1 {
            return expectation(&a[0], &b[0]);
        }
        let (ca, cb) = (Self::composite(a), Self::composite(b));
        skillratings::glicko2::expected_score(&to_g2(&ca), &to_g2(&cb)).0
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

/// Glickman's E(μ, μj, g(√(φ² + φj²))) for one player against another, as skillratings
/// computes it, with a plain square root for its `hypot` (no overflow at these magnitudes) and
/// the scale's divisions folded into constants: several times cheaper, within 1e-15.
#[inline]
pub(super) fn expectation(x: &PlayerRating, y: &PlayerRating) -> f64 {
    const SCALE: f64 = 173.7178;
    // g(φ) = 1 / √(1 + 3φ²/π²), with φ² = (σx² + σy²) / SCALE².
    const G: f64 = 3.0 / (std::f64::consts::PI * std::f64::consts::PI * SCALE * SCALE);
    let phi2 = x.deviation * x.deviation + y.deviation * y.deviation;
    let g = (1.0 + G * phi2).sqrt().recip();
    (1.0 + (-g * (x.rating - y.rating) * SCALE.recip()).exp()).recip()
}
