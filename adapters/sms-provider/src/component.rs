//! The wasm32 side: exports `set-my-phone:sms/sender` and makes the provider's request with
//! wasi:http/outgoing-handler under one deadline. Nothing here decides behaviour.

use crate::provider::{self, Answer, MAX_RESPONSE_BYTES, Message, Outgoing, Plan, SendError};
use wasip2::clocks::{monotonic_clock, wall_clock};
use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    Fields, IncomingResponse, Method, OutgoingBody, OutgoingRequest, RequestOptions, Scheme,
};
use wasip2::io::poll;
use wasip2::io::streams::{OutputStream, StreamError};

#[expect(
    unsafe_code,
    reason = "wit-bindgen's generated glue is unsafe by nature"
)]
mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "set-my-phone:service/sms-provider",
        // One copy of each wasi type: the wasip2 crate's.
        with: {
            "wasi:http/types@0.2.4": wasip2::http::types,
            "wasi:http/outgoing-handler@0.2.4": wasip2::http::outgoing_handler,
            "wasi:io/error@0.2.4": wasip2::io::error,
            "wasi:io/poll@0.2.4": wasip2::io::poll,
            "wasi:io/streams@0.2.4": wasip2::io::streams,
            "wasi:clocks/monotonic-clock@0.2.4": wasip2::clocks::monotonic_clock,
            "wasi:clocks/wall-clock@0.2.4": wasip2::clocks::wall_clock,
            "wasi:cli/environment@0.2.4": wasip2::cli::environment,
            "set-my-phone:sms/sender@0.1.0": generate,
        },
    });

    use super::Component;
    export!(Component with_types_in self);
}

use bindings::exports::set_my_phone::sms::sender;

/// Nanoseconds allowed for the whole exchange.
const TIMEOUT_NS: u64 = provider::TIMEOUT_MS * 1_000_000;

struct Component;

impl sender::Guest for Component {
    fn send(message: sender::Message) -> Result<String, sender::SendError> {
        let env = wasip2::cli::environment::get_environment();
        let lookup = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        let message = Message {
            recipient: message.recipient,
            text: message.text,
            code: message.code,
            user_id: message.user_id,
            org_id: message.org_id,
        };
        let now = wall_clock::now().seconds;
        let result = match provider::plan(&lookup, &message, now) {
            Plan::Skip(error) => Err(error),
            Plan::Send { request, provider } => {
                post(&request).and_then(|answer| provider::interpret(provider, &answer, now))
            }
        };
        result.map_err(|e| match e {
            SendError::Retryable(why) => sender::SendError::Retryable(why),
            SendError::Permanent(why) => sender::SendError::Permanent(why),
        })
    }
}

/// A failure of the exchange itself: the provider may not have seen the message.
fn retryable(why: impl Into<String>) -> SendError {
    SendError::Retryable(why.into())
}

