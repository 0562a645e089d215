//! [`exchange`] over wasi:http/outgoing-handler.

use crate::{Answer, Failure, Method, Request};
use wasip2::clocks::monotonic_clock;
use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    Fields, IncomingResponse, Method as WasiMethod, OutgoingBody, OutgoingRequest, RequestOptions,
    Scheme,
};
use wasip2::io::poll;
use wasip2::io::streams::{OutputStream, StreamError};

fn unreachable(why: impl Into<String>) -> Failure {
    Failure::Unreachable(why.into())
}

/// Makes `request`; connecting, sending and reading the answer all finish within its timeout.
pub fn exchange(request: &Request) -> Result<Answer, Failure> {
    let timeout_ns = u64::try_from(request.timeout.as_nanos()).unwrap_or(u64::MAX);
    let deadline = monotonic_clock::now().saturating_add(timeout_ns);
    let seconds = request.timeout.as_secs_f32();
    let mut entries: Vec<(String, Vec<u8>)> = request
        .headers
        .iter()
        .map(|(n, v)| (n.clone(), v.clone().into_bytes()))
        .collect();
    if request.method == Method::Post {
        // A declared length rather than chunked transfer, as Go's client sends it.
        entries.push((
            "content-length".into(),
            request.body.len().to_string().into_bytes(),
        ));
    }
    let headers = Fields::from_list(&entries)
        .map_err(|e| Failure::Refused(format!("the host refused a header: {e:?}")))?;
    let outgoing = OutgoingRequest::new(headers);
    let scheme = if request.url.https {
        Scheme::Https
    } else {
        Scheme::Http
    };
    let method = match request.method {
        Method::Get => WasiMethod::Get,
        Method::Post => WasiMethod::Post,
        Method::Delete => WasiMethod::Delete,
    };
    let accepted = outgoing.set_method(&method).is_ok()
        && outgoing.set_scheme(Some(&scheme)).is_ok()
        && outgoing.set_authority(Some(&request.url.authority)).is_ok()
        && outgoing
            .set_path_with_query(Some(&request.url.path_with_query))
            .is_ok();
    if !accepted {
        return Err(Failure::Refused("the host refused the URL".into()));
    }
    let body = outgoing
        .body()
        .map_err(|()| unreachable("request body unavailable"))?;

    let options = RequestOptions::new();
    // Hosts may not support every time-out (they answer Err); the deadline below still holds.
    let _ = options.set_connect_timeout(Some(timeout_ns));
    let _ = options.set_first_byte_timeout(Some(timeout_ns));
    let _ = options.set_between_bytes_timeout(Some(timeout_ns));
    let pending = outgoing_handler::handle(outgoing, Some(options))
        .map_err(|e| unreachable(format!("the host refused the request: {e:?}")))?;

    // When sending fails, the response says why better (connection refused, an early 4xx):
    // wait for it either way, and fall back on the sending error only if it never comes.
    let sent = send_body(body, &request.body, deadline, seconds);
    let response = loop {
        if let Some(result) = pending.get() {
            break match result {
                Ok(Ok(response)) => response,
                Ok(Err(e)) => return Err(unreachable(format!("unreachable: {e:?}"))),
                Err(()) => return Err(unreachable("response already taken")),
            };
        }
        if !wait_until(&pending.subscribe(), deadline) {
            sent?;
            return Err(unreachable(format!("no answer within {seconds} s")));
        }
    };
    read_answer(&response, deadline, request.max_answer_bytes, seconds)
}

/// Writes `bytes` as the whole request body and finishes it.
fn send_body(body: OutgoingBody, bytes: &[u8], deadline: u64, seconds: f32) -> Result<(), Failure> {
    {
        let stream = body
            .write()
            .map_err(|()| unreachable("request stream unavailable"))?;
        write_all(&stream, bytes, deadline, seconds)?;
    }
    OutgoingBody::finish(body, None).map_err(|e| unreachable(format!("sending: {e:?}")))
}

/// Writes all of `bytes` and flushes, waiting for room no later than `deadline`.
fn write_all(
    stream: &OutputStream,
    mut bytes: &[u8],
    deadline: u64,
    seconds: f32,
) -> Result<(), Failure> {
    let failed = |e: StreamError| unreachable(format!("sending: {}", stream_error(e)));
    while !bytes.is_empty() {
        let room = writable(stream, deadline, seconds)?;
        let (now, later) = bytes.split_at(room.min(bytes.len()));
        stream.write(now).map_err(failed)?;
        bytes = later;
    }
    stream.flush().map_err(failed)?;
    // Room again means the flush completed.
    writable(stream, deadline, seconds).map(drop)
}

/// Bytes `stream` accepts now (at least one), waiting for room until `deadline`.
fn writable(stream: &OutputStream, deadline: u64, seconds: f32) -> Result<usize, Failure> {
    loop {
        let room = stream
            .check_write()
            .map_err(|e| unreachable(format!("sending: {}", stream_error(e))))?;
        if room > 0 {
            return Ok(usize::try_from(room).unwrap_or(usize::MAX));
        }
        if !wait_until(&stream.subscribe(), deadline) {
            return Err(unreachable(format!(
                "the request was not taken within {seconds} s"
            )));
        }
    }
}

/// Status, headers and up to `max_bytes` of the body, read before `deadline`.
fn read_answer(
    response: &IncomingResponse,
    deadline: u64,
    max_bytes: usize,
    seconds: f32,
) -> Result<Answer, Failure> {
    let status = response.status();
    let headers = response
        .headers()
        .entries()
        .into_iter()
        .map(|(n, v)| (n, String::from_utf8_lossy(&v).into_owned()))
        .collect();
    let incoming = response
        .consume()
        .map_err(|()| unreachable("response body unavailable"))?;
    let mut body = Vec::new();
    {
        let stream = incoming
            .stream()
            .map_err(|()| unreachable("response body unavailable"))?;
        while body.len() < max_bytes {
            if !wait_until(&stream.subscribe(), deadline) {
                return Err(unreachable(format!(
                    "the answer did not finish within {seconds} s"
                )));
            }
            let wanted = max_bytes.saturating_sub(body.len());
            match stream.read(u64::try_from(wanted).unwrap_or(u64::MAX)) {
                Ok(chunk) => body.extend_from_slice(&chunk),
                Err(StreamError::Closed) => break,
                Err(e) => {
                    return Err(unreachable(format!(
                        "reading the answer: {}",
                        stream_error(e)
                    )));
                }
            }
        }
    }
    drop(incoming);
    Ok(Answer {
        status,
        headers,
        body,
    })
}

fn stream_error(error: StreamError) -> String {
    match error {
        StreamError::Closed => "stream closed".into(),
        StreamError::LastOperationFailed(e) => e.to_debug_string(),
    }
}

/// Blocks until `ready` fires or the monotonic `deadline` passes; true when ready.
fn wait_until(ready: &poll::Pollable, deadline: u64) -> bool {
    let timer = monotonic_clock::subscribe_instant(deadline);
    poll::poll(&[ready, &timer]).contains(&0)
}
