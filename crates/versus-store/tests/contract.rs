//! The `Store` contract: one suite, run against SQLite (a temp file) and PostgreSQL (a database
//! of its own per test). Each `async fn` below takes a `Backend`; the `contract!` macro at the
//! bottom generates `sqlite::<name>` and `postgres::<name>` tests from it.
//!
//! PostgreSQL tests print `SKIPPED (...)` and pass when no server is reachable, unless
//! `CI=true` or `VERSUS_REQUIRE_BACKENDS=1` (then they fail); see `versus_store::testing`.

use std::sync::Arc;

use time::macros::datetime;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;
use versus_core::account::{DisplayName, Region, Username};
use versus_store::testing::{self, TestDatabase};
use versus_store::{
    DeviceAccount, MatchmakingPreferences, NewPlayer, NewRefreshToken, PlayerPatch, PostgresStore,
    Rotation, SqliteStore, Store, StoreError, TokenFamily, stored_timestamp,
};

// ---------------------------------------------------------------------------------------------
// Harness

enum Kind {
    Sqlite(tempfile::TempDir),
    Postgres(TestDatabase),
}

struct Backend {
    store: Arc<dyn Store>,
    /// The same store's pool, for tests that must get behind the trait (corrupt rows).
    pool: Pool,
    kind: Kind,
}

enum Pool {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

impl Pool {
    /// Runs SQL that is valid on both backends.
    async fn execute(&self, sql: &'static str) {
        match self {
            Pool::Sqlite(pool) => drop(sqlx::query(sql).execute(pool).await.unwrap()),
            Pool::Postgres(pool) => drop(sqlx::query(sql).execute(pool).await.unwrap()),
        }
    }

    /// How many refresh tokens the family holds, spent and revoked ones included.
    async fn tokens_in_family(&self, family_id: Uuid) -> i64 {
        const SQL: &str = "SELECT COUNT(*) FROM refresh_tokens WHERE family_id = $1";
        match self {
            Pool::Sqlite(pool) => {
                sqlx::query_scalar(SQL)
                    .bind(family_id)
                    .fetch_one(pool)
                    .await
            }
            Pool::Postgres(pool) => {
                sqlx::query_scalar(SQL)
                    .bind(family_id)
                    .fetch_one(pool)
                    .await
            }
        }
        .unwrap()
    }
}

impl Backend {
    async fn sqlite() -> Self {
        let (store, dir) = testing::sqlite_test_store().await;
        Self {
            pool: Pool::Sqlite(store.pool().clone()),
            store: Arc::new(store),
            kind: Kind::Sqlite(dir),
        }
    }

    async fn postgres() -> Option<Self> {
        let db = testing::postgres_test_db().await?;
        let store = db.store().await;
        Some(Self {
            pool: Pool::Postgres(store.pool().clone()),
            store: Arc::new(store),
            kind: Kind::Postgres(db),
        })
    }

    /// Closes the store and opens a new one on the same database.
    async fn reopen(&mut self) {
        self.store.close().await;
        match &self.kind {
            Kind::Sqlite(dir) => {
                let store = SqliteStore::open(&testing::sqlite_test_path(dir))
                    .await
                    .unwrap();
                self.pool = Pool::Sqlite(store.pool().clone());
                self.store = Arc::new(store);
            }
            Kind::Postgres(db) => {
                let store = PostgresStore::connect(&db.url, 4).await.unwrap();
                self.pool = Pool::Postgres(store.pool().clone());
                self.store = Arc::new(store);
            }
        }
    }

