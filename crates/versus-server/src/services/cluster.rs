//! Which node of a cluster runs the matchmaker: the holder of a lease in Redis
//! (`{prefix}:lease:matchmaker`, [`LEASE`] long, renewed every [`RENEW_EVERY`]). When the holder
//! dies its lease runs out and the next node to ask takes it: matching resumes within
//! `LEASE + RENEW_EVERY` (4 s). A holder that cannot renew (Redis unreachable) steps down before
//! its lease can have run out, so two nodes never both believe they lead; a clean stop releases
//! the lease at once.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::services::redis::Redis;

/// How long a lease lasts without renewal.
pub const LEASE: Duration = Duration::from_secs(3);
/// How often the holder renews it, and how often the others ask for it.
pub const RENEW_EVERY: Duration = Duration::from_secs(1);

const NAME: &str = "matchmaker";

pub struct Leadership {
    node: String,
    leading: watch::Sender<bool>,
    redis: Arc<Redis>,
    /// Released for good (a clean stop): asks for the lease no more.
    released: std::sync::atomic::AtomicBool,
}

impl Leadership {
    /// Starts asking for the lease as `node` (unique per process); the first answer comes
    /// before this returns, so a lone node leads from its first request.
    pub async fn start(redis: Arc<Redis>, node: String) -> Arc<Self> {
        let (leading, _) = watch::channel(false);
        let this = Arc::new(Self {
            node,
            leading,
            redis,
            released: std::sync::atomic::AtomicBool::new(false),
        });
        let mut last_held = this.try_hold(None).await;
        let weak = Arc::downgrade(&this);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(RENEW_EVERY);
            every.tick().await;
            loop {
                every.tick().await;
                let Some(this) = weak.upgrade() else { return };
                last_held = this.try_hold(last_held).await;
            }
        });
        this
    }

    /// One round: take or renew the lease; returns when it was last held.
    async fn try_hold(&self, last_held: Option<Instant>) -> Option<Instant> {
        if self.released.load(std::sync::atomic::Ordering::SeqCst) {
            return None;
        }
        let asked = Instant::now();
        match self.redis.hold_lease(NAME, &self.node, LEASE).await {
            Ok(true) => {
                self.set(true);
                Some(asked)
            }
            Ok(false) => {
                self.set(false);
                None
            }
            Err(err) => {
                // Not knowing: keep leading only while the lease surely has not run out.
                let safe = last_held.is_some_and(|at| at.elapsed() < LEASE - RENEW_EVERY);
                if !safe {
                    tracing::warn!(error = %err, node = %self.node, "matchmaker lease unknown; not leading");
                    self.set(false);
                    return None;
                }
                last_held
            }
        }
    }

    fn set(&self, leading: bool) {
        // Every round, not only on a change: a gauge set before the metrics recorder was
        // installed (at start-up) would otherwise never show.
        metrics::gauge!("cluster_matchmaker_leader").set(f64::from(u8::from(leading)));
        self.leading.send_if_modified(|now| {
            let changed = *now != leading;
            if changed {
                tracing::info!(node = %self.node, leading, "matchmaker lease changed hands");
            }
            *now = leading;
            changed
        });
    }

    pub fn is_leader(&self) -> bool {
        *self.leading.borrow()
    }

    /// Changes of leadership, for the task that serves followers while leading.
    pub fn watch(&self) -> watch::Receiver<bool> {
        self.leading.subscribe()
    }

    /// Hands the lease over now (a clean stop), rather than when it runs out, and asks for it
    /// no more.
    pub async fn release(&self) {
        self.released
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.set(false);
        if let Err(err) = self.redis.release_lease(NAME, &self.node).await {
            tracing::warn!(error = %err, "matchmaker lease not released; it runs out by itself");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One node leads; when it stops renewing (its process died), another takes over within
    /// a lease and a renewal; a released lease is taken at the next renewal.
    #[tokio::test]
    async fn one_leader_and_a_takeover_when_it_dies() {
        let Some(url) = crate::services::redis::test_url().await else {
            return;
        };
        let prefix = format!("test-{}", uuid::Uuid::now_v7().simple());
        let redis = Redis::connect(&url, &prefix).await.unwrap();
        let a = Leadership::start(redis.clone(), "a".into()).await;
        let b = Leadership::start(redis.clone(), "b".into()).await;
        assert!(a.is_leader());
        assert!(!b.is_leader());
        let mut b_changes = b.watch();
        // `a` dies: its renewals stop, its lease runs out.
        drop(a);
        let died = Instant::now();
        tokio::time::timeout(
            LEASE + RENEW_EVERY * 3,
            b_changes.wait_for(|leading| *leading),
        )
        .await
        .expect("b leads within a lease and a renewal")
        .unwrap();
        assert!(
            died.elapsed() <= LEASE + RENEW_EVERY * 2,
            "{:?}",
            died.elapsed()
        );
        let c = Leadership::start(redis.clone(), "c".into()).await;
        assert!(!c.is_leader());
        b.release().await;
        assert!(!b.is_leader());
        let mut c_changes = c.watch();
        tokio::time::timeout(RENEW_EVERY * 3, c_changes.wait_for(|leading| *leading))
            .await
            .expect("c takes a released lease at its next renewal")
            .unwrap();
        redis.forget_everything().await.unwrap();
    }
}
