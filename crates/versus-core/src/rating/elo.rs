//! Elo: one rating per player, no deviation; teams are rated through their average rating.
//!
//! Owns the Elo system's prediction and update over `skillratings::elo`. Pure: ratings and
//! placements in, ratings out; no clock, no IO, no randomness.

use skillratings::Outcomes;
use skillratings::elo::{EloConfig, EloRating};

use super::{
    Placements, PlayerRating, RatingError, RatingSystem, RatingSystemKind, bradley_terry,
    check_result, mean,
};

/// Elo. Teams are rated as one player with the team's average rating; every member moves by
/// the team's change. Several teams: each team scores against every other team (sum of deltas).
#[derive(Clone, Debug, PartialEq)]
pub struct Elo {
    pub k: f64,
    pub initial_rating: f64,
}

impl Elo {
    pub(super) fn validate(&self) -> Result<(), RatingError> {
        if !(self.k.is_finite() && self.k > 0.0) {
            return Err(RatingError::BadConfig("elo k must be a positive number"));
        }
        if !self.initial_rating.is_finite() {
            return Err(RatingError::BadConfig("elo initial_rating must be finite"));
        }
        Ok(())
    }

    /// `win_probabilities(&[a, b])[0]` without allocating: the teams' average ratings.
    #[inline]
    pub(super) fn two_team_expectation(a: &[PlayerRating], b: &[PlayerRating]) -> f64 {
        let ra = EloRating {
            rating: mean(a.iter().map(|p| p.rating)),
        };
        let rb = EloRating {
            rating: mean(b.iter().map(|p| p.rating)),
        };
        skillratings::elo::expected_score(&ra, &rb).0
    }

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
