//! The accept loop. `axum::serve` cannot bound connections, and a connection that sends
//! nothing costs a file descriptor for as long as it stays open: one host holding ~20,000 of
//! them left no descriptor to accept anyone else. So each accepted connection is served by
//! hyper's HTTP/1 connection in a task of its own, and:
//!
//! - it is counted against `limits.max_connections` (lowered to what the open-file limit
//!   leaves) and `limits.max_connections_per_ip`; over either it is closed at once. Accepting
//!   and closing, rather than not accepting, keeps the kernel's backlog moving for others.
//! - a watchdog closes it when it has not sent a whole request head within
//!   `limits.header_read_timeout_secs` of opening (or of its next request's first byte), or
//!   has sat between requests for `limits.idle_timeout_secs`. It sleeps while a request is
//!   served (`limits.request_timeout_secs` bounds those), and ends when the connection is
//!   upgraded to a WebSocket, which has its own pings.
//!
//! hyper's `header_read_timeout` is left off: its clock starts whenever hyper waits for a head,
//! which after a response is the keep-alive wait too, so idle connections would get the header
//! deadline instead of their own. HTTP/1 only, as `axum::serve` served it here (no `http2`).

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::connect_info::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;
use tower::ServiceExt as _;

use crate::config::LimitsConfig;

/// Descriptors kept back from connections for everything else the process opens: the store's
/// files or pool, the listener, stdio, the runtime's own.
const RESERVED_FDS: u64 = 256;

/// How often a [`Throttle`] lets a log line through.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// Why the server closed a connection of its own accord.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Closing {
    MaxConnections,
    MaxConnectionsPerIp,
    HeaderReadTimeout,
    IdleTimeout,
}

impl Closing {
    const ALL: [Closing; 4] = [
        Closing::MaxConnections,
        Closing::MaxConnectionsPerIp,
        Closing::HeaderReadTimeout,
        Closing::IdleTimeout,
    ];

    fn label(self) -> &'static str {
        match self {
            Closing::MaxConnections => "max_connections",
            Closing::MaxConnectionsPerIp => "max_connections_per_ip",
            Closing::HeaderReadTimeout => "header_read_timeout",
            Closing::IdleTimeout => "idle_timeout",
        }
    }
}

/// The caps and timeouts every connection is served under, and the connections open now.
pub struct ConnectionLimits {
    max: usize,
    /// 0: no cap.
    max_per_ip: usize,
    header_read_timeout: Duration,
    idle_timeout: Duration,
    open: Mutex<Open>,
    /// One per [`Closing`], indexed by it.
    closing_logs: [Throttle; Closing::ALL.len()],
    accept_error_log: Throttle,
}

#[derive(Default)]
struct Open {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

impl ConnectionLimits {
    /// `fd_limit`: the open-file limit in force, which caps `limits.max_connections`.
    pub fn new(limits: &LimitsConfig, fd_limit: Option<u64>) -> Arc<Self> {
        let fits = fd_limit.map_or(usize::MAX, |fds| {
            let spare = fds.saturating_sub(RESERVED_FDS).max(fds / 2);
            usize::try_from(spare).unwrap_or(usize::MAX)
        });
        let max = limits.max_connections.min(fits);
        if max < limits.max_connections {
            tracing::info!(
                configured = limits.max_connections,
                max_connections = max,
                open_file_limit = fd_limit,
                "limits.max_connections lowered to what the open-file limit leaves"
            );
        }
        Arc::new(Self {
            max,
            max_per_ip: limits.max_connections_per_ip,
            header_read_timeout: Duration::from_secs(limits.header_read_timeout_secs),
            idle_timeout: Duration::from_secs(limits.idle_timeout_secs),
            open: Mutex::default(),
            closing_logs: Default::default(),
            accept_error_log: Throttle::default(),
        })
    }

    /// The cap in force: `limits.max_connections`, or less if the open-file limit is lower.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Connections open now, WebSockets included.
    pub fn open(&self) -> usize {
        self.lock().total
    }