    async fn finish(self) {
        self.store.close().await;
        match self.kind {
            Kind::Sqlite(dir) => drop(dir),
            Kind::Postgres(db) => db.drop().await,
        }
    }
}

const T0: OffsetDateTime = datetime!(2026-11-23 12:00:00.123456789 UTC);

fn username(raw: &str) -> Username {
    Username::parse(raw).unwrap()
}

fn display(raw: &str) -> DisplayName {
    DisplayName::parse(raw).unwrap()
}

fn region(raw: &str) -> Region {
    Region::parse(raw).unwrap()
}

fn new_player(name: &str) -> NewPlayer {
    let username = username(name);
    NewPlayer {
        id: Uuid::now_v7(),
        display_name: DisplayName::from(&username),
        username,
        password_hash: Some(format!(
            "$argon2id$v=19$m=19456,t=2,p=1$salt-of-{name}$hash"
        )),
        created_at: T0,
    }
}

fn random_hash() -> Vec<u8> {
    [*Uuid::new_v4().as_bytes(), *Uuid::new_v4().as_bytes()].concat()
}

/// A token valid for one hour from `T0`, in a new family unless one is given.
fn token(player_id: Uuid) -> NewRefreshToken {
    NewRefreshToken {
        id: Uuid::now_v7(),
        family_id: Uuid::now_v7(),
        player_id,
        token_hash: random_hash(),
        created_at: T0,
        expires_at: T0 + Duration::hours(1),
    }
}

/// Rotation without a grace window: every second presentation of a token is a replay.
const NO_GRACE: Duration = Duration::ZERO;

/// What a rotation at `now` of a live token of the family answers.
fn rotation(player_id: Uuid, family_id: Uuid, now: OffsetDateTime) -> Rotation {
    Rotation::Rotated {
        player_id,
        family_id,
        rotated_at: stored_timestamp(now).unwrap(),
    }
}

/// The successor the caller offers on rotation; family and player are deliberately wrong, the
/// store must overwrite them.
fn successor() -> NewRefreshToken {
    token(Uuid::now_v7())
}

async fn player_with_token(store: &dyn Store, name: &str) -> (Uuid, NewRefreshToken) {
    let player = store.create_player(new_player(name)).await.unwrap();
    let token = token(player.id);
    store.insert_refresh_token(token.clone()).await.unwrap();
    (player.id, token)
}

// ---------------------------------------------------------------------------------------------
// The contract

async fn ping_works(b: &mut Backend) {
    b.store.ping().await.unwrap();
    assert!(matches!(b.store.backend(), "sqlite" | "postgres"));
}

async fn create_and_read_player(b: &mut Backend) {
    assert_eq!(b.store.player_count().await.unwrap(), 0);
    let new = new_player("Alice");
    let created = b.store.create_player(new.clone()).await.unwrap();
    assert_eq!(b.store.player_count().await.unwrap(), 1);
    assert_eq!(created.id, new.id);
    assert_eq!(created.username, new.username);
    assert_eq!(created.display_name, new.display_name);
    assert_eq!(created.email, None);
    assert_eq!(created.region, None);
    assert!(!created.banned);
    assert_eq!(Some(created.created_at), stored_timestamp(T0));
    assert_eq!(created.updated_at, created.created_at);

    assert_eq!(b.store.player(new.id).await.unwrap(), Some(created));
    assert_eq!(b.store.player(Uuid::now_v7()).await.unwrap(), None);
}

async fn usernames_are_unique_case_insensitively(b: &mut Backend) {
    let alice = b.store.create_player(new_player("Alice")).await.unwrap();
    for clash in ["alice", "ALICE", "Alice"] {
        let err = b.store.create_player(new_player(clash)).await.unwrap_err();
        assert!(matches!(err, StoreError::UsernameTaken), "{clash}: {err:?}");
    }
    let same_id = NewPlayer {
        id: alice.id,
        ..new_player("Bob")
    };
    let err = b.store.create_player(same_id).await.unwrap_err();
    assert!(matches!(err, StoreError::DuplicateId), "{err:?}");
    // The failed attempts changed nothing.
    assert_eq!(b.store.player(alice.id).await.unwrap(), Some(alice));
    assert!(
        b.store
            .credentials_by_username(&username("bob"))
            .await
            .unwrap()
            .is_none()
    );
}

async fn update_applies_patch_and_bumps_updated_at(b: &mut Backend) {
    let created = b.store.create_player(new_player("Carol")).await.unwrap();
    let t1 = T0 + Duration::minutes(1);
    let t2 = T0 + Duration::minutes(2);
    let t3 = T0 + Duration::minutes(3);

    let patch = PlayerPatch {
        display_name: Some(display("Carol the Great")),
        region: Some(Some(region("eu-west"))),
    };
    let p1 = b
        .store
        .update_player(created.id, patch, t1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(p1.display_name, display("Carol the Great"));
    assert_eq!(p1.region, Some(region("eu-west")));
    assert_eq!(p1.username, created.username);
    assert_eq!(p1.created_at, created.created_at);
    assert_eq!(Some(p1.updated_at), stored_timestamp(t1));

    // `None` leaves fields alone.
    let p2 = b
        .store
        .update_player(created.id, PlayerPatch::default(), t2)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(p2.display_name, p1.display_name);
    assert_eq!(p2.region, p1.region);
    assert_eq!(Some(p2.updated_at), stored_timestamp(t2));

    // `Some(None)` clears the region.
    let clear = PlayerPatch {
        display_name: None,
        region: Some(None),
    };
    let p3 = b
        .store
        .update_player(created.id, clear, t3)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(p3.region, None);
    assert_eq!(p3.display_name, display("Carol the Great"));
    assert_eq!(b.store.player(created.id).await.unwrap(), Some(p3));

    let missing = b
        .store
        .update_player(Uuid::now_v7(), PlayerPatch::default(), t3)
        .await
        .unwrap();
    assert_eq!(missing, None);
}

async fn credentials_lookup_is_case_insensitive(b: &mut Backend) {
    let new = new_player("DaVe_99");
    let created = b.store.create_player(new.clone()).await.unwrap();
    for lookup in ["DaVe_99", "dave_99", "DAVE_99"] {
        let creds = b
            .store
            .credentials_by_username(&username(lookup))
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{lookup} not found"));
        assert_eq!(creds.player, created);
        assert_eq!(creds.password_hash, new.password_hash);
    }
    assert!(
        b.store
            .credentials_by_username(&username("dave_98"))
            .await
            .unwrap()
            .is_none()
    );
}

async fn timestamps_round_trip(b: &mut Backend) {
    let samples = [
        datetime!(2026-11-23 12:00:00 UTC),
        datetime!(2026-11-23 12:00:00.000001 UTC),
        datetime!(2026-11-23 12:00:00.999999999 UTC),
        datetime!(2026-11-23 17:30:00.5 +05:30),
        datetime!(1970-01-01 00:00:00 UTC),
        datetime!(1999-12-31 23:59:59.999999 -08:00),
        datetime!(2999-06-15 08:00:00.25 UTC),
    ];
    for (i, at) in samples.into_iter().enumerate() {
        let new = NewPlayer {
            created_at: at,
            ..new_player(&format!("time_{i}"))
        };
        let created = b.store.create_player(new.clone()).await.unwrap();
        let expected = stored_timestamp(at).unwrap();
        assert_eq!(created.created_at, expected, "{at}");
        let read = b.store.player(new.id).await.unwrap().unwrap();
        assert_eq!(read.created_at, expected, "{at}");
        assert_eq!(read.created_at.offset(), time::UtcOffset::UTC);
        assert_eq!(read, created);

        let updated = b
            .store
            .update_player(new.id, PlayerPatch::default(), at)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(updated.updated_at, expected, "{at}");
    }
}

async fn rotation_happy_path(b: &mut Backend) {
    let (player_id, t1) = player_with_token(&*b.store, "Erin").await;
    let t2 = successor();
    let now = T0 + Duration::minutes(5);
    let rotated = b
        .store
        .rotate_refresh_token(&t1.token_hash, t2.clone(), NO_GRACE, now)
        .await
        .unwrap();
    assert_eq!(rotated, rotation(player_id, t1.family_id, now));

    // The successor was stored under the presented token's player and family, and is live.
    let t3 = successor();
    let rotated = b
        .store
        .rotate_refresh_token(&t2.token_hash, t3.clone(), NO_GRACE, now)
        .await
        .unwrap();
    assert_eq!(rotated, rotation(player_id, t1.family_id, now));
    let replay = b
        .store
        .rotate_refresh_token(&t1.token_hash, successor(), NO_GRACE, now)
        .await
        .unwrap();
    assert_eq!(
        replay,
        Rotation::Reused {
            player_id,
            family_id: t1.family_id
        }
    );
}

async fn reuse_revokes_the_family(b: &mut Backend) {
    let (player_id, t1) = player_with_token(&*b.store, "Frank").await;
    let now = T0 + Duration::minutes(5);
    let t2 = successor();
    b.store
        .rotate_refresh_token(&t1.token_hash, t2.clone(), NO_GRACE, now)
        .await
        .unwrap();

    let offered = successor();
    let replay = b
        .store
        .rotate_refresh_token(&t1.token_hash, offered.clone(), NO_GRACE, now)
        .await
        .unwrap();
    let reused = Rotation::Reused {
        player_id,
        family_id: t1.family_id,
    };
    assert_eq!(replay, reused);
    // The newest token of the chain is revoked too, and the one offered was not stored.
    let newest = b
        .store
        .rotate_refresh_token(&t2.token_hash, successor(), NO_GRACE, now)
        .await
        .unwrap();
    assert_eq!(newest, reused);
    let offered_rotation = b
        .store
        .rotate_refresh_token(&offered.token_hash, successor(), NO_GRACE, now)
        .await
        .unwrap();
    assert_eq!(offered_rotation, Rotation::Unknown);
}

async fn expired_token(b: &mut Backend) {
    let (player_id, t1) = player_with_token(&*b.store, "Grace").await;
    let offered = successor();
    let at_expiry = t1.expires_at;
    let expired = b
        .store
        .rotate_refresh_token(&t1.token_hash, offered.clone(), NO_GRACE, at_expiry)
        .await;
    assert_eq!(expired.unwrap(), Rotation::Expired);
    let later = at_expiry + Duration::days(1);
    let expired = b
        .store
        .rotate_refresh_token(&t1.token_hash, offered.clone(), NO_GRACE, later)
        .await;
    assert_eq!(expired.unwrap(), Rotation::Expired);
    // Nothing was stored, nothing spent: just before expiry it still rotates.
    let unknown = b
        .store
        .rotate_refresh_token(&offered.token_hash, successor(), NO_GRACE, T0)
        .await;
    assert_eq!(unknown.unwrap(), Rotation::Unknown);
    let just_before = at_expiry - Duration::microseconds(1);
    let rotated = b
        .store
        .rotate_refresh_token(&t1.token_hash, offered, NO_GRACE, just_before)
        .await;
    assert_eq!(
        rotated.unwrap(),
        rotation(player_id, t1.family_id, just_before)
    );
}

async fn unknown_token(b: &mut Backend) {
    player_with_token(&*b.store, "Heidi").await;
    for hash in [random_hash(), vec![], vec![0; 1], vec![0xff; 1000]] {
        let rotation = b
            .store
            .rotate_refresh_token(&hash, successor(), NO_GRACE, T0)
            .await
            .unwrap();
        assert_eq!(rotation, Rotation::Unknown);
        assert_eq!(
            b.store.revoke_refresh_family(&hash, T0).await.unwrap(),
            None
        );
    }
}

async fn concurrent_rotation_has_one_winner(b: &mut Backend) {
    let (player_id, t1) = player_with_token(&*b.store, "Ivan").await;
    let now = T0 + Duration::minutes(1);
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let store = Arc::clone(&b.store);
            let hash = t1.token_hash.clone();
            let next = successor();
            tokio::spawn(async move {
                let outcome = store
                    .rotate_refresh_token(&hash, next.clone(), NO_GRACE, now)
                    .await;
                (outcome.unwrap(), next)
            })
        })
        .collect();
    let mut winners = Vec::new();
    for task in tasks {
        let (outcome, next) = task.await.unwrap();
        match outcome {
            Rotation::Rotated { player_id: p, .. } => {
                assert_eq!(p, player_id);
                winners.push(next);
            }
            Rotation::Reused {
                player_id: p,
                family_id,
            } => {
                assert_eq!((p, family_id), (player_id, t1.family_id));
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one rotation must win");
    // The losers replayed a spent token, so the winner's token is revoked with its family.
    let after = b
        .store
        .rotate_refresh_token(&winners[0].token_hash, successor(), NO_GRACE, now)
        .await;
    assert!(matches!(after.unwrap(), Rotation::Reused { .. }));
}

async fn logout_is_idempotent(b: &mut Backend) {
    let (player_id, t1) = player_with_token(&*b.store, "Judy").await;
    let family = TokenFamily {
        player_id,
        family_id: t1.family_id,
    };
    let t2 = successor();
    b.store
        .rotate_refresh_token(&t1.token_hash, t2.clone(), NO_GRACE, T0)
        .await
        .unwrap();

    assert_eq!(
        b.store
            .revoke_refresh_family(&t2.token_hash, T0)
            .await
            .unwrap(),
        Some(family)
    );
    assert_eq!(
        b.store
            .revoke_refresh_family(&t2.token_hash, T0)
            .await
            .unwrap(),
        Some(family)
    );
    // Revoked through any member of the family.
    assert_eq!(
        b.store
            .revoke_refresh_family(&t1.token_hash, T0)
            .await
            .unwrap(),
        Some(family)
    );
    let after = b
        .store
        .rotate_refresh_token(&t2.token_hash, successor(), NO_GRACE, T0)
        .await
        .unwrap();
    assert!(matches!(after, Rotation::Reused { .. }), "{after:?}");
    assert_eq!(
        b.store
            .revoke_refresh_family(&random_hash(), T0)
            .await
            .unwrap(),
        None
    );
}

async fn revoke_all_tokens_of_a_player(b: &mut Backend) {
    let (alice, a1) = player_with_token(&*b.store, "Alice").await;
    let a2 = token(alice);
    b.store.insert_refresh_token(a2.clone()).await.unwrap();
    let (bob, b1) = player_with_token(&*b.store, "Bob").await;

    assert_eq!(
        b.store.revoke_all_refresh_tokens(alice, T0).await.unwrap(),
        2
    );
    assert_eq!(
        b.store.revoke_all_refresh_tokens(alice, T0).await.unwrap(),
        0
    );
    assert_eq!(
        b.store
            .revoke_all_refresh_tokens(Uuid::now_v7(), T0)
            .await
            .unwrap(),
        0
    );
    for t in [a1, a2] {
        let r = b
            .store
            .rotate_refresh_token(&t.token_hash, successor(), NO_GRACE, T0)
            .await
            .unwrap();
        assert!(
            matches!(r, Rotation::Reused { player_id, .. } if player_id == alice),
            "{r:?}"
        );
    }
    let r = b
        .store
        .rotate_refresh_token(&b1.token_hash, successor(), NO_GRACE, T0)
        .await
        .unwrap();
    assert!(
        matches!(r, Rotation::Rotated { player_id, family_id, .. } if player_id == bob && family_id == b1.family_id),
        "{r:?}"
    );
}

async fn refresh_token_constraints(b: &mut Backend) {
    let (player_id, t1) = player_with_token(&*b.store, "Karl").await;
    let same_id = NewRefreshToken {
        id: t1.id,
        ..token(player_id)
    };
    let err = b.store.insert_refresh_token(same_id).await.unwrap_err();
    assert!(matches!(err, StoreError::DuplicateId), "{err:?}");
    let same_hash = NewRefreshToken {
        token_hash: t1.token_hash.clone(),
        ..token(player_id)
    };
    let err = b.store.insert_refresh_token(same_hash).await.unwrap_err();
    assert!(matches!(err, StoreError::DuplicateId), "{err:?}");
    // Foreign keys are enforced.
    let err = b
        .store
        .insert_refresh_token(token(Uuid::now_v7()))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Database(_)), "{err:?}");
    // A successor colliding with an existing token fails the rotation and spends nothing.
    let colliding = NewRefreshToken {
        token_hash: t1.token_hash.clone(),
        ..successor()
    };
    let err = b
        .store
        .rotate_refresh_token(&t1.token_hash, colliding, NO_GRACE, T0)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::DuplicateId), "{err:?}");
    let r = b
        .store
        .rotate_refresh_token(&t1.token_hash, successor(), NO_GRACE, T0)
        .await
        .unwrap();
    assert_eq!(r, rotation(player_id, t1.family_id, T0));
}

