//! The hub: one mailbox per player, holding the player's numbered event stream (a bounded replay
//! buffer) and the player's one live connection, if any.
//!
//! Ids are assigned here, under the mailbox lock, in the order events are delivered; attaching a
//! connection takes the replay and installs the connection under the same lock, so an event is
//! either replayed or sent live, never both and never neither.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::time::Instant;

use tokio::sync::{mpsc, watch};
use uuid::Uuid;
use versus_protocol::ws::{Envelope, ResumeGap, ServerEvent};

use crate::config::RealtimeConfig;
use crate::services::events::{Audience, BusEvent, EventBus, Revocation, Subscription};
use crate::services::redis::Redis;

/// A frame for one connection's writer.
#[derive(Debug, Clone)]
pub enum Outbound {
    /// A serialised envelope.
    Text(Arc<str>),
}

/// Why a connection is being closed by the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kick {
    Replaced,
    SlowReader,
    ShuttingDown,
    /// The login the socket runs on ended (logout, revoked family, ban).
    Revoked,
}

impl Kick {
    pub fn reason(self) -> &'static str {
        match self {
            Self::Replaced => "replaced by a newer connection",
            Self::SlowReader => "send buffer full: client is not reading",
            Self::ShuttingDown => "server shutting down",
            Self::Revoked => "credentials revoked: log in again",
        }
    }
}

struct Connection {
    id: u64,
    /// The refresh-token family (login) of the access token the socket last authenticated with.
    family: Uuid,
    tx: mpsc::Sender<Outbound>,
    kick: watch::Sender<Option<Kick>>,
}

struct Mailbox {
    next_id: u64,
    /// `(id, when, frame)`, oldest first, at most `replay_buffer` long and
    /// `replay_max_age_secs` old.
    buffer: VecDeque<(u64, Instant, Arc<str>)>,
    connection: Option<Connection>,
    /// Since the last connection or event: what keeps an offline mailbox alive.
    idle_since: Instant,
    /// Since the player's latest drop: what a disconnect grace is measured from.
    offline_since: Instant,
}

impl Mailbox {
    fn new() -> Self {
        Self {
            next_id: 1,
            buffer: VecDeque::new(),
            connection: None,
            idle_since: Instant::now(),
            offline_since: Instant::now(),
        }
    }

    /// Ends the live connection (if any) for `why`; the player is offline from now.
    fn drop_connection(&mut self, why: Kick) {
        if let Some(connection) = self.connection.take() {
            let _ = connection.kick.send(Some(why));
            self.went_offline();
        }
    }

    fn went_offline(&mut self) {
        let now = Instant::now();
        self.idle_since = now;
        self.offline_since = now;
    }

    fn last_id(&self) -> u64 {
        self.next_id - 1
    }
}

/// What a new connection starts with.
pub struct Attached {
    pub connection_id: u64,
    pub rx: mpsc::Receiver<Outbound>,
    pub kicked: watch::Receiver<Option<Kick>>,
    /// Stream events after the requested id, oldest first.
    pub replay: Vec<Arc<str>>,
    /// Set when events after the requested id were already dropped from the buffer.
    pub gap: Option<ResumeGap>,
    pub last_event_id: u64,
}

pub struct Hub {
    mailboxes: Mutex<HashMap<Uuid, Mailbox>>,
    config: RealtimeConfig,
    next_connection: AtomicU64,
    /// In a cluster: who is connected anywhere, kept in Redis ([`Hub::join_cluster`]).
    cluster: OnceLock<Cluster>,
}

/// This node's part in the cluster-wide presence: connects and drops go to Redis in the order
/// they happened (one task), and every live socket's entry is renewed while it lives.
struct Cluster {
    redis: Arc<Redis>,
    node: String,
    changes: mpsc::UnboundedSender<(Uuid, u64, bool)>,
}

/// How long a presence entry outlives its last renewal: a node that dies takes its players
/// offline within this.
pub const PRESENCE_TTL: Duration = Duration::from_secs(30);

pub fn now_millis() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// Serialises a connection-local reply (not part of the stream).
pub fn reply_frame(last_id: u64, event: ServerEvent) -> Arc<str> {
    let envelope = Envelope {
        id: last_id,
        ts: now_millis(),
        event,
    };
    serde_json::to_string(&envelope)
        .expect("envelopes serialise")
        .into()
}

