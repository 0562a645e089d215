//! gRPC (`application/grpc`) and gRPC-Web (`application/grpc-web+proto`, and its base64 text
//! mode `application/grpc-web-text`) encodings of the RPCs. Only framing and protobuf live
//! here; behaviour is `api::call`, shared with REST.

use super::proto;
use super::{Input, Output, Reply, Rpc, Services, authorize, change_query, log};
use crate::api;
use crate::error::Error;
use crate::http::{Request, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use prost::Message as _;
use set_my_phone_wire::{Protocol, percent_encode_message, text};

/// Frame flag bits: message compressed; gRPC-Web trailer frame.
const FLAG_COMPRESSED: u8 = 0x01;
const FLAG_TRAILERS: u8 = 0x80;

/// Answers a request in `protocol`, one of the gRPC ones.
pub fn handle<'a>(request: &Request, services: &'a Services<'a>, protocol: Protocol) -> Reply<'a> {
    match dispatch(request, services, protocol) {
        Ok((message, followup)) => Reply {
            response: respond(protocol, Some(&message), None),
            followup,
        },
        Err(error) => {
            log(&error);
            Reply {
                response: error_response(protocol, &error),
                followup: None,
            }
        }
    }
}

fn dispatch<'a>(
    request: &Request,
    services: &'a Services<'a>,
    protocol: Protocol,
) -> Result<(Vec<u8>, Option<api::Followup<'a>>), Error> {
    let rpc = route(&request.path)?;
    if request.method != "POST" {
        return Err(Error::UnknownRpc(format!(
            "{} {}",
            request.method, request.path
        )));
    }
    let body = request.body.as_ref().map_err(Clone::clone)?;
    let decoded;
    let body = if protocol == Protocol::GrpcWebText {
        decoded = text::decode(body).map_err(|e| Error::MalformedBody(e.to_string()))?;
        &decoded[..]
    } else {
        &body[..]
    };
    let message = unframe(body, request.header("grpc-encoding"))?;
    let input = decode(rpc, message)?;
    if rpc == Rpc::Healthz {
        // No authentication, no configuration, no store: the component answers, so it is up.
        return Ok((proto::HealthzResponse {}.encode_to_vec(), None));
    }
    let caller = authorize(services, request)?;
    let (output, followup) = api::call(rpc, input, caller)?;
    let encoded = match output {
        Output::Details(details) => proto::DetailsResponse {
            details: Some(details.into()),
        }
        .encode_to_vec(),
        Output::Phone(details, view) => proto::GetMyPhoneResponse {
            details: Some(details.into()),
            phone: Some(view.into()),
        }
        .encode_to_vec(),
        Output::Changes(changes) => proto::ListMyUserChangesResponse {
            result: changes.into_iter().map(proto::Change::from).collect(),
        }
        .encode_to_vec(),
        Output::Empty => proto::HealthzResponse {}.encode_to_vec(),
    };
    Ok((encoded, followup))
}

pub(super) fn route(path: &str) -> Result<Rpc, Error> {
    Rpc::from_grpc_path(path).ok_or_else(|| Error::UnknownRpc(path.into()))
}

/// The single message of a unary request: 1 flag byte, 4 bytes big-endian length, message.
pub(super) fn unframe<'b>(body: &'b [u8], encoding: Option<&str>) -> Result<&'b [u8], Error> {
    let malformed = |why: &str| Error::MalformedBody(format!("malformed gRPC frame: {why}"));
    let (header, rest) = body
        .split_first_chunk::<5>()
        .ok_or_else(|| malformed("shorter than its 5-byte prefix"))?;
    let [flag, length @ ..] = *header;
    let length = u32::from_be_bytes(length) as usize;
    if flag & FLAG_COMPRESSED != 0 {
        let encoding = encoding.unwrap_or("none declared");
        return Err(Error::CompressedMessage(encoding.into()));
    }
    if flag != 0 {
        return Err(malformed("unknown flags"));
    }
    if rest.len() < length {
        return Err(malformed("length prefix larger than the body"));
    }
    if rest.len() > length {
        return Err(malformed("more than one message in a unary request"));
    }
    Ok(rest)
}

pub(super) fn decode(rpc: Rpc, message: &[u8]) -> Result<Input, Error> {
    let invalid =
        |name: &str, e: prost::DecodeError| Error::MalformedBody(format!("invalid {name}: {e}"));
    Ok(match rpc {
        Rpc::SetMyPhone => Input::Phone(
            proto::SetMyPhoneRequest::decode(message)
                .map_err(|e| invalid("SetMyPhoneRequest", e))?
                .phone,
        ),
        Rpc::VerifyMyPhone => Input::Code(
            proto::VerifyMyPhoneRequest::decode(message)
                .map_err(|e| invalid("VerifyMyPhoneRequest", e))?
                .code,
        ),
        Rpc::ListMyUserChanges => {
            let query = proto::ListMyUserChangesRequest::decode(message)
                .map_err(|e| invalid("ListMyUserChangesRequest", e))?
                .query
                .unwrap_or_default();
            Input::Changes(change_query(
                query.sequence,
                u64::from(query.limit),
                query.asc,
            )?)
        }
        Rpc::GetMyPhone | Rpc::ResendMyPhoneVerification | Rpc::RemoveMyPhone | Rpc::Healthz => {
            proto::EmptyRequest::decode(message).map_err(|e| invalid("request", e))?;
            Input::Empty
        }
    })
}