async fn data_survives_reopen(b: &mut Backend) {
    let (player_id, t1) = player_with_token(&*b.store, "Liam").await;
    let patch = PlayerPatch {
        display_name: Some(display("Liam ✓")),
        region: Some(Some(region("na-east"))),
    };
    let before = b
        .store
        .update_player(player_id, patch, T0)
        .await
        .unwrap()
        .unwrap();
    b.reopen().await;
    assert_eq!(b.store.player(player_id).await.unwrap(), Some(before));
    let r = b
        .store
        .rotate_refresh_token(&t1.token_hash, successor(), NO_GRACE, T0)
        .await
        .unwrap();
    assert_eq!(r, rotation(player_id, t1.family_id, T0));
}

async fn strings_are_stored_verbatim(b: &mut Backend) {
    let names = [
        "Robert'); DROP TABLE players;--",
        "\" OR 1=1 --",
        "100% _wild_ \\ card",
        "名前 🎮 Zoë",
        "مرحبا",
        "$1 ?1 :name @x",
    ];
    for (i, raw) in names.into_iter().enumerate() {
        let new = NewPlayer {
            display_name: display(raw),
            password_hash: Some(format!("{raw} '\"\\ ✓")),
            ..new_player(&format!("v_{i}--x"))
        };
        let created = b.store.create_player(new.clone()).await.unwrap();
        assert_eq!(created.display_name.as_str(), raw);
        let creds = b
            .store
            .credentials_by_username(&new.username)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(creds.player.display_name.as_str(), raw);
        assert_eq!(creds.password_hash, new.password_hash);
        let patch = PlayerPatch {
            display_name: Some(display(&format!("{raw}!"))),
            region: None,
        };
        let updated = b
            .store
            .update_player(new.id, patch, T0)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(updated.display_name.as_str(), format!("{raw}!"));
    }
    // The tables are still there.
    b.store.ping().await.unwrap();
    assert!(
        b.store
            .credentials_by_username(&username("v_0--x"))
            .await
            .unwrap()
            .is_some()
    );
}

