//! Example-based tests of the matchmaker's rules.

use versus_core::matchmaking::*;
use versus_core::rating::PlayerRating;

fn solo(id: u128, rating: f64, latency: Vec<u32>, at_s: u64) -> Ticket {
    Ticket {
        id: TicketId(id),
        members: vec![Member {
            player: PlayerId(id),
            rating: PlayerRating::new(rating, 50.0),
        }],
        region_latency_ms: latency,
        created_at: Timestamp::from_secs(at_s),
        recent_opponents: vec![],
    }
}

fn one_v_one() -> (Matchmaker, QueueState) {
    let mut c = QueueConfig::new(2, 1);
    c.rating_widening = Schedule::new(vec![(0, 50.0), (10, 200.0)]);
    let mm = Matchmaker::new(c).unwrap();
    let s = mm.new_state();
    (mm, s)
}

#[test]
fn oldest_ticket_picks_its_nearest_rating() {
    let (mm, mut s) = one_v_one();
    s.add(solo(1, 1500.0, vec![20], 0)).unwrap();
    s.add(solo(2, 1530.0, vec![20], 1)).unwrap();
    s.add(solo(3, 1505.0, vec![20], 2)).unwrap();
    let out = mm.tick(Timestamp::from_secs(3), &mut s);
    assert_eq!(out.match_count(), 1);
    assert_eq!(
        out.get_match(0).unwrap().tickets,
        vec![TicketId(1), TicketId(3)]
    );
    assert_eq!(out.waiting.len(), 1);
    assert_eq!(out.waiting[0].ticket, TicketId(2));
    assert_eq!(out.waiting[0].position, 1);
}

#[test]
fn window_widens_with_wait() {
    let (mm, mut s) = one_v_one();
    s.add(solo(1, 1500.0, vec![20], 0)).unwrap();
    s.add(solo(2, 1650.0, vec![20], 0)).unwrap();
    assert!(mm.tick(Timestamp::from_secs(9), &mut s).match_count() == 0);
    let out = mm.tick(Timestamp::from_secs(10), &mut s);
    assert_eq!(out.match_count(), 1);
    let q = out.get_match(0).unwrap().quality;
    assert!(
        q > 0.0 && q < 0.8,
        "a 150-point gap is not a coin flip: {q}"
    );
}

#[test]
fn latency_budget_requires_a_shared_region() {
    let mut c = QueueConfig::new(2, 1);
    c.regions = vec!["eu".into(), "na".into()];
    c.latency_budget_ms = 60;
    c.latency_widening = Schedule::new(vec![(0, 0.0), (30, 100.0)]);
    let mm = Matchmaker::new(c).unwrap();
    let mut s = mm.new_state();
    s.add(solo(1, 1500.0, vec![20, 140], 0)).unwrap();
    s.add(solo(2, 1500.0, vec![150, 25], 0)).unwrap();
    assert!(mm.tick(Timestamp::from_secs(5), &mut s).match_count() == 0);
    let out = mm.tick(Timestamp::from_secs(30), &mut s);
    assert_eq!(out.match_count(), 1);
    // Both regions are now in budget (160 ms); na's worst latency (140) beats eu's (150).
    assert_eq!(out.get_match(0).unwrap().region, RegionId(1));
}

#[test]
fn recent_opponents_are_avoided_until_relaxed() {
    let mut c = QueueConfig::new(2, 1);
    c.rematch_relax_after_s = Some(20);
    let mm = Matchmaker::new(c).unwrap();
    let mut s = mm.new_state();
    let mut a = solo(1, 1500.0, vec![20], 0);
    a.recent_opponents = vec![PlayerId(2)];
    s.add(a).unwrap();
    s.add(solo(2, 1500.0, vec![20], 0)).unwrap();
    assert!(mm.tick(Timestamp::from_secs(19), &mut s).match_count() == 0);
    assert_eq!(mm.tick(Timestamp::from_secs(20), &mut s).match_count(), 1);
}

