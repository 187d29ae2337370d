//! The WebSocket client for `GET /ws`: typed [`Envelope`]s in, [`ClientMessage`]s out.
//!
//! Two layers:
//! - [`Socket`] is one connection and nothing more: it reads the `welcome`, yields every
//!   envelope the server sends, and tracks the player's stream position. It never reconnects;
//!   tests use it to watch the wire.
//! - [`ReconnectingSocket`] wraps it: when the connection drops it waits (exponential backoff
//!   with jitter, [`Backoff`]), reconnects with `?last_event_id=` so the server replays what was
//!   missed, drops replayed duplicates, and tells the caller about each step ([`WsEvent`]),
//!   including a `resume_gap` when the server no longer holds every missed event.
//!
//! This module owns the client side of the protocol in `versus_protocol::ws` and must never
//! interpret game events: it numbers and delivers them, the caller decides what they mean.

use std::time::Duration;

use futures::{SinkExt as _, StreamExt as _};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng as _};
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use versus_protocol::ws::{
    Ack, Authenticate, ClientMessage, Envelope, ResumeGap, ServerEvent, Welcome, close,
};

use crate::credentials::TokenSource;

/// How long [`Socket::connect`] waits for the TCP connect, the upgrade and the `welcome`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// tungstenite allocates each connection's read buffer up front (128 KiB by default). Server
/// frames are small JSON envelopes, and a load generator holds thousands of sockets: 4 KiB
/// (it grows for a larger frame) keeps a connection cheap.
const READ_BUFFER_BYTES: usize = 4 * 1024;

/// The largest server message accepted; envelopes are far smaller.
const MAX_MESSAGE_BYTES: usize = 1 << 20;

/// The close reason the server gives when a newer connection of the same player replaced this
/// one. Reconnecting would only kick the newer connection out in turn.
const REPLACED_REASON_PREFIX: &str = "replaced";

#[derive(Debug, thiserror::Error)]
pub enum WsClientError {
    #[error("invalid server url {0:?}: expected http://, https://, ws:// or wss://")]
    InvalidUrl(String),
    /// The server answered the upgrade with an HTTP error (401 for a bad token, 429, ...).
    #[error("upgrade rejected with HTTP {status}: {body}")]
    Rejected { status: u16, body: String },
    #[error("websocket: {0}")]
    Transport(#[from] Box<tungstenite::Error>),
    /// The server sent a frame this SDK cannot read.
    #[error("unreadable frame from the server: {0}")]
    Protocol(String),
    /// The server closed the connection (or the TCP stream ended without a close frame).
    #[error("closed by the server: {code:?} {reason:?}")]
    Closed { code: Option<u16>, reason: String },
    /// Nothing, not even a ping, arrived for this long: the peer is presumed dead.
    #[error("no frame from the server for {0:?}")]
    Idle(Duration),
    #[error("timed out connecting")]
    ConnectTimeout,
    /// [`ReconnectingSocket::send`] while no connection is up.
    #[error("not connected")]
    NotConnected,
}

impl WsClientError {
    /// Whether reconnecting can help. A rejected token (401/403), a missing endpoint (404) or
    /// a replaced connection will not get better by retrying.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Rejected { status, .. } => *status == 429 || *status >= 500,
            // Credentials that ended or expired need new ones first (a `ReconnectingSocket`
            // with a token source gets them itself).
            Self::Closed {
                code: Some(close::TOKEN_EXPIRED | close::REVOKED),
                ..
            } => false,
            Self::Closed { reason, .. } => !reason.starts_with(REPLACED_REASON_PREFIX),
            Self::InvalidUrl(_) => false,
            Self::Transport(_)
            | Self::Protocol(_)
            | Self::Idle(_)
            | Self::ConnectTimeout
            | Self::NotConnected => true,
        }
    }

    /// A short stable label, for counting errors by kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::InvalidUrl(_) => "invalid_url",
            Self::Rejected { .. } => "rejected",
            Self::Transport(_) => "transport",
            Self::Protocol(_) => "protocol",
            Self::Closed { .. } => "closed",
            Self::Idle(_) => "idle",
            Self::ConnectTimeout => "connect_timeout",
            Self::NotConnected => "not_connected",
        }
    }
}

