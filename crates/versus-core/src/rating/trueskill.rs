//! TrueSkill (Herbrich, Minka, Graepel). Patented by Microsoft: available, opt-in only, never a
//! default.
//!
//! Owns the TrueSkill system over `skillratings::trueskill`, and TrueSkill's own draw-based
//! match quality. Pure: ratings and placements in, ratings out; no clock, no IO, no
//! randomness.

use skillratings::trueskill::{TrueSkillConfig, TrueSkillRating};

use super::{
    Placements, PlayerRating, RatingError, RatingSystem, RatingSystemKind, check_result,
    check_scale, from_mu_sigma, rate_teams, to_mu_sigma,
};

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
    pub(super) fn validate(&self) -> Result<(), RatingError> {
        check_scale(
            self.beta,
            self.initial_rating,
            self.initial_deviation,
            [
                "trueskill beta must be a positive number",
                "trueskill initial rating/deviation must be finite, deviation > 0",
            ],
        )?;
        if !(0.0..1.0).contains(&self.draw_probability) {
            return Err(RatingError::BadConfig(
                "trueskill draw_probability must be in [0, 1)",
            ));
        }
        if !(self.dynamics.is_finite() && self.dynamics >= 0.0) {
            return Err(RatingError::BadConfig("trueskill dynamics must be >= 0"));
        }
        Ok(())
    }

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
            .map(|t| t.iter().map(to_mu_sigma).collect())
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
            .map(|t| t.iter().map(to_mu_sigma).collect())
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
        rate_teams(
            teams,
            placements,
            |_, p| to_mu_sigma(p),
            |a, b, outcome| skillratings::trueskill::trueskill_two_teams(a, b, outcome, &config),
            |with_ranks| {
                skillratings::trueskill::trueskill_multi_team(with_ranks, &config, None)
                    .map_err(|e| RatingError::Refused(format!("{e:?}")))
            },
            |_, r: TrueSkillRating, old| from_mu_sigma(r, old),
        )
    }
    fn display_rating(&self, rating: &PlayerRating) -> f64 {
        rating.rating - 3.0 * rating.deviation
    }
}
