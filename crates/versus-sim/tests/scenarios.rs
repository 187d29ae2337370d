//! Runs every committed scenario: no violations anywhere, and the issue's quality targets on
//! the 1v1 and 5v5 scenarios. Also checks the report's JSON keys, error messages, and that
//! the checker does catch a broken match.

use std::path::PathBuf;

use versus_core::matchmaking::*;
use versus_sim::{Checker, Report, Scenario, SimError, TicketRecord, run, run_scenario_file};

fn scenarios_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scenarios")
}

fn load(name: &str) -> (Scenario, Report) {
    let path = scenarios_dir().join(name);
    let text = std::fs::read_to_string(&path).unwrap();
    let scenario = Scenario::from_toml(&text).unwrap();
    let report = run_scenario_file(&path).unwrap();
    (scenario, report)
}

#[test]
fn every_committed_scenario_runs_without_violations() {
    let mut seen = 0;
    let mut entries: Vec<_> = std::fs::read_dir(scenarios_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    entries.sort();
    for path in entries {
        let report = run_scenario_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        println!("{report}");
        assert_eq!(report.violations, 0, "{}:\n{report}", path.display());
        assert!(report.matches > 0, "{}: no matches", path.display());
        assert!(
            report.warnings.is_empty(),
            "{}: {:?}",
            path.display(),
            report.warnings
        );
        seen += 1;
    }
    assert!(
        seen >= 5,
        "expected the five committed scenarios, found {seen}"
    );
}

#[test]
fn ranked_1v1_meets_the_quality_targets() {
    let (s, r) = load("ranked-1v1.toml");
    assert!(
        s.arrivals_per_s >= 20.0 && s.skill.sd == 300.0,
        "scenario must be the issue's case"
    );
    assert!(r.ttm_p50_s <= 5.0, "{r}");
    assert!(r.ttm_p95_s <= 20.0, "{r}");
    assert!(r.mean_team_rating_gap <= 50.0, "{r}");
    assert!(r.mean_quality >= 0.9, "{r}");
    assert_eq!(r.violations, 0);
}

#[test]
fn ranked_5v5_with_parties_meets_the_targets() {
    let (s, r) = load("ranked-5v5-parties.toml");
    assert_eq!((s.queue.teams, s.queue.team_size), (2, 5));
    assert_eq!(s.regions.len(), 3);
    assert!(
        s.party_sizes.iter().skip(1).sum::<f64>() > 0.0,
        "must have parties"
    );
    assert!(r.ttm_p50_s <= 15.0, "{r}");
    assert!(r.pct_within_latency_budget >= 95.0, "{r}");
    assert_eq!(r.violations, 0);
}

#[test]
fn report_json_has_exactly_the_issue_keys() {
    let (_, r) = load("ffa-8.toml");
    let v = serde_json::to_value(&r).unwrap();
    let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    let mut expected = vec![
        "tickets",
        "players",
        "matches",
        "unmatched",
        "ttm_p50_s",
        "ttm_p95_s",
        "ttm_max_s",
        "mean_team_rating_gap",
        "p95_team_rating_gap",
        "mean_quality",
        "pct_within_latency_budget",
        "tick_p50_ms",
        "tick_p99_ms",
        "violations",
    ];
    expected.sort_unstable();
    assert_eq!(keys, expected);
    assert!(r.to_string().contains("violations"));
}

#[test]
fn minimal_scenario_uses_defaults_and_is_deterministic() {
    let text = "seed = 5\nduration_s = 120\narrivals_per_s = 20\nnote = \"hello\"\n[queue]\nteams = 2\nteam_size = 1\n[skill]\nmean = 1500\nsd = 300\n";
    let s = Scenario::from_toml(text).unwrap();
    let (a, b) = (run(&s), run(&s));
    assert_eq!(a.violations, 0);
    assert!(a.matches > 500, "{a}");
    assert_eq!(
        (a.tickets, a.matches, a.ttm_p95_s, a.mean_quality),
        (b.tickets, b.matches, b.ttm_p95_s, b.mean_quality)
    );
    assert_eq!(a.warnings, vec!["unknown key `note` ignored".to_string()]);
}

#[test]
fn bad_values_name_their_key() {
    let base = "[queue]\nteams = 2\nteam_size = 5\n";
    let cases = [
        (format!("{base}[skill]\nsd = -3\n"), "skill.sd"),
        (
            format!("party_sizes = [1, 1, 1, 1, 1, 1]\n{base}"),
            "party_sizes",
        ),
        (format!("tick_ms = 0\n{base}"), "tick_ms"),
        (
            "[queue]\nteams = 1\nteam_size = 1\n".to_string(),
            "queue.teams",
        ),
        (
            format!("{base}rating_widening = [[5, 50]]\n"),
            "queue.rating_widening",
        ),
        (
            format!("{base}rating_system = \"chess\"\n"),
            "queue.rating_system",
        ),
        (
            format!("{base}widening = [[0, 50], [-5, 100]]\n"),
            "queue.rating_widening",
        ),
        (
            format!("{base}latency_widening = [[0, 0], [10, -5]]\n"),
            "queue.latency_widening",
        ),
        (
            format!("{base}[[regions]]\nname = \"x\"\nlatency_ms_min = 90\nlatency_ms_max = 10\n"),
            "regions.latency_ms_min",
        ),
    ];
    for (text, key) in cases {
        match Scenario::from_toml(&text) {
            Err(SimError::Invalid { key: k, .. }) => assert_eq!(k, key, "{text}"),
            other => panic!("{text}: expected error on {key}, got {other:?}"),
        }
    }
    let err =
        Scenario::from_toml("duration_s = \"long\"\n[queue]\nteams=2\nteam_size=1\n").unwrap_err();
    assert!(err.to_string().contains("duration_s"), "{err}");
}

#[test]
fn checker_catches_broken_matches() {
    let mut c = QueueConfig::new(2, 1);
    c.rating_widening = Schedule::constant(50.0);
    let mut checker = Checker::new(&c);
    let rec = |p: u128, r: f64| TicketRecord {
        players: vec![p],
        ratings: vec![r],
        latency_ms: vec![30],
        created_ms: 0,
    };
    let tickets = [
        (1, rec(1, 1500.0)),
        (2, rec(2, 1700.0)),
        (3, rec(3, 1510.0)),
    ]
    .into_iter()
    .collect();
    let ids = [TicketId(1), TicketId(2), TicketId(3)];
    let players = [PlayerId(1), PlayerId(2), PlayerId(3)];
    let team = |t: usize, r: f64| MatchTeam {
        tickets: &ids[t - 1..t],
        players: &players[t - 1..t],
        rating_sum: r,
        win_probability: 0.5,
    };
    let mut out = TickOutcome::default();
    let formed = Timestamp::from_secs(1);
    out.push_match(
        None,
        &[team(1, 1500.0), team(3, 1510.0)],
        RegionId(0),
        1.0,
        formed,
    );
    out.push_match(
        None,
        &[team(2, 1700.0), team(3, 1510.0)],
        RegionId(0),
        1.0,
        formed,
    );
    checker.check(&out.get_match(0).unwrap(), 1000, &tickets);
    assert_eq!(checker.violations, 0, "{:?}", checker.details);
    checker.check(&out.get_match(1).unwrap(), 1000, &tickets);
    // 200-point gap outside the 50 window, and ticket 3 matched twice.
    assert!(checker.violations >= 2, "{:?}", checker.details);
}
