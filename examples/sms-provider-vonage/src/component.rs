//! The component: `set-my-phone:sms/sender` over wasi:http, in plain wasip2 calls.

use wasip2::http::outgoing_handler;
use wasip2::http::types::{Fields, Method, OutgoingBody, OutgoingRequest, RequestOptions, Scheme};

#[expect(
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
            "wasi:config/store@0.2.0-draft-2024-09-27": generate,
            "set-my-phone:sms/sender@0.2.0": generate,
        },
    });

    use super::Component;
    export!(Component with_types_in self);
}

use bindings::exports::set_my_phone::sms::sender::{self, SendError};

struct Component;

impl sender::Guest for Component {
    /// Vonage's SMS API delivers the core's text; the core makes and checks the codes.
    fn makes_codes() -> bool {
        false
    }

    /// Never asked, since `makes_codes` answers `false`.
    fn check(_recipient: String, _code: String) -> Result<bool, SendError> {
        Err(SendError::Permanent(
            "the Vonage SMS provider does not check codes".into(),
        ))
    }

    fn send(message: sender::Message) -> Result<String, SendError> {
        let env = wasip2::cli::environment::get_environment();
        let get = |name: &str| {
            env.iter()
                .find(|(k, v)| k == name && !v.trim().is_empty())
                .map(|(_, v)| v.clone())
        };
        let form =
            super::form(&get, &message.recipient, &message.text).map_err(SendError::Permanent)?;
        let base = get("SMS_VONAGE_BASE_URL").unwrap_or_else(|| super::DEFAULT_BASE.into());
        let (status, body) = post(&base, "/sms/json", super::encode(&form).into_bytes())
            .map_err(SendError::Retryable)?;
        super::outcome(status, &body).map_err(|(retryable, why)| {
            if retryable {
                SendError::Retryable(why)
            } else {
                SendError::Permanent(why)
            }
        })
    }
}

/// One POST with a 5 s deadline; the status and (up to 64 KiB of) the body.
fn post(base: &str, path: &str, body: Vec<u8>) -> Result<(u16, Vec<u8>), String> {
    let (scheme, authority) = match base.trim_end_matches('/').split_once("://") {
        Some(("https", authority)) => (Scheme::Https, authority),
        Some(("http", authority)) => (Scheme::Http, authority),
        _ => return Err("SMS_VONAGE_BASE_URL is not an http(s) URL".into()),
    };
    let headers = Fields::from_list(&[
        (
            "content-type".into(),
            b"application/x-www-form-urlencoded".to_vec(),
        ),
        ("content-length".into(), body.len().to_string().into_bytes()),
    ])
    .map_err(|e| format!("{e:?}"))?;
    let request = OutgoingRequest::new(headers);
    let accepted = request.set_method(&Method::Post).is_ok()
        && request.set_scheme(Some(&scheme)).is_ok()
        && request.set_authority(Some(authority)).is_ok()
        && request.set_path_with_query(Some(path)).is_ok();
    if !accepted {
        return Err("the host refused the request".into());
    }
    let outgoing = request.body().map_err(|()| "no request body")?;
    let options = RequestOptions::new();
    let five_seconds = Some(5_000_000_000);
    let _ = options.set_connect_timeout(five_seconds);
    let _ = options.set_first_byte_timeout(five_seconds);
    let future = outgoing_handler::handle(request, Some(options)).map_err(|e| format!("{e:?}"))?;
    {
        let stream = outgoing.write().map_err(|()| "no request stream")?;
        for chunk in body.chunks(4096) {
            stream
                .blocking_write_and_flush(chunk)
                .map_err(|e| format!("{e:?}"))?;
        }
    }
    OutgoingBody::finish(outgoing, None).map_err(|e| format!("{e:?}"))?;
    future.subscribe().block();
    let response = match future.get() {
        Some(Ok(Ok(response))) => response,
        Some(Ok(Err(code))) => return Err(format!("Vonage unreachable: {code:?}")),
        _ => return Err("no answer".into()),
    };
    let status = response.status();
    let incoming = response.consume().map_err(|()| "no answer body")?;
    let stream = incoming.stream().map_err(|()| "no answer stream")?;
    let mut answer = Vec::new();
    while answer.len() < 64 * 1024 {
        match stream.blocking_read(4096) {
            Ok(chunk) => answer.extend(chunk),
            Err(_) => break,
        }
    }
    Ok((status, answer))
}
