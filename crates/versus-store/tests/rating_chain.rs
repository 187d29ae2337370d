//! Property: whatever results arrive, in whatever order and mix of sessions, every player's
//! rating history chains (each row's `before` is the previous row's `after`), starts at the
//! initial rating, and ends at the stored rating, with one row per rated game. Runs the real
//! rating systems through the store's result transaction (in-memory SQLite).

use proptest::prelude::*;
use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;
use versus_core::account::{DisplayName, Username};
use versus_core::matchmaking::PlayerId;
use versus_core::rating::{AnyRatingSystem, RatingConfig, RatingSystem as _};
use versus_core::session::{self, Actor, ReportedTeam, SessionState};
use versus_store::{
    NewPlayer, NewSession, RatedResult, RatingUpdate, Recorded, ResultToRecord, RosterRating,
    SqliteStore, Store,
};

const PLAYERS: usize = 6;

/// One game: two teams drawn from the pool, and each team's rank.
#[derive(Debug, Clone)]
struct Game {
    teams: Vec<Vec<usize>>,
    ranks: Vec<u32>,
}

fn game() -> impl Strategy<Value = Game> {
    (
        Just((0..PLAYERS).collect::<Vec<_>>()).prop_shuffle(),
        1usize..=3,
        1u32..=2,
        1u32..=2,
    )
        .prop_map(|(pool, size, a, b)| Game {
            teams: vec![pool[..size].to_vec(), pool[size..2 * size].to_vec()],
            ranks: vec![a, b],
        })
}

fn systems() -> impl Strategy<Value = AnyRatingSystem> {
    prop_oneof![
        Just(RatingConfig::Elo {
            k: 32.0,
            initial_rating: 1000.0
        }),
        Just(RatingConfig::Glicko2 { tau: 0.5 }),
        Just(RatingConfig::WengLin {
            beta: 25.0 / 6.0,
            initial_rating: 25.0,
            initial_deviation: 25.0 / 3.0
        }),
    ]
    .prop_map(|config| config.build().unwrap())
}

async fn play(system: AnyRatingSystem, games: Vec<Game>) {
    let store = SqliteStore::in_memory().await.unwrap();
    let mut players = Vec::new();
    for i in 0..PLAYERS {
        let username = Username::parse(&format!("player{i}")).unwrap();
        let player = store
            .create_player(NewPlayer {
                id: Uuid::now_v7(),
                display_name: DisplayName::from(&username),
                username,
                password_hash: None,
                created_at: OffsetDateTime::now_utc(),
            })
            .await
            .unwrap();
        players.push(player.id);
    }
    let mut games_of = [0u64; PLAYERS];
    for (n, game) in games.iter().enumerate() {
        let id = Uuid::now_v7();
        let teams: Vec<Vec<Uuid>> = (game.teams.iter())
            .map(|t| t.iter().map(|&i| players[i]).collect())
            .collect();
        let session = NewSession {
            id,
            queue: "q".into(),
            ranked: true,
            region: None,
            teams: teams.clone(),
            reason: "matched".into(),
            actor: Actor::System,
            at: OffsetDateTime::now_utc(),
            placed: versus_store::Placement::Allocating,
        };
        store.create_session(session).await.unwrap();
        store
            .transition_session(
                id,
                SessionState::Ready,
                Actor::System,
                "allocated",
                Some("h:1"),
                OffsetDateTime::now_utc(),
            )
            .await
            .unwrap();
        let reported: Vec<ReportedTeam> = (teams.iter().zip(&game.ranks))
            .map(|(team, &rank)| ReportedTeam {
                players: team.iter().map(|p| PlayerId(p.as_u128())).collect(),
                rank,
            })
            .collect();
        let rate = |roster: &[Vec<RosterRating>]| {
            let ids: Vec<Vec<PlayerId>> = (roster.iter())
                .map(|t| t.iter().map(|m| PlayerId(m.player_id.as_u128())).collect())
                .collect();
            let checked = session::check_result(&ids, &reported).map_err(|e| e.to_string())?;
            let before: Vec<Vec<_>> = (roster.iter())
                .map(|t| {
                    t.iter()
                        .map(|m| {
                            m.rating
                                .as_ref()
                                .map_or_else(|| system.initial_rating(), |s| s.rating)
                        })
                        .collect()
                })
                .collect();
            let after = session::rate(&system, &before, &checked).map_err(|e| e.to_string())?;
            let mut updates = Vec::new();
            for (t, team) in roster.iter().enumerate() {
                for (i, member) in team.iter().enumerate() {
                    updates.push(RatingUpdate {
                        player_id: member.player_id,
                        outcome: checked.outcomes[t],
                        before: before[t][i],
                        before_display: system.display_rating(&before[t][i]),
                        after: after[t][i],
                        after_display: system.display_rating(&after[t][i]),
                    });
                }
            }
            Ok(RatedResult {
                updates,
                answer: json!({}),
            })
        };
        let at = OffsetDateTime::now_utc() + time::Duration::milliseconds(n as i64);
        let recorded = store
            .record_result(ResultToRecord {
                session_id: id,
                result: json!(n),
                result_hash: vec![0],
                at,
                rate: &rate,
                carry: &|s| (s.rating, s.display_rating),
            })
            .await
            .unwrap();
        assert!(matches!(recorded, Recorded::Applied(_)), "{recorded:?}");
        for team in &game.teams {
            for &i in team {
                games_of[i] += 1;
            }
        }
    }
    for (i, &player) in players.iter().enumerate() {
        let history = store
            .rating_history(player, "q", None, None, 1000)
            .await
            .unwrap();
        assert_eq!(history.len() as u64, games_of[i]);
        let stored = store.player_rating(player, "q").await.unwrap();
        let Some(stored) = stored else {
            assert!(history.is_empty());
            continue;
        };
        assert_eq!(stored.games, games_of[i]);
        assert_eq!(
            history[0].after, stored.rating,
            "the newest row ends at the stored rating"
        );
        assert_eq!(history[0].after_display, stored.display_rating);
        for pair in history.windows(2) {
            assert_eq!(
                pair[0].before, pair[1].after,
                "each row starts where the older one ended"
            );
        }
        assert_eq!(history.last().unwrap().before, system.initial_rating());
    }
    store.close().await;
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn rating_histories_chain_to_the_stored_rating(
        system in systems(),
        games in prop::collection::vec(game(), 1..25),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(play(system, games));
    }
}
