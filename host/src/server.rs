//! The HTTP server: compiles the core once, then runs every request on a warm instance or a new one.
//!
//! Instances are reused serially (`instances.rs`, like `wasmtime serve --max-instance-reuse-count`):
//! one request at a time, and only after a call that ended well and left no wasi:http resource behind;
//! each request gets its own HTTP context, deadlines and resources. New instances come
//! from wasmtime's pooling allocator (on by default): memories, tables and stacks of dropped
//! instances are reused instead of mapped anew. Shutdown is graceful: the listener closes, open
//! connections finish their requests, then [`Host::serve`] returns.
//!
//! The guest answers through `response-outparam::set` and may keep running afterwards (it sends the
//! SMS after responding). Each request's guest therefore runs in its own task; the response goes
//! out as soon as the guest sets it, and [`Host::idle`] waits for the work that follows.
//!
//! Every guest runs under the host's guest limits (`limits.rs`): a deadline for its answer (then the
//! guest limit for the work after it), whether it computes or waits on the host, and a memory
//! cap. A guest that breaks one, or traps, gets its client a google.rpc.Status answer.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::{Request, Response, StatusCode, header};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulConnection, GracefulShutdown};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};
use wasmtime::Store;
use wasmtime::component::ResourceTable;

use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::bindings::{Proxy, ProxyPre};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpView};

use crate::config_store::ConfigStore;
use crate::guest_tasks::GuestTasks;
use crate::instances::{DropReason, InstancePool, InstanceStats, ReuseStats, Warm};
use crate::keyvalue::KeyValueCtx;
use crate::limits::{self, Deadlines, Failure, GuestLimits, MemoryCap};
use crate::sms::SmsSender;
use crate::state::{SharedWallClock, State};
use crate::status_answers::StatusEncoding;

/// The compiled component with everything a request needs; serves HTTP.
pub struct Host {
    pub(crate) pre: ProxyPre<State>,
    pub(crate) env: Arc<[(String, String)]>,
    /// What the guest reads through `wasi:config/store`.
    pub(crate) config: ConfigStore,
    pub(crate) keyvalue: KeyValueCtx,
    pub(crate) sms: Arc<dyn SmsSender>,
    pub(crate) tasks: GuestTasks,
    pub(crate) limits: GuestLimits,
    pub(crate) shutdown_timeout: Duration,
    pub(crate) wall_clock: Option<SharedWallClock>,
    pub(crate) instances: Arc<InstancePool<Instance>>,
    /// Metrics, readiness and the admin listener (`admin.rs`).
    pub(crate) ops: crate::admin::AdminEndpoints,
    /// What `GET /` answers when set ([`HostBuilder::front_page`]).
    pub(crate) front_page: Option<Bytes>,
}

/// A store with its instance of the component, kept between requests.
pub(crate) struct Instance {
    store: Store<State>,
    proxy: Proxy,
}

impl Instance {
    /// Why this instance, whose call ended well, must not serve again, if it must not: it was
    /// refused memory, or it still holds a wasi:http resource (part of its request or response:
    /// an unfinished body would keep its client waiting, and the next request must not find it).
    /// Other resources, such as the stdout and stderr streams wasi-libc opens once and keeps, may
    /// stay.
    fn unfit(&mut self) -> Option<DropReason> {
        let state = self.store.data_mut();
        if state.memory.exceeded() {
            Some(DropReason::Memory)
        } else if holds_http_resources(&mut state.table) {
            Some(DropReason::ResourcesLeft)
        } else {
            None
        }
    }
}

