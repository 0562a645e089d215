//! The SMS provider component: implements `set-my-phone:sms/sender` over
//! `wasi:http/outgoing-handler`. `SMS_PROVIDER` (read on every call) picks webhook, Twilio,
//! Twilio Verify, Amazon SNS, WhatsApp or none. Everything but the WIT glue (`component`, wasm32 only) is plain Rust, tested natively.

pub mod provider;
pub mod retry;
pub mod sns;
pub mod twilio;
pub mod twilio_verify;
pub mod webhook;
pub mod whatsapp;

#[cfg(target_arch = "wasm32")]
mod component;