impl Hub {
    pub fn new(config: RealtimeConfig) -> Arc<Self> {
        Arc::new(Self {
            mailboxes: Mutex::new(HashMap::new()),
            config,
            next_connection: AtomicU64::new(1),
            cluster: OnceLock::new(),
        })
    }

    /// Publishes who is connected here to Redis as `node`, so that every node can tell whether
    /// a player is connected anywhere ([`Hub::away_for`]).
    pub fn join_cluster(self: &Arc<Self>, redis: Arc<Redis>, node: String) {
        let (changes, mut rx) = mpsc::unbounded_channel::<(Uuid, u64, bool)>();
        let cluster = Cluster {
            redis: redis.clone(),
            node: node.clone(),
            changes,
        };
        if self.cluster.set(cluster).is_err() {
            return;
        }
        let id = move |connection: u64| format!("{node}/{connection}");
        let writer_id = id.clone();
        tokio::spawn(async move {
            while let Some((player, connection, up)) = rx.recv().await {
                let connection = writer_id(connection);
                let done = if up {
                    redis.set_present(player, &connection, PRESENCE_TTL).await
                } else {
                    redis.clear_present(player, &connection).await
                };
                if let Err(err) = done {
                    tracing::warn!(player_id = %player, error = %err, "presence not recorded");
                }
            }
        });
        let hub = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(PRESENCE_TTL / 3);
            every.tick().await;
            loop {
                every.tick().await;
                let Some(hub) = hub.upgrade() else { return };
                let live: Vec<(Uuid, u64)> = {
                    let mailboxes = hub.mailboxes.lock().expect("hub lock");
                    (mailboxes.iter())
                        .filter_map(|(p, m)| m.connection.as_ref().map(|c| (*p, c.id)))
                        .collect()
                };
                let cluster = hub.cluster.get().expect("set above");
                for (player, connection) in live {
                    let _ = cluster.changes.send((player, connection, true));
                }
            }
        });
    }

    fn tell_cluster(&self, player: Uuid, connection: u64, up: bool) {
        if let Some(cluster) = self.cluster.get() {
            let _ = cluster.changes.send((player, connection, up));
        }
    }

    /// How long the player has been connected nowhere: [`Hub::offline_for`] here, unless (in
    /// a cluster) another node holds their socket. With Redis unreachable the player is taken
    /// as connected: an outage must not cost anyone their place in a queue.
    pub async fn away_for(&self, player: Uuid) -> Option<Duration> {
        let here = self.offline_for(player)?;
        let Some(cluster) = self.cluster.get() else {
            return Some(here);
        };
        match cluster.redis.is_present(player).await {
            Ok(false) => Some(here),
            Ok(true) => None,
            Err(err) => {
                tracing::warn!(player_id = %player, error = %err, node = %cluster.node, "presence unknown; taken as connected");
                None
            }
        }
    }

    /// Delivers bus events until the bus closes.
    pub async fn run(self: Arc<Self>, mut subscription: Subscription) {
        while let Some(event) = subscription.recv().await {
            self.deliver(&event);
        }
    }

    /// Delivers the events of a bus shared between nodes, which numbers players' events
    /// itself: an announcement for everyone is published on as an event for each player
    /// connected here, so that it is numbered like the rest.
    pub async fn run_numbered(self: Arc<Self>, bus: Arc<dyn EventBus>) {
        let mut subscription = bus.subscribe();
        while let Some(event) = subscription.recv().await {
            match &*event {
                BusEvent::Event {
                    audience: Audience::Everyone,
                    event,
                } => {
                    let connected = self.connected_players();
                    if !connected.is_empty() {
                        bus.publish(BusEvent::to(Audience::Players(connected), event.clone()));
                    }
                }
                other => self.deliver(other),
            }
        }
    }

    fn connected_players(&self) -> Vec<Uuid> {
        let mailboxes = self.mailboxes.lock().expect("hub lock");
        (mailboxes.iter())
            .filter(|(_, m)| m.connection.is_some())
            .map(|(id, _)| *id)
            .collect()
    }

    pub fn deliver(&self, event: &BusEvent) {
        let (audience, event) = match event {
            BusEvent::Event { audience, event } => (audience, event),
            BusEvent::Revoked(revocation) => return self.revoke(revocation),
            BusEvent::Ratings { .. } | BusEvent::SeasonRolled { .. } => return,
            BusEvent::Numbered { player, id, frame } => {
                let mut mailboxes = self.mailboxes.lock().expect("hub lock");
                return self.push_frame(&mut mailboxes, *player, Some(*id), frame.clone());
            }
        };
        let mut mailboxes = self.mailboxes.lock().expect("hub lock");
        match audience {
            Audience::Player(player) => self.push(&mut mailboxes, *player, event),
            Audience::Players(players) => {
                for player in players {
                    self.push(&mut mailboxes, *player, event);
                }
            }
            Audience::Everyone => {
                let connected: Vec<Uuid> = mailboxes
                    .iter()
                    .filter(|(_, m)| m.connection.is_some())
                    .map(|(id, _)| *id)
                    .collect();
                for player in connected {
                    self.push(&mut mailboxes, player, event);
                }
            }
        }
    }

    fn push(&self, mailboxes: &mut HashMap<Uuid, Mailbox>, player: Uuid, event: &ServerEvent) {
        let id = mailboxes.get(&player).map_or(1, |m| m.next_id);
        let envelope = Envelope {
            id,
            ts: now_millis(),
            event: event.clone(),
        };
        let frame: Arc<str> = serde_json::to_string(&envelope)
            .expect("envelopes serialise")
            .into();
        self.push_frame(mailboxes, player, None, frame);
    }

    /// Buffers and sends one serialised event: numbered here (`numbered: None`, the frame made
    /// with the mailbox's next id) or by a shared bus, whose number is taken as given — one
    /// already held (a redelivery after a NATS reconnect) is dropped.
    fn push_frame(
        &self,
        mailboxes: &mut HashMap<Uuid, Mailbox>,
        player: Uuid,
        numbered: Option<u64>,
        frame: Arc<str>,
    ) {
        let mailbox = mailboxes.entry(player).or_insert_with(Mailbox::new);
        let id = match numbered {
            None => mailbox.next_id,
            Some(id) if id < mailbox.next_id => return,
            Some(id) => id,
        };
        mailbox.next_id = id + 1;
        let now = Instant::now();
        mailbox.buffer.push_back((id, now, frame.clone()));
        let max_age = Duration::from_secs(self.config.replay_max_age_secs);
        while mailbox.buffer.len() > self.config.replay_buffer
            || mailbox
                .buffer
                .front()
                .is_some_and(|(_, at, _)| now.duration_since(*at) > max_age)
        {
            mailbox.buffer.pop_front();
        }
        let Some(connection) = &mailbox.connection else {
            // Offline players keep their mailbox while events keep coming for them.
            mailbox.idle_since = Instant::now();
            return;
        };
        match connection.tx.try_send(Outbound::Text(frame)) {
            Ok(()) => {
                metrics::counter!("game_ws_events_sent_total").increment(1);
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                // The event stays in the replay buffer: the client can resume once it reads again.
                metrics::counter!("game_ws_events_dropped_total", "reason" => "slow_reader")
                    .increment(1);
                mailbox.drop_connection(Kick::SlowReader);
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                metrics::counter!("game_ws_events_dropped_total", "reason" => "closed")
                    .increment(1);
                mailbox.drop_connection(Kick::ShuttingDown);
            }
        }
    }

    /// Closes the sockets opened with revoked credentials: the player's live one when it runs on
    /// the revoked login (or on any login, for a revocation of the whole player).
    fn revoke(&self, revocation: &Revocation) {
        let mut mailboxes = self.mailboxes.lock().expect("hub lock");
        if let Some(mailbox) = mailboxes.get_mut(&revocation.player) {
            let hit = (mailbox.connection.as_ref())
                .is_some_and(|c| revocation.family.is_none_or(|family| family == c.family));
            if hit {
                metrics::counter!("game_ws_revoked_total").increment(1);
                mailbox.drop_connection(Kick::Revoked);
            }
        }
    }

    /// The socket now runs on a newer access token, possibly of another login of the player.
    pub fn reauthenticated(&self, player: Uuid, connection_id: u64, family: Uuid) {
        let mut mailboxes = self.mailboxes.lock().expect("hub lock");
        if let Some(connection) = (mailboxes.get_mut(&player))
            .and_then(|m| m.connection.as_mut())
            .filter(|c| c.id == connection_id)
        {
            connection.family = family;
        }
    }

    /// Makes a new connection the player's live one, kicking any older one, and hands it what it
    /// missed after `last_event_id` (`None`: a fresh start, nothing replayed). `family` is the
    /// login the connection's access token belongs to.
    pub fn attach(&self, player: Uuid, family: Uuid, last_event_id: Option<u64>) -> Attached {
        let (tx, rx) = mpsc::channel(self.config.send_buffer);
        let (kick, kicked) = watch::channel(None);
        let connection_id = self.next_connection.fetch_add(1, Ordering::Relaxed);
        let mut mailboxes = self.mailboxes.lock().expect("hub lock");
        let mailbox = mailboxes.entry(player).or_insert_with(Mailbox::new);
        mailbox.drop_connection(Kick::Replaced);
        let mut gap = None;
        let replay = match last_event_id {
            None => Vec::new(),
            Some(mut after) => {
                let oldest = mailbox
                    .buffer
                    .front()
                    .map_or(mailbox.next_id, |(id, _, _)| *id);
                // Ids from the future: the client's numbering is from a mailbox this server no
                // longer has (forgotten while idle, or a restart). Nothing it saw is here; what
                // is here, it has not seen: replay it all.
                let foreign = after > mailbox.last_id();
                // Events after `after` were dropped: the client must refresh over REST.
                let dropped = after + 1 < oldest && after < mailbox.last_id();
                if dropped || foreign {
                    gap = Some(ResumeGap {
                        requested_after: after,
                        oldest_available: oldest,
                    });
                }
                if foreign {
                    after = 0;
                }
                mailbox
                    .buffer
                    .iter()
                    .filter(|(id, _, _)| *id > after)
                    .map(|(_, _, frame)| frame.clone())
                    .collect()
            }
        };
        mailbox.connection = Some(Connection {
            id: connection_id,
            family,
            tx,
            kick,
        });
        self.tell_cluster(player, connection_id, true);
        Attached {
            connection_id,
            rx,
            kicked,
            replay,
            gap,
            last_event_id: mailbox.last_id(),
        }
    }

    /// Forgets a connection that ended, unless a newer one already replaced it.
    pub fn detach(&self, player: Uuid, connection_id: u64) {
        let mut mailboxes = self.mailboxes.lock().expect("hub lock");
        if let Some(mailbox) = mailboxes.get_mut(&player)
            && mailbox
                .connection
                .as_ref()
                .is_some_and(|c| c.id == connection_id)
        {
            mailbox.connection = None;
            mailbox.went_offline();
            self.tell_cluster(player, connection_id, false);
        }
    }

    /// The newest stream event id of the player (0 before the first).
    pub fn last_id(&self, player: Uuid) -> u64 {
        let mailboxes = self.mailboxes.lock().expect("hub lock");
        mailboxes.get(&player).map_or(0, Mailbox::last_id)
    }

    pub fn is_connected(&self, player: Uuid) -> bool {
        let mailboxes = self.mailboxes.lock().expect("hub lock");
        mailboxes
            .get(&player)
            .is_some_and(|m| m.connection.is_some())
    }

    /// How long the player has been without a connection, since the latest drop; `None` while
    /// connected. A player the hub has forgotten has been gone longer than any grace.
    pub fn offline_for(&self, player: Uuid) -> Option<Duration> {
        let mailboxes = self.mailboxes.lock().expect("hub lock");
        match mailboxes.get(&player) {
            Some(mailbox) if mailbox.connection.is_some() => None,
            Some(mailbox) => Some(mailbox.offline_since.elapsed()),
            None => Some(Duration::MAX),
        }
    }

    /// The client holds the stream up to `id`: those events need not be replayed any more.
    pub fn ack(&self, player: Uuid, id: u64) {
        let mut mailboxes = self.mailboxes.lock().expect("hub lock");
        if let Some(mailbox) = mailboxes.get_mut(&player) {
            while mailbox
                .buffer
                .front()
                .is_some_and(|(first, _, _)| *first <= id)
            {
                mailbox.buffer.pop_front();
            }
        }
    }

    /// Drops the mailboxes of players who have had no connection for `mailbox_idle_secs`.
    pub fn forget_idle(&self) {
        let idle = Duration::from_secs(self.config.mailbox_idle_secs);
        let mut mailboxes = self.mailboxes.lock().expect("hub lock");
        mailboxes.retain(|_, m| m.connection.is_some() || m.idle_since.elapsed() < idle);
    }

    /// Asks every live connection to close (server shutdown).
    pub fn close_all(&self) {
        let mut mailboxes = self.mailboxes.lock().expect("hub lock");
        for mailbox in mailboxes.values_mut() {
            mailbox.drop_connection(Kick::ShuttingDown);
        }
    }

    pub fn connected_count(&self) -> usize {
        let mailboxes = self.mailboxes.lock().expect("hub lock");
        mailboxes
            .values()
            .filter(|m| m.connection.is_some())
            .count()
    }
}