async fn logout_racing_rotation_leaves_no_live_token(b: &mut Backend) {
    let player = b.store.create_player(new_player("Quinn")).await.unwrap();
    for _ in 0..10 {
        let t1 = token(player.id);
        b.store.insert_refresh_token(t1.clone()).await.unwrap();
        let next = successor();
        let rotate = {
            let (store, hash, next) = (Arc::clone(&b.store), t1.token_hash.clone(), next.clone());
            tokio::spawn(async move { store.rotate_refresh_token(&hash, next, NO_GRACE, T0).await })
        };
        let logout = {
            let (store, hash) = (Arc::clone(&b.store), t1.token_hash.clone());
            tokio::spawn(async move { store.revoke_refresh_family(&hash, T0).await })
        };
        let rotated = rotate.await.unwrap().unwrap();
        let family = TokenFamily {
            player_id: player.id,
            family_id: t1.family_id,
        };
        assert_eq!(logout.await.unwrap().unwrap(), Some(family));
        // Whichever ran first, the family ends revoked: a successor issued in the race is dead.
        let after = b
            .store
            .rotate_refresh_token(&next.token_hash, successor(), NO_GRACE, T0)
            .await;
        match rotated {
            Rotation::Rotated { .. } => {
                assert!(matches!(after.unwrap(), Rotation::Reused { .. }));
            }
            Rotation::Reused { .. } => assert_eq!(after.unwrap(), Rotation::Unknown),
            other => panic!("unexpected {other:?}"),
        }
    }
}

