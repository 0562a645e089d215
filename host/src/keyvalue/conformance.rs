//! One conformance suite for every key-value store: the host's backends (memory, redb, Redis) and
//! the kv-file adapter's file store, each run as a [`Backend`].
//!
//! Every case in [`cases`] is an async function of a fresh, empty store; [`suite!`] instantiates
//! all of them once per store (`conformance::<store>::<case>`), each on a multi-thread runtime so
//! that concurrent cases really race. Redis is a real `redis-server` started per test on a free
//! loopback port in a temporary folder; when it is not installed the Redis tests fail (scripts/test
//! installs it). What only one store has (fault injection, reopening a file, lock files, Redis
//! bucket escaping) stays in that store's own tests.

use std::collections::BTreeSet;
use std::error::Error;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use set_my_phone_kv_file::fs::StoreError;
use set_my_phone_kv_file::lock::LockPolicy;
use set_my_phone_kv_file::name;
use set_my_phone_kv_file::std_dir::{StdDir, StdSystem};
use set_my_phone_kv_file::store::{self as file_store, Store};

use super::{
    Backend, BackendError, KeyPage, MemoryBackend, RedbBackend, RedisBackend, Swap, Version,
    Versioned,
};

type Outcome = Result<(), Box<dyn Error + Send + Sync>>;

/// The bucket every case works in; [`OTHER`] is a second one. Both are valid kv-file buckets.
const B: &str = "default";
const OTHER: &str = "other";

/// Concurrent cases: this many tasks, each doing [`ROUNDS`] updates of one record.
const TASKS: usize = 8;
const ROUNDS: usize = 50;

/// Longest key the kv-file store accepts, in UTF-8 bytes; the other stores take any length.
const LONGEST_KEY: usize = name::MAX_KEY_BYTES;

/// The number stored at `value` (decimal text), 0 when absent.
fn number(value: Option<&[u8]>) -> Result<i64, BackendError> {
    let Some(value) = value else { return Ok(0) };
    std::str::from_utf8(value)
        .ok()
        .and_then(|text| text.parse().ok())
        .ok_or_else(|| BackendError::new(format!("not a number: {value:?}")))
}

/// Every key of `bucket`, following cursors to the last page; sorted, each once (Redis `SCAN`
/// may name a key twice).
async fn all_keys(store: &dyn Backend, bucket: &str) -> Result<Vec<String>, BackendError> {
    let mut keys = BTreeSet::new();
    let mut cursor = None;
    for _ in 0..100_000 {
        let KeyPage {
            keys: page,
            cursor: next,
        } = store.list_keys(bucket, cursor).await?;
        keys.extend(page);
        match next {
            None => return Ok(keys.into_iter().collect()),
            Some(next) => cursor = Some(next),
        }
    }
    Err(BackendError::new("list_keys never reached its last page"))
}

/// The cases, each on an empty store.
mod cases {
    use super::*;

    pub async fn absent_keys_read_as_absent(store: Arc<dyn Backend>) -> Outcome {
        assert_eq!(store.get(B, "k").await?, Versioned::absent());
        assert!(!store.exists(B, "k").await?);
        store.delete(B, "k").await?;
        assert_eq!(store.get(B, "k").await?, Versioned::absent());
        assert_eq!(all_keys(&*store, B).await?, Vec::<String>::new());
        Ok(())
    }

