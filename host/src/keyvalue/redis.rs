//! A [`Backend`] on Redis, shared by several host processes: compare-and-swap runs as a Lua script.
//!
//! Each key is a Redis hash `set-my-phone:kv:<bucket>:<key>` with the fields `v` (the value) and
//! `n` (its version). Versions come from one counter, `set-my-phone:version`, so a version is never
//! handed out twice, not even after a delete. A swap compares `n` and writes inside one script, which
//! Redis runs atomically: it reports a conflict only when it wrote nothing.
//!
//! The connection reconnects by itself; every operation has a time limit, so a Redis that is down
//! or hangs answers [`BackendError`] quickly instead of holding requests.
//!
//! Redis I/O runs on a runtime of its own (one thread): the host's worker threads run guests, and
//! on a busy machine guests kept them from reading Redis's answers until the time limit passed
//! (`redis: timed out` under a CPU hog, though Redis itself answered at once).

use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::{Client, Script};

use super::{Backend, BackendError, KeyPage, Swap, Version, Versioned};

/// Prefix of every key this backend writes.
const PREFIX: &str = "set-my-phone:";

/// Default limit of one operation, round trips and reconnection included.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(4);

/// Keys asked for per `SCAN` round trip.
const SCAN_COUNT: usize = 1000;

/// `SET`: stores the value under a fresh version. KEYS: entry, counter; ARGV: value.
const SET_SCRIPT: &str = r"
local n = redis.call('INCR', KEYS[2])
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'n', n)
return n
";

/// Compare-and-swap. KEYS: entry, counter; ARGV: expected version (`0` = absent), value.
/// Answers 1 when it wrote, 0 when the version differed (and then it wrote nothing).
const SWAP_SCRIPT: &str = r"
local current = redis.call('HGET', KEYS[1], 'n')
if not current then current = '0' end
if current ~= ARGV[1] then return 0 end
local n = redis.call('INCR', KEYS[2])
redis.call('HSET', KEYS[1], 'v', ARGV[2], 'n', n)
return 1
";

/// Increment. KEYS: entry, counter; ARGV: delta. `HINCRBY` refuses non-integers and overflow
/// before anything is written; the new value is answered as Redis stores it (decimal text).
const INCREMENT_SCRIPT: &str = r"
redis.call('HINCRBY', KEYS[1], 'v', ARGV[1])
local n = redis.call('INCR', KEYS[2])
redis.call('HSET', KEYS[1], 'n', n)
return redis.call('HGET', KEYS[1], 'v')
";

/// Key-value data in Redis; clones share one reconnecting connection.
#[derive(Clone)]
pub struct RedisBackend {
    connection: ConnectionManager,
    timeout: Duration,
    /// The runtime every Redis call runs on.
    io: tokio::runtime::Handle,
    set: std::sync::Arc<Script>,
    swap: std::sync::Arc<Script>,
    increment: std::sync::Arc<Script>,
}

impl std::fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBackend")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// A failed Redis call, as the guest sees it.
fn redis_error(err: &::redis::RedisError) -> BackendError {
    BackendError::new(format!("redis: {err}"))
}

/// Escapes a bucket label so that it cannot contain the `:` that ends it.
fn escape_bucket(bucket: &str) -> String {
    bucket.replace('%', "%25").replace(':', "%3A")
}

/// The Redis key of `key` in `bucket`.
fn entry_key(bucket: &str, key: &str) -> String {
    format!("{}{key}", bucket_prefix(bucket))
}

fn bucket_prefix(bucket: &str) -> String {
    format!("{PREFIX}kv:{}:", escape_bucket(bucket))
}

fn counter_key() -> String {
    format!("{PREFIX}version")
}

/// Escapes the glob characters of `SCAN MATCH`.
fn escape_glob(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// A one-thread runtime for Redis I/O, running until the process ends.
fn io_runtime() -> Result<tokio::runtime::Handle, BackendError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|err| BackendError::new(format!("redis: no I/O runtime: {err}")))?;
    let handle = runtime.handle().clone();
    std::thread::Builder::new()
        .name("redis-io".into())
        .spawn(move || runtime.block_on(std::future::pending::<()>()))
        .map_err(|err| BackendError::new(format!("redis: no I/O thread: {err}")))?;
    Ok(handle)
}

