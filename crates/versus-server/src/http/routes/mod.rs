//! HTTP routes, one module per resource. Handlers parse input into domain types, call the store
//! or core, and map results to wire types; they never call each other.

pub mod admin;
pub mod auth;
pub mod health;
pub mod leaderboards;
pub mod parties;
pub mod players;
pub mod queue;
pub mod sessions;
pub mod ws;

use versus_protocol::{PlayerProfile, PublicPlayer};
use versus_store::Player;

pub fn profile(player: &Player) -> PlayerProfile {
    PlayerProfile {
        id: player.id,
        username: player.username.to_string(),
        display_name: player.display_name.to_string(),
        email: player.email.clone(),
        region: player.region.as_ref().map(ToString::to_string),
        created_at: player.created_at,
        updated_at: player.updated_at,
        stats: None,
    }
}

pub fn public_player(player: &Player) -> PublicPlayer {
    PublicPlayer {
        id: player.id,
        username: player.username.to_string(),
        display_name: player.display_name.to_string(),
        region: player.region.as_ref().map(ToString::to_string),
        created_at: player.created_at,
    }
}
