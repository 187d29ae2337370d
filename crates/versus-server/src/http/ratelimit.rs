//! Token-bucket rate limits on one node (governor), keyed by client IP or by username.
//! The scale-out issue puts a Redis-backed limiter behind the same methods.

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

pub struct KeyedLimit<K: Hash + Eq + Clone> {
    limiter: DefaultKeyedRateLimiter<K>,
    clock: DefaultClock,
}

impl<K: Hash + Eq + Clone> KeyedLimit<K> {
    fn new(rate: RateConfig) -> Self {
        let per_minute = NonZeroU32::new(rate.per_minute).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(rate.burst).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::per_minute(per_minute).allow_burst(burst);
        Self {
            limiter: DefaultKeyedRateLimiter::keyed(quota),
            clock: DefaultClock::default(),
        }
    }

    /// Takes one token for `key`, or says how long until one is free.
    pub fn check(&self, key: &K) -> Result<(), ApiError> {
        self.limiter
            .check_key(key)
            .map_err(|not_until| ApiError::RateLimited {
                retry_after: not_until
                    .wait_time_from(self.clock.now())
                    .max(Duration::from_secs(1)),
            })
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
    pub fn new(config: &LimitsConfig) -> Arc<Self> {
        Arc::new(Self {
            auth_per_ip: KeyedLimit::new(config.auth_per_ip),
            login_per_username: KeyedLimit::new(config.login_per_username),
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

    #[test]
    fn bursts_then_refuses_with_a_retry_after() {
        let limit = KeyedLimit::new(RateConfig {
            per_minute: 60,
            burst: 3,
        });
        let key = "alice".to_owned();
        for _ in 0..3 {
            limit.check(&key).unwrap();
        }
        match limit.check(&key) {
            Err(ApiError::RateLimited { retry_after }) => {
                assert!(
                    retry_after >= Duration::from_secs(1) && retry_after <= Duration::from_secs(2)
                );
            }
            other => panic!("expected a rate limit, got {other:?}"),
        }
        // Another key has its own bucket.
        limit.check(&"bob".to_owned()).unwrap();
    }
}