impl From<tungstenite::Error> for WsClientError {
    fn from(err: tungstenite::Error) -> Self {
        match err {
            tungstenite::Error::Http(response) => {
                let status = response.status().as_u16();
                let body = response
                    .body()
                    .as_deref()
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .unwrap_or_default();
                Self::Rejected { status, body }
            }
            tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed => {
                Self::Closed {
                    code: None,
                    reason: String::new(),
                }
            }
            tungstenite::Error::Protocol(
                tungstenite::error::ProtocolError::ResetWithoutClosingHandshake,
            ) => Self::Closed {
                code: None,
                reason: "connection ended without a closing handshake".into(),
            },
            other => Self::Transport(Box::new(other)),
        }
    }
}

pub type WsResult<T> = Result<T, WsClientError>;

/// The `/ws` URL for a server root (`http://host:port` or `ws://host:port`), resuming after
/// `last_event_id` when given. The token travels in the `Authorization` header, not the URL,
/// so it stays out of access logs.
pub fn ws_url(base_url: &str, last_event_id: Option<u64>) -> WsResult<String> {
    let base = base_url.trim_end_matches('/');
    let rest = if let Some(rest) = base.strip_prefix("http://") {
        format!("ws://{rest}")
    } else if let Some(rest) = base.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if base.starts_with("ws://") || base.starts_with("wss://") {
        base.to_owned()
    } else {
        return Err(WsClientError::InvalidUrl(base_url.to_owned()));
    };
    Ok(match last_event_id {
        Some(id) => format!("{rest}/ws?last_event_id={id}"),
        None => format!("{rest}/ws"),
    })
}

/// Where an envelope stands in the player's event stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// A stream event the client had not seen.
    New,
    /// A stream event at or before the client's position (an overlapping replay): drop it.
    Duplicate,
    /// A connection-local reply (`welcome`, `pong`, `error`, `resume_gap`): not numbered.
    Reply,
}

/// The client's position in the player's event stream: the id of the newest stream event it
/// has, and how many ids it knows it skipped.
///
/// Before the first `welcome` of a fresh connection the position is unknown; the welcome's
/// `last_event_id` becomes the starting point, as the server replays nothing to a client that
/// did not ask for it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventTracker {
    last: Option<u64>,
    missed: u64,
}

impl EventTracker {
    /// A tracker with no position yet: the next `welcome` sets it.
    pub fn new() -> Self {
        Self::default()
    }

    /// A tracker that has every stream event up to `id` (e.g. persisted by the caller).
    pub fn starting_after(id: u64) -> Self {
        Self {
            last: Some(id),
            missed: 0,
        }
    }

    /// The id of the newest stream event received, the value to resume with.
    pub fn last_event_id(&self) -> Option<u64> {
        self.last
    }

    /// Stream events known to be lost: ids skipped on a live connection, plus what a
    /// `resume_gap` said the server no longer had.
    pub fn missed(&self) -> u64 {
        self.missed
    }

    /// Records one envelope and says whether it is news.
    pub fn observe(&mut self, envelope: &Envelope) -> Delivery {
        match &envelope.event {
            ServerEvent::Welcome(welcome) => {
                // A fresh connection starts at the server's newest event. A server whose stream
                // is behind the client's position has lost its history (a restart): follow it.
                match self.last {
                    Some(last) if last <= welcome.last_event_id => {}
                    _ => self.last = Some(welcome.last_event_id),
                }
                Delivery::Reply
            }
            ServerEvent::ResumeGap(gap) => {
                // Replay starts at `oldest_available`: the position is just before it, even
                // below where the client was when the server's numbering restarted.
                let replay_from = gap.oldest_available.max(1);
                let lost = (replay_from - 1).saturating_sub(gap.requested_after);
                self.missed += lost;
                self.last = Some(replay_from - 1);
                Delivery::Reply
            }
            event if event.is_stream_event() => {
                let last = self.last.unwrap_or(0);
                if self.last.is_some() && envelope.id <= last {
                    return Delivery::Duplicate;
                }
                if self.last.is_some() {
                    self.missed += envelope.id.saturating_sub(last + 1);
                }
                self.last = Some(envelope.id);
                Delivery::New
            }
            _ => Delivery::Reply,
        }
    }
}

type Stream = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// One WebSocket connection, authenticated, past its `welcome`. No reconnects.
pub struct Socket {
    stream: Stream,
    welcome: Welcome,
    tracker: EventTracker,
}

impl std::fmt::Debug for Socket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Socket")
            .field("welcome", &self.welcome)
            .field("tracker", &self.tracker)
            .finish_non_exhaustive()
    }
}

