//! How players and game servers ride out a node that is unavailable: which errors another try
//! may cure, and the pauses between tries.

use std::time::Duration;

use tokio::time::Instant;
use versus_client::ClientError;

/// How long a call keeps being tried: long enough for a node killed, Redis or NATS stopped for
/// a few seconds, a matchmaker lease changing hands.
pub(crate) const OUTAGE_PATIENCE: Duration = Duration::from_secs(30);
const FIRST_PAUSE: Duration = Duration::from_millis(200);
const LONGEST_PAUSE: Duration = Duration::from_secs(2);

/// Whether another try, perhaps on another node, may succeed: no answer at all (the node is
/// gone), or 502/503/504 (it is dying, or an engine behind it is away).
pub(crate) fn unavailable(err: &ClientError) -> bool {
    match err {
        ClientError::Transport(_) => true,
        _ => err
            .status()
            .is_some_and(|s| matches!(s.as_u16(), 502..=504)),
    }
}

/// One call's tries: paused 200 ms, doubling to 2 s, for at most [`OUTAGE_PATIENCE`].
pub(crate) struct Patience {
    give_up: Instant,
    pause: Duration,
}

impl Patience {
    pub fn new() -> Self {
        Self {
            give_up: Instant::now() + OUTAGE_PATIENCE,
            pause: FIRST_PAUSE,
        }
    }

    /// Whether another try is still due.
    pub fn lasts(&self) -> bool {
        Instant::now() < self.give_up
    }

    /// Waits before the next try.
    pub async fn pause(&mut self) {
        tokio::time::sleep(self.pause).await;
        self.pause = (self.pause * 2).min(LONGEST_PAUSE);
    }
}
