//! gRPC-Web text mode (`application/grpc-web-text`, the default of Google's grpc-web client):
//! frames base64-encoded, sent here in several body chunks each padded on its own (as the spec
//! allows), against the reference host; `wasmtime_serve.rs` runs the same call on `wasmtime
//! serve`. The answers are decoded by hand, independently of the service's own codec.

use std::convert::Infallible;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use futures::StreamExt as _;
use http_body_util::{BodyExt as _, StreamBody};
use hyper::body::Frame;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use prost::Message as _;

use crate::grpc::{DetailsResponse, GetMyPhoneResponse, SetMyPhoneRequest, VerifyMyPhoneRequest};
use crate::support;
use crate::tokens;

/// What a text-mode call answered, decoded.
#[derive(Debug)]
pub(crate) struct TextAnswer {
    pub content_type: String,
    /// `grpc-status` from the trailer frame, or from the headers of a Trailers-Only answer.
    pub status: String,
    pub message: String,
    /// The response message, when one came.
    pub payload: Option<Vec<u8>>,
}

/// `message` framed and base64-encoded in `pieces` separately padded chunks.
pub(crate) fn text_chunks(message: &[u8], pieces: usize) -> Vec<Vec<u8>> {
    let mut framed = vec![0u8];
    framed.extend_from_slice(&u32::try_from(message.len()).unwrap().to_be_bytes());
    framed.extend_from_slice(message);
    let size = framed.len().div_ceil(pieces.max(1)).max(1);
    framed
        .chunks(size)
        .map(|piece| STANDARD.encode(piece).into_bytes())
        .collect()
}

/// Calls `rpc` in text mode at `base_url`, sending `chunks` as separate body chunks.
pub(crate) async fn text_call(
    base_url: &str,
    rpc: &str,
    token: Option<&str>,
    chunks: Vec<Vec<u8>>,
) -> TextAnswer {
    // A short pause between chunks, so they travel as separate writes.
    let stream = futures::stream::iter(chunks).then(|chunk| async move {
        tokio::time::sleep(Duration::from_millis(20)).await;
        Ok::<_, Infallible>(Frame::data(Bytes::from(chunk)))
    });
    let mut request = hyper::Request::post(format!("{base_url}/zitadel.auth.v1.AuthService/{rpc}"))
        .header("content-type", "application/grpc-web-text")
        .header("accept", "application/grpc-web-text")
        .header("x-grpc-web", "1");
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let request = request
        .body(StreamBody::new(Box::pin(stream)))
        .expect("request");
    let client = Client::builder(TokioExecutor::new()).build_http();
    let response = client.request(request).await.expect("the host answers");
    assert_eq!(
        response.status(),
        200,
        "gRPC-Web answers 200 even for errors"
    );
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let content_type = header("content-type");
    let (head_status, head_message) = (header("grpc-status"), header("grpc-message"));
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    if body.is_empty() {
        // Trailers-Only: the status in the headers (how a host answers for a failed guest).
        return TextAnswer {
            content_type,
            status: head_status,
            message: head_message,
            payload: None,
        };
    }
    let binary = STANDARD
        .decode(&body)
        .unwrap_or_else(|e| panic!("the answer is base64 ({e}): {body:?}"));
    let mut rest = &binary[..];
    let (mut payload, mut trailers) = (None, None);
    while let Some((head, tail)) = rest.split_first_chunk::<5>() {
        let length = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
        assert!(tail.len() >= length, "a whole frame: {binary:?}");
        let (frame, next) = tail.split_at(length);
        if head[0] == 0x80 {
            trailers = Some(String::from_utf8_lossy(frame).into_owned());
        } else {
            payload = Some(frame.to_vec());
        }
        rest = next;
    }
    let trailers = trailers.unwrap_or_else(|| panic!("no trailer frame in {binary:?}"));
    let field = |name: &str| {
        trailers
            .lines()
            .find_map(|line| line.strip_prefix(&format!("{name}:")))
            .unwrap_or_default()
            .trim()
            .to_owned()
    };
    TextAnswer {
        content_type,
        status: field("grpc-status"),
        message: field("grpc-message"),
        payload,
    }
}

/// Set, verify and read a phone in text mode, each request in separately padded chunks.
/// `last_code` reads the code the SMS carried.
pub(crate) async fn round_trip<F, Fut>(base_url: &str, user: &str, phone: &str, last_code: F)
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = String>,
{
    let token = tokens::token(user);
    let set = SetMyPhoneRequest {
        phone: phone.into(),
    }
    .encode_to_vec();
    let answer = text_call(base_url, "SetMyPhone", Some(&token), text_chunks(&set, 3)).await;
    assert_eq!(answer.status, "0", "{answer:?}");
    assert_eq!(answer.content_type, "application/grpc-web-text+proto");
    let details = DetailsResponse::decode(&answer.payload.expect("a message")[..]).expect("proto");
    assert!(details.details.expect("details").sequence > 0);

    let code = last_code().await;
    let verify = VerifyMyPhoneRequest { code }.encode_to_vec();
    let answer = text_call(
        base_url,
        "VerifyMyPhone",
        Some(&token),
        text_chunks(&verify, 2),
    )
    .await;
    assert_eq!(answer.status, "0", "{answer:?}");

    let answer = text_call(base_url, "GetMyPhone", Some(&token), text_chunks(&[], 1)).await;
    assert_eq!(answer.status, "0", "{answer:?}");
    let phone = GetMyPhoneResponse::decode(&answer.payload.expect("a message")[..])
        .expect("proto")
        .phone
        .expect("a phone");
    assert!(phone.is_phone_verified, "{phone:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_mode_serves_every_rpc_in_chunks() {
    let host = support::start().await;
    let url = host.running.url();
    round_trip(&url, "text-user", "+41 71 000 00 40", || {
        host.last_code("+41710000040")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_text_bodies_are_invalid_arguments_and_change_nothing() {
    let host = support::start().await;
    let url = host.running.url();
    let token = tokens::token("text-bad");
    let set = SetMyPhoneRequest {
        phone: "+41 71 000 00 41".into(),
    }
    .encode_to_vec();
    let mut valid = text_chunks(&set, 1);
    valid[0].push(b'*');
    for (name, chunks) in [
        ("a byte outside base64", valid),
        (
            "JSON instead of base64",
            vec![br#"{"phone":"+41710000041"}"#.to_vec()],
        ),
        ("a lone character", vec![b"A".to_vec()]),
        ("padding inside a group", vec![b"AA=A".to_vec()]),
    ] {
        let answer = text_call(&url, "SetMyPhone", Some(&token), chunks).await;
        assert_eq!(answer.status, "3", "{name}: {answer:?}");
        assert!(
            answer.message.contains("gRPC-Web text"),
            "{name}: {answer:?}"
        );
    }
    // Errors in text mode are text too; a missing token is UNAUTHENTICATED.
    let answer = text_call(&url, "SetMyPhone", None, text_chunks(&set, 2)).await;
    assert_eq!(answer.status, "16", "{answer:?}");
    assert_eq!(answer.content_type, "application/grpc-web-text+proto");

    host.running.idle().await;
    assert!(host.user_keys().is_empty(), "nothing stored");
    assert!(host.sms.messages().is_empty(), "nothing sent");
}
