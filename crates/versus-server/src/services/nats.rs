//! The event bus across nodes: NATS JetStream behind the same [`EventBus`] trait.
//!
//! One stream, `{PREFIX}_EVENTS`, over subjects `{prefix}.player.>` and `{prefix}.system.>`:
//! - `{prefix}.player.{id}.updates` — a player's stream events, each already an [`Envelope`]
//!   with its number. Numbers are assigned here, at publish, and are the same on every node:
//!   a publish names the subject's last stream sequence it expects
//!   (`Nats-Expected-Last-Subject-Sequence`) and carries the id after that message's; if another
//!   node published to the player meanwhile, JetStream refuses it and the publisher re-reads
//!   the subject's last message and tries again. A player's events are thereby one numbered
//!   chain in stream order, whichever nodes produced them, and a client resuming on another
//!   node finds the same numbers.
//! - `{prefix}.system.announcements` — events for every connected player: each node hands
//!   them to its own connections by publishing them on to those players' subjects (so they
//!   get numbers like any other event).
//! - `{prefix}.system.revocations` — ended logins; every node closes its sockets on them.
//!
//! Every node reads the whole stream (two ordered consumers: players' events from
//! `replay_max_age` ago at start-up, so a node that restarts refills its replay buffers with
//! what was published while it was down; revocations from an access token's lifetime ago; after
//! a NATS outage each resumes after the last sequence it saw). The stream keeps
//! `replay_buffer` messages per subject, at most [`MAX_BYTES`], none older than [`RETENTION`].
//!
//! Publishing never blocks a producer: events queue in memory, in order, and a task publishes
//! them, retrying while NATS is away. What the events tell is already durable in the store;
//! an event held here while NATS is down is delivered when it returns (not if this node dies
//! first: a client then refreshes over REST, as after any `resume_gap`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream::{self, consumer, stream};
use futures::StreamExt as _;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;
use versus_protocol::ws::{Envelope, ServerEvent};

use super::events::{Audience, BusEvent, EventBus, Revocation, Subscription};
use super::hub::now_millis;

/// How long the stream keeps a message. Long beyond any replay window: a player's last message
/// is where the next number comes from, so it should outlive quiet spells.
pub const RETENTION: Duration = Duration::from_secs(24 * 3600);

/// The most the stream keeps on disk; the oldest messages go first.
pub const MAX_BYTES: i64 = 1 << 30;

/// Where a bus lives and how much it keeps.
#[derive(Debug, Clone)]
pub struct NatsOptions {
    pub url: String,
    /// Subject prefix and stream name stem: several clusters (or tests) share one NATS.
    pub prefix: String,
    /// Copies of the stream (JetStream replicas), set when the stream is created.
    pub replicas: usize,
    /// Messages kept per player.
    pub per_player: i64,
    /// How far back a starting node reads players' events, to fill its replay buffers.
    pub replay_max_age: Duration,
    /// How far back a starting node reads revocations: an access token's lifetime, so that no
    /// token revoked before the node started is accepted by it.
    pub revocations_max_age: Duration,
}

#[derive(Serialize, Deserialize)]
struct WireSeason {
    queue: String,
    ended: u32,
}

#[derive(Serialize, Deserialize)]
struct WireRatings {
    queue: String,
    players: Vec<Uuid>,
    from: Uuid,
}

#[derive(Serialize, Deserialize)]
struct WireRevocation {
    player: Uuid,
    family: Option<Uuid>,
}

pub struct NatsBus {
    client: async_nats::Client,
    outbox: mpsc::UnboundedSender<Outbound>,
    subscribers: Arc<Mutex<Vec<mpsc::UnboundedSender<Arc<BusEvent>>>>>,
}

/// What the publisher is handed, in order.
enum Outbound {
    Event(BusEvent),
    /// Answered once everything handed over before it is in the stream.
    Flushed(oneshot::Sender<()>),
}

/// One message to publish.
struct Outgoing {
    subject: String,
    kind: Kind,
    /// `Nats-Msg-Id`: the stream keeps one message per id within its duplicate window, so an
    /// event announced again (a new matchmaker finishing what a dead one formed) reaches each
    /// player once.
    once: Option<String>,
}

enum Kind {
    /// A player's event: numbered at publish.
    Player(Uuid, ServerEvent),
    /// Announcements and revocations: not numbered.
    Raw(Vec<u8>),
}

