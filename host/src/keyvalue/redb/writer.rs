//! The group-committing writer: one thread owns every write transaction; callers queue their
//! operation with a reply channel, and each batch is applied in order and committed once (see
//! the module above for the durability rules).

use super::*;

/// The writer thread and the queue into it.
#[derive(Debug)]
pub(super) struct Writer {
    pub(super) jobs: Option<mpsc::Sender<Job>>,
    pub(super) thread: Option<JoinHandle<()>>,
}

impl Drop for Writer {
    /// Closes the queue, then waits for the writer to answer what is queued and stop.
    fn drop(&mut self) {
        self.jobs.take();
        if let Some(thread) = self.thread.take() {
            // A writer that panicked has answered nobody since; its callers got errors already.
            let _ = thread.join();
        }
    }
}

/// One write, as queued for the writer.
#[derive(Debug)]
pub(super) enum Op {
    Set {
        bucket: String,
        key: String,
        value: Vec<u8>,
    },
    Delete {
        bucket: String,
        key: String,
    },
    Swap {
        bucket: String,
        key: String,
        expected: Version,
        value: Vec<u8>,
    },
    Increment {
        bucket: String,
        key: String,
        delta: i64,
    },
}

impl Op {
    /// Roughly how many bytes the operation adds to a transaction.
    fn size(&self) -> usize {
        match self {
            Self::Set { key, value, .. } | Self::Swap { key, value, .. } => key.len() + value.len(),
            Self::Delete { key, .. } | Self::Increment { key, .. } => key.len(),
        }
    }

    /// Whether the caller hears "done" only once the operation is on disk: not for counters,
    /// nor for a set or delete of a cache entry ([`CACHE_PREFIX`]), which a crash may only lose.
    fn waits_for_sync(&self) -> bool {
        match self {
            Self::Increment { .. } => false,
            Self::Set { key, .. } | Self::Delete { key, .. } => !key.starts_with(CACHE_PREFIX),
            Self::Swap { .. } => true,
        }
    }
}

/// Whether a batch of `ops` may commit without a sync: none of them waits for one.
fn unsynced_batch(ops: &[&Op]) -> bool {
    ops.iter().all(|op| !op.waits_for_sync())
}

/// What a write did, once its batch is durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Done {
    Set,
    Deleted,
    Swap(Swap),
    Counted(i64),
}

/// What a batch's transaction left in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Committed {
    /// A durable commit: it and every commit before it are on disk.
    Durably,
    /// A commit that awaits a later durable one.
    WithoutSync,
    /// Nothing: no operation wrote, or the transaction failed.
    Nothing,
}

impl Committed {
    /// Whether a commit awaits its sync after this batch, given whether one did before it. A
    /// batch that commits nothing (a swap in conflict, a delete of nothing) syncs nothing.
    fn leaves_unsynced(self, before: bool) -> bool {
        match self {
            Committed::Durably => false,
            Committed::WithoutSync => true,
            Committed::Nothing => before,
        }
    }
}

/// A batch's answers, one per operation, and what it committed.
pub(super) struct Ran {
    pub(super) answers: Vec<Result<Done, BackendError>>,
    pub(super) committed: Committed,
}

/// A queued write and where its answer goes.
#[derive(Debug)]
pub(super) struct Job {
    pub(super) op: Op,
    pub(super) reply: oneshot::Sender<Result<Done, BackendError>>,
}

/// What one operation did inside its batch's transaction.
pub(super) struct Applied {
    done: Done,
    /// Whether it changed anything (a batch of conflicts and no-op deletes is not committed).
    wrote: bool,
}

/// Why an operation failed.
pub(super) enum Failed {
    /// This operation was refused before it wrote anything; the rest of the batch goes on.
    Refused(BackendError),
    /// The transaction failed: every operation of the batch fails.
    Storage(BackendError),
}

