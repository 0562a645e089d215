//! What only the `redb` store has: reopening, refusing foreign files, and group commit (batches
//! judged in order, concurrent writers sharing commits, a failed commit failing its batch). The
//! behaviour every store shares is the conformance suite (`super::super::conformance`).

use super::*;

use std::sync::{Condvar, Mutex, PoisonError};

use ::redb::StorageBackend;
use ::redb::backends::InMemoryBackend;

const B: &str = "default";

type Outcome = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// A fresh database file in its own temporary folder, removed on drop.
struct TempDb {
    dir: PathBuf,
}

impl TempDb {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "smp-redb-{name}-{}-{}",
            std::process::id(),
            rand::random::<u64>()
        ));
        Self { dir }
    }

    fn path(&self) -> PathBuf {
        self.dir.join("nested/store.redb")
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test]
async fn data_and_versions_survive_reopening() -> Result<(), BackendError> {
    let tmp = TempDb::new("reopen");
    let before = {
        let store = RedbBackend::open(tmp.path())?;
        store.set(B, "k", b"a".to_vec()).await?;
        store.set("other", "k", b"b".to_vec()).await?;
        let before = store.get(B, "k").await?;
        store.delete(B, "k").await?;
        store.set(B, "k", b"a".to_vec()).await?;
        before
    };
    let store = RedbBackend::open(tmp.path())?;
    assert_eq!(store.path(), tmp.path());
    let after = store.get(B, "k").await?;
    assert_eq!(after.value, Some(b"a".to_vec()));
    assert_ne!(after.version, before.version, "a version was reused");
    assert_eq!(
        store
            .compare_and_swap(B, "k", before.version, b"x".to_vec())
            .await?,
        Swap::Conflict
    );
    store.set(B, "k2", b"c".to_vec()).await?;
    assert_ne!(store.get(B, "k2").await?.version, after.version);
    assert_eq!(
        store
            .compare_and_swap(B, "k", after.version, b"x".to_vec())
            .await?,
        Swap::Swapped
    );
    assert_eq!(store.get("other", "k").await?.value, Some(b"b".to_vec()));
    Ok(())
}

#[test]
fn a_file_that_is_not_a_database_is_refused() {
    let tmp = TempDb::new("garbage");
    let path = tmp.path();
    std::fs::create_dir_all(path.parent().expect("has a parent")).expect("mkdir");
    std::fs::write(&path, b"not a redb file, certainly not").expect("write");
    assert!(RedbBackend::open(&path).is_err());
}

fn set(key: &str, value: &str) -> Op {
    Op::Set {
        bucket: B.into(),
        key: key.into(),
        value: value.into(),
    }
}

fn swap(key: &str, expected: Version, value: &str) -> Op {
    Op::Swap {
        bucket: B.into(),
        key: key.into(),
        expected,
        value: value.into(),
    }
}

fn increment(key: &str, delta: i64) -> Op {
    Op::Increment {
        bucket: B.into(),
        key: key.into(),
        delta,
    }
}

fn delete(key: &str) -> Op {
    Op::Delete {
        bucket: B.into(),
        key: key.into(),
    }
}

/// One batch, applied by the writer's own function: every compare-and-swap is judged against the
/// state that includes the batch's earlier operations, and an operation refused on its own
/// (a non-integer increment) fails alone.
#[tokio::test]
async fn a_batch_judges_each_operation_after_the_ones_before_it() -> Outcome {
    let tmp = TempDb::new("batch");
    let store = RedbBackend::open(tmp.path())?;
    store.set(B, "k", b"start".to_vec()).await?;
    let seen = store.get(B, "k").await?.version;

    let batch = [
        swap("k", seen, "winner"),
        swap("k", seen, "loser"),
        swap("new", Version::Absent, "first"),
        swap("new", Version::Absent, "second"),
        increment("k", 1),
        increment("n", 2),
        increment("n", 3),
        set("gone", "x"),
        delete("gone"),
        swap("gone", Version::Absent, "back"),
    ];
    let ops: Vec<&Op> = batch.iter().collect();
    let commits = AtomicU64::new(0);
    let answers = run_batch(&store.shared.db, &ops, &commits).answers;

    assert_eq!(answers.len(), batch.len());
    let mut answers = answers.into_iter();
    let mut next = || answers.next().ok_or("missing answer");
    assert_eq!(next()?, Ok(Done::Swap(Swap::Swapped)));
    assert_eq!(
        next()?,
        Ok(Done::Swap(Swap::Conflict)),
        "judged after the winner"
    );
    assert_eq!(next()?, Ok(Done::Swap(Swap::Swapped)));
    assert_eq!(next()?, Ok(Done::Swap(Swap::Conflict)), "no longer absent");
    assert!(next()?.is_err(), "\"winner\" is not an integer");
    assert_eq!(next()?, Ok(Done::Counted(2)));
    assert_eq!(next()?, Ok(Done::Counted(5)));
    assert_eq!(next()?, Ok(Done::Set));
    assert_eq!(next()?, Ok(Done::Deleted));
    assert_eq!(next()?, Ok(Done::Swap(Swap::Swapped)), "absent again");
    assert_eq!(
        commits.load(Ordering::Relaxed),
        1,
        "one commit for the batch"
    );

    assert_eq!(store.get(B, "k").await?.value, Some(b"winner".to_vec()));
    assert_eq!(store.get(B, "new").await?.value, Some(b"first".to_vec()));
    assert_eq!(store.get(B, "n").await?.value, Some(b"5".to_vec()));
    assert_eq!(store.get(B, "gone").await?.value, Some(b"back".to_vec()));

    // A batch that changes nothing commits nothing.
    let k = store.get(B, "k").await?.version;
    let idle = [swap("k", seen, "late"), delete("absent")];
    let ops: Vec<&Op> = idle.iter().collect();
    let answers = run_batch(&store.shared.db, &ops, &commits).answers;
    assert_eq!(answers, [Ok(Done::Swap(Swap::Conflict)), Ok(Done::Deleted)]);
    assert_eq!(commits.load(Ordering::Relaxed), 1);
    assert_eq!(store.get(B, "k").await?.version, k);
    Ok(())
}

