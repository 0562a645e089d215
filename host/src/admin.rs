//! The operator's listener (`--admin-listen`, [`crate::HostBuilder::admin_listen`]), apart from
//! the API's: `GET /healthz` (the process runs), `GET /readyz` (the component is loaded, the host
//! is not stopping and the store answers a real read in time) and `GET /metrics` (Prometheus,
//! `metrics.rs`), and the SMS-pumping guard's blocks (`sms_guard.rs`: list, lift). Plain
//! HTTP/1.1 and h2c; nothing here reaches the component. Bind it where only operators reach it.
//!
//! `server.rs` and this module name each other on purpose: a `Host` owns its admin endpoints
//! (built with it, so a bad address fails the build), and the listener answers from that host.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode, header};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};

use crate::keyvalue::Backend;
use crate::metrics::{self, Metrics};
use crate::server::Host;

/// How long `/readyz` waits for the store: less than a Kubernetes probe's default 1 s timeout
/// plus the time to answer, so a slow store fails the probe with a reason rather than silence.
pub(crate) const READY_STORE_TIMEOUT: Duration = Duration::from_millis(800);

/// The key `/readyz` reads (it never exists; reading it is the round trip).
const READY_KEY: &str = "set-my-phone:readyz";

/// The longest store error `/readyz` repeats.
const MAX_REASON: usize = 200;

/// What the admin listener needs of a host, and the listener itself until the host serves.
pub(crate) struct AdminEndpoints {
    pub(crate) metrics: Arc<Metrics>,
    /// The store as the host opened it (unmetered: probes are not the component's calls).
    store: Arc<dyn Backend>,
    /// The store label probed, and whose SMS-pumping blocks are listed.
    bucket: String,
    /// Set once the host is asked to stop: `/readyz` then fails.
    stopping: AtomicBool,
    /// Whether the last readiness check passed, to log only its changes.
    was_ready: AtomicBool,
    listener: Mutex<Option<std::net::TcpListener>>,
    addr: Option<SocketAddr>,
}

impl AdminEndpoints {
    /// Binds `admin` (when given) now, so that a bad address fails the build.
    pub(crate) fn new(
        metrics: Arc<Metrics>,
        store: Arc<dyn Backend>,
        bucket: String,
        admin: Option<SocketAddr>,
    ) -> anyhow::Result<Self> {
        let listener = match admin {
            Some(addr) => {
                let listener = std::net::TcpListener::bind(addr).map_err(|err| {
                    anyhow::anyhow!("cannot listen on {addr} (--admin-listen): {err}")
                })?;
                listener.set_nonblocking(true)?;
                Some(listener)
            }
            None => None,
        };
        let addr = listener
            .as_ref()
            .map(std::net::TcpListener::local_addr)
            .transpose()?;
        Ok(Self {
            metrics,
            store,
            bucket,
            stopping: AtomicBool::new(false),
            was_ready: AtomicBool::new(true),
            listener: Mutex::new(listener),
            addr,
        })
    }

    /// Where the admin listener listens, if it does.
    pub(crate) fn addr(&self) -> Option<SocketAddr> {
        self.addr
    }

    /// Marks the host as stopping: `/readyz` fails from now on.
    pub(crate) fn stopping(&self) {
        self.stopping.store(true, Ordering::SeqCst);
    }

