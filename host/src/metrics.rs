//! The host's Prometheus metrics, served by the admin listener (`admin.rs`) at `/metrics` in the
//! OpenMetrics text format (which Prometheus scrapes as it is).
//!
//! What is measured, every name prefixed `set_my_phone_`:
//! - requests by RPC, encoding and gRPC code, their latency, and those in flight ([`Observation`],
//!   wrapped around [`crate::Host::handle`]);
//! - SMS deliveries by outcome ([`MeteredSms`] around the host's sender);
//! - store errors by operation and the auth cache's hits and misses as the store sees them
//!   ([`MeteredBackend`] around the host's store);
//! - the instances the host made, reused and dropped (read from the host when scraped).
//!
//! Label values come from small fixed sets (an unknown path is one value, `unknown`), never from
//! raw paths or keys, so the number of series stays bounded whatever clients send.

use std::collections::HashSet;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http_body_util::BodyExt as _;
use hyper::body::{Body, Frame, SizeHint};
use hyper::{HeaderMap, Method, Request, Response, header};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use set_my_phone_wire::{Code, Protocol, RestRoute, Rpc, text};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use crate::keyvalue::{Backend, BackendError, KeyPage, Swap, Version, Versioned};
use crate::sms::{SendError, SmsMessage, SmsSender};

/// The prefix of every metric name.
const PREFIX: &str = "set_my_phone";

/// Latency buckets, in seconds: 1 ms to 10 s.
const LATENCY_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The content type of [`Metrics::encode`]'s text.
pub(crate) const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The label value of requests that name no RPC.
const UNKNOWN_RPC: &str = "unknown";

/// The outcomes of an SMS delivery.
const SMS_OUTCOMES: [&str; 3] = ["delivered", "retryable", "permanent"];

/// The store's operations, as [`Backend`] names them.
const STORE_OPERATIONS: [&str; 7] = [
    "get",
    "set",
    "delete",
    "exists",
    "list_keys",
    "compare_and_swap",
    "increment",
];

/// How many auth cache kinds get a label value of their own; later ones count as `other`.
const MAX_CACHE_KINDS: usize = 16;

