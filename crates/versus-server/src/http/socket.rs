//! One player's WebSocket connection. A reader handles client messages; a writer drains the
//! connection's bounded outbox, sends server pings, and is the only one who closes the socket —
//! when the hub kicks it (replaced, slow reader, shutdown, revoked credentials), when the access
//! token it runs on expires without an `auth` renewing it, when the peer stops answering, or
//! when the reader asks (too many messages, a frame too large). Closes always carry a code and a
//! reason from `versus_protocol::ws::close`.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt as _, StreamExt as _};
use governor::{DefaultDirectRateLimiter, Quota};
use tokio::sync::{mpsc, watch};
use uuid::Uuid;
use versus_protocol::ws::{
    Authenticated, ClientMessage, Pong, ServerEvent, Welcome, WsError, close,
};

use crate::http::auth::AuthPlayer;
use crate::http::error::ApiError;
use crate::http::state::AppState;
use crate::services::hub::{Kick, Outbound, reply_frame};

type Sink = SplitSink<WebSocket, Message>;

/// Why the server closes a socket: a close code and a reason the client can show.
#[derive(Debug, Clone, Copy)]
struct Closing {
    code: u16,
    reason: &'static str,
}

impl Closing {
    fn kicked(kick: Kick) -> Self {
        let code = match kick {
            Kick::Replaced | Kick::SlowReader => close::POLICY,
            Kick::ShuttingDown => close::GOING_AWAY,
            Kick::Revoked => close::REVOKED,
        };
        Self {
            code,
            reason: kick.reason(),
        }
    }
}

/// How the reader ended.
enum ReaderEnd {
    /// The peer closed or vanished: nothing more can be said to it.
    Gone(&'static str),
    /// The reader asked the writer to close the socket.
    Closing,
}

pub async fn serve(
    socket: WebSocket,
    state: AppState,
    auth: AuthPlayer,
    last_event_id: Option<u64>,
) {
    let player = auth.id;
    let hub = state.hub.clone();
    let attached = hub.attach(player, auth.family, last_event_id);
    metrics::gauge!("game_websocket_connections").increment(1.0);
    tracing::info!(player_id = %player, resume_after = ?last_event_id, "websocket connected");

    let (sink, mut stream) = socket.split();
    let last_id = attached.last_event_id;
    let heard = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut first = vec![reply_frame(
        last_id,
        ServerEvent::Welcome(Welcome {
            player_id: player,
            last_event_id: last_id,
            ping_interval_s: state.config.realtime.ping_interval_secs,
            token_expires_at: auth.expires_at,
        }),
    )];
    if let Some(gap) = attached.gap.clone() {
        first.push(reply_frame(last_id, ServerEvent::ResumeGap(gap)));
    }
    first.extend(attached.replay.iter().cloned());

    // Replies from the reader go through the writer, so frames never interleave mid-write;
    // they are dropped (not queued unboundedly) if that small queue is full.
    let (reply_tx, reply_rx) = mpsc::channel::<Arc<str>>(32);
    let (closing_tx, closing_rx) = mpsc::channel::<Closing>(1);
    let (expiry_tx, expiry_rx) = watch::channel(auth.expires_at);
    let ended = {
        let writer = write_loop(
            sink,
            first,
            Channels {
                outbox: attached.rx,
                replies: reply_rx,
                closing: closing_rx,
                kicked: attached.kicked,
                expiry: expiry_rx,
            },
            &state,
            heard.clone(),
            started,
        );
        let reader = read_loop(
            &mut stream,
            &state,
            Peer {
                player,
                connection: attached.connection_id,
                replies: reply_tx,
                closing: closing_tx,
                expiry: expiry_tx,
                heard,
                started,
            },
        );
        tokio::pin!(writer, reader);
        tokio::select! {
            why = &mut writer => Some(why),
            end = &mut reader => match end {
                ReaderEnd::Gone(why) => {
                    tracing::info!(player_id = %player, reason = why, "websocket closed");
                    None
                }
                ReaderEnd::Closing => Some(writer.await),
            },
        }
    };
    if let Some(why) = ended {
        // Finish the closing handshake: wait briefly for the peer's close reply, so the socket
        // is not torn down (and reset) before the peer has read our close frame and its reason.
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while let Some(Ok(message)) = stream.next().await {
                if matches!(message, Message::Close(_)) {
                    break;
                }
            }
        })
        .await;
        tracing::info!(player_id = %player, reason = why, "websocket closed");
    }
    hub.detach(player, attached.connection_id);
    metrics::gauge!("game_websocket_connections").decrement(1.0);
    let grace = Duration::from_secs(state.config.matchmaking.disconnect_grace_secs);
    state.parties.hold_for_reconnect(hub, player, grace);
}

/// Sends a close frame (best effort, bounded) and returns its reason.
async fn close_with(sink: &mut Sink, closing: Closing) -> &'static str {
    let frame = Message::Close(Some(CloseFrame {
        code: closing.code,
        reason: Utf8Bytes::from_static(closing.reason),
    }));
    let _ = tokio::time::timeout(Duration::from_secs(1), sink.send(frame)).await;
    closing.reason
}

