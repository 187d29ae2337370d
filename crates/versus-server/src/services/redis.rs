//! Redis: the hot state every node of a cluster shares — rate-limit buckets, and presence
//! (which node holds a player's socket, kept alive with a TTL so a dead node's players are
//! offline within seconds).
//!
//! Addresses: `redis://` or `rediss://` (one server; a `ConnectionManager` reconnects by
//! itself), `redis+cluster://host:port,host:port` (Redis Cluster, whose client follows slot
//! moves and failovers), or `redis+sentinel://host:port,host:port/master-name` (the master the
//! Sentinels name, asked again every [`SENTINEL_EVERY`]: after a failover the connection moves
//! to the new master). Every key starts with the configured prefix, so several
//! clusters (or tests) can share one Redis.
//!
//! Every call is bounded by [`TIMEOUT`]: with Redis away a request fails fast with a 503
//! rather than hanging, and works again as soon as Redis is back.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::sentinel::{SentinelClient, SentinelServerType};
use uuid::Uuid;

/// The longest any one Redis call may take before it counts as Redis being down.
pub const TIMEOUT: Duration = Duration::from_millis(500);

#[derive(Clone)]
enum Connection {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

/// Redis is unreachable or answered with an error.
#[derive(Debug, thiserror::Error)]
#[error("redis: {0}")]
pub struct RedisDown(String);

impl RedisDown {
    pub fn new(why: &str) -> Self {
        Self(why.to_owned())
    }
}

impl From<redis::RedisError> for RedisDown {
    fn from(err: redis::RedisError) -> Self {
        Self(err.to_string())
    }
}

pub struct Redis {
    /// Swapped by the Sentinel watcher when the master moves; cloned for each call.
    connection: Arc<std::sync::RwLock<Connection>>,
    prefix: String,
}

/// How often the Sentinels are asked which server is the master.
pub const SENTINEL_EVERY: Duration = Duration::from_secs(2);

fn manager_config() -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(TIMEOUT))
        .set_number_of_retries(1)
}

async fn manager(client: redis::Client) -> anyhow::Result<ConnectionManager> {
    tokio::time::timeout(
        Duration::from_secs(10),
        ConnectionManager::new_with_config(client, manager_config()),
    )
    .await
    .context("Redis did not answer within 10 s")?
    .context("connecting to Redis")
}

/// The Sentinels of `redis+sentinel://h:p,h:p/master`, and the master's name.
fn sentinels(rest: &str) -> anyhow::Result<SentinelClient> {
    let (hosts, master) = rest
        .split_once('/')
        .filter(|(_, m)| !m.is_empty())
        .context("redis+sentinel:// needs the master's name after the addresses: /name")?;
    let hosts: Vec<String> = (hosts.split(','))
        .map(|h| format!("redis://{}", h.trim()))
        .collect();
    SentinelClient::build(hosts, master.to_owned(), None, SentinelServerType::Master)
        .context("reading the Sentinel addresses")
}

/// Asks the Sentinels for the master every [`SENTINEL_EVERY`]; when it moved, connects to the
/// new one and swaps it in. Ends with the `Redis` it serves.
fn watch_sentinels(
    mut sentinel: SentinelClient,
    mut current: redis::ConnectionAddr,
    connection: std::sync::Weak<std::sync::RwLock<Connection>>,
) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(SENTINEL_EVERY);
        every.tick().await;
        loop {
            every.tick().await;
            let Some(connection) = connection.upgrade() else {
                return;
            };
            let asked = tokio::time::timeout(TIMEOUT, sentinel.async_get_client()).await;
            let Ok(Ok(client)) = asked else { continue };
            let addr = client.get_connection_info().addr().clone();
            if addr == current {
                continue;
            }
            match manager(client).await {
                Ok(moved) => {
                    tracing::warn!(from = %current, to = %addr, "the Redis master moved (Sentinel)");
                    *connection.write().expect("redis connection lock") = Connection::Single(moved);
                    current = addr;
                }
                Err(err) => {
                    tracing::warn!(error = %err, "the new Redis master does not answer yet")
                }
            }
        }
    });
}