#[cfg(test)]
mod tests {
    use versus_protocol::ws::Notification;

    use super::*;

    fn note(text: &str) -> BusEvent {
        BusEvent::Event {
            audience: Audience::Player(PLAYER),
            event: ServerEvent::Notification(Notification {
                kind: "test".into(),
                message: text.into(),
            }),
        }
    }

    const PLAYER: Uuid = Uuid::from_u128(42);
    const FAMILY: Uuid = Uuid::from_u128(7);

    fn hub(replay: usize, send: usize) -> Arc<Hub> {
        Hub::new(RealtimeConfig {
            replay_buffer: replay,
            send_buffer: send,
            ..RealtimeConfig::default()
        })
    }

    fn ids(frames: &[Arc<str>]) -> Vec<u64> {
        frames
            .iter()
            .map(|f| serde_json::from_str::<Envelope>(f).unwrap().id)
            .collect()
    }

    #[test]
    fn events_are_numbered_and_replayed_after_the_last_seen_id() {
        let hub = hub(10, 10);
        for i in 0..5 {
            hub.deliver(&note(&i.to_string()));
        }
        let attached = hub.attach(PLAYER, FAMILY, Some(2));
        assert_eq!(ids(&attached.replay), [3, 4, 5]);
        assert!(attached.gap.is_none());
        assert_eq!(attached.last_event_id, 5);
        let fresh = hub.attach(PLAYER, FAMILY, None);
        assert!(fresh.replay.is_empty());
    }

