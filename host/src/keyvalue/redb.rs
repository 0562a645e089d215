//! An embedded, file-backed [`Backend`] on `redb`: data and versions survive a restart.
//!
//! Each bucket is one table (`kv:<label>`) mapping the key to its version (8 bytes, big endian)
//! followed by the value. A `meta` table holds the last version handed out, so versions stay unique
//! across keys, deletes and restarts.
//!
//! Writes are group-committed: one writer thread owns every write transaction. Callers queue their
//! operation (set, delete, compare-and-swap, increment) with a reply channel; the writer takes
//! everything queued, applies it in order inside one write transaction (so each compare-and-swap
//! is judged against the state that includes the batch's earlier operations), commits once with a
//! durable commit (fsync), and only then answers every caller. Concurrent writers thus share one
//! fsync, and nobody hears "done" before their write is on disk. A failing commit fails every
//! operation of its batch. Reads run in read transactions beside the writer: a key's read on the
//! caller's thread, a page of keys on the blocking thread pool.
//!
//! Counters and cache entries are the exception: a batch of only increments, and sets and deletes
//! of keys under [`CACHE_PREFIX`], is committed without a sync and answered at once; the writer
//! then makes it durable with its next durable commit, or, when no other write comes within
//! [`IDLE_SYNC_DELAY`], with a commit of its own. The core's counters are the limits on codes
//! across accounts (five per SetMyPhone), creation claims and cache refetch slots: each is exact
//! while the process runs, and redb's commits are ordered, so a claim is on disk before the record
//! it guards. A crash can lose the increments of the last moment, which only lets a few more codes
//! through; waiting for a sync per increment halved SetMyPhone's throughput (bench/README.md). The
//! cache entries (`auth:<cache>:…`, docs/storage.md) hold what the core learnt from the issuer; a
//! lost one is learnt again. Waiting for a sync to remember a verified token made a user's first
//! request wait for two syncs where a later one waits for one.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use ::redb::{
    Database, Durability, ReadableDatabase as _, ReadableTable as _, TableDefinition, TableError,
    WriteTransaction,
};
use tokio::sync::oneshot;

use super::{Backend, BackendError, KeyPage, Swap, Version, Versioned};

/// Keys per [`Backend::list_keys`] page.
const PAGE_SIZE: usize = 1000;

/// Keys under this prefix are the core's caches (docs/storage.md): their writes do not wait for
/// a sync, as counters do not.
const CACHE_PREFIX: &str = "auth:";

/// The table of bookkeeping values.
const META: TableDefinition<'static, &str, u64> = TableDefinition::new("meta");

/// The key in [`META`] holding the last version handed out.
const LAST_VERSION: &str = "last_version";

/// The length of the version prefix of every stored entry.
const VERSION_LEN: usize = 8;

/// Most operations one commit carries; the rest wait for the next commit.
const MAX_BATCH_OPS: usize = 1024;

/// redb's own page cache. Its default (1 GiB) filled as the store grew, and the store keeps
/// growing: users' history is kept (in chunks), so the host's memory rose with it (the soak,
/// bench/README.md). Pages beyond it are read back through the OS page cache.
const CACHE_BYTES: usize = 32 << 20;

/// How long the writer waits, with counters or cache entries committed but not synced, for
/// another write (whose durable commit makes them durable too) before it syncs them on its own.
const IDLE_SYNC_DELAY: Duration = Duration::from_millis(10);

/// Most value bytes one commit carries (a single larger value still goes, alone), so that one
/// batch's transaction stays a bounded amount of memory.
const MAX_BATCH_BYTES: usize = 16 << 20;

/// Key-value data in one `redb` file; clones share the open database and its writer.
#[derive(Clone, Debug)]
pub struct RedbBackend {
    shared: Arc<Shared>,
}

/// What every clone of a [`RedbBackend`] shares. Fields drop in order: the writer last, so that
/// once the last clone is gone the file is closed (and may be opened again) when drop returns.
#[derive(Debug)]
struct Shared {
    db: Arc<Database>,
    path: PathBuf,
    commits: Arc<AtomicU64>,
    writer: Writer,
}

/// A failed `redb` operation, as the guest sees it.
fn db_error(err: impl std::fmt::Display) -> BackendError {
    BackendError::new(format!("redb: {err}"))
}

fn storage(err: impl std::fmt::Display) -> Failed {
    Failed::Storage(db_error(err))
}

/// The writer is gone (it panicked, or the store is being closed).
fn stopped() -> BackendError {
    BackendError::new("redb: the writer has stopped")
}

/// The table holding bucket `bucket`.
fn table_name(bucket: &str) -> String {
    format!("kv:{bucket}")
}

