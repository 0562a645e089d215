//! What only the file store has, against `std::fs` in a temporary directory: files left behind,
//! reopening, keys among foreign files, over-long keys, damaged files, the conflict's payload, and
//! locks (held, abandoned, overheld). The behaviour every key-value store shares (compare-and-swap,
//! increment, concurrent swappers, any key) is the host's conformance suite
//! (`host/src/keyvalue/conformance.rs`), which runs this store too.

use super::*;
use crate::fs::FsError;
use crate::std_dir::{StdDir, StdSystem, TempDir};
use std::cell::RefCell;
use std::fs::File;
use std::rc::Rc;
use std::time::{Duration, SystemTime};

type TestStore = Store<StdDir, StdSystem>;
type Outcome = Result<(), Box<dyn std::error::Error>>;

/// Waits long enough that a loaded machine does not make tests flaky.
fn patient() -> LockPolicy {
    LockPolicy {
        wait_at_most: Duration::from_secs(60),
        ..LockPolicy::default()
    }
}

fn open(dir: &TempDir, policy: LockPolicy) -> TestStore {
    Store::new(StdDir(dir.path().to_path_buf()), StdSystem::new(), policy)
}

fn files(dir: &TempDir) -> Result<Vec<String>, std::io::Error> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir.path())? {
        names.push(entry?.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    Ok(names)
}

fn other(message: &str) -> StoreError {
    StoreError::Other(message.into())
}

#[test]
fn writes_leave_only_value_files() -> Outcome {
    let dir = TempDir::new()?;
    let store = open(&dir, patient());
    store.set("a", b"one")?;
    store.set("user:o:ü/1", b"")?;
    store.increment("n", 1)?;
    let seen = store.read("a")?.ok_or("a vanished")?;
    assert_eq!(store.swap("a", Some(seen.version), b"two")?, Swap::Swapped);
    assert!(matches!(store.swap("a", None, b"x")?, Swap::Conflict(_)));
    store.delete("a")?;
    store.delete("a")?;
    // No locks, no temporaries.
    assert_eq!(files(&dir)?, ["kn", "kuser%3Ao%3A%C3%BC%2F1"]);
    Ok(())
}

#[test]
fn values_survive_reopening() -> Outcome {
    let dir = TempDir::new()?;
    open(&dir, patient()).set("k", b"v")?;
    assert_eq!(open(&dir, patient()).get("k")?, Some(b"v".to_vec()));
    Ok(())
}

#[test]
fn list_keys_names_every_key_and_skips_the_rest() -> Outcome {
    let dir = TempDir::new()?;
    let store = open(&dir, patient());
    let long = format!("jwks:https://issuer.example/{}", "p/".repeat(200));
    for key in ["b", "A", "", &long] {
        store.set(key, b"x")?;
    }
    // Leftovers of a crashed writer and files not written by the store.
    std::fs::write(dir.path().join(name::temp_name("kb", 1)), b"half a value")?;
    std::fs::write(
        dir.path().join(".tmp-00000000000000ff"),
        b"an older leftover",
    )?;
    std::fs::write(dir.path().join(name::lock_name("kb")), b"")?;
    std::fs::write(dir.path().join("README"), b"hello")?;
    std::fs::write(dir.path().join(format!("h{}", "0".repeat(64))), b"not ours")?;
    std::fs::create_dir(dir.path().join("kdir"))?;
    let mut expected = vec![String::new(), "A".into(), "b".into(), long.clone()];
    expected.sort();
    assert_eq!(store.list_keys()?, expected);
    assert_eq!(store.get(&long)?, Some(b"x".to_vec()));
    Ok(())
}

#[test]
fn over_long_keys_are_refused_by_every_operation() -> Outcome {
    let dir = TempDir::new()?;
    let store = open(&dir, patient());
    let key = "x".repeat(name::MAX_KEY_BYTES + 1);
    let refused = Err(other("key too long"));
    assert_eq!(store.get(&key), refused);
    assert_eq!(store.exists(&key).map(|_| None), refused);
    assert_eq!(store.set(&key, b"v").map(|()| None), refused);
    assert_eq!(store.delete(&key).map(|()| None), refused);
    assert_eq!(store.increment(&key, 1).map(|_| None), refused);
    assert_eq!(store.swap(&key, None, b"v").map(|_| None), refused);
    assert!(store.set(&"x".repeat(name::MAX_KEY_BYTES), b"v").is_ok());
    Ok(())
}

#[test]
fn damaged_value_files_are_errors_not_traps() -> Outcome {
    let dir = TempDir::new()?;
    let store = open(&dir, patient());
    std::fs::write(dir.path().join("kbad"), b"garbage")?;
    assert!(matches!(store.get("bad"), Err(StoreError::Other(m)) if m.contains("damaged")));
    assert!(matches!(store.set("bad", b"v"), Err(StoreError::Other(_))));
    assert_eq!(files(&dir)?, ["kbad"], "the lock was released");
    Ok(())
}

/// The store's own `Swap::Conflict` carries what the key holds now (the backend conformance
/// suite in the host checks the swap itself).
#[test]
fn a_conflict_carries_what_the_key_holds_now() -> Outcome {
    let dir = TempDir::new()?;
    let store = open(&dir, patient());
    assert_eq!(store.swap("k", None, b"1")?, Swap::Swapped);
    let Swap::Conflict(Some(seen)) = store.swap("k", None, b"x")? else {
        return Err("expected a conflict with the current value".into());
    };
    assert_eq!(seen.value, b"1");
    assert_eq!(Some(&seen), store.read("k")?.as_ref());

    // The snapshot from the conflict swaps; the stale one then conflicts with the new value.
    assert_eq!(store.swap("k", Some(seen.version), b"2")?, Swap::Swapped);
    assert!(
        matches!(store.swap("k", Some(seen.version), b"x")?, Swap::Conflict(Some(c)) if c.value == b"2")
    );

    // After a delete the conflict reports absence.
    let before = store.read("k")?.ok_or("k vanished")?;
    store.delete("k")?;
    assert_eq!(
        store.swap("k", Some(before.version), b"x")?,
        Swap::Conflict(None)
    );
    Ok(())
}

fn fresh_lock(dir: &TempDir, file: &str, taken_at: u64) -> std::io::Result<Vec<u8>> {
    let text = LockInfo {
        taken_at,
        owner: 42,
    }
    .encode();
    std::fs::write(dir.path().join(name::lock_name(file)), &text)?;
    Ok(text)
}

#[test]
fn a_held_lock_makes_writers_wait_then_answer_locked() -> Outcome {
    let dir = TempDir::new()?;
    let quick = LockPolicy {
        wait_at_most: Duration::from_millis(50),
        ..LockPolicy::default()
    };
    let store = open(&dir, quick);
    store.set("k", b"before")?;
    let text = fresh_lock(&dir, "kk", StdSystem::new().wall_nanos())?;

    let locked = Err(other("key is locked"));
    assert_eq!(store.set("k", b"after"), locked);
    assert_eq!(store.delete("k"), locked);
    assert_eq!(store.increment("k", 1).map(|_| ()), locked);
    assert_eq!(store.swap("k", None, b"x").map(|_| ()), locked);
    // Readers do not wait, and nobody removed the other holder's lock.
    assert_eq!(store.get("k")?, Some(b"before".to_vec()));
    assert_eq!(std::fs::read(dir.path().join(".lock-kk"))?, text);
    assert_eq!(store.set("other", b"v"), Ok(()));
    Ok(())
}

#[test]
fn a_writer_waits_for_a_lock_released_meanwhile() -> Outcome {
    let dir = TempDir::new()?;
    let store = open(&dir, patient());
    fresh_lock(&dir, "kk", StdSystem::new().wall_nanos())?;
    let lock = dir.path().join(".lock-kk");
    let releaser = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        std::fs::remove_file(lock)
    });
    store.set("k", b"v")?;
    releaser.join().map_err(|_| "releaser panicked")??;
    assert_eq!(store.get("k")?, Some(b"v".to_vec()));
    Ok(())
}