impl Socket {
    /// Connects to `base_url`'s `/ws` as the holder of `access_token` and reads the `welcome`.
    /// With `last_event_id`, the server replays the stream events after it (or sends a
    /// `resume_gap`); they follow the welcome.
    pub async fn connect(
        base_url: &str,
        access_token: &str,
        last_event_id: Option<u64>,
    ) -> WsResult<Self> {
        let tracker = match last_event_id {
            Some(id) => EventTracker::starting_after(id),
            None => EventTracker::new(),
        };
        Self::connect_tracking(base_url, access_token, tracker).await
    }

    /// Connects resuming after `tracker`'s position, and keeps tracking with it.
    pub async fn connect_tracking(
        base_url: &str,
        access_token: &str,
        tracker: EventTracker,
    ) -> WsResult<Self> {
        let url = ws_url(base_url, tracker.last_event_id())?;
        let mut request = url
            .as_str()
            .into_client_request()
            .map_err(|_| WsClientError::InvalidUrl(base_url.to_owned()))?;
        let bearer = HeaderValue::from_str(&format!("Bearer {access_token}")).map_err(|_| {
            WsClientError::Protocol("the access token is not a header value".into())
        })?;
        request.headers_mut().insert("authorization", bearer);
        let connect = async {
            let config = WebSocketConfig::default()
                .read_buffer_size(READ_BUFFER_BYTES)
                .max_message_size(Some(MAX_MESSAGE_BYTES))
                .max_frame_size(Some(MAX_MESSAGE_BYTES));
            let (mut stream, _response) =
                tokio_tungstenite::connect_async_with_config(request, Some(config), true).await?;
            let mut tracker = tracker;
            let (first, _) = read_delivery(&mut stream, &mut tracker, None).await?;
            match first.event {
                ServerEvent::Welcome(welcome) => Ok(Self {
                    stream,
                    welcome,
                    tracker,
                }),
                other => Err(WsClientError::Protocol(format!(
                    "expected welcome first, got {other:?}"
                ))),
            }
        };
        tokio::time::timeout(CONNECT_TIMEOUT, connect)
            .await
            .map_err(|_| WsClientError::ConnectTimeout)?
    }

    pub fn welcome(&self) -> &Welcome {
        &self.welcome
    }

    pub fn tracker(&self) -> &EventTracker {
        &self.tracker
    }

    /// The id of the newest stream event received on this or earlier connections.
    pub fn last_event_id(&self) -> Option<u64> {
        self.tracker.last_event_id()
    }

    /// The next envelope, whatever it is (replayed duplicates included). Ping frames are
    /// answered by the library while this reads. Cancel-safe.
    pub async fn next_envelope(&mut self) -> WsResult<Envelope> {
        self.next_delivery().await.map(|(envelope, _)| envelope)
    }

    /// The next envelope and where it stands in the stream. Cancel-safe.
    pub async fn next_delivery(&mut self) -> WsResult<(Envelope, Delivery)> {
        read_delivery(&mut self.stream, &mut self.tracker, None).await
    }

    /// Like [`Socket::next_delivery`], but gives up after `idle` without any frame (pings
    /// included), which is how a dead peer shows. Cancel-safe.
    pub async fn next_delivery_within(&mut self, idle: Duration) -> WsResult<(Envelope, Delivery)> {
        read_delivery(&mut self.stream, &mut self.tracker, Some(idle)).await
    }

    pub async fn send(&mut self, message: &ClientMessage) -> WsResult<()> {
        let text = serde_json::to_string(message)
            .map_err(|err| WsClientError::Protocol(err.to_string()))?;
        self.stream.send(Message::text(text)).await?;
        Ok(())
    }

    /// Tells the server the client has the stream up to its position, so the server may drop
    /// those events from its replay buffer. Does nothing before any position is known.
    pub async fn ack(&mut self) -> WsResult<()> {
        match self.tracker.last_event_id() {
            Some(id) => self.send(&ClientMessage::Ack(Ack { id })).await,
            None => Ok(()),
        }
    }

    /// A clean close (close frame, then wait briefly for the server's). Gives the tracker
    /// back for a later resume.
    pub async fn close(mut self) -> EventTracker {
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            self.stream.close(None).await?;
            while self.stream.next().await.is_some() {}
            Ok::<_, tungstenite::Error>(())
        })
        .await;
        self.tracker
    }

    pub fn into_tracker(self) -> EventTracker {
        self.tracker
    }
}