async fn corrupt_rows_are_errors_not_panics(b: &mut Backend) {
    let created = b.store.create_player(new_player("Mallory")).await.unwrap();
    b.pool
        .execute("UPDATE players SET username = 'not a username!' WHERE username_key = 'mallory'")
        .await;
    let err = b.store.player(created.id).await.unwrap_err();
    assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
    let err = b
        .store
        .credentials_by_username(&username("mallory"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");

    let other = b.store.create_player(new_player("Niaj")).await.unwrap();
    b.pool
        .execute("UPDATE players SET region = 'Not A Region' WHERE username_key = 'niaj'")
        .await;
    let err = b
        .store
        .update_player(other.id, PlayerPatch::default(), T0)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
}

async fn unstorable_timestamps_are_errors(b: &mut Backend) {
    let created = b.store.create_player(new_player("Olivia")).await.unwrap();
    // In UTC this is year 10000, beyond what `time` represents.
    let far = datetime!(9999-12-31 23:00 -05:00);
    let err = b
        .store
        .update_player(created.id, PlayerPatch::default(), far)
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Database(sqlx::Error::Encode(_))),
        "{err:?}"
    );
    let err = b
        .store
        .create_player(NewPlayer {
            created_at: far,
            ..new_player("Peggy")
        })
        .await;
    assert!(matches!(err, Err(StoreError::Database(_))), "{err:?}");
    assert_eq!(b.store.player(created.id).await.unwrap(), Some(created));
}

fn preferences(regions: &[&str], modes: &[&str]) -> MatchmakingPreferences {
    MatchmakingPreferences {
        regions: regions.iter().map(|r| region(r)).collect(),
        modes: modes.iter().map(|&m| m.to_owned()).collect(),
    }
}

async fn preferences_unset_are_none(b: &mut Backend) {
    let player = b.store.create_player(new_player("Rosa")).await.unwrap();
    assert_eq!(
        b.store.matchmaking_preferences(player.id).await.unwrap(),
        None
    );
    assert_eq!(
        b.store
            .matchmaking_preferences(Uuid::now_v7())
            .await
            .unwrap(),
        None
    );
}

async fn preferences_round_trip_in_order(b: &mut Backend) {
    let alice = b.store.create_player(new_player("Alice")).await.unwrap();
    let bob = b.store.create_player(new_player("Bob")).await.unwrap();
    // Deliberately not sorted, with a duplicate and strings that need escaping.
    let prefs = preferences(
        &["na-east", "eu", "asia", "eu"],
        &["ranked-1v1", "casual \"ffa\" 8", "名前 🎮", ""],
    );
    b.store
        .set_matchmaking_preferences(alice.id, &prefs, T0)
        .await
        .unwrap();
    assert_eq!(
        b.store.matchmaking_preferences(alice.id).await.unwrap(),
        Some(prefs)
    );
    // Empty lists are preferences too, distinct from "never set".
    b.store
        .set_matchmaking_preferences(bob.id, &MatchmakingPreferences::default(), T0)
        .await
        .unwrap();
    assert_eq!(
        b.store.matchmaking_preferences(bob.id).await.unwrap(),
        Some(MatchmakingPreferences::default())
    );
}

async fn preferences_are_overwritten(b: &mut Backend) {
    let alice = b.store.create_player(new_player("Alice")).await.unwrap();
    let bob = b.store.create_player(new_player("Bob")).await.unwrap();
    let first = preferences(&["eu", "na-east"], &["ranked-1v1", "casual-ffa-8"]);
    let second = preferences(&["asia"], &[]);
    let bobs = preferences(&["na-east"], &["ranked-2v2"]);
    b.store
        .set_matchmaking_preferences(alice.id, &first, T0)
        .await
        .unwrap();
    b.store
        .set_matchmaking_preferences(bob.id, &bobs, T0)
        .await
        .unwrap();
    b.store
        .set_matchmaking_preferences(alice.id, &second, T0 + Duration::minutes(1))
        .await
        .unwrap();
    assert_eq!(
        b.store.matchmaking_preferences(alice.id).await.unwrap(),
        Some(second)
    );
    // Only that player's row changed.
    assert_eq!(
        b.store.matchmaking_preferences(bob.id).await.unwrap(),
        Some(bobs)
    );
}

async fn preferences_of_unknown_player_are_an_error(b: &mut Backend) {
    let prefs = preferences(&["eu"], &["ranked-1v1"]);
    let nobody = Uuid::now_v7();
    let err = b
        .store
        .set_matchmaking_preferences(nobody, &prefs, T0)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::UnknownPlayer), "{err:?}");
    assert_eq!(b.store.matchmaking_preferences(nobody).await.unwrap(), None);
}

async fn preferences_survive_reopen(b: &mut Backend) {
    let player = b.store.create_player(new_player("Sven")).await.unwrap();
    let prefs = preferences(&["asia", "na-east"], &["casual-ffa-8", "ranked-1v1"]);
    b.store
        .set_matchmaking_preferences(player.id, &prefs, T0)
        .await
        .unwrap();
    b.reopen().await;
    assert_eq!(
        b.store.matchmaking_preferences(player.id).await.unwrap(),
        Some(prefs)
    );
}

async fn preferences_are_deleted_with_the_player(b: &mut Backend) {
    let player = b.store.create_player(new_player("Tara")).await.unwrap();
    b.store
        .set_matchmaking_preferences(player.id, &preferences(&["eu"], &["ranked-1v1"]), T0)
        .await
        .unwrap();
    b.pool
        .execute("DELETE FROM players WHERE username_key = 'tara'")
        .await;
    assert_eq!(
        b.store.matchmaking_preferences(player.id).await.unwrap(),
        None
    );
}