    pub async fn set_get_exists_delete(store: Arc<dyn Backend>) -> Outcome {
        store.set(B, "k", b"one".to_vec()).await?;
        let read = store.get(B, "k").await?;
        assert_eq!(read.value.as_deref(), Some(&b"one"[..]));
        assert!(matches!(read.version, Version::Written(_)), "{read:?}");
        assert!(store.exists(B, "k").await?);

        store.set(B, "k", b"two".to_vec()).await?;
        assert_eq!(store.get(B, "k").await?.value.as_deref(), Some(&b"two"[..]));

        store.set(B, "empty", Vec::new()).await?;
        assert_eq!(store.get(B, "empty").await?.value, Some(Vec::new()));
        assert!(store.exists(B, "empty").await?, "an empty value exists");
        assert_eq!(all_keys(&*store, B).await?, ["empty", "k"]);

        store.delete(B, "k").await?;
        assert_eq!(store.get(B, "k").await?, Versioned::absent());
        assert!(!store.exists(B, "k").await?);
        store.delete(B, "k").await?;
        assert_eq!(all_keys(&*store, B).await?, ["empty"]);
        Ok(())
    }

    pub async fn buckets_are_separate(store: Arc<dyn Backend>) -> Outcome {
        store.set(B, "k", b"1".to_vec()).await?;
        assert_eq!(store.get(OTHER, "k").await?, Versioned::absent());
        assert!(!store.exists(OTHER, "k").await?);
        assert_eq!(all_keys(&*store, OTHER).await?, Vec::<String>::new());
        store.set(OTHER, "k", b"2".to_vec()).await?;
        store.delete(B, "k").await?;
        assert_eq!(
            store.get(OTHER, "k").await?.value.as_deref(),
            Some(&b"2"[..])
        );
        assert_eq!(store.increment(OTHER, "n", 3).await?, 3);
        assert_eq!(store.get(B, "n").await?, Versioned::absent());
        Ok(())
    }

    pub async fn swap_on_the_version_read_succeeds(store: Arc<dyn Backend>) -> Outcome {
        store.set(B, "k", b"a".to_vec()).await?;
        let seen = store.get(B, "k").await?;
        assert_eq!(
            store
                .compare_and_swap(B, "k", seen.version, b"b".to_vec())
                .await?,
            Swap::Swapped
        );
        let now = store.get(B, "k").await?;
        assert_eq!(now.value.as_deref(), Some(&b"b"[..]));
        assert_ne!(now.version, seen.version, "a swap makes a new version");
        Ok(())
    }

    pub async fn swap_on_a_stale_version_conflicts_without_writing(
        store: Arc<dyn Backend>,
    ) -> Outcome {
        store.set(B, "k", b"a".to_vec()).await?;
        let stale = store.get(B, "k").await?;
        store.set(B, "k", b"b".to_vec()).await?;
        assert_eq!(
            store
                .compare_and_swap(B, "k", stale.version, b"c".to_vec())
                .await?,
            Swap::Conflict
        );
        assert_eq!(store.get(B, "k").await?.value.as_deref(), Some(&b"b"[..]));

        // The version read after the conflict swaps.
        let fresh = store.get(B, "k").await?;
        assert_eq!(
            store
                .compare_and_swap(B, "k", fresh.version, b"c".to_vec())
                .await?,
            Swap::Swapped
        );
        assert_eq!(store.get(B, "k").await?.value.as_deref(), Some(&b"c"[..]));
        Ok(())
    }

    pub async fn rewriting_the_same_value_changes_the_version(store: Arc<dyn Backend>) -> Outcome {
        store.set(B, "k", b"a".to_vec()).await?;
        let first = store.get(B, "k").await?;
        store.set(B, "k", b"a".to_vec()).await?;
        assert_ne!(store.get(B, "k").await?.version, first.version);
        assert_eq!(
            store
                .compare_and_swap(B, "k", first.version, b"b".to_vec())
                .await?,
            Swap::Conflict
        );
        assert_eq!(store.get(B, "k").await?.value.as_deref(), Some(&b"a"[..]));
        Ok(())
    }