    #[test]
    fn a_resume_past_the_buffer_reports_the_gap() {
        let hub = hub(3, 10);
        for i in 0..6 {
            hub.deliver(&note(&i.to_string()));
        }
        let attached = hub.attach(PLAYER, FAMILY, Some(1));
        assert_eq!(ids(&attached.replay), [4, 5, 6]);
        assert_eq!(
            attached.gap,
            Some(ResumeGap {
                requested_after: 1,
                oldest_available: 4
            })
        );
        // Up to date: no gap, nothing to replay.
        let attached = hub.attach(PLAYER, FAMILY, Some(6));
        assert!(attached.replay.is_empty() && attached.gap.is_none());
        // Ids from the future (a mailbox this server forgot): a gap, so the client refreshes,
        // naming where what this server holds starts, and all of it replayed.
        let attached = hub.attach(PLAYER, FAMILY, Some(99));
        assert_eq!(
            attached.gap,
            Some(ResumeGap {
                requested_after: 99,
                oldest_available: 4
            })
        );
        assert_eq!(ids(&attached.replay), [4, 5, 6]);
    }

    #[test]
    fn revoked_credentials_close_their_socket_only() {
        let hub = hub(10, 10);
        let other_login = Uuid::from_u128(8);
        let attached = hub.attach(PLAYER, FAMILY, None);
        hub.deliver(&BusEvent::Revoked(Revocation {
            player: PLAYER,
            family: Some(other_login),
        }));
        assert_eq!(*attached.kicked.borrow(), None, "another login's logout");
        // After re-authenticating with a token of the other login, that login's end closes it.
        hub.reauthenticated(PLAYER, attached.connection_id, other_login);
        hub.deliver(&BusEvent::Revoked(Revocation {
            player: PLAYER,
            family: Some(other_login),
        }));
        assert_eq!(*attached.kicked.borrow(), Some(Kick::Revoked));
        assert!(!hub.is_connected(PLAYER));
        // A revocation of the whole player closes any login's socket.
        let again = hub.attach(PLAYER, FAMILY, None);
        hub.deliver(&BusEvent::Revoked(Revocation {
            player: PLAYER,
            family: None,
        }));
        assert_eq!(*again.kicked.borrow(), Some(Kick::Revoked));
    }

