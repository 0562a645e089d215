//! The wasm32 side: exports `set-my-phone:sms/sender` and makes the provider's request with
//! wasi:http/outgoing-handler under one deadline. Nothing here decides behaviour.

use crate::provider::{
    self, Answer, MAX_RESPONSE_BYTES, Message, Outgoing, Plan, SendError, TIMEOUT_MS,
};
use wasip2::clocks::{monotonic_clock, wall_clock};
use wasip2::http::outgoing_handler;
use wasip2::http::types::{Fields, Method, OutgoingBody, OutgoingRequest, RequestOptions, Scheme};
use wasip2::io::poll;
use wasip2::io::streams::StreamError;

#[allow(
    unsafe_code,
    reason = "wit-bindgen's generated glue is unsafe by nature"
)]
mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "set-my-phone:service/sms-provider",
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

    use super::Provider;
    export!(Provider with_types_in self);
}

use bindings::exports::set_my_phone::sms::sender;

struct Provider;

impl sender::Guest for Provider {
    fn send(message: sender::Message) -> Result<String, sender::SendError> {
        let env: Vec<(String, String)> = wasip2::cli::environment::get_environment();
        let lookup = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        let message = Message {
            recipient: message.recipient,
            text: message.text,
            code: message.code,
            user_id: message.user_id,
            org_id: message.org_id,
        };
        let result = match provider::plan(&lookup, &message, wall_clock::now().seconds) {
            Plan::Skip(error) => Err(error),
            Plan::Send { request, provider } => {
                call(&request).and_then(|answer| provider::interpret(provider, &answer))
            }
        };
        result.map_err(|e| match e {
            SendError::Retryable(why) => sender::SendError::Retryable(why),
            SendError::Permanent(why) => sender::SendError::Permanent(why),
        })
    }
}

/// Makes `request`, all of it (connect, send, answer, body) within `TIMEOUT_MS`.
fn call(request: &Outgoing) -> Result<Answer, SendError> {
    let retryable = |what: &str| SendError::Retryable(what.to_string());
    let deadline = monotonic_clock::now().saturating_add(TIMEOUT_MS * 1_000_000);
    let entries: Vec<(String, Vec<u8>)> = request
        .headers
        .iter()
        .map(|(n, v)| (n.clone(), v.clone().into_bytes()))
        .collect();
    let headers = Fields::from_list(&entries)
        .map_err(|e| SendError::Permanent(format!("bad header: {e:?}")))?;
    let outgoing = OutgoingRequest::new(headers);
    let scheme = if request.url.https {
        Scheme::Https
    } else {
        Scheme::Http
    };
    let set = outgoing.set_method(&Method::Post).is_ok()
        && outgoing.set_scheme(Some(&scheme)).is_ok()
        && outgoing.set_authority(Some(&request.url.authority)).is_ok()
        && outgoing
            .set_path_with_query(Some(&request.url.path_with_query))
            .is_ok();
    if !set {
        return Err(SendError::Permanent(
            "the provider URL was refused by the host".into(),
        ));
    }
    let body = outgoing
        .body()
        .map_err(|()| retryable("request body unavailable"))?;
    let options = RequestOptions::new();
    let nanos = Some(TIMEOUT_MS * 1_000_000);
    // Hosts may not support every time-out; the overall deadline below still holds.
    let _ = options.set_connect_timeout(nanos);
    let _ = options.set_first_byte_timeout(nanos);
    let _ = options.set_between_bytes_timeout(nanos);
    let pending = outgoing_handler::handle(outgoing, Some(options))
        .map_err(|e| SendError::Retryable(format!("request refused: {e:?}")))?;
    {
        let stream = body
            .write()
            .map_err(|()| retryable("request stream unavailable"))?;
        for chunk in request.body.chunks(4096) {
            stream
                .blocking_write_and_flush(chunk)
                .map_err(|e| SendError::Retryable(format!("sending: {e:?}")))?;
        }
    }
    OutgoingBody::finish(body, None)
        .map_err(|e| SendError::Retryable(format!("sending: {e:?}")))?;

    let response = loop {
        if let Some(result) = pending.get() {
            break match result {
                Ok(Ok(response)) => response,
                Ok(Err(e)) => {
                    return Err(SendError::Retryable(format!("provider unreachable: {e:?}")));
                }
                Err(()) => return Err(retryable("response already taken")),
            };
        }
        if !wait_until(&pending.subscribe(), deadline) {
            return Err(retryable("provider did not answer in time"));
        }
    };
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
    let stream = incoming
        .stream()
        .map_err(|()| retryable("response body unavailable"))?;
    let mut body = Vec::new();
    while body.len() < MAX_RESPONSE_BYTES {
        if !wait_until(&stream.subscribe(), deadline) {
            return Err(retryable("provider answer too slow"));
        }
        match stream.read((MAX_RESPONSE_BYTES - body.len()) as u64) {
            Ok(chunk) => body.extend_from_slice(&chunk),
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(e)) => {
                return Err(SendError::Retryable(format!(
                    "reading the answer: {}",
                    e.to_debug_string()
                )));
            }
        }
    }
    Ok(Answer {
        status,
        headers,
        body,
    })
}

/// Blocks until `ready` fires or the monotonic `deadline` passes; true when ready.
fn wait_until(ready: &poll::Pollable, deadline: u64) -> bool {
    let timer = monotonic_clock::subscribe_instant(deadline);
    let fired = poll::poll(&[ready, &timer]);
    fired.contains(&0)
}
