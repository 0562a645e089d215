//! Requests as the metrics see them: the RPC and encoding of each, its gRPC code (from the
//! answer's status, headers, JSON body or gRPC-Web trailers), and its latency ([`Observation`],
//! around `Host::handle`).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http_body_util::BodyExt as _;
use hyper::body::{Body, Frame, SizeHint};
use hyper::{HeaderMap, Method, Response, header};
use set_my_phone_wire::{Code, Protocol, RestRoute, Rpc, text};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use super::*;

/// How a request is encoded: the wire crate's rule, which the component follows too.
pub(super) fn protocol_of(headers: &HeaderMap) -> Protocol {
    Protocol::of_content_type(
        headers
            .get(header::CONTENT_TYPE)
            .map(|value| value.to_str().unwrap_or_default()),
    )
}

/// The RPC a request calls, as a fixed label value.
pub(super) fn rpc_of(method: &Method, path: &str, protocol: Protocol) -> &'static str {
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
pub(super) fn code_name(code: u32) -> &'static str {
    Code::from_number(code).name()
}

/// The code of a `grpc-status` value.
pub(super) fn grpc_status(headers: &HeaderMap) -> Option<&'static str> {
    let value = headers.get("grpc-status")?.to_str().ok()?;
    Some(value.trim().parse().map_or("UNKNOWN", code_name))
}

/// The gRPC code of a JSON answer with HTTP `status`, as the service maps its codes; used when
/// the body does not say.
pub(super) fn code_of_http_status(status: u16) -> &'static str {
    Code::from_http_status(status).name()
}

/// The code of a google.rpc.Status JSON body that starts `{"code":N`, as every error answer of
/// the service and the host does.
pub(super) fn json_status_code(body: &[u8]) -> Option<&'static str> {
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
    pub(super) metrics: Option<Arc<Metrics>>,
    pub(super) rpc: &'static str,
    pub(super) protocol: Protocol,
    pub(super) start: Instant,
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
pub(super) enum Pending {
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
pub(super) struct WebScan {
    /// The 5-byte head of the current frame, as far as read.
    head: Vec<u8>,
    /// Bytes of the current frame's payload still to come.
    remaining: usize,
    /// The trailer frame's payload so far, when the current frame is one.
    trailers: Option<Vec<u8>>,
}

impl WebScan {
    /// Reads `data`; answers the status once the trailer frame is complete.
    pub(super) fn feed(&mut self, mut data: &[u8]) -> Option<&'static str> {
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
pub(super) fn web_trailer_status(payload: &[u8]) -> &'static str {
    String::from_utf8_lossy(payload)
        .split("\r\n")
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("grpc-status"))
        .and_then(|(_, value)| value.trim().parse().ok())
        .map_or("UNKNOWN", code_name)
}

/// A response body that counts its request when the status goes out.
pub(super) struct MeteredBody {
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
