//! set-my-phone: ZITADEL's self-service phone API as a portable WebAssembly component.
//!
//! Everything here builds natively and is tested natively; only `component` (wasm32 only)
//! touches the generated WIT bindings and adapts them to the small traits the core uses.

pub mod api;
pub mod auth;
pub mod code;
pub mod config;
pub mod error;
pub mod guard;
pub mod http;
pub mod phone;
pub mod platform;
#[cfg(test)]
mod proptest_support;
pub mod record;
pub mod sms;
pub mod store;
pub mod time;

#[cfg(target_arch = "wasm32")]
mod component;
