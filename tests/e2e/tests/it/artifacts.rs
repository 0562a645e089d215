//! The shipped, composed artifact (core + SMS provider component, pre-initialised) on the
//! reference host: real providers over wasi:http against local fake endpoints, and the
//! promise that it imports nothing but wasi:*.

use crate::fake_http::{Behaviour, FakeServer};
use crate::support::{self, TestHost};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::time::Duration;

const ARTIFACT: &str = "set-my-phone.wasm";

async fn start(extra: &[(&str, String)]) -> TestHost {
    let mut env = support::base_env();
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.clone())));
    support::start_wasm(support::artifact_path(ARTIFACT), env).await
}

fn delivery(host: &TestHost, user: &str) -> serde_json::Value {
    host.record(user).expect("record")["phone"]["code"]["delivery"].clone()
}

/// The code's delivery once the host has finished its after-answer work (the SMS).
async fn settled_delivery(host: &TestHost, user: &str) -> serde_json::Value {
    host.running.idle().await;
    delivery(host, user)
}

#[test]
fn the_draft2_artifact_imports_only_wasi() {
    let engine = wasmtime::Engine::default();
    let component =
        wasmtime::component::Component::from_file(&engine, support::artifact_path(ARTIFACT))
            .expect("loads");
    let imports: Vec<String> = component
        .component_type()
        .imports(&engine)
        .map(|(name, _)| name.to_string())
        .collect();
    assert!(!imports.is_empty());
    for name in &imports {
        assert!(
            name.starts_with("wasi:"),
            "non-wasi import {name} in {imports:?}"
        );
    }
    assert!(
        imports
            .iter()
            .any(|n| n.starts_with("wasi:keyvalue/atomics@0.2.0-draft2")),
        "{imports:?}"
    );
    assert!(
        imports
            .iter()
            .any(|n| n.starts_with("wasi:http/outgoing-handler")),
        "{imports:?}"
    );
    let exports: Vec<String> = component
        .component_type()
        .exports(&engine)
        .map(|(name, _)| name.to_string())
        .collect();
    assert!(
        exports
            .iter()
            .any(|n| n.starts_with("wasi:http/incoming-handler")),
        "{exports:?}"
    );
}

/// The components at an artifact's top level: one for a component built by itself (wrapped as
/// one by its build), one per component composed into it (each instantiated again with every
/// fresh instance, used or not).
fn composed_components(name: &str) -> usize {
    let bytes = std::fs::read(support::artifact_path(name)).expect("artifact");
    let (mut depth, mut nested) = (0, 0);
    for payload in wasmparser::Parser::new(0).parse_all(&bytes) {
        match payload.expect("a valid component") {
            wasmparser::Payload::Version { .. } => depth += 1,
            wasmparser::Payload::End(_) => depth -= 1,
            wasmparser::Payload::ComponentSection { .. } if depth == 1 => nested += 1,
            _ => {}
        }
    }
    nested
}