    pub async fn a_deleted_key_neither_swaps_nor_reuses_its_version(
        store: Arc<dyn Backend>,
    ) -> Outcome {
        store.set(B, "k", b"a".to_vec()).await?;
        let before = store.get(B, "k").await?;
        store.delete(B, "k").await?;
        assert_eq!(
            store
                .compare_and_swap(B, "k", before.version, b"x".to_vec())
                .await?,
            Swap::Conflict
        );
        assert_eq!(
            store.get(B, "k").await?,
            Versioned::absent(),
            "nothing written"
        );

        // Recreated with the very same bytes: still a version of its own.
        store.set(B, "k", b"a".to_vec()).await?;
        assert_ne!(store.get(B, "k").await?.version, before.version);
        assert_eq!(
            store
                .compare_and_swap(B, "k", before.version, b"x".to_vec())
                .await?,
            Swap::Conflict
        );
        assert_eq!(store.get(B, "k").await?.value.as_deref(), Some(&b"a"[..]));
        Ok(())
    }

    pub async fn swap_from_absent_conflicts_while_present(store: Arc<dyn Backend>) -> Outcome {
        store.set(B, "k", b"there".to_vec()).await?;
        assert_eq!(
            store
                .compare_and_swap(B, "k", Version::Absent, b"x".to_vec())
                .await?,
            Swap::Conflict
        );
        assert_eq!(
            store.get(B, "k").await?.value.as_deref(),
            Some(&b"there"[..])
        );
        Ok(())
    }

    /// [`TASKS`] creators all read the key as absent, then race to create it: exactly one wins,
    /// and the value stored is the winner's.
    pub async fn swap_from_absent_while_absent_succeeds_exactly_once(
        store: Arc<dyn Backend>,
    ) -> Outcome {
        let start = Arc::new(tokio::sync::Barrier::new(TASKS));
        let mut creators = Vec::new();
        for task in 0..TASKS {
            let (store, start) = (Arc::clone(&store), Arc::clone(&start));
            creators.push(tokio::spawn(async move {
                let seen = store.get(B, "k").await?;
                start.wait().await;
                let value = format!("creator {task}").into_bytes();
                let swap = store.compare_and_swap(B, "k", seen.version, value).await?;
                Ok::<_, BackendError>((seen.version, swap))
            }));
        }
        let mut winners = Vec::new();
        for (task, creator) in creators.into_iter().enumerate() {
            let (seen, swap) = creator.await??;
            assert_eq!(
                seen,
                Version::Absent,
                "creator {task} read before anyone wrote"
            );
            if swap == Swap::Swapped {
                winners.push(task);
            }
        }
        assert_eq!(winners.len(), 1, "winners: {winners:?}");
        let stored = store.get(B, "k").await?.value;
        assert_eq!(stored, Some(format!("creator {}", winners[0]).into_bytes()));

        // Once created, a late creator still loses.
        assert_eq!(
            store
                .compare_and_swap(B, "k", Version::Absent, b"late".to_vec())
                .await?,
            Swap::Conflict
        );
        Ok(())
    }

    pub async fn increment_counts_from_absent_in_decimal_text(store: Arc<dyn Backend>) -> Outcome {
        assert_eq!(store.increment(B, "n", 5).await?, 5);
        assert_eq!(store.get(B, "n").await?.value.as_deref(), Some(&b"5"[..]));
        assert_eq!(store.increment(B, "n", 37).await?, 42);
        assert_eq!(store.increment(B, "n", -50).await?, -8);
        assert_eq!(store.increment(B, "n", 0).await?, -8);
        assert_eq!(store.get(B, "n").await?.value.as_deref(), Some(&b"-8"[..]));
        assert_eq!(store.increment(B, "m", -3).await?, -3);

        // A number written by `set` counts on; an increment is a write a swap must notice.
        store.set(B, "s", b"100".to_vec()).await?;
        let seen = store.get(B, "s").await?;
        assert_eq!(store.increment(B, "s", 1).await?, 101);
        assert_eq!(
            store
                .compare_and_swap(B, "s", seen.version, b"0".to_vec())
                .await?,
            Swap::Conflict
        );
        assert_eq!(store.get(B, "s").await?.value.as_deref(), Some(&b"101"[..]));
        Ok(())
    }