/// The subjects of one prefix. The system ones are built once: every node compares every
/// message it reads against them.
struct Subjects {
    prefix: String,
    announcements: String,
    revocations: String,
    ratings: String,
    seasons: String,
}

impl Subjects {
    fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
            announcements: format!("{prefix}.system.announcements"),
            revocations: format!("{prefix}.system.revocations"),
            ratings: format!("{prefix}.system.ratings"),
            seasons: format!("{prefix}.system.seasons"),
        }
    }
    fn player(&self, player: Uuid) -> String {
        format!("{}.player.{player}.updates", self.prefix)
    }
    /// The player a subject is for, if it is a player's.
    fn player_of(&self, subject: &str) -> Option<Uuid> {
        let rest = subject
            .strip_prefix(&self.prefix)?
            .strip_prefix(".player.")?;
        rest.strip_suffix(".updates")?.parse().ok()
    }
}

impl NatsBus {
    /// Connects, creates (or adopts) the stream, and starts publishing and reading.
    pub async fn connect(options: NatsOptions) -> anyhow::Result<Arc<Self>> {
        // Counts (re)connections: the readers start their consumers afresh after each, rather
        // than wait for the library to notice the server restarted (many seconds).
        let (connected, reconnects) = tokio::sync::watch::channel(0u64);
        let client = async_nats::ConnectOptions::new()
            .name("versus")
            .event_callback(move |event| {
                let connected = connected.clone();
                async move {
                    match event {
                        async_nats::Event::Connected => {
                            connected.send_modify(|n| *n += 1);
                        }
                        async_nats::Event::Disconnected => {
                            tracing::warn!("NATS disconnected; events wait until it is back");
                        }
                        _ => {}
                    }
                }
            })
            .retry_on_initial_connect()
            .connection_timeout(Duration::from_secs(2))
            .connect(&options.url)
            .await
            .context("connecting to NATS")?;
        // `retry_on_initial_connect` returns at once: wait (boundedly) for the first connection
        // so that a wrong address fails start-up with a clear error.
        tokio::time::timeout(Duration::from_secs(10), async {
            while client.connection_state() != async_nats::connection::State::Connected {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .with_context(|| format!("NATS at {} did not answer within 10 s", options.url))?;
        // JetStream calls answer in ms; a 5 s default would hold every event behind one that
        // was asked while NATS restarted.
        let js = jetstream::context::ContextBuilder::new()
            .timeout(Duration::from_secs(1))
            .build(client.clone());
        let name = stream_name(&options.prefix);
        let stream = js
            .get_or_create_stream(stream::Config {
                name: name.clone(),
                // Not `{prefix}.>`: request/reply between nodes (`{prefix}.rpc.…`) must not be
                // stored, nor answered by JetStream's publish acknowledgement.
                subjects: vec![
                    format!("{}.player.>", options.prefix),
                    format!("{}.system.>", options.prefix),
                ],
                max_messages_per_subject: options.per_player.max(1),
                num_replicas: options.replicas.max(1),
                max_age: RETENTION,
                max_bytes: MAX_BYTES,
                // A chain's last message is read with a direct get (any replica answers, no
                // round trip through the stream leader's API).
                allow_direct: true,
                storage: stream::StorageType::File,
                discard: stream::DiscardPolicy::Old,
                ..Default::default()
            })
            .await
            .context("creating the JetStream event stream")?;
        let subjects = Arc::new(Subjects::new(&options.prefix));
        let subscribers = Arc::new(Mutex::new(Vec::new()));
        let (outbox, rx) = mpsc::unbounded_channel();
        let bus = Arc::new(Self {
            client,
            outbox,
            subscribers: subscribers.clone(),
        });
        let mut stream = stream;
        let started_at = stream
            .info()
            .await
            .context("reading the event stream")?
            .state
            .last_sequence;
        tokio::spawn(publish_loop(js, stream.clone(), subjects.clone(), rx));
        let players = format!("{}.player.>", options.prefix);
        let system = format!("{}.system.>", options.prefix);
        let reads = [
            (players, options.replay_max_age),
            (system, options.revocations_max_age),
        ];
        for (filter, max_age) in reads {
            tokio::spawn(read_loop(
                stream.clone(),
                filter,
                subjects.clone(),
                subscribers.clone(),
                (started_at, max_age),
                reconnects.clone(),
            ));
        }
        Ok(bus)
    }

    /// The connection, for request/reply between nodes (`matchmaking::Link`).
    pub fn client(&self) -> async_nats::Client {
        self.client.clone()
    }

    /// Round trip to NATS (a flush), for `/health/detailed`.
    pub async fn ping(&self) -> Result<Duration, String> {
        if self.client.connection_state() != async_nats::connection::State::Connected {
            return Err("disconnected".to_owned());
        }
        let started = std::time::Instant::now();
        match tokio::time::timeout(Duration::from_secs(1), self.client.flush()).await {
            Ok(Ok(())) => Ok(started.elapsed()),
            Ok(Err(_)) => Err("unreachable".to_owned()),
            Err(_) => Err("timed out".to_owned()),
        }
    }
}

#[async_trait::async_trait]
impl EventBus for NatsBus {
    fn publish(&self, event: BusEvent) {
        // The loop only ends with the process.
        let _ = self.outbox.send(Outbound::Event(event));
    }

    async fn flushed(&self) {
        let (done, flushed) = oneshot::channel();
        if self.outbox.send(Outbound::Flushed(done)).is_ok() {
            let _ = flushed.await;
        }
    }

    fn subscribe(&self) -> Subscription {
        let (tx, rx) = mpsc::unbounded_channel();
        self.subscribers.lock().expect("bus lock").push(tx);
        rx
    }

    async fn probe(&self) -> Option<(&'static str, Result<Duration, String>)> {
        Some(("nats", self.ping().await))
    }

    fn numbers_events(&self) -> bool {
        true
    }

    fn drops_repeats(&self) -> bool {
        true
    }
}

/// The stream a prefix's events live in.
pub fn stream_name(prefix: &str) -> String {
    format!("{}_EVENTS", prefix.to_uppercase())
}

/// Deletes a prefix's stream (what a test leaves behind on the shared NATS).
pub async fn delete_stream(url: &str, prefix: &str) -> anyhow::Result<()> {
    let client = async_nats::connect(url).await?;
    jetstream::new(client)
        .delete_stream(stream_name(prefix))
        .await?;
    Ok(())
}

fn fan_out(subscribers: &Mutex<Vec<mpsc::UnboundedSender<Arc<BusEvent>>>>, event: BusEvent) {
    let event = Arc::new(event);
    let mut subscribers = subscribers.lock().expect("bus lock");
    subscribers.retain(|subscriber| subscriber.send(event.clone()).is_ok());
}

/// Where a player's numbering stands: the stream sequence of their last message and its id.
#[derive(Clone, Copy)]
struct Chain {
    last_sequence: u64,
    last_id: u64,
}

async fn publish_loop(
    js: jetstream::Context,
    stream: stream::Stream,
    subjects: Arc<Subjects>,
    mut rx: mpsc::UnboundedReceiver<Outbound>,
) {
    let mut chains: HashMap<Uuid, Chain> = HashMap::new();
    let mut batch = Vec::new();
    while rx.recv_many(&mut batch, 512).await > 0 {
        let mut outgoing = Vec::new();
        // Answered once the whole batch is in: everything before each marker is. (Publishing
        // up to each marker instead broke the batch into small waves under load — every
        // result asks — and the backlog grew for everyone.)
        let mut flushed = Vec::new();
        for item in batch.drain(..) {
            match item {
                Outbound::Event(event) => expand(&subjects, event, &mut outgoing),
                Outbound::Flushed(done) => flushed.push(done),
            }
        }
        publish_all(&js, &stream, &mut chains, outgoing).await;
        for done in flushed {
            let _ = done.send(());
        }
    }
}

async fn publish_all(
    js: &jetstream::Context,
    stream: &stream::Stream,
    chains: &mut HashMap<Uuid, Chain>,
    outgoing: Vec<Outgoing>,
) {
    if outgoing.is_empty() {
        return;
    }
    // Waves: the k-th message of each subject goes in wave k, so one subject's messages keep
    // their order while different players' are published together.
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let mut waves: Vec<Vec<&Outgoing>> = Vec::new();
    for message in &outgoing {
        let k = seen.entry(message.subject.as_str()).or_default();
        if waves.len() <= *k {
            waves.push(Vec::new());
        }
        waves[*k].push(message);
        *k += 1;
    }
    for wave in waves {
        publish_wave(js, stream, chains, &wave).await;
    }
    metrics::counter!("bus_events_published_total", "bus" => "nats")
        .increment(outgoing.len() as u64);
}

/// The `Nats-Msg-Id` of the events a player must never get twice however often they are
/// announced: a match, its session's address and states, the ticket's "matched", a result's
/// rating change.
fn once_id(event: &ServerEvent, player: Uuid) -> Option<String> {
    match event {
        ServerEvent::MatchFound(found) => Some(format!("match_found.{}.{player}", found.match_id)),
        ServerEvent::SessionReady(ready) => {
            Some(format!("session_ready.{}.{player}", ready.session_id))
        }
        ServerEvent::RatingUpdate(change) => {
            Some(format!("rating_update.{}.{player}", change.session_id))
        }
        // A session enters each state once.
        ServerEvent::GameStateUpdate(update) => Some(format!(
            "session_state.{}.{}.{player}",
            update.session_id,
            serde_json::to_value(update.state).ok()?.as_str()?
        )),
        ServerEvent::QueueUpdate(update) => (update.match_id)
            .filter(|_| update.state == versus_protocol::queue::TicketState::Matched)
            .map(|session| format!("matched.{}.{session}.{player}", update.ticket_id)),
        _ => None,
    }
}

fn expand(subjects: &Subjects, event: BusEvent, out: &mut Vec<Outgoing>) {
    match event {
        BusEvent::Event { audience, event } => match audience {
            Audience::Player(player) => out.push(Outgoing {
                subject: subjects.player(player),
                once: once_id(&event, player),
                kind: Kind::Player(player, event),
            }),
            Audience::Players(players) => out.extend(players.into_iter().map(|player| Outgoing {
                subject: subjects.player(player),
                once: once_id(&event, player),
                kind: Kind::Player(player, event.clone()),
            })),
            Audience::Everyone => out.push(Outgoing {
                subject: subjects.announcements.clone(),
                kind: Kind::Raw(serde_json::to_vec(&event).expect("events serialise")),
                once: None,
            }),
        },
        BusEvent::Revoked(Revocation { player, family }) => out.push(Outgoing {
            subject: subjects.revocations.clone(),
            once: None,
            kind: Kind::Raw(
                serde_json::to_vec(&WireRevocation { player, family })
                    .expect("revocations serialise"),
            ),
        }),
        BusEvent::Ratings {
            queue,
            players,
            from,
        } => out.push(Outgoing {
            subject: subjects.ratings.clone(),
            once: None,
            kind: Kind::Raw(
                serde_json::to_vec(&WireRatings {
                    queue,
                    players,
                    from,
                })
                .expect("ratings serialise"),
            ),
        }),
        BusEvent::SeasonRolled { queue, ended } => out.push(Outgoing {
            subject: subjects.seasons.clone(),
            once: None,
            kind: Kind::Raw(
                serde_json::to_vec(&WireSeason { queue, ended }).expect("seasons serialise"),
            ),
        }),
        // Read off the stream, never published.
        BusEvent::Numbered { .. } => {}
    }
}

/// Publishes one message per subject (all sent before any acknowledgement is awaited), each
/// retried until JetStream has it.
async fn publish_wave(
    js: &jetstream::Context,
    stream: &stream::Stream,
    chains: &mut HashMap<Uuid, Chain>,
    wave: &[&Outgoing],
) {
    let mut pending: Vec<&Outgoing> = wave.to_vec();
    let mut backoff = Duration::from_millis(50);
    while !pending.is_empty() {
        // The chains not known yet, read together (one round trip each, all at once).
        let unknown: Vec<(Uuid, &str)> = (pending.iter())
            .filter_map(|m| match &m.kind {
                Kind::Player(player, _) if !chains.contains_key(player) => {
                    Some((*player, m.subject.as_str()))
                }
                _ => None,
            })
            .collect();
        let read = futures::future::join_all(
            (unknown.iter()).map(|(_, subject)| last_of(stream, subject)),
        )
        .await;
        for ((player, _), chain) in unknown.iter().zip(read) {
            if let Ok(chain) = chain {
                chains.insert(*player, chain);
            }
        }
        let mut sent = Vec::with_capacity(pending.len());
        for &message in &pending {
            let attempt = match &message.kind {
                Kind::Raw(payload) => {
                    js.publish(message.subject.clone(), payload.clone().into())
                        .await
                }
                Kind::Player(player, event) => {
                    let chain = match chains.get(player) {
                        Some(chain) => *chain,
                        None => match last_of(stream, &message.subject).await {
                            Ok(chain) => *chains.entry(*player).or_insert(chain),
                            Err(err) => {
                                sent.push((message, Err(err)));
                                continue;
                            }
                        },
                    };
                    let envelope = Envelope {
                        id: chain.last_id + 1,
                        ts: now_millis(),
                        event: event.clone(),
                    };
                    let mut headers = async_nats::HeaderMap::new();
                    headers.insert(
                        async_nats::header::NATS_EXPECTED_LAST_SUBJECT_SEQUENCE,
                        chain.last_sequence.to_string().as_str(),
                    );
                    if let Some(once) = &message.once {
                        headers.insert(async_nats::header::NATS_MESSAGE_ID, once.as_str());
                    }
                    let payload = serde_json::to_vec(&envelope).expect("envelopes serialise");
                    js.publish_with_headers(message.subject.clone(), headers, payload.into())
                        .await
                }
            };
            sent.push((message, attempt.map_err(|e| e.to_string())));
        }
        let mut retry = Vec::new();
        let mut failed = false;
        for (message, attempt) in sent {
            let acked = match attempt {
                Ok(ack) => ack.await.map_err(|e| (e.kind(), e.to_string())),
                Err(err) => Err((jetstream::context::PublishErrorKind::Other, err)),
            };
            match (acked, &message.kind) {
                // Announced before (its `once` id is in the stream): nothing was added.
                (Ok(ack), Kind::Player(..)) if ack.duplicate => {
                    metrics::counter!("bus_duplicates_dropped_total").increment(1);
                }
                (Ok(ack), Kind::Player(player, _)) => {
                    let chain = chains.get_mut(player).expect("read before publishing");
                    chain.last_sequence = ack.sequence;
                    chain.last_id += 1;
                }
                (Ok(_), Kind::Raw(_)) => {}
                (
                    Err((jetstream::context::PublishErrorKind::WrongLastSequence, _)),
                    Kind::Player(player, _),
                ) => {
                    // Another node published to this player: re-read the chain and go again.
                    chains.remove(player);
                    metrics::counter!("bus_publish_conflicts_total").increment(1);
                    retry.push(message);
                }
                (Err((_, err)), _) => {
                    if let Kind::Player(player, _) = &message.kind {
                        chains.remove(player);
                    }
                    tracing::warn!(subject = %message.subject, error = %err, "NATS publish failed; retrying");
                    failed = true;
                    metrics::counter!("bus_publish_retries_total").increment(1);
                    retry.push(message);
                }
            }
        }
        // Only failures back off: a conflict (another node numbered the player's last event)
        // is retried at once with the chain re-read.
        if failed {
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
        pending = retry;
    }
}

/// A player's chain as the stream holds it: their last message's sequence and id (0 and 0
/// when the stream holds none).
async fn last_of(stream: &stream::Stream, subject: &str) -> Result<Chain, String> {
    match stream.direct_get_last_for_subject(subject).await {
        Ok(message) => {
            let envelope: Envelope = serde_json::from_slice(&message.payload)
                .map_err(|e| format!("a player message that is not an envelope: {e}"))?;
            Ok(Chain {
                last_sequence: message.sequence,
                last_id: envelope.id,
            })
        }
        Err(err) if err.kind() == stream::DirectGetErrorKind::NotFound => Ok(Chain {
            last_sequence: 0,
            last_id: 0,
        }),
        Err(err) => Err(err.to_string()),
    }
}

/// Hands out the messages of `filter`, from `max_age` ago at start-up, for as long as the
/// process lives.
async fn read_loop(
    stream: stream::Stream,
    filter: String,
    subjects: Arc<Subjects>,
    subscribers: Arc<Mutex<Vec<mpsc::UnboundedSender<Arc<BusEvent>>>>>,
    (started_at, max_age): (u64, Duration),
    mut reconnects: tokio::sync::watch::Receiver<u64>,
) {
    let mut backoff = Duration::from_millis(100);
    // The ordered consumer resumes after the last message it handed out when NATS comes back;
    // this loop only recreates it if creating or reading it failed outright.
    let mut after = 0u64;
    loop {
        let deliver_policy = if after == 0 {
            // What could still matter: older events would only be dropped.
            consumer::DeliverPolicy::ByStartTime {
                start_time: time::OffsetDateTime::now_utc() - max_age,
            }
        } else {
            consumer::DeliverPolicy::ByStartSequence {
                start_sequence: after + 1,
            }
        };
        let consumer = stream
            .create_consumer(consumer::pull::OrderedConfig {
                filter_subject: filter.clone(),
                deliver_policy,
                ..Default::default()
            })
            .await;
        let mut messages = match consumer {
            Ok(consumer) => match consumer.messages().await {
                Ok(messages) => messages,
                Err(err) => {
                    tracing::warn!(error = %err, "reading the event stream failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                    continue;
                }
            },
            Err(err) => {
                tracing::warn!(error = %err, "subscribing to the event stream failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
                continue;
            }
        };
        backoff = Duration::from_millis(100);
        reconnects.borrow_and_update();
        loop {
            let message = tokio::select! {
                message = messages.next() => message,
                // NATS came back: resume after the last message seen, at once.
                _ = reconnects.changed() => break,
            };
            let Some(message) = message else { break };
            let message = match message {
                Ok(message) => message,
                Err(err) => {
                    tracing::warn!(error = %err, "event stream read failed; resuming");
                    break;
                }
            };
            let sequence = message
                .info()
                .map(|info| info.stream_sequence)
                .unwrap_or(after + 1);
            after = after.max(sequence);
            if let Some(event) = decode(
                &subjects,
                &message.subject,
                &message.payload,
                sequence > started_at,
            ) {
                fan_out(&subscribers, event);
            }
        }
    }
}

/// What a stream message means to this node. Announcements published before this node started
/// are not handed out again (their audience was whoever was connected then).
fn decode(subjects: &Subjects, subject: &str, payload: &[u8], fresh: bool) -> Option<BusEvent> {
    if let Some(player) = subjects.player_of(subject) {
        let envelope: Envelope = match serde_json::from_slice(payload) {
            Ok(envelope) => envelope,
            Err(err) => {
                tracing::warn!(%subject, error = %err, "skipping a malformed event");
                return None;
            }
        };
        let frame: Arc<str> = std::str::from_utf8(payload).ok()?.into();
        return Some(BusEvent::Numbered {
            player,
            id: envelope.id,
            frame,
        });
    }
    if subject == subjects.revocations {
        let wire: WireRevocation = serde_json::from_slice(payload).ok()?;
        return Some(BusEvent::Revoked(Revocation {
            player: wire.player,
            family: wire.family,
        }));
    }
    if subject == subjects.seasons && fresh {
        let wire: WireSeason = serde_json::from_slice(payload).ok()?;
        return Some(BusEvent::SeasonRolled {
            queue: wire.queue,
            ended: wire.ended,
        });
    }
    if subject == subjects.ratings && fresh {
        let wire: WireRatings = serde_json::from_slice(payload).ok()?;
        return Some(BusEvent::Ratings {
            queue: wire.queue,
            players: wire.players,
            from: wire.from,
        });
    }
    if subject == subjects.announcements && fresh {
        let event: ServerEvent = serde_json::from_slice(payload).ok()?;
        return Some(BusEvent::to(Audience::Everyone, event));
    }
    None
}

/// For tests of the NATS bus: the server at `VERSUS_TEST_NATS_URL` (default
/// `nats://127.0.0.1:4222`) when it answers; otherwise `None` after printing
/// `SKIPPED (nats unreachable …)`, or a panic when backends are required (`CI=true` or
/// `VERSUS_REQUIRE_BACKENDS=1`), so CI cannot pass with these tests unrun.
pub async fn test_url() -> Option<String> {
    let url = std::env::var("VERSUS_TEST_NATS_URL")
        .unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned());
    let probe = async_nats::ConnectOptions::new()
        .connection_timeout(Duration::from_secs(2))
        .connect(&url);
    let why = match tokio::time::timeout(Duration::from_secs(3), probe).await {
        Ok(Ok(client)) => {
            drop(client);
            return Some(url);
        }
        Ok(Err(err)) => err.to_string(),
        Err(_) => "no answer in 3 s".to_owned(),
    };
    versus_store::skip_unreachable("nats", &url, &why);
    None
}

#[cfg(test)]
mod tests {
    use versus_protocol::ws::SystemAnnouncement;

    use super::*;

    fn options(url: &str, prefix: &str) -> NatsOptions {
        NatsOptions {
            url: url.to_owned(),
            prefix: prefix.to_owned(),
            replicas: 1,
            per_player: 256,
            replay_max_age: Duration::from_secs(60),
            revocations_max_age: Duration::from_secs(960),
        }
    }

    /// Two nodes' buses on a fresh prefix of their own.
    async fn two_nodes(url: &str) -> (String, Arc<NatsBus>, Arc<NatsBus>) {
        let prefix = format!("t{}", Uuid::now_v7().simple());
        let a = NatsBus::connect(options(url, &prefix)).await.unwrap();
        let b = NatsBus::connect(options(url, &prefix)).await.unwrap();
        (prefix, a, b)
    }

    fn note(text: &str) -> ServerEvent {
        ServerEvent::SystemAnnouncement(SystemAnnouncement {
            message: text.into(),
        })
    }

    async fn next_numbered(sub: &mut Subscription) -> (Uuid, u64, Envelope) {
        loop {
            let event = tokio::time::timeout(Duration::from_secs(10), sub.recv())
                .await
                .expect("an event within 10 s")
                .expect("the bus is open");
            if let BusEvent::Numbered { player, id, frame } = &*event {
                let envelope: Envelope = serde_json::from_str(frame).unwrap();
                assert_eq!(envelope.id, *id);
                return (*player, *id, envelope);
            }
        }
    }

    /// Two nodes publishing to one player at once: every event gets the next number, none
    /// twice, and both nodes read the same numbered chain in the same order.
    #[tokio::test]
    async fn two_nodes_number_one_players_events_as_one_chain() {
        let Some(url) = test_url().await else {
            return;
        };
        let (prefix, a, b) = two_nodes(&url).await;
        let mut on_a = a.subscribe();
        let mut on_b = b.subscribe();
        let player = Uuid::now_v7();
        let other = Uuid::now_v7();
        for i in 0..50 {
            let (bus, tag) = if i % 2 == 0 { (&a, "a") } else { (&b, "b") };
            bus.publish(BusEvent::to(
                Audience::Player(player),
                note(&format!("{tag}{i}")),
            ));
            if i % 5 == 0 {
                bus.publish(BusEvent::to(
                    Audience::Players(vec![player, other]),
                    note("both"),
                ));
            }
        }
        let total_for_player = 50 + 10;
        for sub in [&mut on_a, &mut on_b] {
            let mut ids = Vec::new();
            let mut other_ids = Vec::new();
            while ids.len() < total_for_player || other_ids.len() < 10 {
                let (who, id, _) = next_numbered(sub).await;
                if who == player {
                    ids.push(id);
                } else {
                    other_ids.push(id);
                }
            }
            assert_eq!(ids, (1..=total_for_player as u64).collect::<Vec<_>>());
            assert_eq!(other_ids, (1..=10).collect::<Vec<_>>());
        }
        assert!(a.probe().await.unwrap().1.is_ok());
        delete_stream(&url, &prefix).await.unwrap();
    }

    /// A node started later reads what was published before it (its replay buffers fill), and
    /// a node's numbering continues the chain the stream holds.
    #[tokio::test]
    async fn a_late_node_reads_the_recent_past_and_continues_the_chain() {
        let Some(url) = test_url().await else {
            return;
        };
        let prefix = format!("t{}", Uuid::now_v7().simple());
        let a = NatsBus::connect(options(&url, &prefix)).await.unwrap();
        let mut on_a = a.subscribe();
        let player = Uuid::now_v7();
        for i in 0..3 {
            a.publish(BusEvent::to(Audience::Player(player), note(&i.to_string())));
        }
        for id in 1..=3 {
            assert_eq!(next_numbered(&mut on_a).await.1, id);
        }
        let b = NatsBus::connect(options(&url, &prefix)).await.unwrap();
        let mut on_b = b.subscribe();
        b.publish(BusEvent::to(Audience::Player(player), note("from b")));
        let mut ids = Vec::new();
        for _ in 0..4 {
            ids.push(next_numbered(&mut on_b).await.1);
        }
        assert_eq!(ids, [1, 2, 3, 4]);
        let (_, id, envelope) = next_numbered(&mut on_a).await;
        assert_eq!(id, 4);
        assert_eq!(envelope.event, note("from b"));
        delete_stream(&url, &prefix).await.unwrap();
    }

    /// A match announced again by another node (a new matchmaker finishing what a dead one
    /// formed) reaches its player once: JetStream drops the repeat by its message id, the
    /// chain's numbering carries on unbroken, and `flushed` answers once the stream has it all.
    #[tokio::test]
    async fn a_match_announced_twice_reaches_its_player_once() {
        let Some(url) = test_url().await else {
            return;
        };
        let (prefix, a, b) = two_nodes(&url).await;
        let mut on_a = a.subscribe();
        let player = Uuid::now_v7();
        let found = ServerEvent::MatchFound(versus_protocol::ws::MatchFound {
            match_id: Uuid::now_v7(),
            queue: "ranked-1v1".into(),
            ticket_id: Uuid::now_v7(),
            region: "eu".into(),
            quality: 0.9,
            teams: Vec::new(),
        });
        a.publish(BusEvent::to(Audience::Player(player), found.clone()));
        a.flushed().await;
        b.publish(BusEvent::to(Audience::Players(vec![player]), found.clone()));
        b.publish(BusEvent::to(Audience::Player(player), note("after")));
        b.flushed().await;
        let (_, first, envelope) = next_numbered(&mut on_a).await;
        assert_eq!((first, envelope.event), (1, found));
        let (_, second, envelope) = next_numbered(&mut on_a).await;
        assert_eq!((second, envelope.event), (2, note("after")));
        // Nothing else: the stream holds exactly two messages for the player.
        let stream = async_nats::jetstream::new(a.client())
            .get_stream(stream_name(&prefix))
            .await
            .unwrap();
        let last = stream
            .direct_get_last_for_subject(Subjects::new(&prefix).player(player))
            .await
            .unwrap();
        let envelope: Envelope = serde_json::from_slice(&last.payload).unwrap();
        assert_eq!(envelope.id, 2);
        delete_stream(&url, &prefix).await.unwrap();
    }

    /// Announcements and revocations reach every node, not numbered.
    #[tokio::test]
    async fn announcements_and_revocations_reach_every_node() {
        let Some(url) = test_url().await else {
            return;
        };
        let (prefix, a, b) = two_nodes(&url).await;
        let mut on_b = b.subscribe();
        let revocation = Revocation {
            player: Uuid::now_v7(),
            family: Some(Uuid::now_v7()),
        };
        a.publish(BusEvent::to(Audience::Everyone, note("hello")));
        a.publish(BusEvent::Revoked(revocation));
        let mut got = Vec::new();
        while got.len() < 2 {
            let event = tokio::time::timeout(Duration::from_secs(10), on_b.recv())
                .await
                .unwrap()
                .unwrap();
            got.push((*event).clone());
        }
        assert_eq!(
            got,
            [
                BusEvent::to(Audience::Everyone, note("hello")),
                BusEvent::Revoked(revocation)
            ]
        );
        delete_stream(&url, &prefix).await.unwrap();
    }
}

/// The per-event cost of the bus, measured by hand (not a test of behaviour):
/// `cargo test --release -p versus-server --all-features --lib -- --ignored --nocapture nats_throughput`
#[cfg(test)]
mod throughput {
    use versus_protocol::ws::SystemAnnouncement;

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "a measurement: run by hand"]
    async fn nats_throughput() {
        let Some(url) = test_url().await else {
            return;
        };
        let prefix = format!("t{}", Uuid::now_v7().simple());
        let bus = NatsBus::connect(NatsOptions {
            url: url.clone(),
            prefix: prefix.clone(),
            replicas: 1,
            per_player: 256,
            replay_max_age: Duration::from_secs(60),
            revocations_max_age: Duration::from_secs(60),
        })
        .await
        .unwrap();
        let mut sub = bus.subscribe();
        let players: Vec<Uuid> = (0..2000).map(|_| Uuid::now_v7()).collect();
        let event = ServerEvent::SystemAnnouncement(SystemAnnouncement {
            message: "x".repeat(200),
        });
        for (label, rounds) in [("first events (chain looked up)", 1), ("cached chains", 10)] {
            let started = std::time::Instant::now();
            let total = players.len() * rounds;
            for _ in 0..rounds {
                for player in &players {
                    bus.publish(BusEvent::to(Audience::Player(*player), event.clone()));
                }
            }
            let mut got = 0;
            while got < total {
                if let BusEvent::Numbered { .. } = &*sub.recv().await.unwrap() {
                    got += 1;
                }
            }
            let took = started.elapsed();
            eprintln!(
                "{label}: {total} events published and read back in {took:?}: {:.0} events/s, {:.0} µs each",
                total as f64 / took.as_secs_f64(),
                took.as_secs_f64() * 1e6 / total as f64
            );
        }
        delete_stream(&url, &prefix).await.unwrap();
    }
}
