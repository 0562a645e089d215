//! End-to-end tests of set-my-phone live in `tests/it/`: they serve the built component through
//! the reference host and `wasmtime serve` and drive it over real HTTP. This library is empty;
//! it exists because a Cargo package needs a library or binary target.
