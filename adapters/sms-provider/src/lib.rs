//! The SMS provider component: implements `set-my-phone:sms/sender` over
//! `wasi:http/outgoing-handler`. `SMS_PROVIDER` (read on every call) picks webhook, Twilio,
//! Twilio Verify, Amazon SNS, WhatsApp or none. Everything but the wasi side (`wasi` and the WIT
//! glue `component`, wasm32 only) is plain Rust, tested natively. The core links this crate
//! directly when built with the provider inside (`wasi::send`, `wasi::check`).

pub mod provider;
pub mod retry;
pub mod sns;
pub mod twilio;
pub mod twilio_verify;
pub mod webhook;
pub mod whatsapp;

#[cfg(all(target_arch = "wasm32", feature = "component"))]
mod component;
#[cfg(target_arch = "wasm32")]
pub mod wasi;