/// The token bucket (GCRA) of one key, in one round trip: the bucket is its "theoretical
/// arrival time" in ms, which the script moves one emission interval on for each request it
/// lets through. Returns 0 (allowed) or the ms until a token is free. Redis's clock is the
/// only clock, so nodes with skewed clocks share one bucket fairly.
const TAKE: &str = r"
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now_ms)
if tat < now_ms then tat = now_ms end
local next_tat = tat + interval
local allowed_at = next_tat - burst * interval
if allowed_at > now_ms then return allowed_at - now_ms end
redis.call('SET', KEYS[1], next_tat, 'PX', math.max(1, next_tat - now_ms))
return 0
";

/// Clears a player's presence only if it is still this node's connection's (a newer one
/// elsewhere must not be erased by an old one closing).
const CLEAR_IF_MINE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

/// Takes or keeps a lease: granted when free or already the caller's (then extended).
const HOLD: &str = r"
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
";

/// Gives a lease up, if it is still the caller's.
const RELEASE: &str = CLEAR_IF_MINE;

/// Writes journal entries (field, value pairs) if the lease is still the caller's: 1, or -1
/// when fenced off (another node holds the lease, or none does).
const JOURNAL_PUT: &str = r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
for i = 2, #ARGV, 2 do redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1]) end
return 1
";

/// Removes journal entries if the lease is still the caller's: 1, or -1 when fenced off.
const JOURNAL_REMOVE: &str = r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
for i = 2, #ARGV do redis.call('HDEL', KEYS[2], ARGV[i]) end
return 1
";

/// Moves journal entries out (KEYS[2]) and matches in (KEYS[3]) at once if the lease (KEYS[1]) is
/// still the caller's: ARGV = holder, how many ids to remove, the ids, then field/value pairs.
/// 1, or -1 when fenced off.
const JOURNAL_FORM: &str = r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
local removed = tonumber(ARGV[2])
for i = 3, 2 + removed do redis.call('HDEL', KEYS[2], ARGV[i]) end
for i = 3 + removed, #ARGV, 2 do redis.call('HSET', KEYS[3], ARGV[i], ARGV[i + 1]) end
return 1
";

/// Why a journal write did not happen.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// The caller no longer holds the lease: it must stop acting on what it holds.
    #[error("fenced off: the lease is no longer this node's")]
    Fenced,
    #[error(transparent)]
    Down(#[from] RedisDown),
}

impl Redis {
    pub async fn connect(url: &str, prefix: &str) -> anyhow::Result<Arc<Self>> {
        let connection = if let Some(nodes) = url.strip_prefix("redis+cluster://") {
            let nodes: Vec<String> = (nodes.split(','))
                .map(|node| format!("redis://{}", node.trim()))
                .collect();
            let client = ClusterClient::builder(nodes)
                .connection_timeout(Duration::from_secs(2))
                .response_timeout(TIMEOUT)
                .build()
                .context("reading the Redis Cluster addresses")?;
            let connection =
                tokio::time::timeout(Duration::from_secs(10), client.get_async_connection())
                    .await
                    .context("Redis Cluster did not answer within 10 s")?
                    .context("connecting to Redis Cluster")?;
            Connection::Cluster(connection)
        } else if let Some(rest) = url.strip_prefix("redis+sentinel://") {
            let mut sentinel = sentinels(rest)?;
            let client = tokio::time::timeout(Duration::from_secs(10), sentinel.async_get_client())
                .await
                .context("the Sentinels did not answer within 10 s")?
                .context("asking the Sentinels for the master")?;
            let addr = client.get_connection_info().addr().clone();
            let connection = Arc::new(std::sync::RwLock::new(Connection::Single(
                manager(client).await?,
            )));
            watch_sentinels(sentinel, addr, Arc::downgrade(&connection));
            return Ok(Arc::new(Self {
                connection,
                prefix: prefix.to_owned(),
            }));
        } else {
            let client = redis::Client::open(url).context("reading redis_url")?;
            Connection::Single(manager(client).await?)
        };
        Ok(Arc::new(Self {
            connection: Arc::new(std::sync::RwLock::new(connection)),
            prefix: prefix.to_owned(),
        }))
    }

