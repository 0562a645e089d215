//! Embedding the service in a program's own HTTP server: [`HostService`] is a
//! `tower::Service` over any request body, and [`sms_fn`] turns an async closure into the
//! [`SmsSender`] the guest's codes go through (e.g. the program's own Twilio client).
//!
//! ```no_run
//! # async fn run() -> anyhow::Result<()> {
//! use set_my_phone_host::embed::sms_fn;
//! use set_my_phone_host::keyvalue::RedbBackend;
//! use set_my_phone_host::HostBuilder;
//! use std::sync::Arc;
//!
//! let store = RedbBackend::open("data/set-my-phone.redb")?;
//! let sms = sms_fn(|message| async move {
//!     println!("to {}: {}", message.recipient, message.text);
//!     Ok("local-1".to_string())
//! });
//! let service = HostBuilder::new("target/artifacts/set-my-phone-core-initialised.wasm")
//!     .env("AUTH_ISSUER", "https://issuer.example")
//!     .backend(Arc::new(store))
//!     .sms(sms)
//!     .build()?
//!     .into_service();
//! // axum: Router::new().nest_service("/phone", service); see examples/axum-embed.rs.
//! # let _ = service;
//! # Ok(()) }
//! ```

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::{Request, Response};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use crate::server::Host;
use crate::sms::{SendError, SmsMessage, SmsSender};

/// The host as a `tower::Service`: every request runs through a fresh instance of the
/// component, exactly as [`Host::serve`] runs it. Clones share the host.
#[derive(Clone)]
pub struct HostService {
    host: Arc<Host>,
}

impl HostService {
    pub fn new(host: Arc<Host>) -> Self {
        HostService { host }
    }

    /// The host behind the service (e.g. to wait for after-response work with
    /// [`Host::idle`]).
    pub fn host(&self) -> &Arc<Host> {
        &self.host
    }
}

impl<B> tower_service::Service<Request<B>> for HostService
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = Response<HyperOutgoingBody>;
    /// Failures are answers (google.rpc.Status bodies), never service errors.
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let host = Arc::clone(&self.host);
        Box::pin(async move { Ok(host.handle(request).await) })
    }
}

/// An [`SmsSender`] made of an async closure.
pub struct SmsFn<F>(F);

/// Wraps `send` (message in, provider message id or [`SendError`] out) as the sender the host
/// hands the guest's codes to.
pub fn sms_fn<F, Fut>(send: F) -> Arc<dyn SmsSender>
where
    F: Fn(SmsMessage) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<String, SendError>> + Send + 'static,
{
    Arc::new(SmsFn(send))
}

#[async_trait::async_trait]
impl<F, Fut> SmsSender for SmsFn<F>
where
    F: Fn(SmsMessage) -> Fut + Send + Sync,
    Fut: Future<Output = Result<String, SendError>> + Send,
{
    async fn send(&self, message: SmsMessage) -> Result<String, SendError> {
        (self.0)(message).await
    }
}

impl Host {
    /// This host as a `tower::Service`, to mount in a program's own router (axum's
    /// `nest_service`, hyper, tonic): see [`crate::embed`].
    pub fn into_service(self) -> HostService {
        HostService::new(Arc::new(self))
    }
}
