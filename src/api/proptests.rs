//! Property tests of the request decoders: JSON bodies (`rest`), gRPC and gRPC-Web frames
//! (`grpc::unframe`) and protobuf request messages (`grpc::decode` over `proto`), and of whole
//! requests through `api::handle`. Valid requests are built here by hand (JSON text, protobuf
//! wire format, frames), not with the encoders under test.

use super::{Input, Rpc, Services, grpc, rest};
use crate::error::Error;
use crate::http::{Request, Response};
use crate::proptest_support::{assert_documented, config, json_string, mutated};
use crate::store::KeyValue;
use crate::test_support::CountingRandom;
use crate::test_support::{FixedClock, MemoryKv, NoIssuer};
use base64::Engine as _;
use proptest::prelude::*;
use std::cell::Cell;

fn request(method: &str, path: &str, content_type: Option<&str>, body: Vec<u8>) -> Request {
    Request {
        method: method.into(),
        path: path.into(),
        headers: content_type
            .map(|ct| vec![("content-type".to_string(), ct.to_string())])
            .unwrap_or_default(),
        body: Ok(body),
    }
}

fn json_request(body: Vec<u8>) -> Request {
    request(
        "PUT",
        "/auth/v1/users/me/phone",
        Some("application/json"),
        body,
    )
}

const BODY_RPCS: [Rpc; 3] = [
    Rpc::SetMyPhone,
    Rpc::VerifyMyPhone,
    Rpc::ResendMyPhoneVerification,
];
const ALL_RPCS: [Rpc; 5] = [
    Rpc::SetMyPhone,
    Rpc::GetMyPhone,
    Rpc::VerifyMyPhone,
    Rpc::ResendMyPhoneVerification,
    Rpc::RemoveMyPhone,
];

fn malformed(e: &Error) -> bool {
    matches!(e, Error::MalformedBody(_))
}
fn compressed(e: &Error) -> bool {
    matches!(e, Error::CompressedMessage(_))
}

// --- hand-written protobuf wire format and gRPC framing ---

fn varint(mut value: u64, out: &mut Vec<u8>) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// A field the request messages do not declare; decoders must skip it.
#[derive(Clone, Debug)]
enum UnknownField {
    Varint(u32, u64),
    Fixed64(u32, u64),
    Fixed32(u32, u32),
    Bytes(u32, Vec<u8>),
}

impl UnknownField {
    fn encode(&self, out: &mut Vec<u8>) {
        let key =
            |field: u32, wire: u64, out: &mut Vec<u8>| varint(u64::from(field) << 3 | wire, out);
        match self {
            UnknownField::Varint(field, value) => {
                key(*field, 0, out);
                varint(*value, out);
            }
            UnknownField::Fixed64(field, value) => {
                key(*field, 1, out);
                out.extend_from_slice(&value.to_le_bytes());
            }
            UnknownField::Bytes(field, bytes) => {
                key(*field, 2, out);
                varint(bytes.len() as u64, out);
                out.extend_from_slice(bytes);
            }
            UnknownField::Fixed32(field, value) => {
                key(*field, 5, out);
                out.extend_from_slice(&value.to_le_bytes());
            }
        }
    }
}

fn unknown_field() -> impl Strategy<Value = UnknownField> {
    // Field numbers 2 ..= 2^29 - 1: never the declared field 1.
    let number = 2u32..(1 << 29);
    prop_oneof![
        (number.clone(), any::<u64>()).prop_map(|(f, v)| UnknownField::Varint(f, v)),
        (number.clone(), any::<u64>()).prop_map(|(f, v)| UnknownField::Fixed64(f, v)),
        (number.clone(), any::<u32>()).prop_map(|(f, v)| UnknownField::Fixed32(f, v)),
        (number, proptest::collection::vec(any::<u8>(), 0..16))
            .prop_map(|(f, v)| UnknownField::Bytes(f, v)),
    ]
}