#[test]
fn parties_stay_whole_and_teams_balance() {
    let mut c = QueueConfig::new(2, 3);
    c.rating_widening = Schedule::constant(500.0);
    let mm = Matchmaker::new(c).unwrap();
    let mut s = mm.new_state();
    let party = Ticket {
        id: TicketId(10),
        members: vec![
            Member {
                player: PlayerId(10),
                rating: PlayerRating::new(1600.0, 50.0),
            },
            Member {
                player: PlayerId(11),
                rating: PlayerRating::new(1400.0, 50.0),
            },
        ],
        region_latency_ms: vec![20],
        created_at: Timestamp::from_secs(0),
        recent_opponents: vec![],
    };
    s.add(party).unwrap();
    for (i, r) in [1500.0, 1510.0, 1490.0, 1520.0].into_iter().enumerate() {
        s.add(solo(20 + i as u128, r, vec![20], 0)).unwrap();
    }
    let out = mm.tick(Timestamp::from_secs(1), &mut s);
    assert_eq!(out.match_count(), 1);
    let m = out.get_match(0).unwrap();
    let with_party = m
        .teams()
        .find(|t| t.tickets.contains(&TicketId(10)))
        .unwrap();
    assert!(
        with_party.players.contains(&PlayerId(10)) && with_party.players.contains(&PlayerId(11))
    );
    // Best split: {1600,1400,1510} = 4510 vs {1500,1490,1520} = 4510.
    assert_eq!(m.team(0).rating_sum, m.team(1).rating_sum);
    assert!(m.quality > 0.99);
}

#[test]
fn backfill_is_served_before_new_matches() {
    let mut c = QueueConfig::new(2, 2);
    c.rating_widening = Schedule::constant(300.0);
    let mm = Matchmaker::new(c).unwrap();
    let mut s = mm.new_state();
    for (i, r) in [1500.0, 1510.0, 1490.0].into_iter().enumerate() {
        s.add(solo(i as u128 + 1, r, vec![20], 0)).unwrap();
    }
    let m = |p: u128, r: f64| Member {
        player: PlayerId(p),
        rating: PlayerRating::new(r, 50.0),
    };
    s.add_backfill(BackfillRequest {
        id: TicketId(99),
        teams: vec![vec![m(50, 1500.0), m(51, 1500.0)], vec![m(52, 1500.0)]],
        open_slots: vec![0, 1],
        region: RegionId(0),
        created_at: Timestamp::from_secs(0),
    })
    .unwrap();
    let out = mm.tick(Timestamp::from_secs(1), &mut s);
    assert_eq!(
        out.match_count(),
        1,
        "3 solos cannot form a 2v2; the backfill takes one"
    );
    let f = out.get_match(0).unwrap();
    assert_eq!(f.backfill, Some(TicketId(99)));
    assert_eq!(
        f.tickets,
        vec![TicketId(1)],
        "the nearest rating fills the slot"
    );
    assert_eq!(f.team(1).players, vec![PlayerId(52), PlayerId(1)]);
    assert_eq!(s.len(), 2);
}

#[test]
fn cancel_has_exactly_one_answer() {
    let (mm, mut s) = one_v_one();
    s.add(solo(1, 1500.0, vec![20], 0)).unwrap();
    s.add(solo(2, 1500.0, vec![20], 0)).unwrap();
    s.add(solo(3, 2500.0, vec![20], 0)).unwrap();
    assert_eq!(s.cancel(TicketId(3)), CancelOutcome::Cancelled);
    assert_eq!(s.cancel(TicketId(3)), CancelOutcome::NotSearching);
    let out = mm.tick(Timestamp::from_secs(1), &mut s);
    assert_eq!(out.match_count(), 1);
    assert_eq!(
        s.cancel(TicketId(1)),
        CancelOutcome::NotSearching,
        "already matched"
    );
    // Player 3 may queue again after cancelling; player 1 too after the match.
    s.add(solo(3, 2500.0, vec![20], 2)).unwrap();
    assert!(s.is_searching(PlayerId(3)));
}