impl RedisBackend {
    /// A backend for the Redis at `url` (`redis://host:port[/db]`), with a 4 s limit per operation;
    /// it starts a thread of its own for Redis I/O.
    ///
    /// Fails on a malformed URL (or when no I/O thread can start): the connection is made on first
    /// use and remade whenever it breaks, so a Redis that is down at start-up is not an error here
    /// (see [`Self::ping`]).
    pub fn connect(url: &str) -> Result<Self, BackendError> {
        Self::connect_with_timeout(url, DEFAULT_TIMEOUT)
    }

    /// As [`Self::connect`], with `timeout` per operation.
    pub fn connect_with_timeout(url: &str, timeout: Duration) -> Result<Self, BackendError> {
        let client = Client::open(url)
            .map_err(|err| BackendError::new(format!("bad Redis URL {url:?}: {err}")))?;
        let io = io_runtime()?;
        // The connection's own tasks start on the runtime current when it is made.
        let _entered = io.enter();
        let config = ConnectionManagerConfig::new()
            // One attempt per operation: the operation's own limit bounds the wait, and the next
            // operation tries again.
            .set_number_of_retries(0)
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout));
        let connection = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|err| BackendError::new(format!("Redis at {url:?}: {err}")))?;
        Ok(Self {
            connection,
            timeout,
            io: io.clone(),
            set: std::sync::Arc::new(Script::new(SET_SCRIPT)),
            swap: std::sync::Arc::new(Script::new(SWAP_SCRIPT)),
            increment: std::sync::Arc::new(Script::new(INCREMENT_SCRIPT)),
        })
    }

    /// Checks that Redis answers.
    pub async fn ping(&self) -> Result<(), BackendError> {
        let mut connection = self.connection.clone();
        self.limited(async move {
            ::redis::cmd("PING")
                .query_async::<String>(&mut connection)
                .await
        })
        .await
        .map(drop)
    }

    /// Runs one Redis call on the I/O runtime, within the time limit.
    async fn limited<T: Send + 'static>(
        &self,
        call: impl Future<Output = ::redis::RedisResult<T>> + Send + 'static,
    ) -> Result<T, BackendError> {
        let timeout = self.timeout;
        let task = self
            .io
            .spawn(async move { tokio::time::timeout(timeout, call).await });
        match task.await {
            Ok(Ok(Ok(answer))) => Ok(answer),
            Ok(Ok(Err(err))) => Err(redis_error(&err)),
            Ok(Err(_)) => Err(BackendError::new(format!(
                "redis: no answer within {timeout:?}"
            ))),
            Err(err) => Err(BackendError::new(format!("redis: the call failed: {err}"))),
        }
    }
}

#[async_trait::async_trait]
impl Backend for RedisBackend {
    async fn get(&self, bucket: &str, key: &str) -> Result<Versioned, BackendError> {
        let mut connection = self.connection.clone();
        let entry = entry_key(bucket, key);
        let (value, version): (Option<Vec<u8>>, Option<u64>) = self
            .limited(async move {
                ::redis::cmd("HMGET")
                    .arg(&entry)
                    .arg("v")
                    .arg("n")
                    .query_async(&mut connection)
                    .await
            })
            .await?;
        match (value, version) {
            (None, None) => Ok(Versioned::absent()),
            (Some(value), Some(version)) => Ok(Versioned {
                value: Some(value),
                version: Version::Written(version),
            }),
            _ => Err(BackendError::new(format!(
                "redis: entry for {key:?} lacks its value or version"
            ))),
        }
    }

    async fn set(&self, bucket: &str, key: &str, value: Vec<u8>) -> Result<(), BackendError> {
        let mut connection = self.connection.clone();
        let script = std::sync::Arc::clone(&self.set);
        let entry = entry_key(bucket, key);
        self.limited(async move {
            script
                .key(entry)
                .key(counter_key())
                .arg(value)
                .invoke_async::<u64>(&mut connection)
                .await
        })
        .await
        .map(drop)
    }

    async fn delete(&self, bucket: &str, key: &str) -> Result<(), BackendError> {
        let mut connection = self.connection.clone();
        let entry = entry_key(bucket, key);
        self.limited(async move {
            ::redis::cmd("DEL")
                .arg(entry)
                .query_async::<u64>(&mut connection)
                .await
        })
        .await
        .map(drop)
    }