async fn corrupt_preferences_are_errors_not_panics(b: &mut Backend) {
    let player = b.store.create_player(new_player("Uma")).await.unwrap();
    b.store
        .set_matchmaking_preferences(player.id, &preferences(&["eu"], &["ranked-1v1"]), T0)
        .await
        .unwrap();
    b.pool
        .execute("UPDATE matchmaking_preferences SET regions = '[\"Not A Region\"]'")
        .await;
    let err = b
        .store
        .matchmaking_preferences(player.id)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
    b.pool
        .execute("UPDATE matchmaking_preferences SET regions = '[\"eu\"]', modes = '[1, 2]'")
        .await;
    let err = b
        .store
        .matchmaking_preferences(player.id)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
}

// ---------------------------------------------------------------------------------------------
// Guest accounts

/// A guest as the server makes one: no password, display name = username.
fn guest(name: &str) -> NewPlayer {
    NewPlayer {
        password_hash: None,
        ..new_player(name)
    }
}

async fn username_exists(b: &Backend, name: &str) -> bool {
    let found = b.store.credentials_by_username(&username(name)).await;
    found.unwrap().is_some()
}

async fn guests_log_in_with_their_device(b: &mut Backend) {
    let device = random_hash();
    let created = match b.store.device_account(&device, guest("guest-a1")).await {
        Ok(DeviceAccount::Created(player)) => player,
        other => panic!("expected a new account, got {other:?}"),
    };
    assert_eq!(created.username, username("guest-a1"));
    assert!(!created.has_password);
    assert_eq!(
        b.store.player(created.id).await.unwrap(),
        Some(created.clone())
    );

    // The same device again: the same account, and the guest offered this time is not made.
    let again = b.store.device_account(&device, guest("guest-a2")).await;
    assert_eq!(again.unwrap(), DeviceAccount::Existing(created.clone()));
    assert!(!username_exists(b, "guest-a2").await);
    // Another device is another account.
    let other = b
        .store
        .device_account(&random_hash(), guest("guest-b1"))
        .await;
    assert!(matches!(other.unwrap(), DeviceAccount::Created(p) if p.id != created.id));

    // A guest has no password to log in with.
    let creds = b
        .store
        .credentials_by_username(&username("guest-a1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(creds.password_hash, None);
    assert_eq!(creds.player, created);
    // Players with a password say so.
    let alice = b.store.create_player(new_player("Alice")).await.unwrap();
    assert!(alice.has_password);
    assert!(
        b.store
            .player(alice.id)
            .await
            .unwrap()
            .unwrap()
            .has_password
    );
}

async fn a_taken_guest_name_binds_nothing(b: &mut Backend) {
    b.store.create_player(new_player("guest-c1")).await.unwrap();
    let device = random_hash();
    let err = b
        .store
        .device_account(&device, guest("GUEST-C1"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::UsernameTaken), "{err:?}");
    // Nothing was bound: the caller's next name makes the account.
    let retried = b.store.device_account(&device, guest("guest-c2")).await;
    assert!(
        matches!(retried.unwrap(), DeviceAccount::Created(p) if p.username == username("guest-c2"))
    );
}

async fn concurrent_first_logins_of_a_device_make_one_account(b: &mut Backend) {
    let device = random_hash();
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let (store, device) = (Arc::clone(&b.store), device.clone());
            tokio::spawn(async move {
                store
                    .device_account(&device, guest(&format!("guest-race{i}")))
                    .await
            })
        })
        .collect();
    let mut created = Vec::new();
    let mut ids = Vec::new();
    for task in tasks {
        let account = task.await.unwrap().unwrap();
        ids.push(account.player().id);
        if let DeviceAccount::Created(player) = account {
            created.push(player);
        }
    }
    assert_eq!(created.len(), 1, "one account for one device");
    assert!(ids.iter().all(|id| *id == created[0].id), "{ids:?}");
    // The guests made by the losers were rolled back.
    for i in 0..8 {
        let name = format!("guest-race{i}");
        let kept = name == created[0].username.as_str();
        assert_eq!(username_exists(b, &name).await, kept, "{name}");
    }
}

async fn link_gives_a_guest_a_username_and_password(b: &mut Backend) {
    let device = random_hash();
    let account = b
        .store
        .device_account(&device, guest("guest-d1"))
        .await
        .unwrap()
        .player()
        .clone();
    let later = T0 + Duration::minutes(1);
    let linked = b
        .store
        .link_password(account.id, &username("Dora"), "$argon2id$dora", later)
        .await
        .unwrap();
    assert_eq!(linked.id, account.id);
    assert_eq!(linked.username, username("Dora"));
    // The display name was the generated one, so it follows the username.
    assert_eq!(linked.display_name, display("Dora"));
    assert!(linked.has_password);
    assert_eq!(linked.created_at, account.created_at);
    assert_eq!(Some(linked.updated_at), stored_timestamp(later));
    assert_eq!(
        b.store.player(account.id).await.unwrap(),
        Some(linked.clone())
    );

    // Both ways in now lead to the same account; the generated name is free again.
    let creds = b
        .store
        .credentials_by_username(&username("dora"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(creds.password_hash.as_deref(), Some("$argon2id$dora"));
    assert_eq!(creds.player, linked);
    let by_device = b.store.device_account(&device, guest("guest-d2")).await;
    assert_eq!(by_device.unwrap(), DeviceAccount::Existing(linked.clone()));
    assert!(!username_exists(b, "guest-d1").await);

    // Once only.
    let again = b
        .store
        .link_password(account.id, &username("Dora2"), "$argon2id$x", later)
        .await
        .unwrap_err();
    assert!(matches!(again, StoreError::AlreadyLinked), "{again:?}");
    let err = b
        .store
        .link_password(Uuid::now_v7(), &username("Nobody"), "$argon2id$x", later)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::UnknownPlayer), "{err:?}");
    let alice = b.store.create_player(new_player("Alice")).await.unwrap();
    let err = b
        .store
        .link_password(alice.id, &username("Alice2"), "$argon2id$x", later)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::AlreadyLinked), "{err:?}");

    // A taken username (case-insensitively) leaves the guest as it was.
    let other = b
        .store
        .device_account(&random_hash(), guest("guest-e1"))
        .await
        .unwrap()
        .player()
        .clone();
    let err = b
        .store
        .link_password(other.id, &username("DORA"), "$argon2id$x", later)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::UsernameTaken), "{err:?}");
    assert_eq!(b.store.player(other.id).await.unwrap(), Some(other.clone()));

    // A display name the guest chose is kept.
    let patch = PlayerPatch {
        display_name: Some(display("Eli the Brave")),
        region: None,
    };
    b.store.update_player(other.id, patch, T0).await.unwrap();
    let linked = b
        .store
        .link_password(other.id, &username("Eli"), "$argon2id$eli", later)
        .await
        .unwrap();
    assert_eq!(linked.display_name, display("Eli the Brave"));
}

