use super::metered::*;
use super::requests::*;
use super::*;
use crate::keyvalue::Backend;
use hyper::{HeaderMap, Method, header};
use set_my_phone_wire::Protocol;

#[test]
fn rpcs_come_from_fixed_names() {
    let json = Protocol::Json;
    let cases = [
        (Method::PUT, "/auth/v1/users/me/phone", json, "SetMyPhone"),
        (Method::GET, "/auth/v1/users/me/phone", json, "GetMyPhone"),
        (
            Method::DELETE,
            "/auth/v1/users/me/phone",
            json,
            "RemoveMyPhone",
        ),
        (
            Method::POST,
            "/auth/v1/users/me/phone/_verify",
            json,
            "VerifyMyPhone",
        ),
        (
            Method::POST,
            "/auth/v1/users/me/phone/_resend_verification",
            json,
            "ResendMyPhoneVerification",
        ),
        (Method::POST, "/auth/v1/users/me/phone", json, "unknown"),
        (Method::GET, "/wp-admin/../../etc/passwd", json, "unknown"),
        (
            Method::POST,
            "/zitadel.auth.v1.AuthService/GetMyPhone",
            Protocol::Grpc,
            "GetMyPhone",
        ),
        (
            Method::POST,
            "/zitadel.auth.v1.AuthService/VerifyMyPhone",
            Protocol::GrpcWeb,
            "VerifyMyPhone",
        ),
        (
            Method::POST,
            "/zitadel.auth.v1.AuthService/Anything",
            Protocol::Grpc,
            "unknown",
        ),
    ];
    for (method, path, protocol, rpc) in cases {
        assert_eq!(rpc_of(&method, path, protocol), rpc, "{method} {path}");
    }
}

#[test]
fn protocols_come_from_the_content_type() {
    // The table itself is the wire crate's (tested there); this is the header's reading.
    let mut headers = HeaderMap::new();
    assert_eq!(protocol_of(&headers), Protocol::Json);
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/grpc-web-text"),
    );
    assert_eq!(protocol_of(&headers), Protocol::GrpcWebText);
}

#[test]
fn json_codes_come_from_the_body_else_the_status() {
    assert_eq!(
        json_status_code(br#"{"code":9,"message":"x"}"#),
        Some("FAILED_PRECONDITION")
    );
    assert_eq!(json_status_code(br#"{"code":16}"#), Some("UNAUTHENTICATED"));
    assert_eq!(json_status_code(br#"{"code":99}"#), Some("UNKNOWN"));
    assert_eq!(json_status_code(br#"{"message":"x"}"#), None);
    assert_eq!(code_of_http_status(429), "RESOURCE_EXHAUSTED");
    assert_eq!(code_of_http_status(503), "UNAVAILABLE");
    assert_eq!(code_of_http_status(418), "UNKNOWN");
}

#[test]
fn grpc_web_trailers_are_found_across_chunks() {
    let mut body = vec![0u8, 0, 0, 0, 3, 1, 2, 3];
    let trailers = b"grpc-status:5\r\ngrpc-message:no\r\n";
    body.push(0x80);
    body.extend_from_slice(&u32::try_from(trailers.len()).unwrap().to_be_bytes());
    body.extend_from_slice(trailers);
    for split in 0..body.len() {
        let mut scan = WebScan::default();
        let (a, b) = body.split_at(split);
        let first = scan.feed(a);
        let status = first.or_else(|| scan.feed(b));
        assert_eq!(status, Some("NOT_FOUND"), "split at {split}");
    }
}

#[tokio::test]
async fn the_metered_store_counts_auth_cache_hits_misses_and_errors() {
    use crate::keyvalue::{Fault, MemoryBackend};
    let memory = MemoryBackend::new();
    let metrics = Arc::new(Metrics::new());
    let store = MeteredBackend {
        inner: Arc::new(memory.clone()),
        metrics: Arc::clone(&metrics),
    };
    let series = |text: &str, prefix: &str| -> Vec<String> {
        text.lines()
            .filter(|line| line.starts_with(prefix))
            .map(str::to_owned)
            .collect()
    };
    assert!(store.get("default", "auth:jwks:k1").await.is_ok());
    assert!(
        store
            .set("default", "auth:jwks:k1", b"{}".to_vec())
            .await
            .is_ok()
    );
    assert!(store.get("default", "auth:jwks:k1").await.is_ok());
    assert!(store.get("default", "auth:jwks:k1").await.is_ok());
    // Not cache entries: not counted.
    assert!(store.get("default", "user:o:u").await.is_ok());
    assert!(store.get("default", "authx:jwks:k1").await.is_ok());
    memory.set_fault(Fault::FailGets);
    assert!(store.get("default", "auth:jwks:k1").await.is_err());
    let text = metrics.encode(None);
    let mut lookups = series(&text, "set_my_phone_auth_cache_lookups_total");
    lookups.sort();
    assert_eq!(
        lookups,
        [
            r#"set_my_phone_auth_cache_lookups_total{cache="jwks",result="hit"} 2"#,
            r#"set_my_phone_auth_cache_lookups_total{cache="jwks",result="miss"} 1"#,
        ],
        "{text}"
    );
    let errors = series(&text, "set_my_phone_store_errors_total");
    assert!(
        errors.contains(&r#"set_my_phone_store_errors_total{operation="get"} 1"#.to_owned()),
        "{text}"
    );
    assert!(
        errors.contains(&r#"set_my_phone_store_errors_total{operation="set"} 0"#.to_owned()),
        "{text}"
    );
}

#[test]
fn cache_kinds_are_bounded_label_values() {
    assert_eq!(cache_kind("auth:jwks:abcdef"), Some("jwks"));
    assert_eq!(cache_kind("auth:introspection:0a1b"), Some("introspection"));
    assert_eq!(cache_kind("auth:we ird{}:x"), Some("other"));
    assert_eq!(cache_kind("user:org:user"), None);
    assert_eq!(cache_kind("auth:nocolon"), None);
    let metrics = Metrics::new();
    for n in 0..40 {
        metrics.count_cache_lookup(&format!("auth:kind{n}:x"), true);
    }
    let text = metrics.encode(None);
    let kinds = text
        .lines()
        .filter(|line| line.starts_with("set_my_phone_auth_cache_lookups_total"))
        .count();
    assert_eq!(kinds, MAX_CACHE_KINDS + 1, "{text}");
}
