//! The key-value algorithm over one bucket directory, shared by every instance that opens it.
//!
//! - Reads (`get`, `exists`, `list-keys`, `cas::new`) take no lock: values are replaced by
//!   rename, so a reader sees a whole old value or a whole new one.
//! - Every write (`set`, `delete`, `swap`, `increment`) holds the key's lock file: taken with
//!   create + exclusive, waited for with short sleeps up to [`LockPolicy::wait_at_most`] (then
//!   `other("key is locked")`), broken when abandoned ([`LockPolicy::stale_after`]).
//! - A value is written to a fresh temporary file, synced, then renamed over the key's file, so
//!   it is stored whole or not at all; then the directory is synced, so the write is durable
//!   before it is answered.
//! - Compare-and-swap compares the version in the value file ([`crate::record`]) under the lock;
//!   an absent key is a version of its own.
//!
//! Syncs per write, and why each is there (nothing else is synced):
//! - `set`, `swap`: two. The temporary file's data, before the rename: otherwise
//!   the rename may reach the disk before the data, and a crash of the machine leaves the key's
//!   file empty or torn (the old value lost, the new one not stored). The directory, after the
//!   rename: a rename is durable only once the directory holding it is synced; answering
//!   earlier could lose an acknowledged write.
//! - `increment`: one, the data before the rename, so a counter is never torn. Its rename is
//!   made durable by the next synced write to the bucket's directory, not before it is answered:
//!   the core's counters (the limits on codes across accounts, five per SetMyPhone, creation
//!   claims) may lose the last moment's increments in a crash of the machine, which only lets a
//!   few more codes through, while a directory sync each made them 10 of a SetMyPhone's 12
//!   syncs (bench/README.md). A claim is still on disk before the record it guards: the
//!   record's write syncs the same directory. The reference host's redb store makes the same
//!   trade.
//! - `delete`: one, the directory after the unlink, for the same reason; none when the key was
//!   absent.
//! - Lock and break files: none. They only coordinate instances that are running; after a crash
//!   of the machine a lock that survived is broken as abandoned, one that did not is not needed.
//!
//! A writer killed while holding a lock leaves the lock and perhaps its temporary file, named
//! after the lock's owner ([`name::temp_name`]); whoever breaks the abandoned lock removes that
//! file first. Other stray files are never read as values (`list-keys` skips them).

use crate::fs::{Dir, StoreError, System};
use crate::lock::{self, LockInfo, LockPolicy};
use crate::name::{self, Entry};
use crate::record;

/// A value with the version it was read at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned {
    pub version: u64,
    pub value: Vec<u8>,
}

/// What a compare-and-swap did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Swap {
    /// The value was written.
    Swapped,
    /// The key had changed; nothing was written. Carries what the key holds now.
    Conflict(Option<Versioned>),
}

/// One bucket: a directory plus the system services and lock timing.
pub struct Store<D, S> {
    dir: D,
    system: S,
    policy: LockPolicy,
}

/// When a write's rename reaches the disk (the module's notes say why they differ).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Durability {
    /// Before the write is answered: `set` and `swap`.
    Answered,
    /// With the bucket's next synced write: counters.
    Counter,
}

/// Proof that the lock on a key is held (only [`Store::locked`] makes one).
struct Held {
    lock: String,
    owner: u64,
    since: u64,
}

impl<D: Dir, S: System> Store<D, S> {
    pub fn new(dir: D, system: S, policy: LockPolicy) -> Self {
        Self {
            dir,
            system,
            policy,
        }
    }

