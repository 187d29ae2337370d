//! The WebSocket client against a scripted fake server: resume after a drop, duplicates from
//! an overlapping replay dropped, a `resume_gap` surfaced, a replaced connection not retried,
//! a rejected token, a silent peer. The real server is exercised by versus-server's tests and
//! the load generator.

use std::time::Duration;

use futures::{SinkExt as _, StreamExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use uuid::Uuid;
use versus_client::ws::{
    Backoff, ReconnectPolicy, ReconnectingSocket, Socket, WsClientError, WsEvent,
};
use versus_protocol::ws::{
    Ack, ClientMessage, Envelope, Notification, ResumeGap, ServerEvent, Welcome,
};

const TOKEN: &str = "token-123";

/// One accepted connection: the query string it asked for, and the socket.
struct Accepted {
    query: String,
    socket: WebSocketStream<TcpStream>,
}

/// Accepts one upgrade; answers 401 when the bearer token is not [`TOKEN`].
#[allow(clippy::result_large_err)] // the callback's error type is tungstenite's HTTP response
async fn accept(listener: &TcpListener) -> Option<Accepted> {
    let (tcp, _) = listener.accept().await.unwrap();
    let mut query = String::new();
    let callback = |request: &Request, response: Response| {
        query = request.uri().query().unwrap_or_default().to_owned();
        let authorized = request
            .headers()
            .get("authorization")
            .is_some_and(|v| v == format!("Bearer {TOKEN}").as_str());
        if authorized {
            Ok(response)
        } else {
            let mut rejection = ErrorResponse::new(Some("bad token".into()));
            *rejection.status_mut() = StatusCode::UNAUTHORIZED;
            Err(rejection)
        }
    };
    let socket = tokio_tungstenite::accept_hdr_async(tcp, callback)
        .await
        .ok()?;
    Some(Accepted { query, socket })
}

fn frame(id: u64, event: ServerEvent) -> Message {
    let envelope = Envelope {
        id,
        ts: 1_700_000_000_000,
        event,
    };
    Message::text(serde_json::to_string(&envelope).unwrap())
}

fn welcome(last_event_id: u64, ping_interval_s: u64) -> Message {
    frame(
        last_event_id,
        ServerEvent::Welcome(Welcome {
            player_id: Uuid::nil(),
            last_event_id,
            ping_interval_s,
            token_expires_at: i64::MAX,
        }),
    )
}

fn note(id: u64) -> Message {
    frame(
        id,
        ServerEvent::Notification(Notification {
            kind: "info".into(),
            message: format!("#{id}"),
        }),
    )
}

async fn send_all(socket: &mut WebSocketStream<TcpStream>, frames: Vec<Message>) {
    for frame in frames {
        socket.send(frame).await.unwrap();
    }
}

fn fast_policy() -> ReconnectPolicy {
    ReconnectPolicy {
        backoff: Backoff {
            initial: Duration::from_millis(10),
            max: Duration::from_millis(50),
            multiplier: 2.0,
        },
        max_attempts: Some(5),
        idle_timeout: None,
    }
}

/// What the client reported, compactly: `C<resumed_after>`, `E<id>`, `G<after>-<oldest>`, `D`.
fn describe(event: &WsEvent) -> String {
    match event {
        WsEvent::Connected { resumed_after, .. } => format!("C{resumed_after:?}"),
        WsEvent::Event(envelope) => format!("E{}", envelope.id),
        WsEvent::ResumeGap(gap) => format!("G{}-{}", gap.requested_after, gap.oldest_available),
        WsEvent::Disconnected { error, .. } => format!("D:{}", error.kind()),
    }
}

/// A node of a cluster dies: the socket's next connect to it fails, the one after goes to the
/// next address given, and resumes the same stream there.
#[tokio::test]
async fn a_dead_address_hands_over_to_the_next_one_resuming() {
    let first = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let second = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let first_base = format!("http://{}", first.local_addr().unwrap());
    let second_base = format!("http://{}", second.local_addr().unwrap());
    let server = tokio::spawn(async move {
        let mut c = accept(&first).await.unwrap();
        send_all(&mut c.socket, vec![welcome(0, 15), note(1), note(2)]).await;
        // The node dies: its connection ends and nothing listens there any more.
        drop((c, first));
        let mut c = accept(&second).await.unwrap();
        send_all(&mut c.socket, vec![welcome(3, 15), note(3)]).await;
        let query = c.query.clone();
        let _ = c.socket.next().await;
        query
    });
    let mut client = ReconnectingSocket::new(first_base.clone(), TOKEN, fast_policy())
        .with_fallbacks([second_base.clone()]);
    assert_eq!(client.base_url(), first_base);
    let mut seen = Vec::new();
    while seen.last().map(String::as_str) != Some("E3") {
        let event = tokio::time::timeout(Duration::from_secs(10), client.next())
            .await
            .expect("the fake servers keep talking")
            .expect("reconnects elsewhere rather than giving up");
        seen.push(describe(&event));
    }
    // Dropped, then one refused connect to the dead node, then the second node.
    assert_eq!(
        seen,
        [
            "CNone",
            "E1",
            "E2",
            "D:closed",
            "D:transport",
            "CSome(2)",
            "E3"
        ]
    );
    assert_eq!(client.base_url(), second_base);
    client.close().await;
    assert_eq!(server.await.unwrap(), "last_event_id=2");
}

#[tokio::test]
async fn reconnects_resume_and_drop_duplicates() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        let mut queries = Vec::new();
        // 1: a fresh stream at 0; three events, an ack back, then the TCP connection just ends.
        let mut c = accept(&listener).await.unwrap();
        queries.push(c.query.clone());
        send_all(
            &mut c.socket,
            vec![welcome(0, 15), note(1), note(2), note(3)],
        )
        .await;
        let ack = c.socket.next().await.unwrap().unwrap();
        let ack: ClientMessage = serde_json::from_str(ack.to_text().unwrap()).unwrap();
        assert_eq!(ack, ClientMessage::Ack(Ack { id: 3 }));
        drop(c);
        // 2: resume after 3; the replay overlaps (3 again), then a polite close.
        let mut c = accept(&listener).await.unwrap();
        queries.push(c.query.clone());
        send_all(
            &mut c.socket,
            vec![welcome(5, 15), note(3), note(4), note(5)],
        )
        .await;
        let close = CloseFrame {
            code: CloseCode::Away,
            reason: "server shutting down".into(),
        };
        c.socket.close(Some(close)).await.unwrap();
        // 3: resume after 5, but 6 and 7 are gone; then replaced by a newer connection.
        let mut c = accept(&listener).await.unwrap();
        queries.push(c.query.clone());
        let gap = ServerEvent::ResumeGap(ResumeGap {
            requested_after: 5,
            oldest_available: 8,
        });
        send_all(
            &mut c.socket,
            vec![welcome(9, 15), frame(9, gap), note(8), note(9)],
        )
        .await;
        let close = CloseFrame {
            code: CloseCode::Policy,
            reason: "replaced by a newer connection".into(),
        };
        c.socket.close(Some(close)).await.unwrap();
        queries
    });

    let mut client = ReconnectingSocket::new(base, TOKEN, fast_policy());
    let mut seen = Vec::new();
    let error = loop {
        match tokio::time::timeout(Duration::from_secs(10), client.next())
            .await
            .expect("the fake server keeps talking")
        {
            Ok(event) => {
                if matches!(&event, WsEvent::Event(e) if e.id == 3) && seen.len() < 5 {
                    client.ack().await.unwrap();
                }
                seen.push(describe(&event));
            }
            Err(error) => break error,
        }
    };
    assert_eq!(
        seen,
        [
            "CNone", "E1", "E2", "E3", "D:closed", "CSome(3)", "E4", "E5", "D:closed", "CSome(5)",
            "G5-8", "E8", "E9"
        ]
    );
    assert!(
        matches!(&error, WsClientError::Closed { reason, .. } if reason.starts_with("replaced")),
        "{error:?}"
    );
    assert_eq!(client.last_event_id(), Some(9));
    assert_eq!(client.tracker().missed(), 2);
    assert_eq!(client.reconnects(), 2);
    let queries = server.await.unwrap();
    assert_eq!(queries, ["", "last_event_id=3", "last_event_id=5"]);
}

