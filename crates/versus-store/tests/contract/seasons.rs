//! The season part of the `Store` contract (issue 14): opening, rolling over with frozen final
//! standings and softly reset ratings, and the season of each rating-history row.

use time::Duration;
use versus_core::rating::PlayerRating;
use versus_store::{CarryOver, Recorded, Rolled, SeasonRollover, StoredRating};

use super::*;

/// Pulls every rating halfway to 1000; the display rating is the rating.
pub(crate) fn halfway(stored: &StoredRating) -> (PlayerRating, f64) {
    let rating = PlayerRating::new(1000.0 + (stored.rating.rating - 1000.0) / 2.0, 0.0);
    (rating, rating.rating)
}

fn rollover(current: u32, at: OffsetDateTime) -> SeasonRollover<'static> {
    SeasonRollover {
        queue: "duel",
        current,
        at,
        next_starts_at: at,
        next_ends_at: Some(at + Duration::days(30)),
        admin_action: None,
    }
}

pub(crate) async fn seasons_roll_over_keeping_the_old_standings(b: &mut Backend) {
    let first = (b.store)
        .open_season("duel", T0, Some(T0 + Duration::days(30)))
        .await
        .unwrap();
    assert_eq!(first.number, 1);
    assert_eq!(first.ends_at, stored_timestamp(T0 + Duration::days(30)));
    assert_eq!(first.ended_at, None);
    let again = (b.store)
        .open_season("duel", T0 + Duration::days(1), None)
        .await
        .unwrap();
    assert_eq!(again, first, "opening an open queue changes nothing");

    // p0 wins twice, p1 loses twice, p2 wins once (below the placement threshold of 2).
    let p = players(b, 4).await;
    for _ in 0..2 {
        let s = ready_session(b, vec![vec![p[0]], vec![p[1]]]).await;
        assert!(matches!(report(b, s, 0, T0).await, Recorded::Applied(_)));
    }
    let s = ready_session(b, vec![vec![p[2]], vec![p[3]]]).await;
    assert!(matches!(report(b, s, 0, T0).await, Recorded::Applied(_)));

    let t1 = T0 + Duration::days(30);
    let Rolled::Done(second) = b.store.roll_season(rollover(1, t1)).await.unwrap() else {
        panic!("season 1 is current");
    };
    assert_eq!(second.number, 2);
    assert_eq!(Some(second.started_at), stored_timestamp(t1));
    assert_eq!(
        b.store.roll_season(rollover(1, t1)).await.unwrap(),
        Rolled::NotCurrent(Some(second.clone())),
        "a season ends once"
    );
    b.reopen().await;
    let seasons = b.store.seasons("duel").await.unwrap();
    assert_eq!(seasons.len(), 2);
    assert_eq!(seasons[0].ended_at, stored_timestamp(t1));
    assert_eq!(seasons[1], second);

    // Nothing carried over yet: season 1's board is read from the ratings themselves.
    assert_eq!(
        b.store.oldest_uncarried_season("duel", 2).await.unwrap(),
        Some(1)
    );
    assert_frozen_season_one(b, &p).await;
    assert!(
        (b.store.leaderboard_standings("duel", 2, 0).await.unwrap()).is_empty(),
        "nobody has played season 2"
    );
    let stale = b.store.player_rating(p[0], "duel").await.unwrap().unwrap();
    assert_eq!((stale.season, stale.games), (1, 2));
    let shown = stale.carried(2, &halfway);
    assert_eq!(
        (shown.rating.rating, shown.games, shown.season),
        (1010.0, 0, 2)
    );

    // p0 and p1 play before the carry-over reaches them: their season-1 standings are frozen
    // (unranked for now) and the result rates from their carried ratings.
    let s = ready_session(b, vec![vec![p[0]], vec![p[1]]]).await;
    assert!(matches!(report(b, s, 1, t1).await, Recorded::Applied(_)));
    let now = b.store.player_rating(p[1], "duel").await.unwrap().unwrap();
    assert_eq!(
        (now.rating.rating, now.games, now.wins, now.season),
        (1000.0, 1, 1, 2),
        "carried to 990, then a win"
    );
    assert_frozen_season_one(b, &p).await;

    // The carry-over, one player per batch: only p2 and p3 are left to carry.
    let rank = |player: Uuid| {
        (player == p[0])
            .then_some(1)
            .or((player == p[1]).then_some(2))
    };
    let (mut after, mut batches) = (None, 0);
    loop {
        let batch = CarryOver {
            queue: "duel",
            current: 2,
            after,
            limit: 1,
            reset: &halfway,
            ended: 1,
            rank: &rank,
        };
        match b.store.carry_over(batch).await.unwrap() {
            Some(last) => (after, batches) = (Some(last), batches + 1),
            None => break,
        }
    }
    assert_eq!(
        batches, 4,
        "a batch is a range of rated players by id: one each"
    );
    assert_eq!(
        b.store.oldest_uncarried_season("duel", 2).await.unwrap(),
        None
    );
    let p3 = b.store.player_rating(p[3], "duel").await.unwrap().unwrap();
    assert_eq!((p3.rating.rating, p3.games, p3.season), (995.0, 0, 2));
    // The standings results froze get their ranks.
    assert_eq!(
        (b.store).rank_standings("duel", 1, 2, &rank).await.unwrap(),
        2
    );
    assert_frozen_season_one(b, &p).await;
    let mine = b.store.player_seasons(p[0], "duel").await.unwrap();
    assert_eq!((mine[0].season, mine[0].rank), (1, Some(1)));
    assert_eq!(
        b.store.player_seasons(p[1], "duel").await.unwrap()[0].rank,
        Some(2)
    );
    let unplaced = b.store.player_seasons(p[2], "duel").await.unwrap();
    assert_eq!((unplaced[0].rank, unplaced[0].row.rating.games), (None, 1));
    let live = b.store.leaderboard_standings("duel", 2, 0).await.unwrap();
    assert_eq!(live.len(), 4, "everyone rated in season 2");
    assert_eq!(
        b.store
            .leaderboard_standings("duel", 2, 1)
            .await
            .unwrap()
            .len(),
        2
    );

    let all = (b.store)
        .rating_history(p[0], "duel", None, None, 10)
        .await
        .unwrap();
    assert_eq!(
        all.iter().map(|h| h.season).collect::<Vec<_>>(),
        [2, 1, 1],
        "newest first"
    );
    assert_eq!(
        all[0].before.rating, 1010.0,
        "the new season starts from the reset"
    );
    let second_only = (b.store)
        .rating_history(p[0], "duel", Some(2), None, 10)
        .await
        .unwrap();
    assert_eq!(second_only.len(), 1);
    let first_only = (b.store)
        .rating_history(p[0], "duel", Some(1), None, 10)
        .await
        .unwrap();
    assert_eq!(first_only.len(), 2);
}

