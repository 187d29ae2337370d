//! Rating systems checked against published reference values and an independent
//! implementation of the Weng-Lin formulas — never against our own output.

use skillratings::Outcomes;
use versus_core::rating::*;

fn close(actual: f64, expected: f64, tol: f64) {
    assert!(
        (actual - expected).abs() <= tol,
        "expected {expected} ± {tol}, got {actual}"
    );
}

fn p(rating: f64, deviation: f64) -> PlayerRating {
    PlayerRating::new(rating, deviation)
}

/// Glickman, "Example of the Glicko-2 system" (2013), §"Example calculation": a 1500/200/0.06
/// player beats 1400/30, loses to 1550/100 and to 1700/300, tau 0.5 → 1464.06 / 151.52 / 0.05999.
#[test]
fn glicko2_matches_glickmans_worked_example() {
    let g = Glicko2 { tau: 0.5 };
    let player = PlayerRating {
        rating: 1500.0,
        deviation: 200.0,
        volatility: 0.06,
    };
    let results = [
        (p(1400.0, 30.0), Outcomes::WIN),
        (p(1550.0, 100.0), Outcomes::LOSS),
        (p(1700.0, 300.0), Outcomes::LOSS),
    ];
    let new = g.rate_period(&player, &results);
    close(new.rating, 1464.06, 0.01);
    close(new.deviation, 151.52, 0.01);
    close(new.volatility, 0.05999, 0.00001);
}

/// Glicko-2 through the trait, 1v1: one game is a rating period of one game (Glickman §1).
#[test]
fn glicko2_trait_one_game_is_a_one_game_period() {
    let g = Glicko2 { tau: 0.5 };
    let a = PlayerRating {
        rating: 1500.0,
        deviation: 200.0,
        volatility: 0.06,
    };
    let b = PlayerRating {
        rating: 1400.0,
        deviation: 30.0,
        volatility: 0.06,
    };
    let out = g.rate(&[&[a], &[b]], &Placements::winner(2, 0)).unwrap();
    let period = g.rate_period(&a, &[(b, Outcomes::WIN)]);
    close(out[0][0].rating, period.rating, 1e-9);
    assert!(out[0][0].rating > 1500.0 && out[1][0].rating < 1400.0);
    // Display rating is conservative: rating − 2·RD.
    close(g.display_rating(&a), 1100.0, 1e-9);
}

/// Wikipedia, "Elo rating system", §"Mathematical details": a 1613 player scores 2.5 from
/// 1609 (L), 1477 (D), 1388 (W), 1586 (W), 1720 (L); expected ≈ 2.87 (2.84 with the article's
/// rounded table), K = 32 → about 1601–1602.
#[test]
fn elo_matches_wikipedia_tournament_example() {
    let elo = Elo {
        k: 32.0,
        initial_rating: 1000.0,
    };
    let new = elo.rate_period(
        1613.0,
        &[
            (1609.0, Outcomes::LOSS),
            (1477.0, Outcomes::DRAW),
            (1388.0, Outcomes::WIN),
            (1586.0, Outcomes::WIN),
            (1720.0, Outcomes::LOSS),
        ],
    );
    close(new, 1601.5, 1.0);
    // Textbook: equal players, K = 32, a win is worth 16 points; a 400-point edge means 10:1 odds.
    let out = elo
        .rate(
            &[&[p(1500.0, 0.0)], &[p(1500.0, 0.0)]],
            &Placements::winner(2, 0),
        )
        .unwrap();
    close(out[0][0].rating, 1516.0, 1e-9);
    close(out[1][0].rating, 1484.0, 1e-9);
    let w = elo.win_probabilities(&[&[p(1900.0, 0.0)], &[p(1500.0, 0.0)]]);
    close(w[0], 10.0 / 11.0, 1e-12);
    // Draw between equals changes nothing.
    let d = elo
        .rate(
            &[&[p(1500.0, 0.0)], &[p(1500.0, 0.0)]],
            &Placements::draw(2),
        )
        .unwrap();
    close(d[0][0].rating, 1500.0, 1e-9);
}