/// Field 1 (string) as protobuf encodes it.
fn string_field_1(text: &str, out: &mut Vec<u8>) {
    out.push(0x0a);
    varint(text.len() as u64, out);
    out.extend_from_slice(text.as_bytes());
}

/// 1 flag byte, 4 bytes big-endian length, the message.
fn frame(flag: u8, message: &[u8]) -> Vec<u8> {
    let mut framed = vec![flag];
    framed.extend_from_slice(&(message.len() as u32).to_be_bytes());
    framed.extend_from_slice(message);
    framed
}

/// What unframing `body` must give, worked out from the gRPC spec rather than our code.
fn expected_unframe(body: &[u8]) -> Result<&[u8], &'static str> {
    if body.len() < 5 {
        return Err("malformed");
    }
    let declared = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
    if body[0] & 1 != 0 {
        Err("compressed")
    } else if body[0] != 0 || declared != body.len() - 5 {
        Err("malformed")
    } else {
        Ok(&body[5..])
    }
}

fn valid_frames() -> Vec<Vec<u8>> {
    let mut set = Vec::new();
    string_field_1("+41 71 000 00 00", &mut set);
    let mut verify = Vec::new();
    string_field_1("ABC123", &mut verify);
    vec![frame(0, &set), frame(0, &verify), frame(0, &[])]
}