/// Bytes of a gRPC-Web trailer frame kept to read its status; a longer one counts as `UNKNOWN`.
const MAX_WEB_TRAILERS: usize = 16 * 1024;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    rpc: &'static str,
    protocol: &'static str,
    code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RpcLabels {
    rpc: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    operation: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CacheLabels {
    cache: String,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

/// Every metric of one host, and the registry that encodes them.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RpcLabels, Histogram, fn() -> Histogram>,
    in_flight: Gauge,
    sms: Family<OutcomeLabels, Counter>,
    store_errors: Family<OperationLabels, Counter>,
    auth_cache: Family<CacheLabels, Counter>,
    refused: Family<ReasonLabels, Counter>,
    /// The auth cache kinds seen so far (at most [`MAX_CACHE_KINDS`]).
    cache_kinds: Mutex<HashSet<String>>,
}

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Metrics at zero.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix(PREFIX);
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "Requests answered, by RPC (gRPC method name, `unknown` for other paths), protocol \
             (json, grpc, grpc-web) and gRPC status code (for JSON the google.rpc.Status code of \
             the answer, else mapped from the HTTP status)",
            requests.clone(),
        );
        let latency: Family<RpcLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(latency_histogram);
        registry.register(
            "request_duration_seconds",
            "Time from a request's arrival until its status was sent (JSON: the response head; \
             gRPC: the trailers), by RPC",
            latency.clone(),
        );
        let in_flight = Gauge::default();
        registry.register(
            "requests_in_flight",
            "Requests arrived whose status has not been sent yet",
            in_flight.clone(),
        );
        let sms = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "sms_deliveries",
            "SMS the component asked the host to send, by outcome: delivered, retryable (the \
             provider may take it later) or permanent (it will not)",
            sms.clone(),
        );
        let store_errors = Family::<OperationLabels, Counter>::default();
        registry.register(
            "store_errors",
            "Key-value store calls of the component that failed (unreachable, timed out, \
             refused), by operation",
            store_errors.clone(),
        );
        // Known label values start at zero, so that rates and alerts see them before the first.
        for outcome in SMS_OUTCOMES {
            drop(sms.get_or_create(&OutcomeLabels { outcome }));
        }
        for operation in STORE_OPERATIONS {
            drop(store_errors.get_or_create(&OperationLabels { operation }));
        }
        let auth_cache = Family::<CacheLabels, Counter>::default();
        registry.register(
            "auth_cache_lookups",
            "Reads of the component's auth cache entries (keys auth:<cache>:...), by cache and \
             result: hit (found) or miss (absent); the hit ratio is hit / (hit + miss)",
            auth_cache.clone(),
        );
        let refused = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "codes_refused",
            "Codes an abuse guard refused, by reason (the answer's set-my-phone-refusal header): \
             cooldown, hourly_cap, region_not_allowed, number_hour, number_day, range_hour, \
             org_hour, deployment_hour, pumping_tripped (this refusal set a block), pumping_block",
            refused.clone(),
        );
        for reason in set_my_phone_wire::refusal::REASONS {
            drop(refused.get_or_create(&ReasonLabels { reason }));
        }
        Self {
            registry,
            requests,
            latency,
            in_flight,
            sms,
            store_errors,
            auth_cache,
            refused,
            cache_kinds: Mutex::new(HashSet::new()),
        }
    }

    /// Starts measuring one request; the [`Observation`] counts it when its status is sent.
    pub(crate) fn observe<B>(self: &Arc<Self>, request: &Request<B>) -> Observation {
        let protocol = protocol_of(request.headers());
        let rpc = rpc_of(request.method(), request.uri().path(), protocol);
        self.in_flight.inc();
        Observation {
            metrics: Some(Arc::clone(self)),
            rpc,
            protocol,
            start: Instant::now(),
        }
    }

    /// Every metric in the OpenMetrics text format, `# EOF` included; `extra` adds the
    /// instance counters read from the host at scrape time.
    pub fn encode(&self, extra: Option<&Registry>) -> String {
        let mut text = String::new();
        // Writing to a String does not fail; a metric that could not encode would be a bug of
        // the encoder, and a scrape without it is better than none.
        let _ = prometheus_client::encoding::text::encode_registry(&mut text, &self.registry);
        if let Some(extra) = extra {
            let _ = prometheus_client::encoding::text::encode_registry(&mut text, extra);
        }
        let _ = prometheus_client::encoding::text::encode_eof(&mut text);
        text
    }

    fn count_sms(&self, outcome: &'static str) {
        self.sms.get_or_create(&OutcomeLabels { outcome }).inc();
    }

    fn count_store_error(&self, operation: &'static str) {
        self.store_errors
            .get_or_create(&OperationLabels { operation })
            .inc();
    }

    /// Counts a read of `key` that found (`hit`) or missed it, if it is an auth cache entry.
    fn count_cache_lookup(&self, key: &str, hit: bool) {
        let Some(kind) = cache_kind(key) else {
            return;
        };
        let cache = {
            let mut kinds = self
                .cache_kinds
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if kinds.contains(kind) {
                kind.to_owned()
            } else if kinds.len() < MAX_CACHE_KINDS {
                kinds.insert(kind.to_owned());
                kind.to_owned()
            } else {
                "other".to_owned()
            }
        };
        let result = if hit { "hit" } else { "miss" };
        self.auth_cache
            .get_or_create(&CacheLabels { cache, result })
            .inc();
    }
}

/// A registry for metrics made at scrape time, named like the host's.
pub(crate) fn scrape_registry() -> Registry {
    Registry::with_prefix(PREFIX)
}

