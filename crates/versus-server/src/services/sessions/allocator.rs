//! Finding a game server for a session. The [`Allocator`] trait is the seam; two implementations
//! sit behind it, chosen by `sessions.allocator.kind`:
//!
//! - [`StaticAllocator`] (the embedded default): a fixed list of game servers, each hosting up to
//!   `capacity` sessions. It counts the sessions it placed, so it must hear every session's end
//!   ([`Allocator::release`]) and, after a restart, every session still live
//!   ([`Allocator::restore`]).
//! - [`HttpAllocator`]: a fleet behind an HTTP allocation service (an Agones allocator front-end
//!   or a service of the operator's own). The fleet owns its capacity: each session is one POST,
//!   and a game server is freed by the fleet when its session ends there.
//!
//! An allocator only answers where a session is played. It never decides a session's state and
//! never talks to players: the sessions service does both with what it is told here.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::config::{AllocatorConfig, StaticEndpoint};

/// A formed match in need of a game server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllocationRequest {
    pub session_id: Uuid,
    pub queue: String,
    /// Where the match was formed, when its queue has regions.
    pub region: Option<String>,
    /// Player ids, team by team.
    pub teams: Vec<Vec<Uuid>>,
}

/// Where a session is played.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocation {
    /// What players connect to, `host:port`.
    pub endpoint: String,
}

#[derive(Debug, thiserror::Error)]
pub enum AllocationError {
    #[error("no game server has room")]
    NoCapacity,
    #[error("{0}")]
    Failed(String),
}

#[async_trait::async_trait]
pub trait Allocator: Send + Sync + 'static {
    /// A game server for the session. Asked again for a session it already placed, it answers
    /// the same server.
    async fn allocate(&self, request: &AllocationRequest) -> Result<Allocation, AllocationError>;
    /// Gives the session's capacity back (idempotent; unknown sessions are ignored).
    async fn release(&self, session: Uuid);
    /// After a restart: a still-live session holds its endpoint's capacity again.
    fn restore(&self, session: Uuid, endpoint: &str);
    /// Whether `allocate` answers at once from memory, involving no one else. Such an
    /// allocator is asked before the session is stored, and its answer stored with it.
    fn answers_in_memory(&self) -> bool {
        false
    }
}

/// The allocator `sessions.allocator` describes.
pub fn from_config(config: &AllocatorConfig) -> anyhow::Result<Arc<dyn Allocator>> {
    Ok(match config {
        AllocatorConfig::Static { endpoints } => {
            anyhow::ensure!(
                !endpoints.is_empty(),
                "sessions.allocator.endpoints: at least one game server is needed"
            );
            Arc::new(StaticAllocator::new(endpoints))
        }
        AllocatorConfig::Http {
            url,
            timeout_ms,
            retries,
        } => Arc::new(HttpAllocator::new(
            url,
            Duration::from_millis(*timeout_ms),
            *retries,
        )?),
    })
}

/// A fixed list of game servers with a capacity each. Each session holds one slot of the server
/// it was placed on until it is released; a new session goes to the server with the most free
/// slots (the first of them on a tie), which spreads load evenly over servers of any size.
pub struct StaticAllocator {
    endpoints: Vec<StaticEndpoint>,
    slots: Mutex<Slots>,
}

#[derive(Default)]
struct Slots {
    /// The endpoint (index) each session holds a slot of.
    held: HashMap<Uuid, usize>,
    /// Slots held, per endpoint.
    used: Vec<u32>,
}

impl StaticAllocator {
    pub fn new(endpoints: &[StaticEndpoint]) -> Self {
        let allocator = Self {
            endpoints: endpoints.to_vec(),
            slots: Mutex::new(Slots {
                held: HashMap::new(),
                used: vec![0; endpoints.len()],
            }),
        };
        for (index, endpoint) in allocator.endpoints.iter().enumerate() {
            allocator.publish(index, endpoint.capacity);
        }
        allocator
    }

    /// Nothing that runs under the lock panics between its writes to `held` and `used`, so a
    /// poisoned lock still holds consistent counts.
    fn slots(&self) -> std::sync::MutexGuard<'_, Slots> {
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn free(&self, slots: &Slots, index: usize) -> u32 {
        self.endpoints[index]
            .capacity
            .saturating_sub(slots.used[index])
    }