/// Whether `table` holds a resource of wasi:http (requests, responses, bodies, their futures).
fn holds_http_resources(table: &mut ResourceTable) -> bool {
    use wasmtime_wasi_http::p2::body::{
        HostFutureTrailers, HostIncomingBody, HostIncomingBodyStream, HostOutgoingBody,
    };
    use wasmtime_wasi_http::p2::types::{
        HostFutureIncomingResponse, HostIncomingRequest, HostIncomingResponse, HostOutgoingRequest,
        HostOutgoingResponse, HostResponseOutparam,
    };
    table.iter_mut().any(|entry| {
        entry.is::<HostIncomingRequest>()
            || entry.is::<HostResponseOutparam>()
            || entry.is::<HostIncomingBody>()
            || entry.is::<HostIncomingBodyStream>()
            || entry.is::<HostFutureTrailers>()
            || entry.is::<HostOutgoingResponse>()
            || entry.is::<HostOutgoingBody>()
            || entry.is::<HostOutgoingRequest>()
            || entry.is::<HostIncomingResponse>()
            || entry.is::<HostFutureIncomingResponse>()
    })
}

impl Host {
    /// Serves HTTP/1.1 and HTTP/2 with prior knowledge (h2c) on `listener` until `shutdown`
    /// completes; then stops accepting and shuts connections down gracefully: requests in flight
    /// get their responses, idle connections close (HTTP/2 clients get a GOAWAY). Connections
    /// still open after the shutdown limit are closed.
    ///
    /// Guest tasks already started keep running to completion (see [`Host::idle`]).
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> anyhow::Result<()> {
        let admin = self.ops.start(&self)?;
        let graceful = GracefulShutdown::new();
        let mut connections = JoinSet::new();
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let connection = Arc::clone(&self).connection(stream, peer);
                        let watched = graceful.watch(connection);
                        connections.spawn(async move {
                            if let Err(err) = watched.await {
                                // Clients hanging up mid-request are routine.
                                tracing::debug!(message = "connection failed", %peer, error = %err);
                            }
                        });
                    }
                    Err(err) => {
                        // Usually out of file descriptors: back off instead of spinning.
                        tracing::warn!(message = "accept failed", error = %err);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
        drop(listener);
        self.ops.stopping();
        if tokio::time::timeout(self.shutdown_timeout, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!(
                message = "connections still open at the shutdown limit; closing them",
                limit_secs = self.shutdown_timeout.as_secs_f64()
            );
        }
        connections.shutdown().await;
        if let Some(admin) = admin {
            admin.stop().await;
        }
        Ok(())
    }

    /// One HTTP/1.1 or h2c connection, ready to be driven (and shut down gracefully).
    fn connection(
        self: Arc<Self>,
        stream: tokio::net::TcpStream,
        peer: SocketAddr,
    ) -> impl GracefulConnection<Error = Box<dyn std::error::Error + Send + Sync>> + Send + 'static
    {
        if let Err(err) = stream.set_nodelay(true) {
            tracing::debug!(message = "cannot disable Nagle", %peer, error = %err);
        }
        let service = hyper::service::service_fn(move |request| {
            let host = Arc::clone(&self);
            async move { Ok::<_, Infallible>(host.handle(request).await) }
        });
        auto::Builder::new(TokioExecutor::new())
            .serve_connection(TokioIo::new(stream), service)
            .into_owned()
    }