/// TrueSkill reference values published with the `trueskill` Python package (trueskill.org):
/// `rate_1vs1(Rating(), Rating())` → 29.396/7.171 and 20.604/7.171; a draw → 25.000/6.458 both;
/// `quality_1vs1(Rating(), Rating())` = 0.447.
#[test]
fn trueskill_matches_published_values() {
    let ts = match RatingConfig::trueskill().build().unwrap() {
        AnyRatingSystem::TrueSkill(t) => t,
        _ => unreachable!(),
    };
    let fresh = ts.initial_rating();
    let out = ts
        .rate(&[&[fresh], &[fresh]], &Placements::winner(2, 0))
        .unwrap();
    close(out[0][0].rating, 29.396, 0.001);
    close(out[0][0].deviation, 7.171, 0.001);
    close(out[1][0].rating, 20.604, 0.001);
    close(out[1][0].deviation, 7.171, 0.001);
    let draw = ts
        .rate(&[&[fresh], &[fresh]], &Placements::draw(2))
        .unwrap();
    close(draw[0][0].rating, 25.0, 0.001);
    close(draw[0][0].deviation, 6.458, 0.001);
    close(ts.draw_quality(&[&[fresh], &[fresh]]), 0.447, 0.001);
    // Conservative display: mu − 3·sigma = 0 for a new player.
    close(ts.display_rating(&fresh), 0.0, 1e-9);
}

/// Independent implementation of Weng & Lin (2011), Algorithm 1 (Bradley-Terry, full pairing)
/// for two teams, as OpenSkill publishes it.
fn weng_lin_reference(
    teams: [&[PlayerRating]; 2],
    first_wins: Option<bool>,
    beta: f64,
) -> [Vec<PlayerRating>; 2] {
    let mu: Vec<f64> = teams
        .iter()
        .map(|t| t.iter().map(|p| p.rating).sum())
        .collect();
    let s2: Vec<f64> = teams
        .iter()
        .map(|t| t.iter().map(|p| p.deviation.powi(2)).sum())
        .collect();
    let c = (s2[0] + s2[1] + 2.0 * beta * beta).sqrt();
    let p0 = 1.0 / (1.0 + ((mu[1] - mu[0]) / c).exp());
    let probs = [p0, 1.0 - p0];
    let score = match first_wins {
        Some(true) => [1.0, 0.0],
        Some(false) => [0.0, 1.0],
        None => [0.5, 0.5],
    };
    let mut out = [Vec::new(), Vec::new()];
    for i in 0..2 {
        let omega = s2[i] / c * (score[i] - probs[i]);
        let gamma = s2[i].sqrt() / c;
        let delta = gamma * s2[i] / (c * c) * probs[i] * probs[1 - i];
        for pl in teams[i] {
            let share = pl.deviation.powi(2) / s2[i];
            out[i].push(PlayerRating {
                rating: pl.rating + share * omega,
                deviation: pl.deviation * (1.0 - share * delta).max(1e-4).sqrt(),
                volatility: pl.volatility,
            });
        }
    }
    out
}