    /// Connections open now from `ip`'s client (for IPv6, its /64).
    pub fn open_from(&self, ip: IpAddr) -> usize {
        self.lock()
            .per_ip
            .get(&client_key(ip))
            .copied()
            .unwrap_or(0)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Open> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Permit, Closing> {
        let key = client_key(ip);
        let mut open = self.lock();
        if open.total >= self.max {
            return Err(Closing::MaxConnections);
        }
        let from_ip = open.per_ip.get(&key).copied().unwrap_or(0);
        if self.max_per_ip != 0 && from_ip >= self.max_per_ip {
            return Err(Closing::MaxConnectionsPerIp);
        }
        *open.per_ip.entry(key).or_default() += 1;
        open.total += 1;
        metrics::gauge!("http_connections_open").increment(1.0);
        Ok(Permit {
            limits: Arc::clone(self),
            key,
        })
    }

    /// Counts a connection the server closed, and logs it unless the same reason was logged
    /// less than [`LOG_EVERY`] ago.
    fn closed(&self, why: Closing) {
        let reason = why.label();
        match why {
            Closing::MaxConnections | Closing::MaxConnectionsPerIp => {
                metrics::counter!("http_connections_refused_total", "reason" => reason)
                    .increment(1);
            }
            Closing::HeaderReadTimeout | Closing::IdleTimeout => {
                metrics::counter!("http_connections_timed_out_total", "reason" => reason)
                    .increment(1);
            }
        }
        // Closing idle keep-alive connections is routine, not news.
        if why == Closing::IdleTimeout {
            return;
        }
        if let Some(connections) = self.closing_logs[why as usize].due() {
            tracing::warn!(
                reason,
                connections,
                "connections closed by the server's connection limits"
            );
        }
    }

    /// An error of one connection (reset before it was accepted) is its own business; any
    /// other, such as running out of descriptors, lasts a while: pause rather than spin.
    async fn accept_failed(&self, err: &io::Error) {
        use io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
        if matches!(
            err.kind(),
            ConnectionAborted | ConnectionRefused | ConnectionReset
        ) {
            return;
        }
        if let Some(errors) = self.accept_error_log.due() {
            tracing::error!(error = %err, errors, "accept failed; pausing accepts briefly");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Lets one log line through per [`LOG_EVERY`], saying how many events it stands for: a flood
/// must not become a log flood.
#[derive(Default)]
struct Throttle(Mutex<(Option<Instant>, u64)>);

impl Throttle {
    /// Counts an event; `Some(events since the last line)` when a line is due.
    fn due(&self) -> Option<u64> {
        let mut state = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let (last, count) = &mut *state;
        *count += 1;
        if last.is_some_and(|at| at.elapsed() < LOG_EVERY) {
            return None;
        }
        *last = Some(Instant::now());
        Some(std::mem::take(count))
    }
}

/// The address a client is counted under. One IPv6 host is usually given a whole /64, so
/// counting its addresses one by one would not cap it.
fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from_bits(v6.to_bits() & !u128::from(u64::MAX))),
        },
    }
}

/// One admitted connection's place under the caps, given back when its socket is dropped:
/// after the HTTP connection ends or, once upgraded, when the WebSocket closes.
struct Permit {
    limits: Arc<ConnectionLimits>,
    key: IpAddr,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut open = self.limits.lock();
        open.total -= 1;
        if let Some(from_ip) = open.per_ip.get_mut(&self.key) {
            *from_ip -= 1;
            if *from_ip == 0 {
                open.per_ip.remove(&self.key);
            }
        }
        metrics::gauge!("http_connections_open").decrement(1.0);
    }
}

/// Serves `router` on `listener` until `shutdown` resolves; then stops accepting, lets each
/// connection finish the request it is serving (idle ones close), and returns when all have.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Arc<ConnectionLimits>,
    shutdown: impl Future<Output = ()>,
) {
    // Each connection's task holds a receiver; `closed` resolves when the last one has ended.
    let (stop, stopping) = watch::channel(false);
    let mut shutdown = pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(err) => {
                limits.accept_failed(&err).await;
                continue;
            }
        };
        match limits.admit(peer.ip()) {
            Ok(permit) => {
                // Events and answers are small writes: without this, one written while the
                // previous is unacknowledged waits for the peer's delayed ACK (~40 ms on Linux),
                // e.g. `rating_update` right behind `game_state_update`.
                if let Err(err) = stream.set_nodelay(true) {
                    tracing::debug!(error = %err, "could not set TCP_NODELAY");
                }
                let connection = Connection {
                    peer,
                    limits: Arc::clone(&limits),
                    activity: Arc::new(Activity::new()),
                };
                tokio::spawn(connection.serve(stream, permit, router.clone(), stopping.clone()));
            }
            // Dropping the stream closes it.
            Err(why) => limits.closed(why),
        }
    }
    drop(listener);
    drop(stopping);
    let _ = stop.send(true);
    stop.closed().await;
}

struct Connection {
    peer: SocketAddr,
    limits: Arc<ConnectionLimits>,
    activity: Arc<Activity>,
}