#[test]
fn an_abandoned_lock_is_broken() -> Outcome {
    let dir = TempDir::new()?;
    let store = open(&dir, patient());
    let eleven_seconds_ago = StdSystem::new().wall_nanos() - 11_000_000_000;
    fresh_lock(&dir, "kk", eleven_seconds_ago)?;
    store.set("k", b"v")?;
    assert_eq!(store.get("k")?, Some(b"v".to_vec()));
    assert_eq!(files(&dir)?, ["kk"]);
    Ok(())
}

#[test]
fn an_unreadable_lock_is_dated_by_its_modification_time() -> Outcome {
    let dir = TempDir::new()?;
    let quick = LockPolicy {
        wait_at_most: Duration::from_millis(50),
        ..LockPolicy::default()
    };
    let store = open(&dir, quick);
    let lock = dir.path().join(".lock-kk");
    let file = File::create(&lock)?;
    assert_eq!(
        store.set("k", b"v"),
        Err(other("key is locked")),
        "just created"
    );
    file.set_modified(SystemTime::now() - Duration::from_secs(11))?;
    drop(file);
    assert_eq!(store.set("k", b"v"), Ok(()));
    assert_eq!(files(&dir)?, ["kk"]);
    Ok(())
}

#[test]
fn an_abandoned_breaker_does_not_block_for_ever() -> Outcome {
    let dir = TempDir::new()?;
    let store = open(&dir, patient());
    let long_ago = StdSystem::new().wall_nanos() - 60_000_000_000;
    fresh_lock(&dir, "kk", long_ago)?;
    let breaker = LockInfo {
        taken_at: long_ago,
        owner: 7,
    };
    std::fs::write(dir.path().join(name::break_name("kk")), breaker.encode())?;
    store.set("k", b"v")?;
    assert_eq!(files(&dir)?, ["kk"]);
    Ok(())
}

