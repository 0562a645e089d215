//! Reference host for set-my-phone: embeds wasmtime, serves HTTP and provides key-value and SMS.
//!
//! The core component is a `wasi:http/incoming-handler` proxy. Besides the standard `wasi:*`
//! interfaces it imports `wasi:keyvalue/{store,atomics}@0.2.0-draft2` (served here by a
//! [`keyvalue::Backend`]) and `set-my-phone:sms/sender` (served by an [`sms::SmsSender`]).
//!
//! ```no_run
//! # async fn run() -> anyhow::Result<()> {
//! use std::sync::Arc;
//! use set_my_phone_host::{HostBuilder, keyvalue::MemoryBackend, sms::RecordingSms};
//!
//! let store = MemoryBackend::new();
//! let sms = RecordingSms::new();
//! let running = HostBuilder::new("target/wasm32-wasip2/release/set_my_phone.wasm")
//!     .env("AUTH_ISSUER", "https://issuer.example")
//!     .backend(Arc::new(store.clone()))
//!     .sms(Arc::new(sms.clone()))
//!     .build()?
//!     .spawn_local()
//!     .await?;
//! // ... send requests to running.url() ...
//! running.idle().await; // the SMS is sent after the response: wait for it
//! assert_eq!(sms.messages().len(), 1);
//! # Ok(()) }
//! ```

mod admin;
mod bindings;
mod builder;
pub mod config_store;
pub mod embed;
mod guest_tasks;
mod instances;
pub mod keyvalue;
mod limits;
mod metrics;
pub mod preinit;
pub mod server;
pub mod sms;
mod sms_guard;
mod state;
mod status_answers;

pub use builder::HostBuilder;
pub use config_store::ConfigStore;
pub use instances::{DropReason, InstanceStats};
pub use server::{Host, RunningHost};
/// What [`HostBuilder::wall_clock`] takes: a clock for the guest's `wasi:clocks/wall-clock`.
pub use wasmtime_wasi::HostWallClock;
