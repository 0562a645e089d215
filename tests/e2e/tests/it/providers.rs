//! The SMS providers of the composed artifact beyond webhook and Twilio (`artifacts.rs`), each
//! round trip PUT → the provider's request at a local receiver → verify with the code it
//! carried: Amazon SNS (its Signature Version 4 checked by botocore's signer, not ours) and
//! WhatsApp's Cloud API; Twilio Verify, which makes and checks the code itself; retries of
//! retryable answers; and a provider brought from outside the provider crate
//! (`examples/sms-provider-vonage`, plugged in by `set-my-phone-tools plug`).

use crate::artifacts::form_urlencoded;
use crate::fake_http::{Behaviour, FakeServer};
use crate::support::{self, TestHost};
use base64::Engine as _;
use std::io::Write as _;
use std::process::{Command, Stdio};

const ARTIFACT: &str = "set-my-phone.wasm";
const SNS_OK: &str = "<PublishResponse xmlns=\"https://sns.amazonaws.com/doc/2010-03-31/\"><PublishResult><MessageId>567910cd-659e-55d4-8ccb-5aaf14679dc0</MessageId></PublishResult></PublishResponse>";

async fn start(extra: &[(&str, String)]) -> TestHost {
    let mut env = support::base_env();
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.clone())));
    support::start_wasm(support::artifact_path(ARTIFACT), env).await
}

/// The code in an English text: the word after "code is ".
fn code_in(text: &str) -> String {
    text.split("code is ")
        .nth(1)
        .expect("an English code text")
        .chars()
        .take_while(char::is_ascii_alphanumeric)
        .collect()
}

