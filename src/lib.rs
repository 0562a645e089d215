//! set-my-phone: ZITADEL's self-service phone API as a portable WebAssembly component.
//!
//! Everything here builds natively and is tested natively; only `component` (wasm32 only)
//! touches the generated WIT bindings and adapts them to the small traits the core uses.

mod api;
mod auth;
mod config;
mod cors;
mod domain;
mod error;
mod http;
mod log;
mod number;
mod platform;
#[cfg(test)]
mod proptest_support;
mod record;
mod sms;
mod sms_text;
mod store;
#[cfg(test)]
mod test_support;
mod time;
mod zitadel;

// The surface a host adapter (the wasm32 `component` module, or a native embedding) needs: one
// call per HTTP request, over the traits the host implements.
pub use api::{Reply, handle};
pub use domain::Followup;
pub use error::Error;
pub use http::{MAX_BODY_BYTES, Request, Response};
pub use number::warm_up;
pub use platform::{Clock, Http, OpenError, Random, Services, StoreOpener};
pub use sms::{Message, SendError, Sms};
pub use store::{Cas, KeyValue, StoreError, SwapError};
pub use time::Timestamp;

/// JWT signature checks as the core runs them, timed in wasm by `bench/verify`; not an API.
#[doc(hidden)]
pub use auth::{Key, check_key_signature, check_signature, check_signature_with_library};

#[cfg(all(target_arch = "wasm32", feature = "component"))]
mod component;
