//! The host's integration tests, in one test binary (as wasmtime's `crates/wasi-http/tests/all`
//! does): wasmtime is linked once, not once per file, and the tests share one build of their
//! helpers (`common`) and of the misbehaving guest.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a failing test should stop loudly"
)]

mod cli;
mod common;
mod crash;
mod dev_identity;
mod embed;
mod limits;
mod ops;
mod reuse;
mod serve;
mod settings;
