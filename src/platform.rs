//! What the core needs from its host besides storage and SMS: time, randomness and outgoing
//! HTTP (to the identity provider). The component implements these over wasi:clocks,
//! wasi:random and wasi:http; tests use fakes.

use crate::store::KeyValue;
use crate::time::Timestamp;
pub use set_my_phone_outgoing_http::{Answer, Failure, Method, Request, Url};
use std::time::Duration;

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
    pub open_store: &'a StoreOpener,
    pub clock: &'a dyn Clock,
    pub random: &'a dyn Random,
    /// Outgoing HTTP, to the identity provider.
    pub http: &'a dyn Http,
}
