//! [`HostBuilder`]: what a [`Host`] runs (the component, its settings, store and SMS sender) and
//! under which limits; `build` compiles the component once.

use crate::config_store::ConfigStore;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use wasmtime::component::Component;
use wasmtime::{Cache, Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};
use wasmtime_wasi::HostWallClock;
use wasmtime_wasi_http::p2::bindings::ProxyPre;

use crate::admin::AdminEndpoints;
use crate::guest_tasks::GuestTasks;
use crate::instances::{self, InstancePool, ReuseSettings};
use crate::keyvalue::{Backend, KeyValueCtx, MemoryBackend};
use crate::limits::{self, GuestLimits};
use crate::metrics::{MeteredBackend, MeteredSms, Metrics};
use crate::server::Host;
use crate::sms::{LogSms, SmsSender};
use crate::state::{SharedWallClock, linker};

/// How long one request's guest may run, response and after-response work together.
const DEFAULT_GUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// How long shutdown waits for open connections to finish their requests.
const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);

/// Default number of guests the pooling allocator holds at once (requests running, and their
/// after-response work). Two cores serve a few thousand requests a second, each holding its
/// instance for a few milliseconds; the headroom covers guests waiting on a slow SMS provider.
const DEFAULT_POOL_INSTANCES: u32 = 128;

/// Bytes of each linear memory that a pooled slot keeps resident between instances, reset by
/// copying back only the pages the last instance dirtied (found with Linux's `PAGEMAP_SCAN`,
/// kernel 6.7 and later) instead of unmapping them. A fresh instance per request then takes no
/// page faults and sends no TLB shootdowns for the pre-initialised heap it touches again: on
/// these machines a fresh-instance GetMyPhone cost a fifth less CPU. Older kernels (and other
/// systems) reset the memory as before.
const KEEP_RESIDENT_BYTES: usize = 4 << 20;
/// The same for each table: the core's function tables are filled lazily, page by page, so a
/// table reset by unmapping costs each fresh instance page faults and TLB shootdowns again.
const TABLE_KEEP_RESIDENT_BYTES: usize = 1 << 20;

// Per guest: the core instances, linear memories and tables the pool holds. The core has one
// memory and a few core instances; an artifact composed with the SMS provider has two memories.
// Each memory slot reserves about 4 GiB of address space (not memory), so the default pool
// reserves about 1 TiB.
const CORE_INSTANCES_PER_GUEST: u32 = 16;
const MEMORIES_PER_GUEST: u32 = 2;
const TABLES_PER_GUEST: u32 = 4;

/// Configures and builds a [`Host`].
pub struct HostBuilder {
    wasm: PathBuf,
    env: Vec<(String, String)>,
    config: ConfigStore,
    backend: Option<Arc<dyn Backend>>,
    sms: Option<Arc<dyn SmsSender>>,
    stores: Vec<String>,
    cache: bool,
    guest_timeout: Duration,
    request_timeout: Duration,
    max_memory: usize,
    shutdown_timeout: Duration,
    pool_instances: Option<u32>,
    wall_clock: Option<SharedWallClock>,
    max_instance_reuse_count: u32,
    max_idle_instances: usize,
    idle_instance_timeout: Duration,
    admin_listen: Option<std::net::SocketAddr>,
    perfmap: bool,
    front_page: Option<String>,
}

impl HostBuilder {
    /// A host for the component at `wasm`, with an empty environment, a fresh [`MemoryBackend`],
    /// [`LogSms`], the single store `default`, the compilation cache on, 60 s for the guest to
    /// answer and to finish, 64 MiB of memory per guest, the pooling allocator on (128 guests
    /// at once), instances reused for up to 1,000 requests (at most 32 kept idle, for 10 s) and
    /// 30 s for connections to finish at shutdown.
    pub fn new(wasm: impl Into<PathBuf>) -> Self {
        Self {
            wasm: wasm.into(),
            env: Vec::new(),
            config: ConfigStore::default(),
            backend: None,
            sms: None,
            stores: vec!["default".to_owned()],
            cache: true,
            guest_timeout: DEFAULT_GUEST_TIMEOUT,
            request_timeout: DEFAULT_GUEST_TIMEOUT,
            max_memory: limits::DEFAULT_MAX_MEMORY,
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
            pool_instances: Some(DEFAULT_POOL_INSTANCES),
            wall_clock: None,
            max_instance_reuse_count: instances::DEFAULT_MAX_REUSE,
            max_idle_instances: instances::DEFAULT_MAX_IDLE,
            idle_instance_timeout: instances::DEFAULT_IDLE_TIMEOUT,
            admin_listen: None,
            perfmap: false,
            front_page: None,
        }
    }

