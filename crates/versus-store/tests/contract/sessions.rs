//! The session, result and rating part of the `Store` contract (issue 13).

use std::collections::HashMap;

use serde_json::json;
use versus_core::rating::PlayerRating;
use versus_core::session::{Actor, Outcome, SessionState};
use versus_store::{
    Cursor, NewSession, RatedResult, RatingUpdate, Recorded, ResultToRecord, RosterRating,
    SessionRecord, Transitioned,
};

use super::*;

const START: f64 = 1000.0;

pub(crate) async fn players(b: &Backend, n: usize) -> Vec<Uuid> {
    let mut ids = Vec::new();
    for _ in 0..n {
        let name = format!("p{}", &Uuid::new_v4().simple().to_string()[..12]);
        ids.push(b.store.create_player(new_player(&name)).await.unwrap().id);
    }
    ids
}

async fn new_session(b: &Backend, teams: Vec<Vec<Uuid>>, ranked: bool) -> Uuid {
    let id = Uuid::now_v7();
    b.store
        .create_session(NewSession {
            id,
            queue: "duel".into(),
            ranked,
            region: Some("eu".into()),
            teams,
            reason: "matched".into(),
            actor: Actor::System,
            at: T0,
            placed: versus_store::Placement::Allocating,
        })
        .await
        .unwrap();
    id
}

async fn to(b: &Backend, id: Uuid, state: SessionState, endpoint: Option<&str>) -> Transitioned {
    b.store
        .transition_session(id, state, Actor::GameServer, "test", endpoint, T0)
        .await
        .unwrap()
}

/// A toy rating rule: the first-ranked team (index 0 of `winners`) gains 10, others lose 10.
fn rate_with(
    winner_team: usize,
) -> impl Fn(&[Vec<RosterRating>]) -> Result<RatedResult, String> + Send + Sync {
    move |roster: &[Vec<RosterRating>]| {
        let mut updates = Vec::new();
        for (t, team) in roster.iter().enumerate() {
            for member in team {
                let before = member
                    .rating
                    .as_ref()
                    .map_or(PlayerRating::new(START, 0.0), |r| r.rating);
                let (outcome, delta) = if t == winner_team {
                    (Outcome::Win, 10.0)
                } else {
                    (Outcome::Loss, -10.0)
                };
                let after = PlayerRating::new(before.rating + delta, 0.0);
                updates.push(RatingUpdate {
                    player_id: member.player_id,
                    outcome,
                    before,
                    before_display: before.rating,
                    after,
                    after_display: after.rating,
                });
            }
        }
        let answer = json!({ "changes": updates.len(), "winner": winner_team });
        Ok(RatedResult { updates, answer })
    }
}

pub(crate) async fn report(
    b: &Backend,
    id: Uuid,
    winner_team: usize,
    at: OffsetDateTime,
) -> Recorded {
    let rate = rate_with(winner_team);
    b.store
        .record_result(ResultToRecord {
            session_id: id,
            result: json!({ "winner": winner_team }),
            result_hash: vec![winner_team as u8; 32],
            at,
            rate: &rate,
            carry: &halfway,
        })
        .await
        .unwrap()
}

pub(crate) async fn ready_session(b: &Backend, teams: Vec<Vec<Uuid>>) -> Uuid {
    let id = new_session(b, teams, true).await;
    assert!(matches!(
        to(b, id, SessionState::Ready, Some("10.0.0.1:7777")).await,
        Transitioned::Done(_)
    ));
    id
}