    fn hold(&self, slots: &mut Slots, session: Uuid, index: usize) {
        slots.used[index] += 1;
        slots.held.insert(session, index);
        let free = self.free(slots, index);
        self.publish(index, free);
    }

    fn unhold(&self, slots: &mut Slots, session: Uuid) {
        if let Some(index) = slots.held.remove(&session) {
            slots.used[index] = slots.used[index].saturating_sub(1);
            let free = self.free(slots, index);
            self.publish(index, free);
        }
    }

    fn publish(&self, index: usize, free: u32) {
        metrics::gauge!(
            "game_server_slots_free",
            "endpoint" => self.endpoints[index].address.clone()
        )
        .set(f64::from(free));
    }

    /// Free slots per endpoint, in configuration order.
    #[cfg(test)]
    fn free_slots(&self) -> Vec<u32> {
        let slots = self.slots();
        (0..self.endpoints.len())
            .map(|index| self.free(&slots, index))
            .collect()
    }
}

#[async_trait::async_trait]
impl Allocator for StaticAllocator {
    async fn allocate(&self, request: &AllocationRequest) -> Result<Allocation, AllocationError> {
        let mut slots = self.slots();
        let index = match slots.held.get(&request.session_id) {
            Some(&index) => index,
            None => {
                let mut best: Option<(usize, u32)> = None;
                for index in 0..self.endpoints.len() {
                    let free = self.free(&slots, index);
                    if free > best.map_or(0, |(_, most)| most) {
                        best = Some((index, free));
                    }
                }
                let (index, _) = best.ok_or(AllocationError::NoCapacity)?;
                self.hold(&mut slots, request.session_id, index);
                index
            }
        };
        Ok(Allocation {
            endpoint: self.endpoints[index].address.clone(),
        })
    }

    async fn release(&self, session: Uuid) {
        let mut slots = self.slots();
        self.unhold(&mut slots, session);
    }

    fn answers_in_memory(&self) -> bool {
        true
    }

    fn restore(&self, session: Uuid, endpoint: &str) {
        let Some(index) = self.endpoints.iter().position(|e| e.address == endpoint) else {
            tracing::warn!(
                session.id = %session,
                endpoint,
                "a live session's game server is no longer configured; its slot is not held"
            );
            return;
        };
        let mut slots = self.slots();
        if slots.held.get(&session) == Some(&index) {
            return;
        }
        self.unhold(&mut slots, session);
        // The session is running there whatever the capacity now says, so it is held even
        // beyond it (a capacity lowered across the restart); new sessions wait for room.
        if self.free(&slots, index) == 0 {
            tracing::warn!(
                session.id = %session,
                endpoint,
                "a live session is restored onto a game server with no free slot"
            );
        }
        self.hold(&mut slots, session, index);
    }
}

/// Longest body read from an allocation service, and the most of it quoted in an error.
const MAX_REPLY_BYTES: usize = 64 * 1024;
const MAX_QUOTED_BYTES: usize = 200;

/// A fleet behind an HTTP allocation service. Each allocation is a POST of
/// `{"session_id", "queue", "region", "teams": [[ids]], "players": [ids]}`; a 2xx answer is
/// `{"endpoint": "host:port"}` or an Agones allocation response
/// (`{"address": "10.0.0.1", "ports": [{"name": "default", "port": 7777}]}`).
///
/// A timeout, a connection error or a 5xx is tried again, up to `retries` times with a short
/// backoff. A retried request may reach a service that already allocated for the first one,
/// so `session_id` is sent for the service to answer the same server again. 409 and 429 say the
/// fleet is full (no retry); 503 is retried, then also taken as full.
///
/// `release` and `restore` do nothing: the fleet owns its capacity. A game server goes back to
/// the fleet when its session ends there (Agones: the server calls `Shutdown`), which this
/// process could neither do for it nor know better than the fleet.
pub struct HttpAllocator {
    client: reqwest::Client,
    url: String,
    retries: u32,
}

#[derive(Serialize)]
struct AllocateBody<'a> {
    session_id: Uuid,
    queue: &'a str,
    region: Option<&'a str>,
    teams: &'a [Vec<Uuid>],
    /// Every player of `teams`, for services that place by player and ignore teams.
    players: Vec<Uuid>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum AllocateReply {
    Endpoint {
        endpoint: String,
    },
    Agones {
        address: String,
        ports: Vec<AgonesPort>,
    },
}

