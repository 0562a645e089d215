//! Bad input: each class answers a clear google.rpc.Status with the right HTTP status and
//! stores and sends nothing.

use crate::support::{self, Answer, PHONE_URL, TestHost};
use crate::tokens;
use reqwest::Method;
use set_my_phone_host::keyvalue::Fault;

async fn put(host: &TestHost, content_type: Option<&str>, body: impl Into<Vec<u8>>) -> Answer {
    host.send(
        Method::PUT,
        PHONE_URL,
        Some(&tokens::token("ivan")),
        content_type,
        body.into(),
    )
    .await
}

async fn assert_nothing_changed(host: &TestHost) {
    host.running.idle().await;
    assert!(
        host.user_keys().is_empty(),
        "nothing stored: {:?}",
        host.user_keys()
    );
    assert!(host.sms.messages().is_empty(), "nothing sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_bodies_are_invalid_arguments() {
    let host = support::start().await;
    let json = Some("application/json");
    let cases: Vec<(&str, Answer)> = vec![
        (
            "malformed JSON",
            put(&host, json, r#"{"phone": "+41"#).await,
        ),
        (
            "JSON that is not an object",
            put(&host, json, r#"["+41710000000"]"#).await,
        ),
        (
            "phone is a number",
            put(&host, json, r#"{"phone": 41710000000}"#).await,
        ),
        (
            "phone is an object",
            put(&host, json, r#"{"phone": {"number": "+41710000000"}}"#).await,
        ),
        ("missing body", put(&host, json, "").await),
        ("missing phone", put(&host, json, r#"{"other": 1}"#).await),
        ("empty phone", put(&host, json, r#"{"phone": ""}"#).await),
        (
            "51 runes",
            put(&host, json, format!(r#"{{"phone": "{}"}}"#, "1".repeat(51))).await,
        ),
        (
            "not UTF-8",
            put(&host, json, b"{\"phone\": \"\xff\xfe\"}".to_vec()).await,
        ),
    ];
    for (name, answer) in &cases {
        assert_eq!(
            (answer.status, answer.code()),
            (400, 3),
            "{name}: {:?}",
            answer.body
        );
        assert!(
            answer.body["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{name}"
        );
    }
    let length =
        "invalid SetMyPhoneRequest.Phone: value length must be between 1 and 50 runes, inclusive";
    for name in ["missing body", "missing phone", "empty phone", "51 runes"] {
        let answer = &cases.iter().find(|(n, _)| *n == name).expect("case").1;
        assert_eq!(answer.body["message"], length, "{name}");
    }
    assert_nothing_changed(&host).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_numbers_use_the_upstream_error() {
    let host = support::start().await;
    let json = Some("application/json");
    // 50 two-byte runes: within the rune limit though 100 bytes long, so it reaches the parser.
    let runes = format!(r#"{{"phone": "{}"}}"#, "é".repeat(50));
    for body in [
        r#"{"phone": "hello"}"#.to_string(),
        r#"{"phone": "+41 12"}"#.into(),
        runes,
    ] {
        let answer = put(&host, json, body.clone()).await;
        assert_eq!((answer.status, answer.code()), (400, 3), "{body}");
        assert_eq!(
            answer.body["message"], "Phone is invalid (PHONE-so0wa)",
            "{body}"
        );
        assert_eq!(answer.detail_id(), Some("PHONE-so0wa"));
    }
    assert_nothing_changed(&host).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transport_errors_have_their_own_statuses() {
    let host = support::start().await;
    let token = tokens::token("ivan");

    let big = format!(
        r#"{{"phone": "+41710000000", "pad": "{}"}}"#,
        "x".repeat(64 * 1024)
    );
    let answer = put(&host, Some("application/json"), big).await;
    assert_eq!(
        (answer.status, answer.code()),
        (413, 8),
        "{:?}",
        answer.body
    );

    // Read as JSON whatever the content type (grpc-gateway's rule): a form body is not JSON.
    let answer = put(
        &host,
        Some("application/x-www-form-urlencoded"),
        "phone=%2B41710000000",
    )
    .await;
    assert_eq!(
        (answer.status, answer.code()),
        (400, 3),
        "{:?}",
        answer.body
    );

    let answer = host
        .send(
            Method::GET,
            "/auth/v1/users/me/email",
            Some(&token),
            None,
            Vec::new(),
        )
        .await;
    assert_eq!((answer.status, answer.code()), (404, 5));
    let answer = host.send(Method::GET, "/", None, None, Vec::new()).await;
    assert_eq!((answer.status, answer.code()), (404, 5));

    let answer = host
        .send(Method::PATCH, PHONE_URL, Some(&token), None, Vec::new())
        .await;
    assert_eq!((answer.status, answer.code()), (405, 12));
    assert!(answer.headers.contains_key("allow"));

    // The charset parameter is fine.
    let answer = put(
        &host,
        Some("application/json; charset=utf-8"),
        r#"{"phone": "+41 71 000 00 00", "unknown": true}"#,
    )
    .await;
    assert_eq!(
        answer.status, 200,
        "unknown fields are ignored: {:?}",
        answer.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configuration_errors_name_the_variable_not_the_value() {
    let env = vec![("AUTH_JWKS".to_string(), tokens::keys().jwks.clone())];
    let host = support::start_with_env(env).await;
    let answer = host.set_phone("ivan", "+41 71 000 00 00").await;
    assert_eq!((answer.status, answer.code()), (500, 13));
    assert!(
        answer.body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("AUTH_ISSUER"),
        "{:?}",
        answer.body
    );

    let mut env = support::base_env();
    env.retain(|(name, _)| name != "PHONE_CODE_SECRET");
    env.push(("PHONE_CODE_SECRET".into(), "short-secret".into()));
    let host = support::start_with_env(env).await;
    let answer = host.set_phone("ivan", "+41 71 000 00 00").await;
    assert_eq!((answer.status, answer.code()), (500, 13));
    let message = answer.body["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("PHONE_CODE_SECRET") && !message.contains("short-secret"),
        "{message}"
    );

    let mut env = support::base_env();
    env.push(("KV_STORE".into(), "missing".into()));
    let host = support::start_with_env(env).await;
    let answer = host.set_phone("ivan", "+41 71 000 00 00").await;
    assert_eq!((answer.status, answer.code()), (500, 13));
    assert!(
        answer.body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("KV_STORE")
    );
    assert_nothing_changed(&host).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_failures_answer_unavailable_and_write_nothing() {
    let host = support::start().await;
    host.store.set_fault(Fault::FailGets);
    let answer = host.set_phone("ivan", "+41 71 000 00 00").await;
    assert_eq!(
        (answer.status, answer.code()),
        (503, 14),
        "{:?}",
        answer.body
    );
    host.store.set_fault(Fault::FailSets);
    let answer = host.set_phone("ivan", "+41 71 000 00 00").await;
    assert_eq!(
        (answer.status, answer.code()),
        (503, 14),
        "{:?}",
        answer.body
    );
    assert_nothing_changed(&host).await;
    host.store.set_fault(Fault::None);
    assert_eq!(
        host.set_phone("ivan", "+41 71 000 00 00").await.status,
        200,
        "recovers"
    );
}

/// `curl -X PUT … -d '{"phone":…}'` sends `application/x-www-form-urlencoded`; upstream's
/// grpc-gateway reads it as JSON, and so does the service. So does a body with no content type.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_bodies_need_no_json_content_type() {
    let host = support::start().await;
    for (content_type, phone) in [
        (Some("application/x-www-form-urlencoded"), "+41710000001"),
        (Some("text/plain; charset=utf-8"), "+41710000002"),
        (None, "+41710000003"),
    ] {
        let answer = put(&host, content_type, format!(r#"{{"phone":"{phone}"}}"#)).await;
        assert_eq!(answer.status, 200, "{content_type:?}: {:?}", answer.body);
        host.running.idle().await;
        let sent = host.sms.messages();
        assert_eq!(
            sent.last().map(|sent| sent.message.recipient.as_str()),
            Some(phone),
            "{content_type:?}"
        );
    }
}