/// Reads frames until a text frame, answering pings on the way (the library queues the pong and
/// flushes it on the next read). With `idle`, any frame (a ping too) must come within it.
async fn read_delivery(
    stream: &mut Stream,
    tracker: &mut EventTracker,
    idle: Option<Duration>,
) -> WsResult<(Envelope, Delivery)> {
    loop {
        let next = match idle {
            Some(idle) => tokio::time::timeout(idle, stream.next())
                .await
                .map_err(|_| WsClientError::Idle(idle))?,
            None => stream.next().await,
        };
        let Some(message) = next else {
            return Err(WsClientError::Closed {
                code: None,
                reason: String::new(),
            });
        };
        match message? {
            Message::Text(text) => {
                let envelope: Envelope = serde_json::from_str(text.as_str())
                    .map_err(|err| WsClientError::Protocol(format!("{err}: {text}")))?;
                let delivery = tracker.observe(&envelope);
                return Ok((envelope, delivery));
            }
            Message::Close(frame) => return Err(closed(frame)),
            Message::Binary(_) => {
                return Err(WsClientError::Protocol("unexpected binary frame".into()));
            }
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
        }
    }
}

fn closed(frame: Option<CloseFrame>) -> WsClientError {
    match frame {
        Some(frame) => WsClientError::Closed {
            code: Some(u16::from(frame.code)),
            reason: frame.reason.to_string(),
        },
        None => WsClientError::Closed {
            code: Some(u16::from(CloseCode::Status)),
            reason: String::new(),
        },
    }
}

/// Exponential backoff with "equal jitter": attempt `n` (from 1) waits a random time between
/// half and all of `min(max, initial * multiplier^(n-1))`. The jitter spreads out a crowd of
/// clients that all lost their connection at once (a server restart); the floor keeps any one
/// of them from retrying in a tight loop.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
    pub multiplier: f64,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(250),
            max: Duration::from_secs(30),
            multiplier: 2.0,
        }
    }
}

impl Backoff {
    /// The longest wait before attempt `attempt` (1-based; 0 counts as 1).
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let exponent = attempt.saturating_sub(1).min(64) as i32;
        let secs = self.initial.as_secs_f64() * self.multiplier.max(1.0).powi(exponent);
        Duration::from_secs_f64(secs.min(self.max.as_secs_f64()))
    }

    /// The wait before attempt `attempt`, jittered with `rng`.
    pub fn delay(&self, attempt: u32, rng: &mut impl Rng) -> Duration {
        let ceiling = self.ceiling(attempt);
        let half = ceiling / 2;
        half + (ceiling - half).mul_f64(rng.random::<f64>())
    }
}

/// How a [`ReconnectingSocket`] behaves when its connection drops.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReconnectPolicy {
    pub backoff: Backoff,
    /// Consecutive failed connects before [`ReconnectingSocket::next`] gives up with the last
    /// error. `None`: never give up.
    pub max_attempts: Option<u32>,
    /// A connection silent (no event, no ping) this long is dropped and replaced. `None`: three
    /// of the server's ping intervals, as announced in its `welcome`.
    pub idle_timeout: Option<Duration>,
}

/// What [`ReconnectingSocket::next`] reports.
#[derive(Debug)]
pub enum WsEvent {
    /// A connection is up. `resumed_after` is the position the client asked to resume from;
    /// replayed events follow.
    Connected {
        welcome: Welcome,
        resumed_after: Option<u64>,
    },
    /// A new stream event, or a reply (`pong`, `error`). Duplicates from a replay are dropped.
    Event(Envelope),
    /// Some events after `requested_after` are gone from the server's buffer: the caller should
    /// refresh its state over REST (e.g. `queue_status`).
    ResumeGap(ResumeGap),
    /// The connection dropped (or a connect failed); the next call reconnects after `retry_in`.
    Disconnected {
        error: WsClientError,
        attempt: u32,
        retry_in: Duration,
    },
}