pub(crate) async fn sessions_are_stored_with_every_transition(b: &mut Backend) {
    let p = players(b, 4).await;
    let teams = vec![vec![p[0], p[1]], vec![p[2], p[3]]];
    let id = new_session(b, teams.clone(), true).await;
    let record = b.store.session(id).await.unwrap().unwrap();
    assert_eq!(record.state, SessionState::Allocating);
    assert_eq!(record.teams, teams);
    assert_eq!(record.region.as_deref(), Some("eu"));
    assert_eq!(record.endpoint, None);
    assert_eq!(record.transitions.len(), 1);
    assert_eq!(record.transitions[0].from, None);
    assert_eq!(record.transitions[0].actor, Actor::System);

    let Transitioned::Done(ready) = to(b, id, SessionState::Ready, Some("10.0.0.1:7777")).await
    else {
        panic!("allocating → ready is legal");
    };
    assert_eq!(ready.endpoint.as_deref(), Some("10.0.0.1:7777"));
    assert!(matches!(
        to(b, id, SessionState::Active, None).await,
        Transitioned::Done(SessionRecord {
            state: SessionState::Active,
            ..
        })
    ));
    assert_eq!(
        to(b, id, SessionState::Ready, None).await,
        Transitioned::Illegal {
            current: SessionState::Active
        }
    );
    assert_eq!(
        to(b, Uuid::now_v7(), SessionState::Ready, None).await,
        Transitioned::Unknown
    );
    b.reopen().await;
    let record = b.store.session(id).await.unwrap().unwrap();
    assert_eq!(record.state, SessionState::Active);
    assert_eq!(record.endpoint.as_deref(), Some("10.0.0.1:7777"), "kept");
    let path: Vec<_> = record.transitions.iter().map(|t| (t.from, t.to)).collect();
    assert_eq!(
        path,
        [
            (None, SessionState::Allocating),
            (Some(SessionState::Allocating), SessionState::Ready),
            (Some(SessionState::Ready), SessionState::Active),
        ]
    );
    assert_eq!(record.transitions[2].actor, Actor::GameServer);

    let live = (b.store)
        .sessions_in_states(&[SessionState::Ready, SessionState::Active])
        .await
        .unwrap();
    assert_eq!(live.iter().map(|s| s.id).collect::<Vec<_>>(), [id]);
    assert!(
        (b.store
            .sessions_in_states(&[SessionState::Allocating])
            .await
            .unwrap())
        .is_empty()
    );
}

pub(crate) async fn a_session_of_unknown_players_is_refused(b: &mut Backend) {
    let p = players(b, 1).await;
    let err = b
        .store
        .create_session(NewSession {
            id: Uuid::now_v7(),
            queue: "duel".into(),
            ranked: true,
            region: None,
            teams: vec![vec![p[0]], vec![Uuid::now_v7()]],
            reason: "custom".into(),
            actor: Actor::GameServer,
            at: T0,
            placed: versus_store::Placement::Allocating,
        })
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::UnknownPlayer), "{err:?}");
    assert!(
        (b.store
            .sessions_in_states(&[SessionState::Allocating])
            .await
            .unwrap())
        .is_empty(),
        "nothing of it is stored"
    );
}

pub(crate) async fn a_result_is_applied_once_with_its_ratings(b: &mut Backend) {
    let p = players(b, 2).await;
    let id = ready_session(b, vec![vec![p[0]], vec![p[1]]]).await;
    let Recorded::Applied(answer) = report(b, id, 0, T0).await else {
        panic!("first result applies");
    };
    assert_eq!(answer["winner"], 0);
    assert_eq!(report(b, id, 0, T0).await, Recorded::Duplicate(answer));
    assert_eq!(report(b, id, 1, T0).await, Recorded::Conflict);

    let winner = b.store.player_rating(p[0], "duel").await.unwrap().unwrap();
    assert_eq!(winner.rating.rating, START + 10.0);
    assert_eq!(
        (winner.games, winner.wins, winner.losses, winner.draws),
        (1, 1, 0, 0)
    );
    let loser = b.store.player_ratings(p[1]).await.unwrap();
    assert_eq!(loser.len(), 1);
    assert_eq!(loser[0].display_rating, START - 10.0);
    assert_eq!((loser[0].games, loser[0].losses), (1, 1));
    assert_eq!(b.store.player_rating(p[0], "other").await.unwrap(), None);

    let record = b.store.session(id).await.unwrap().unwrap();
    assert_eq!(record.state, SessionState::Ended);
    assert_eq!(record.result, Some(json!({ "winner": 0 })));
    let last = record.transitions.last().unwrap();
    assert_eq!(
        (last.from, last.to),
        (Some(SessionState::Ready), SessionState::Ended)
    );

    let history = b
        .store
        .rating_history(p[1], "duel", None, None, 10)
        .await
        .unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].outcome, Outcome::Loss);
    assert_eq!(history[0].before.rating, START);
    assert_eq!(history[0].after_display, START - 10.0);
    let matches = b.store.match_history(p[1], None, 10).await.unwrap();
    assert_eq!(matches.len(), 1);
    assert_eq!(matches[0].team, 1);
    assert_eq!(matches[0].outcome, Some(Outcome::Loss));
    assert_eq!(matches[0].rating_change, Some(-10.0));
    assert_eq!(matches[0].teams, vec![vec![p[0]], vec![p[1]]]);
}