    /// Binds `127.0.0.1` on a free port and serves there in the background.
    pub async fn spawn_local(self) -> anyhow::Result<RunningHost> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        self.spawn_on(listener)
    }

    /// Serves on `listener` in the background.
    pub fn spawn_on(self, listener: TcpListener) -> anyhow::Result<RunningHost> {
        let addr = listener.local_addr()?;
        let host = Arc::new(self);
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(Arc::clone(&host).serve(listener, async {
            // A dropped sender means the same as a sent stop.
            let _ = stopped.await;
        }));
        Ok(RunningHost {
            addr,
            host,
            stop: Some(stop),
            server: Some(server),
        })
    }

    /// How many requests' guests are still running, counting work after their response.
    pub fn active_guest_tasks(&self) -> usize {
        self.tasks.active()
    }

    /// Waits until no guest is running, that is until every request so far has finished its
    /// after-response work (SMS sent and recorded).
    pub async fn idle(&self) {
        self.tasks.idle().await;
    }

    /// Runs one request on an idle instance, or a new one; answers when the guest sets the
    /// response, or for it when the guest fails or misses its deadline. This is what [`Host::serve`] calls
    /// per request; a program with its own HTTP server calls it (or mounts
    /// [`Host::into_service`]) with any request body.
    pub async fn handle<B>(&self, request: Request<B>) -> Response<HyperOutgoingBody>
    where
        B: hyper::body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        // Counted (metrics.rs) once its status goes out, or as cancelled if dropped before.
        let observation = self.ops.metrics.observe(&request);
        observation.answered(self.answer(request).await)
    }

    /// [`Host::handle`] without the metrics.
    async fn answer<B>(&self, request: Request<B>) -> Response<HyperOutgoingBody>
    where
        B: hyper::body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        if let Some(page) = &self.front_page
            && request.method() == hyper::Method::GET
            && request.uri().path() == "/"
        {
            return crate::status_answers::html(page.clone());
        }
        let request = request.map(|body| body.map_err(body_error));
        let format = StatusEncoding::of(&request);
        if request.uri().authority().is_none() && !request.headers().contains_key(header::HOST) {
            return format.response(StatusCode::BAD_REQUEST, 3, "missing Host header");
        }
        let guard = self.tasks.enter();
        let deadlines = Deadlines::start(&self.limits);
        let (mut store, warm_proxy, served) = match self.instances.take() {
            Some(Warm {
                instance: Instance { store, proxy },
                served,
            }) => (store, Some(proxy), served),
            None => (self.new_store(), None, 0),
        };
        begin_request(&mut store, &deadlines);
        let (sender, receiver) = oneshot::channel();
        let resources = (|| -> wasmtime::Result<_> {
            let mut http = store.data_mut().http();
            let request = http.new_incoming_request(Scheme::Http, request)?;
            let response = http.new_response_outparam(sender)?;
            Ok((request, response))
        })();
        let (request, response) = match resources {
            Ok(resources) => resources,
            Err(err) => {
                tracing::error!(message = "cannot hand the request to the guest", error = ?err);
                if let Some(proxy) = warm_proxy {
                    self.instances
                        .discard(Instance { store, proxy }, DropReason::Error);
                }
                return format.failure(Failure::Other, &self.limits);
            }
        };

        let pre = self.pre.clone();
        let instances = Arc::clone(&self.instances);
        let guest_deadlines = Arc::clone(&deadlines);
        tokio::spawn(async move {
            let _guard = guard;
            let deadlines = guest_deadlines;
            let mut instantiated = warm_proxy.is_some();
            let run = async {
                let proxy = match warm_proxy {
                    Some(proxy) => proxy,
                    None => {
                        let proxy = pre.instantiate_async(&mut store).await?;
                        instances.stats().count_created();
                        instantiated = true;
                        proxy
                    }
                };
                proxy
                    .wasi_http_incoming_handler()
                    .call_handle(&mut store, request, response)
                    .await?;
                wasmtime::Result::Ok(proxy)
            };
            // A computing guest traps at its deadline (epoch interruption); one waiting on the
            // host is dropped here, its call cut off mid-way.
            let ended = tokio::select! {
                ended = run => Some(ended),
                () = deadlines.passed() => None,
            };
            let failure = match ended {
                Some(Ok(proxy)) => {
                    let mut instance = Instance { store, proxy };
                    match instance.unfit() {
                        Some(reason) => instances.discard(instance, reason),
                        None => instances.give_back(Warm {
                            instance,
                            served: served.saturating_add(1),
                        }),
                    }
                    return;
                }
                Some(Err(err)) => {
                    let failure = Failure::of(&err, store.data().memory.exceeded());
                    tracing::warn!(
                        message = "guest stopped",
                        failure = failure.describe(),
                        error = ?err
                    );
                    failure
                }
                None => {
                    tracing::warn!(
                        message = "guest stopped",
                        failure = "deadline passed while it waited on the host"
                    );
                    Failure::Deadline
                }
            };
            deadlines.fail(failure);
            if instantiated {
                instances.stats().count_dropped(failure.into());
            }
            // Dropping the store drops the response slot of a guest that never answered, which
            // tells the waiting request; `deadlines` already says why.
            drop(store);
        });

        match tokio::time::timeout_at(deadlines.answer_by().into(), receiver).await {
            Ok(Ok(Ok(response))) => {
                deadlines.answered();
                response
            }
            Ok(Ok(Err(code))) => {
                deadlines.answered();
                tracing::warn!(message = "guest answered with an error", error = ?code);
                format.failure(Failure::Other, &self.limits)
            }
            // The guest ended (or dropped the outparam) without a response.
            Ok(Err(_)) => {
                let failure = deadlines.failure().unwrap_or_else(|| {
                    tracing::warn!(message = "guest gave no response");
                    Failure::Other
                });
                format.failure(failure, &self.limits)
            }
            // The guest task stops the guest at the same deadline.
            Err(_) => format.failure(Failure::Deadline, &self.limits),
        }
    }

    /// A store for a new instance, under the memory cap (which counts all the instance's
    /// requests together).
    fn new_store(&self) -> Store<State> {
        let mut state = self.new_state();
        state.memory = MemoryCap::new(self.limits.max_memory);
        let mut store = Store::new(self.pre.engine(), state);
        store.limiter(|state| &mut state.memory);
        store
    }

    /// What happened to instances so far: made, reused, dropped (by reason), idle.
    pub fn instance_stats(&self) -> InstanceStats {
        self.reuse_stats().snapshot()
    }

    /// The instance counters themselves, for metrics.
    pub(crate) fn reuse_stats(&self) -> &ReuseStats {
        self.instances.stats()
    }

    fn new_state(&self) -> State {
        let mut state = State::with_wall_clock(
            &self.env,
            self.config.clone(),
            self.keyvalue.clone(),
            Arc::clone(&self.sms),
            self.wall_clock.clone(),
        );
        state.hooks.metrics = Some(Arc::clone(&self.ops.metrics));
        state
    }
}