    /// Adds one environment variable the guest sees.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Adds environment variables the guest sees.
    pub fn envs<K, V>(mut self, vars: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: Into<String>,
        V: Into<String>,
    {
        self.env
            .extend(vars.into_iter().map(|(k, v)| (k.into(), v.into())));
        self
    }

    /// Stores the guest's key-value data in `backend`.
    /// Sets `key` in the guest's `wasi:config/store` (settings by their lower-case names, such
    /// as `phone_code_secret`; the guest's environment overrides them).
    pub fn config(self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.config.set(key, value);
        self
    }

    /// Serves `wasi:config/store` from `store`, which the caller may change (or make fail)
    /// while the host runs.
    pub fn config_store(mut self, store: ConfigStore) -> Self {
        self.config = store;
        self
    }

    pub fn backend(mut self, backend: Arc<dyn Backend>) -> Self {
        self.backend = Some(backend);
        self
    }

    /// Sends the guest's SMS through `sms`.
    pub fn sms(mut self, sms: Arc<dyn SmsSender>) -> Self {
        self.sms = Some(sms);
        self
    }

    /// The store labels `wasi:keyvalue/store.open` accepts (replacing the default `default`).
    pub fn stores<S: Into<String>>(mut self, labels: impl IntoIterator<Item = S>) -> Self {
        self.stores = labels.into_iter().map(Into::into).collect();
        self
    }

    /// Whether compiled code is cached on disk (wasmtime's default cache) across processes.
    pub fn compilation_cache(mut self, enabled: bool) -> Self {
        self.cache = enabled;
        self
    }

    /// How long one request's guest may run in all, its work after the answer (the SMS)
    /// included, before it is stopped (default 60 s, never less than the request timeout),
    /// whether it computes or waits on the host.
    pub fn guest_timeout(mut self, limit: Duration) -> Self {
        self.guest_timeout = limit;
        self
    }

    /// How long one request's guest may take to answer (default 60 s, the guest limit; the
    /// binary's `--request-timeout` defaults to 10 s). Past it the guest is stopped, whether it
    /// computes or waits on the host, and the client gets 504 with google.rpc.Status
    /// `DEADLINE_EXCEEDED` (gRPC status 4).
    pub fn request_timeout(mut self, limit: Duration) -> Self {
        self.request_timeout = limit;
        self
    }

    /// How many bytes of memory (linear memories and tables together) one request's guest may
    /// hold (default 64 MiB; at most 4 GiB). A guest refused memory usually traps; its client
    /// then gets 500 with google.rpc.Status `INTERNAL` saying the service ran out of memory.
    pub fn max_memory(mut self, bytes: usize) -> Self {
        self.max_memory = bytes;
        self
    }

    /// Whether instances come from wasmtime's pooling allocator (default on), which reuses the
    /// memory of finished requests; off, every instance maps its memory anew.
    pub fn pooling_allocator(mut self, enabled: bool) -> Self {
        self.pool_instances =
            enabled.then(|| self.pool_instances.unwrap_or(DEFAULT_POOL_INSTANCES));
        self
    }

    /// How many guests the pooling allocator holds at once (default 128; turns pooling on).
    /// A request arriving while all are busy fails with 500.
    pub fn pool_instances(mut self, instances: u32) -> Self {
        self.pool_instances = Some(instances.max(1));
        self
    }

    /// How many requests one instance serves, one after the other, before it is dropped (default
    /// 1,000; at least 1, which gives every request a fresh instance), like `wasmtime serve
    /// --max-instance-reuse-count`. An instance is dropped sooner when its guest traps, misses
    /// its deadline, is refused memory or keeps a resource after its call. The memory cap counts
    /// all its requests together; each request gets its own deadlines and HTTP context.
    pub fn max_instance_reuse_count(mut self, requests: u32) -> Self {
        self.max_instance_reuse_count = requests;
        self
    }

    /// How many instances are kept idle for the next requests at most (default 32; 0 keeps
    /// none). An idle instance holds its memory and one of the pooling allocator's slots.
    pub fn max_idle_instances(mut self, instances: usize) -> Self {
        self.max_idle_instances = instances;
        self
    }

    /// How long an idle instance is kept before it is dropped and its memory returned
    /// (default 10 s).
    pub fn idle_instance_timeout(mut self, limit: Duration) -> Self {
        self.idle_instance_timeout = limit;
        self
    }

    /// How long [`Host::serve`] waits, once asked to stop, for open connections to finish their
    /// requests before it closes them (default 30 s).
    pub fn shutdown_timeout(mut self, limit: Duration) -> Self {
        self.shutdown_timeout = limit;
        self
    }

    /// The guest's `wasi:clocks/wall-clock` (the core's "now": code expiry, cooldowns, token
    /// lifetimes) reads `clock` instead of the system clock; for tests that move time forward
    /// rather than wait. The monotonic clock stays the system's.
    pub fn wall_clock(mut self, clock: impl HostWallClock + Sync + 'static) -> Self {
        self.wall_clock = Some(SharedWallClock(Arc::new(clock)));
        self
    }

    /// Serves the operator's endpoints on `addr` while the host serves (off by default):
    /// `GET /healthz`, `GET /readyz` (the store answers a read, the host is not stopping) and
    /// `GET /metrics` (Prometheus). The address is bound by [`build`](Self::build) (port 0: a
    /// free port, see [`Host::admin_addr`]).
    pub fn admin_listen(mut self, addr: std::net::SocketAddr) -> Self {
        self.admin_listen = Some(addr);
        self
    }

    /// Writes `/tmp/perf-<pid>.map` naming the guest's compiled functions, so that `perf`
    /// profiles of the host show the guest's Rust functions (off by default).
    /// An HTML page to answer `GET /` with, instead of the guest (development mode's "set my
    /// phone" screen, `web/index.html`). Off by default.
    pub fn front_page(mut self, html: impl Into<String>) -> Self {
        self.front_page = Some(html.into());
        self
    }

    pub fn perfmap(mut self, on: bool) -> Self {
        self.perfmap = on;
        self
    }

    /// Compiles the component and links every import it needs.
    pub fn build(self) -> anyhow::Result<Host> {
        anyhow::ensure!(
            (1..=limits::MAX_MAX_MEMORY).contains(&self.max_memory),
            "the memory limit must be from 1 byte to 4 GiB, not {} bytes",
            self.max_memory
        );
        let max_reuse = NonZeroU32::new(self.max_instance_reuse_count).context(
            "the instance reuse count must be at least 1 (1: a fresh instance per request)",
        )?;
        let mut config = Config::new();
        config.wasm_component_model(true);
        if self.perfmap {
            config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        // Compiled code checks the epoch at loop heads and function entries; see `new_store`.
        config.epoch_interruption(true);
        if let Some(instances) = self.pool_instances {
            let mut pool = PoolingAllocationConfig::new();
            pool.total_component_instances(instances)
                // No single memory grows past the cap of the whole guest (MemoryCap counts
                // them together); the address space reserved per slot stays as it is.
                .max_memory_size(self.max_memory)
                .total_core_instances(instances.saturating_mul(CORE_INSTANCES_PER_GUEST))
                .total_memories(instances.saturating_mul(MEMORIES_PER_GUEST))
                .total_tables(instances.saturating_mul(TABLES_PER_GUEST))
                .total_stacks(instances)
                .linear_memory_keep_resident(KEEP_RESIDENT_BYTES)
                .table_keep_resident(TABLE_KEEP_RESIDENT_BYTES)
                .pagemap_scan(wasmtime::Enabled::Auto);
            config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        }
        if self.cache {
            match Cache::from_file(None) {
                Ok(cache) => {
                    config.cache(Some(cache));
                }
                Err(err) => {
                    tracing::warn!(message = "compilation cache disabled", error = %err);
                }
            }
        }
        let engine = Engine::new(&config)?;
        limits::start_epoch_ticker(&engine)?;
        let component = Component::from_file(&engine, &self.wasm)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("loading component {}", self.wasm.display()))?;

        let linker = linker(&engine)?;
        let pre = ProxyPre::new(linker.instantiate_pre(&component)?)
            .map_err(anyhow::Error::from)
            .context("the component is not a wasi:http proxy")?;

        let metrics = Arc::new(Metrics::new());
        let backend = self
            .backend
            .unwrap_or_else(|| Arc::new(MemoryBackend::new()));
        let probed = self
            .stores
            .first()
            .cloned()
            .unwrap_or_else(|| "default".to_owned());
        let ops = AdminEndpoints::new(
            Arc::clone(&metrics),
            Arc::clone(&backend),
            probed,
            self.admin_listen,
        )?;
        let sms = self.sms.unwrap_or_else(|| Arc::new(LogSms::new()));
        // Every Backend swaps from absent exactly (its contract), so the guest may create a
        // record with one swap instead of its creation claim (docs/storage.md). A setting of
        // the operator's (config, or KV_CREATE in the environment, which wins) stays.
        self.config.set_default("kv_create", "swap");
        Ok(Host {
            pre,
            env: self.env.into(),
            config: self.config,
            keyvalue: KeyValueCtx {
                backend: Arc::new(MeteredBackend {
                    inner: backend,
                    metrics: Arc::clone(&metrics),
                }),
                stores: self.stores.into(),
            },
            sms: Arc::new(MeteredSms {
                inner: sms,
                metrics,
            }),
            tasks: GuestTasks::default(),
            limits: GuestLimits {
                request_timeout: self.request_timeout,
                guest_timeout: self.guest_timeout,
                max_memory: self.max_memory,
            },
            shutdown_timeout: self.shutdown_timeout,
            wall_clock: self.wall_clock,
            instances: Arc::new(InstancePool::new(ReuseSettings {
                max_reuse,
                max_idle: self.max_idle_instances,
                idle_timeout: self.idle_instance_timeout,
            })),
            ops,
            front_page: self.front_page.map(bytes::Bytes::from),
        })
    }
}