/// Reads `key` of `bucket` inside a write transaction (seeing the transaction's own writes).
pub(super) fn read_in(
    txn: &WriteTransaction,
    bucket: &str,
    key: &str,
) -> Result<Versioned, Failed> {
    let name = table_name(bucket);
    let table = txn.open_table(definition(&name)).map_err(storage)?;
    let entry = table.get(key).map_err(storage)?;
    match entry {
        None => Ok(Versioned::absent()),
        Some(entry) => {
            let (version, value) = decode(key, entry.value()).map_err(Failed::Refused)?;
            Ok(Versioned {
                value: Some(value),
                version: Version::Written(version),
            })
        }
    }
}

/// Stores `value` at `key` of `bucket` under a fresh version, inside `txn`.
pub(super) fn write_in(
    txn: &WriteTransaction,
    bucket: &str,
    key: &str,
    value: &[u8],
) -> Result<(), Failed> {
    let version = {
        let mut meta = txn.open_table(META).map_err(storage)?;
        let last = meta
            .get(LAST_VERSION)
            .map_err(storage)?
            .map_or(0, |last| last.value());
        let next = last
            .checked_add(1)
            .ok_or_else(|| Failed::Storage(BackendError::new("redb: versions exhausted")))?;
        meta.insert(LAST_VERSION, next).map_err(storage)?;
        next
    };
    let name = table_name(bucket);
    let mut table = txn.open_table(definition(&name)).map_err(storage)?;
    table
        .insert(key, encode(version, value).as_slice())
        .map_err(storage)?;
    Ok(())
}

/// Applies one operation inside the batch's transaction.
pub(super) fn apply(txn: &WriteTransaction, op: &Op) -> Result<Applied, Failed> {
    match op {
        Op::Set { bucket, key, value } => {
            write_in(txn, bucket, key, value)?;
            Ok(Applied {
                done: Done::Set,
                wrote: true,
            })
        }
        Op::Delete { bucket, key } => {
            let name = table_name(bucket);
            let mut table = txn.open_table(definition(&name)).map_err(storage)?;
            let removed = table.remove(key.as_str()).map_err(storage)?.is_some();
            Ok(Applied {
                done: Done::Deleted,
                wrote: removed,
            })
        }
        Op::Swap {
            bucket,
            key,
            expected,
            value,
        } => {
            if read_in(txn, bucket, key)?.version != *expected {
                return Ok(Applied {
                    done: Done::Swap(Swap::Conflict),
                    wrote: false,
                });
            }
            write_in(txn, bucket, key, value)?;
            Ok(Applied {
                done: Done::Swap(Swap::Swapped),
                wrote: true,
            })
        }
        Op::Increment { bucket, key, delta } => {
            let current = match read_in(txn, bucket, key)?.value {
                None => 0,
                Some(value) => std::str::from_utf8(&value)
                    .ok()
                    .and_then(|text| text.parse::<i64>().ok())
                    .ok_or_else(|| {
                        Failed::Refused(BackendError::new(format!(
                            "value at {key:?} is not an integer"
                        )))
                    })?,
            };
            let next = current.checked_add(*delta).ok_or_else(|| {
                Failed::Refused(BackendError::new(format!("increment of {key:?} overflows")))
            })?;
            write_in(txn, bucket, key, next.to_string().as_bytes())?;
            Ok(Applied {
                done: Done::Counted(next),
                wrote: true,
            })
        }
    }
}