#[test]
fn the_shipped_artifacts_have_their_providers_and_store_compiled_in() {
    assert_eq!(
        composed_components(ARTIFACT),
        1,
        "the core with its SMS providers inside, nothing composed beside it"
    );
    // For `wasmtime serve`, the file store inside too; with `-Sconfig`, composed with the bridge
    // to its wasi:config.
    assert_eq!(composed_components("set-my-phone-wasmtime-serve.wasm"), 1);
    assert_eq!(
        composed_components("set-my-phone-wasmtime-serve-config.wasm"),
        2
    );
    // A provider of your own is composed into the core that imports one.
    assert_eq!(composed_components("examples/set-my-phone-vonage.wasm"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_delivery_is_signed_like_upstream() {
    let receiver = FakeServer::start(200, "{}").await;
    let key = "webhook-signing-key";
    let host = start(&[
        ("SMS_PROVIDER", "webhook".into()),
        ("SMS_WEBHOOK_URL", format!("{}/sms", receiver.url)),
        ("SMS_WEBHOOK_SIGNING_KEY", key.into()),
    ])
    .await;
    // A German-speaking user (ZITADEL puts the preferred language in `locale`).
    let token = crate::tokens::token_with("wendy", serde_json::json!({"locale": "de-CH"}));
    let set = host
        .send(
            reqwest::Method::PUT,
            support::PHONE_URL,
            Some(&token),
            Some("application/json"),
            br#"{"phone":"+41 71 000 00 20"}"#.to_vec(),
        )
        .await;
    assert_eq!(set.status, 200, "{:?}", set.body);
    // Sent: logged, not stored (only a failure is filed on the code).
    assert_eq!(settled_delivery(&host, "wendy").await["status"], "pending");

    let requests = receiver.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(
        (request.method.as_str(), request.path.as_str()),
        ("POST", "/sms")
    );
    let signature = request.headers["zitadel-signature"]
        .to_str()
        .expect("ascii");
    let (t, v1) = signature.split_once(',').expect("t=…,v1=…");
    let (t, v1) = (
        t.strip_prefix("t=").expect("t="),
        v1.strip_prefix("v1=").expect("v1="),
    );
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key.as_bytes()).expect("key");
    mac.update(format!("{t}.").as_bytes());
    mac.update(&request.body);
    assert_eq!(
        hex::encode(mac.finalize().into_bytes()),
        v1,
        "signature verifies"
    );

    let body: serde_json::Value = serde_json::from_slice(&request.body).expect("JSON body");
    let code = body["args"]["code"].as_str().expect("code");
    assert_eq!(code.len(), 6);
    assert_eq!(body["contextInfo"]["recipientPhoneNumber"], "+41710000020");
    assert_eq!(
        body["contextInfo"]["eventType"],
        "user.human.phone.code.added"
    );
    assert_eq!(
        body["templateData"]["text"],
        format!(
            "Ihr Bestätigungscode lautet {code}. Er ist 60 Min. gültig. Geben Sie ihn niemandem weiter."
        )
    );
    assert_eq!(body["templateData"]["language"], "de");
    // The code the receiver got verifies the phone.
    assert_eq!(host.verify("wendy", code).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twilio_messages_api_and_its_failures() {
    let twilio = FakeServer::start(201, r#"{"sid":"SM123","status":"queued"}"#).await;
    let host = start(&[
        ("SMS_PROVIDER", "twilio".into()),
        ("TWILIO_ACCOUNT_SID", "AC0001".into()),
        ("TWILIO_AUTH_TOKEN", "secret-token".into()),
        ("TWILIO_FROM", "+15005550006".into()),
        ("TWILIO_BASE_URL", twilio.url.clone()),
    ])
    .await;
    // A German-speaking user whose browser asks for French: the token's `locale` wins.
    let token = crate::tokens::token_with("tina", serde_json::json!({"locale": "de"}));
    let set = host
        .client
        .put(host.url(support::PHONE_URL))
        .header("authorization", format!("Bearer {token}"))
        .header("accept-language", "fr-CH, fr;q=0.9, en;q=0.8")
        .body(r#"{"phone":"+41 71 000 00 21"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(set.status(), 200);
    // Sent (its SID goes to the audit line, which logs.rs checks): nothing filed on the code.
    assert_eq!(settled_delivery(&host, "tina").await["status"], "pending");

    let request = &twilio.requests()[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/2010-04-01/Accounts/AC0001/Messages.json");
    let basic = base64::engine::general_purpose::STANDARD.encode("AC0001:secret-token");
    assert_eq!(
        request.headers["authorization"],
        format!("Basic {basic}").as_str()
    );
    assert!(
        request.headers["content-type"]
            .to_str()
            .expect("ascii")
            .starts_with("application/x-www-form-urlencoded")
    );
    let form: Vec<(String, String)> = form_urlencoded(&request.body);
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .expect(name)
    };
    assert_eq!(
        (field("To").as_str(), field("From").as_str()),
        ("+41710000021", "+15005550006")
    );
    let body = field("Body");
    assert!(
        body.starts_with("Ihr Bestätigungscode lautet ") && body.contains("Er ist 60 Min. gültig."),
        "{body}"
    );

    twilio.set(
        Behaviour::Answer(400),
        r#"{"code":21211,"message":"Invalid 'To' Phone Number"}"#,
    );
    assert_eq!(
        host.set_phone("tina", "+41 71 000 00 22").await.status,
        200,
        "the call still succeeds"
    );
    let failed = settled_delivery(&host, "tina").await;
    assert_eq!(
        (failed["status"].as_str(), failed["retryable"].as_bool()),
        (Some("failed"), Some(false))
    );

    twilio.set(Behaviour::Answer(503), "{}");
    assert_eq!(host.set_phone("tina", "+41 71 000 00 23").await.status, 200);
    let failed = settled_delivery(&host, "tina").await;
    assert_eq!(
        (failed["status"].as_str(), failed["retryable"].as_bool()),
        (Some("failed"), Some(true))
    );
}

/// Minimal application/x-www-form-urlencoded decoding for assertions.
pub(crate) fn form_urlencoded(body: &[u8]) -> Vec<(String, String)> {
    let decode = |s: &str| {
        let bytes = s.replace('+', " ").into_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' && i + 2 < bytes.len() {
                let hexpair = std::str::from_utf8(&bytes[i + 1..i + 3]).expect("hex");
                out.push(u8::from_str_radix(hexpair, 16).expect("hex"));
                i += 3;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        String::from_utf8(out).expect("utf-8")
    };
    String::from_utf8_lossy(body)
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_that_is_down_or_hangs_never_fails_the_call() {
    // Down: nothing listens on the port.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let host = start(&[
        ("SMS_PROVIDER", "webhook".into()),
        ("SMS_WEBHOOK_URL", format!("http://127.0.0.1:{closed}/sms")),
    ])
    .await;
    assert_eq!(host.set_phone("dora", "+41 71 000 00 24").await.status, 200);
    let failed = settled_delivery(&host, "dora").await;
    assert_eq!(
        (failed["status"].as_str(), failed["retryable"].as_bool()),
        (Some("failed"), Some(true))
    );
    assert_eq!(
        host.get_phone("dora").await.body["phone"]["phone"],
        "+41710000024",
        "the change is kept"
    );

    // Hangs: the answer does not wait for it; the 5 s time-out ends each attempt, and the
    // delivery is tried three times within its 20 s budget (retry.rs).
    let hanging = FakeServer::start(200, "{}").await;
    hanging.set(Behaviour::Hang, "");
    let host = start(&[
        ("SMS_PROVIDER", "webhook".into()),
        ("SMS_WEBHOOK_URL", format!("{}/sms", hanging.url)),
    ])
    .await;
    assert_eq!(host.set_phone("hugo", "+41 71 000 00 25").await.status, 200);
    assert_eq!(
        delivery(&host, "hugo")["status"],
        "pending",
        "answered while the provider hangs"
    );
    tokio::time::timeout(Duration::from_secs(60), host.running.idle())
        .await
        .expect("the provider time-out ends delivery");
    let failed = delivery(&host, "hugo");
    assert_eq!(
        (failed["status"].as_str(), failed["retryable"].as_bool()),
        (Some("failed"), Some(true))
    );
    assert_eq!(hanging.requests().len(), 3);
}
