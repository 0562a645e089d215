//! An in-memory [`Backend`] with true compare-and-swap and switchable fault injection for tests.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use super::{Backend, BackendError, KeyPage, Swap, Version, Versioned};

/// Keys per [`Backend::list_keys`] page.
const PAGE_SIZE: usize = 1000;

/// The message of every injected failure.
const INJECTED: &str = "injected fault";

/// A misbehaviour [`MemoryBackend`] can be switched to at run time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Fault {
    /// Behave correctly.
    #[default]
    None,
    /// A swap whose comparison succeeds writes the value and then reports a conflict anyway; a swap
    /// whose comparison fails reports a conflict without writing. This is Spin 4.0.2's Redis store.
    SwapWritesThenReportsFailure,
    /// A swap whose handle read the key as absent writes unconditionally and reports success, even
    /// when another writer created the key meanwhile; swaps from an existing value stay exact.
    /// This is Spin's default (SQLite) store, whose swap from absent is an upsert.
    SwapFromAbsentOverwrites,
    /// Reads (`get`, `exists`, `list-keys`, and the read behind `cas.new`) fail with
    /// `other("injected fault")`.
    FailGets,
    /// Writes (`set`, `delete`, `swap`, `increment`) fail with `other("injected fault")` and
    /// write nothing.
    FailSets,
}

/// Counters of what the backend was asked to do, for tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoryStats {
    /// Reads: `get`, `exists` and the read behind `cas.new`, including failed ones.
    pub gets: u64,
    /// Values stored or removed by any operation (set, delete, swap, increment).
    pub writes: u64,
    /// Compare-and-swap attempts, whatever their outcome.
    pub swaps: u64,
    /// Compare-and-swap attempts that wrote their value (even when a fault then reported failure).
    pub swap_writes: u64,
    /// Compare-and-swap attempts refused because the key had changed since it was read.
    pub conflicts: u64,
    /// The most reads that were waiting out the read latency at one time: above 1, requests
    /// overlapped (a host that served one request at a time stays at 1). Counted only while a
    /// read latency is set.
    pub peak_reads_in_flight: u64,
}

/// Key-value data held in memory: shared by every clone, lost when the last clone drops.
///
/// Clones share data, fault switch and counters, so a test keeps one clone to inspect the store
/// and hands another to the host.
#[derive(Clone, Debug, Default)]
pub struct MemoryBackend {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug, Default)]
struct Inner {
    buckets: BTreeMap<String, BTreeMap<String, Entry>>,
    /// The last version handed out; versions are unique across all keys and never reused.
    last_version: u64,
    fault: Fault,
    stats: MemoryStats,
    /// How long a read takes to come back after it was taken (a networked store's round trip).
    read_latency: Duration,
    /// Reads waiting out `read_latency` now.
    reads_in_flight: u64,
}

#[derive(Debug)]
struct Entry {
    value: Vec<u8>,
    version: u64,
}

impl Inner {
    fn entry(&self, bucket: &str, key: &str) -> Option<&Entry> {
        self.buckets.get(bucket).and_then(|keys| keys.get(key))
    }

    fn read(&self, bucket: &str, key: &str) -> Versioned {
        match self.entry(bucket, key) {
            Some(entry) => Versioned {
                value: Some(entry.value.clone()),
                version: Version::Written(entry.version),
            },
            None => Versioned::absent(),
        }
    }

    /// Stores `value` under a fresh version and counts the write.
    fn write(&mut self, bucket: &str, key: &str, value: Vec<u8>) {
        self.put(bucket, key, value);
        self.stats.writes += 1;
    }

    /// Stores `value` under a fresh version.
    fn put(&mut self, bucket: &str, key: &str, value: Vec<u8>) {
        self.last_version += 1;
        let entry = Entry {
            value,
            version: self.last_version,
        };
        self.buckets
            .entry(bucket.to_owned())
            .or_default()
            .insert(key.to_owned(), entry);
    }

    fn remove(&mut self, bucket: &str, key: &str) {
        if let Some(keys) = self.buckets.get_mut(bucket)
            && keys.remove(key).is_some()
        {
            self.stats.writes += 1;
        }
    }

    fn check_read(&mut self) -> Result<(), BackendError> {
        self.stats.gets += 1;
        match self.fault {
            Fault::FailGets => Err(BackendError::new(INJECTED)),
            _ => Ok(()),
        }
    }

    fn check_write(&self) -> Result<(), BackendError> {
        match self.fault {
            Fault::FailSets => Err(BackendError::new(INJECTED)),
            _ => Ok(()),
        }
    }
}

impl MemoryBackend {
    /// An empty store that behaves correctly.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // No code panics while holding the lock, and the data stays consistent if one did.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Switches to `fault` (or back to correct behaviour with [`Fault::None`]) for later calls.
    pub fn set_fault(&self, fault: Fault) {
        self.lock().fault = fault;
    }

    /// Delays every read's answer by `latency` after the value was read, as a store across a
    /// network does: requests then read, wait and write in overlapping windows, so tests see
    /// the write conflicts real stores produce (an in-memory read alone answers too fast).
    pub fn set_read_latency(&self, latency: Duration) {
        self.lock().read_latency = latency;
    }