async fn devices_are_deleted_with_the_player(b: &mut Backend) {
    let device = random_hash();
    let first = b
        .store
        .device_account(&device, guest("guest-f1"))
        .await
        .unwrap();
    b.pool
        .execute("DELETE FROM players WHERE username_key = 'guest-f1'")
        .await;
    let next = b
        .store
        .device_account(&device, guest("guest-f2"))
        .await
        .unwrap();
    assert!(
        matches!(&next, DeviceAccount::Created(p) if p.id != first.player().id),
        "{next:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Refresh rotation with a grace window for a retry

const GRACE: Duration = Duration::seconds(10);

/// Presents `presented` at `at` with the grace window, offering `next` as its successor.
async fn rotate(
    b: &Backend,
    presented: &NewRefreshToken,
    next: &NewRefreshToken,
    at: OffsetDateTime,
) -> Rotation {
    b.store
        .rotate_refresh_token(&presented.token_hash, next.clone(), GRACE, at)
        .await
        .unwrap()
}

fn reused(player_id: Uuid, family_id: Uuid) -> Rotation {
    Rotation::Reused {
        player_id,
        family_id,
    }
}

async fn retry_within_grace_answers_the_same_successor(b: &mut Backend) {
    let (player_id, t1) = player_with_token(&*b.store, "Rita").await;
    let t2 = successor();
    let now = T0 + Duration::minutes(5);
    let first = rotate(b, &t1, &t2, now).await;
    assert_eq!(first, rotation(player_id, t1.family_id, now));

    // The client lost the answer and asks again, offering the same successor (derived from
    // t1) under a record id and clock of its own: the same rotation, nothing stored, nothing
    // revoked.
    let later = now + Duration::seconds(9);
    let retry_offer = NewRefreshToken {
        id: Uuid::now_v7(),
        created_at: later,
        ..t2.clone()
    };
    for at in [now, later] {
        assert_eq!(
            rotate(b, &t1, &retry_offer, at).await,
            Rotation::Retried {
                player_id,
                family_id: t1.family_id,
                rotated_at: stored_timestamp(now).unwrap(),
            }
        );
    }
    assert_eq!(b.pool.tokens_in_family(t1.family_id).await, 2);

    // The successor still rotates as usual.
    let third = rotate(b, &t2, &successor(), later).await;
    assert_eq!(third, rotation(player_id, t1.family_id, later));
}

async fn retry_after_grace_revokes_the_family(b: &mut Backend) {
    let (player_id, t1) = player_with_token(&*b.store, "Sven").await;
    let t2 = successor();
    let now = T0 + Duration::minutes(5);
    rotate(b, &t1, &t2, now).await;
    // The window is half-open: at exactly `grace` after the rotation it is over.
    let reused = reused(player_id, t1.family_id);
    assert_eq!(rotate(b, &t1, &t2, now + GRACE).await, reused);
    assert_eq!(rotate(b, &t2, &successor(), now + GRACE).await, reused);
}

async fn within_grace_only_the_latest_rotation_is_retried(b: &mut Backend) {
    let (player_id, t1) = player_with_token(&*b.store, "Tara").await;
    let (t2, t3) = (successor(), successor());
    let now = T0 + Duration::minutes(5);
    rotate(b, &t1, &t2, now).await;
    rotate(b, &t2, &t3, now + Duration::seconds(1)).await;
    // t1's successor is spent already: presenting t1 is a replay of an older token, even
    // within t1's window and offering its true successor.
    let at = now + Duration::seconds(2);
    let reused = reused(player_id, t1.family_id);
    assert_eq!(rotate(b, &t1, &t2, at).await, reused);
    assert_eq!(rotate(b, &t3, &successor(), at).await, reused);
}

async fn a_retry_offering_another_successor_is_a_replay(b: &mut Backend) {
    let (player_id, t1) = player_with_token(&*b.store, "Uma").await;
    let t2 = successor();
    let now = T0 + Duration::minutes(5);
    rotate(b, &t1, &t2, now).await;
    // Only a caller that derives the same successor repeats the rotation; one that cannot (a
    // node with another key) must not get a second successor, nor the first one's answer.
    let reused = reused(player_id, t1.family_id);
    assert_eq!(rotate(b, &t1, &successor(), now).await, reused);
    assert_eq!(b.pool.tokens_in_family(t1.family_id).await, 2);
    assert_eq!(rotate(b, &t2, &successor(), now).await, reused);
}

async fn no_retry_after_logout(b: &mut Backend) {
    let (player_id, t1) = player_with_token(&*b.store, "Vera").await;
    let t2 = successor();
    let now = T0 + Duration::minutes(5);
    rotate(b, &t1, &t2, now).await;
    b.store
        .revoke_refresh_family(&t2.token_hash, now)
        .await
        .unwrap();
    assert_eq!(
        rotate(b, &t1, &t2, now).await,
        reused(player_id, t1.family_id)
    );
}

async fn concurrent_rotations_within_grace_answer_one_successor(b: &mut Backend) {
    let (player_id, t1) = player_with_token(&*b.store, "Wade").await;
    let now = T0 + Duration::minutes(1);
    let next = successor();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let store = Arc::clone(&b.store);
            let hash = t1.token_hash.clone();
            // What each request derives: the same token, its own record id.
            let next = NewRefreshToken {
                id: Uuid::now_v7(),
                ..next.clone()
            };
            tokio::spawn(async move {
                store
                    .rotate_refresh_token(&hash, next, GRACE, now)
                    .await
                    .unwrap()
            })
        })
        .collect();
    let rotated_at = stored_timestamp(now).unwrap();
    let (mut rotations, mut retries) = (0, 0);
    for task in tasks {
        match task.await.unwrap() {
            Rotation::Rotated {
                player_id: p,
                family_id,
                rotated_at: at,
            } if (p, family_id, at) == (player_id, t1.family_id, rotated_at) => rotations += 1,
            Rotation::Retried {
                player_id: p,
                family_id,
                rotated_at: at,
            } if (p, family_id, at) == (player_id, t1.family_id, rotated_at) => retries += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(
        (rotations, retries),
        (1, 7),
        "one rotation, the rest its retries"
    );
    assert_eq!(
        b.pool.tokens_in_family(t1.family_id).await,
        2,
        "one successor stored"
    );
    let after = rotate(b, &next, &successor(), now).await;
    assert_eq!(after, rotation(player_id, t1.family_id, now));
}

#[path = "contract/sessions.rs"]
mod sessions;
use sessions::*;
#[path = "contract/admin.rs"]
mod admin;
use admin::*;
#[path = "contract/seasons.rs"]
mod seasons;
use seasons::*;

// ---------------------------------------------------------------------------------------------
// One test per backend and contract function.

macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let mut backend = super::Backend::sqlite().await;
                    super::$name(&mut backend).await;
                    backend.finish().await;
                }
            )*
        }

        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(mut backend) = super::Backend::postgres().await else {
                        return;
                    };
                    super::$name(&mut backend).await;
                    backend.finish().await;
                }
            )*
        }
    };
}

