//! Pre-initialisation of the core with wasmtime's wizer: runs its `wizer-initialize` export
//! once, at build time, and snapshots its memory, so libphonenumber's metadata is parsed then
//! and never per request. Uses the host's own linker, so every import the core has is real
//! (the init function only touches std's hash seeds among them).

use crate::keyvalue::{KeyValueCtx, MemoryBackend};
use crate::sms::LogSms;
use crate::state::{State, linker};
use anyhow::Context as _;
use std::sync::Arc;
use wasmtime::{Config, Engine, Store};

/// Returns the pre-initialised form of the core component `core`. Wizer snapshots flat
/// components only: run this before composing.
pub async fn preinitialize(core: &[u8]) -> anyhow::Result<Vec<u8>> {
    let engine = Engine::new(&Config::new()).map_err(anyhow::Error::from)?;
    let linker = linker(&engine)?;
    let keyvalue = KeyValueCtx {
        backend: Arc::new(MemoryBackend::new()),
        stores: vec!["default".to_owned()].into(),
    };
    let mut store = Store::new(
        &engine,
        State::new(
            &[],
            crate::ConfigStore::default(),
            keyvalue,
            Arc::new(LogSms::new()),
        ),
    );
    let (snapshot, _) = wasmtime_wizer::Wizer::new()
        .init_func("wizer-initialize")
        // Keep the export: the world declares it, and composition expects what the world says.
        .keep_init_func(true)
        .run_component(&mut store, core, async |store, component| {
            linker.instantiate_async(store, component).await
        })
        .await
        .map_err(anyhow::Error::from)
        .context("pre-initialising the core")?;
    Ok(snapshot)
}
