//! One request's store data (WASI, wasi:http, key-value, SMS, settings and the memory cap) and
//! the linker that gives the core its imports from it.

use std::sync::Arc;
use std::time::Duration;

use wasmtime::Engine;
use wasmtime::component::{Linker, ResourceTable};
use wasmtime_wasi::{HostWallClock, WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::bindings;
use crate::config_store::{Config, ConfigStore, ConfigView};
use crate::keyvalue::{KeyValue, KeyValueCtx, KeyValueView};
use crate::limits::{self, MemoryCap};
use crate::metrics::OutgoingHooks;
use crate::sms::{Sms, SmsSender, SmsView};

/// A linker with everything the core imports: wasi p2, wasi:http, key-value and sms.
pub(crate) fn linker(engine: &Engine) -> anyhow::Result<Linker<State>> {
    let mut linker = Linker::<State>::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    bindings::store::add_to_linker::<State, KeyValue>(&mut linker, keyvalue_view)?;
    bindings::atomics::add_to_linker::<State, KeyValue>(&mut linker, keyvalue_view)?;
    bindings::sender::add_to_linker::<State, Sms>(&mut linker, sms_view)?;
    bindings::config_store::add_to_linker::<State, Config>(&mut linker, config_view)?;
    Ok(linker)
}

/// One request's store data.
pub(crate) struct State {
    pub(crate) wasi: WasiCtx,
    pub(crate) http: WasiHttpCtx,
    pub(crate) table: ResourceTable,
    pub(crate) keyvalue: KeyValueCtx,
    sms: Arc<dyn SmsSender>,
    config: ConfigStore,
    /// How outgoing HTTP is sent, and counted.
    pub(crate) hooks: OutgoingHooks,
    /// The store's resource limiter (installed by [`Host`]; not by pre-initialisation).
    pub(crate) memory: MemoryCap,
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
            hooks: &mut self.hooks,
        }
    }
}

fn keyvalue_view(state: &mut State) -> KeyValueView<'_> {
    KeyValueView {
        ctx: &state.keyvalue,
        table: &mut state.table,
    }
}

fn config_view(state: &mut State) -> ConfigView<'_> {
    ConfigView {
        store: &state.config,
    }
}

fn sms_view(state: &mut State) -> SmsView<'_> {
    SmsView {
        sender: state.sms.as_ref(),
    }
}

impl State {
    pub(crate) fn new(
        env: &[(String, String)],
        config: ConfigStore,
        keyvalue: KeyValueCtx,
        sms: Arc<dyn SmsSender>,
    ) -> State {
        Self::with_wall_clock(env, config, keyvalue, sms, None)
    }

    /// [`State::new`] whose guest reads `wall_clock` (the system clock when `None`).
    pub(crate) fn with_wall_clock(
        env: &[(String, String)],
        config: ConfigStore,
        keyvalue: KeyValueCtx,
        sms: Arc<dyn SmsSender>,
        wall_clock: Option<SharedWallClock>,
    ) -> State {
        let mut wasi = WasiCtx::builder();
        wasi.envs(env).inherit_stdout().inherit_stderr();
        if let Some(clock) = wall_clock {
            wasi.wall_clock(clock);
        }
        State {
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            keyvalue,
            sms,
            config,
            hooks: OutgoingHooks::default(),
            memory: MemoryCap::new(limits::MAX_MAX_MEMORY),
        }
    }
}

/// One wall clock shared by every request's WASI context.
#[derive(Clone)]
pub(crate) struct SharedWallClock(pub(crate) Arc<dyn HostWallClock + Sync>);

impl HostWallClock for SharedWallClock {
    fn resolution(&self) -> Duration {
        self.0.resolution()
    }

    fn now(&self) -> Duration {
        self.0.now()
    }
}