    pub async fn increment_refuses_non_integers_and_overflow_writing_nothing(
        store: Arc<dyn Backend>,
    ) -> Outcome {
        store.set(B, "text", b"twelve".to_vec()).await?;
        assert!(store.increment(B, "text", 1).await.is_err());
        assert_eq!(
            store.get(B, "text").await?.value.as_deref(),
            Some(&b"twelve"[..])
        );
        let max = i64::MAX.to_string().into_bytes();
        store.set(B, "max", max.clone()).await?;
        assert!(store.increment(B, "max", 1).await.is_err());
        assert_eq!(store.get(B, "max").await?.value, Some(max));
        Ok(())
    }

    /// [`TASKS`] tasks each add 1 [`ROUNDS`] times to one counter: every increment counts.
    pub async fn concurrent_increments_sum_exactly(store: Arc<dyn Backend>) -> Outcome {
        let mut tasks = Vec::new();
        for _ in 0..TASKS {
            let store = Arc::clone(&store);
            tasks.push(tokio::spawn(async move {
                for _ in 0..ROUNDS {
                    store.increment(B, "n", 1).await?;
                }
                Ok::<_, BackendError>(())
            }));
        }
        for task in tasks {
            task.await??;
        }
        let total = i64::try_from(TASKS * ROUNDS)?;
        assert_eq!(number(store.get(B, "n").await?.value.as_deref())?, total);
        Ok(())
    }

    /// [`TASKS`] tasks each make [`ROUNDS`] read-modify-swap increments of one counter, retrying on
    /// conflict; each yields between its read and its swap, so others write in between. A store
    /// whose swap ignores the version loses updates and ends below the total.
    pub async fn concurrent_swappers_lose_no_update(store: Arc<dyn Backend>) -> Outcome {
        let mut tasks = Vec::new();
        for _ in 0..TASKS {
            let store = Arc::clone(&store);
            tasks.push(tokio::spawn(async move {
                for _ in 0..ROUNDS {
                    loop {
                        let seen = store.get(B, "counter").await?;
                        let next = number(seen.value.as_deref())? + 1;
                        tokio::task::yield_now().await;
                        let value = next.to_string().into_bytes();
                        let swap = store
                            .compare_and_swap(B, "counter", seen.version, value)
                            .await?;
                        if swap == Swap::Swapped {
                            break;
                        }
                    }
                }
                Ok::<_, BackendError>(())
            }));
        }
        for task in tasks {
            task.await??;
        }
        let total = i64::try_from(TASKS * ROUNDS)?;
        let counter = store.get(B, "counter").await?;
        assert_eq!(
            number(counter.value.as_deref())?,
            total,
            "updates were lost"
        );
        Ok(())
    }

    /// A 1 MiB value of every byte value round-trips through `set`, `get` and a swap.
    pub async fn one_mib_values_round_trip(store: Arc<dyn Backend>) -> Outcome {
        let big: Vec<u8> = (0..1 << 20).map(|i: u32| (i % 251) as u8).collect();
        store.set(B, "big", big.clone()).await?;
        let read = store.get(B, "big").await?;
        assert!(read.value.as_ref() == Some(&big), "1 MiB value changed");

        let mut bigger = big;
        bigger.reverse();
        assert_eq!(
            store
                .compare_and_swap(B, "big", read.version, bigger.clone())
                .await?,
            Swap::Swapped
        );
        assert!(
            store.get(B, "big").await?.value == Some(bigger),
            "swapped 1 MiB value changed"
        );
        Ok(())
    }

