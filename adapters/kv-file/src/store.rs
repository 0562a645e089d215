//! The key-value algorithm over one bucket directory, shared by every instance that opens it.
//!
//! - Reads (`get`, `exists`, `list-keys`, `cas::new`) take no lock: values are replaced by
//!   rename, so a reader sees a whole old value or a whole new one.
//! - Every write (`set`, `delete`, `swap`, `increment`) holds the key's lock file: taken with
//!   create + exclusive, waited for with short sleeps up to [`LockPolicy::wait_at_most`] (then
//!   `other("key is locked")`), broken when abandoned ([`LockPolicy::stale_after`]).
//! - A value is written to a fresh temporary file, synced, then renamed over the key's file, so
//!   it is stored whole or not at all.
//! - Compare-and-swap compares the version in the value file ([`crate::record`]) under the lock;
//!   an absent key is a version of its own.

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

/// Proof that the lock on a key is held (only [`Store::locked`] makes one).
struct Held {
    lock: String,
    owner: u64,
    since: u64,
}

/// How many fresh names to try for a temporary file before giving up.
const TEMP_ATTEMPTS: usize = 8;

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
            self.write(held, &file, key, value, current.map(|c| c.version))
        })
    }

    /// Removes `key` (nothing happens when it is absent).
    pub fn delete(&self, key: &str) -> Result<(), StoreError> {
        let file = value_name(key)?;
        self.locked(&file, |held| {
            self.check_held(held)?;
            self.dir.remove(&file)?;
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
            self.write(held, &file, key, value, expected)?;
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
            self.write(held, &file, key, next.to_string().as_bytes(), version)?;
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

    /// Replaces the value file whole: temporary file, sync, rename. The new version differs
    /// from `previous`.
    fn write(
        &self,
        held: &Held,
        file: &str,
        key: &str,
        value: &[u8],
        previous: Option<u64>,
    ) -> Result<(), StoreError> {
        let mut version = self.system.random_u64();
        while Some(version) == previous {
            version = self.system.random_u64();
        }
        let bytes = record::encode(version, key, value);
        let temp = self.create_temp(&bytes)?;
        if let Err(error) = self.check_held(held) {
            self.dir.remove(&temp).ok();
            return Err(error);
        }
        if let Err(error) = self.dir.rename(&temp, file) {
            self.dir.remove(&temp).ok();
            return Err(error.into());
        }
        Ok(())
    }

    fn create_temp(&self, bytes: &[u8]) -> Result<String, StoreError> {
        for _ in 0..TEMP_ATTEMPTS {
            let temp = name::temp_name(self.system.random_u64());
            if self.dir.create_new(&temp, bytes, true)? {
                return Ok(temp);
            }
        }
        Err(StoreError::Other(
            "kv-file: no free name for a temporary file".into(),
        ))
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
        let Some(bytes) = self.dir.read(lock)? else {
            return Ok(false);
        };
        let taken_at = LockInfo::decode(&bytes).map(|info| info.taken_at);
        let modified_at = match taken_at {
            Some(_) => None,
            None => self.dir.modified(lock)?,
        };
        Ok(lock::is_stale(
            self.system.wall_nanos(),
            taken_at,
            modified_at,
            self.policy.stale_after,
        ))
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
        let removed = match self.is_stale(lock) {
            Ok(true) => self.dir.remove(lock).map_err(StoreError::from),
            Ok(false) => Ok(false),
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