/// Adds the instance counters of `stats` to `registry`.
pub(crate) fn register_instances(registry: &mut Registry, stats: &crate::InstanceStats) {
    let created = Counter::<u64>::default();
    created.inc_by(stats.instances_created);
    registry.register(
        "instances_created",
        "Component instances made since the host started",
        created,
    );
    let reused = Counter::<u64>::default();
    reused.inc_by(stats.requests_on_reused_instances);
    registry.register(
        "instance_reuses",
        "Requests served on an instance that had served a request before",
        reused,
    );
    let dropped = Family::<ReasonLabels, Counter>::default();
    for reason in crate::DropReason::ALL {
        dropped
            .get_or_create(&ReasonLabels {
                reason: reason.label(),
            })
            .inc_by(stats.dropped(reason));
    }
    registry.register(
        "instances_dropped",
        "Component instances dropped, by reason (reuse_limit, idle_timeout, pool_full, trap, \
         deadline, memory, error, resources_left)",
        dropped,
    );
    let idle = Gauge::<i64>::default();
    idle.set(i64::try_from(stats.idle_instances).unwrap_or(i64::MAX));
    registry.register(
        "instances_idle",
        "Instances kept warm for the next requests",
        idle,
    );
}

/// The cache kind of an auth cache key `auth:<kind>:...`: its characters are checked, so that a
/// key cannot put arbitrary text into a label.
fn cache_kind(key: &str) -> Option<&str> {
    let rest = key.strip_prefix("auth:")?;
    let (kind, _) = rest.split_once(':')?;
    let plain = !kind.is_empty()
        && kind.len() <= 32
        && kind
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    Some(if plain { kind } else { "other" })
}

/// How a request is encoded: the wire crate's rule, which the component follows too.
fn protocol_of(headers: &HeaderMap) -> Protocol {
    Protocol::of_content_type(
        headers
            .get(header::CONTENT_TYPE)
            .map(|value| value.to_str().unwrap_or_default()),
    )
}

/// The RPC a request calls, as a fixed label value.
fn rpc_of(method: &Method, path: &str, protocol: Protocol) -> &'static str {
    let rpc = if protocol.is_grpc() {
        Rpc::from_grpc_path(path)
    } else {
        match Rpc::from_rest(method.as_str(), path) {
            RestRoute::Rpc(rpc) => Some(rpc),
            _ => None,
        }
    };
    rpc.map_or(UNKNOWN_RPC, Rpc::name)
}

/// The name of gRPC status `code`; unknown codes are `UNKNOWN`.
fn code_name(code: u32) -> &'static str {
    Code::from_number(code).name()
}

/// The code of a `grpc-status` value.
fn grpc_status(headers: &HeaderMap) -> Option<&'static str> {
    let value = headers.get("grpc-status")?.to_str().ok()?;
    Some(value.trim().parse().map_or("UNKNOWN", code_name))
}

/// The gRPC code of a JSON answer with HTTP `status`, as the service maps its codes; used when
/// the body does not say.
fn code_of_http_status(status: u16) -> &'static str {
    Code::from_http_status(status).name()
}

/// The code of a google.rpc.Status JSON body that starts `{"code":N`, as every error answer of
/// the service and the host does.
fn json_status_code(body: &[u8]) -> Option<&'static str> {
    let rest = body.strip_prefix(b"{\"code\":")?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    let code = std::str::from_utf8(rest.get(..digits)?)
        .ok()?
        .parse()
        .ok()?;
    Some(code_name(code))
}

/// One request being measured: counts it, with its latency, once its status is known; a
/// request dropped before that (its client went away) counts as `CANCELLED`.
pub(crate) struct Observation {
    /// `None` once counted.
    metrics: Option<Arc<Metrics>>,
    rpc: &'static str,
    protocol: Protocol,
    start: Instant,
}