    #[tokio::test(start_paused = true)]
    async fn offline_time_counts_from_the_latest_drop() {
        let hub = hub(10, 10);
        assert_eq!(hub.offline_for(PLAYER), Some(Duration::MAX));
        let first = hub.attach(PLAYER, FAMILY, None);
        assert_eq!(hub.offline_for(PLAYER), None);
        hub.detach(PLAYER, first.connection_id);
        tokio::time::advance(Duration::from_secs(3)).await;
        // Events for an offline player keep its mailbox, not its connection.
        hub.deliver(&note("while away"));
        assert_eq!(hub.offline_for(PLAYER), Some(Duration::from_secs(3)));
        let second = hub.attach(PLAYER, FAMILY, None);
        tokio::time::advance(Duration::from_secs(1)).await;
        hub.detach(PLAYER, second.connection_id);
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(hub.offline_for(PLAYER), Some(Duration::from_secs(2)));
    }

    #[test]
    fn live_delivery_then_slow_reader_is_kicked_and_can_resume() {
        let hub = hub(100, 2);
        let mut attached = hub.attach(PLAYER, FAMILY, None);
        hub.deliver(&note("a"));
        hub.deliver(&note("b"));
        assert!(hub.is_connected(PLAYER));
        hub.deliver(&note("c"));
        assert_eq!(*attached.kicked.borrow(), Some(Kick::SlowReader));
        assert!(!hub.is_connected(PLAYER));
        let Outbound::Text(first) = attached.rx.try_recv().unwrap();
        assert_eq!(ids(&[first]), [1]);
        let resumed = hub.attach(PLAYER, FAMILY, Some(1));
        assert_eq!(ids(&resumed.replay), [2, 3]);
    }