impl Connection {
    async fn serve(
        self,
        stream: TcpStream,
        permit: Permit,
        router: Router,
        mut stopping: watch::Receiver<bool>,
    ) {
        let io = TokioIo::new(Watched {
            stream,
            activity: Arc::clone(&self.activity),
            _permit: permit,
        });
        let (peer, activity) = (self.peer, Arc::clone(&self.activity));
        let service = service_fn(move |mut request: hyper::Request<Incoming>| {
            let serving = activity.request_started();
            // What `into_make_service_with_connect_info` gave handlers: `ClientIp` reads it.
            request.extensions_mut().insert(ConnectInfo(peer));
            let response = router.clone().oneshot(request);
            async move {
                let response = response.await;
                drop(serving);
                response
            }
        });
        let connection = http1::Builder::new()
            .header_read_timeout(None)
            .serve_connection(io, service)
            .with_upgrades();
        let mut connection = pin!(connection);
        let mut draining = false;
        loop {
            tokio::select! {
                served = connection.as_mut() => {
                    if let Err(err) = served {
                        tracing::debug!(error = %err, peer = %self.peer, "connection ended with an error");
                    }
                    return;
                }
                // hyper closes a keep-alive connection between requests at once, and one
                // serving a request after its response; one that has sent nothing yet, or part
                // of a head, it would wait on: that one is closed here.
                _ = stopping.changed(), if !draining => {
                    if self.activity.awaiting_head() {
                        return;
                    }
                    draining = true;
                    connection.as_mut().graceful_shutdown();
                }
                why = self.silence() => {
                    self.limits.closed(why);
                    return;
                }
            }
        }
    }

    /// Resolves when the connection has been silent for longer than it may be.
    async fn silence(&self) -> Closing {
        let limits = &self.limits;
        // While a request is served there is no deadline; looking again this often still
        // notices its end before any deadline counted from it.
        let recheck = limits.header_read_timeout.min(limits.idle_timeout);
        loop {
            let now = Instant::now();
            match self.activity.deadline(limits) {
                None => tokio::time::sleep(recheck).await,
                Some((at, why)) if at <= now => return why,
                Some((at, _)) => tokio::time::sleep_until(at).await,
            }
        }
    }
}

/// What the watchdog knows about one connection, kept by its socket (bytes moved) and its
/// service (requests started and answered). Times are milliseconds since `opened`.
struct Activity {
    opened: Instant,
    serving: AtomicUsize,
    /// When the request head being awaited started: at accept for the first request, at the
    /// first byte after a response for the next ones; [`NOT_YET`] while a request is served and
    /// after its response until a byte arrives.
    head_since: AtomicU64,
    /// The last byte read or written, or the last response handed to hyper.
    last_active: AtomicU64,
}

const NOT_YET: u64 = u64::MAX;

impl Activity {
    fn new() -> Self {
        Self {
            opened: Instant::now(),
            serving: AtomicUsize::new(0),
            head_since: AtomicU64::new(0),
            last_active: AtomicU64::new(0),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(NOT_YET - 1)
    }

    fn at(&self, millis: u64) -> Instant {
        self.opened + Duration::from_millis(millis)
    }

    fn read_some(&self) {
        let now = self.now();
        self.last_active.store(now, Relaxed);
        if self.serving.load(Relaxed) == 0 {
            let _ = self
                .head_since
                .compare_exchange(NOT_YET, now, Relaxed, Relaxed);
        }
    }

    fn wrote_some(&self) {
        self.last_active.store(self.now(), Relaxed);
    }

    fn request_started(self: &Arc<Self>) -> Serving {
        self.serving.fetch_add(1, Relaxed);
        self.head_since.store(NOT_YET, Relaxed);
        Serving(Arc::clone(self))
    }

    /// Waiting for a request head, whole or partly sent, that has not been answered.
    fn awaiting_head(&self) -> bool {
        self.serving.load(Relaxed) == 0 && self.head_since.load(Relaxed) != NOT_YET
    }

    /// When the connection is to be closed and why; `None` while a request is served.
    fn deadline(&self, limits: &ConnectionLimits) -> Option<(Instant, Closing)> {
        if self.serving.load(Relaxed) > 0 {
            return None;
        }
        Some(match self.head_since.load(Relaxed) {
            NOT_YET => (
                self.at(self.last_active.load(Relaxed)) + limits.idle_timeout,
                Closing::IdleTimeout,
            ),
            since => (
                self.at(since) + limits.header_read_timeout,
                Closing::HeaderReadTimeout,
            ),
        })
    }
}

/// A request being served; dropped when its response is handed to hyper.
struct Serving(Arc<Activity>);

impl Drop for Serving {
    fn drop(&mut self) {
        self.0.wrote_some();
        self.0.serving.fetch_sub(1, Relaxed);
    }
}

/// The connection's socket, telling its [`Activity`] when bytes move and holding its
/// [`Permit`] for as long as the socket lives (past an upgrade, inside the WebSocket).
struct Watched {
    stream: TcpStream,
    activity: Arc<Activity>,
    _permit: Permit,
}

impl Watched {
    fn noting_writes(&self, polled: Poll<io::Result<usize>>) -> Poll<io::Result<usize>> {
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.wrote_some();
        }
        polled
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.activity.read_some();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.stream).poll_write(cx, buf);
        this.noting_writes(polled)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        this.noting_writes(polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max_connections: usize, max_connections_per_ip: usize) -> LimitsConfig {
        LimitsConfig {
            max_connections,
            max_connections_per_ip,
            ..LimitsConfig::default()
        }
    }