async fn send_frame(sink: &mut Sink, frame: Arc<str>, timeout: Duration) -> bool {
    let message = Message::Text(Utf8Bytes::from(frame.as_ref()));
    matches!(
        tokio::time::timeout(timeout, sink.send(message)).await,
        Ok(Ok(()))
    )
}

/// What the writer listens to besides the socket.
struct Channels {
    outbox: mpsc::Receiver<Outbound>,
    replies: mpsc::Receiver<Arc<str>>,
    closing: mpsc::Receiver<Closing>,
    kicked: watch::Receiver<Option<Kick>>,
    /// The access token's expiry, Unix seconds; moved by `auth`.
    expiry: watch::Receiver<i64>,
}

/// The tokio instant at which a token expiring at `unix_secs` does.
fn deadline(unix_secs: i64) -> tokio::time::Instant {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    // Bounded: no token lives a year, and a far-future one must not overflow the clock.
    let left = u64::try_from(unix_secs.saturating_sub(now)).map_or(0, |s| s.min(365 * 86_400));
    tokio::time::Instant::now() + Duration::from_secs(left)
}

async fn write_loop(
    mut sink: Sink,
    first: Vec<Arc<str>>,
    mut channels: Channels,
    state: &AppState,
    heard: Arc<AtomicU64>,
    started: Instant,
) -> &'static str {
    let realtime = &state.config.realtime;
    let send_timeout = Duration::from_secs(realtime.send_timeout_secs);
    let ping_every = Duration::from_secs(realtime.ping_interval_secs);
    for frame in first {
        if !send_frame(&mut sink, frame, send_timeout).await {
            return "send failed";
        }
    }
    let mut pings = tokio::time::interval_at(tokio::time::Instant::now() + ping_every, ping_every);
    let expires = tokio::time::sleep_until(deadline(*channels.expiry.borrow_and_update()));
    tokio::pin!(expires);
    loop {
        tokio::select! {
            biased;
            changed = channels.kicked.changed() => {
                let kick = *channels.kicked.borrow();
                match (changed, kick) {
                    (_, Some(kick)) => return close_with(&mut sink, Closing::kicked(kick)).await,
                    // The hub forgot this connection without a word: treat it as shutdown
                    // rather than poll a closed channel forever.
                    (Err(_), None) => {
                        return close_with(&mut sink, Closing::kicked(Kick::ShuttingDown)).await;
                    }
                    (Ok(()), None) => {}
                }
            }
            Some(closing) = channels.closing.recv() => return close_with(&mut sink, closing).await,
            () = &mut expires => {
                let expired = Closing { code: close::TOKEN_EXPIRED, reason: "access token expired" };
                return close_with(&mut sink, expired).await;
            }
            Ok(()) = channels.expiry.changed() => {
                let renewed = deadline(*channels.expiry.borrow_and_update());
                expires.as_mut().reset(renewed);
            }
            frame = channels.outbox.recv() => {
                let Some(Outbound::Text(frame)) = frame else {
                    // The hub dropped this connection; it always says why first.
                    let kick = channels.kicked.borrow().unwrap_or(Kick::ShuttingDown);
                    return close_with(&mut sink, Closing::kicked(kick)).await;
                };
                if !send_frame(&mut sink, frame, send_timeout).await {
                    return "send failed or timed out";
                }
            }
            Some(frame) = channels.replies.recv() => {
                if !send_frame(&mut sink, frame, send_timeout).await {
                    return "send failed or timed out";
                }
            }
            _ = pings.tick() => {
                let silent_for = started.elapsed().saturating_sub(Duration::from_millis(heard.load(Ordering::Relaxed)));
                if silent_for > ping_every * 3 {
                    let timeout = Closing { code: close::POLICY, reason: "ping timeout" };
                    return close_with(&mut sink, timeout).await;
                }
                if !matches!(tokio::time::timeout(send_timeout, sink.send(Message::Ping(Default::default()))).await, Ok(Ok(()))) {
                    return "ping failed";
                }
            }
        }
    }
}

/// The reader's side of one connection.
struct Peer {
    player: Uuid,
    connection: u64,
    replies: mpsc::Sender<Arc<str>>,
    closing: mpsc::Sender<Closing>,
    expiry: watch::Sender<i64>,
    heard: Arc<AtomicU64>,
    started: Instant,
}

impl Peer {
    fn reply(&self, state: &AppState, event: ServerEvent) {
        let frame = reply_frame(state.hub.last_id(self.player), event);
        let _ = self.replies.try_send(frame);
    }

    fn error(&self, state: &AppState, code: &str, detail: String, request_type: Option<&str>) {
        let error = WsError {
            code: code.to_owned(),
            detail,
            request_type: request_type.map(str::to_owned),
        };
        self.reply(state, ServerEvent::Error(error));
    }