fn valid_json() -> Vec<Vec<u8>> {
    [
        r#"{"phone":"+41 71 000 00 00"}"#,
        r#"{"code":"ABC123"}"#,
        r#" { "phone" : "071\u00a0000 00 00" , "other" : [1, {"x": null}] } "#,
        "{}",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect()
}

proptest! {
    #![proptest_config(config(256))]

    // --- JSON bodies ---

    #[test]
    fn json_bodies_of_any_bytes_decode_or_are_malformed(
        body in proptest::collection::vec(any::<u8>(), 0..256),
        rpc in proptest::sample::select(&BODY_RPCS[..]),
    ) {
        if let Err(error) = rest::input(rpc, &json_request(body)) {
            assert_documented(&error, &[malformed])?;
        }
    }

    #[test]
    fn json_texts_decode_or_are_malformed(
        body in "[ {}\\[\\]\":,a-z0-9\\\\.\\-+eEun]{0,64}",
        rpc in proptest::sample::select(&BODY_RPCS[..]),
    ) {
        if let Err(error) = rest::input(rpc, &json_request(body.into_bytes())) {
            assert_documented(&error, &[malformed])?;
        }
    }

    #[test]
    fn mutated_json_bodies_decode_or_are_malformed(
        body in proptest::sample::select(valid_json()).prop_flat_map(mutated),
        rpc in proptest::sample::select(&BODY_RPCS[..]),
    ) {
        if let Err(error) = rest::input(rpc, &json_request(body)) {
            assert_documented(&error, &[malformed])?;
        }
    }

    #[test]
    fn json_strings_round_trip(
        text in any::<String>(),
        ascii_only in any::<bool>(),
        other in proptest::option::of(("[a-z_]{1,8}", any::<i32>())),
        space in "[ \t\r\n]{0,3}",
    ) {
        for (rpc, name) in [(Rpc::SetMyPhone, "phone"), (Rpc::VerifyMyPhone, "code")] {
            let mut fields = vec![format!("{space}\"{name}\"{space}:{space}{}", json_string(&text, ascii_only))];
            if let Some((key, value)) = &other
                && key != name
            {
                fields.push(format!("{}:{value}", json_string(key, false)));
            }
            let body = format!("{space}{{{}}}{space}", fields.join(","));
            let input = rest::input(rpc, &json_request(body.into_bytes()));
            let expected = match rpc {
                Rpc::SetMyPhone => Input::Phone(text.clone()),
                _ => Input::Code(text.clone()),
            };
            prop_assert_eq!(input, Ok(expected));
        }
    }

    #[test]
    fn json_fields_that_are_not_strings_are_malformed(
        value in prop_oneof![
            any::<i64>().prop_map(|n| n.to_string()),
            any::<bool>().prop_map(|b| b.to_string()),
            Just("[]".to_string()),
            Just("{}".to_string()),
            any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| format!("{f:e}")),
        ],
    ) {
        let body = format!("{{\"phone\":{value}}}");
        let error = rest::input(Rpc::SetMyPhone, &json_request(body.into_bytes()));
        prop_assert!(matches!(error, Err(Error::MalformedBody(_))), "{error:?}");
    }

    #[test]
    fn other_content_types_are_read_as_json(
        media in "[a-z]{1,10}/[a-z+.\\-]{1,16}".prop_filter("not gRPC", |m| !m.starts_with("application/grpc")),
        phone in "[+0-9 ]{0,20}",
    ) {
        // As grpc-gateway's default marshaler does: the content type does not matter.
        let mut request = json_request(serde_json::json!({"phone": phone}).to_string().into_bytes());
        request.headers = vec![("content-type".into(), format!("{media}; charset=utf-8"))];
        prop_assert_eq!(rest::input(Rpc::SetMyPhone, &request), Ok(Input::Phone(phone)));
        request.body = Ok(b"phone=+41791234567".to_vec());
        let error = rest::input(Rpc::SetMyPhone, &request).expect_err("a form body is not JSON");
        assert_documented(&error, &[malformed])?;
    }

    // --- gRPC and gRPC-Web frames ---

    #[test]
    fn frames_of_any_bytes_unframe_as_the_spec_says(
        body in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..64),
            // Mostly well-formed prefixes, so that lengths sometimes match.
            (0u8..4, proptest::collection::vec(any::<u8>(), 0..32), -2i64..=2).prop_map(|(flag, message, skew)| {
                let declared = (message.len() as i64 + skew).max(0) as u32;
                let mut body = vec![flag];
                body.extend_from_slice(&declared.to_be_bytes());
                body.extend_from_slice(&message);
                body
            }),
        ],
        encoding in proptest::option::of("[a-z]{1,8}"),
    ) {
        let got = grpc::unframe(&body, encoding.as_deref());
        match expected_unframe(&body) {
            Ok(message) => prop_assert_eq!(got, Ok(message)),
            Err("compressed") => {
                let error = got.expect_err("compressed frames are refused");
                prop_assert!(compressed(&error), "{error:?}");
                let declared = encoding.as_deref().unwrap_or("none declared");
                prop_assert!(error.status().message.contains(declared));
                assert_documented(&error, &[compressed])?;
            }
            Err(_) => {
                let error = got.expect_err("malformed frames are refused");
                assert_documented(&error, &[malformed])?;
            }
        }
    }

    #[test]
    fn mutated_frames_decode_or_are_refused_as_documented(
        body in proptest::sample::select(valid_frames()).prop_flat_map(mutated),
        rpc in proptest::sample::select(&ALL_RPCS[..]),
    ) {
        let result = grpc::unframe(&body, None).and_then(|message| grpc::decode(rpc, message));
        if let Err(error) = result {
            assert_documented(&error, &[malformed, compressed])?;
        }
    }

    // --- protobuf request messages ---

    #[test]
    fn protobuf_of_any_bytes_decodes_or_is_malformed(
        message in proptest::collection::vec(any::<u8>(), 0..64),
        rpc in proptest::sample::select(&ALL_RPCS[..]),
    ) {
        if let Err(error) = grpc::decode(rpc, &message) {
            assert_documented(&error, &[malformed])?;
        }
    }

    #[test]
    fn protobuf_requests_round_trip(
        values in proptest::collection::vec(any::<String>(), 0..3),
        before in proptest::collection::vec(unknown_field(), 0..3),
        after in proptest::collection::vec(unknown_field(), 0..3),
    ) {
        // Unknown fields are skipped; of repeated occurrences of field 1 the last one wins;
        // none at all is the empty string (proto3).
        let mut message = Vec::new();
        before.iter().for_each(|f| f.encode(&mut message));
        for value in &values {
            string_field_1(value, &mut message);
        }
        after.iter().for_each(|f| f.encode(&mut message));
        let expected = values.last().cloned().unwrap_or_default();
        let body = frame(0, &message);
        let unframed = grpc::unframe(&body, None);
        prop_assert_eq!(unframed, Ok(&message[..]));
        prop_assert_eq!(grpc::decode(Rpc::SetMyPhone, &message), Ok(Input::Phone(expected.clone())));
        prop_assert_eq!(grpc::decode(Rpc::VerifyMyPhone, &message), Ok(Input::Code(expected)));
        for rpc in [Rpc::GetMyPhone, Rpc::ResendMyPhoneVerification, Rpc::RemoveMyPhone] {
            prop_assert_eq!(grpc::decode(rpc, &message), Ok(Input::Empty));
        }
    }

    #[test]
    fn protobuf_strings_that_are_not_utf8_are_malformed(
        bytes in proptest::collection::vec(any::<u8>(), 1..32)
            .prop_filter("not UTF-8", |b| std::str::from_utf8(b).is_err()),
    ) {
        let mut message = vec![0x0a];
        varint(bytes.len() as u64, &mut message);
        message.extend_from_slice(&bytes);
        let error = grpc::decode(Rpc::SetMyPhone, &message);
        prop_assert!(matches!(error, Err(Error::MalformedBody(_))), "{error:?}");
    }
}