    fn connection(&self) -> Connection {
        self.connection
            .read()
            .expect("redis connection lock")
            .clone()
    }

    fn key(&self, parts: &[&str]) -> String {
        let mut key = self.prefix.clone();
        for part in parts {
            key.push(':');
            key.push_str(part);
        }
        key
    }

    /// A lease's key: `{name}` is a Redis Cluster hash tag, so that the lease and what it fences
    /// ([`Redis::journal_key`]) live on one node and one script can read both.
    fn lease_key(&self, name: &str) -> String {
        format!("{}:{{{name}}}:lease", self.prefix)
    }

    /// Where lease `name`'s holder journals `what`.
    fn journal_key(&self, name: &str, what: &str) -> String {
        format!("{}:{{{name}}}:journal:{what}", self.prefix)
    }

    /// Matches that left the journal and are not yet known stored (same slot as the journal).
    fn forming_key(&self, name: &str, what: &str) -> String {
        format!("{}:{{{name}}}:forming:{what}", self.prefix)
    }

    /// Runs `command` on the connection, bounded by [`TIMEOUT`].
    async fn run<T: redis::FromRedisValue>(&self, command: &redis::Cmd) -> Result<T, RedisDown> {
        let call = async {
            match self.connection() {
                Connection::Single(mut c) => command.query_async(&mut c).await,
                Connection::Cluster(mut c) => command.query_async(&mut c).await,
            }
        };
        match tokio::time::timeout(TIMEOUT, call).await {
            Ok(answer) => Ok(answer?),
            Err(_) => Err(RedisDown(format!("no answer within {TIMEOUT:?}"))),
        }
    }

    /// A round trip (`PING`), for `/health/detailed`.
    pub async fn ping(&self) -> Result<Duration, RedisDown> {
        let started = Instant::now();
        let _: String = self.run(&redis::cmd("PING")).await?;
        Ok(started.elapsed())
    }

    /// Takes one token from bucket `key` of limit `name` (`per_minute` tokens a minute, at most
    /// `burst` at once): `Ok(None)` when granted, `Ok(Some(wait))` when the next is `wait` away.
    pub async fn take(
        &self,
        name: &str,
        key: &str,
        per_minute: u32,
        burst: u32,
    ) -> Result<Option<Duration>, RedisDown> {
        static SCRIPT: std::sync::LazyLock<redis::Script> =
            std::sync::LazyLock::new(|| redis::Script::new(TAKE));
        let interval = 60_000 / i64::from(per_minute.max(1));
        let key = self.key(&["rate", name, key]);
        let (interval, burst) = (interval.max(1).to_string(), burst.max(1).to_string());
        let wait_ms: i64 = self.script_str(&SCRIPT, &key, &[&interval, &burst]).await?;
        Ok((wait_ms > 0).then(|| Duration::from_millis(wait_ms as u64)))
    }

    /// Marks `player` as connected to `connection` (a node-unique id) for `ttl`; renewed while
    /// the socket lives.
    pub async fn set_present(
        &self,
        player: Uuid,
        connection: &str,
        ttl: Duration,
    ) -> Result<(), RedisDown> {
        let key = self.key(&["presence", &player.to_string()]);
        let ttl_ms = ttl.as_millis().max(1) as u64;
        self.run::<()>(
            redis::cmd("SET")
                .arg(&key)
                .arg(connection)
                .arg("PX")
                .arg(ttl_ms),
        )
        .await
    }