#[test]
fn invalid_input_is_refused_with_reasons() {
    let (_, mut s) = one_v_one();
    assert_eq!(
        s.add(solo(1, 1500.0, vec![20, 30], 0)),
        Err(TicketError::RegionCount {
            got: 2,
            expected: 1
        })
    );
    s.add(solo(1, 1500.0, vec![20], 0)).unwrap();
    assert_eq!(
        s.add(solo(1, 1500.0, vec![20], 0)),
        Err(TicketError::DuplicateTicket)
    );
    let mut dup = solo(2, 1500.0, vec![20], 0);
    dup.members[0].player = PlayerId(1);
    assert_eq!(
        s.add(dup),
        Err(TicketError::PlayerAlreadySearching(PlayerId(1)))
    );
    assert_eq!(
        s.add(solo(3, f64::NAN, vec![20], 0)),
        Err(TicketError::NonFiniteRating)
    );
    let mut bad = QueueConfig::new(2, 1);
    bad.rating_widening = Schedule::new(vec![(5, 50.0)]);
    let err = Matchmaker::new(bad).unwrap_err().to_string();
    assert!(err.contains("rating_widening"), "{err}");
}

#[test]
fn expiry_and_estimated_wait() {
    let mut c = QueueConfig::new(2, 1);
    c.max_wait_s = Some(30);
    let mm = Matchmaker::new(c).unwrap();
    let mut s = mm.new_state();
    for i in 0..10u128 {
        s.add(solo(i * 2, 1500.0 + i as f64, vec![20], 0)).unwrap();
        s.add(solo(i * 2 + 1, 1500.0 + i as f64, vec![20], 4))
            .unwrap();
    }
    s.add(solo(100, 3000.0, vec![20], 0)).unwrap();
    s.add(solo(101, 1505.0, vec![20], 0)).unwrap();
    let out = mm.tick(Timestamp::from_secs(4), &mut s);
    assert_eq!(out.match_count(), 10);
    s.add(solo(102, 1505.0, vec![20], 5)).unwrap();
    let out = mm.tick(Timestamp::from_secs(5), &mut s);
    // 101 and 102 meet; 3000 waits with an estimate from history.
    assert_eq!(out.match_count(), 1);
    assert_eq!(out.waiting.len(), 1);
    let out = mm.tick(Timestamp::from_secs(30), &mut s);
    assert_eq!(out.expired, vec![TicketId(100)]);
    assert!(s.is_empty());
}

#[test]
fn matched_tickets_leave_the_pool_before_it_is_settled() {
    let (mm, mut s) = one_v_one();
    s.add(solo(1, 1500.0, vec![20], 0)).unwrap();
    s.add(solo(2, 1505.0, vec![20], 0)).unwrap();
    s.add(solo(3, 2500.0, vec![20], 0)).unwrap();
    let mut out = TickOutcome::default();
    mm.tick_into(Timestamp::from_secs(1), &mut s, &mut out);
    assert_eq!(out.match_count(), 1);
    // Not settled yet (`maintain` not called): the matched tickets are gone all the same.
    assert_eq!(s.len(), 1);
    assert!(!s.contains(TicketId(1)));
    assert!(!s.is_searching(PlayerId(2)));
    assert_eq!(s.cancel(TicketId(1)), CancelOutcome::NotSearching);
    assert!(s.contains(TicketId(3)));
    // A matched player may queue again at once, even under the same ticket id.
    s.add(solo(1, 1500.0, vec![20], 1)).unwrap();
    assert_eq!(
        s.add(solo(1, 1500.0, vec![20], 1)),
        Err(TicketError::DuplicateTicket)
    );
    s.maintain();
    assert_eq!(s.len(), 2);
    assert!(s.contains(TicketId(1)) && s.is_searching(PlayerId(1)));
    assert!(!s.is_searching(PlayerId(2)));
    // The re-queued ticket is a fresh ticket: it matches, and cancels, as one.
    s.add(solo(2, 1502.0, vec![20], 2)).unwrap();
    mm.tick_into(Timestamp::from_secs(3), &mut s, &mut out);
    assert_eq!(out.match_count(), 1);
    assert_eq!(
        out.get_match(0).unwrap().tickets,
        [TicketId(1), TicketId(2)]
    );
    assert_eq!(s.cancel(TicketId(3)), CancelOutcome::Cancelled);
    assert!(s.is_empty());
    // Reusing the outcome keeps nothing from the previous tick.
    mm.tick_into(Timestamp::from_secs(4), &mut s, &mut out);
    assert_eq!(out.match_count(), 0);
    assert!(out.waiting.is_empty());
}