// --- whole requests through api::handle ---

fn env(name: &str) -> Option<String> {
    match name {
        "AUTH_ISSUER" => Some("https://issuer.test".into()),
        // RFC 8037's example Ed25519 key.
        "AUTH_JWKS" => Some(
            r#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#
                .into(),
        ),
        _ => None,
    }
}

/// A google.rpc.Status code the service documents, with the HTTP status it maps to.
fn documented_code(code: i64) -> bool {
    [3, 5, 8, 9, 10, 12, 13, 14, 16].contains(&code)
}

/// Splits a gRPC-Web body into frames (flag, payload); `None` if it does not frame exactly.
fn web_frames(mut body: &[u8]) -> Option<Vec<(u8, Vec<u8>)>> {
    let mut frames = Vec::new();
    while !body.is_empty() {
        if body.len() < 5 {
            return None;
        }
        let len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
        let payload = body.get(5..5 + len)?;
        frames.push((body[0], payload.to_vec()));
        body = &body[5 + len..];
    }
    Some(frames)
}

/// Checks that an answer to an unauthenticated request is a well-formed refusal in its encoding.
fn check_refusal(content_type: Option<&str>, response: &Response) -> Result<(), TestCaseError> {
    let media = content_type
        .and_then(|ct| ct.split(';').next())
        .map(|m| m.trim().to_ascii_lowercase());
    let header = |name: &str, fields: &[(String, String)]| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    match media.as_deref() {
        Some("application/grpc" | "application/grpc+proto") => {
            prop_assert_eq!(response.status, 200);
            prop_assert!(response.body.is_empty() && response.trailers.is_empty());
            let code: i64 = header("grpc-status", &response.headers)
                .and_then(|c| c.parse().ok())
                .unwrap_or(-1);
            prop_assert!(documented_code(code), "grpc-status {code}");
            let message = header("grpc-message", &response.headers).unwrap_or_default();
            prop_assert!(!message.is_empty());
            let details = header("grpc-status-details-bin", &response.headers).unwrap_or_default();
            let bytes = base64::engine::general_purpose::STANDARD_NO_PAD.decode(details);
            prop_assert!(bytes.is_ok());
        }
        Some("application/grpc-web" | "application/grpc-web+proto") => {
            prop_assert_eq!(response.status, 200);
            let frames = web_frames(&response.body);
            prop_assert!(frames.is_some(), "body does not frame");
            let frames = frames.unwrap_or_default();
            let last = frames.last().cloned().unwrap_or_default();
            prop_assert_eq!(last.0, 0x80, "last frame is not a trailer frame");
            let block = String::from_utf8_lossy(&last.1).into_owned();
            let code: i64 = block
                .lines()
                .find_map(|l| l.strip_prefix("grpc-status:"))
                .and_then(|c| c.trim().parse().ok())
                .unwrap_or(-1);
            prop_assert!(documented_code(code), "{block}");
            prop_assert!(block.contains("\r\ngrpc-message:"), "{block}");
        }
        _ => {
            prop_assert!(response.status >= 400, "status {}", response.status);
            let body: serde_json::Value = serde_json::from_slice(&response.body)
                .map_err(|e| TestCaseError::fail(format!("body is not JSON: {e}")))?;
            let code = body["code"].as_i64().unwrap_or(-1);
            prop_assert!(documented_code(code), "{body}");
            let message = body["message"].as_str().unwrap_or_default();
            prop_assert!(!message.is_empty(), "{body}");
        }
    }
    Ok(())
}