    #[test]
    fn the_open_file_limit_caps_max_connections() {
        assert_eq!(
            ConnectionLimits::new(&limits(20_000, 0), Some(1024)).max(),
            768
        );
        assert_eq!(
            ConnectionLimits::new(&limits(20_000, 0), Some(300)).max(),
            150
        );
        assert_eq!(
            ConnectionLimits::new(&limits(500, 0), Some(65_536)).max(),
            500
        );
        assert_eq!(ConnectionLimits::new(&limits(500, 0), None).max(), 500);
    }

    #[test]
    fn permits_count_per_client_and_overall_until_dropped() {
        let caps = ConnectionLimits::new(&limits(3, 2), None);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let first = caps.admit(a).unwrap();
        let _second = caps.admit(a).unwrap();
        assert_eq!(caps.admit(a).err(), Some(Closing::MaxConnectionsPerIp));
        let _third = caps.admit(b).unwrap();
        assert_eq!(caps.admit(b).err(), Some(Closing::MaxConnections));
        assert_eq!((caps.open(), caps.open_from(a)), (3, 2));
        drop(first);
        assert_eq!((caps.open(), caps.open_from(a)), (2, 1));
        let _again = caps.admit(a).unwrap();
        assert_eq!(caps.open(), 3);
    }

    #[test]
    fn an_ipv6_client_is_counted_by_its_64_and_a_mapped_ipv4_as_ipv4() {
        let caps = ConnectionLimits::new(&limits(10, 1), None);
        let _one = caps.admit("2001:db8::1".parse().unwrap()).unwrap();
        assert!(caps.admit("2001:db8::ffff:2".parse().unwrap()).is_err());
        assert!(caps.admit("2001:db8:0:1::1".parse().unwrap()).is_ok());
        let _v4 = caps.admit("192.0.2.7".parse().unwrap()).unwrap();
        assert!(caps.admit("::ffff:192.0.2.7".parse().unwrap()).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn the_deadline_is_the_header_one_until_a_request_then_idle_after_it() {
        let caps = ConnectionLimits::new(
            &LimitsConfig {
                header_read_timeout_secs: 10,
                idle_timeout_secs: 75,
                ..LimitsConfig::default()
            },
            None,
        );
        let activity = Arc::new(Activity::new());
        let opened = activity.opened;
        let secs = Duration::from_secs;
        // Bytes of the first head do not move its deadline, counted from accept.
        tokio::time::advance(secs(3)).await;
        activity.read_some();
        assert_eq!(
            activity.deadline(&caps),
            Some((opened + secs(10), Closing::HeaderReadTimeout))
        );
        let serving = activity.request_started();
        tokio::time::advance(secs(60)).await;
        assert_eq!(activity.deadline(&caps), None, "a request is being served");
        drop(serving);
        assert_eq!(
            activity.deadline(&caps),
            Some((opened + secs(63 + 75), Closing::IdleTimeout))
        );
        // Writing the response body keeps it active.
        tokio::time::advance(secs(5)).await;
        activity.wrote_some();
        assert_eq!(
            activity.deadline(&caps),
            Some((opened + secs(68 + 75), Closing::IdleTimeout))
        );
        // The next request's first byte starts its header deadline.
        tokio::time::advance(secs(30)).await;
        activity.read_some();
        assert_eq!(
            activity.deadline(&caps),
            Some((opened + secs(98 + 10), Closing::HeaderReadTimeout))
        );
    }
}