/// A WebSocket client that reconnects by itself and resumes the event stream where it was.
///
/// Pull-based: nothing runs in the background; [`ReconnectingSocket::next`] reads, notices the
/// drop, waits out the backoff and reconnects. `next` is cancel-safe, so it can sit in a
/// `tokio::select!` beside the caller's other work.
pub struct ReconnectingSocket {
    /// Where to connect: the first, then (after a failed connect) the next in turn.
    base_urls: Vec<String>,
    /// Which of `base_urls` the next connect tries.
    current: usize,
    access_token: String,
    /// Fresh tokens before the current one expires; `None`: the caller renews
    /// ([`ReconnectingSocket::set_access_token`]) and expiry ends the connection.
    tokens: Option<Arc<dyn TokenSource>>,
    /// When to ask for a fresh token (a fifth of the token's remaining life before it ends).
    renew_at: Option<Instant>,
    policy: ReconnectPolicy,
    rng: StdRng,
    socket: Option<Socket>,
    tracker: EventTracker,
    /// Consecutive failures since the last successful connect.
    failures: u32,
    retry_at: Option<Instant>,
    reconnects: u64,
}

impl std::fmt::Debug for ReconnectingSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReconnectingSocket")
            .field("base_url", &self.base_urls[self.current])
            .field("connected", &self.socket.is_some())
            .field("tracker", &self.tracker)
            .field("failures", &self.failures)
            .finish_non_exhaustive()
    }
}

impl ReconnectingSocket {
    /// Does not connect yet: the first [`ReconnectingSocket::next`] does.
    pub fn new(
        base_url: impl Into<String>,
        access_token: impl Into<String>,
        policy: ReconnectPolicy,
    ) -> Self {
        Self {
            base_urls: vec![base_url.into()],
            current: 0,
            access_token: access_token.into(),
            tokens: None,
            renew_at: None,
            policy,
            rng: StdRng::from_rng(&mut rand::rng()),
            socket: None,
            tracker: EventTracker::new(),
            failures: 0,
            retry_at: None,
            reconnects: 0,
        }
    }

    /// Starts from a known stream position (the first connect resumes after `id`).
    pub fn resume_after(mut self, id: u64) -> Self {
        self.tracker = EventTracker::starting_after(id);
        self
    }

    /// Keeps the connection past its access token's expiry: shortly before it, a fresh token
    /// from `tokens` is sent as `auth`; and a socket closed because a token expired reconnects
    /// with a fresh one. (Revoked credentials still end the socket: the player must log in.)
    pub fn with_token_source(mut self, tokens: Arc<dyn TokenSource>) -> Self {
        self.tokens = Some(tokens);
        self
    }

    /// Other addresses of the same service (the other nodes of a cluster, when no load
    /// balancer stands in front of them): a connect that fails, or a lost connection whose
    /// reconnect fails, tries the next address in turn, resuming the same event stream there.
    pub fn with_fallbacks(mut self, base_urls: impl IntoIterator<Item = String>) -> Self {
        self.base_urls.extend(base_urls);
        self
    }

    /// The address the next connect goes to (or the current connection's).
    pub fn base_url(&self) -> &str {
        &self.base_urls[self.current]
    }

    /// A seeded jitter source, for reproducible runs.
    pub fn with_rng(mut self, rng: StdRng) -> Self {
        self.rng = rng;
        self
    }

    /// Uses a new access token from the next connect on (after a refresh).
    pub fn set_access_token(&mut self, access_token: impl Into<String>) {
        self.access_token = access_token.into();
    }

    pub fn is_connected(&self) -> bool {
        self.socket.is_some()
    }

    /// The newest stream event received, across connections.
    pub fn last_event_id(&self) -> Option<u64> {
        self.tracker().last_event_id()
    }

    pub fn tracker(&self) -> &EventTracker {
        match &self.socket {
            Some(socket) => socket.tracker(),
            None => &self.tracker,
        }
    }

    /// Successful connects after the first.
    pub fn reconnects(&self) -> u64 {
        self.reconnects
    }