/// Readies `store` for a new request: a fresh HTTP context, and the request's deadlines (at the end
/// of every time slice a yield to other tasks, or a trap once the deadline has passed). The
/// resource table is empty: an instance that left something in it is not reused.
fn begin_request(store: &mut Store<State>, deadlines: &Arc<Deadlines>) {
    store.data_mut().http = WasiHttpCtx::new();
    let deadlines = Arc::clone(deadlines);
    store.epoch_deadline_callback(move |_| Ok(deadlines.on_epoch()));
    store.set_epoch_deadline(limits::SLICE_TICKS);
}

/// A request body's failure, as wasi:http reports it to the guest.
fn body_error<E: Into<Box<dyn std::error::Error + Send + Sync>>>(
    error: E,
) -> wasmtime_wasi_http::Error {
    match error.into().downcast::<hyper::Error>() {
        Ok(hyper) => wasmtime_wasi_http::Error::Hyper(*hyper),
        Err(other) => wasmtime_wasi_http::Error::InternalError(Some(other.to_string())),
    }
}

/// A [`Host`] serving in the background; stops serving when dropped.
pub struct RunningHost {
    addr: SocketAddr,
    host: Arc<Host>,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<anyhow::Result<()>>>,
}

impl RunningHost {
    /// Where the host listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL, e.g. `http://127.0.0.1:41234` (no trailing slash).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The host being served.
    pub fn host(&self) -> &Arc<Host> {
        &self.host
    }

    /// See [`Host::active_guest_tasks`].
    pub fn active_guest_tasks(&self) -> usize {
        self.host.active_guest_tasks()
    }

    /// See [`Host::idle`].
    pub async fn idle(&self) {
        self.host.idle().await;
    }

    /// Stops accepting, closes connections and waits for the server loop to end.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.server.take() {
            Some(server) => server.await.context("server task failed")?,
            None => Ok(()),
        }
    }
}

impl Drop for RunningHost {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}
