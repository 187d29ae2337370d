//! Connection exhaustion: connections that send nothing, stop part-way through a request head
//! or sit idle after a request must not take the server from anyone else. They are closed after
//! their timeouts, and the caps bound how many one address, and everyone, may hold.
//!
//! Only the edge is under test, so these run on SQLite alone. Attackers connect from other
//! loopback addresses (Linux answers on all of 127.0.0.0/8), the player from 127.0.0.1.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinSet;
use tokio::time::Instant;
use versus_client::ws::Socket;
use versus_protocol::ws::{ClientMessage, ServerEvent};

use crate::support::{Backend, TestApp, spawn_app_with, unique};

const PASSWORD: &str = "correct horse battery";
/// How long anything that should happen may take on a loaded machine before the test fails.
const PATIENCE: Duration = Duration::from_secs(30);
/// The start of a login request, cut off in the middle of its headers.
const HALF_HEAD: &[u8] = b"POST /api/v1/auth/login HTTP/1.1\r\nHost: localhost\r\nContent-Ty";

#[derive(Debug, Clone, Copy)]
enum Silent {
    /// Connects and sends nothing.
    Mute,
    /// Sends part of a request head, then nothing.
    HalfHead,
    /// Sends one request, reads the answer, then nothing.
    IdleAfterRequest,
}

async fn connect_from(source: Ipv4Addr, server: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from((source, 0))).unwrap();
    socket.connect(server).await.expect("connects")
}

/// Reads until the server closes the connection (end of stream or reset).
async fn until_closed(stream: &mut TcpStream) {
    let mut buf = [0u8; 1024];
    while let Ok(1..) = stream.read(&mut buf).await {}
}

/// Whether the server closes `stream` within [`PATIENCE`].
async fn closed_by_server(stream: &mut TcpStream) -> bool {
    tokio::time::timeout(PATIENCE, until_closed(stream))
        .await
        .is_ok()
}

