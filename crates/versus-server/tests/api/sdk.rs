//! The Rust SDK against the real server: its reconnecting WebSocket survives a server-side drop
//! and still delivers every event of the player's stream exactly once.

use std::collections::BTreeMap;
use std::time::Duration;

use versus_client::ws::{ReconnectPolicy, ReconnectingSocket, WsEvent};
use versus_protocol::queue::{JoinQueueRequest, TicketState};
use versus_protocol::ws::ServerEvent;

use crate::support::{Backend, spawn_app, unique};

async fn next_event(socket: &mut ReconnectingSocket) -> WsEvent {
    tokio::time::timeout(Duration::from_secs(10), socket.next())
        .await
        .expect("an SDK event within 10 s")
        .expect("the SDK keeps the stream going")
}

#[tokio::test]
async fn the_sdk_reconnects_resumes_and_loses_nothing() {
    let Some(app) = spawn_app(Backend::Sqlite).await else {
        return;
    };
    let a = app.player(&unique("sdk_a")).await;
    let b = app.player(&unique("sdk_b")).await;
    let join = JoinQueueRequest {
        queue: "ranked-1v1".into(),
        latencies: BTreeMap::from([("eu".to_owned(), 30)]),
        party_id: None,
    };
    let mut socket = ReconnectingSocket::new(
        app.client.base_url(),
        a.client.access_token().unwrap(),
        ReconnectPolicy::default(),
    );
    assert!(matches!(
        next_event(&mut socket).await,
        WsEvent::Connected {
            resumed_after: None,
            ..
        }
    ));
    let ticket = a.client.join_queue(&join, None).await.unwrap();
    assert_eq!(ticket.state, TicketState::Searching);

    // The server drops every connection; the SDK notices and comes back resuming its stream.
    app.state.hub.close_all();
    b.client.join_queue(&join, None).await.unwrap();
    let mut ids = Vec::new();
    let mut reconnected = false;
    let match_found = loop {
        match next_event(&mut socket).await {
            WsEvent::Event(envelope) => {
                if envelope.event.is_stream_event() {
                    ids.push(envelope.id);
                }
                if let ServerEvent::MatchFound(found) = envelope.event {
                    break found;
                }
            }
            WsEvent::Connected { resumed_after, .. } => {
                reconnected = true;
                assert!(resumed_after.is_some(), "a reconnect resumes the stream");
            }
            WsEvent::Disconnected { .. } | WsEvent::ResumeGap(_) => {}
        }
    };
    assert!(
        reconnected,
        "the SDK reconnected after the server dropped it"
    );
    assert_eq!(match_found.ticket_id, ticket.ticket_id);
    assert!(
        ids.windows(2).all(|w| w[1] == w[0] + 1),
        "every stream event once, in order: {ids:?}"
    );
    let status = a.client.queue_status().await.unwrap();
    assert_eq!(status.match_id, Some(match_found.match_id));
    app.finish().await;
}