pub(crate) async fn results_need_a_live_or_ended_session(b: &mut Backend) {
    let p = players(b, 2).await;
    let allocating = new_session(b, vec![vec![p[0]], vec![p[1]]], true).await;
    assert_eq!(
        report(b, allocating, 0, T0).await,
        Recorded::NotLive(SessionState::Allocating)
    );
    let abandoned = ready_session(b, vec![vec![p[0]], vec![p[1]]]).await;
    to(b, abandoned, SessionState::Abandoned, None).await;
    assert_eq!(
        report(b, abandoned, 0, T0).await,
        Recorded::NotLive(SessionState::Abandoned)
    );
    // Ended by its game server first, the result comes after: still accepted.
    let ended = ready_session(b, vec![vec![p[0]], vec![p[1]]]).await;
    to(b, ended, SessionState::Active, None).await;
    to(b, ended, SessionState::Ended, None).await;
    assert!(matches!(
        report(b, ended, 1, T0).await,
        Recorded::Applied(_)
    ));
    assert_eq!(report(b, Uuid::now_v7(), 0, T0).await, Recorded::Unknown);

    let refused = ready_session(b, vec![vec![p[0]], vec![p[1]]]).await;
    let reject = |_: &[Vec<RosterRating>]| Err("player 9 is not in this session".to_owned());
    let recorded = b
        .store
        .record_result(ResultToRecord {
            session_id: refused,
            result: json!({}),
            result_hash: vec![1; 32],
            at: T0,
            rate: &reject,
            carry: &halfway,
        })
        .await
        .unwrap();
    assert_eq!(
        recorded,
        Recorded::Rejected("player 9 is not in this session".into())
    );
    assert_eq!(
        b.store.session(refused).await.unwrap().unwrap().state,
        SessionState::Ready,
        "nothing written"
    );
    assert!(matches!(
        report(b, refused, 0, T0).await,
        Recorded::Applied(_)
    ));
}

pub(crate) async fn unranked_results_change_no_rating(b: &mut Backend) {
    let p = players(b, 2).await;
    let id = new_session(b, vec![vec![p[0]], vec![p[1]]], false).await;
    to(b, id, SessionState::Ready, Some("x:1")).await;
    let none = |_: &[Vec<RosterRating>]| {
        Ok(RatedResult {
            updates: vec![],
            answer: json!({ "rated": false }),
        })
    };
    let recorded = b
        .store
        .record_result(ResultToRecord {
            session_id: id,
            result: json!({ "winner": 0 }),
            result_hash: vec![0; 32],
            at: T0,
            rate: &none,
            carry: &halfway,
        })
        .await
        .unwrap();
    assert_eq!(recorded, Recorded::Applied(json!({ "rated": false })));
    assert!(b.store.player_ratings(p[0]).await.unwrap().is_empty());
    let matches = b.store.match_history(p[0], None, 10).await.unwrap();
    assert_eq!((matches.len(), matches[0].outcome), (1, None));
}

pub(crate) async fn rating_histories_chain_and_page_without_gaps(b: &mut Backend) {
    let p = players(b, 3).await;
    let mut at = T0;
    for round in 0..7 {
        let (a, c) = if round % 2 == 0 {
            (p[0], p[1])
        } else {
            (p[2], p[0])
        };
        let id = ready_session(b, vec![vec![a], vec![c]]).await;
        at += Duration::seconds(1);
        assert!(matches!(
            report(b, id, round % 3 % 2, at).await,
            Recorded::Applied(_)
        ));
    }
    let history = b
        .store
        .rating_history(p[0], "duel", None, None, 100)
        .await
        .unwrap();
    assert_eq!(history.len(), 7);
    for pair in history.windows(2) {
        assert_eq!(
            pair[0].before, pair[1].after,
            "newest first, each before is the older after"
        );
    }
    let stored = b.store.player_rating(p[0], "duel").await.unwrap().unwrap();
    assert_eq!(history[0].after, stored.rating);
    assert_eq!(stored.games, 7);

    // Paging three at a time while newer matches keep arriving: no match is seen twice or
    // missed among those that existed when paging began.
    let before_paging: Vec<Uuid> = history.iter().map(|h| h.session_id).collect();
    let mut seen = Vec::new();
    let mut cursor: Option<Cursor> = None;
    loop {
        let page = b.store.match_history(p[0], cursor, 3).await.unwrap();
        if page.is_empty() {
            break;
        }
        seen.extend(page.iter().map(|m| m.session_id));
        let last = page.last().unwrap();
        cursor = Some(Cursor {
            at: last.ended_at,
            id: last.session_id,
        });
        let id = ready_session(b, vec![vec![p[0]], vec![p[1]]]).await;
        at += Duration::seconds(1);
        report(b, id, 0, at).await;
    }
    assert_eq!(seen, before_paging);
}