contract! {
    ping_works,
    create_and_read_player,
    usernames_are_unique_case_insensitively,
    update_applies_patch_and_bumps_updated_at,
    credentials_lookup_is_case_insensitive,
    timestamps_round_trip,
    rotation_happy_path,
    reuse_revokes_the_family,
    expired_token,
    unknown_token,
    concurrent_rotation_has_one_winner,
    logout_is_idempotent,
    revoke_all_tokens_of_a_player,
    refresh_token_constraints,
    data_survives_reopen,
    strings_are_stored_verbatim,
    logout_racing_rotation_leaves_no_live_token,
    corrupt_rows_are_errors_not_panics,
    unstorable_timestamps_are_errors,
    preferences_unset_are_none,
    preferences_round_trip_in_order,
    preferences_are_overwritten,
    preferences_of_unknown_player_are_an_error,
    preferences_survive_reopen,
    preferences_are_deleted_with_the_player,
    corrupt_preferences_are_errors_not_panics,
    guests_log_in_with_their_device,
    a_taken_guest_name_binds_nothing,
    concurrent_first_logins_of_a_device_make_one_account,
    link_gives_a_guest_a_username_and_password,
    devices_are_deleted_with_the_player,
    retry_within_grace_answers_the_same_successor,
    retry_after_grace_revokes_the_family,
    within_grace_only_the_latest_rotation_is_retried,
    a_retry_offering_another_successor_is_a_replay,
    no_retry_after_logout,
    concurrent_rotations_within_grace_answer_one_successor,
    sessions_are_stored_with_every_transition,
    a_session_of_unknown_players_is_refused,
    a_result_is_applied_once_with_its_ratings,
    results_need_a_live_or_ended_session,
    unranked_results_change_no_rating,
    rating_histories_chain_and_page_without_gaps,
    concurrent_results_sharing_a_player_both_count,
    backfilled_players_join_live_sessions_only,
    admins_are_granted_and_revoked_by_username,
    a_ban_revokes_every_refresh_token_with_its_record,
    a_tick_of_sessions_is_stored_at_once,
    session_moves_are_written_together_in_order,
    seasons_roll_over_keeping_the_old_standings,
    an_admin_rollover_is_recorded,
}

/// The in-memory SQLite store keeps its data across calls on its one connection.
#[tokio::test]
async fn in_memory_sqlite_store_works() {
    let store = SqliteStore::in_memory().await.unwrap();
    let created = store.create_player(new_player("Memo")).await.unwrap();
    assert_eq!(store.player(created.id).await.unwrap(), Some(created));
    store.close().await;
}

/// The file store runs with the durability settings the module promises.
#[tokio::test]
async fn sqlite_file_store_is_durable_and_enforces_foreign_keys() {
    let (store, dir) = testing::sqlite_test_store().await;
    let pool = store.pool();
    // Ask on several connections at once: pragmas are per connection.
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut conn = pool.acquire().await.unwrap();
        let journal: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        let synchronous: i64 = sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        let foreign_keys: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        assert_eq!((journal.as_str(), synchronous, foreign_keys), ("wal", 2, 1));
        held.push(conn);
    }
    drop(held);
    store.close().await;
    drop(dir);
}

/// `open` creates missing parent directories.
#[tokio::test]
async fn sqlite_open_creates_parent_directories() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a/b/versus.sqlite3");
    let store = SqliteStore::open(&path).await.unwrap();
    store.ping().await.unwrap();
    store.close().await;
    assert!(path.exists());
}
