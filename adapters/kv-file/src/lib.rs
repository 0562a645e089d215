//! `wasi:keyvalue@0.2.0-draft2` (`store` and `atomics`, with compare-and-swap) over a preopened
//! `wasi:filesystem` directory, for hosts whose own draft2 store is missing or unusable
//! (`wasmtime serve`: fresh instance per request, requests run concurrently).
//!
//! Every instance coordinates through the file system only: a bucket is a directory, a key is a
//! file whose name encodes the key ([`name`]), a value file carries a version header ([`record`]),
//! and every write takes a per-key lock file created exclusively ([`lock`], [`store`]). The
//! algorithm runs against the small [`fs::Dir`] / [`fs::System`] traits, so it is tested natively
//! over `std::fs`; only the wasm32 modules touch WASI. The core links this crate directly when
//! built with the store inside (`wasi::open_bucket` and [`store::Store`]).

pub mod fs;
pub mod lock;
pub mod name;
pub mod record;
pub mod store;

// Also built for the host's key-value conformance suite, which runs this store over `std::fs`.
#[cfg(any(test, feature = "std-dir"))]
pub mod std_dir;

#[cfg(all(target_arch = "wasm32", feature = "component"))]
mod component;
#[cfg(target_arch = "wasm32")]
pub mod wasi;
