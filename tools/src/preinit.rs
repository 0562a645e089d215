//! Pre-initialisation with wasmtime's wizer: runs the component's `wizer-initialize` export
//! once at build time and snapshots its memory, so libphonenumber's metadata is parsed here
//! and never again per request.

use anyhow::Context as _;
use wasmtime::component::{Linker, ResourceTable};
use wasmtime::{Config, Engine, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

struct State {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for State {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: Default::default(),
        }
    }
}

pub async fn initialize(component: &[u8]) -> anyhow::Result<Vec<u8>> {
    let config = Config::new();
    let engine = Engine::new(&config).map_err(anyhow::Error::from)?;
    let mut linker = Linker::<State>::new(&engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(anyhow::Error::from)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)
        .map_err(anyhow::Error::from)?;
    let state = State {
        wasi: WasiCtx::builder().inherit_stderr().build(),
        http: WasiHttpCtx::new(),
        table: ResourceTable::new(),
    };
    let mut store = Store::new(&engine, state);
    let (snapshot, _) = wasmtime_wizer::Wizer::new()
        .init_func("wizer-initialize")
        // Composed components keep exporting the init function; dropping it breaks them.
        .keep_init_func(true)
        .run_component(&mut store, component, async |store, component| {
            // Non-wasi imports (key-value for draft2 hosts) are never called during init.
            linker.define_unknown_imports_as_traps(component)?;
            linker.instantiate_async(store, component).await
        })
        .await
        .map_err(anyhow::Error::from)
        .context("pre-initialising")?;
    Ok(snapshot)
}
