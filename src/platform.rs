//! What the core needs from its host: a key-value store with compare-and-swap, time,
//! randomness and outgoing HTTP (to the identity provider). The component implements these over
//! wasi:keyvalue, wasi:clocks, wasi:random and wasi:http; tests use fakes. The update loop over
//! the store is `crate::store`.

use crate::time::Timestamp;
pub use set_my_phone_outgoing_http::{Answer, Failure, Method, Request, Url};
use std::time::Duration;

/// A store failure; the text is for logs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreError(pub String);

/// Why a swap did not report success.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SwapError {
    /// The value changed since it was read (but a buggy store may still have written: docs/storage.md).
    Conflict,
    /// The store failed mid-swap: the write may or may not have happened.
    Store(StoreError),
}

/// A compare-and-swap on one key, as wasi:keyvalue/atomics draft2 offers it.
pub trait Cas {
    /// The value when the handle was made.
    fn current(&self) -> Option<&[u8]>;
    /// Writes `value` if the key still holds `current()`.
    fn swap(self: Box<Self>, value: Vec<u8>) -> Result<(), SwapError>;
}

pub trait KeyValue {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    fn start_swap(&self, key: &str) -> Result<Box<dyn Cas + '_>, StoreError>;
    /// Adds `delta` to the counter at `key` (absent = 0), atomically; answers the new value.
    fn increment(&self, key: &str, delta: i64) -> Result<i64, StoreError>;
    /// Removes `key`; removing an absent key is not an error.
    fn delete(&self, key: &str) -> Result<(), StoreError>;
    /// Writes `value` unconditionally (caches only: records change by compare-and-swap).
    fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreError>;
}

pub trait Http {
    /// Makes `request` within its timeout.
    fn exchange(&self, request: &Request) -> Result<Answer, Failure>;
}

pub trait Clock {
    /// Wall-clock time, for records and token validity.
    fn now(&self) -> Timestamp;
    /// Blocks the request for `duration` (back-off between compare-and-swap attempts).
    fn sleep(&self, duration: Duration);
}

pub trait Random {
    /// Fills `buf` from a cryptographically secure source.
    fn fill(&self, buf: &mut [u8]);

    fn u64(&self) -> u64 {
        let mut bytes = [0u8; 8];
        self.fill(&mut bytes);
        u64::from_le_bytes(bytes)
    }

    /// 16 random bytes, hex: identifies one request's update in the record.
    fn operation_id(&self) -> String {
        let mut bytes = [0u8; 16];
        self.fill(&mut bytes);
        hex::encode(bytes)
    }
}

/// Why a key-value store could not be opened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpenError {
    NoSuchStore,
    AccessDenied,
    Other(String),
}

/// Opens a key-value store by label.
pub type StoreOpener = dyn Fn(&str) -> Result<Box<dyn KeyValue>, OpenError>;

/// The host's settings store could not be read (`wasi:config` answered an error); the reason
/// holds no value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SettingsUnavailable(pub String);

/// A setting's value by its environment name (`AUTH_ISSUER`), wherever the host keeps it
/// (`set_my_phone_wire::settings` has the precedence); `Ok(None)` when unset.
pub type Settings<'a> = dyn Fn(&str) -> Result<Option<String>, SettingsUnavailable> + 'a;

/// Everything the API needs from its host.
pub struct Services<'a> {
    pub settings: &'a Settings<'a>,
    /// `Some(n)`: the settings are exactly those of every earlier request in this instance that
    /// had the same `n` (the component compares what the host passed), so what was parsed from
    /// them holds; `None`: not known, read them all.
    pub settings_generation: Option<u64>,
    pub open_store: &'a StoreOpener,
    pub clock: &'a dyn Clock,
    pub random: &'a dyn Random,
    /// Outgoing HTTP, to the identity provider.
    pub http: &'a dyn Http,
    /// The SMS provider: delivers codes after the answer, and checks codes it made itself.
    pub sms: &'a dyn crate::sms::Sms,
}