#[tokio::test]
async fn a_raw_socket_shows_everything_and_never_reconnects() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        let mut c = accept(&listener).await.unwrap();
        assert_eq!(c.query, "last_event_id=1");
        send_all(&mut c.socket, vec![welcome(2, 15), note(1), note(2)]).await;
        let ping = c.socket.next().await.unwrap().unwrap();
        assert_eq!(ping.to_text().unwrap(), r#"{"type":"ping","data":null}"#);
        // A ping frame from the server is answered by the library.
        c.socket.send(Message::Ping(vec![7].into())).await.unwrap();
        loop {
            match c.socket.next().await {
                Some(Ok(Message::Pong(payload))) => {
                    assert_eq!(payload.as_ref(), [7]);
                    break;
                }
                Some(Ok(_)) => continue,
                other => panic!("{other:?}"),
            }
        }
    });
    let mut socket = Socket::connect(&base, TOKEN, Some(1)).await.unwrap();
    assert_eq!(socket.welcome().last_event_id, 2);
    // The raw socket hands over the replayed duplicate too; its tracker knows better.
    assert_eq!(socket.next_envelope().await.unwrap().id, 1);
    assert_eq!(socket.next_envelope().await.unwrap().id, 2);
    assert_eq!(socket.last_event_id(), Some(2));
    socket.send(&ClientMessage::Ping(None)).await.unwrap();
    // Reading drives the pong out; the server then hangs up.
    let end = tokio::time::timeout(Duration::from_secs(10), socket.next_envelope())
        .await
        .unwrap();
    assert!(matches!(end, Err(WsClientError::Closed { .. })), "{end:?}");
    server.await.unwrap();
}