/// Writers on many threads at once: every one is answered, and every answered write is in the
/// file when it is opened again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_are_all_answered_and_durable() -> Outcome {
    const TASKS: usize = 32;
    const ROUNDS: usize = 20;
    let tmp = TempDb::new("concurrent");
    let store = RedbBackend::open(tmp.path())?;
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..TASKS {
        let store = store.clone();
        tasks.spawn(async move {
            for round in 0..ROUNDS {
                let key = format!("t{task}-r{round}");
                store.set(B, &key, key.clone().into_bytes()).await?;
                store.increment(B, "total", 1).await?;
                // A read-modify-swap on a key every task shares, retried until it lands.
                loop {
                    let seen = store.get(B, "list").await?;
                    let mut list = seen.value.unwrap_or_default();
                    list.extend_from_slice(format!("{key};").as_bytes());
                    if store
                        .compare_and_swap(B, "list", seen.version, list)
                        .await?
                        == Swap::Swapped
                    {
                        break;
                    }
                }
            }
            Ok::<_, BackendError>(())
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined??;
    }
    drop(store);

    let store = RedbBackend::open(tmp.path())?;
    let total = store.get(B, "total").await?.value.ok_or("no total")?;
    assert_eq!(total, (TASKS * ROUNDS).to_string().into_bytes());
    let list = store.get(B, "list").await?.value.ok_or("no list")?;
    let list = String::from_utf8(list)?;
    let mut listed: Vec<&str> = list.split_terminator(';').collect();
    listed.sort_unstable();
    let mut expected = Vec::new();
    for task in 0..TASKS {
        for round in 0..ROUNDS {
            let key = format!("t{task}-r{round}");
            assert_eq!(
                store.get(B, &key).await?.value,
                Some(key.clone().into_bytes())
            );
            expected.push(key);
        }
    }
    expected.sort_unstable();
    assert_eq!(listed, expected, "a swap was lost or applied twice");
    Ok(())
}

/// Storage in memory whose syncs can be held (to queue writes behind a commit under way) and made
/// to fail.
#[derive(Debug, Default)]
struct Gate {
    state: Mutex<GateState>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct GateState {
    syncs: u64,
    hold_next: bool,
    holding: bool,
    fail_from: Option<u64>,
}

impl Gate {
    fn lock(&self) -> std::sync::MutexGuard<'_, GateState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Makes the next sync wait until [`Gate::release`].
    fn hold_next(&self) {
        self.lock().hold_next = true;
    }

    /// Waits until a sync is being held.
    fn wait_holding(&self) {
        let mut state = self.lock();
        while !state.holding {
            state = self
                .changed
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Lets the held sync finish; syncs after it fail when `fail_after` is set.
    fn release(&self, fail_after: bool) {
        let mut state = self.lock();
        if fail_after {
            state.fail_from = Some(state.syncs + 1);
        }
        state.holding = false;
        self.changed.notify_all();
    }

    fn syncs(&self) -> u64 {
        self.lock().syncs
    }
}

#[derive(Debug)]
struct GatedStorage {
    inner: InMemoryBackend,
    gate: Arc<Gate>,
}

impl StorageBackend for GatedStorage {
    fn len(&self) -> Result<u64, std::io::Error> {
        self.inner.len()
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), std::io::Error> {
        self.inner.read(offset, out)
    }

    fn set_len(&self, len: u64) -> Result<(), std::io::Error> {
        self.inner.set_len(len)
    }

    fn sync_data(&self) -> Result<(), std::io::Error> {
        let mut state = self.gate.lock();
        state.syncs += 1;
        let index = state.syncs;
        if state.hold_next {
            state.hold_next = false;
            state.holding = true;
            self.gate.changed.notify_all();
            while state.holding {
                state = self
                    .gate
                    .changed
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
            }
        }
        if state.fail_from.is_some_and(|from| index >= from) {
            return Err(std::io::Error::other("injected sync failure"));
        }
        drop(state);
        self.inner.sync_data()
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), std::io::Error> {
        self.inner.write(offset, data)
    }
}

fn gated() -> Result<(RedbBackend, Arc<Gate>), Box<dyn std::error::Error + Send + Sync>> {
    gated_with(IDLE_SYNC_DELAY)
}

/// A store on gated memory whose writer syncs counters after `idle_sync_delay` of idleness.
fn gated_with(
    idle_sync_delay: Duration,
) -> Result<(RedbBackend, Arc<Gate>), Box<dyn std::error::Error + Send + Sync>> {
    let gate = Arc::new(Gate::default());
    let db = Database::builder().create_with_backend(GatedStorage {
        inner: InMemoryBackend::new(),
        gate: Arc::clone(&gate),
    })?;
    Ok((
        RedbBackend::start(db, "memory".into(), idle_sync_delay)?,
        gate,
    ))
}

/// Writes queued while a commit is under way are committed together, once: fifty writes, one
/// commit, and far fewer syncs than writes. Both of two swaps from one version are answered, one
/// swapped and one in conflict.
#[tokio::test]
async fn writes_queued_during_a_commit_share_the_next_one() -> Outcome {
    const QUEUED: usize = 50;
    let (store, gate) = gated()?;
    store.set(B, "k", b"start".to_vec()).await?;
    let seen = store.get(B, "k").await?.version;

    gate.hold_next();
    let first = store.submit(set("first", "1"))?;
    // The gate's condition variable, not a sleep: the writer is inside its commit's sync.
    tokio::task::spawn_blocking({
        let gate = Arc::clone(&gate);
        move || gate.wait_holding()
    })
    .await?;
    let commits_before = store.commits();
    let syncs_before = gate.syncs();
    let mut answers = Vec::new();
    answers.push(store.submit(swap("k", seen, "winner"))?);
    answers.push(store.submit(swap("k", seen, "loser"))?);
    for i in 2..QUEUED {
        answers.push(store.submit(set(&format!("q{i}"), "v"))?);
    }
    gate.release(false);

    assert_eq!(first.await?, Ok(Done::Set));
    let mut done = Vec::new();
    for answer in answers {
        done.push(answer.await??);
    }
    assert_eq!(done[0], Done::Swap(Swap::Swapped));
    assert_eq!(done[1], Done::Swap(Swap::Conflict));
    assert!(done[2..].iter().all(|d| *d == Done::Set));
    assert_eq!(
        store.commits() - commits_before,
        2,
        "the held commit, then one for all {QUEUED} queued writes"
    );
    let syncs = gate.syncs() - syncs_before;
    assert!(syncs < 10, "{syncs} syncs for {QUEUED} writes");
    assert_eq!(store.get(B, "k").await?.value, Some(b"winner".to_vec()));
    assert_eq!(store.get(B, "q49").await?.value, Some(b"v".to_vec()));
    Ok(())
}

/// When a batch's commit fails, every write of the batch hears so; the commit before it, held
/// while they queued, succeeded.
#[tokio::test]
async fn a_failed_commit_fails_every_write_of_its_batch() -> Outcome {
    let (store, gate) = gated()?;
    gate.hold_next();
    let first = store.submit(set("first", "1"))?;
    tokio::task::spawn_blocking({
        let gate = Arc::clone(&gate);
        move || gate.wait_holding()
    })
    .await?;
    let queued = [
        store.submit(set("a", "1"))?,
        store.submit(swap("b", Version::Absent, "1"))?,
        store.submit(increment("c", 1))?,
    ];
    gate.release(true);
    assert_eq!(first.await?, Ok(Done::Set));
    for answer in queued {
        let error = answer
            .await?
            .err()
            .ok_or("a write of the failed batch succeeded")?;
        assert!(
            error.message().contains("commit failed"),
            "{}",
            error.message()
        );
    }
    Ok(())
}

/// Increments are answered without waiting for a sync; the writer syncs them once it has been
/// idle for its delay, after answering.
#[tokio::test]
async fn counters_are_answered_before_their_sync_and_synced_when_idle() -> Outcome {
    let (store, gate) = gated()?;
    let commits_before = store.commits();
    gate.hold_next();
    // Answered although the next sync is held: its batch committed without one.
    let answered = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        store.submit(increment("n", 1))?,
    )
    .await;
    let Ok(answered) = answered else {
        // Let the writer go, so that the store can close.
        gate.release(false);
        return Err("the increment waited for the held sync".into());
    };
    assert_eq!(answered?, Ok(Done::Counted(1)));
    // Then the idle writer syncs, and is held there.
    tokio::task::spawn_blocking({
        let gate = Arc::clone(&gate);
        move || gate.wait_holding()
    })
    .await?;
    gate.release(false);
    // A write after it waits for its own durable commit, as before.
    assert_eq!(store.submit(set("k", "v"))?.await?, Ok(Done::Set));
    assert_eq!(
        store.commits() - commits_before,
        2,
        "the idle sync, then the set's commit"
    );
    Ok(())
}

/// A write that comes before the idle delay is over makes the counters durable with its own
/// commit: one sync, not a sync for the counters that the write then waits behind. (The delay
/// is far longer than any scheduling hiccup, so that "before" holds on a busy machine.)
#[tokio::test]
async fn a_write_soon_after_counters_makes_them_durable_with_one_commit() -> Outcome {
    let (store, gate) = gated_with(Duration::from_secs(3600))?;
    let commits_before = store.commits();
    let syncs_before = gate.syncs();
    for n in 1..=5 {
        assert_eq!(
            store.submit(increment("n", 1))?.await?,
            Ok(Done::Counted(n))
        );
    }
    assert_eq!(gate.syncs(), syncs_before, "no sync for the increments");
    assert_eq!(store.submit(set("record", "v"))?.await?, Ok(Done::Set));
    assert_eq!(
        store.commits() - commits_before,
        1,
        "the set's commit alone"
    );
    Ok(())
}

/// A batch that commits nothing (here a swap in conflict) leaves the counters committed before it
/// awaiting their sync, which the idle writer then makes. (If the machine stalls for longer than
/// the delay between the two writes, the sync comes before the swap and the test still passes.)
#[tokio::test]
async fn counters_are_synced_when_idle_after_a_batch_that_commits_nothing() -> Outcome {
    let (store, gate) = gated_with(Duration::from_secs(1))?;
    assert_eq!(store.submit(set("k", "v"))?.await?, Ok(Done::Set));
    let syncs_before = gate.syncs();
    assert_eq!(
        store.submit(increment("n", 1))?.await?,
        Ok(Done::Counted(1))
    );
    assert_eq!(
        store.submit(swap("k", Version::Absent, "x"))?.await?,
        Ok(Done::Swap(Swap::Conflict))
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while gate.syncs() == syncs_before {
        if std::time::Instant::now() > deadline {
            return Err("the counter was never synced".into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

/// Cache entries (`auth:…`) are written and deleted like counters, without waiting for a sync;
/// other keys wait for theirs.
#[tokio::test]
async fn cache_entries_do_not_wait_for_a_sync_and_other_keys_do() -> Outcome {
    let (store, gate) = gated_with(Duration::from_secs(3600))?;
    let commits_before = store.commits();
    let syncs_before = gate.syncs();
    let entry = "auth:verified:00ff";
    assert_eq!(store.submit(set(entry, "v"))?.await?, Ok(Done::Set));
    assert_eq!(
        store.submit(delete("auth:jwks:01"))?.await?,
        Ok(Done::Deleted)
    );
    assert_eq!(
        (store.commits(), gate.syncs()),
        (commits_before, syncs_before)
    );
    assert_eq!(store.get(B, entry).await?.value, Some(b"v".to_vec()));
    // "auth" without its colon is no cache entry.
    assert_eq!(store.submit(set("author", "v"))?.await?, Ok(Done::Set));
    assert_eq!(store.commits() - commits_before, 1);
    assert!(gate.syncs() > syncs_before);
    Ok(())
}

/// Counters written without a sync are on disk after the store is closed.
#[tokio::test]
async fn counters_survive_closing_the_store() -> Outcome {
    let tmp = TempDb::new("counters");
    {
        let store = RedbBackend::open(tmp.path())?;
        for _ in 0..3 {
            store.increment(B, "n", 1).await?;
        }
    }
    let store = RedbBackend::open(tmp.path())?;
    assert_eq!(store.increment(B, "n", 0).await?, 3);
    Ok(())
}