    /// Asks the writer to close the socket.
    async fn close(&self, code: u16, reason: &'static str) -> ReaderEnd {
        let _ = self.closing.send(Closing { code, reason }).await;
        ReaderEnd::Closing
    }
}

async fn read_loop(stream: &mut SplitStream<WebSocket>, state: &AppState, peer: Peer) -> ReaderEnd {
    let realtime = &state.config.realtime;
    let quota =
        Quota::per_second(NonZeroU32::new(realtime.inbound_per_second).unwrap_or(NonZeroU32::MIN))
            .allow_burst(NonZeroU32::new(realtime.inbound_burst).unwrap_or(NonZeroU32::MIN));
    let limiter = DefaultDirectRateLimiter::direct(quota);
    let mut refused = 0u32;
    while let Some(message) = stream.next().await {
        (peer.heard).store(peer.started.elapsed().as_millis() as u64, Ordering::Relaxed);
        let message = match message {
            Ok(message) => message,
            Err(err) if is_too_big(&err) => {
                metrics::counter!("game_ws_frames_too_big_total").increment(1);
                return peer.close(close::TOO_BIG, "frame too large").await;
            }
            // Protocol violations, resets: the connection is unusable.
            Err(_) => return ReaderEnd::Gone("read error"),
        };
        if let Message::Close(_) = message {
            return ReaderEnd::Gone("closed by client");
        }
        // Every frame counts, pings and binary ones included: each costs the server work.
        if limiter.check().is_err() {
            refused += 1;
            metrics::counter!("game_ws_messages_rate_limited_total").increment(1);
            if refused >= realtime.abuse_close_after {
                return peer.close(close::POLICY, "too many messages").await;
            }
            if let Message::Text(_) | Message::Binary(_) = message {
                peer.error(
                    state,
                    "rate_limited",
                    "too many messages; slow down".into(),
                    None,
                );
            }
            continue;
        }
        let text = match message {
            Message::Text(text) => text,
            Message::Binary(_) => {
                let detail = "binary frames are not supported; send JSON text".into();
                peer.error(state, "invalid_message", detail, None);
                continue;
            }
            // Pongs answer our pings; tungstenite answers theirs.
            _ => continue,
        };
        let message: ClientMessage = match serde_json::from_str(text.as_str()) {
            Ok(message) => message,
            Err(err) => {
                let request_type = serde_json::from_str::<serde_json::Value>(text.as_str())
                    .ok()
                    .and_then(|v| v.get("type").and_then(|t| t.as_str()).map(str::to_owned));
                let detail = format!("not a valid client message: {err}");
                peer.error(state, "invalid_message", detail, request_type.as_deref());
                continue;
            }
        };
        handle(state, &peer, message).await;
    }
    ReaderEnd::Gone("connection lost")
}

async fn handle(state: &AppState, peer: &Peer, message: ClientMessage) {
    let player = peer.player;
    match message {
        ClientMessage::Ping(echo) => peer.reply(state, ServerEvent::Pong(Pong { echo })),
        ClientMessage::Ack(ack) => state.hub.ack(player, ack.id),
        ClientMessage::Auth(auth) => match AuthPlayer::from_token(state, &auth.token).await {
            Ok(renewed) if renewed.id == player => {
                state
                    .hub
                    .reauthenticated(player, peer.connection, renewed.family);
                peer.expiry.send_replace(renewed.expires_at);
                let authenticated = Authenticated {
                    token_expires_at: renewed.expires_at,
                };
                peer.reply(state, ServerEvent::Authenticated(authenticated));
            }
            Ok(_) => peer.error(
                state,
                "forbidden",
                "the token belongs to another player".into(),
                Some("auth"),
            ),
            Err(err) => peer.reply(state, ServerEvent::Error(err.ws_error(Some("auth")))),
        },
        ClientMessage::QueueJoin(request) => {
            // Success is confirmed by the queue_update event the queue sends.
            if let Err(err) = state.parties.join_queue(player, &request, None).await {
                let error = ApiError::from(err).ws_error(Some("queue.join"));
                peer.reply(state, ServerEvent::Error(error));
            }
        }
        ClientMessage::QueueLeave(_) => {
            // Success is confirmed by the queue_update event (state cancelled).
            if let Err(err) = state.matchmaking.leave(player).await {
                let error = ApiError::from(err).ws_error(Some("queue.leave"));
                peer.reply(state, ServerEvent::Error(error));
            }
        }
    }
}

/// Whether a read failed on a frame or message over the configured size.
fn is_too_big(err: &axum::Error) -> bool {
    use std::error::Error as _;
    let mut source = err.source();
    while let Some(inner) = source {
        if let Some(tungstenite) = inner.downcast_ref::<tokio_tungstenite::tungstenite::Error>() {
            return matches!(
                tungstenite,
                tokio_tungstenite::tungstenite::Error::Capacity(_)
            );
        }
        source = inner.source();
    }
    false
}
