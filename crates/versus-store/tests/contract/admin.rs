//! The admin part of the `Store` contract (issue 14): admin rights, bans, the action record.

use serde_json::json;
use versus_store::{AdminAction, Cursor};

use super::*;

fn action(admin: Option<Uuid>, what: &str, at: OffsetDateTime) -> AdminAction {
    AdminAction {
        id: Uuid::now_v7(),
        admin_id: admin,
        action: what.into(),
        target: None,
        details: json!({ "reason": "test" }),
        at,
    }
}

pub(crate) async fn admins_are_granted_and_revoked_by_username(b: &mut Backend) {
    let player = b.store.create_player(new_player("Root")).await.unwrap();
    assert!(!player.admin);
    let granted = (b.store)
        .set_admin(&username("root"), true, &action(None, "grant_admin", T0))
        .await
        .unwrap()
        .unwrap();
    assert!(granted.admin);
    assert!(b.store.player(player.id).await.unwrap().unwrap().admin);
    let missing = (b.store)
        .set_admin(&username("nobody"), true, &action(None, "grant_admin", T0))
        .await
        .unwrap();
    assert_eq!(missing, None);
    b.reopen().await;
    let revoked = (b.store)
        .set_admin(&username("ROOT"), false, &action(None, "revoke_admin", T0))
        .await
        .unwrap()
        .unwrap();
    assert!(!revoked.admin);
    let record = b.store.admin_actions(None, 10).await.unwrap();
    let kinds: Vec<_> = record.iter().map(|a| a.action.as_str()).collect();
    assert_eq!(
        kinds,
        ["revoke_admin", "grant_admin"],
        "newest first; the miss left nothing"
    );
    assert_eq!(record[0].target, Some(player.id.to_string()));
}

pub(crate) async fn a_ban_revokes_every_refresh_token_with_its_record(b: &mut Backend) {
    let admin = b.store.create_player(new_player("Judge")).await.unwrap();
    let (player, token) = player_with_token(&*b.store, "Rowdy").await;
    let ban = AdminAction {
        target: Some(player.to_string()),
        ..action(Some(admin.id), "ban", T0)
    };
    let banned = (b.store.set_banned(player, true, &ban))
        .await
        .unwrap()
        .unwrap();
    assert!(banned.banned);
    let rotation = b
        .store
        .rotate_refresh_token(&token.token_hash, successor(), NO_GRACE, T0)
        .await
        .unwrap();
    assert!(
        matches!(rotation, Rotation::Reused { .. }),
        "a revoked token rotates no more: {rotation:?}"
    );
    let unban = action(Some(admin.id), "unban", T0 + Duration::seconds(1));
    let unbanned = b
        .store
        .set_banned(player, false, &unban)
        .await
        .unwrap()
        .unwrap();
    assert!(!unbanned.banned);
    assert_eq!(
        b.store
            .set_banned(Uuid::now_v7(), true, &ban)
            .await
            .unwrap(),
        None
    );
    let record = b.store.admin_actions(None, 10).await.unwrap();
    assert_eq!(record.len(), 2);
    assert_eq!(
        (record[0].action.as_str(), record[0].admin_id),
        ("unban", Some(admin.id))
    );
    assert_eq!(record[1].details, json!({ "reason": "test" }));
    let older = (b.store)
        .admin_actions(
            Some(Cursor {
                at: record[0].at,
                id: record[0].id,
            }),
            10,
        )
        .await
        .unwrap();
    assert_eq!(older, record[1..]);
    b.store
        .record_admin_action(&action(
            Some(admin.id),
            "announce",
            T0 + Duration::seconds(2),
        ))
        .await
        .unwrap();
    assert_eq!(
        b.store.admin_actions(None, 1).await.unwrap()[0].action,
        "announce"
    );
}