fn frame(flag: u8, payload: &[u8]) -> Vec<u8> {
    let mut framed = Vec::with_capacity(payload.len() + 5);
    framed.push(flag);
    // Our messages are far below 4 GiB.
    framed.extend_from_slice(
        &u32::try_from(payload.len())
            .unwrap_or(u32::MAX)
            .to_be_bytes(),
    );
    framed.extend_from_slice(payload);
    framed
}

/// grpc-status, grpc-message and grpc-status-details-bin for `error` (all OK when `None`).
fn status_fields(error: Option<&Error>) -> Vec<(String, String)> {
    let Some(error) = error else {
        return vec![("grpc-status".into(), "0".into())];
    };
    let status = error.status();
    let details = proto::Status::from(&status).encode_to_vec();
    vec![
        ("grpc-status".into(), (status.code as i32).to_string()),
        (
            "grpc-message".into(),
            percent_encode_message(&status.message),
        ),
        (
            "grpc-status-details-bin".into(),
            STANDARD_NO_PAD.encode(details),
        ),
    ]
}

/// HTTP 200 always, as gRPC requires; the outcome travels in the status fields.
fn respond(protocol: Protocol, message: Option<&[u8]>, error: Option<&Error>) -> Response {
    let fields = status_fields(error);
    let content_type = (
        "content-type".to_string(),
        protocol.answer_content_type().to_string(),
    );
    if protocol == Protocol::Grpc {
        return match message {
            Some(message) => Response {
                status: 200,
                headers: vec![content_type],
                body: frame(0, message),
                trailers: fields,
            },
            // Trailers-Only: with no message, the status goes in the headers, and the
            // answer must end with them: no body, no trailers (component::http sends it
            // without a body, so HTTP/2 carries it as one HEADERS frame with END_STREAM).
            None => Response {
                status: 200,
                headers: [vec![content_type], fields].concat(),
                body: Vec::new(),
                trailers: Vec::new(),
            },
        };
    }
    // gRPC-Web: the status as a trailer frame after the message, the whole body base64 in
    // text mode.
    let mut body = message.map(|m| frame(0, m)).unwrap_or_default();
    let block: String = fields
        .iter()
        .map(|(name, value)| format!("{name}:{value}\r\n"))
        .collect();
    body.extend(frame(FLAG_TRAILERS, block.as_bytes()));
    if protocol == Protocol::GrpcWebText {
        body = text::encode(&body);
    }
    Response {
        status: 200,
        headers: vec![content_type],
        body,
        trailers: Vec::new(),
    }
}

pub fn error_response(protocol: Protocol, error: &Error) -> Response {
    let mut response = respond(protocol, None, Some(error));
    super::name_refusal(&mut response, error);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_checked() {
        assert_eq!(unframe(&[0, 0, 0, 0, 2, 10, 0], None), Ok(&[10u8, 0][..]));
        assert_eq!(unframe(&[0, 0, 0, 0, 0], None), Ok(&[][..]));
        for bad in [
            &[][..],
            &[0, 0, 0],
            &[0, 0, 0, 0, 3, 1],
            &[0, 0, 0, 0, 1, 1, 2],
            &[2, 0, 0, 0, 0],
        ] {
            assert!(
                matches!(unframe(bad, None), Err(Error::MalformedBody(_))),
                "{bad:?}"
            );
        }
        assert!(matches!(
            unframe(&[1, 0, 0, 0, 0], Some("gzip")),
            Err(Error::CompressedMessage(_))
        ));
    }

    #[test]
    fn grpc_web_ends_with_a_trailer_frame() {
        let response = error_response(Protocol::GrpcWeb, &Error::PhoneNotChanged);
        assert_eq!(response.body[0], FLAG_TRAILERS);
        let text = String::from_utf8_lossy(&response.body[5..]);
        assert!(
            text.starts_with("grpc-status:9\r\ngrpc-message:Phone not changed (COMMAND-wF94r)\r\n"),
            "{text}"
        );
        let details = text
            .lines()
            .find_map(|l| l.strip_prefix("grpc-status-details-bin:"))
            .unwrap();
        let status =
            proto::Status::decode(&STANDARD_NO_PAD.decode(details.trim()).unwrap()[..]).unwrap();
        let detail = proto::ErrorDetail::decode(&status.details[0].value[..]).unwrap();
        assert_eq!((status.code, detail.id.as_str()), (9, "COMMAND-wF94r"));
    }

    #[test]
    fn text_mode_is_the_binary_answer_in_base64() {
        let binary = error_response(Protocol::GrpcWeb, &Error::PhoneNotChanged);
        let text = error_response(Protocol::GrpcWebText, &Error::PhoneNotChanged);
        assert_eq!(text::decode(&text.body).unwrap(), binary.body);
        assert_eq!(
            text.headers,
            [(
                "content-type".to_string(),
                "application/grpc-web-text+proto".to_string()
            )]
        );
    }
}