/// Reads one response and returns its status, or `None` if the server closes the connection
/// first.
async fn answer(stream: &mut TcpStream) -> Option<u16> {
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    let read = async {
        loop {
            let n = stream.read(&mut buf).await.unwrap_or(0);
            if n == 0 {
                return None;
            }
            received.extend_from_slice(&buf[..n]);
            let Some(end) = received.windows(4).position(|w| w == b"\r\n\r\n") else {
                continue;
            };
            let head = String::from_utf8_lossy(&received[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|line| line.strip_prefix("content-length:"))
                .map_or(0, |value| value.trim().parse().unwrap());
            if received.len() >= end + 4 + length {
                return Some(head[9..12].parse().unwrap());
            }
        }
    };
    tokio::time::timeout(PATIENCE, read)
        .await
        .expect("a response in time")
}

async fn read_status(stream: &mut TcpStream) -> u16 {
    answer(stream)
        .await
        .expect("the server answers before closing the connection")
}

async fn send_health_request(stream: &mut TcpStream) {
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
}

async fn health_status(stream: &mut TcpStream) -> u16 {
    send_health_request(stream).await;
    read_status(stream).await
}

impl Silent {
    /// Connects and does what this kind does; returns the stream and when its clock started.
    async fn open(self, source: Ipv4Addr, server: SocketAddr) -> (Instant, TcpStream) {
        loop {
            let since = Instant::now();
            let mut stream = connect_from(source, server).await;
            match self {
                Silent::Mute => {}
                // Fails if the server has closed it already, which the caller's read sees.
                Silent::HalfHead => drop(stream.write_all(HALF_HEAD).await),
                Silent::IdleAfterRequest => {
                    send_health_request(&mut stream).await;
                    match answer(&mut stream).await {
                        Some(status) => assert_eq!(status, 200),
                        // The request came after the header timeout (a stalled machine): the
                        // server was right to close; try again.
                        None => continue,
                    }
                }
            }
            return (since, stream);
        }
    }
}

/// Connections from one address, each held by a task until the server closes it.
struct Attacker {
    source: Ipv4Addr,
    tasks: JoinSet<Duration>,
    opened: usize,
    closed: Arc<AtomicUsize>,
}

impl Attacker {
    fn new(source: Ipv4Addr) -> Self {
        Self {
            source,
            tasks: JoinSet::new(),
            opened: 0,
            closed: Arc::default(),
        }
    }

    /// Opens `count` connections of `kind`, 64 at a time, each batch once the server has taken
    /// the last off its accept queue: a queue left to overflow drops handshakes, which the
    /// kernel retries only seconds later. Each task returns how long after its clock started
    /// the server closed its connection.
    async fn open(&mut self, app: &TestApp, kind: Silent, count: usize) {
        for batch in (0..count).step_by(64) {
            for _ in batch..count.min(batch + 64) {
                let (source, server, closed) = (self.source, app.addr, self.closed.clone());
                self.tasks.spawn(async move {
                    let (since, mut stream) = kind.open(source, server).await;
                    until_closed(&mut stream).await;
                    closed.fetch_add(1, Ordering::Relaxed);
                    since.elapsed()
                });
                self.opened += 1;
            }
            eventually("the server accepts the connections", || {
                self.held_by(app) + self.closed() == self.opened
            })
            .await;
        }
    }

    fn held_by(&self, app: &TestApp) -> usize {
        app.connections.open_from(IpAddr::V4(self.source))
    }

    fn closed(&self) -> usize {
        self.closed.load(Ordering::Relaxed)
    }

    /// How long each connection was held, once the server has closed them all.
    async fn until_all_closed(mut self) -> Vec<Duration> {
        let mut held = Vec::with_capacity(self.opened);
        while let Some(task) = tokio::time::timeout(PATIENCE, self.tasks.join_next())
            .await
            .expect("the server closes them all")
        {
            held.push(task.unwrap());
        }
        held
    }
}

/// A login request's head (with `extra_headers`, each ending in CRLF) and body.
fn login_request(username: &str, extra_headers: &str) -> (String, String) {
    let body = format!(r#"{{"username":"{username}","password":"{PASSWORD}"}}"#);
    let head = format!(
        "POST /api/v1/auth/login HTTP/1.1\r\nHost: localhost\r\n{extra_headers}\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    (head, body)
}

async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !check() {
        assert!(Instant::now() < deadline, "not within {PATIENCE:?}: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_flood_from_one_address_leaves_others_served() {
    const FLOOD: usize = 2_500;
    const PER_IP: usize = 2_000;
    let Some(app) = spawn_app_with(Backend::Sqlite, |config| {
        config.limits.max_connections_per_ip = PER_IP;
        // No flood connection may time out during this test: it is about holding them.
        config.limits.header_read_timeout_secs = 600;
    })
    .await
    else {
        return;
    };
    let mut attacker = Attacker::new(Ipv4Addr::new(127, 0, 0, 2));
    attacker.open(&app, Silent::Mute, FLOOD / 2).await;
    attacker.open(&app, Silent::HalfHead, FLOOD / 2).await;
    assert_eq!(
        (attacker.held_by(&app), attacker.closed()),
        (PER_IP, FLOOD - PER_IP),
        "the server holds the flood up to the per-address cap and closes the rest"
    );

    let started = Instant::now();
    let username = unique("bystander");
    let served = async {
        app.client.register(&username, PASSWORD).await.unwrap();
        let registered = started.elapsed();
        app.client.login(&username, PASSWORD).await.unwrap();
        registered
    };
    let registered = tokio::time::timeout(PATIENCE, served)
        .await
        .expect("register and log in while the flood is held");
    let logged_in = started.elapsed();
    println!(
        "with {PER_IP} flood connections held: registered in {registered:?}, \
         registered and logged in in {logged_in:?}"
    );
    assert_eq!(
        (attacker.held_by(&app), attacker.closed()),
        (PER_IP, FLOOD - PER_IP),
        "the flood was held throughout"
    );
    drop(attacker);
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_are_closed_after_their_timeouts_busy_ones_are_not() {
    const HEADER: Duration = Duration::from_secs(2);
    const IDLE: Duration = Duration::from_secs(4);
    /// Longer than both timeouts together.
    const BUSY: Duration = Duration::from_secs(7);
    let Some(app) = spawn_app_with(Backend::Sqlite, |config| {
        config.limits.header_read_timeout_secs = HEADER.as_secs();
        config.limits.idle_timeout_secs = IDLE.as_secs();
    })
    .await
    else {
        return;
    };
    let username = unique("patient");
    let player = app.player(&username).await;
    let mut silent = Vec::new();
    for (kind, last, count, timeout) in [
        (Silent::Mute, 3, 600, HEADER),
        (Silent::HalfHead, 4, 600, HEADER),
        (Silent::IdleAfterRequest, 5, 100, IDLE),
    ] {
        let mut attacker = Attacker::new(Ipv4Addr::new(127, 0, 0, last));
        attacker.open(&app, kind, count).await;
        silent.push((kind, timeout, attacker));
    }

    // A login whose body trickles in for longer than both timeouts is served all the same.
    let slow_login = async {
        let (head, body) = login_request(&username, "");
        let mut stream = connect_from(Ipv4Addr::LOCALHOST, app.addr).await;
        stream.write_all(head.as_bytes()).await.unwrap();
        let chunks: Vec<&[u8]> = body.as_bytes().chunks(body.len().div_ceil(14)).collect();
        let pause = BUSY / u32::try_from(chunks.len()).unwrap();
        for chunk in chunks {
            tokio::time::sleep(pause).await;
            stream.write_all(chunk).await.unwrap();
        }
        read_status(&mut stream).await
    };
    // A WebSocket quiet for longer than both timeouts is left open.
    let quiet_socket = async {
        let mut socket = Socket::connect(
            app.client.base_url(),
            player.client.access_token().unwrap(),
            None,
        )
        .await
        .expect("websocket connects");
        tokio::time::sleep(BUSY).await;
        socket
            .send(&ClientMessage::Ping(Some(json!("still there?"))))
            .await
            .expect("the socket is still open");
        loop {
            let envelope = tokio::time::timeout(PATIENCE, socket.next_envelope())
                .await
                .expect("an answer in time")
                .expect("the socket is still open");
            if let ServerEvent::Pong(pong) = envelope.event {
                return pong.echo;
            }
        }
    };
    let (login_status, echo) = tokio::join!(slow_login, quiet_socket);
    assert_eq!(login_status, 200, "the slow login was served");
    assert_eq!(echo, Some(json!("still there?")));

    for (kind, timeout, attacker) in silent {
        let source = attacker.source;
        let count = attacker.opened;
        let held = attacker.until_all_closed().await;
        let (first, last) = (held.iter().min().unwrap(), held.iter().max().unwrap());
        println!("{count} {kind:?} connections closed after {first:?} to {last:?}");
        assert_eq!(held.len(), count);
        // Never before their timeout (the server's clock counts in whole milliseconds).
        assert!(
            *first + Duration::from_millis(5) >= timeout,
            "{kind:?} closed after {first:?}, before {timeout:?}"
        );
        eventually("the server has let go of them", || {
            app.connections.open_from(IpAddr::V4(source)) == 0
        })
        .await;
    }
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_caps_are_refused() {
    let Some(app) = spawn_app_with(Backend::Sqlite, |config| {
        config.limits.max_connections = 30;
        config.limits.max_connections_per_ip = 10;
    })
    .await
    else {
        return;
    };
    let [a, b, c, d] = [6, 7, 8, 9].map(|last| Ipv4Addr::new(127, 0, 0, last));
    let mut held = Vec::new();
    for _ in 0..10 {
        let mut stream = connect_from(a, app.addr).await;
        assert_eq!(health_status(&mut stream).await, 200);
        held.push(stream);
    }
    let mut eleventh = connect_from(a, app.addr).await;
    assert!(
        closed_by_server(&mut eleventh).await,
        "the per-address cap refuses an 11th connection"
    );
    for source in [b, c] {
        for _ in 0..10 {
            let mut stream = connect_from(source, app.addr).await;
            assert_eq!(
                health_status(&mut stream).await,
                200,
                "another address is served"
            );
            held.push(stream);
        }
    }
    assert_eq!(app.connections.open(), 30);
    let mut late = connect_from(d, app.addr).await;
    assert!(
        closed_by_server(&mut late).await,
        "the overall cap refuses a 31st connection, from a fresh address too"
    );
    assert_eq!(app.connections.open(), 30);

    drop(held.pop());
    eventually("a closed connection frees its place", || {
        app.connections.open() == 29
    })
    .await;
    let mut late = connect_from(d, app.addr).await;
    assert_eq!(
        health_status(&mut late).await,
        200,
        "a freed place is taken"
    );

    drop((held, late));
    eventually("every connection is let go", || app.connections.open() == 0).await;
    let metrics = app.metrics().await;
    for reason in ["max_connections_per_ip", "max_connections"] {
        let series = format!("http_connections_refused_total{{reason=\"{reason}\"}}");
        assert!(metrics.contains(&series), "{series} in\n{metrics}");
    }
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_silent_connections_and_finishes_requests_in_flight() {
    let Some(app) = spawn_app_with(Backend::Sqlite, |config| {
        // Only the shutdown may close the silent connection here.
        config.limits.header_read_timeout_secs = 600;
    })
    .await
    else {
        return;
    };
    let username = unique("leaving");
    app.player(&username).await;
    let quiet = Ipv4Addr::new(127, 0, 0, 10);
    let mut mute = connect_from(quiet, app.addr).await;
    eventually("the server holds the silent connection", || {
        app.connections.open_from(IpAddr::V4(quiet)) == 1
    })
    .await;
    // `100 Continue` comes when the handler starts reading the body: the login is in flight.
    let (head, body) = login_request(&username, "Expect: 100-continue\r\n");
    let mut login = connect_from(Ipv4Addr::LOCALHOST, app.addr).await;
    login.write_all(head.as_bytes()).await.unwrap();
    assert_eq!(read_status(&mut login).await, 100);

    let client = async {
        assert!(
            closed_by_server(&mut mute).await,
            "a connection that sent nothing is closed by the shutdown"
        );
        login.write_all(body.as_bytes()).await.unwrap();
        let status = read_status(&mut login).await;
        assert!(
            closed_by_server(&mut login).await,
            "closed after its response"
        );
        status
    };
    let ((), status) = tokio::join!(app.finish(), client);
    assert_eq!(status, 200, "the login in flight was answered");
}
