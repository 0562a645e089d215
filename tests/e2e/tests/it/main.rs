//! Integration tests: the built core component served by the reference host (a real wasmtime
//! embedding) and driven over real HTTP. One binary, so the component compiles once.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a failing test should stop loudly"
)]

mod support;
use set_my_phone_test_harness::tokens;

mod artifacts;
mod auth;
mod bad_input;
mod changes;
mod concurrency;
mod cors;
mod crash;
mod fake_http;
mod grpc;
mod grpc_web_text;
mod lifecycle;
mod logs;
mod oidc;
mod providers;
mod set_my_phone;
mod sms_limits;
mod spin;
mod wasmtime_serve;
mod zitadel;