    /// Clears the presence `connection` set, unless a newer connection replaced it.
    pub async fn clear_present(&self, player: Uuid, connection: &str) -> Result<(), RedisDown> {
        static SCRIPT: std::sync::LazyLock<redis::Script> =
            std::sync::LazyLock::new(|| redis::Script::new(CLEAR_IF_MINE));
        let key = self.key(&["presence", &player.to_string()]);
        self.script_str::<i64>(&SCRIPT, &key, &[connection])
            .await
            .map(drop)
    }

    /// Takes lease `name` for `holder` for `ttl`, or extends it if `holder` has it: whether
    /// `holder` holds it now.
    pub async fn hold_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, RedisDown> {
        static SCRIPT: std::sync::LazyLock<redis::Script> =
            std::sync::LazyLock::new(|| redis::Script::new(HOLD));
        let key = self.lease_key(name);
        let held: i64 = self
            .script_str(
                &SCRIPT,
                &key,
                &[holder, &ttl.as_millis().max(1).to_string()],
            )
            .await?;
        Ok(held == 1)
    }

    /// Gives lease `name` up if `holder` still has it (a clean stop hands over at once).
    pub async fn release_lease(&self, name: &str, holder: &str) -> Result<(), RedisDown> {
        static SCRIPT: std::sync::LazyLock<redis::Script> =
            std::sync::LazyLock::new(|| redis::Script::new(RELEASE));
        let key = self.lease_key(name);
        self.script_str::<i64>(&SCRIPT, &key, &[holder])
            .await
            .map(drop)
    }

    /// Runs a script over one key with string arguments, bounded by [`TIMEOUT`].
    async fn script_str<T: redis::FromRedisValue>(
        &self,
        script: &redis::Script,
        key: &str,
        args: &[&str],
    ) -> Result<T, RedisDown> {
        self.script_keys(script, &[key.to_owned()], args).await
    }

    /// Journals `entries` (id, value) under lease `name` for `what`, if `holder` still holds the
    /// lease (in batches of 500, each fenced).
    pub async fn journal_put(
        &self,
        name: &str,
        what: &str,
        holder: &str,
        entries: &[(String, String)],
    ) -> Result<(), JournalError> {
        static SCRIPT: std::sync::LazyLock<redis::Script> =
            std::sync::LazyLock::new(|| redis::Script::new(JOURNAL_PUT));
        let keys = [self.lease_key(name), self.journal_key(name, what)];
        for batch in entries.chunks(500) {
            let mut args = vec![holder];
            for (field, value) in batch {
                args.push(field);
                args.push(value);
            }
            let done: i64 = self.script_keys(&SCRIPT, &keys, &args).await?;
            if done != 1 {
                return Err(JournalError::Fenced);
            }
        }
        Ok(())
    }

    /// Removes `ids` from lease `name`'s journal for `what`, if `holder` still holds the lease.
    pub async fn journal_remove(
        &self,
        name: &str,
        what: &str,
        holder: &str,
        ids: &[String],
    ) -> Result<(), JournalError> {
        static SCRIPT: std::sync::LazyLock<redis::Script> =
            std::sync::LazyLock::new(|| redis::Script::new(JOURNAL_REMOVE));
        let keys = [self.lease_key(name), self.journal_key(name, what)];
        for batch in ids.chunks(1000) {
            let mut args = vec![holder];
            args.extend(batch.iter().map(String::as_str));
            let done: i64 = self.script_keys(&SCRIPT, &keys, &args).await?;
            if done != 1 {
                return Err(JournalError::Fenced);
            }
        }
        Ok(())
    }