/// Applies `ops` in order in one write transaction and commits it once: durably, unless `ops` are
/// all increments and cache entries. Answers one result per operation; when the transaction
/// fails, every operation fails with its error. `commits` counts the durable commits made.
pub(super) fn run_batch(db: &Database, ops: &[&Op], commits: &AtomicU64) -> Ran {
    let unsynced = unsynced_batch(ops);
    let attempt = || -> Result<(Vec<Result<Done, BackendError>>, Committed), BackendError> {
        let mut txn = db.begin_write().map_err(db_error)?;
        if unsynced {
            txn.set_durability(Durability::None)
                .map_err(|err| BackendError::new(format!("redb: {err}")))?;
        }
        let mut answers = Vec::with_capacity(ops.len());
        let mut wrote = false;
        for op in ops {
            match apply(&txn, op) {
                Ok(applied) => {
                    wrote |= applied.wrote;
                    answers.push(Ok(applied.done));
                }
                Err(Failed::Refused(error)) => answers.push(Err(error)),
                // Dropping the transaction aborts it.
                Err(Failed::Storage(error)) => return Err(error),
            }
        }
        if !wrote {
            txn.abort().map_err(db_error)?;
            return Ok((answers, Committed::Nothing));
        }
        // Durability::Immediate, redb's default: durable on disk when `commit` returns (and so
        // is every earlier commit without a sync).
        txn.commit()
            .map_err(|err| BackendError::new(format!("redb: commit failed: {err}")))?;
        if unsynced {
            Ok((answers, Committed::WithoutSync))
        } else {
            commits.fetch_add(1, Ordering::Relaxed);
            Ok((answers, Committed::Durably))
        }
    };
    match attempt() {
        Ok((answers, committed)) => Ran { answers, committed },
        Err(error) => Ran {
            answers: ops.iter().map(|_| Err(error.clone())).collect(),
            committed: Committed::Nothing,
        },
    }
}

/// Makes every earlier commit durable with a durable commit that rewrites the last version handed
/// out (an empty transaction might not be written); whether it did.
pub(super) fn sync(db: &Database, commits: &AtomicU64) -> bool {
    let durable = (|| -> Result<(), BackendError> {
        let txn = db.begin_write().map_err(db_error)?;
        {
            let mut meta = txn.open_table(META).map_err(db_error)?;
            let last = meta
                .get(LAST_VERSION)
                .map_err(db_error)?
                .map_or(0, |value| value.value());
            meta.insert(LAST_VERSION, last).map_err(db_error)?;
        }
        txn.commit()
            .map_err(|err| BackendError::new(format!("redb: commit failed: {err}")))
    })();
    match durable {
        Ok(()) => {
            commits.fetch_add(1, Ordering::Relaxed);
            true
        }
        Err(error) => {
            tracing::warn!(
                message = "redb: counters not synced yet",
                error = error.message()
            );
            false
        }
    }
}

/// The writer thread: takes everything queued (up to the batch bounds), commits it as one batch,
/// answers every caller, and repeats until every sender is gone.
pub(super) fn write_loop(
    db: &Database,
    jobs: &mpsc::Receiver<Job>,
    commits: &AtomicU64,
    idle_sync_delay: Duration,
) {
    // Whether a commit without a sync awaits the next durable one.
    let mut unsynced = false;
    loop {
        let first = match jobs.try_recv() {
            Ok(job) => job,
            Err(mpsc::TryRecvError::Empty) if unsynced => {
                // Idle: make counters and cache entries durable, unless a write comes first.
                // Syncing the moment the queue ran dry made the request that had just
                // incremented wait for that sync with its next increment or its record (#23).
                match jobs.recv_timeout(idle_sync_delay) {
                    Ok(job) => job,
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        if sync(db, commits) {
                            unsynced = false;
                            continue;
                        }
                        // The disk refuses: the next write's commit tries again.
                        match jobs.recv() {
                            Ok(job) => job,
                            Err(_) => break,
                        }
                    }
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                }
            }
            Err(mpsc::TryRecvError::Empty) => match jobs.recv() {
                Ok(job) => job,
                Err(_) => break,
            },
            Err(mpsc::TryRecvError::Disconnected) => break,
        };
        let mut bytes = first.op.size();
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH_OPS && bytes < MAX_BATCH_BYTES {
            let Ok(job) = jobs.try_recv() else { break };
            bytes = bytes.saturating_add(job.op.size());
            batch.push(job);
        }
        let ops: Vec<&Op> = batch.iter().map(|job| &job.op).collect();
        let ran = run_batch(db, &ops, commits);
        // A durable commit also made every earlier one durable.
        unsynced = ran.committed.leaves_unsynced(unsynced);
        for (job, answer) in batch.into_iter().zip(ran.answers) {
            // A caller that stopped waiting (its request was cancelled) needs no answer.
            let _ = job.reply.send(answer);
        }
    }
    if unsynced {
        sync(db, commits);
    }
}