fn definition(name: &str) -> TableDefinition<'_, &'static str, &'static [u8]> {
    TableDefinition::new(name)
}

/// Splits a stored entry into its version and value.
fn decode(key: &str, entry: &[u8]) -> Result<(u64, Vec<u8>), BackendError> {
    let Some((version, value)) = entry.split_first_chunk::<VERSION_LEN>() else {
        return Err(BackendError::new(format!(
            "redb: entry at {key:?} is too short"
        )));
    };
    Ok((u64::from_be_bytes(*version), value.to_vec()))
}

fn encode(version: u64, value: &[u8]) -> Vec<u8> {
    let mut entry = Vec::with_capacity(VERSION_LEN + value.len());
    entry.extend_from_slice(&version.to_be_bytes());
    entry.extend_from_slice(value);
    entry
}

mod writer;
use writer::*;

impl RedbBackend {
    /// Opens the store at `path`, creating the file (and its missing parent folders) if needed.
    ///
    /// Fails when the file cannot be created, is not a `redb` database, is open in another
    /// process, or cannot be written.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, BackendError> {
        let path = path.as_ref();
        if let Some(parent) = path.parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent).map_err(|err| {
                BackendError::new(format!("cannot create {}: {err}", parent.display()))
            })?;
        }
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(path)
            .map_err(|err| BackendError::new(format!("cannot open {}: {err}", path.display())))?;
        Self::start(db, path.to_owned(), IDLE_SYNC_DELAY)
    }

    /// Prepares the open database `db` (found at `path`) and starts its writer, which syncs
    /// counters and cache entries on its own after `idle_sync_delay` without another write.
    fn start(db: Database, path: PathBuf, idle_sync_delay: Duration) -> Result<Self, BackendError> {
        let cannot_write = |err: &dyn std::fmt::Display| {
            BackendError::new(format!("cannot write {}: {err}", path.display()))
        };
        // Creates the bookkeeping table, and proves the file is writable now rather than at the
        // first request.
        let txn = db.begin_write().map_err(|err| cannot_write(&err))?;
        txn.open_table(META).map_err(|err| cannot_write(&err))?;
        txn.commit().map_err(|err| cannot_write(&err))?;

        let db = Arc::new(db);
        let commits = Arc::new(AtomicU64::new(0));
        let (jobs, queue) = mpsc::channel::<Job>();
        let thread = {
            let (db, commits) = (Arc::clone(&db), Arc::clone(&commits));
            std::thread::Builder::new()
                .name("redb-writer".into())
                .spawn(move || write_loop(&db, &queue, &commits, idle_sync_delay))
                .map_err(|err| {
                    BackendError::new(format!(
                        "cannot start the writer of {}: {err}",
                        path.display()
                    ))
                })?
        };
        Ok(Self {
            shared: Arc::new(Shared {
                db,
                path,
                commits,
                writer: Writer {
                    jobs: Some(jobs),
                    thread: Some(thread),
                },
            }),
        })
    }

    /// The file the data lives in.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// How many durable commits the writer has made since the store was opened. Writes that
    /// arrive while a commit is under way share the next one, so under concurrency this grows
    /// slower than the number of writes.
    pub fn commits(&self) -> u64 {
        self.shared.commits.load(Ordering::Relaxed)
    }

    /// Queues `op` for the writer; the receiver answers once its batch is durable (or failed).
    fn submit(
        &self,
        op: Op,
    ) -> Result<oneshot::Receiver<Result<Done, BackendError>>, BackendError> {
        let (reply, answer) = oneshot::channel();
        let jobs = self.shared.writer.jobs.as_ref().ok_or_else(stopped)?;
        jobs.send(Job { op, reply }).map_err(|_| stopped())?;
        Ok(answer)
    }

    /// Queues `op` and waits until its batch is committed.
    async fn write(&self, op: Op) -> Result<Done, BackendError> {
        let answer = self.submit(op)?;
        answer.await.map_err(|_| stopped())?
    }

    /// Runs `work` on the blocking thread pool: `redb` calls block on disk I/O and locks.
    async fn blocking<T, F>(&self, work: F) -> Result<T, BackendError>
    where
        T: Send + 'static,
        F: FnOnce(&Database) -> Result<T, BackendError> + Send + 'static,
    {
        let db = Arc::clone(&self.shared.db);
        tokio::task::spawn_blocking(move || work(&db))
            .await
            .map_err(|err| BackendError::new(format!("redb: task failed: {err}")))?
    }

    /// A point read (one key), on the caller's thread. It descends a few B-tree pages, which
    /// redb's cache and the OS page cache hold for a busy store: microseconds, less than handing
    /// the read to the blocking pool and back costs (bench/README.md, #23). Scans, which can walk
    /// many pages, go through [`RedbBackend::blocking`].
    async fn read_key<T>(
        &self,
        bucket: &str,
        work: impl FnOnce(&Table) -> Result<T, BackendError>,
    ) -> Result<Option<T>, BackendError> {
        let read = in_table(&self.shared.db, &table_name(bucket), work);
        // The hand-off used to make each request yield here. Without any yield a worker runs
        // requests back to back and looks for new socket events less often, which doubled
        // GetMyPhone's p99; Tokio polls them before it resumes a yielded task.
        tokio::task::yield_now().await;
        read
    }
}

