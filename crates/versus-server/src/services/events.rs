//! The event bus: how parts of the server tell players what happened without calling each other.
//! The matchmaker publishes; the WebSocket hub subscribes and delivers. In one process the bus is
//! a fan-out of unbounded channels (nothing is dropped between publisher and hub); the scale-out
//! issue puts NATS JetStream behind the same trait.

use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;
use uuid::Uuid;
use versus_protocol::ws::ServerEvent;

/// Who an event is for.
#[derive(Debug, Clone, PartialEq)]
pub enum Audience {
    Player(Uuid),
    Players(Vec<Uuid>),
    /// Every player with a live connection.
    Everyone,
}

#[derive(Debug, Clone, PartialEq)]
pub enum BusEvent {
    /// A stream event for players (numbered, replayable, delivered by the hub).
    Event {
        audience: Audience,
        event: ServerEvent,
    },
    /// Credentials were revoked: sockets opened with them close, and their access tokens stop
    /// being accepted, on every node that hears it.
    Revoked(Revocation),
    /// Results changed these players' ratings in `queue`: in a cluster every other node
    /// refreshes its leaderboard index from the store (`from`, the node that applied them,
    /// already did).
    Ratings {
        queue: String,
        players: Vec<Uuid>,
        from: Uuid,
    },
    /// Season `ended` of `queue` was rolled over (by the schedule or an admin): in a cluster
    /// every other node moves its live leaderboard to the new season.
    SeasonRolled { queue: String, ended: u32 },
    /// A player's stream event numbered by a bus shared between nodes (`NatsBus`): the same
    /// number on every node, and `frame` the serialised envelope as the client gets it. The
    /// in-process bus never yields it (its hub numbers events itself).
    Numbered {
        player: Uuid,
        id: u64,
        frame: Arc<str>,
    },
}

/// Whose credentials ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Revocation {
    pub player: Uuid,
    /// One login (its refresh-token family: a logout, a re-used refresh token), or `None` for
    /// every login of the player (a ban, a deleted account).
    pub family: Option<Uuid>,
}

impl BusEvent {
    pub fn to(audience: Audience, event: ServerEvent) -> Self {
        Self::Event { audience, event }
    }
}

pub type Subscription = mpsc::UnboundedReceiver<Arc<BusEvent>>;

#[async_trait::async_trait]
pub trait EventBus: Send + Sync + 'static {
    fn publish(&self, event: BusEvent);
    /// A new subscriber sees every event published after it subscribed.
    fn subscribe(&self) -> Subscription;
    /// The engine behind the bus, if any, and a round trip to it (`/health/detailed`).
    async fn probe(&self) -> Option<(&'static str, Result<std::time::Duration, String>)> {
        None
    }
    /// Resolves once every event published before the call is as durable as the bus makes it
    /// (in the stream, for a shared bus); at once for the in-process bus.
    async fn flushed(&self) {}
    /// Whether a repeat of an event a player must get once (`match_found`, `session_ready`,
    /// `rating_update`, a session's state, a ticket's `matched`) is dropped by the bus, so that
    /// announcing it again after a node may have died before sending it is safe. A bus in one
    /// process loses nothing that way and does not drop repeats.
    fn drops_repeats(&self) -> bool {
        false
    }
    /// Whether events numbered for players come from the bus (`BusEvent::Numbered`) rather
    /// than from the hub, which then hands announcements on as events for its own players.
    fn numbers_events(&self) -> bool {
        false
    }
}

#[derive(Default)]
pub struct InProcessBus {
    subscribers: Mutex<Vec<mpsc::UnboundedSender<Arc<BusEvent>>>>,
}

impl EventBus for InProcessBus {
    fn publish(&self, event: BusEvent) {
        let event = Arc::new(event);
        let mut subscribers = self.subscribers.lock().expect("bus lock");
        subscribers.retain(|subscriber| subscriber.send(event.clone()).is_ok());
    }

    fn subscribe(&self) -> Subscription {
        let (tx, rx) = mpsc::unbounded_channel();
        self.subscribers.lock().expect("bus lock").push(tx);
        rx
    }
}

#[cfg(test)]
mod tests {
    use versus_protocol::ws::SystemAnnouncement;

    use super::*;

    fn announcement(text: &str) -> BusEvent {
        BusEvent::to(
            Audience::Everyone,
            ServerEvent::SystemAnnouncement(SystemAnnouncement {
                message: text.into(),
            }),
        )
    }

    #[tokio::test]
    async fn every_subscriber_gets_every_later_event_in_order() {
        let bus = InProcessBus::default();
        bus.publish(announcement("before anyone listened"));
        let mut a = bus.subscribe();
        let mut b = bus.subscribe();
        for i in 0..100 {
            bus.publish(announcement(&i.to_string()));
        }
        for sub in [&mut a, &mut b] {
            for i in 0..100 {
                assert_eq!(*sub.recv().await.unwrap(), announcement(&i.to_string()));
            }
            assert!(sub.try_recv().is_err());
        }
        drop(a);
        bus.publish(announcement("after a left"));
        assert_eq!(*b.recv().await.unwrap(), announcement("after a left"));
        assert_eq!(bus.subscribers.lock().unwrap().len(), 1);
    }
}