fn path() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("/auth/v1/users/me/phone".to_string()),
        Just("/auth/v1/users/me/phone/_verify".to_string()),
        Just("/auth/v1/users/me/phone/_resend_verification".to_string()),
        "/zitadel.auth.v1.AuthService/(SetMyPhone|GetMyPhone|VerifyMyPhone|ResendMyPhoneVerification|RemoveMyPhone|Other)",
        "/[ -~]{0,24}",
    ]
}

fn content_type() -> impl Strategy<Value = Option<String>> {
    proptest::option::of(prop_oneof![
        Just("application/json".to_string()),
        Just("Application/JSON; charset=utf-8".to_string()),
        Just("application/grpc".to_string()),
        Just("application/grpc+proto".to_string()),
        Just("application/grpc-web".to_string()),
        Just("application/grpc-web+proto".to_string()),
        "[ -~]{0,24}",
    ])
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..64),
        proptest::sample::select(valid_frames()).prop_flat_map(mutated),
        proptest::sample::select(valid_json()).prop_flat_map(mutated),
    ]
}

fn authorization() -> impl Strategy<Value = Option<String>> {
    proptest::option::of(prop_oneof![
        "[ -~]{0,40}",
        "(Bearer|bearer|Basic) [ -~]{0,40}",
        "Bearer [A-Za-z0-9_\\-]{1,20}\\.[A-Za-z0-9_\\-]{0,20}\\.[A-Za-z0-9_\\-]{0,20}",
    ])
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn any_unauthenticated_request_gets_a_well_formed_refusal(
        method in prop_oneof![
            proptest::sample::select(vec!["GET", "PUT", "POST", "DELETE", "PATCH"]).prop_map(String::from),
            "[A-Z]{1,8}",
        ],
        path in path(),
        content_type in content_type(),
        body in body(),
        authorization in authorization(),
    ) {
        let open_store = |_: &str| -> Result<Box<dyn KeyValue>, crate::platform::OpenError> {
            Ok(Box::new(MemoryKv::default()))
        };
        let (clock, random) = (FixedClock::at(1_800_000_000), CountingRandom(Cell::new(0)));
        let services = Services {
            settings: &|name: &str| Ok(env(name)),
            settings_generation: None,
            open_store: &open_store,
            clock: &clock,
            random: &random,
            http: &NoIssuer,
            sms: &crate::test_support::RecordingSms::new(),
        };
        let mut request = request(&method, &path, content_type.as_deref(), body);
        if let Some(value) = &authorization {
            request.headers.push(("authorization".into(), value.clone()));
        }
        let reply = super::handle(&request, &services);
        prop_assert!(reply.followup.is_none(), "nothing is sent for a refused request");
        check_refusal(content_type.as_deref(), &reply.response)?;
    }
}

#[test]
fn a_frame_declaring_more_than_it_carries_is_malformed_not_a_panic() {
    // 4 GiB - 1 declared, nothing carried: must not try to allocate or slice past the end.
    let error = grpc::unframe(&[0, 0xff, 0xff, 0xff, 0xff], None);
    assert!(matches!(error, Err(Error::MalformedBody(_))), "{error:?}");
}