    /// Takes `ids` out of lease `name`'s journal for `what` and puts `forming` (id, value) in its
    /// forming set, in one step, if `holder` still holds the lease.
    pub async fn journal_form(
        &self,
        name: &str,
        what: &str,
        holder: &str,
        ids: &[String],
        forming: &[(String, String)],
    ) -> Result<(), JournalError> {
        static SCRIPT: std::sync::LazyLock<redis::Script> =
            std::sync::LazyLock::new(|| redis::Script::new(JOURNAL_FORM));
        let keys = [
            self.lease_key(name),
            self.journal_key(name, what),
            self.forming_key(name, what),
        ];
        let removed = ids.len().to_string();
        let mut args = vec![holder, removed.as_str()];
        args.extend(ids.iter().map(String::as_str));
        for (field, value) in forming {
            args.push(field);
            args.push(value);
        }
        let done: i64 = self.script_keys(&SCRIPT, &keys, &args).await?;
        match done {
            1 => Ok(()),
            _ => Err(JournalError::Fenced),
        }
    }

    /// Removes `ids` from the forming set: their matches are stored (by whichever node).
    pub async fn forming_remove(
        &self,
        name: &str,
        what: &str,
        ids: &[String],
    ) -> Result<(), RedisDown> {
        if ids.is_empty() {
            return Ok(());
        }
        let key = self.forming_key(name, what);
        self.run(redis::cmd("HDEL").arg(&key).arg(ids)).await
    }

    /// Everything in lease `name`'s forming set for `what`.
    pub async fn forming_all(
        &self,
        name: &str,
        what: &str,
    ) -> Result<Vec<(String, String)>, RedisDown> {
        let key = self.forming_key(name, what);
        self.run(redis::cmd("HGETALL").arg(&key)).await
    }

    /// Everything in lease `name`'s journal for `what`.
    pub async fn journal_all(
        &self,
        name: &str,
        what: &str,
    ) -> Result<Vec<(String, String)>, RedisDown> {
        let key = self.journal_key(name, what);
        // Unbounded by TIMEOUT's spirit only in size: a journal of 100k tickets is ~20 MB.
        self.run(redis::cmd("HGETALL").arg(&key)).await
    }

    /// Runs a script over `keys` with string arguments, bounded by [`TIMEOUT`].
    async fn script_keys<T: redis::FromRedisValue>(
        &self,
        script: &redis::Script,
        keys: &[String],
        args: &[&str],
    ) -> Result<T, RedisDown> {
        let call = async {
            let mut invocation = script.prepare_invoke();
            for key in keys {
                invocation.key(key);
            }
            for arg in args {
                invocation.arg(*arg);
            }
            match self.connection() {
                Connection::Single(mut c) => invocation.invoke_async::<T>(&mut c).await,
                Connection::Cluster(mut c) => invocation.invoke_async::<T>(&mut c).await,
            }
        };
        match tokio::time::timeout(TIMEOUT, call).await {
            Ok(answer) => Ok(answer?),
            Err(_) => Err(RedisDown(format!("no answer within {TIMEOUT:?}"))),
        }
    }

    /// A game server heartbeated `session`: it lives `ttl` more, on every node.
    pub async fn heartbeat(&self, session: Uuid, ttl: Duration) -> Result<(), RedisDown> {
        let key = self.key(&["heartbeat", &session.to_string()]);
        let ttl_ms = ttl.as_millis().max(1) as u64;
        self.run::<()>(redis::cmd("SET").arg(&key).arg(1).arg("PX").arg(ttl_ms))
            .await
    }

    /// How long `session`'s last heartbeat (through any node) still holds; `None` when it ran
    /// out or never came.
    pub async fn heartbeat_left(&self, session: Uuid) -> Result<Option<Duration>, RedisDown> {
        let key = self.key(&["heartbeat", &session.to_string()]);
        let left: i64 = self.run(redis::cmd("PTTL").arg(&key)).await?;
        Ok((left > 0).then(|| Duration::from_millis(left as u64)))
    }

    /// Whether `player` has a live socket on any node.
    pub async fn is_present(&self, player: Uuid) -> Result<bool, RedisDown> {
        let key = self.key(&["presence", &player.to_string()]);
        self.run(redis::cmd("EXISTS").arg(&key)).await
    }

