//! Key-value for the guest: the storage [`Backend`] trait and the `wasi:keyvalue@0.2.0-draft2` glue.
//!
//! The guest sees named stores (labels such as `default`); each label is one bucket namespace in
//! the backend. Compare-and-swap works on version tokens: [`Backend::get`] answers the value with
//! its [`Version`], and [`Backend::compare_and_swap`] writes only while the key still has it.

#[cfg(test)]
mod conformance;
mod host;
mod memory;
mod redb;
mod redis;

use std::fmt;
use std::sync::Arc;

pub use memory::{Fault, MemoryBackend, MemoryStats};
pub use redb::RedbBackend;
pub use redis::RedisBackend;

pub(crate) use host::{KeyValue, KeyValueView};

/// Which write a key had when it was read; compare-and-swap succeeds only on the same version.
///
/// A key that does not exist has [`Version::Absent`]: a swap expecting `Absent` succeeds only if the
/// key is still absent. Backends must never hand out the same `Written` token twice for one key
/// (not even after a delete), otherwise a swap could succeed against a value it never saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Version {
    /// The key does not exist.
    Absent,
    /// The key holds the value of write number `n`.
    Written(u64),
}

/// A value as read, with the version a later compare-and-swap compares against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Versioned {
    /// The value, `None` when the key does not exist.
    pub value: Option<Vec<u8>>,
    /// The version of `value`.
    pub version: Version,
}

impl Versioned {
    /// A key that does not exist.
    pub fn absent() -> Self {
        Self {
            value: None,
            version: Version::Absent,
        }
    }
}

/// The outcome of [`Backend::compare_and_swap`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Swap {
    /// The key still had the expected version and now holds the new value.
    Swapped,
    /// The key changed since it was read; nothing was written (unless the backend is faulty).
    Conflict,
}

/// One page of keys.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyPage {
    /// Keys in this page, in the backend's order.
    pub keys: Vec<String>,
    /// Pass to the next [`Backend::list_keys`] call to continue; `None` on the last page.
    pub cursor: Option<String>,
}

/// A storage failure; the message reaches the guest as `error::other`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackendError {
    message: String,
}

impl BackendError {
    /// A failure described by `message`.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }

    /// What went wrong.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for BackendError {}

/// Storage behind the guest's key-value stores: [`MemoryBackend`], [`RedbBackend`] (a file) or
/// [`RedisBackend`] (shared by several hosts).
///
/// `bucket` is the store label the guest opened. Every operation must be atomic on its own;
/// `compare_and_swap` and `increment` must be atomic against every other writer of the same key,
/// including other processes sharing the storage. A swap from [`Version::Absent`] included: of
/// racing creators exactly one succeeds, which is why the host tells the guest it may create
/// records by one swap (`KV_CREATE=swap`, docs/storage.md).
#[async_trait::async_trait]
pub trait Backend: Send + Sync {
    /// Reads `key` with its current version.
    async fn get(&self, bucket: &str, key: &str) -> Result<Versioned, BackendError>;

    /// Writes `value` unconditionally.
    async fn set(&self, bucket: &str, key: &str, value: Vec<u8>) -> Result<(), BackendError>;

    /// Removes `key`; removing an absent key is not an error.
    async fn delete(&self, bucket: &str, key: &str) -> Result<(), BackendError>;

    /// Whether `key` exists.
    async fn exists(&self, bucket: &str, key: &str) -> Result<bool, BackendError>;

    /// One page of the bucket's keys, continuing after `cursor`.
    async fn list_keys(
        &self,
        bucket: &str,
        cursor: Option<String>,
    ) -> Result<KeyPage, BackendError>;

    /// Writes `value` only if `key` still has version `expected`.
    async fn compare_and_swap(
        &self,
        bucket: &str,
        key: &str,
        expected: Version,
        value: Vec<u8>,
    ) -> Result<Swap, BackendError>;

    /// Adds `delta` to the integer stored at `key` (absent counts as 0) and answers the new value.
    ///
    /// The integer is stored as its decimal ASCII form, as Redis `INCRBY` does.
    async fn increment(&self, bucket: &str, key: &str, delta: i64) -> Result<i64, BackendError>;
}

/// Per-host key-value settings shared by every request's store.
#[derive(Clone)]
pub(crate) struct KeyValueCtx {
    pub(crate) backend: Arc<dyn Backend>,
    pub(crate) stores: Arc<[String]>,
}

/// The host value behind a guest's `bucket` handle: the label it was opened with.
#[derive(Debug)]
pub struct Bucket {
    label: String,
}

/// The host value behind a guest's `cas` handle: the key and what it held when the handle was made.
#[derive(Debug)]
pub struct Cas {
    bucket: String,
    key: String,
    seen: Versioned,
}
