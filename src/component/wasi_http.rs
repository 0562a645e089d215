//! Conversions between wasi:http resources and the plain `http::Request` / `http::Response`.

use crate::error::Error;
use crate::http::{MAX_BODY_BYTES, Request, Response, header_text};
use wasip2::http::types::{
    Fields, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam,
};
use wasip2::io::streams::StreamError;

/// Largest chunk `blocking-write-and-flush` accepts.
const WRITE_CHUNK: usize = 4096;

pub fn read_request(request: &IncomingRequest) -> Request {
    let method = match request.method() {
        Method::Get => "GET".to_string(),
        Method::Head => "HEAD".into(),
        Method::Post => "POST".into(),
        Method::Put => "PUT".into(),
        Method::Delete => "DELETE".into(),
        Method::Connect => "CONNECT".into(),
        Method::Options => "OPTIONS".into(),
        Method::Trace => "TRACE".into(),
        Method::Patch => "PATCH".into(),
        Method::Other(other) => other,
    };
    let path_with_query = request.path_with_query().unwrap_or_else(|| "/".into());
    let path = path_with_query
        .split('?')
        .next()
        .unwrap_or_default()
        .to_string();
    let headers: Vec<(String, String)> = request
        .headers()
        .entries()
        .into_iter()
        .map(|(name, value)| (name.to_ascii_lowercase(), header_text(value)))
        .collect();
    let declared_length = headers
        .iter()
        .find(|(name, _)| name == "content-length")
        .and_then(|(_, value)| value.trim().parse::<u64>().ok());
    let body = match declared_length {
        Some(length) if length > MAX_BODY_BYTES as u64 => Err(Error::BodyTooLarge {
            limit: MAX_BODY_BYTES,
        }),
        _ => read_body(request),
    };
    Request {
        method,
        path,
        headers,
        body,
    }
}

/// Reads at most `MAX_BODY_BYTES`; a longer body is refused without reading the rest.
fn read_body(request: &IncomingRequest) -> Result<Vec<u8>, Error> {
    let unreadable = || Error::MalformedBody("the request body could not be read".into());
    let body = request.consume().map_err(|()| unreadable())?;
    let stream = body.stream().map_err(|()| unreadable())?;
    let mut bytes = Vec::new();
    loop {
        match stream.blocking_read((MAX_BODY_BYTES + 1 - bytes.len()) as u64) {
            Ok(chunk) => {
                bytes.extend_from_slice(&chunk);
                if bytes.len() > MAX_BODY_BYTES {
                    return Err(Error::BodyTooLarge {
                        limit: MAX_BODY_BYTES,
                    });
                }
            }
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(_)) => return Err(unreadable()),
        }
    }
    Ok(bytes)
}

/// Sends `response` and finishes its body, so the client has its answer before any
/// follow-up work starts.
///
/// A response with neither body nor trailers gets no body resource at all. A host knows then,
/// before it sends the headers, that nothing follows them, and ends the stream with them (on
/// HTTP/2 one HEADERS frame with END_STREAM, as a gRPC Trailers-Only answer must be). An
/// opened body ends only when it is finished, after the headers went out: hosts built on
/// wasmtime-wasi-http and hyper then send the headers, then an empty DATA frame with END_STREAM,
/// and clients such as grpc-js, which take a status from headers only when they end the
/// stream, report "Call ended without gRPC status" instead of the answer.
pub fn write_response(out: ResponseOutparam, response: Response) {
    let headers = fields(response.headers, "headers");
    let outgoing = OutgoingResponse::new(headers);
    if outgoing.set_status_code(response.status).is_err() {
        problem(
            "response status refused by the host",
            response.status.to_string(),
        );
    }
    if response.body.is_empty() && response.trailers.is_empty() {
        ResponseOutparam::set(out, Ok(outgoing));
        return;
    }
    let Ok(body) = outgoing.body() else {
        problem("response body unavailable", String::new());
        return;
    };
    ResponseOutparam::set(out, Ok(outgoing));
    match body.write() {
        Ok(stream) => {
            for chunk in response.body.chunks(WRITE_CHUNK) {
                if let Err(e) = stream.blocking_write_and_flush(chunk) {
                    problem("writing the response failed", format!("{e:?}"));
                    break;
                }
            }
            // The stream must be gone before the body can be finished.
            drop(stream);
        }
        Err(()) => problem("response stream unavailable", String::new()),
    }
    let trailers = (!response.trailers.is_empty()).then(|| fields(response.trailers, "trailers"));
    if let Err(e) = OutgoingBody::finish(body, trailers) {
        problem("finishing the response failed", format!("{e:?}"));
    }
}

/// A wasi:http field list; a host that refuses them (invalid names) gets an empty list and a
/// log line rather than a trap.
fn fields(entries: Vec<(String, String)>, what: &str) -> Fields {
    let entries: Vec<(String, Vec<u8>)> = entries
        .into_iter()
        .map(|(name, value)| (name, value.into_bytes()))
        .collect();
    Fields::from_list(&entries).unwrap_or_else(|e| {
        problem(
            &format!("response {what} refused by the host"),
            format!("{e:?}"),
        );
        Fields::new()
    })
}

/// One log line (`crate::log`) about a response the host would not take as given.
fn problem(msg: &str, error: String) {
    let fields = if error.is_empty() {
        Vec::new()
    } else {
        vec![("error", crate::log::scrub(&error, &[]).into())]
    };
    crate::log::line(crate::log::Level::Error, msg, &fields);
}
