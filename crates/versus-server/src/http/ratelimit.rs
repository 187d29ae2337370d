//! Token-bucket rate limits keyed by client IP or by username: on one node in memory
//! (governor); in a cluster (`redis_url`) one bucket per key in Redis that every node draws
//! from (`Redis::take`), so a client spreading requests over nodes gets no more than on one.
//! With Redis unreachable a limited request answers 503 rather than going unlimited.

use std::hash::Hash;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::extract::connect_info::ConnectInfo;
use axum::http::request::Parts;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

use crate::config::{LimitsConfig, RateConfig};
use crate::http::error::ApiError;
use crate::http::state::AppState;
use crate::services::redis::Redis;

pub struct KeyedLimit<K: Hash + Eq + Clone + ToString> {
    limiter: DefaultKeyedRateLimiter<K>,
    clock: DefaultClock,
    /// The limit's name in Redis, its rate, and Redis when the buckets are shared.
    name: &'static str,
    rate: RateConfig,
    shared: Option<Arc<Redis>>,
}

impl<K: Hash + Eq + Clone + ToString> KeyedLimit<K> {
    fn new(name: &'static str, rate: RateConfig, shared: Option<Arc<Redis>>) -> Self {
        let per_minute = NonZeroU32::new(rate.per_minute).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(rate.burst).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::per_minute(per_minute).allow_burst(burst);
        Self {
            limiter: DefaultKeyedRateLimiter::keyed(quota),
            clock: DefaultClock::default(),
            name,
            rate,
            shared,
        }
    }

    /// Takes one token for `key`, or says how long until one is free.
    pub async fn check(&self, key: &K) -> Result<(), ApiError> {
        let limited = |wait: Duration| ApiError::RateLimited {
            retry_after: wait.max(Duration::from_secs(1)),
        };
        if let Some(redis) = &self.shared {
            let (per_minute, burst) = (self.rate.per_minute, self.rate.burst);
            return match redis
                .take(self.name, &key.to_string(), per_minute, burst)
                .await
            {
                Ok(None) => Ok(()),
                Ok(Some(wait)) => Err(limited(wait)),
                Err(err) => {
                    tracing::warn!(error = %err, limit = self.name, "rate limit unavailable");
                    Err(ApiError::Unavailable(
                        "rate limits are unavailable (redis is down)",
                    ))
                }
            };
        }
        self.limiter
            .check_key(key)
            .map_err(|not_until| limited(not_until.wait_time_from(self.clock.now())))
    }

    fn forget_idle(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}

pub struct RateLimits {
    pub auth_per_ip: KeyedLimit<IpAddr>,
    pub login_per_username: KeyedLimit<String>,
}

impl RateLimits {
    pub fn new(config: &LimitsConfig, shared: Option<Arc<Redis>>) -> Arc<Self> {
        Arc::new(Self {
            auth_per_ip: KeyedLimit::new("auth_per_ip", config.auth_per_ip, shared.clone()),
            login_per_username: KeyedLimit::new(
                "login_per_username",
                config.login_per_username,
                shared,
            ),
        })
    }

    /// Drops buckets that are full again, so the key maps do not grow without bound.
    pub fn forget_idle(&self) {
        self.auth_per_ip.forget_idle();
        self.login_per_username.forget_idle();
    }
}

/// The client's IP: the peer address, or the left-most `X-Forwarded-For` entry when the
/// configuration trusts a proxy in front.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub IpAddr);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if state.config.limits.trust_forwarded_for
            && let Some(ip) = parts
                .headers
                .get("x-forwarded-for")
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.split(',').next())
                .and_then(|first| first.trim().parse().ok())
        {
            return Ok(ClientIp(ip));
        }
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|info| info.0.ip())
            .ok_or_else(|| ApiError::internal(anyhow::anyhow!("no peer address on the request")))?;
        Ok(ClientIp(peer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same behaviour in memory and, with Redis, across two nodes drawing from one bucket.
    async fn bursts_then_refuses_with_a_retry_after(nodes: [KeyedLimit<String>; 2]) {
        let key = "alice".to_owned();
        for i in 0..3 {
            nodes[i % 2].check(&key).await.unwrap();
        }
        for node in &nodes {
            match node.check(&key).await {
                Err(ApiError::RateLimited { retry_after }) => assert!(
                    retry_after >= Duration::from_secs(1) && retry_after <= Duration::from_secs(2),
                    "{retry_after:?}"
                ),
                other => panic!("expected a rate limit, got {other:?}"),
            }
        }
        // Another key has its own bucket.
        nodes[1].check(&"bob".to_owned()).await.unwrap();
    }

    const RATE: RateConfig = RateConfig {
        per_minute: 60,
        burst: 3,
    };

    #[tokio::test]
    async fn in_memory() {
        // One node: the two "nodes" are one limiter's buckets, so the test shares it.
        let limit = Arc::new(KeyedLimit::new("test", RATE, None));
        let key = "alice".to_owned();
        for _ in 0..3 {
            limit.check(&key).await.unwrap();
        }
        assert!(matches!(
            limit.check(&key).await,
            Err(ApiError::RateLimited { .. })
        ));
        limit.check(&"bob".to_owned()).await.unwrap();
    }

    #[tokio::test]
    async fn shared_through_redis() {
        let Some(url) = crate::services::redis::test_url().await else {
            return;
        };
        let prefix = format!("test-{}", uuid::Uuid::now_v7().simple());
        let a = Redis::connect(&url, &prefix).await.unwrap();
        let b = Redis::connect(&url, &prefix).await.unwrap();
        bursts_then_refuses_with_a_retry_after([
            KeyedLimit::new("test", RATE, Some(a.clone())),
            KeyedLimit::new("test", RATE, Some(b)),
        ])
        .await;
        a.forget_everything().await.unwrap();
    }
}