/// Season 1 as it ended, whichever table each standing is in by now: p0 and p1 ranked (two
/// games each), p2 and p3 unranked (one each).
async fn assert_frozen_season_one(b: &Backend, p: &[Uuid]) {
    let frozen = b.store.season_board("duel", 1, 2).await.unwrap();
    let mut ids: Vec<_> = frozen
        .iter()
        .map(|s| (s.player_id, s.display_rating))
        .collect();
    ids.sort_by(|a, b| b.1.total_cmp(&a.1));
    assert_eq!(ids, [(p[0], 1020.0), (p[1], 980.0)]);
    let mut of: Vec<_> = (b
        .store
        .season_standings_of("duel", 1, p)
        .await
        .unwrap()
        .iter())
    .map(|r| {
        (
            r.player_id,
            r.rating.display_rating,
            r.rating.games,
            r.rating.wins,
        )
    })
    .collect();
    of.sort_by(|a, b| b.1.total_cmp(&a.1));
    assert_eq!(
        of,
        [
            (p[0], 1020.0, 2, 2),
            (p[2], 1010.0, 1, 1),
            (p[3], 990.0, 1, 0),
            (p[1], 980.0, 2, 0)
        ]
    );
    for (player, games) in [(p[0], 2), (p[2], 1)] {
        let seasons = b.store.player_seasons(player, "duel").await.unwrap();
        assert_eq!(seasons.len(), 1);
        assert_eq!((seasons[0].season, seasons[0].row.rating.games), (1, games));
    }
}

/// A rollover recorded as an admin's action writes the record with it.
pub(crate) async fn an_admin_rollover_is_recorded(b: &mut Backend) {
    b.store.open_season("duel", T0, None).await.unwrap();
    let admin = players(b, 1).await[0];
    let action = versus_store::AdminAction {
        id: Uuid::now_v7(),
        admin_id: Some(admin),
        action: "season_rollover".into(),
        target: Some("duel".into()),
        details: serde_json::json!({ "ended_season": 1 }),
        at: T0,
    };
    let roll = SeasonRollover {
        admin_action: Some(action.clone()),
        next_ends_at: None,
        ..rollover(1, T0 + Duration::hours(1))
    };
    assert!(matches!(b.store.roll_season(roll).await.unwrap(), Rolled::Done(s) if s.number == 2));
    let record = b.store.admin_actions(None, 10).await.unwrap();
    assert_eq!(record.len(), 1);
    assert_eq!(record[0].action, "season_rollover");
    assert_eq!(record[0].target.as_deref(), Some("duel"));
}