#[tokio::test]
async fn a_rejected_token_is_not_retried() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move { accept(&listener).await.is_none() });
    let client = ReconnectingSocket::new(base, "wrong", fast_policy());
    let events: Vec<_> = client.into_stream().collect().await;
    assert_eq!(
        events.len(),
        1,
        "the stream ends after the error: {events:?}"
    );
    assert!(
        matches!(events[0], Err(WsClientError::Rejected { status: 401, .. })),
        "{events:?}"
    );
    assert!(server.await.unwrap(), "the fake server refused the upgrade");
}

#[tokio::test]
async fn a_silent_peer_is_dropped_and_replaced() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        let mut first = accept(&listener).await.unwrap();
        send_all(&mut first.socket, vec![welcome(0, 15)]).await;
        // Stays silent (no pings) while the client gives up on it and comes back.
        let mut second = accept(&listener).await.unwrap();
        send_all(&mut second.socket, vec![welcome(0, 15), note(1)]).await;
        let _ = second.socket.next().await;
        drop(first);
        second.query
    });
    let policy = ReconnectPolicy {
        idle_timeout: Some(Duration::from_millis(200)),
        ..fast_policy()
    };
    let mut client = ReconnectingSocket::new(base, TOKEN, policy);
    let mut seen = Vec::new();
    while seen.len() < 4 {
        let event = tokio::time::timeout(Duration::from_secs(10), client.next())
            .await
            .unwrap()
            .unwrap();
        seen.push(describe(&event));
    }
    assert_eq!(seen, ["CNone", "D:idle", "CSome(0)", "E1"]);
    client.close().await;
    assert_eq!(server.await.unwrap(), "last_event_id=0");
}