/// botocore's Python, from `scripts/test` (a venv under target/), or `None` with why.
fn botocore_python() -> Result<std::path::PathBuf, String> {
    let python = set_my_phone_test_harness::workspace_root().join("target/botocore/bin/python");
    if python.exists() {
        Ok(python)
    } else {
        Err(format!(
            "{} is missing (scripts/test makes it)",
            python.display()
        ))
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn amazon_sns_publish_is_signed_as_botocore_signs_it_and_its_code_verifies() {
    let sns = FakeServer::start(200, SNS_OK).await;
    let host = start(&[
        ("SMS_PROVIDER", "sns".into()),
        ("SMS_SNS_REGION", "eu-central-1".into()),
        ("SMS_SNS_ACCESS_KEY_ID", "AKIDEXAMPLE".into()),
        ("SMS_SNS_SECRET_ACCESS_KEY", "sns-secret-0123456789".into()),
        ("SMS_SNS_SENDER_ID", "SetMyPhone".into()),
        ("SMS_SNS_BASE_URL", sns.url.clone()),
    ])
    .await;
    assert_eq!(host.set_phone("sam", "+41 71 000 00 31").await.status, 200);
    host.running.idle().await;
    let request = sns.requests().pop().expect("SNS got a request");
    assert_eq!(
        (request.method.as_str(), request.path.as_str()),
        ("POST", "/")
    );
    let form = form_urlencoded(&request.body);
    let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    assert_eq!(field("Action").as_deref(), Some("Publish"));
    assert_eq!(field("PhoneNumber").as_deref(), Some("+41710000031"));
    assert_eq!(
        field("MessageAttributes.entry.1.Value.StringValue").as_deref(),
        Some("Transactional")
    );
    assert_eq!(
        field("MessageAttributes.entry.2.Value.StringValue").as_deref(),
        Some("SetMyPhone")
    );
    let authorization = request.headers["authorization"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(!authorization.contains("sns-secret"), "{authorization}");

    match botocore_python() {
        Ok(python) => {
            let headers: serde_json::Map<String, serde_json::Value> = request
                .headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().into()))
                .collect();
            let given = serde_json::json!({
                "method": "POST",
                "url": format!("{}/", sns.url),
                "headers": headers,
                "body": base64::engine::general_purpose::STANDARD.encode(&request.body),
                "region": "eu-central-1", "service": "sns",
                "key_id": "AKIDEXAMPLE", "secret": "sns-secret-0123456789",
            });
            let script =
                set_my_phone_test_harness::workspace_root().join("tests/e2e/sigv4_check.py");
            let mut child = Command::new(python)
                .arg(script)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("python runs");
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(given.to_string().as_bytes())
                .expect("write");
            let output = child.wait_with_output().expect("python ends");
            let said = String::from_utf8_lossy(&output.stdout);
            assert!(
                output.status.success() && said.trim() == "ok",
                "botocore disagrees: {said}{}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Err(why) => eprintln!("SKIPPED: the botocore check of SNS's signature: {why}"),
    }

    let code = code_in(&field("Message").expect("Message"));
    assert_eq!(host.verify("sam", &code).await.status, 200);
    assert_eq!(
        host.get_phone("sam").await.body["phone"]["isPhoneVerified"],
        true
    );

    // Throttling (AWS says so with a 400) is retried; a bad parameter is not.
    let throttled = "<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error></ErrorResponse>";
    sns.set(Behaviour::Answer(400), throttled);
    let before = sns.requests().len();
    assert_eq!(host.set_phone("sam", "+41 71 000 00 32").await.status, 200);
    host.running.idle().await;
    assert_eq!(
        sns.requests().len() - before,
        3,
        "the first try and two retries"
    );
    let invalid = "<ErrorResponse><Error><Type>Sender</Type><Code>InvalidParameter</Code><Message>bad</Message></Error></ErrorResponse>";
    sns.set(Behaviour::Answer(400), invalid);
    let before = sns.requests().len();
    assert_eq!(host.set_phone("sam", "+41 71 000 00 33").await.status, 200);
    host.running.idle().await;
    assert_eq!(
        sns.requests().len() - before,
        1,
        "a permanent failure is not retried"
    );
    let delivery = host.record("sam").expect("record")["phone"]["code"]["delivery"].clone();
    assert_eq!(
        (delivery["status"].as_str(), delivery["retryable"].as_bool()),
        (Some("failed"), Some(false))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn whatsapp_authentication_template_carries_the_code_which_verifies() {
    let graph = FakeServer::start(
        200,
        r#"{"messaging_product":"whatsapp","contacts":[{"input":"41710000041","wa_id":"41710000041"}],"messages":[{"id":"wamid.HBgLNDE3MTAwMDAwNDEVAgARGBI"}]}"#,
    )
    .await;
    let host = start(&[
        ("SMS_PROVIDER", "whatsapp".into()),
        ("SMS_WHATSAPP_TOKEN", "wa-secret-token".into()),
        ("SMS_WHATSAPP_PHONE_NUMBER_ID", "106540352242922".into()),
        ("SMS_WHATSAPP_TEMPLATE", "verification_code".into()),
        ("SMS_WHATSAPP_BASE_URL", graph.url.clone()),
    ])
    .await;
    assert_eq!(
        host.set_phone("wanda", "+41 71 000 00 41").await.status,
        200
    );
    host.running.idle().await;
    let request = graph.requests().pop().expect("the Cloud API got a request");
    assert_eq!(request.path, "/v21.0/106540352242922/messages");
    assert_eq!(request.headers["authorization"], "Bearer wa-secret-token");
    let body: serde_json::Value = serde_json::from_slice(&request.body).expect("JSON");
    assert_eq!(body["messaging_product"], "whatsapp");
    assert_eq!(body["to"], "41710000041");
    assert_eq!(body["type"], "template");
    assert_eq!(body["template"]["name"], "verification_code");
    assert_eq!(body["template"]["language"]["code"], "en");
    let code = body["template"]["components"][0]["parameters"][0]["text"]
        .as_str()
        .expect("the code")
        .to_owned();
    assert_eq!(body["template"]["components"][1]["sub_type"], "url");
    assert_eq!(
        body["template"]["components"][1]["parameters"][0]["text"],
        code.as_str()
    );
    assert_eq!(host.verify("wanda", &code).await.status, 200);
    let delivery = host.record("wanda").expect("record")["phone"].clone();
    assert_eq!(delivery["verified"], true);

    // Meta's rate limit (error 131056, a 400) is retried; an expired token (190, 401) is not.
    graph.set(
        Behaviour::Answer(400),
        r#"{"error":{"message":"(#131056) Pair rate limit hit","type":"OAuthException","code":131056,"fbtrace_id":"A1"}}"#,
    );
    let before = graph.requests().len();
    assert_eq!(
        host.set_phone("wanda", "+41 71 000 00 42").await.status,
        200
    );
    host.running.idle().await;
    assert_eq!(graph.requests().len() - before, 3);
    graph.set(
        Behaviour::Answer(401),
        r#"{"error":{"message":"Error validating access token","type":"OAuthException","code":190,"fbtrace_id":"A2"}}"#,
    );
    let before = graph.requests().len();
    assert_eq!(
        host.set_phone("wanda", "+41 71 000 00 43").await.status,
        200
    );
    host.running.idle().await;
    assert_eq!(graph.requests().len() - before, 1);
}

/// A Twilio Verify service: starts verifications, and approves `482916` for the number it last
/// sent to (Twilio's own code, which never passes through the service).
fn twilio_verify_service(verify: &FakeServer) {
    verify.route(|request| {
        let form = form_urlencoded(&request.body);
        let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        if request.path.ends_with("/Verifications") {
            let body = r#"{"sid":"VE0123456789abcdef0123456789abcdef","status":"pending"}"#;
            return (201, body.into());
        }
        let status = if field("Code").as_deref() == Some("482916") {
            "approved"
        } else {
            "pending"
        };
        (200, format!(r#"{{"status":"{status}"}}"#))
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn twilio_verify_sends_and_checks_its_own_code() {
    let verify = FakeServer::start(500, "").await;
    twilio_verify_service(&verify);
    let host = start(&[
        ("SMS_PROVIDER", "twilio-verify".into()),
        ("TWILIO_ACCOUNT_SID", "AC0001".into()),
        ("TWILIO_AUTH_TOKEN", "verify-secret".into()),
        ("TWILIO_VERIFY_SERVICE_SID", "VA0001".into()),
        ("TWILIO_VERIFY_BASE_URL", verify.url.clone()),
    ])
    .await;
    assert_eq!(host.set_phone("tess", "+41 71 000 00 71").await.status, 200);
    host.running.idle().await;
    let started = verify.requests().pop().expect("Verify got a request");
    assert_eq!(
        (started.method.as_str(), started.path.as_str()),
        ("POST", "/v2/Services/VA0001/Verifications")
    );
    assert_eq!(
        form_urlencoded(&started.body),
        [
            ("To".to_string(), "+41710000071".to_string()),
            ("Channel".into(), "sms".into()),
            ("Locale".into(), "en".into()),
        ]
    );
    // base64("AC0001:verify-secret"), from `printf AC0001:verify-secret | base64`.
    assert_eq!(
        started.headers["authorization"],
        "Basic QUMwMDAxOnZlcmlmeS1zZWNyZXQ="
    );
    let pending = host.record("tess").expect("record")["phone"]["code"].clone();
    assert_eq!(
        (pending["by_provider"].as_bool(), pending["hash"].as_str()),
        (Some(true), Some(""))
    );

    // A wrong code is Twilio's to refuse and ours to count; the right one verifies.
    let wrong = host.verify("tess", "111111").await;
    assert_eq!(wrong.code(), 3, "{:?}", wrong.body);
    assert_eq!(
        host.record("tess").expect("record")["phone"]["code"]["failed_attempts"],
        1
    );
    assert_eq!(host.verify("tess", "482916").await.status, 200);
    assert_eq!(
        host.get_phone("tess").await.body["phone"]["isPhoneVerified"],
        true
    );
    let checks: Vec<_> = verify
        .requests()
        .into_iter()
        .filter(|r| r.path == "/v2/Services/VA0001/VerificationCheck")
        .map(|r| form_urlencoded(&r.body))
        .collect();
    let to = |code: &str| {
        vec![
            ("To".to_string(), "+41710000071".to_string()),
            ("Code".into(), code.into()),
        ]
    };
    assert_eq!(checks, [to("111111"), to("482916")]);

    // Twilio down: the check is tried three times, then VerifyMyPhone answers 503 (SMP-SMS1)
    // and nothing changes, no attempt counted.
    assert_eq!(host.set_phone("tess", "+41 71 000 00 72").await.status, 200);
    host.running.idle().await;
    let before = host.record("tess").expect("record");
    verify.route(|_| (503, r#"{"message":"Service unavailable"}"#.into()));
    let down = host.verify("tess", "482916").await;
    assert_eq!(
        (down.status, down.code(), down.detail_id()),
        (503, 14, Some("SMP-SMS1"))
    );
    assert_eq!(host.record("tess").expect("record"), before);
    twilio_verify_service(&verify);
    assert_eq!(host.verify("tess", "482916").await.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_provider_brought_from_outside_round_trips() {
    let vonage = FakeServer::start(
        200,
        r#"{"message-count":"1","messages":[{"to":"41710000051","message-id":"0A0000000123ABCD1","status":"0"}]}"#,
    )
    .await;
    let mut env = support::base_env();
    env.extend(
        [
            ("SMS_PROVIDER", "custom".to_owned()),
            ("SMS_VONAGE_API_KEY", "vonage-key".to_owned()),
            ("SMS_VONAGE_API_SECRET", "vonage-secret".to_owned()),
            ("SMS_VONAGE_FROM", "SetMyPhone".to_owned()),
            ("SMS_VONAGE_BASE_URL", vonage.url.clone()),
        ]
        .map(|(k, v)| (k.to_owned(), v)),
    );
    let host = support::start_wasm(
        support::artifact_path("examples/set-my-phone-vonage.wasm"),
        env,
    )
    .await;
    assert_eq!(host.set_phone("vera", "+41 71 000 00 51").await.status, 200);
    host.running.idle().await;
    let request = vonage.requests().pop().expect("Vonage got a request");
    assert_eq!(
        (request.method.as_str(), request.path.as_str()),
        ("POST", "/sms/json")
    );
    let form = form_urlencoded(&request.body);
    let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    assert_eq!(field("to").as_deref(), Some("41710000051"));
    assert_eq!(field("api_key").as_deref(), Some("vonage-key"));
    let code = code_in(&field("text").expect("text"));
    assert_eq!(host.verify("vera", &code).await.status, 200);
    let delivery = host.record("vera").expect("record")["phone"].clone();
    assert_eq!(delivery["verified"], true);
}

/// A component that exports one empty instance under `name`: enough to stand for a provider of
/// another interface version (the binary component format, spelled out byte by byte).
fn component_exporting(name: &str) -> Vec<u8> {
    let mut bytes = b"\0asm\x0d\x00\x01\x00".to_vec();
    // Instance section (5): one instance made of zero inline exports.
    bytes.extend([5, 3, 1, 1, 0]);
    // Export section (11): that instance (sort 5, index 0) under `name`, no type ascribed.
    let mut export = vec![1, 0, u8::try_from(name.len()).expect("short name")];
    export.extend(name.as_bytes());
    export.extend([5, 0, 0]);
    bytes.extend([11, u8::try_from(export.len()).expect("short section")]);
    bytes.extend(export);
    bytes
}

/// `set-my-phone-tools plug` composes only a provider of the core's interface version, and says
/// which versions met when they differ.
#[test]
fn plug_refuses_a_provider_of_another_interface_version() {
    let root = set_my_phone_test_harness::workspace_root();
    let tools = root.join("target/debug/set-my-phone-tools");
    let dir = support::tempdir::Dir::new("plug");
    let old = dir.0.join("old-provider.wasm");
    std::fs::write(&old, component_exporting("set-my-phone:sms/sender@0.1.0")).expect("write");
    let out = dir.0.join("out.wasm");
    let output = Command::new(&tools)
        .arg("plug")
        .arg("--core")
        .arg(support::artifact_path("set-my-phone-core-initialised.wasm"))
        .arg("--sms")
        .arg(&old)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap_or_else(|e| panic!("{} runs: {e}", tools.display()));
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success() && !out.exists(), "{said}");
    assert!(
        said.contains("exports set-my-phone:sms/sender@0.1.0")
            && said.contains("imports set-my-phone:sms/sender@0.2.0"),
        "{said}"
    );
}