    async fn exists(&self, bucket: &str, key: &str) -> Result<bool, BackendError> {
        let mut connection = self.connection.clone();
        let entry = entry_key(bucket, key);
        self.limited(async move {
            ::redis::cmd("EXISTS")
                .arg(entry)
                .query_async::<bool>(&mut connection)
                .await
        })
        .await
    }

    /// Pages follow Redis `SCAN`: the cursor is Redis's, and a key may show up twice in one listing.
    async fn list_keys(
        &self,
        bucket: &str,
        cursor: Option<String>,
    ) -> Result<KeyPage, BackendError> {
        let mut scan_cursor: u64 = match cursor.as_deref() {
            None => 0,
            Some(text) => text
                .parse()
                .map_err(|_| BackendError::new(format!("redis: bad cursor {text:?}")))?,
        };
        let prefix = bucket_prefix(bucket);
        let pattern = format!("{}*", escape_glob(&prefix));
        let mut connection = self.connection.clone();
        self.limited(async move {
            let mut keys = Vec::new();
            // SCAN may answer an empty batch before the end: go on until keys come or it ends.
            loop {
                let (next, batch): (u64, Vec<Vec<u8>>) = ::redis::cmd("SCAN")
                    .arg(scan_cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(SCAN_COUNT)
                    .query_async(&mut connection)
                    .await?;
                keys.extend(batch.into_iter().filter_map(|raw| {
                    String::from_utf8(raw)
                        .ok()
                        .and_then(|full| full.strip_prefix(&prefix).map(str::to_owned))
                }));
                scan_cursor = next;
                if scan_cursor == 0 || !keys.is_empty() {
                    break;
                }
            }
            let cursor = (scan_cursor != 0).then(|| scan_cursor.to_string());
            Ok(KeyPage { keys, cursor })
        })
        .await
    }

    async fn compare_and_swap(
        &self,
        bucket: &str,
        key: &str,
        expected: Version,
        value: Vec<u8>,
    ) -> Result<Swap, BackendError> {
        let expected = match expected {
            Version::Absent => 0,
            Version::Written(n) => n,
        };
        let mut connection = self.connection.clone();
        let script = std::sync::Arc::clone(&self.swap);
        let entry = entry_key(bucket, key);
        let wrote = self
            .limited(async move {
                script
                    .key(entry)
                    .key(counter_key())
                    .arg(expected)
                    .arg(value)
                    .invoke_async::<u8>(&mut connection)
                    .await
            })
            .await?;
        Ok(if wrote == 1 {
            Swap::Swapped
        } else {
            Swap::Conflict
        })
    }

    async fn increment(&self, bucket: &str, key: &str, delta: i64) -> Result<i64, BackendError> {
        let mut connection = self.connection.clone();
        let script = std::sync::Arc::clone(&self.increment);
        let entry = entry_key(bucket, key);
        let answer = self
            .limited(async move {
                script
                    .key(entry)
                    .key(counter_key())
                    .arg(delta)
                    .invoke_async::<String>(&mut connection)
                    .await
            })
            .await?;
        answer
            .parse()
            .map_err(|_| BackendError::new(format!("redis: increment answered {answer:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_keep_buckets_apart() {
        assert_eq!(entry_key("default", "k"), "set-my-phone:kv:default:k");
        assert_eq!(entry_key("a:b", "c"), "set-my-phone:kv:a%3Ab:c");
        assert_ne!(entry_key("a:b", "c"), entry_key("a", "b:c"));
        assert_eq!(escape_glob("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\");
    }

    #[test]
    fn a_malformed_url_is_refused() {
        assert!(RedisBackend::connect("not a url").is_err());
    }

    #[tokio::test]
    async fn an_unreachable_redis_fails_within_the_limit() {
        // Port 9 (discard) is closed on test machines: the connection is refused at once.
        let backend =
            RedisBackend::connect_with_timeout("redis://127.0.0.1:9", Duration::from_millis(500))
                .expect("a well-formed URL");
        let started = std::time::Instant::now();
        assert!(backend.get("default", "k").await.is_err());
        assert!(backend.ping().await.is_err());
        assert!(started.elapsed() < Duration::from_secs(3));
    }
}