    #[test]
    fn a_new_connection_replaces_the_old_one() {
        let hub = hub(10, 10);
        let old = hub.attach(PLAYER, FAMILY, None);
        let new = hub.attach(PLAYER, FAMILY, None);
        assert_eq!(*old.kicked.borrow(), Some(Kick::Replaced));
        hub.detach(PLAYER, old.connection_id);
        assert!(
            hub.is_connected(PLAYER),
            "the old connection's end must not detach the new one"
        );
        hub.detach(PLAYER, new.connection_id);
        assert!(!hub.is_connected(PLAYER));
    }

    #[tokio::test(start_paused = true)]
    async fn events_older_than_the_max_age_leave_the_buffer() {
        let hub = Hub::new(RealtimeConfig {
            replay_buffer: 100,
            replay_max_age_secs: 60,
            ..RealtimeConfig::default()
        });
        hub.deliver(&note("old"));
        tokio::time::advance(Duration::from_secs(61)).await;
        hub.deliver(&note("new"));
        let attached = hub.attach(PLAYER, FAMILY, Some(0));
        assert_eq!(ids(&attached.replay), [2]);
        assert!(
            attached.gap.is_some(),
            "event 1 aged out: the client must refresh"
        );
    }

    #[test]
    fn acked_events_leave_the_buffer() {
        let hub = hub(10, 10);
        for i in 0..4 {
            hub.deliver(&note(&i.to_string()));
        }
        hub.ack(PLAYER, 3);
        let attached = hub.attach(PLAYER, FAMILY, Some(0));
        assert_eq!(ids(&attached.replay), [4]);
        assert!(attached.gap.is_some());
    }
}