    /// The fault in effect.
    pub fn fault(&self) -> Fault {
        self.lock().fault
    }

    /// What the backend has been asked to do so far.
    pub fn stats(&self) -> MemoryStats {
        self.lock().stats
    }

    /// The value at `key`, bypassing faults and counters.
    pub fn snapshot(&self, bucket: &str, key: &str) -> Option<Vec<u8>> {
        self.lock()
            .entry(bucket, key)
            .map(|entry| entry.value.clone())
    }

    /// Every key and value in `bucket`, in key order, bypassing faults and counters.
    pub fn entries(&self, bucket: &str) -> Vec<(String, Vec<u8>)> {
        self.lock()
            .buckets
            .get(bucket)
            .map(|keys| {
                keys.iter()
                    .map(|(key, entry)| (key.clone(), entry.value.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Stores `value` at `key` as test set-up: bypasses faults, does not count as a write.
    pub fn insert(&self, bucket: &str, key: &str, value: impl Into<Vec<u8>>) {
        self.lock().put(bucket, key, value.into());
    }
}

/// One read waiting out the latency; counts itself out when dropped.
struct InFlight<'a>(&'a MemoryBackend);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let mut inner = self.0.lock();
        inner.reads_in_flight = inner.reads_in_flight.saturating_sub(1);
    }
}

#[async_trait::async_trait]
impl Backend for MemoryBackend {
    async fn get(&self, bucket: &str, key: &str) -> Result<Versioned, BackendError> {
        let (read, latency) = {
            let mut inner = self.lock();
            inner.check_read()?;
            (inner.read(bucket, key), inner.read_latency)
        };
        if !latency.is_zero() {
            {
                let mut inner = self.lock();
                inner.reads_in_flight += 1;
                inner.stats.peak_reads_in_flight =
                    inner.stats.peak_reads_in_flight.max(inner.reads_in_flight);
            }
            // Counted down however the wait ends (a dropped request cancels it).
            let _waiting = InFlight(self);
            tokio::time::sleep(latency).await;
        }
        Ok(read)
    }

    async fn set(&self, bucket: &str, key: &str, value: Vec<u8>) -> Result<(), BackendError> {
        let mut inner = self.lock();
        inner.check_write()?;
        inner.write(bucket, key, value);
        Ok(())
    }

    async fn delete(&self, bucket: &str, key: &str) -> Result<(), BackendError> {
        let mut inner = self.lock();
        inner.check_write()?;
        inner.remove(bucket, key);
        Ok(())
    }

    async fn exists(&self, bucket: &str, key: &str) -> Result<bool, BackendError> {
        let mut inner = self.lock();
        inner.check_read()?;
        Ok(inner.entry(bucket, key).is_some())
    }

    async fn list_keys(
        &self,
        bucket: &str,
        cursor: Option<String>,
    ) -> Result<KeyPage, BackendError> {
        let mut inner = self.lock();
        inner.check_read()?;
        let Some(keys) = inner.buckets.get(bucket) else {
            return Ok(KeyPage::default());
        };
        let mut after = keys
            .keys()
            .filter(|key| cursor.as_ref().is_none_or(|cursor| *key > cursor));
        let page: Vec<String> = after.by_ref().take(PAGE_SIZE).cloned().collect();
        let cursor = match after.next() {
            Some(_) => page.last().cloned(),
            None => None,
        };
        Ok(KeyPage { keys: page, cursor })
    }

    async fn compare_and_swap(
        &self,
        bucket: &str,
        key: &str,
        expected: Version,
        value: Vec<u8>,
    ) -> Result<Swap, BackendError> {
        let mut inner = self.lock();
        inner.stats.swaps += 1;
        inner.check_write()?;
        let upsert = inner.fault == Fault::SwapFromAbsentOverwrites && expected == Version::Absent;
        if !upsert && inner.read(bucket, key).version != expected {
            inner.stats.conflicts += 1;
            return Ok(Swap::Conflict);
        }
        inner.write(bucket, key, value);
        inner.stats.swap_writes += 1;
        match inner.fault {
            Fault::SwapWritesThenReportsFailure => Ok(Swap::Conflict),
            _ => Ok(Swap::Swapped),
        }
    }

    async fn increment(&self, bucket: &str, key: &str, delta: i64) -> Result<i64, BackendError> {
        let mut inner = self.lock();
        inner.check_write()?;
        let current = match inner.entry(bucket, key) {
            None => 0,
            Some(entry) => std::str::from_utf8(&entry.value)
                .ok()
                .and_then(|text| text.parse::<i64>().ok())
                .ok_or_else(|| BackendError::new(format!("value at {key:?} is not an integer")))?,
        };
        let next = current
            .checked_add(delta)
            .ok_or_else(|| BackendError::new(format!("increment of {key:?} overflows")))?;
        inner.write(bucket, key, next.to_string().into_bytes());
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: &str = "default";

    fn injected() -> BackendError {
        BackendError::new(INJECTED)
    }

    #[tokio::test]
    async fn swap_writes_then_reports_failure_fault() -> Result<(), BackendError> {
        let store = MemoryBackend::new();
        store.insert(B, "k", b"a".to_vec());
        store.set_fault(Fault::SwapWritesThenReportsFailure);
        assert_eq!(store.fault(), Fault::SwapWritesThenReportsFailure);

        // Comparison succeeds: the value is written, yet a conflict is reported.
        let seen = store.get(B, "k").await?;
        assert_eq!(
            store
                .compare_and_swap(B, "k", seen.version, b"b".to_vec())
                .await?,
            Swap::Conflict
        );
        assert_eq!(store.snapshot(B, "k"), Some(b"b".to_vec()));

        // Comparison fails: nothing is written.
        assert_eq!(
            store
                .compare_and_swap(B, "k", seen.version, b"c".to_vec())
                .await?,
            Swap::Conflict
        );
        assert_eq!(store.snapshot(B, "k"), Some(b"b".to_vec()));
        assert_eq!(store.stats().swaps, 2);
        assert_eq!(store.stats().swap_writes, 1);

        store.set_fault(Fault::None);
        let seen = store.get(B, "k").await?;
        assert_eq!(
            store
                .compare_and_swap(B, "k", seen.version, b"d".to_vec())
                .await?,
            Swap::Swapped
        );
        Ok(())
    }

    #[tokio::test]
    async fn swap_from_absent_overwrites_fault() -> Result<(), BackendError> {
        let store = MemoryBackend::new();
        store.set_fault(Fault::SwapFromAbsentOverwrites);

        // Two creators both read "absent"; both are told they won, the second write stands.
        let first = store.get(B, "k").await?;
        let second = store.get(B, "k").await?;
        assert_eq!(
            store
                .compare_and_swap(B, "k", first.version, b"one".to_vec())
                .await?,
            Swap::Swapped
        );
        assert_eq!(
            store
                .compare_and_swap(B, "k", second.version, b"two".to_vec())
                .await?,
            Swap::Swapped
        );
        assert_eq!(store.snapshot(B, "k"), Some(b"two".to_vec()));

        // A swap from an existing value still compares.
        let seen = store.get(B, "k").await?;
        store.set(B, "k", b"three".to_vec()).await?;
        assert_eq!(
            store
                .compare_and_swap(B, "k", seen.version, b"four".to_vec())
                .await?,
            Swap::Conflict
        );
        assert_eq!(store.snapshot(B, "k"), Some(b"three".to_vec()));
        Ok(())
    }

    #[tokio::test]
    async fn fail_gets_fault_fails_reads_only() -> Result<(), BackendError> {
        let store = MemoryBackend::new();
        store.insert(B, "k", b"a".to_vec());
        store.set_fault(Fault::FailGets);
        assert_eq!(store.get(B, "k").await, Err(injected()));
        assert_eq!(store.exists(B, "k").await, Err(injected()));
        assert_eq!(store.list_keys(B, None).await, Err(injected()));
        store.set(B, "k", b"b".to_vec()).await?;
        assert_eq!(store.snapshot(B, "k"), Some(b"b".to_vec()));
        Ok(())
    }

    #[tokio::test]
    async fn fail_sets_fault_fails_writes_and_writes_nothing() -> Result<(), BackendError> {
        let store = MemoryBackend::new();
        store.insert(B, "k", b"a".to_vec());
        let seen = store.get(B, "k").await?;
        store.set_fault(Fault::FailSets);
        assert_eq!(store.set(B, "k", b"b".to_vec()).await, Err(injected()));
        assert_eq!(store.delete(B, "k").await, Err(injected()));
        assert_eq!(store.increment(B, "n", 1).await, Err(injected()));
        assert_eq!(
            store
                .compare_and_swap(B, "k", seen.version, b"c".to_vec())
                .await,
            Err(injected())
        );
        assert_eq!(store.snapshot(B, "k"), Some(b"a".to_vec()));
        assert_eq!(store.snapshot(B, "n"), None);
        assert_eq!(store.get(B, "k").await?.value, Some(b"a".to_vec()));
        assert_eq!(store.stats().writes, 0);
        Ok(())
    }

    #[tokio::test]
    async fn stats_count_reads_writes_and_swaps() -> Result<(), BackendError> {
        let store = MemoryBackend::new();
        store.set(B, "k", b"a".to_vec()).await?;
        let seen = store.get(B, "k").await?;
        store
            .compare_and_swap(B, "k", seen.version, b"b".to_vec())
            .await?;
        store
            .compare_and_swap(B, "k", seen.version, b"c".to_vec())
            .await?;
        store.delete(B, "k").await?;
        store.delete(B, "k").await?;
        assert_eq!(
            store.stats(),
            MemoryStats {
                gets: 1,
                writes: 3,
                swaps: 2,
                swap_writes: 1,
                conflicts: 1,
                peak_reads_in_flight: 0,
            }
        );
        Ok(())
    }
}