    /// Keys with every character a key may hold: each is stored, read, listed, swapped and deleted
    /// on its own, none mistaken for another.
    pub async fn keys_of_any_text_round_trip(store: Arc<dyn Backend>) -> Outcome {
        let every_ascii: String = (0..=127_u8).map(char::from).collect();
        let keys = [
            String::new(),
            "plain-key_1".into(),
            "Upper".into(),
            "upper".into(),
            "user:org-1:phone".into(),
            "a/b/../c".into(),
            "/".into(),
            "../..".into(),
            "%".into(),
            "100%".into(),
            "%3A".into(),
            "%2F".into(),
            "k%".into(),
            " ".into(),
            " leading and trailing ".into(),
            "tab\tnew\nline\r".into(),
            "nul\0byte".into(),
            "glob*?[a-z]\\".into(),
            ".lock-kx".into(),
            "kabc".into(),
            format!("h{}", "0".repeat(64)),
            "ü".into(),
            "日本語のキー".into(),
            "emoji 📱 ☎".into(),
            "\u{7f}\u{80}\u{ff}\u{fffd}\u{10ffff}".into(),
            every_ascii,
            // Spelled out it no longer fits a file name: kv-file names it by hash.
            "/".repeat(60),
            "x".repeat(LONGEST_KEY),
            "é".repeat(LONGEST_KEY / 2),
            format!("{}/", "日".repeat((LONGEST_KEY - 1) / 3)),
        ];
        assert!(keys.iter().all(|key| key.len() <= LONGEST_KEY));
        assert_eq!(keys.iter().collect::<BTreeSet<_>>().len(), keys.len());

        for (i, key) in keys.iter().enumerate() {
            store.set(B, key, format!("value {i}").into_bytes()).await?;
        }
        for (i, key) in keys.iter().enumerate() {
            let read = store.get(B, key).await?;
            assert_eq!(
                read.value,
                Some(format!("value {i}").into_bytes()),
                "{key:?}"
            );
            assert!(store.exists(B, key).await?, "{key:?}");
            assert_eq!(
                store
                    .compare_and_swap(B, key, read.version, format!("swapped {i}").into_bytes())
                    .await?,
                Swap::Swapped,
                "{key:?}"
            );
        }
        let mut sorted = keys.to_vec();
        sorted.sort();
        assert_eq!(all_keys(&*store, B).await?, sorted);
        for (i, key) in keys.iter().enumerate() {
            assert_eq!(
                store.get(B, key).await?.value,
                Some(format!("swapped {i}").into_bytes()),
                "{key:?}"
            );
            store.delete(B, key).await?;
            assert!(!store.exists(B, key).await?, "{key:?}");
        }
        assert_eq!(all_keys(&*store, B).await?, Vec::<String>::new());
        Ok(())
    }

    /// More keys than the largest page (memory and redb answer 1000 a page, Redis scans 1000 at
    /// a time): following the cursors names each exactly once.
    pub async fn list_keys_pages_through_every_key(store: Arc<dyn Backend>) -> Outcome {
        let keys: Vec<String> = (0..1005).map(|i| format!("key-{i:05}")).collect();
        for key in &keys {
            store.set(B, key, b"v".to_vec()).await?;
        }
        let mut listed = Vec::new();
        let mut cursor = None;
        loop {
            let page = store.list_keys(B, cursor).await?;
            listed.extend(page.keys);
            cursor = page.cursor;
            if cursor.is_none() {
                break;
            }
            assert!(
                listed.len() <= 2 * keys.len(),
                "the cursor does not move on"
            );
        }
        listed.sort();
        listed.dedup();
        assert_eq!(listed, keys);
        Ok(())
    }
}

