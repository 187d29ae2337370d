//! What every handler can reach. Cheap to clone: everything inside is shared.

use std::sync::Arc;
use std::time::Instant;

use metrics_exporter_prometheus::PrometheusHandle;
use versus_store::Store;

use crate::auth::{PasswordHasher, TokenIssuer};
use crate::config::Config;
use crate::events::EventBus;
use crate::matchmaking::Matchmaking;
use crate::ratelimit::RateLimits;
use crate::realtime::Hub;

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub store: Arc<dyn Store>,
    pub tokens: Arc<TokenIssuer>,
    pub hasher: PasswordHasher,
    pub limits: Arc<RateLimits>,
    pub metrics: PrometheusHandle,
    pub started: Instant,
    pub bus: Arc<dyn EventBus>,
    pub hub: Arc<Hub>,
    pub matchmaking: Arc<Matchmaking>,
}
