//! One player's WebSocket connection. A reader handles client messages (rate-limited); a writer
//! drains the connection's bounded outbox, sends server pings and closes the socket when the
//! hub kicks it (replaced, slow reader, shutdown) or the peer stops answering. Both run in one
//! task; whichever ends first ends the connection.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, close_code};
use futures::{SinkExt as _, StreamExt as _};
use governor::{DefaultDirectRateLimiter, Quota};
use tokio::sync::mpsc;
use uuid::Uuid;
use versus_protocol::ws::{ClientMessage, Pong, ServerEvent, Welcome, WsError};

use crate::http::error::ApiError;
use crate::http::state::AppState;
use crate::services::hub::{Kick, Outbound, reply_frame};

pub async fn serve(socket: WebSocket, state: AppState, player: Uuid, last_event_id: Option<u64>) {
    let hub = state.hub.clone();
    let attached = hub.attach(player, last_event_id);
    metrics::gauge!("game_websocket_connections").increment(1.0);
    tracing::info!(player_id = %player, resume_after = ?last_event_id, "websocket connected");

    let (sink, mut stream) = socket.split();
    let last_id = attached.last_event_id;
    // Replies from the reader go through the same outbox as hub events, so frames never
    // interleave mid-write; they are dropped (not queued unboundedly) if the outbox is full.
    let heard = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut first = vec![reply_frame(
        last_id,
        ServerEvent::Welcome(Welcome {
            player_id: player,
            last_event_id: last_id,
            ping_interval_s: state.config.realtime.ping_interval_secs,
        }),
    )];
    if let Some(gap) = attached.gap.clone() {
        first.push(reply_frame(last_id, ServerEvent::ResumeGap(gap)));
    }
    first.extend(attached.replay.iter().cloned());

    let (reply_tx, reply_rx) = mpsc::channel::<Arc<str>>(32);
    let writer = write_loop(
        sink,
        first,
        attached.rx,
        reply_rx,
        attached.kicked,
        &state,
        heard.clone(),
        started,
    );
    let reader = read_loop(&mut stream, &state, player, reply_tx, heard, started);
    let (ended, server_closed) = tokio::select! {
        why = writer => (why, true),
        why = reader => (why, false),
    };
    if server_closed {
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
    }
    hub.detach(player, attached.connection_id);
    metrics::gauge!("game_websocket_connections").decrement(1.0);
    tracing::info!(player_id = %player, reason = ended, "websocket closed");
    schedule_grace_cancel(state, player);
}

/// After a disconnect, a searching ticket waits `disconnect_grace_secs` for the player to come
/// back; then it is cancelled.
fn schedule_grace_cancel(state: AppState, player: Uuid) {
    if !state.matchmaking.is_searching(player) {
        return;
    }
    let grace = Duration::from_secs(state.config.matchmaking.disconnect_grace_secs);
    tokio::spawn(async move {
        tokio::time::sleep(grace).await;
        if !state.hub.is_connected(player) && state.matchmaking.leave(player).await.is_ok() {
            tracing::info!(player_id = %player, "ticket cancelled after disconnect grace period");
        }
    });
}

async fn close_for(
    sink: &mut futures::stream::SplitSink<WebSocket, Message>,
    kick: Kick,
) -> &'static str {
    let code = match kick {
        Kick::Replaced | Kick::SlowReader => close_code::POLICY,
        Kick::ShuttingDown => close_code::AWAY,
    };
    close_with(sink, code, kick.reason()).await
}

/// Sends a close frame with a reason (best effort, bounded) and returns the reason.
async fn close_with(
    sink: &mut futures::stream::SplitSink<WebSocket, Message>,
    code: u16,
    reason: &'static str,
) -> &'static str {
    let close = Message::Close(Some(CloseFrame {
        code,
        reason: Utf8Bytes::from_static(reason),
    }));
    let _ = tokio::time::timeout(Duration::from_secs(1), sink.send(close)).await;
    reason
}

async fn send_frame(
    sink: &mut futures::stream::SplitSink<WebSocket, Message>,
    frame: Arc<str>,
    timeout: Duration,
) -> Result<Result<(), axum::Error>, tokio::time::error::Elapsed> {
    tokio::time::timeout(
        timeout,
        sink.send(Message::Text(Utf8Bytes::from(frame.as_ref()))),
    )
    .await
}

