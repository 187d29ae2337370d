//! What admins do: bans (every door closed at once), announcements, and reading the record of
//! admin actions. Each action is recorded by the store with what it changes.

use std::sync::Arc;

use time::OffsetDateTime;
use uuid::Uuid;
use versus_protocol::ws::{ServerEvent, SystemAnnouncement};
use versus_store::{AdminAction, Cursor, Player, Store, StoreError};

use crate::services::events::{Audience, BusEvent, EventBus, Revocation};
use crate::services::matchmaking::Matchmaking;

pub struct Admin {
    store: Arc<dyn Store>,
    bus: Arc<dyn EventBus>,
    matchmaking: Arc<Matchmaking>,
}

/// An action by `admin` now, on `target`.
pub(crate) fn action(
    admin: Uuid,
    what: &str,
    target: Option<String>,
    details: serde_json::Value,
) -> AdminAction {
    AdminAction {
        id: Uuid::now_v7(),
        admin_id: Some(admin),
        action: what.to_owned(),
        target,
        details,
        at: OffsetDateTime::now_utc(),
    }
}

/// A ban or unban of `player` by `admin`, with its reason.
fn on_player(admin: Uuid, what: &str, player: Uuid, reason: Option<String>) -> AdminAction {
    action(
        admin,
        what,
        Some(player.to_string()),
        serde_json::json!({ "reason": reason }),
    )
}

impl Admin {
    pub fn new(
        store: Arc<dyn Store>,
        bus: Arc<dyn EventBus>,
        matchmaking: Arc<Matchmaking>,
    ) -> Arc<Self> {
        Arc::new(Self {
            store,
            bus,
            matchmaking,
        })
    }

    /// Bans `player`: stored with its refresh tokens revoked, then every node drops the player's
    /// access tokens and sockets (`Revocation` for every login) and the queue lets go of their
    /// ticket. `None` when there is no such player.
    pub async fn ban(
        &self,
        admin: Uuid,
        player: Uuid,
        reason: Option<String>,
    ) -> Result<Option<Player>, StoreError> {
        let record = on_player(admin, "ban", player, reason);
        let Some(banned) = self.store.set_banned(player, true, &record).await? else {
            return Ok(None);
        };
        self.bus.publish(BusEvent::Revoked(Revocation {
            player,
            family: None,
        }));
        // Not queued is the usual case; either way nothing is left searching.
        let _ = self.matchmaking.leave(player).await;
        tracing::info!(admin_id = %admin, player_id = %player, "player banned");
        Ok(Some(banned))
    }

    /// Lifts a ban; the player logs in again (their old logins stay revoked).
    pub async fn unban(
        &self,
        admin: Uuid,
        player: Uuid,
        reason: Option<String>,
    ) -> Result<Option<Player>, StoreError> {
        let record = on_player(admin, "unban", player, reason);
        self.store.set_banned(player, false, &record).await
    }

    /// Sends `message` to every connected player as `system_announcement`, once recorded.
    pub async fn announce(&self, admin: Uuid, message: String) -> Result<(), StoreError> {
        let record = action(
            admin,
            "announce",
            None,
            serde_json::json!({ "message": message }),
        );
        self.store.record_admin_action(&record).await?;
        self.bus.publish(BusEvent::to(
            Audience::Everyone,
            ServerEvent::SystemAnnouncement(SystemAnnouncement { message }),
        ));
        Ok(())
    }

    /// Records an admin's session move (the move itself is the session service's).
    pub async fn record(
        &self,
        admin: Uuid,
        what: &str,
        target: String,
        details: serde_json::Value,
    ) -> Result<(), StoreError> {
        (self.store)
            .record_admin_action(&action(admin, what, Some(target), details))
            .await
    }

    pub async fn actions(
        &self,
        before: Option<Cursor>,
        limit: u32,
    ) -> Result<Vec<AdminAction>, StoreError> {
        self.store.admin_actions(before, limit).await
    }
}
