//! Whether the player an access token names may still act. A token is checked without the
//! store, but it outlives what happens to its account meanwhile: the login behind it ending
//! (logout, a re-used refresh token), a ban, the account going away. Every authenticated request
//! and socket asks here.
//!
//! Revocations arrive on the event bus (every node hears them) and are kept for one access-token
//! lifetime, after which no token issued before them is valid anyway. An account's existence is
//! read from the store and a confirmed one cached briefly, so the store sees about one query per
//! active player per [`CONFIRMED_FOR`], not one per request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;
use uuid::Uuid;
use versus_store::{Store, StoreError};

use crate::services::events::{BusEvent, Revocation, Subscription};

/// How long a confirmed account is taken on trust. A deletion or ban also revokes (bus), so this
/// only bounds how stale the cache can be for changes that arrive some other way.
const CONFIRMED_FOR: Duration = Duration::from_secs(30);

/// What a token's player may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    Active,
    /// The token's login was revoked, or every login of the player.
    Revoked,
    Banned,
    /// No such account (deleted, or a token signed with a leaked key).
    Gone,
}

pub struct Accounts {
    store: Arc<dyn Store>,
    /// Players whose account was found active, and when.
    confirmed: Mutex<HashMap<Uuid, Instant>>,
    /// Revoked logins (family ids) and revoked players, with when.
    revoked_logins: Mutex<HashMap<Uuid, Instant>>,
    revoked_players: Mutex<HashMap<Uuid, Instant>>,
    /// How long a revocation matters: an access token's lifetime.
    keep_revocations: Duration,
}

impl Accounts {
    pub fn new(store: Arc<dyn Store>, access_token_ttl: Duration) -> Arc<Self> {
        Arc::new(Self {
            store,
            confirmed: Mutex::default(),
            revoked_logins: Mutex::default(),
            revoked_players: Mutex::default(),
            keep_revocations: access_token_ttl + Duration::from_secs(60),
        })
    }

    /// Records revocations from the bus until it closes.
    pub async fn run(self: Arc<Self>, mut subscription: Subscription) {
        while let Some(event) = subscription.recv().await {
            if let BusEvent::Revoked(revocation) = &*event {
                self.record(revocation);
            }
        }
    }

    pub fn record(&self, revocation: &Revocation) {
        let now = Instant::now();
        match revocation.family {
            Some(family) => {
                let mut logins = self.revoked_logins.lock().expect("accounts lock");
                logins.insert(family, now);
            }
            None => {
                let mut players = self.revoked_players.lock().expect("accounts lock");
                players.insert(revocation.player, now);
                drop(players);
                let mut confirmed = self.confirmed.lock().expect("accounts lock");
                confirmed.remove(&revocation.player);
            }
        }
    }

    /// The standing of `player` acting with a token of login `family` issued at `issued_at`
    /// (Unix seconds). A player revoked as a whole may act again with a token issued after the
    /// revocation (a new login once a ban is lifted); a revoked login never again.
    pub async fn standing(
        &self,
        player: Uuid,
        family: Uuid,
        issued_at: i64,
    ) -> Result<Standing, StoreError> {
        if self.login_revoked(family) || self.player_revoked_since(player, issued_at) {
            return Ok(Standing::Revoked);
        }
        let fresh = (self.confirmed.lock().expect("accounts lock").get(&player))
            .is_some_and(|at| at.elapsed() < CONFIRMED_FOR);
        if fresh {
            return Ok(Standing::Active);
        }
        let standing = match self.store.player(player).await? {
            None => Standing::Gone,
            Some(account) if account.banned => Standing::Banned,
            Some(_) => Standing::Active,
        };
        if standing == Standing::Active {
            let mut confirmed = self.confirmed.lock().expect("accounts lock");
            confirmed.insert(player, Instant::now());
        }
        Ok(standing)
    }

    fn login_revoked(&self, family: Uuid) -> bool {
        let logins = self.revoked_logins.lock().expect("accounts lock");
        logins.contains_key(&family)
    }

    fn player_revoked_since(&self, player: Uuid, issued_at: i64) -> bool {
        let players = self.revoked_players.lock().expect("accounts lock");
        let Some(at) = players.get(&player) else {
            return false;
        };
        // The revocation's wall-clock second, from how long ago it was recorded. (Whole seconds
        // subtracted from whole seconds could land a second late, refusing a token issued a
        // second after the revocation: the ban/unban test saw it when login and check
        // straddled a second.)
        issued_at <= second_of(time::OffsetDateTime::now_utc(), at.elapsed())
    }

    /// Drops revocations older than a token's lifetime and stale confirmations.
    pub fn forget_old(&self) {
        let keep = self.keep_revocations;
        for map in [&self.revoked_logins, &self.revoked_players] {
            map.lock()
                .expect("accounts lock")
                .retain(|_, at| at.elapsed() < keep);
        }
        (self.confirmed.lock().expect("accounts lock"))
            .retain(|_, at| at.elapsed() < CONFIRMED_FOR);
    }
}

/// The wall-clock second of a moment `ago` before `now`.
fn second_of(now: time::OffsetDateTime, ago: Duration) -> i64 {
    (now - ago).unix_timestamp()
}

#[cfg(test)]
mod tests {
    use time::OffsetDateTime;
    use versus_core::account::{DisplayName, Username};
    use versus_store::{NewPlayer, SqliteStore};

    use super::*;

    async fn accounts_with_player() -> (Arc<Accounts>, Uuid) {
        let store = Arc::new(SqliteStore::in_memory().await.unwrap());
        let id = Uuid::now_v7();
        store
            .create_player(NewPlayer {
                id,
                username: Username::parse("standing").unwrap(),
                display_name: DisplayName::parse("standing").unwrap(),
                password_hash: Some("x".into()),
                created_at: OffsetDateTime::now_utc(),
            })
            .await
            .unwrap();
        (Accounts::new(store, Duration::from_secs(900)), id)
    }

    #[test]
    fn a_revocation_lands_in_its_own_second() {
        let at = |ms: i64| OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000);
        // Revoked at 100.90, checked at 102.01: second 100 (whole seconds subtracted gave 101,
        // refusing a token issued at 101.0, after the revocation).
        assert_eq!(
            second_of(at(102_010).unwrap(), Duration::from_millis(1_110)),
            100
        );
        assert_eq!(
            second_of(at(102_010).unwrap(), Duration::from_millis(10)),
            102
        );
        assert_eq!(
            second_of(at(102_010).unwrap(), Duration::from_millis(11)),
            101
        );
    }

    #[tokio::test]
    async fn revoked_logins_and_players_and_missing_accounts() {
        let (accounts, player) = accounts_with_player().await;
        let (login, other_login) = (Uuid::now_v7(), Uuid::now_v7());
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let standing = |player, family, issued_at| {
            let accounts = accounts.clone();
            async move { accounts.standing(player, family, issued_at).await.unwrap() }
        };
        assert_eq!(standing(player, login, now).await, Standing::Active);
        assert_eq!(standing(Uuid::now_v7(), login, now).await, Standing::Gone);
        accounts.record(&Revocation {
            player,
            family: Some(login),
        });
        assert_eq!(standing(player, login, now).await, Standing::Revoked);
        assert_eq!(standing(player, other_login, now).await, Standing::Active);
        accounts.record(&Revocation {
            player,
            family: None,
        });
        assert_eq!(standing(player, other_login, now).await, Standing::Revoked);
        // A token issued after the player's revocation (a new login) acts again.
        assert_eq!(
            standing(player, other_login, now + 5).await,
            Standing::Active
        );
    }
}