#[allow(clippy::too_many_arguments)]
async fn write_loop(
    mut sink: futures::stream::SplitSink<WebSocket, Message>,
    first: Vec<Arc<str>>,
    mut outbox: mpsc::Receiver<Outbound>,
    mut replies: mpsc::Receiver<Arc<str>>,
    mut kicked: tokio::sync::watch::Receiver<Option<Kick>>,
    state: &AppState,
    heard: Arc<AtomicU64>,
    started: Instant,
) -> &'static str {
    let realtime = &state.config.realtime;
    let send_timeout = Duration::from_secs(realtime.send_timeout_secs);
    let ping_every = Duration::from_secs(realtime.ping_interval_secs);
    for frame in first {
        if !matches!(send_frame(&mut sink, frame, send_timeout).await, Ok(Ok(()))) {
            return "send failed";
        }
    }
    let mut pings = tokio::time::interval_at(tokio::time::Instant::now() + ping_every, ping_every);
    loop {
        tokio::select! {
            biased;
            changed = kicked.changed() => {
                let kick = *kicked.borrow();
                match (changed, kick) {
                    (_, Some(kick)) => return close_for(&mut sink, kick).await,
                    // The hub forgot this connection without a word: treat it as shutdown
                    // rather than poll a closed channel forever.
                    (Err(_), None) => return close_for(&mut sink, Kick::ShuttingDown).await,
                    (Ok(()), None) => {}
                }
            }
            frame = outbox.recv() => {
                let Some(Outbound::Text(frame)) = frame else {
                    // The hub dropped this connection; it always says why first.
                    let kick = kicked.borrow().unwrap_or(Kick::ShuttingDown);
                    return close_for(&mut sink, kick).await;
                };
                if !matches!(send_frame(&mut sink, frame, send_timeout).await, Ok(Ok(()))) {
                    return "send failed or timed out";
                }
            }
            Some(frame) = replies.recv() => {
                if !matches!(send_frame(&mut sink, frame, send_timeout).await, Ok(Ok(()))) {
                    return "send failed or timed out";
                }
            }
            _ = pings.tick() => {
                let silent_for = started.elapsed().saturating_sub(Duration::from_millis(heard.load(Ordering::Relaxed)));
                if silent_for > ping_every * 3 {
                    return close_with(&mut sink, close_code::POLICY, "ping timeout").await;
                }
                if !matches!(tokio::time::timeout(send_timeout, sink.send(Message::Ping(Default::default()))).await, Ok(Ok(()))) {
                    return "ping failed";
                }
            }
        }
    }
}

async fn read_loop(
    stream: &mut futures::stream::SplitStream<WebSocket>,
    state: &AppState,
    player: Uuid,
    replies: mpsc::Sender<Arc<str>>,
    heard: Arc<AtomicU64>,
    started: Instant,
) -> &'static str {
    let realtime = &state.config.realtime;
    let quota =
        Quota::per_second(NonZeroU32::new(realtime.inbound_per_second).unwrap_or(NonZeroU32::MIN))
            .allow_burst(NonZeroU32::new(realtime.inbound_burst).unwrap_or(NonZeroU32::MIN));
    let limiter = DefaultDirectRateLimiter::direct(quota);
    let mut refused = 0u32;
    let send_reply = |event: ServerEvent| {
        let frame = reply_frame(state.hub.last_id(player), event);
        let _ = replies.try_send(frame);
    };
    let error = |code: &str, detail: String, request_type: Option<String>| {
        ServerEvent::Error(WsError {
            code: code.to_owned(),
            detail,
            request_type,
        })
    };
    while let Some(message) = stream.next().await {
        heard.store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
        let message = match message {
            Ok(message) => message,
            // Oversized frames, protocol violations, resets: the library has already failed the
            // connection; nothing more can be sent on it.
            Err(_) => return "read error",
        };
        let text = match message {
            Message::Text(text) => text,
            Message::Binary(_) => {
                send_reply(error(
                    "invalid_message",
                    "binary frames are not supported; send JSON text".into(),
                    None,
                ));
                continue;
            }
            Message::Ping(_) | Message::Pong(_) => continue,
            Message::Close(_) => return "closed by client",
        };
        if limiter.check().is_err() {
            refused += 1;
            metrics::counter!("game_ws_messages_rate_limited_total").increment(1);
            if refused >= realtime.abuse_close_after {
                let _ = replies.try_send(reply_frame(
                    state.hub.last_id(player),
                    error("rate_limited", "too many messages; closing".into(), None),
                ));
                tokio::time::sleep(Duration::from_millis(50)).await;
                return "inbound rate limit abuse";
            }
            send_reply(error(
                "rate_limited",
                "too many messages; slow down".into(),
                None,
            ));
            continue;
        }
        let message: ClientMessage = match serde_json::from_str(text.as_str()) {
            Ok(message) => message,
            Err(err) => {
                let request_type = serde_json::from_str::<serde_json::Value>(text.as_str())
                    .ok()
                    .and_then(|v| v.get("type").and_then(|t| t.as_str()).map(str::to_owned));
                send_reply(error(
                    "invalid_message",
                    format!("not a valid client message: {err}"),
                    request_type,
                ));
                continue;
            }
        };
        match message {
            ClientMessage::Ping(echo) => send_reply(ServerEvent::Pong(Pong { echo })),
            ClientMessage::Ack(ack) => state.hub.ack(player, ack.id),
            ClientMessage::QueueJoin(request) => {
                // Success is confirmed by the queue_update event the queue sends.
                if let Err(err) = state.matchmaking.join(player, &request, None).await {
                    send_reply(ServerEvent::Error(
                        ApiError::from(err).ws_error(Some("queue.join")),
                    ));
                }
            }
            ClientMessage::QueueLeave(_) => {
                // Success is confirmed by the queue_update event (state cancelled).
                if let Err(err) = state.matchmaking.leave(player).await {
                    send_reply(ServerEvent::Error(
                        ApiError::from(err).ws_error(Some("queue.leave")),
                    ));
                }
            }
        }
    }
    "connection lost"
}