#[derive(Deserialize)]
struct AgonesPort {
    port: u16,
}

/// How one attempt ended: with an answer, or with an error worth another attempt.
enum Attempt {
    Done(Result<Allocation, AllocationError>),
    Retry(AllocationError),
}

impl HttpAllocator {
    /// `timeout` bounds each attempt, connecting included.
    pub fn new(url: &str, timeout: Duration, retries: u32) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            // A redirected POST would be replayed as a GET by the client; a misconfigured URL
            // should fail loudly instead.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|err| anyhow::anyhow!("building the allocator's HTTP client: {err}"))?;
        Ok(Self {
            client,
            url: url.to_owned(),
            retries,
        })
    }

    /// 100 ms, 200 ms, 400 ms… at most 1 s: the fleet's hiccups are short, and a formed match
    /// is waiting.
    fn backoff(attempt: u32) -> Duration {
        Duration::from_millis(100u64.saturating_mul(1 << attempt.min(4)).min(1000))
    }

    async fn attempt(&self, body: &AllocateBody<'_>) -> Attempt {
        let response = match self.client.post(&self.url).json(body).send().await {
            Ok(response) => response,
            Err(err) => {
                let error = AllocationError::Failed(format!("allocator at {}: {err}", self.url));
                return if err.is_timeout() || err.is_connect() {
                    Attempt::Retry(error)
                } else {
                    Attempt::Done(Err(error))
                };
            }
        };
        let status = response.status();
        let body = match read_bounded(response).await {
            Ok(body) => body,
            Err(err) => {
                let error = AllocationError::Failed(format!(
                    "allocator at {} answered {status} but its body failed: {err}",
                    self.url
                ));
                return if err.is_timeout() {
                    Attempt::Retry(error)
                } else {
                    Attempt::Done(Err(error))
                };
            }
        };
        let refused = || {
            AllocationError::Failed(format!(
                "allocator at {} answered {status}: {}",
                self.url,
                quote(&body)
            ))
        };
        match status.as_u16() {
            200..=299 => Attempt::Done(self.parse(&body)),
            409 | 429 => Attempt::Done(Err(AllocationError::NoCapacity)),
            503 => Attempt::Retry(AllocationError::NoCapacity),
            500..=599 => Attempt::Retry(refused()),
            _ => Attempt::Done(Err(refused())),
        }
    }

    fn parse(&self, body: &[u8]) -> Result<Allocation, AllocationError> {
        let unusable = |why: &str| {
            AllocationError::Failed(format!(
                "allocator at {} answered {why}: {}",
                self.url,
                quote(body)
            ))
        };
        let endpoint = match serde_json::from_slice::<AllocateReply>(body) {
            Ok(AllocateReply::Endpoint { endpoint }) => endpoint,
            Ok(AllocateReply::Agones { address, ports }) => match ports.first() {
                Some(port) if !address.is_empty() => format!("{address}:{}", port.port),
                _ => return Err(unusable("an allocation without address or port")),
            },
            Err(_) => {
                return Err(unusable(
                    "neither {\"endpoint\"} nor an Agones allocation (address, ports)",
                ));
            }
        };
        if endpoint.trim().is_empty() {
            return Err(unusable("an empty endpoint"));
        }
        Ok(Allocation { endpoint })
    }
}

/// The body, up to [`MAX_REPLY_BYTES`]; the rest is not read (no allocation reply is that long).
async fn read_bounded(mut response: reqwest::Response) -> Result<Vec<u8>, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = MAX_REPLY_BYTES - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() == MAX_REPLY_BYTES {
            break;
        }
    }
    Ok(body)
}

/// The start of a reply, for an error message.
fn quote(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(MAX_QUOTED_BYTES)]);
    let ellipsis = if body.len() > MAX_QUOTED_BYTES {
        "…"
    } else {
        ""
    };
    format!("{:?}{ellipsis}", text.trim())
}

#[async_trait::async_trait]
impl Allocator for HttpAllocator {
    async fn allocate(&self, request: &AllocationRequest) -> Result<Allocation, AllocationError> {
        let body = AllocateBody {
            session_id: request.session_id,
            queue: &request.queue,
            region: request.region.as_deref(),
            teams: &request.teams,
            players: request.teams.iter().flatten().copied().collect(),
        };
        let mut attempt = 0;
        loop {
            match self.attempt(&body).await {
                Attempt::Done(result) => return result,
                Attempt::Retry(error) if attempt >= self.retries => return Err(error),
                Attempt::Retry(error) => {
                    tracing::debug!(
                        session.id = %request.session_id,
                        attempt,
                        error = %error,
                        "allocation attempt failed; retrying"
                    );
                    tokio::time::sleep(Self::backoff(attempt)).await;
                    attempt += 1;
                }
            }
        }
    }