    /// The next thing that happened. `Err` only when reconnecting cannot help (a rejected
    /// token, a connection replaced by a newer one) or `max_attempts` ran out; calling again
    /// after that tries to connect at once.
    pub async fn next(&mut self) -> WsResult<WsEvent> {
        loop {
            let Some(socket) = &mut self.socket else {
                return self.connect().await;
            };
            let idle = self.policy.idle_timeout.unwrap_or_else(|| {
                Duration::from_secs(socket.welcome().ping_interval_s.max(1) * 3)
            });
            let renew_at = self.renew_at.filter(|_| self.tokens.is_some());
            let delivery = tokio::select! {
                delivery = socket.next_delivery_within(idle) => delivery,
                () = sleep_until_some(renew_at) => {
                    self.renew().await;
                    continue;
                }
            };
            match delivery {
                Ok((_, Delivery::Duplicate)) => continue,
                Ok((envelope, _)) => {
                    return Ok(match envelope.event {
                        ServerEvent::ResumeGap(gap) => WsEvent::ResumeGap(gap),
                        ServerEvent::Authenticated(ref renewed) => {
                            self.renew_at = renew_time(renewed.token_expires_at);
                            WsEvent::Event(envelope)
                        }
                        _ => WsEvent::Event(envelope),
                    });
                }
                Err(error) => {
                    let socket = self.socket.take().expect("checked above");
                    self.tracker = socket.into_tracker();
                    let expired = matches!(
                        error,
                        WsClientError::Closed {
                            code: Some(close::TOKEN_EXPIRED),
                            ..
                        }
                    );
                    if expired && self.tokens.is_some() {
                        // The next connect fetches a fresh token first.
                        self.renew_at = Some(Instant::now());
                        return Ok(self.schedule_retry(error));
                    }
                    if !error.is_retryable() {
                        return Err(error);
                    }
                    // A drop after a good connection retries soon, but not at once.
                    return Ok(self.schedule_retry(error));
                }
            }
        }
    }

    /// Fetches a fresh token and, when connected, sends it as `auth`; the `authenticated` reply
    /// sets the next renewal. A failure is retried a few seconds later (the server closes the
    /// socket at expiry if it never succeeds).
    async fn renew(&mut self) {
        let Some(tokens) = self.tokens.clone() else {
            return;
        };
        self.renew_at = Some(Instant::now() + Duration::from_secs(5));
        let Ok(token) = tokens.fresh_token().await else {
            return;
        };
        self.access_token = token.clone();
        if let Some(socket) = &mut self.socket {
            let _ = socket
                .send(&ClientMessage::Auth(Authenticate { token }))
                .await;
        } else {
            self.renew_at = None;
        }
    }

    async fn connect(&mut self) -> WsResult<WsEvent> {
        if let Some(at) = self.retry_at {
            tokio::time::sleep_until(at).await;
        }
        // A renewal due while disconnected (a token expired): fetch before connecting.
        if self.renew_at.is_some_and(|at| at <= Instant::now()) {
            self.renew().await;
        }
        let resumed_after = self.tracker.last_event_id();
        let base_url = &self.base_urls[self.current];
        match Socket::connect_tracking(base_url, &self.access_token, self.tracker.clone()).await {
            Ok(socket) => {
                if self.failures > 0 || self.retry_at.is_some() {
                    self.reconnects += 1;
                }
                self.failures = 0;
                self.retry_at = None;
                let welcome = socket.welcome().clone();
                self.renew_at = renew_time(welcome.token_expires_at);
                self.socket = Some(socket);
                Ok(WsEvent::Connected {
                    welcome,
                    resumed_after,
                })
            }
            Err(error) => {
                let exhausted = self
                    .policy
                    .max_attempts
                    .is_some_and(|max| self.failures + 1 >= max);
                if !error.is_retryable() || exhausted {
                    self.failures = 0;
                    self.retry_at = None;
                    return Err(error);
                }
                // This address may be gone for good (a node that died): the next one, in turn.
                self.current = (self.current + 1) % self.base_urls.len();
                Ok(self.schedule_retry(error))
            }
        }
    }

    fn schedule_retry(&mut self, error: WsClientError) -> WsEvent {
        self.failures += 1;
        let retry_in = self.policy.backoff.delay(self.failures, &mut self.rng);
        self.retry_at = Some(Instant::now() + retry_in);
        WsEvent::Disconnected {
            error,
            attempt: self.failures,
            retry_in,
        }
    }

    /// Sends on the current connection; `NotConnected` while between connections (the caller
    /// retries after the next `Connected`).
    pub async fn send(&mut self, message: &ClientMessage) -> WsResult<()> {
        match &mut self.socket {
            Some(socket) => socket.send(message).await,
            None => Err(WsClientError::NotConnected),
        }
    }

    /// Acknowledges everything received so far (see [`Socket::ack`]).
    pub async fn ack(&mut self) -> WsResult<()> {
        match &mut self.socket {
            Some(socket) => socket.ack().await,
            None => Err(WsClientError::NotConnected),
        }
    }