pub(crate) async fn concurrent_results_sharing_a_player_both_count(b: &mut Backend) {
    let p = players(b, 9).await;
    let mut sessions = Vec::new();
    for opponent in &p[1..] {
        sessions.push(ready_session(b, vec![vec![p[0]], vec![*opponent]]).await);
    }
    let tasks: Vec<_> = (sessions.iter().enumerate())
        .map(|(i, &id)| {
            let store = b.store.clone();
            tokio::spawn(async move {
                let rate = rate_with(0);
                let at = T0 + Duration::milliseconds(i as i64);
                store
                    .record_result(ResultToRecord {
                        session_id: id,
                        result: json!({}),
                        result_hash: vec![0; 32],
                        at,
                        rate: &rate,
                        carry: &halfway,
                    })
                    .await
                    .unwrap()
            })
        })
        .collect();
    for task in tasks {
        assert!(matches!(task.await.unwrap(), Recorded::Applied(_)));
    }
    let stored = b.store.player_rating(p[0], "duel").await.unwrap().unwrap();
    assert_eq!(stored.games, 8);
    assert_eq!(stored.rating.rating, START + 80.0, "no update was lost");
    let history = b
        .store
        .rating_history(p[0], "duel", None, None, 100)
        .await
        .unwrap();
    let mut befores: HashMap<u64, usize> = HashMap::new();
    for row in &history {
        *befores.entry(row.before.rating.to_bits()).or_default() += 1;
    }
    assert!(
        befores.values().all(|&n| n == 1),
        "every result saw the previous one"
    );
}

pub(crate) async fn backfilled_players_join_live_sessions_only(b: &mut Backend) {
    let p = players(b, 5).await;
    let id = ready_session(b, vec![vec![p[0], p[1]], vec![p[2], p[3]]]).await;
    let record = (b.store)
        .add_session_players(id, &[(p[4], 1), (p[0], 0)], T0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.teams, vec![vec![p[0], p[1]], vec![p[2], p[3], p[4]]]);
    to(b, id, SessionState::Cancelled, None).await;
    let q = players(b, 1).await;
    let record = (b.store.add_session_players(id, &[(q[0], 0)], T0))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.state, SessionState::Cancelled);
    assert!(!record.players().any(|x| x == q[0]));
    assert!(
        (b.store
            .add_session_players(Uuid::now_v7(), &[(q[0], 0)], T0))
        .await
        .unwrap()
        .is_none()
    );
}

fn placed_session(teams: Vec<Vec<Uuid>>, placed: versus_store::Placement) -> NewSession {
    NewSession {
        id: Uuid::now_v7(),
        queue: "duel".into(),
        ranked: true,
        region: Some("eu".into()),
        teams,
        reason: "matched".into(),
        actor: Actor::System,
        at: T0,
        placed,
    }
}