    /// Removes every key under this prefix (tests clean up after themselves).
    pub async fn forget_everything(&self) -> Result<(), RedisDown> {
        let pattern = format!("{}:*", self.prefix);
        let mut cursor = 0u64;
        loop {
            let (next, keys): (u64, Vec<String>) = self
                .run(
                    redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(&pattern)
                        .arg("COUNT")
                        .arg(1000),
                )
                .await?;
            if !keys.is_empty() {
                self.run::<i64>(redis::cmd("DEL").arg(&keys)).await?;
            }
            if next == 0 {
                return Ok(());
            }
            cursor = next;
        }
    }
}

/// For tests of the Redis state: the server at `VERSUS_TEST_REDIS_URL` (default
/// `redis://127.0.0.1:6379`) when it answers; otherwise `None` after printing
/// `SKIPPED (redis unreachable …)`, or a panic when backends are required (`CI=true` or
/// `VERSUS_REQUIRE_BACKENDS=1`).
pub async fn test_url() -> Option<String> {
    let url =
        std::env::var("VERSUS_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let why = match Redis::connect(&url, "probe").await {
        Ok(redis) => match redis.ping().await {
            Ok(_) => return Some(url),
            Err(err) => err.to_string(),
        },
        Err(err) => format!("{err:#}"),
    };
    versus_store::skip_unreachable("redis", &url, &why);
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn redis() -> Option<Arc<Redis>> {
        let url = test_url().await?;
        let prefix = format!("test-{}", Uuid::now_v7().simple());
        Some(Redis::connect(&url, &prefix).await.unwrap())
    }

    /// A bucket shared by two connections (two nodes): the burst is granted once between them,
    /// then each request is told how long until the next token.
    #[tokio::test]
    async fn two_nodes_share_one_bucket() {
        let Some(a) = redis().await else {
            return;
        };
        let b = Redis::connect(&test_url().await.unwrap(), &a.prefix)
            .await
            .unwrap();
        let mut granted = 0;
        for i in 0..10 {
            let node = if i % 2 == 0 { &a } else { &b };
            if node.take("login", "alice", 6, 4).await.unwrap().is_none() {
                granted += 1;
            }
        }
        assert_eq!(granted, 4, "the burst, once across both nodes");
        let wait = a.take("login", "alice", 6, 4).await.unwrap().unwrap();
        assert!(
            wait > Duration::from_secs(5) && wait <= Duration::from_secs(10),
            "{wait:?}"
        );
        // Another key has its own bucket.
        assert!(b.take("login", "bob", 6, 4).await.unwrap().is_none());
        a.forget_everything().await.unwrap();
    }

    /// Presence: set with a TTL, cleared only by the connection that set it, gone by itself
    /// when not renewed.
    #[tokio::test]
    async fn presence_is_per_connection_and_expires() {
        let Some(redis) = redis().await else {
            return;
        };
        let player = Uuid::now_v7();
        assert!(!redis.is_present(player).await.unwrap());
        redis
            .set_present(player, "node-a/1", Duration::from_secs(30))
            .await
            .unwrap();
        assert!(redis.is_present(player).await.unwrap());
        // The player moved to node B; node A's old socket closing must not erase that.
        redis
            .set_present(player, "node-b/7", Duration::from_millis(300))
            .await
            .unwrap();
        redis.clear_present(player, "node-a/1").await.unwrap();
        assert!(redis.is_present(player).await.unwrap());
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert!(!redis.is_present(player).await.unwrap(), "expired");
        redis
            .set_present(player, "node-b/8", Duration::from_secs(30))
            .await
            .unwrap();
        redis.clear_present(player, "node-b/8").await.unwrap();
        assert!(!redis.is_present(player).await.unwrap());
        redis.forget_everything().await.unwrap();
    }
}