#[test]
fn a_fresh_breaker_makes_others_wait() -> Outcome {
    let dir = TempDir::new()?;
    let quick = LockPolicy {
        wait_at_most: Duration::from_millis(50),
        ..LockPolicy::default()
    };
    let store = open(&dir, quick);
    let now = StdSystem::new().wall_nanos();
    fresh_lock(&dir, "kk", now - 60_000_000_000)?;
    let breaker = LockInfo {
        taken_at: now,
        owner: 7,
    };
    std::fs::write(dir.path().join(name::break_name("kk")), breaker.encode())?;
    assert_eq!(store.set("k", b"v"), Err(other("key is locked")));
    Ok(())
}

#[test]
fn a_holder_past_its_time_writes_nothing() -> Outcome {
    let dir = TempDir::new()?;
    let overheld = LockPolicy {
        hold_at_most: Duration::ZERO,
        ..patient()
    };
    let store = open(&dir, overheld);
    assert_eq!(
        store.set("k", b"v"),
        Err(other("kv-file: lock held too long; nothing written"))
    );
    assert_eq!(
        files(&dir)?,
        Vec::<String>::new(),
        "no value, lock or temporary"
    );
    Ok(())
}

const THREADS: usize = 8;
const ROUNDS: usize = 40;

/// Runs `work` on THREADS threads at once, each with its own store over the same directory.
fn in_parallel(
    dir: &TempDir,
    work: impl Fn(&TestStore) -> Result<(), StoreError> + Sync,
) -> Outcome {
    let start = std::sync::Barrier::new(THREADS);
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..THREADS)
            .map(|_| {
                scope.spawn(|| {
                    let store = open(dir, patient());
                    start.wait();
                    work(&store)
                })
            })
            .collect();
        for worker in workers {
            worker.join().map_err(|_| "worker panicked")??;
        }
        Ok(())
    })
}

/// Writers contending for one key (each thread its own instance over the directory) leave no
/// lock or temporary file behind; that no update is lost is the host's conformance suite's
/// `concurrent_swappers_lose_no_update`, run on this store too.
#[test]
fn contended_writers_leave_only_value_files() -> Outcome {
    let dir = TempDir::new()?;
    in_parallel(&dir, |store| {
        for _ in 0..ROUNDS {
            store.increment("n", 1)?;
            let mut seen = store.read("counter")?;
            while let Swap::Conflict(current) =
                store.swap("counter", seen.map(|s| s.version), b"v")?
            {
                seen = current;
            }
        }
        Ok(())
    })?;
    assert_eq!(files(&dir)?, ["kcounter", "kn"]);
    Ok(())
}

/// A [`StdDir`] that logs what changes the directory or reaches the disk, in order.
struct Recording {
    dir: StdDir,
    log: Rc<RefCell<Vec<String>>>,
}

impl Recording {
    fn note(&self, entry: String) {
        self.log.borrow_mut().push(entry);
    }
}

impl Dir for Recording {
    fn read(&self, name: &str) -> Result<Option<Vec<u8>>, FsError> {
        self.dir.read(name)
    }

    fn create_new(&self, name: &str, contents: &[u8], durable: bool) -> Result<bool, FsError> {
        let created = self.dir.create_new(name, contents, durable)?;
        let synced = if durable { " + sync" } else { "" };
        self.note(format!("create {name}{synced}"));
        Ok(created)
    }

    fn rename(&self, from: &str, to: &str) -> Result<(), FsError> {
        self.dir.rename(from, to)?;
        self.note(format!("rename {from} {to}"));
        Ok(())
    }