/// A tick's sessions are stored together, already placed, each with both transitions; one bad
/// roster stores none of them.
pub(crate) async fn a_tick_of_sessions_is_stored_at_once(b: &mut Backend) {
    use versus_store::Placement;
    let p = players(b, 6).await;
    let batch = vec![
        placed_session(
            vec![vec![p[0]], vec![p[1]]],
            Placement::Ready {
                endpoint: "10.0.0.1:7777".into(),
                reason: "allocated on 10.0.0.1:7777".into(),
            },
        ),
        placed_session(
            vec![vec![p[2]], vec![p[3]]],
            Placement::Cancelled {
                reason: "no game server has room".into(),
            },
        ),
        placed_session(vec![vec![p[4]], vec![p[5]]], Placement::Allocating),
    ];
    b.store.create_sessions(&batch).await.unwrap();
    b.reopen().await;
    let ready = b.store.session(batch[0].id).await.unwrap().unwrap();
    assert_eq!(ready.state, SessionState::Ready);
    assert_eq!(ready.endpoint.as_deref(), Some("10.0.0.1:7777"));
    assert_eq!(ready.teams, [vec![p[0]], vec![p[1]]]);
    let path: Vec<_> = ready.transitions.iter().map(|t| (t.from, t.to)).collect();
    assert_eq!(
        path,
        [
            (None, SessionState::Allocating),
            (Some(SessionState::Allocating), SessionState::Ready),
        ]
    );
    assert_eq!(ready.transitions[1].reason, "allocated on 10.0.0.1:7777");
    let cancelled = b.store.session(batch[1].id).await.unwrap().unwrap();
    assert_eq!(cancelled.state, SessionState::Cancelled);
    assert_eq!(cancelled.endpoint, None);
    assert_eq!(cancelled.transitions.len(), 2);
    let allocating = b.store.session(batch[2].id).await.unwrap().unwrap();
    assert_eq!(allocating.state, SessionState::Allocating);
    assert_eq!(allocating.transitions.len(), 1);
    // A later move numbers its transition after the stored ones.
    assert!(matches!(
        to(b, batch[0].id, SessionState::Active, None).await,
        Transitioned::Done(SessionRecord { ref transitions, .. }) if transitions.len() == 3
    ));

    let q = players(b, 2).await;
    let good = placed_session(vec![vec![q[0]], vec![q[1]]], Placement::Allocating);
    let bad = placed_session(
        vec![vec![q[0]], vec![Uuid::now_v7()]],
        Placement::Allocating,
    );
    let err = (b.store)
        .create_sessions(&[good.clone(), bad])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::UnknownPlayer), "{err:?}");
    assert_eq!(b.store.session(good.id).await.unwrap(), None, "all or none");
}

/// Moves written together are applied in order, each checked against the session as the
/// earlier ones left it; an illegal or unknown one does not stop the others.
pub(crate) async fn session_moves_are_written_together_in_order(b: &mut Backend) {
    use versus_store::SessionMove;
    let p = players(b, 4).await;
    let one = ready_session(b, vec![vec![p[0]], vec![p[1]]]).await;
    let two = ready_session(b, vec![vec![p[2]], vec![p[3]]]).await;
    let mv = |id, to, reason: &str| SessionMove {
        id,
        to,
        actor: Actor::GameServer,
        reason: reason.into(),
        endpoint: None,
        at: T0,
    };
    let unknown = Uuid::now_v7();
    let outcomes = (b.store)
        .transition_sessions(&[
            mv(one, SessionState::Active, "started"),
            mv(two, SessionState::Active, "started"),
            mv(unknown, SessionState::Active, "?"),
            mv(one, SessionState::Ready, "back?"),
            mv(one, SessionState::Ended, "over"),
        ])
        .await
        .unwrap();
    assert_eq!(outcomes.len(), 5);
    assert!(matches!(&outcomes[0], Transitioned::Done(r) if r.state == SessionState::Active));
    assert!(matches!(&outcomes[1], Transitioned::Done(r) if r.state == SessionState::Active));
    assert_eq!(outcomes[2], Transitioned::Unknown);
    assert_eq!(
        outcomes[3],
        Transitioned::Illegal {
            current: SessionState::Active
        }
    );
    let Transitioned::Done(ended) = &outcomes[4] else {
        panic!("active → ended is legal: {:?}", outcomes[4]);
    };
    assert_eq!(ended.state, SessionState::Ended);
    b.reopen().await;
    let stored = b.store.session(one).await.unwrap().unwrap();
    assert_eq!(&stored, ended, "the answer is what was stored");
    let path: Vec<_> = stored
        .transitions
        .iter()
        .map(|t| (t.to, t.reason.as_str()))
        .collect();
    assert_eq!(
        path,
        [
            (SessionState::Allocating, "matched"),
            (SessionState::Ready, "test"),
            (SessionState::Active, "started"),
            (SessionState::Ended, "over"),
        ]
    );
    assert_eq!(
        stored.endpoint.as_deref(),
        Some("10.0.0.1:7777"),
        "a move without an endpoint keeps it"
    );
    assert_eq!(
        b.store.session(two).await.unwrap().unwrap().state,
        SessionState::Active
    );
}
