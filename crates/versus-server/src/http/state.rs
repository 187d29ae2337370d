//! What every handler can reach. Cheap to clone: everything inside is shared.

use std::sync::Arc;
use std::time::Instant;

use metrics_exporter_prometheus::PrometheusHandle;
use versus_store::Store;

use crate::config::Config;
use crate::http::game_server::ServerKey;
use crate::http::ratelimit::RateLimits;
use crate::services::admin::Admin;
use crate::services::auth::{Accounts, PasswordHasher, TokenIssuer};
use crate::services::events::EventBus;
use crate::services::hub::Hub;
use crate::services::leaderboards::Leaderboards;
use crate::services::matchmaking::Matchmaking;
use crate::services::parties::Parties;
use crate::services::redis::Redis;
use crate::services::sessions::Sessions;

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub store: Arc<dyn Store>,
    pub tokens: Arc<TokenIssuer>,
    pub accounts: Arc<Accounts>,
    pub hasher: PasswordHasher,
    pub limits: Arc<RateLimits>,
    /// Shared state of a cluster (`redis_url`), if configured.
    pub redis: Option<Arc<Redis>>,
    pub metrics: PrometheusHandle,
    pub started: Instant,
    pub bus: Arc<dyn EventBus>,
    pub hub: Arc<Hub>,
    pub matchmaking: Arc<Matchmaking>,
    /// What game servers present; see [`crate::http::game_server`].
    pub server_key: Arc<ServerKey>,
    pub sessions: Arc<Sessions>,
    pub admin: Arc<Admin>,
    pub leaderboards: Arc<Leaderboards>,
    pub parties: Arc<Parties>,
}