    async fn release(&self, _session: Uuid) {}

    fn restore(&self, _session: Uuid, _endpoint: &str) {}
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::net::{TcpListener, TcpStream};

    use super::*;

    fn request(session_id: Uuid) -> AllocationRequest {
        AllocationRequest {
            session_id,
            queue: "ranked-1v1".to_owned(),
            region: Some("eu".to_owned()),
            teams: vec![vec![Uuid::from_u128(1)], vec![Uuid::from_u128(2)]],
        }
    }

    fn endpoints(list: &[(&str, u32)]) -> Vec<StaticEndpoint> {
        list.iter()
            .map(|&(address, capacity)| StaticEndpoint {
                address: address.to_owned(),
                capacity,
            })
            .collect()
    }

    async fn endpoint_of(allocator: &dyn Allocator, session: Uuid) -> String {
        allocator
            .allocate(&request(session))
            .await
            .unwrap()
            .endpoint
    }

    #[tokio::test]
    async fn static_sessions_hold_a_slot_of_the_emptiest_server_until_released() {
        let allocator = StaticAllocator::new(&endpoints(&[("a:1", 1), ("b:1", 2)]));
        let [s1, s2, s3, s4] = [1, 2, 3, 4].map(Uuid::from_u128);
        assert_eq!(endpoint_of(&allocator, s1).await, "b:1");
        // A tie goes to the first server.
        assert_eq!(endpoint_of(&allocator, s2).await, "a:1");
        assert_eq!(endpoint_of(&allocator, s3).await, "b:1");
        assert_eq!(allocator.free_slots(), [0, 0]);
        assert!(matches!(
            allocator.allocate(&request(s4)).await,
            Err(AllocationError::NoCapacity)
        ));
        // Asked again, a placed session keeps its server and holds no second slot.
        assert_eq!(endpoint_of(&allocator, s1).await, "b:1");

        allocator.release(s2).await;
        assert_eq!(allocator.free_slots(), [1, 0]);
        // A second release, or one of a session never placed, frees nothing more.
        allocator.release(s2).await;
        allocator.release(Uuid::from_u128(99)).await;
        assert_eq!(allocator.free_slots(), [1, 0]);
        assert_eq!(endpoint_of(&allocator, s4).await, "a:1");
        assert!(matches!(
            allocator.allocate(&request(s2)).await,
            Err(AllocationError::NoCapacity)
        ));
    }

    #[tokio::test]
    async fn static_restore_holds_live_sessions_again() {
        let allocator = StaticAllocator::new(&endpoints(&[("a:1", 1), ("b:1", 2)]));
        let [s1, s2, s3] = [1, 2, 3].map(Uuid::from_u128);
        allocator.restore(s1, "b:1");
        allocator.restore(s1, "b:1");
        allocator.restore(s2, "gone:1");
        assert_eq!(allocator.free_slots(), [1, 1]);
        // A restored session is answered its server, not a new one.
        assert_eq!(endpoint_of(&allocator, s1).await, "b:1");
        // Restored beyond capacity: the session is there; new sessions find no room.
        allocator.restore(s2, "a:1");
        allocator.restore(s3, "a:1");
        assert_eq!(allocator.free_slots(), [0, 1]);
        allocator.release(s2).await;
        assert_eq!(allocator.free_slots(), [0, 1]);
        allocator.release(s3).await;
        assert_eq!(allocator.free_slots(), [1, 1]);
        allocator.release(s1).await;
        assert_eq!(allocator.free_slots(), [1, 2]);
    }

    /// How the fake allocation service answers one request.
    struct Reply {
        delay: Duration,
        status: u16,
        body: &'static str,
    }

    fn reply(status: u16, body: &'static str) -> Reply {
        Reply {
            delay: Duration::ZERO,
            status,
            body,
        }
    }

    /// An allocation service on a loopback port answering its `n`th request with `script(n)`.
    /// Plain HTTP/1.1 over a socket, one request per connection: services never name the HTTP
    /// server stack, and the client is all this test is about.
    struct Fleet {
        url: String,
        requests: Arc<Mutex<Vec<serde_json::Value>>>,
    }