/// A bucket's table as reads see it.
type Table = ::redb::ReadOnlyTable<&'static str, &'static [u8]>;

/// Runs `work` on the table `name` in a read transaction; `None` when the table does not exist.
fn in_table<T>(
    db: &Database,
    name: &str,
    work: impl FnOnce(&Table) -> Result<T, BackendError>,
) -> Result<Option<T>, BackendError> {
    let txn = db.begin_read().map_err(db_error)?;
    let table = match txn.open_table(definition(name)) {
        Ok(table) => table,
        Err(TableError::TableDoesNotExist(_)) => return Ok(None),
        Err(err) => return Err(db_error(err)),
    };
    work(&table).map(Some)
}

/// The writer answered an operation with another operation's kind of answer (a bug).
fn mismatched(done: Done) -> BackendError {
    BackendError::new(format!(
        "redb: the writer answered {done:?} to another kind of write"
    ))
}

#[async_trait::async_trait]
impl Backend for RedbBackend {
    async fn get(&self, bucket: &str, key: &str) -> Result<Versioned, BackendError> {
        let read = self
            .read_key(bucket, |table| match table.get(key) {
                Ok(None) => Ok(Versioned::absent()),
                Ok(Some(entry)) => {
                    let (version, value) = decode(key, entry.value())?;
                    Ok(Versioned {
                        value: Some(value),
                        version: Version::Written(version),
                    })
                }
                Err(err) => Err(db_error(err)),
            })
            .await?;
        Ok(read.unwrap_or_else(Versioned::absent))
    }

    async fn set(&self, bucket: &str, key: &str, value: Vec<u8>) -> Result<(), BackendError> {
        let op = Op::Set {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            value,
        };
        match self.write(op).await? {
            Done::Set => Ok(()),
            other => Err(mismatched(other)),
        }
    }

    async fn delete(&self, bucket: &str, key: &str) -> Result<(), BackendError> {
        let op = Op::Delete {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
        };
        match self.write(op).await? {
            Done::Deleted => Ok(()),
            other => Err(mismatched(other)),
        }
    }

    async fn exists(&self, bucket: &str, key: &str) -> Result<bool, BackendError> {
        let found = self
            .read_key(bucket, |table| {
                table
                    .get(key)
                    .map(|entry| entry.is_some())
                    .map_err(db_error)
            })
            .await?;
        Ok(found.unwrap_or(false))
    }

    async fn list_keys(
        &self,
        bucket: &str,
        cursor: Option<String>,
    ) -> Result<KeyPage, BackendError> {
        let name = table_name(bucket);
        let page = self
            .blocking(move |db| {
                in_table(db, &name, |table| {
                    let range = match &cursor {
                        Some(after) => table.range::<&str>((
                            std::ops::Bound::Excluded(after.as_str()),
                            std::ops::Bound::Unbounded,
                        )),
                        None => table.range::<&str>(..),
                    };
                    let mut keys = Vec::new();
                    let mut more = false;
                    for item in range.map_err(db_error)? {
                        let (key, _) = item.map_err(db_error)?;
                        if keys.len() == PAGE_SIZE {
                            more = true;
                            break;
                        }
                        keys.push(key.value().to_owned());
                    }
                    let cursor = if more { keys.last().cloned() } else { None };
                    Ok(KeyPage { keys, cursor })
                })
            })
            .await?;
        Ok(page.unwrap_or_default())
    }

    async fn compare_and_swap(
        &self,
        bucket: &str,
        key: &str,
        expected: Version,
        value: Vec<u8>,
    ) -> Result<Swap, BackendError> {
        let op = Op::Swap {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            expected,
            value,
        };
        match self.write(op).await? {
            Done::Swap(swap) => Ok(swap),
            other => Err(mismatched(other)),
        }
    }

    async fn increment(&self, bucket: &str, key: &str, delta: i64) -> Result<i64, BackendError> {
        let op = Op::Increment {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            delta,
        };
        match self.write(op).await? {
            Done::Counted(value) => Ok(value),
            other => Err(mismatched(other)),
        }
    }
}

#[cfg(test)]
mod tests;
