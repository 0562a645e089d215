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

mod metered;
mod outgoing;
mod requests;

use metered::cache_kind;
pub(crate) use metered::{MeteredBackend, MeteredSms};
pub(crate) use outgoing::OutgoingHooks;
pub(crate) use requests::Observation;
use requests::{protocol_of, rpc_of};

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use hyper::Request;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

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
struct ZitadelLabels {
    call: &'static str,
    outcome: &'static str,
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
    zitadel: Family<ZitadelLabels, Counter>,
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
        let zitadel = Family::<ZitadelLabels, Counter>::default();
        registry.register(
            "zitadel_calls",
            "Calls of the write-through to ZITADEL (ZITADEL_SYNC=on), by call (user_service: \
             /v2/users/..., token: the JWT bearer grant) and outcome: ok, client_error (4xx), \
             server_error (5xx) or unreachable (no answer in time)",
            zitadel.clone(),
        );
        Self {
            registry,
            requests,
            latency,
            in_flight,
            sms,
            store_errors,
            auth_cache,
            refused,
            zitadel,
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

    fn count_zitadel(&self, call: &'static str, outcome: &'static str) {
        self.zitadel
            .get_or_create(&ZitadelLabels { call, outcome })
            .inc();
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

#[cfg(test)]
mod tests;