/// POSTs `request`; connecting, sending and reading the answer all finish within the timeout.
fn post(request: &Outgoing) -> Result<Answer, SendError> {
    let deadline = monotonic_clock::now().saturating_add(TIMEOUT_NS);
    let mut entries: Vec<(String, Vec<u8>)> = request
        .headers
        .iter()
        .map(|(n, v)| (n.clone(), v.clone().into_bytes()))
        .collect();
    // A declared length rather than chunked transfer, as upstream's Go client sends it.
    entries.push((
        "content-length".into(),
        request.body.len().to_string().into_bytes(),
    ));
    let headers = Fields::from_list(&entries)
        .map_err(|e| SendError::Permanent(format!("the host refused a header: {e:?}")))?;
    let outgoing = OutgoingRequest::new(headers);
    let scheme = if request.url.https {
        Scheme::Https
    } else {
        Scheme::Http
    };
    let accepted = outgoing.set_method(&Method::Post).is_ok()
        && outgoing.set_scheme(Some(&scheme)).is_ok()
        && outgoing.set_authority(Some(&request.url.authority)).is_ok()
        && outgoing
            .set_path_with_query(Some(&request.url.path_with_query))
            .is_ok();
    if !accepted {
        return Err(SendError::Permanent(
            "the host refused the provider URL".into(),
        ));
    }
    let body = outgoing
        .body()
        .map_err(|()| retryable("request body unavailable"))?;

    let options = RequestOptions::new();
    // Hosts may not support every time-out (they answer Err); the deadline below still holds.
    let _ = options.set_connect_timeout(Some(TIMEOUT_NS));
    let _ = options.set_first_byte_timeout(Some(TIMEOUT_NS));
    let _ = options.set_between_bytes_timeout(Some(TIMEOUT_NS));
    let pending = outgoing_handler::handle(outgoing, Some(options))
        .map_err(|e| retryable(format!("the host refused the request: {e:?}")))?;

    // When sending fails, the response says why better (connection refused, an early 4xx):
    // wait for it either way, and fall back on the sending error only if it never comes.
    let sent = send_body(body, &request.body, deadline);
    let response = loop {
        if let Some(result) = pending.get() {
            break match result {
                Ok(Ok(response)) => response,
                Ok(Err(e)) => return Err(retryable(format!("provider unreachable: {e:?}"))),
                Err(()) => return Err(retryable("response already taken")),
            };
        }
        if !wait_until(&pending.subscribe(), deadline) {
            sent?;
            return Err(retryable("provider did not answer within 5 s"));
        }
    };
    read_answer(&response, deadline)
}

/// Writes `bytes` as the whole request body and finishes it.
fn send_body(body: OutgoingBody, bytes: &[u8], deadline: u64) -> Result<(), SendError> {
    {
        let stream = body
            .write()
            .map_err(|()| retryable("request stream unavailable"))?;
        write_all(&stream, bytes, deadline)?;
    }
    OutgoingBody::finish(body, None).map_err(|e| retryable(format!("sending: {e:?}")))
}

/// Writes all of `bytes` and flushes, waiting for room no later than `deadline`.
fn write_all(stream: &OutputStream, mut bytes: &[u8], deadline: u64) -> Result<(), SendError> {
    let failed = |e: StreamError| retryable(format!("sending: {}", stream_error(e)));
    while !bytes.is_empty() {
        let room = writable(stream, deadline)?;
        let (now, later) = bytes.split_at(room.min(bytes.len()));
        stream.write(now).map_err(failed)?;
        bytes = later;
    }
    stream.flush().map_err(failed)?;
    // Room again means the flush completed.
    writable(stream, deadline).map(drop)
}

/// Bytes `stream` accepts now (at least one), waiting for room until `deadline`.
fn writable(stream: &OutputStream, deadline: u64) -> Result<usize, SendError> {
    loop {
        let room = stream
            .check_write()
            .map_err(|e| retryable(format!("sending: {}", stream_error(e))))?;
        if room > 0 {
            return Ok(usize::try_from(room).unwrap_or(usize::MAX));
        }
        if !wait_until(&stream.subscribe(), deadline) {
            return Err(retryable("provider did not take the request within 5 s"));
        }
    }
}

/// Status, headers and up to `MAX_RESPONSE_BYTES` of the body, read before `deadline`.
fn read_answer(response: &IncomingResponse, deadline: u64) -> Result<Answer, SendError> {
    let status = response.status();
    let headers = response
        .headers()
        .entries()
        .into_iter()
        .map(|(n, v)| (n, String::from_utf8_lossy(&v).into_owned()))
        .collect();
    let incoming = response
        .consume()
        .map_err(|()| retryable("response body unavailable"))?;
    let mut body = Vec::new();
    {
        let stream = incoming
            .stream()
            .map_err(|()| retryable("response body unavailable"))?;
        while body.len() < MAX_RESPONSE_BYTES {
            if !wait_until(&stream.subscribe(), deadline) {
                return Err(retryable("provider's answer did not finish within 5 s"));
            }
            let wanted = MAX_RESPONSE_BYTES.saturating_sub(body.len());
            match stream.read(u64::try_from(wanted).unwrap_or(u64::MAX)) {
                Ok(chunk) => body.extend_from_slice(&chunk),
                Err(StreamError::Closed) => break,
                Err(e) => {
                    return Err(retryable(format!(
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