    /// The value of `key`, `None` when absent.
    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.read(key)?.map(|current| current.value))
    }

    /// Whether `key` has a value.
    pub fn exists(&self, key: &str) -> Result<bool, StoreError> {
        Ok(self.read(key)?.is_some())
    }

    /// The value of `key` with its version, `None` when absent (what a `cas` handle holds).
    pub fn read(&self, key: &str) -> Result<Option<Versioned>, StoreError> {
        let file = value_name(key)?;
        self.read_file(&file, key)
    }

    /// Every key in the bucket, sorted.
    pub fn list_keys(&self) -> Result<Vec<String>, StoreError> {
        let mut keys = Vec::new();
        for file in self.dir.list()? {
            match name::classify(&file) {
                Entry::Key(key) => keys.push(key),
                Entry::Hashed => {
                    // Deleted meanwhile, or not ours after all: not a key.
                    if let Some(bytes) = self.dir.read(&file)?
                        && let Ok(stored) = record::decode(bytes)
                        && name::value_name(&stored.key).is_ok_and(|expected| expected == file)
                    {
                        keys.push(stored.key);
                    }
                }
                Entry::Internal | Entry::Foreign => {}
            }
        }
        keys.sort_unstable();
        Ok(keys)
    }

    /// Stores `value` at `key`.
    pub fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        let file = value_name(key)?;
        self.locked(&file, |held| {
            let current = self.read_file(&file, key)?;
            let previous = current.map(|c| c.version);
            self.write(held, &file, key, value, previous, Durability::Answered)
        })
    }

    /// Removes `key` (nothing happens when it is absent).
    pub fn delete(&self, key: &str) -> Result<(), StoreError> {
        let file = value_name(key)?;
        self.locked(&file, |held| {
            self.check_held(held)?;
            if self.dir.remove(&file)? {
                // The removal is durable only once the directory is.
                self.dir.sync()?;
            }
            Ok(())
        })
    }

    /// Writes `value` at `key` only if the key is still at `expected` (`None`: still absent).
    pub fn swap(&self, key: &str, expected: Option<u64>, value: &[u8]) -> Result<Swap, StoreError> {
        let file = value_name(key)?;
        self.locked(&file, |held| {
            let current = self.read_file(&file, key)?;
            if current.as_ref().map(|c| c.version) != expected {
                return Ok(Swap::Conflict(current));
            }
            self.write(held, &file, key, value, expected, Durability::Answered)?;
            Ok(Swap::Swapped)
        })
    }

    /// Adds `delta` to the integer at `key` (absent counts as 0) and returns the new value.
    /// Integers are stored as decimal text, as the team's other stores do.
    pub fn increment(&self, key: &str, delta: i64) -> Result<i64, StoreError> {
        let file = value_name(key)?;
        self.locked(&file, |held| {
            let current = self.read_file(&file, key)?;
            let number = match &current {
                None => 0,
                Some(current) => std::str::from_utf8(&current.value)
                    .ok()
                    .and_then(|text| text.parse::<i64>().ok())
                    .ok_or_else(|| {
                        StoreError::Other(format!("kv-file: value at {key:?} is not an integer"))
                    })?,
            };
            let next = number.checked_add(delta).ok_or_else(|| {
                StoreError::Other(format!("kv-file: increment of {key:?} overflows"))
            })?;
            let version = current.map(|c| c.version);
            let text = next.to_string();
            self.write(
                held,
                &file,
                key,
                text.as_bytes(),
                version,
                Durability::Counter,
            )?;
            Ok(next)
        })
    }

    fn read_file(&self, file: &str, key: &str) -> Result<Option<Versioned>, StoreError> {
        let Some(bytes) = self.dir.read(file)? else {
            return Ok(None);
        };
        let stored = record::decode(bytes).map_err(|error| {
            StoreError::Other(format!("kv-file: value file {file} is damaged: {error}"))
        })?;
        if stored.key != key {
            return Err(StoreError::Other(format!(
                "kv-file: value file {file} holds another key"
            )));
        }
        Ok(Some(Versioned {
            version: stored.version,
            value: stored.value,
        }))
    }

    /// Replaces the value file whole: temporary file, its sync, rename, and for
    /// [`Durability::Answered`] the directory's sync. The new version differs from `previous`.
    fn write(
        &self,
        held: &Held,
        file: &str,
        key: &str,
        value: &[u8],
        previous: Option<u64>,
        durability: Durability,
    ) -> Result<(), StoreError> {
        let mut version = self.system.random_u64();
        while Some(version) == previous {
            version = self.system.random_u64();
        }
        let bytes = record::encode(version, key, value);
        let temp = name::temp_name(file, held.owner);
        // Synced: the data must be on disk before the name below points at it.
        if !self.dir.create_new(&temp, &bytes, true)? {
            return Err(StoreError::Other(format!(
                "kv-file: temporary file {temp} exists already"
            )));
        }
        if let Err(error) = self.check_held(held) {
            self.dir.remove(&temp).ok();
            return Err(error);
        }
        if let Err(error) = self.dir.rename(&temp, file) {
            self.dir.remove(&temp).ok();
            return Err(error.into());
        }
        // The rename is durable only once the directory is; the caller hears "done" after.
        if durability == Durability::Answered {
            self.dir.sync()?;
        }
        Ok(())
    }

    /// Runs `work` holding the lock on the value file `file`, and releases it afterwards.
    fn locked<T>(
        &self,
        file: &str,
        work: impl FnOnce(&Held) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let held = self.acquire(file)?;
        let outcome = work(&held);
        self.release(&held);
        outcome
    }

    fn acquire(&self, file: &str) -> Result<Held, StoreError> {
        let lock = name::lock_name(file);
        let owner = self.system.random_u64();
        let started = self.system.monotonic_nanos();
        let mut attempt = 0;
        loop {
            let info = LockInfo {
                taken_at: self.system.wall_nanos(),
                owner,
            };
            // Locks only coordinate running instances: no need to reach the disk.
            if self.dir.create_new(&lock, &info.encode(), false)? {
                return Ok(Held {
                    lock,
                    owner,
                    since: self.system.monotonic_nanos(),
                });
            }
            if self.is_stale(&lock)? && self.break_stale(file, &lock)? {
                continue;
            }
            let waited = self.system.monotonic_nanos().saturating_sub(started);
            if u128::from(waited) >= self.policy.wait_at_most.as_nanos() {
                return Err(StoreError::Other("key is locked".into()));
            }
            let pause = lock::backoff(attempt, self.system.random_u64());
            self.system
                .sleep(u64::try_from(pause.as_nanos()).unwrap_or(u64::MAX));
            attempt += 1;
        }
    }

    /// Whether the lock (or break) file `lock` exists and is abandoned.
    fn is_stale(&self, lock: &str) -> Result<bool, StoreError> {
        Ok(self.abandoned(lock)?.is_some())
    }

    /// `Some` when the lock (or break) file `lock` exists and is abandoned, with the owner its
    /// text names (`None` when it has no readable text: its writer never got to write a
    /// temporary file).
    fn abandoned(&self, lock: &str) -> Result<Option<Option<u64>>, StoreError> {
        let Some(bytes) = self.dir.read(lock)? else {
            return Ok(None);
        };
        let info = LockInfo::decode(&bytes);
        let modified_at = match info {
            Some(_) => None,
            None => self.dir.modified(lock)?,
        };
        let stale = lock::is_stale(
            self.system.wall_nanos(),
            info.map(|info| info.taken_at),
            modified_at,
            self.policy.stale_after,
        );
        Ok(stale.then_some(info.map(|info| info.owner)))
    }

    /// Removes the abandoned lock `lock` on `file`, unless someone else is doing so: breakers
    /// take the break file exclusively and check staleness again under it, so two waiters
    /// never both break (and one of them remove the other's fresh lock). True when removed.
    fn break_stale(&self, file: &str, lock: &str) -> Result<bool, StoreError> {
        let breaker = name::break_name(file);
        let info = LockInfo {
            taken_at: self.system.wall_nanos(),
            owner: self.system.random_u64(),
        };
        if !self.dir.create_new(&breaker, &info.encode(), false)? {
            // Someone is breaking it now; only a breaker that crashed leaves this file behind.
            if self.is_stale(&breaker)? {
                self.dir.remove(&breaker)?;
            }
            return Ok(false);
        }
        let removed = match self.abandoned(lock) {
            // The temporary file of the writer that abandoned the lock goes first, so that a
            // breaker killed in between leaves the lock for the next breaker, not a stray file.
            Ok(Some(owner)) => owner
                .map_or(Ok(false), |owner| {
                    self.dir.remove(&name::temp_name(file, owner))
                })
                .and_then(|_| self.dir.remove(lock))
                .map_err(StoreError::from),
            Ok(None) => Ok(false),
            Err(error) => Err(error),
        };
        let cleaned = self.dir.remove(&breaker);
        let removed = removed?;
        cleaned?;
        Ok(removed)
    }

    /// Removes the lock if it is still ours (if it was broken as abandoned, it may be someone
    /// else's by now). Failing to remove it is not reported: the write it guarded is done, and
    /// the lock will be broken as abandoned after [`LockPolicy::stale_after`].
    fn release(&self, held: &Held) {
        if let Ok(Some(bytes)) = self.dir.read(&held.lock)
            && LockInfo::decode(&bytes).is_some_and(|info| info.owner == held.owner)
        {
            self.dir.remove(&held.lock).ok();
        }
    }

    /// Refuses to write when the lock has been held so long that it may have been broken.
    fn check_held(&self, held: &Held) -> Result<(), StoreError> {
        let held_for = self.system.monotonic_nanos().saturating_sub(held.since);
        if u128::from(held_for) > self.policy.hold_at_most.as_nanos() {
            return Err(StoreError::Other(
                "kv-file: lock held too long; nothing written".into(),
            ));
        }
        Ok(())
    }
}

fn value_name(key: &str) -> Result<String, StoreError> {
    name::value_name(key).map_err(|name::KeyTooLong| StoreError::Other("key too long".into()))
}

#[cfg(test)]
mod tests;
