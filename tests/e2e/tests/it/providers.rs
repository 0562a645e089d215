//! The SMS providers of the composed artifact beyond webhook and Twilio (`artifacts.rs`), each
//! round trip PUT → the provider's request at a local receiver → verify with the code it
//! carried: Amazon SNS (its Signature Version 4 checked by botocore's signer, not ours) and
//! WhatsApp's Cloud API; retries of retryable answers; and a provider brought from outside the
//! provider crate (`examples/sms-provider-vonage`, plugged in by `set-my-phone-tools plug`).

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
