//! Weng-Lin (OpenSkill), Bradley-Terry full-pairing: teams and free-for-all placements
//! natively; the default for team and free-for-all queues.
//!
//! Owns the Weng-Lin system over `skillratings::weng_lin`, with its expectation computed here
//! so that it stays finite at any scale (skillratings' overflows once team sums are ~700 times
//! the spread). Pure: ratings and placements in, ratings out; no clock, no IO, no randomness.

use skillratings::weng_lin::{WengLinConfig, WengLinRating};

use super::{
    Placements, PlayerRating, RatingError, RatingSystem, RatingSystemKind, check_result,
    check_scale, from_mu_sigma, rate_teams,
};

/// Weng-Lin (OpenSkill), Bradley-Terry full-pairing model. Native support for teams and
/// free-for-all placements.
#[derive(Clone, Debug, PartialEq)]
pub struct WengLin {
    pub beta: f64,
    pub initial_rating: f64,
    pub initial_deviation: f64,
}

impl WengLin {
    pub(super) fn validate(&self) -> Result<(), RatingError> {
        check_scale(
            self.beta,
            self.initial_rating,
            self.initial_deviation,
            [
                "weng_lin beta must be a positive number",
                "weng_lin initial rating/deviation must be finite, deviation > 0",
            ],
        )
    }

    /// Bradley-Terry's c = √(Σσ² + 2β²), from the sum of every player's variance.
    fn spread(&self, variance: f64) -> f64 {
        (variance + 2.0 * self.beta * self.beta).sqrt()
    }

    /// `win_probabilities(&[a, b])[0]` written as one logistic over the team sums: one `exp`,
    /// no allocation, and no software fused multiply-add (the baseline x86-64 target has no FMA
    /// instruction) — a 5v5 tick predicts every match it forms.
    #[inline]
    pub(super) fn two_team_expectation(&self, a: &[PlayerRating], b: &[PlayerRating]) -> f64 {
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
        rate_teams(
            teams,
            placements,
            |t, p| WengLinRating::from((p.rating - shift[t], p.deviation)),
            |a, b, outcome| skillratings::weng_lin::weng_lin_two_teams(a, b, outcome, &config),
            |with_ranks| {
                Ok(skillratings::weng_lin::weng_lin_multi_team(
                    with_ranks, &config,
                ))
            },
            |t, r: WengLinRating, old| PlayerRating {
                rating: r.rating + shift[t],
                ..from_mu_sigma(r, old)
            },
        )
    }
    fn display_rating(&self, rating: &PlayerRating) -> f64 {
        rating.rating - 3.0 * rating.deviation
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::team;
    use super::super::to_mu_sigma;
    use super::super::{Placements, RatingConfig};
    use super::*;

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
                .map(|t| t.iter().map(to_mu_sigma).collect())
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
}