    /// The events as a `Stream`, for callers that only listen. It ends after the first `Err`
    /// (which [`ReconnectingSocket::next`] returns only when reconnecting cannot help).
    pub fn into_stream(self) -> impl futures::Stream<Item = WsResult<WsEvent>> {
        futures::stream::unfold(Some(self), |state| async move {
            let mut socket = state?;
            match socket.next().await {
                Ok(event) => Some((Ok(event), Some(socket))),
                Err(error) => Some((Err(error), None)),
            }
        })
    }

    /// Closes the current connection cleanly; a later `next` connects again, resuming.
    pub async fn close(&mut self) {
        if let Some(socket) = self.socket.take() {
            self.tracker = socket.close().await;
        }
        self.retry_at = None;
    }
}

/// When to renew a token expiring at `expires_at` (Unix seconds): after four fifths of its
/// remaining life, so a slow refresh still lands in time.
fn renew_time(expires_at: i64) -> Option<Instant> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    // Bounded: a far-future expiry must not overflow the clock.
    let left = u64::try_from(expires_at.saturating_sub(now)).map_or(0, |s| s.min(365 * 86_400));
    Some(Instant::now() + Duration::from_millis(left * 800))
}

/// Sleeps until `at`, or forever when there is nothing to wait for.
async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;
    use versus_protocol::ws::{Notification, Pong};

    fn stream_event(id: u64) -> Envelope {
        Envelope {
            id,
            ts: 0,
            event: ServerEvent::Notification(Notification {
                kind: "info".into(),
                message: format!("#{id}"),
            }),
        }
    }

    fn welcome(last_event_id: u64) -> Envelope {
        Envelope {
            id: last_event_id,
            ts: 0,
            event: ServerEvent::Welcome(Welcome {
                player_id: Uuid::nil(),
                last_event_id,
                ping_interval_s: 15,
                token_expires_at: i64::MAX,
            }),
        }
    }

    fn gap(requested_after: u64, oldest_available: u64) -> Envelope {
        Envelope {
            id: 0,
            ts: 0,
            event: ServerEvent::ResumeGap(ResumeGap {
                requested_after,
                oldest_available,
            }),
        }
    }

    /// Feeds `envelopes` to `tracker`; returns the deliveries and the final (last, missed).
    fn check(
        mut tracker: EventTracker,
        envelopes: &[Envelope],
        deliveries: &[Delivery],
        last: Option<u64>,
        missed: u64,
    ) {
        let got: Vec<Delivery> = envelopes.iter().map(|e| tracker.observe(e)).collect();
        assert_eq!(got, deliveries);
        assert_eq!(tracker.last_event_id(), last, "last_event_id");
        assert_eq!(tracker.missed(), missed, "missed");
    }

    use Delivery::{Duplicate, New, Reply};

    #[test]
    fn a_fresh_connection_starts_at_the_welcome() {
        check(
            EventTracker::new(),
            &[welcome(41), stream_event(42), stream_event(43)],
            &[Reply, New, New],
            Some(43),
            0,
        );
        check(EventTracker::new(), &[welcome(0)], &[Reply], Some(0), 0);
    }

    #[test]
    fn a_resume_drops_what_it_already_had() {
        check(
            EventTracker::starting_after(5),
            &[
                welcome(8),
                stream_event(4),
                stream_event(5),
                stream_event(6),
                stream_event(6),
                stream_event(7),
                stream_event(8),
            ],
            &[Reply, Duplicate, Duplicate, New, Duplicate, New, New],
            Some(8),
            0,
        );
    }

    #[test]
    fn skipped_ids_and_resume_gaps_count_as_missed() {
        // Replay of 3..=4 is gone; the server replays from 5.
        check(
            EventTracker::starting_after(2),
            &[welcome(6), gap(2, 5), stream_event(5), stream_event(6)],
            &[Reply, Reply, New, New],
            Some(6),
            2,
        );
        // A hole on a live connection.
        check(
            EventTracker::starting_after(1),
            &[stream_event(2), stream_event(5)],
            &[New, New],
            Some(5),
            2,
        );
    }

    #[test]
    fn replies_do_not_move_the_position() {
        let pong = Envelope {
            id: 99,
            ts: 0,
            event: ServerEvent::Pong(Pong { echo: None }),
        };
        check(
            EventTracker::starting_after(3),
            &[pong],
            &[Reply],
            Some(3),
            0,
        );
    }

    #[test]
    fn a_server_that_lost_its_history_is_followed() {
        check(
            EventTracker::starting_after(50),
            &[welcome(2), stream_event(3)],
            &[Reply, New],
            Some(3),
            0,
        );
    }

    #[test]
    fn backoff_ceilings_double_up_to_the_max() {
        let backoff = Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(2),
            multiplier: 2.0,
        };
        let ceilings: Vec<u128> = (1..=7).map(|n| backoff.ceiling(n).as_millis()).collect();
        assert_eq!(ceilings, [100, 200, 400, 800, 1600, 2000, 2000]);
        assert_eq!(backoff.ceiling(0), backoff.ceiling(1));
        assert_eq!(backoff.ceiling(u32::MAX), Duration::from_secs(2));
    }

    #[test]
    fn backoff_jitter_stays_between_half_and_the_ceiling_and_spreads() {
        let backoff = Backoff::default();
        let mut rng = StdRng::seed_from_u64(7);
        for attempt in 1..=12 {
            let ceiling = backoff.ceiling(attempt);
            let delays: Vec<Duration> =
                (0..200).map(|_| backoff.delay(attempt, &mut rng)).collect();
            assert!(
                delays.iter().all(|d| *d >= ceiling / 2 && *d <= ceiling),
                "attempt {attempt}"
            );
            let distinct: std::collections::HashSet<_> = delays.iter().collect();
            assert!(distinct.len() > 150, "jitter spreads clients out");
        }
        // Reproducible for a given seed.
        let a: Vec<_> = (1..5)
            .map(|n| backoff.delay(n, &mut StdRng::seed_from_u64(1)))
            .collect();
        let b: Vec<_> = (1..5)
            .map(|n| backoff.delay(n, &mut StdRng::seed_from_u64(1)))
            .collect();
        assert_eq!(a, b);
    }

    #[test]
    fn urls() {
        let check = |base: &str, last: Option<u64>, expected: Option<&str>| {
            assert_eq!(ws_url(base, last).ok().as_deref(), expected, "{base}");
        };
        check(
            "http://127.0.0.1:8080",
            None,
            Some("ws://127.0.0.1:8080/ws"),
        );
        check(
            "https://example.test/",
            Some(7),
            Some("wss://example.test/ws?last_event_id=7"),
        );
        check(
            "ws://[::1]:9",
            Some(0),
            Some("ws://[::1]:9/ws?last_event_id=0"),
        );
        check("ftp://x", None, None);
    }

    #[test]
    fn which_errors_are_worth_a_reconnect() {
        let rejected = |status| WsClientError::Rejected {
            status,
            body: String::new(),
        };
        assert!(!rejected(401).is_retryable());
        assert!(rejected(429).is_retryable());
        assert!(rejected(503).is_retryable());
        let closed = |reason: &str| WsClientError::Closed {
            code: Some(1008),
            reason: reason.into(),
        };
        assert!(!closed("replaced by a newer connection").is_retryable());
        assert!(closed("send buffer full: client is not reading").is_retryable());
        assert!(WsClientError::Idle(Duration::from_secs(1)).is_retryable());
    }

    /// A server that is not there: the socket reports each failed attempt with a growing,
    /// jittered delay, and gives up after `max_attempts`.
    #[tokio::test(start_paused = true)]
    async fn failed_connects_back_off_then_give_up() {
        // A port with nothing listening: bind, note the port, close.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let policy = ReconnectPolicy {
            backoff: Backoff {
                initial: Duration::from_millis(100),
                max: Duration::from_secs(1),
                multiplier: 2.0,
            },
            max_attempts: Some(4),
            idle_timeout: None,
        };
        let mut socket = ReconnectingSocket::new(format!("http://127.0.0.1:{port}"), "t", policy)
            .with_rng(StdRng::seed_from_u64(3));
        let mut waits = Vec::new();
        for expected_attempt in 1..=3 {
            match socket.next().await.unwrap() {
                WsEvent::Disconnected {
                    attempt, retry_in, ..
                } => {
                    assert_eq!(attempt, expected_attempt);
                    waits.push(retry_in);
                }
                other => panic!("{other:?}"),
            }
        }
        assert!(waits[0] >= Duration::from_millis(50) && waits[0] <= Duration::from_millis(100));
        assert!(waits[2] >= Duration::from_millis(200) && waits[2] <= Duration::from_millis(400));
        assert!(socket.next().await.is_err(), "the fourth failure gives up");
        assert!(!socket.is_connected());
        assert!(matches!(
            socket.send(&ClientMessage::Ping(None)).await,
            Err(WsClientError::NotConnected)
        ));
    }
}