/// OpenSkill's published 1v1 from defaults: winner 27.635 / 8.065, loser 22.365 / 8.065.
#[test]
fn weng_lin_matches_openskill_and_an_independent_implementation() {
    let wl = match RatingConfig::weng_lin().build().unwrap() {
        AnyRatingSystem::WengLin(w) => w,
        _ => unreachable!(),
    };
    let fresh = wl.initial_rating();
    let out = wl
        .rate(&[&[fresh], &[fresh]], &Placements::winner(2, 0))
        .unwrap();
    close(out[0][0].rating, 27.635, 0.001);
    close(out[0][0].deviation, 8.065, 0.001);
    close(out[1][0].rating, 22.365, 0.001);

    let a = [p(30.0, 5.0), p(22.0, 7.0)];
    let b = [p(26.0, 3.0), p(24.0, 8.0)];
    for (placements, first) in [
        (Placements::winner(2, 0), Some(true)),
        (Placements::winner(2, 1), Some(false)),
        (Placements::draw(2), None),
    ] {
        let ours = wl.rate(&[&a, &b], &placements).unwrap();
        let reference = weng_lin_reference([&a, &b], first, 25.0 / 6.0);
        for t in 0..2 {
            for (x, y) in ours[t].iter().zip(&reference[t]) {
                close(x.rating, y.rating, 1e-9);
                close(x.deviation, y.deviation, 1e-9);
            }
        }
    }
    let w = wl.win_probabilities(&[&a, &b]);
    let c = (25.0f64 + 49.0 + 9.0 + 64.0 + 2.0 * (25.0f64 / 6.0).powi(2)).sqrt();
    close(w[0], 1.0 / (1.0 + ((50.0f64 - 52.0) / c).exp()), 1e-12);
}

#[test]
fn free_for_all_placements_rank_players_in_order() {
    for config in [
        RatingConfig::weng_lin(),
        RatingConfig::trueskill(),
        RatingConfig::glicko2(),
        RatingConfig::elo(),
    ] {
        let sys = config.build().unwrap();
        let start = sys.initial_rating();
        let start = if start.deviation == 0.0 {
            PlayerRating {
                deviation: 0.0,
                ..start
            }
        } else {
            start
        };
        let teams: Vec<[PlayerRating; 1]> = (0..4).map(|_| [start]).collect();
        let refs: Vec<&[PlayerRating]> = teams.iter().map(|t| t.as_slice()).collect();
        let out = sys.rate(&refs, &Placements::new(vec![3, 1, 4, 2])).unwrap();
        let r: Vec<f64> = out.iter().map(|t| t[0].rating).collect();
        assert!(
            r[1] > r[3] && r[3] > r[0] && r[0] > r[2],
            "{config:?}: {r:?}"
        );
        let probs = sys.win_probabilities(&refs);
        close(probs.iter().sum::<f64>(), 1.0, 1e-9);
        close(fairness_quality(&probs), 1.0, 1e-9);
    }
}

#[test]
fn bad_results_are_refused() {
    let sys = RatingConfig::weng_lin().build().unwrap();
    let r = sys.initial_rating();
    assert_eq!(
        sys.rate(&[&[r]], &Placements::draw(1)),
        Err(RatingError::TooFewTeams(1))
    );
    assert_eq!(
        sys.rate(&[&[r], &[r]], &Placements::draw(3)),
        Err(RatingError::PlacementCount {
            placements: 3,
            teams: 2
        })
    );
    assert_eq!(
        sys.rate(&[&[r], &[]], &Placements::draw(2)),
        Err(RatingError::EmptyTeam)
    );
    assert!(
        RatingConfig::Elo {
            k: -1.0,
            initial_rating: 0.0
        }
        .build()
        .is_err()
    );
}

#[test]
fn quality_is_the_fairness_of_the_prediction() {
    close(fairness_quality(&[0.5, 0.5]), 1.0, 1e-12);
    close(fairness_quality(&[0.75, 0.25]), 0.5, 1e-12);
    close(fairness_quality(&[1.0, 0.0]), 0.0, 1e-12);
    close(fairness_quality(&[0.4, 0.3, 0.2, 0.1]), 0.7, 1e-12);
    // TrueSkill is never a default.
    for (t, s) in [(2, 1), (2, 5), (8, 1), (4, 2)] {
        assert_ne!(
            RatingConfig::default_for(t, s).kind(),
            RatingSystemKind::TrueSkill
        );
    }
    assert_eq!(
        RatingConfig::default_for(2, 5).kind(),
        RatingSystemKind::WengLin
    );
}