    impl Fleet {
        async fn start(script: impl Fn(usize) -> Reply + Send + Sync + 'static) -> Self {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let url = format!("http://{}/allocate", listener.local_addr().unwrap());
            let requests = Arc::new(Mutex::new(Vec::new()));
            let seen = requests.clone();
            let script = Arc::new(script);
            let count = Arc::new(AtomicUsize::new(0));
            tokio::spawn(async move {
                while let Ok((socket, _)) = listener.accept().await {
                    let (seen, script, count) = (seen.clone(), script.clone(), count.clone());
                    tokio::spawn(async move {
                        Self::serve(socket, &seen, script.as_ref(), &count).await;
                    });
                }
            });
            Self { url, requests }
        }

        async fn serve(
            mut socket: TcpStream,
            seen: &Mutex<Vec<serde_json::Value>>,
            script: &(dyn Fn(usize) -> Reply + Send + Sync),
            count: &AtomicUsize,
        ) {
            let mut buffer = Vec::new();
            let mut chunk = [0u8; 4096];
            let (head_end, length) = loop {
                let n = socket.read(&mut chunk).await.unwrap();
                assert!(n > 0, "the client closed before a whole request");
                buffer.extend_from_slice(&chunk[..n]);
                if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&buffer[..end]).to_ascii_lowercase();
                    let length = head
                        .lines()
                        .find_map(|line| line.strip_prefix("content-length:"))
                        .map_or(0, |value| value.trim().parse::<usize>().unwrap());
                    break (end + 4, length);
                }
            };
            while buffer.len() < head_end + length {
                let n = socket.read(&mut chunk).await.unwrap();
                assert!(n > 0, "the client closed before the whole body");
                buffer.extend_from_slice(&chunk[..n]);
            }
            seen.lock()
                .unwrap()
                .push(serde_json::from_slice(&buffer[head_end..head_end + length]).unwrap());
            let reply = script(count.fetch_add(1, Ordering::SeqCst));
            tokio::time::sleep(reply.delay).await;
            let response = format!(
                "HTTP/1.1 {} Scripted\r\ncontent-type: application/json\r\n\
                 content-length: {}\r\nconnection: close\r\n\r\n{}",
                reply.status,
                reply.body.len(),
                reply.body
            );
            // The client may have given up (a timeout): nothing to do then.
            let _ = socket.write_all(response.as_bytes()).await;
        }

        fn attempts(&self) -> usize {
            self.requests.lock().unwrap().len()
        }

        fn allocator(&self, timeout_ms: u64, retries: u32) -> HttpAllocator {
            HttpAllocator::new(&self.url, Duration::from_millis(timeout_ms), retries).unwrap()
        }
    }

    async fn allocate_with(
        script: impl Fn(usize) -> Reply + Send + Sync + 'static,
        retries: u32,
    ) -> (Result<Allocation, AllocationError>, usize) {
        let fleet = Fleet::start(script).await;
        let result = fleet
            .allocator(2000, retries)
            .allocate(&request(Uuid::from_u128(7)))
            .await;
        (result, fleet.attempts())
    }

    #[tokio::test]
    async fn http_posts_the_match_and_reads_an_endpoint() {
        let fleet = Fleet::start(|_| reply(200, r#"{"endpoint": "10.0.0.5:7777"}"#)).await;
        let session = Uuid::from_u128(7);
        let allocation = fleet
            .allocator(2000, 0)
            .allocate(&request(session))
            .await
            .unwrap();
        assert_eq!(allocation.endpoint, "10.0.0.5:7777");
        let sent = fleet.requests.lock().unwrap()[0].clone();
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        assert_eq!(
            sent,
            serde_json::json!({
                "session_id": session,
                "queue": "ranked-1v1",
                "region": "eu",
                "teams": [[a], [b]],
                "players": [a, b],
            })
        );
    }

    #[tokio::test]
    async fn http_reads_an_agones_allocation() {
        let (result, _) = allocate_with(
            |_| {
                reply(
                    200,
                    r#"{"gameServerName": "gs-1", "address": "10.0.0.1",
                        "ports": [{"name": "default", "port": 7777}, {"name": "q", "port": 7778}],
                        "nodeName": "node-1"}"#,
                )
            },
            0,
        )
        .await;
        assert_eq!(result.unwrap().endpoint, "10.0.0.1:7777");
        let (result, _) =
            allocate_with(|_| reply(200, r#"{"address": "10.0.0.1", "ports": []}"#), 0).await;
        assert!(matches!(result, Err(AllocationError::Failed(_))));
    }

    #[tokio::test]
    async fn http_retries_a_busy_fleet_then_takes_it_as_full() {
        let (result, attempts) = allocate_with(
            |n| match n {
                0 | 1 => reply(503, ""),
                _ => reply(200, r#"{"endpoint": "10.0.0.5:7777"}"#),
            },
            2,
        )
        .await;
        assert_eq!(result.unwrap().endpoint, "10.0.0.5:7777");
        assert_eq!(attempts, 3);

        let (result, attempts) = allocate_with(|_| reply(503, ""), 2).await;
        assert!(matches!(result, Err(AllocationError::NoCapacity)));
        assert_eq!(attempts, 3);

        let (result, attempts) = allocate_with(|_| reply(500, "oops"), 1).await;
        let Err(AllocationError::Failed(message)) = result else {
            panic!("expected Failed");
        };
        assert!(
            message.contains("500") && message.contains("oops"),
            "{message}"
        );
        assert_eq!(attempts, 2);
    }

    #[tokio::test]
    async fn http_full_fleet_answers_are_not_retried() {
        for status in [409, 429] {
            let (result, attempts) = allocate_with(move |_| reply(status, ""), 2).await;
            assert!(
                matches!(result, Err(AllocationError::NoCapacity)),
                "{status}"
            );
            assert_eq!(attempts, 1);
        }
    }

    #[tokio::test]
    async fn http_gives_up_on_a_slow_fleet_after_its_retries() {
        let fleet = Fleet::start(|_| Reply {
            delay: Duration::from_secs(2),
            ..reply(200, r#"{"endpoint": "10.0.0.5:7777"}"#)
        })
        .await;
        let result = fleet
            .allocator(150, 1)
            .allocate(&request(Uuid::from_u128(7)))
            .await;
        let Err(AllocationError::Failed(message)) = result else {
            panic!("expected Failed, got {result:?}");
        };
        assert!(message.contains(&fleet.url), "{message}");
        assert_eq!(fleet.attempts(), 2);
    }

    #[tokio::test]
    async fn http_retries_an_unreachable_fleet() {
        let port = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let allocator = HttpAllocator::new(
            &format!("http://127.0.0.1:{port}/allocate"),
            Duration::from_millis(500),
            1,
        )
        .unwrap();
        let result = allocator.allocate(&request(Uuid::from_u128(7))).await;
        assert!(
            matches!(result, Err(AllocationError::Failed(_))),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn http_refusals_and_garbage_fail_at_once() {
        let (result, attempts) =
            allocate_with(|_| reply(400, r#"{"error": "bad queue"}"#), 2).await;
        let Err(AllocationError::Failed(message)) = result else {
            panic!("expected Failed, got {result:?}");
        };
        assert!(
            message.contains("400") && message.contains("bad queue"),
            "{message}"
        );
        assert_eq!(attempts, 1);

        for body in ["not json", r#"{"endpoint": ""}"#, r#"{"server": "x"}"#, ""] {
            let (result, attempts) = allocate_with(move |_| reply(200, body), 2).await;
            assert!(
                matches!(result, Err(AllocationError::Failed(_))),
                "{body}: {result:?}"
            );
            assert_eq!(attempts, 1);
        }
    }

    #[tokio::test]
    async fn a_long_refusal_is_quoted_in_part() {
        let long: &'static str = "x".repeat(5000).leak();
        let (result, _) = allocate_with(move |_| reply(400, long), 0).await;
        let Err(AllocationError::Failed(message)) = result else {
            panic!("expected Failed");
        };
        assert!(message.len() < 400, "{message}");
        assert!(message.ends_with('…'), "{message}");
    }

    #[test]
    fn from_config_builds_either_kind() {
        from_config(&AllocatorConfig::default()).unwrap();
        from_config(&AllocatorConfig::Http {
            url: "http://127.0.0.1:9/allocate".to_owned(),
            timeout_ms: 100,
            retries: 0,
        })
        .unwrap();
        assert!(from_config(&AllocatorConfig::Static { endpoints: vec![] }).is_err());
    }
}
