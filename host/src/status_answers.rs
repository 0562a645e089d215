//! The answers the host gives for a guest that could not answer itself (a trap, a deadline, the
//! memory cap, a request it cannot hand over): google.rpc.Status in the caller's encoding.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, StatusCode, header};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use set_my_phone_wire::{Protocol, percent_encode_message};

use crate::limits::{Failure, GuestLimits};

/// How the caller reads the errors the host answers itself: a JSON google.rpc.Status, or for
/// gRPC and gRPC-Web the status in `grpc-status` / `grpc-message` headers.
#[derive(Clone, Debug)]
pub(crate) enum StatusEncoding {
    Json,
    /// With the request's content type, echoed back.
    Grpc(header::HeaderValue),
}

impl StatusEncoding {
    pub(crate) fn of<B>(request: &Request<B>) -> Self {
        let content_type = request.headers().get(header::CONTENT_TYPE);
        let protocol =
            Protocol::of_content_type(content_type.map(|value| value.to_str().unwrap_or_default()));
        match content_type {
            // The component's own rule: application/grpc, application/grpc-web(-text)(+proto), …
            Some(content_type) if protocol.is_grpc() => Self::Grpc(content_type.clone()),
            _ => Self::Json,
        }
    }

    /// The answer for a guest that failed (or missed its deadline) before it answered.
    pub(crate) fn failure(
        &self,
        failure: Failure,
        limits: &GuestLimits,
    ) -> Response<HyperOutgoingBody> {
        let (status, code, message) = failure.answer(limits);
        self.response(status, code, &message)
    }

    /// JSON: `status` with `{"code":..,"message":..,"details":[]}`. gRPC: HTTP 200, as gRPC
    /// requires, with the status in the headers and no body (a Trailers-Only answer).
    pub(crate) fn response(
        &self,
        status: StatusCode,
        code: u32,
        message: &str,
    ) -> Response<HyperOutgoingBody> {
        let (status, content_type, body) = match self {
            Self::Json => {
                let body = serde_json::json!({"code": code, "message": message, "details": []});
                (
                    status,
                    header::HeaderValue::from_static("application/json"),
                    Bytes::from(body.to_string()),
                )
            }
            Self::Grpc(content_type) => (StatusCode::OK, content_type.clone(), Bytes::new()),
        };
        let mut response = Response::new(
            Full::new(body)
                .map_err(|never: Infallible| match never {})
                .boxed_unsync(),
        );
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, content_type);
        if let Self::Grpc(_) = self {
            headers.insert("grpc-status", header::HeaderValue::from(code));
            // Percent-encoded, the message is visible ASCII.
            if let Ok(message) = header::HeaderValue::from_str(&percent_encode_message(message)) {
                headers.insert("grpc-message", message);
            }
        }
        response
    }
}

/// 200 with an HTML page (development mode's front page).
pub(crate) fn html(page: Bytes) -> Response<HyperOutgoingBody> {
    let mut response = Response::new(
        Full::new(page)
            .map_err(|never: Infallible| match never {})
            .boxed_unsync(),
    );
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
}