    fn remove(&self, name: &str) -> Result<bool, FsError> {
        let removed = self.dir.remove(name)?;
        self.note(format!("remove {name} {removed}"));
        Ok(removed)
    }

    fn modified(&self, name: &str) -> Result<Option<u64>, FsError> {
        self.dir.modified(name)
    }

    fn list(&self) -> Result<Vec<String>, FsError> {
        self.dir.list()
    }

    fn sync(&self) -> Result<(), FsError> {
        self.dir.sync()?;
        self.note("sync directory".into());
        Ok(())
    }
}

/// Every write syncs the new value's data before the rename that publishes it and, except an
/// increment, the directory after, and only then releases its lock and answers; a delete syncs
/// the directory when it removed something. Lock files are never synced.
#[test]
fn writes_are_durable_before_they_are_answered() -> Outcome {
    let dir = TempDir::new()?;
    let log = Rc::new(RefCell::new(Vec::new()));
    let store = Store::new(
        Recording {
            dir: StdDir(dir.path().to_path_buf()),
            log: Rc::clone(&log),
        },
        StdSystem::new(),
        patient(),
    );
    // `synced`: whether the directory is synced after the rename (not for an increment).
    let written =
        |log: &RefCell<Vec<String>>, synced: bool| -> Result<(), Box<dyn std::error::Error>> {
            let entries: Vec<String> = log.borrow_mut().drain(..).collect();
            let [lock, temp, rename, rest @ ..] = entries.as_slice() else {
                return Err(format!("unexpected steps: {entries:?}").into());
            };
            assert_eq!(lock, "create .lock-kk", "a lock is not synced");
            let temp = temp
                .strip_prefix("create ")
                .and_then(|t| t.strip_suffix(" + sync"))
                .ok_or(format!("temporary file not synced: {temp}"))?;
            assert!(temp.starts_with(".tmp-kk-"), "{temp}");
            assert_eq!(rename, &format!("rename {temp} kk"));
            let after: &[&str] = if synced {
                &["sync directory", "remove .lock-kk true"]
            } else {
                &["remove .lock-kk true"]
            };
            assert_eq!(rest, after);
            Ok(())
        };
    store.set("k", b"1")?;
    written(&log, true)?;
    let seen = store.read("k")?.ok_or("k vanished")?;
    assert_eq!(store.swap("k", Some(seen.version), b"2")?, Swap::Swapped);
    written(&log, true)?;
    store.increment("k", 1)?;
    written(&log, false)?;

    // A conflict writes nothing and syncs nothing.
    assert!(matches!(store.swap("k", None, b"x")?, Swap::Conflict(_)));
    assert_eq!(
        log.borrow_mut().drain(..).collect::<Vec<_>>(),
        ["create .lock-kk", "remove .lock-kk true"]
    );
    store.delete("k")?;
    assert_eq!(
        log.borrow_mut().drain(..).collect::<Vec<_>>(),
        [
            "create .lock-kk",
            "remove kk true",
            "sync directory",
            "remove .lock-kk true"
        ]
    );
    store.delete("k")?;
    assert_eq!(
        log.borrow_mut().drain(..).collect::<Vec<_>>(),
        ["create .lock-kk", "remove kk false", "remove .lock-kk true"]
    );
    Ok(())
}

/// A writer killed between writing its temporary file and renaming it leaves both the file and
/// its lock; the writer that breaks the abandoned lock removes that file too. A live holder's
/// temporary file is left alone.
#[test]
fn a_killed_writers_temporary_file_goes_with_its_lock() -> Outcome {
    let dir = TempDir::new()?;
    let quick = LockPolicy {
        wait_at_most: Duration::from_millis(50),
        ..LockPolicy::default()
    };
    let store = open(&dir, quick);
    let now = StdSystem::new().wall_nanos();
    let half = record::encode(9, "k", b"half a val");
    std::fs::write(dir.path().join(name::temp_name("kk", 42)), &half[..20])?;

    fresh_lock(&dir, "kk", now)?;
    assert_eq!(store.set("k", b"v"), Err(other("key is locked")));
    assert_eq!(files(&dir)?, [".lock-kk", ".tmp-kk-000000000000002a"]);

    fresh_lock(&dir, "kk", now - 11_000_000_000)?;
    store.set("k", b"v")?;
    assert_eq!(files(&dir)?, ["kk"]);
    assert_eq!(store.get("k")?, Some(b"v".to_vec()));
    Ok(())
}