    /// Ready, or why not.
    pub(crate) async fn readiness(&self) -> Result<(), String> {
        let ready = if self.stopping.load(Ordering::SeqCst) {
            Err("stopping".to_owned())
        } else {
            match tokio::time::timeout(READY_STORE_TIMEOUT, self.store.get(&self.bucket, READY_KEY))
                .await
            {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(err)) => Err(format!(
                    "store unavailable: {}",
                    err.message().chars().take(MAX_REASON).collect::<String>()
                )),
                Err(_) => Err(format!(
                    "store did not answer within {} ms",
                    READY_STORE_TIMEOUT.as_millis()
                )),
            }
        };
        let now_ready = ready.is_ok();
        if self.was_ready.swap(now_ready, Ordering::SeqCst) != now_ready {
            match &ready {
                Ok(()) => tracing::info!(message = "ready"),
                Err(reason) => tracing::warn!(message = "not ready", reason = reason.as_str()),
            }
        }
        ready
    }

    /// Starts serving the admin endpoints of `host`, if an address was given; the handle stops
    /// them.
    pub(crate) fn start(&self, host: &Arc<Host>) -> anyhow::Result<Option<AdminServer>> {
        let listener = self
            .listener
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let Some(listener) = listener else {
            return Ok(None);
        };
        let listener = TcpListener::from_std(listener)?;
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(serve(Arc::clone(host), listener, stopped));
        Ok(Some(AdminServer { stop, task }))
    }
}

/// The admin endpoints being served.
pub(crate) struct AdminServer {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl AdminServer {
    /// Stops serving and waits until the listener is closed.
    pub(crate) async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

async fn serve(host: Arc<Host>, listener: TcpListener, mut stopped: oneshot::Receiver<()>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stopped => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let host = Arc::clone(&host);
                    connections.spawn(async move {
                        let service = hyper::service::service_fn(move |request| {
                            let host = Arc::clone(&host);
                            async move { Ok::<_, Infallible>(answer(&host, &request).await) }
                        });
                        if let Err(err) = auto::Builder::new(TokioExecutor::new())
                            .serve_connection(TokioIo::new(stream), service)
                            .await
                        {
                            tracing::debug!(message = "admin connection failed", error = %err);
                        }
                    });
                }
                Err(err) => {
                    tracing::warn!(message = "admin accept failed", error = %err);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    // Dropping the set ends the open connections: probes and scrapes are cheap to repeat.
}

/// One admin request's answer.
async fn answer<B>(host: &Host, request: &Request<B>) -> Response<Full<Bytes>> {
    let path = request.uri().path();
    if path == "/sms-guard/blocks" && request.method() == Method::GET {
        return crate::sms_guard::list(host.ops.store.as_ref(), &host.ops.bucket).await;
    }
    if let Some(prefix) = path.strip_prefix("/sms-guard/blocks/")
        && request.method() == Method::DELETE
    {
        return crate::sms_guard::lift(host.ops.store.as_ref(), &host.ops.bucket, prefix).await;
    }
    if !matches!(path, "/healthz" | "/readyz" | "/metrics") {
        return plain(
            StatusCode::NOT_FOUND,
            "not found: try /healthz, /readyz, /metrics, GET /sms-guard/blocks or DELETE /sms-guard/blocks/{prefix}\n",
        );
    }
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let mut response = plain(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n");
        response
            .headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    match path {
        "/healthz" => plain(StatusCode::OK, "ok\n"),
        "/readyz" => match host.readiness().await {
            Ok(()) => plain(StatusCode::OK, "ready\n"),
            Err(reason) => plain(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("not ready: {reason}\n"),
            ),
        },
        _ => {
            let mut response = Response::new(Full::new(Bytes::from(host.encode_metrics())));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static(metrics::CONTENT_TYPE),
            );
            response
        }
    }
}

fn plain(status: StatusCode, text: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(text.to_owned())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

impl Host {
    /// Where the admin endpoints are served ([`crate::HostBuilder::admin_listen`]), if they are.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.ops.addr()
    }

    /// What `/readyz` answers: `Ok` when the host is not stopping and its store answered a read
    /// within 800 ms; otherwise a short reason. For programs that serve their own probes.
    pub async fn readiness(&self) -> Result<(), String> {
        self.ops.readiness().await
    }

    /// What `/metrics` answers: every metric in the OpenMetrics text format (which Prometheus
    /// scrapes). For programs that serve their own metrics endpoint.
    pub fn encode_metrics(&self) -> String {
        let mut instances = metrics::scrape_registry();
        metrics::register_instances(&mut instances, &self.instance_stats());
        self.ops.metrics.encode(Some(&instances))
    }
}