/// A fresh directory under the system's temporary folder, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(label: &str) -> std::io::Result<Self> {
        let path = std::env::temp_dir().join(format!(
            "smp-conformance-{label}-{}-{:016x}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::create_dir_all(&path)?;
        Ok(Self(path))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A `redis-server` on 127.0.0.1 with nothing saved, started for one test; killed on drop.
struct RedisServer {
    child: Child,
    port: u16,
}

impl RedisServer {
    /// Starts Redis in `dir` on a free port (trying again when another process took the port
    /// first), waits until it answers, and answers it with a backend connected to it.
    async fn start(dir: &Path) -> Result<(Self, RedisBackend), Box<dyn Error + Send + Sync>> {
        let mut last_exit = None;
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")?
                .local_addr()?
                .port();
            let spawned = Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
                .arg("--dir")
                .arg(dir)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn();
            let child = match spawned {
                Ok(child) => child,
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                    return Err(
                        "redis-server is not installed: the Redis conformance tests need \
                                it (scripts/test installs it; Debian/Ubuntu: apt-get install -y \
                                redis-server)"
                            .into(),
                    );
                }
                Err(err) => return Err(format!("cannot start redis-server: {err}").into()),
            };
            let mut server = Self { child, port };
            let backend = RedisBackend::connect(&server.url())?;
            match server.wait_ready(&backend).await? {
                None => return Ok((server, backend)),
                Some(status) => last_exit = Some(status),
            }
        }
        Err(format!("redis-server kept exiting at start (last: {last_exit:?})").into())
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Waits until Redis answers `backend`'s `PING`; `Some(status)` when it exited instead.
    async fn wait_ready(
        &mut self,
        backend: &RedisBackend,
    ) -> Result<Option<std::process::ExitStatus>, Box<dyn Error + Send + Sync>> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if backend.ping().await.is_ok() {
                return Ok(None);
            }
            if let Some(status) = self.child.try_wait()? {
                return Ok(Some(status));
            }
            if Instant::now() > deadline {
                return Err(
                    format!("redis-server on port {} never answered PING", self.port).into(),
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The kv-file adapter's store as a [`Backend`]: a bucket is a folder under `root`, and every
/// call opens the store afresh on the blocking pool, as separate instances of the component
/// would.
struct KvFileBackend {
    root: PathBuf,
}

impl KvFileBackend {
    /// Runs `work` on `bucket`'s store in a blocking thread.
    async fn run<T: Send + 'static>(
        &self,
        bucket: &str,
        work: impl FnOnce(&Store<StdDir, StdSystem>) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, BackendError> {
        name::check_bucket(bucket).map_err(BackendError::new)?;
        let dir = self.root.join(bucket);
        tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&dir)
                .map_err(|err| BackendError::new(format!("mkdir {}: {err}", dir.display())))?;
            // Waits long for a lock: the concurrent cases queue many writers on one key.
            let policy = LockPolicy {
                wait_at_most: Duration::from_secs(60),
                ..LockPolicy::default()
            };
            let store = Store::new(StdDir(dir), StdSystem::new(), policy);
            work(&store).map_err(|err| BackendError::new(err.to_string()))
        })
        .await
        .map_err(|err| BackendError::new(format!("kv-file: task failed: {err}")))?
    }
}

#[async_trait::async_trait]
impl Backend for KvFileBackend {
    async fn get(&self, bucket: &str, key: &str) -> Result<Versioned, BackendError> {
        let key = key.to_owned();
        let read = self.run(bucket, move |store| store.read(&key)).await?;
        Ok(match read {
            None => Versioned::absent(),
            Some(read) => Versioned {
                value: Some(read.value),
                version: Version::Written(read.version),
            },
        })
    }

    async fn set(&self, bucket: &str, key: &str, value: Vec<u8>) -> Result<(), BackendError> {
        let key = key.to_owned();
        self.run(bucket, move |store| store.set(&key, &value)).await
    }

    async fn delete(&self, bucket: &str, key: &str) -> Result<(), BackendError> {
        let key = key.to_owned();
        self.run(bucket, move |store| store.delete(&key)).await
    }

    async fn exists(&self, bucket: &str, key: &str) -> Result<bool, BackendError> {
        let key = key.to_owned();
        self.run(bucket, move |store| store.exists(&key)).await
    }

    /// The file store lists a bucket in one page.
    async fn list_keys(
        &self,
        bucket: &str,
        cursor: Option<String>,
    ) -> Result<KeyPage, BackendError> {
        if let Some(cursor) = cursor {
            return Err(BackendError::new(format!(
                "kv-file: no page after {cursor:?}"
            )));
        }
        let keys = self.run(bucket, |store| store.list_keys()).await?;
        Ok(KeyPage { keys, cursor: None })
    }

    async fn compare_and_swap(
        &self,
        bucket: &str,
        key: &str,
        expected: Version,
        value: Vec<u8>,
    ) -> Result<Swap, BackendError> {
        let expected = match expected {
            Version::Absent => None,
            Version::Written(version) => Some(version),
        };
        let key = key.to_owned();
        let swap = self
            .run(bucket, move |store| store.swap(&key, expected, &value))
            .await?;
        Ok(match swap {
            file_store::Swap::Swapped => Swap::Swapped,
            file_store::Swap::Conflict(_) => Swap::Conflict,
        })
    }

    async fn increment(&self, bucket: &str, key: &str, delta: i64) -> Result<i64, BackendError> {
        let key = key.to_owned();
        self.run(bucket, move |store| store.increment(&key, delta))
            .await
    }
}

/// One empty store for one test, with what must live as long as it (folder, server).
struct Fixture {
    backend: Arc<dyn Backend>,
    // Dropped after the backend: the server first, then its folder.
    _redis: Option<RedisServer>,
    _dir: Option<TempDir>,
}

impl Fixture {
    async fn memory() -> Result<Self, Box<dyn Error + Send + Sync>> {
        Ok(Self {
            backend: Arc::new(MemoryBackend::new()),
            _redis: None,
            _dir: None,
        })
    }

    async fn redb() -> Result<Self, Box<dyn Error + Send + Sync>> {
        let dir = TempDir::new("redb")?;
        let backend = RedbBackend::open(dir.path().join("store.redb"))?;
        Ok(Self {
            backend: Arc::new(backend),
            _redis: None,
            _dir: Some(dir),
        })
    }

    async fn redis() -> Result<Self, Box<dyn Error + Send + Sync>> {
        let dir = TempDir::new("redis")?;
        let (server, backend) = RedisServer::start(dir.path()).await?;
        Ok(Self {
            backend: Arc::new(backend),
            _redis: Some(server),
            _dir: Some(dir),
        })
    }

    async fn kv_file() -> Result<Self, Box<dyn Error + Send + Sync>> {
        let dir = TempDir::new("kv-file")?;
        let backend = KvFileBackend {
            root: dir.path().to_owned(),
        };
        Ok(Self {
            backend: Arc::new(backend),
            _redis: None,
            _dir: Some(dir),
        })
    }
}

/// One test per case of [`cases`] on stores made by `$fixture`.
macro_rules! suite {
    ($fixture:path) => {
        suite!(
            $fixture;
            absent_keys_read_as_absent,
            set_get_exists_delete,
            buckets_are_separate,
            swap_on_the_version_read_succeeds,
            swap_on_a_stale_version_conflicts_without_writing,
            rewriting_the_same_value_changes_the_version,
            a_deleted_key_neither_swaps_nor_reuses_its_version,
            swap_from_absent_conflicts_while_present,
            swap_from_absent_while_absent_succeeds_exactly_once,
            increment_counts_from_absent_in_decimal_text,
            increment_refuses_non_integers_and_overflow_writing_nothing,
            concurrent_increments_sum_exactly,
            concurrent_swappers_lose_no_update,
            one_mib_values_round_trip,
            keys_of_any_text_round_trip,
            list_keys_pages_through_every_key,
        );
    };
    ($fixture:path; $($case:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() -> super::Outcome {
                let fixture = $fixture().await?;
                super::cases::$case(std::sync::Arc::clone(&fixture.backend)).await
            }
        )+
    };
}

mod memory {
    suite!(super::Fixture::memory);
}

mod redb {
    suite!(super::Fixture::redb);
}

mod redis {
    suite!(super::Fixture::redis);
}

mod kv_file {
    suite!(super::Fixture::kv_file);
}