impl Observation {
    fn finish(&mut self, code: &'static str) {
        let Some(metrics) = self.metrics.take() else {
            return;
        };
        metrics
            .requests
            .get_or_create(&RequestLabels {
                rpc: self.rpc,
                protocol: self.protocol.label(),
                code,
            })
            .inc();
        metrics
            .latency
            .get_or_create(&RpcLabels { rpc: self.rpc })
            .observe(self.start.elapsed().as_secs_f64());
        metrics.in_flight.dec();
    }

    /// Counts `response` now if its head says its status, otherwise wraps its body to count it
    /// when the status goes out.
    pub(crate) fn answered(
        mut self,
        response: Response<HyperOutgoingBody>,
    ) -> Response<HyperOutgoingBody> {
        let status = response.status().as_u16();
        if let Some(metrics) = &self.metrics
            && let Some(reason) = response
                .headers()
                .get(set_my_phone_wire::refusal::HEADER)
                .and_then(|value| value.to_str().ok())
                .and_then(set_my_phone_wire::refusal::known)
        {
            metrics
                .refused
                .get_or_create(&ReasonLabels { reason })
                .inc();
        }
        let pending = match self.protocol {
            Protocol::Json if (200..300).contains(&status) => {
                self.finish("OK");
                return response;
            }
            Protocol::Json => Pending::JsonBody {
                fallback: code_of_http_status(status),
            },
            Protocol::Grpc | Protocol::GrpcWeb | Protocol::GrpcWebText => {
                // A Trailers-Only answer (every error) has its status in the head.
                if let Some(code) = grpc_status(response.headers()) {
                    self.finish(code);
                    return response;
                }
                match self.protocol {
                    Protocol::GrpcWeb => Pending::WebFrames(WebScan::default()),
                    Protocol::GrpcWebText => {
                        Pending::WebText(text::StreamDecoder::default(), WebScan::default())
                    }
                    _ => Pending::Trailers,
                }
            }
        };
        response.map(|inner| {
            MeteredBody {
                inner,
                observation: self,
                pending,
            }
            .boxed_unsync()
        })
    }
}

impl Drop for Observation {
    fn drop(&mut self) {
        self.finish("CANCELLED");
    }
}

/// What a [`MeteredBody`] waits for to know the status.
enum Pending {
    /// The first bytes of a JSON error body (`{"code":N`); `fallback` if they do not say.
    JsonBody { fallback: &'static str },
    /// The HTTP trailers of a gRPC answer.
    Trailers,
    /// The trailer frame (flag 0x80) of a gRPC-Web body.
    WebFrames(WebScan),
    /// The same, in a text-mode (base64) body.
    WebText(text::StreamDecoder, WebScan),
}

/// Follows the frames of a gRPC-Web body across data chunks.
#[derive(Default)]
struct WebScan {
    /// The 5-byte head of the current frame, as far as read.
    head: Vec<u8>,
    /// Bytes of the current frame's payload still to come.
    remaining: usize,
    /// The trailer frame's payload so far, when the current frame is one.
    trailers: Option<Vec<u8>>,
}

impl WebScan {
    /// Reads `data`; answers the status once the trailer frame is complete.
    fn feed(&mut self, mut data: &[u8]) -> Option<&'static str> {
        while !data.is_empty() {
            if self.remaining == 0 && self.trailers.is_none() {
                let take = (5 - self.head.len()).min(data.len());
                self.head.extend_from_slice(&data[..take]);
                data = &data[take..];
                if self.head.len() < 5 {
                    return None;
                }
                let length =
                    u32::from_be_bytes([self.head[1], self.head[2], self.head[3], self.head[4]]);
                self.remaining = usize::try_from(length).unwrap_or(usize::MAX);
                if self.head[0] & 0x80 != 0 {
                    if self.remaining > MAX_WEB_TRAILERS {
                        return Some("UNKNOWN");
                    }
                    self.trailers = Some(Vec::with_capacity(self.remaining));
                }
                self.head.clear();
            }
            let take = self.remaining.min(data.len());
            if let Some(trailers) = &mut self.trailers {
                trailers.extend_from_slice(&data[..take]);
            }
            self.remaining -= take;
            data = &data[take..];
            if self.remaining == 0
                && let Some(trailers) = self.trailers.take()
            {
                return Some(web_trailer_status(&trailers));
            }
        }
        None
    }
}

/// The `grpc-status` of a gRPC-Web trailer frame's payload (`name:value` lines).
fn web_trailer_status(payload: &[u8]) -> &'static str {
    String::from_utf8_lossy(payload)
        .split("\r\n")
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("grpc-status"))
        .and_then(|(_, value)| value.trim().parse().ok())
        .map_or("UNKNOWN", code_name)
}

/// A response body that counts its request when the status goes out.
struct MeteredBody {
    inner: HyperOutgoingBody,
    observation: Observation,
    pending: Pending,
}

impl MeteredBody {
    /// Looks at a frame about to go out.
    fn inspect(&mut self, frame: &Frame<Bytes>) {
        let code = match (&mut self.pending, frame.data_ref(), frame.trailers_ref()) {
            (Pending::JsonBody { fallback }, Some(data), _) => {
                Some(json_status_code(data).unwrap_or(fallback))
            }
            (Pending::Trailers, _, Some(trailers)) => {
                Some(grpc_status(trailers).unwrap_or("UNKNOWN"))
            }
            (Pending::WebFrames(scan), Some(data), _) => scan.feed(data),
            (Pending::WebText(decoder, scan), Some(data), _) => match decoder.feed(data) {
                Ok(binary) => scan.feed(&binary),
                Err(_) => Some("UNKNOWN"),
            },
            _ => None,
        };
        if let Some(code) = code {
            self.observation.finish(code);
        }
    }

    /// The body ended without saying its status.
    fn ended(&mut self) {
        let code = match self.pending {
            Pending::JsonBody { fallback } => fallback,
            Pending::Trailers | Pending::WebFrames(_) | Pending::WebText(..) => "UNKNOWN",
        };
        self.observation.finish(code);
    }
}

impl Body for MeteredBody {
    type Data = Bytes;
    type Error = wasmtime_wasi_http::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => this.inspect(frame),
            Poll::Ready(None) => this.ended(),
            // A body that fails counts when it is dropped: its client saw no status.
            Poll::Ready(Some(Err(_))) | Poll::Pending => {}
        }
        if this.inner.is_end_stream() {
            this.ended();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The host's store, counting failed calls by operation and reads of auth cache entries.
pub(crate) struct MeteredBackend {
    pub(crate) inner: Arc<dyn Backend>,
    pub(crate) metrics: Arc<Metrics>,
}

impl MeteredBackend {
    fn counted<T>(
        &self,
        operation: &'static str,
        result: Result<T, BackendError>,
    ) -> Result<T, BackendError> {
        if result.is_err() {
            self.metrics.count_store_error(operation);
        }
        result
    }
}

#[async_trait::async_trait]
impl Backend for MeteredBackend {
    async fn get(&self, bucket: &str, key: &str) -> Result<Versioned, BackendError> {
        let read = self.counted("get", self.inner.get(bucket, key).await);
        if let Ok(read) = &read {
            self.metrics.count_cache_lookup(key, read.value.is_some());
        }
        read
    }

    async fn set(&self, bucket: &str, key: &str, value: Vec<u8>) -> Result<(), BackendError> {
        self.counted("set", self.inner.set(bucket, key, value).await)
    }

    async fn delete(&self, bucket: &str, key: &str) -> Result<(), BackendError> {
        self.counted("delete", self.inner.delete(bucket, key).await)
    }

    async fn exists(&self, bucket: &str, key: &str) -> Result<bool, BackendError> {
        self.counted("exists", self.inner.exists(bucket, key).await)
    }

    async fn list_keys(
        &self,
        bucket: &str,
        cursor: Option<String>,
    ) -> Result<KeyPage, BackendError> {
        self.counted("list_keys", self.inner.list_keys(bucket, cursor).await)
    }

    async fn compare_and_swap(
        &self,
        bucket: &str,
        key: &str,
        expected: Version,
        value: Vec<u8>,
    ) -> Result<Swap, BackendError> {
        let swapped = self
            .inner
            .compare_and_swap(bucket, key, expected, value)
            .await;
        self.counted("compare_and_swap", swapped)
    }

    async fn increment(&self, bucket: &str, key: &str, delta: i64) -> Result<i64, BackendError> {
        self.counted("increment", self.inner.increment(bucket, key, delta).await)
    }
}

/// The host's SMS sender, counting deliveries by outcome.
pub(crate) struct MeteredSms {
    pub(crate) inner: Arc<dyn SmsSender>,
    pub(crate) metrics: Arc<Metrics>,
}

#[async_trait::async_trait]
impl SmsSender for MeteredSms {
    async fn send(&self, message: SmsMessage) -> Result<String, SendError> {
        let sent = self.inner.send(message).await;
        self.metrics.count_sms(match &sent {
            Ok(_) => "delivered",
            Err(SendError::Retryable(_)) => "retryable",
            Err(SendError::Permanent(_)) => "permanent",
        });
        sent
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rpcs_come_from_fixed_names() {
        let json = Protocol::Json;
        let cases = [
            (Method::PUT, "/auth/v1/users/me/phone", json, "SetMyPhone"),
            (Method::GET, "/auth/v1/users/me/phone", json, "GetMyPhone"),
            (
                Method::DELETE,
                "/auth/v1/users/me/phone",
                json,
                "RemoveMyPhone",
            ),
            (
                Method::POST,
                "/auth/v1/users/me/phone/_verify",
                json,
                "VerifyMyPhone",
            ),
            (
                Method::POST,
                "/auth/v1/users/me/phone/_resend_verification",
                json,
                "ResendMyPhoneVerification",
            ),
            (Method::POST, "/auth/v1/users/me/phone", json, "unknown"),
            (Method::GET, "/wp-admin/../../etc/passwd", json, "unknown"),
            (
                Method::POST,
                "/zitadel.auth.v1.AuthService/GetMyPhone",
                Protocol::Grpc,
                "GetMyPhone",
            ),
            (
                Method::POST,
                "/zitadel.auth.v1.AuthService/VerifyMyPhone",
                Protocol::GrpcWeb,
                "VerifyMyPhone",
            ),
            (
                Method::POST,
                "/zitadel.auth.v1.AuthService/Anything",
                Protocol::Grpc,
                "unknown",
            ),
        ];
        for (method, path, protocol, rpc) in cases {
            assert_eq!(rpc_of(&method, path, protocol), rpc, "{method} {path}");
        }
    }

    #[test]
    fn protocols_come_from_the_content_type() {
        // The table itself is the wire crate's (tested there); this is the header's reading.
        let mut headers = HeaderMap::new();
        assert_eq!(protocol_of(&headers), Protocol::Json);
        headers.insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("application/grpc-web-text"),
        );
        assert_eq!(protocol_of(&headers), Protocol::GrpcWebText);
    }

    #[test]
    fn json_codes_come_from_the_body_else_the_status() {
        assert_eq!(
            json_status_code(br#"{"code":9,"message":"x"}"#),
            Some("FAILED_PRECONDITION")
        );
        assert_eq!(json_status_code(br#"{"code":16}"#), Some("UNAUTHENTICATED"));
        assert_eq!(json_status_code(br#"{"code":99}"#), Some("UNKNOWN"));
        assert_eq!(json_status_code(br#"{"message":"x"}"#), None);
        assert_eq!(code_of_http_status(429), "RESOURCE_EXHAUSTED");
        assert_eq!(code_of_http_status(503), "UNAVAILABLE");
        assert_eq!(code_of_http_status(418), "UNKNOWN");
    }

    #[test]
    fn grpc_web_trailers_are_found_across_chunks() {
        let mut body = vec![0u8, 0, 0, 0, 3, 1, 2, 3];
        let trailers = b"grpc-status:5\r\ngrpc-message:no\r\n";
        body.push(0x80);
        body.extend_from_slice(&u32::try_from(trailers.len()).unwrap().to_be_bytes());
        body.extend_from_slice(trailers);
        for split in 0..body.len() {
            let mut scan = WebScan::default();
            let (a, b) = body.split_at(split);
            let first = scan.feed(a);
            let status = first.or_else(|| scan.feed(b));
            assert_eq!(status, Some("NOT_FOUND"), "split at {split}");
        }
    }

    #[tokio::test]
    async fn the_metered_store_counts_auth_cache_hits_misses_and_errors() {
        use crate::keyvalue::{Fault, MemoryBackend};
        let memory = MemoryBackend::new();
        let metrics = Arc::new(Metrics::new());
        let store = MeteredBackend {
            inner: Arc::new(memory.clone()),
            metrics: Arc::clone(&metrics),
        };
        let series = |text: &str, prefix: &str| -> Vec<String> {
            text.lines()
                .filter(|line| line.starts_with(prefix))
                .map(str::to_owned)
                .collect()
        };
        assert!(store.get("default", "auth:jwks:k1").await.is_ok());
        assert!(
            store
                .set("default", "auth:jwks:k1", b"{}".to_vec())
                .await
                .is_ok()
        );
        assert!(store.get("default", "auth:jwks:k1").await.is_ok());
        assert!(store.get("default", "auth:jwks:k1").await.is_ok());
        // Not cache entries: not counted.
        assert!(store.get("default", "user:o:u").await.is_ok());
        assert!(store.get("default", "authx:jwks:k1").await.is_ok());
        memory.set_fault(Fault::FailGets);
        assert!(store.get("default", "auth:jwks:k1").await.is_err());
        let text = metrics.encode(None);
        let mut lookups = series(&text, "set_my_phone_auth_cache_lookups_total");
        lookups.sort();
        assert_eq!(
            lookups,
            [
                r#"set_my_phone_auth_cache_lookups_total{cache="jwks",result="hit"} 2"#,
                r#"set_my_phone_auth_cache_lookups_total{cache="jwks",result="miss"} 1"#,
            ],
            "{text}"
        );
        let errors = series(&text, "set_my_phone_store_errors_total");
        assert!(
            errors.contains(&r#"set_my_phone_store_errors_total{operation="get"} 1"#.to_owned()),
            "{text}"
        );
        assert!(
            errors.contains(&r#"set_my_phone_store_errors_total{operation="set"} 0"#.to_owned()),
            "{text}"
        );
    }

    #[test]
    fn cache_kinds_are_bounded_label_values() {
        assert_eq!(cache_kind("auth:jwks:abcdef"), Some("jwks"));
        assert_eq!(cache_kind("auth:introspection:0a1b"), Some("introspection"));
        assert_eq!(cache_kind("auth:we ird{}:x"), Some("other"));
        assert_eq!(cache_kind("user:org:user"), None);
        assert_eq!(cache_kind("auth:nocolon"), None);
        let metrics = Metrics::new();
        for n in 0..40 {
            metrics.count_cache_lookup(&format!("auth:kind{n}:x"), true);
        }
        let text = metrics.encode(None);
        let kinds = text
            .lines()
            .filter(|line| line.starts_with("set_my_phone_auth_cache_lookups_total"))
            .count();
        assert_eq!(kinds, MAX_CACHE_KINDS + 1, "{text}");
    }
}
