//! Everything the reference host binary and the component write to stderr, scanned: a whole
//! lifecycle (set, wrong code, resend, verify, a failing delivery, remove, bad tokens) through
//! `set-my-phone-host serve` with the composed artifact and real SMS receivers. Every line must
//! be a JSON object, and none may carry a token (or its signature), an issued code, a secret
//! or a phone number in any form.
//!
//! The host binary is `SET_MY_PHONE_HOST`, else `target/debug/set-my-phone-host`, which
//! `cargo test --workspace` (scripts/test) builds before running any test.

use crate::fake_http::{Behaviour, FakeServer};
use crate::support::{self, PHONE_URL, RESEND_URL, VERIFY_URL};
use crate::tokens;
use serde_json::{Map, Value, json};
use std::io::{BufRead as _, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The limit for anything the test waits for (start-up compiles the artifact once).
const LIMIT: Duration = Duration::from_secs(300);

fn host_binary() -> PathBuf {
    let path = std::env::var_os("SET_MY_PHONE_HOST")
        .map(PathBuf::from)
        .unwrap_or_else(|| support::workspace_root().join("target/debug/set-my-phone-host"));
    assert!(
        path.is_file(),
        "{} is missing: `cargo test -p set-my-phone-host --no-run` builds it",
        path.display()
    );
    path
}

/// `set-my-phone-host serve` of the composed artifact on an in-memory store, every stderr line
/// kept.
struct Host {
    child: Child,
    url: String,
    reader: Option<std::thread::JoinHandle<Vec<String>>>,
}

impl Host {
    fn start(env: &[(String, String)]) -> Host {
        let mut command = Command::new(host_binary());
        command
            .args([
                "serve",
                "--store",
                "memory:",
                "--listen",
                "127.0.0.1:0",
                "--wasm",
            ])
            .arg(support::artifact_path("set-my-phone.wasm"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        // Only what the test sets reaches the component.
        for (name, _) in std::env::vars() {
            if ["AUTH_", "PHONE_", "SMS_", "TWILIO_", "KV_STORE"]
                .iter()
                .any(|prefix| name.starts_with(prefix))
            {
                command.env_remove(name);
            }
        }
        command.envs(env.iter().map(|(k, v)| (k, v)));
        let mut child = command.spawn().expect("start the host binary");
        let pipe = child.stderr.take().expect("stderr is piped");
        let (url_tx, url_rx) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut lines = Vec::new();
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                if let Some(url) = served_url(&line) {
                    let _ = url_tx.send(url);
                }
                lines.push(line);
            }
            lines
        });
        let url = url_rx
            .recv_timeout(LIMIT)
            .expect("the host says where it serves");
        Host {
            child,
            url,
            reader: Some(reader),
        }
    }

    /// Stops the host with SIGTERM (it finishes deliveries in flight) and returns all it wrote
    /// to stderr.
    fn stop(mut self) -> Vec<String> {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
        let deadline = Instant::now() + LIMIT;
        while self.child.try_wait().expect("poll host").is_none() {
            assert!(
                Instant::now() < deadline,
                "the host did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        self.reader
            .take()
            .expect("read once")
            .join()
            .expect("reader")
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The base URL in the host's "serving" line (`"url":"http://127.0.0.1:PORT"`).
fn served_url(line: &str) -> Option<String> {
    let event: Value = serde_json::from_str(line).ok()?;
    (event["msg"] == "serving")
        .then(|| event["url"].as_str().map(str::to_owned))
        .flatten()
}

struct Answer {
    status: u16,
    request_id: Option<String>,
}

async fn send(
    client: &reqwest::Client,
    host: &Host,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Option<Value>,
    request_id: Option<&str>,
) -> Answer {
    let mut request = client
        .request(method, format!("{}{path}", host.url))
        .header("authorization", format!("Bearer {token}"));
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    if let Some(id) = request_id {
        request = request.header("x-request-id", id);
    }
    let response = request.send().await.expect("request reaches the host");
    Answer {
        status: response.status().as_u16(),
        request_id: response
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    }
}

/// Waits until `receiver` got `count` requests; the code the last one carries.
async fn code_sent(receiver: &FakeServer, count: usize) -> String {
    let deadline = Instant::now() + LIMIT;
    loop {
        let requests = receiver.requests();
        if requests.len() >= count {
            let body = String::from_utf8_lossy(&requests[count - 1].body).into_owned();
            // Webhook: JSON `args.code`; Twilio: the form's `Body`, the English text "Your
            // verification code is <code>. …" (letters and digits travel unencoded in a form).
            if let Ok(json) = serde_json::from_str::<Value>(&body) {
                return json["args"]["code"].as_str().expect("args.code").to_owned();
            }
            let text = body
                .split('&')
                .find_map(|pair| pair.strip_prefix("Body="))
                .expect("Body");
            let code: String = text
                .split_once("code+is+")
                .map(|(_, rest)| {
                    rest.chars()
                        .take_while(char::is_ascii_alphanumeric)
                        .collect()
                })
                .unwrap_or_default();
            assert!(code.len() >= 4, "{text}");
            return code;
        }
        assert!(Instant::now() < deadline, "no SMS reached the receiver");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every way a number could be written: as set, E.164, without `+`, national digits.
fn forms_of(input: &str, e164: &str, national: &str) -> Vec<String> {
    vec![
        input.to_owned(),
        input.trim_start_matches("+41 ").to_owned(),
        e164.to_owned(),
        e164.trim_start_matches('+').to_owned(),
        national.to_owned(),
    ]
}

/// Parses every line as a JSON object and finds none of `forbidden` in any.
fn scan(lines: &[String], forbidden: &[(String, &str)]) -> Vec<Map<String, Value>> {
    lines
        .iter()
        .map(|line| {
            for (needle, what) in forbidden {
                assert!(
                    !line.contains(needle.as_str()),
                    "a log line holds {what} ({needle}): {line}"
                );
            }
            match serde_json::from_str(line) {
                Ok(Value::Object(map)) => map,
                _ => panic!("a stderr line is not a JSON object: {line}"),
            }
        })
        .collect()
}

fn requests(lines: &[Map<String, Value>]) -> Vec<&Map<String, Value>> {
    lines.iter().filter(|l| l["msg"] == "request").collect()
}

const CLIENT_SECRET: &str = "client-secret-f00dfeed";
const SIGNING_KEY: &str = "webhook-signing-key-c0ffee";
const TWILIO_TOKEN: &str = "twilio-auth-token-beef";

fn env(extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut env = support::base_env();
    env.extend(
        [
            ("AUTH_CLIENT_ID", "set-my-phone@project"),
            ("AUTH_CLIENT_SECRET", CLIENT_SECRET),
        ]
        .iter()
        .chain(extra)
        .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    env
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_log_line_holds_a_token_a_code_a_secret_or_a_number() {
    use reqwest::Method;
    let client = reqwest::Client::new();
    let mut forbidden: Vec<(String, &str)> = vec![
        (support::CODE_SECRET.into(), "PHONE_CODE_SECRET"),
        (SIGNING_KEY.into(), "the webhook signing key"),
        (CLIENT_SECRET.into(), "the client secret"),
        (TWILIO_TOKEN.into(), "the Twilio auth token"),
    ];

    // The webhook provider: the whole lifecycle, and a delivery the receiver refuses.
    let receiver = FakeServer::start(200, "{}").await;
    let introspection = FakeServer::start(200, r#"{"active":false}"#).await;
    let (sms_url, introspection_url) = (
        format!("{}/sms", receiver.url),
        format!("{}/introspect", introspection.url),
    );
    let host = Host::start(&env(&[
        ("SMS_PROVIDER", "webhook"),
        ("SMS_WEBHOOK_URL", &sms_url),
        ("SMS_WEBHOOK_SIGNING_KEY", SIGNING_KEY),
        ("AUTH_INTROSPECTION_URL", &introspection_url),
    ]));
    let token = tokens::token("logan");
    forbidden.push((token.clone(), "the bearer token"));
    let signature = token.rsplit('.').next().expect("a signature").to_owned();
    forbidden.push((signature, "the token's signature"));
    for form in forms_of("+41 71 000 00 42", "+41710000042", "710000042") {
        forbidden.push((form, "the phone number"));
    }
    for form in forms_of("+41 71 000 00 43", "+41710000043", "710000043") {
        forbidden.push((form, "the second phone number"));
    }

    let set = send(
        &client,
        &host,
        Method::PUT,
        PHONE_URL,
        &token,
        Some(json!({"phone": "+41 71 000 00 42"})),
        Some("scan-set-0001"),
    )
    .await;
    assert_eq!(set.status, 200);
    assert_eq!(set.request_id.as_deref(), Some("scan-set-0001"));
    let first = code_sent(&receiver, 1).await;
    let wrong = if first == "WRONG1" {
        "WRONG2"
    } else {
        "WRONG1"
    };
    let verify = |code: &str| Some(json!({ "code": code }));
    let answer = send(
        &client,
        &host,
        Method::POST,
        VERIFY_URL,
        &token,
        verify(wrong),
        None,
    )
    .await;
    assert_eq!(answer.status, 400);
    let made_up = answer.request_id.expect("an id is made up");
    assert_eq!(made_up.len(), 16);
    let resend = send(
        &client,
        &host,
        Method::POST,
        RESEND_URL,
        &token,
        Some(json!({})),
        None,
    );
    assert_eq!(resend.await.status, 200);
    let second = code_sent(&receiver, 2).await;
    let answer = send(
        &client,
        &host,
        Method::POST,
        VERIFY_URL,
        &token,
        verify(&second),
        None,
    );
    assert_eq!(answer.await.status, 200);
    receiver.set(
        Behaviour::Answer(500),
        r#"{"error":"to +41710000043 failed"}"#,
    );
    let set = json!({"phone": "+41 71 000 00 43"});
    let answer = send(
        &client,
        &host,
        Method::PUT,
        PHONE_URL,
        &token,
        Some(set),
        None,
    );
    assert_eq!(answer.await.status, 200, "a failed delivery fails no call");
    let third = code_sent(&receiver, 3).await;
    let answer = send(
        &client,
        &host,
        Method::DELETE,
        PHONE_URL,
        &token,
        None,
        None,
    )
    .await;
    assert_eq!(answer.status, 200);
    let forged = tokens::forged("logan");
    forbidden.push((forged.clone(), "a forged token"));
    let answer = send(&client, &host, Method::GET, PHONE_URL, &forged, None, None).await;
    assert_eq!(answer.status, 401);
    let opaque = "opaque-0123456789abcdefghijklmnop";
    forbidden.push((opaque.into(), "an opaque token"));
    let answer = send(&client, &host, Method::GET, PHONE_URL, opaque, None, None).await;
    assert_eq!(answer.status, 401);
    assert_eq!(
        introspection.requests().len(),
        1,
        "the opaque token was introspected"
    );
    let hostile = "x\"}\n{\"msg\":\"forged\"";
    let answer = client
        .get(format!("{}{PHONE_URL}", host.url))
        .header("authorization", format!("Bearer {token}"))
        .header("x-request-id", "a".repeat(10 * 1024))
        .send()
        .await
        .expect("request reaches the host");
    assert_eq!(answer.status(), 200);
    assert_eq!(
        answer.headers()["x-request-id"].len(),
        16,
        "a 10 KB id is replaced"
    );
    let answer = reqwest::Client::new()
        .get(format!("{}{PHONE_URL}", host.url))
        .header("authorization", format!("Bearer {token}"))
        .header("x-request-id", hostile.replace('\n', " "))
        .send()
        .await
        .expect("request reaches the host");
    assert_eq!(
        answer.headers()["x-request-id"].len(),
        16,
        "a quoted id is replaced"
    );
    let webhook_lines = host.stop();

    // Twilio, whose error answers quote the number: its failure reason is logged scrubbed.
    let twilio = FakeServer::start(
        400,
        r#"{"code":21211,"message":"The 'To' number +41710000044 (+41 71 000 00 44) is not a valid phone number."}"#,
    )
    .await;
    let host = Host::start(&env(&[
        ("SMS_PROVIDER", "twilio"),
        ("TWILIO_ACCOUNT_SID", "AC0001"),
        ("TWILIO_AUTH_TOKEN", TWILIO_TOKEN),
        ("TWILIO_FROM", "+15005550006"),
        ("TWILIO_BASE_URL", &twilio.url),
    ]));
    // Twilio refuses the first code, then accepts the second: its message SID is on the
    // `code.sent` audit line.
    let mut twilio_codes = Vec::new();
    let numbers = [
        ("+41 71 000 00 44", "+41710000044", "710000044"),
        ("+41 71 000 00 45", "+41710000045", "710000045"),
    ];
    for (round, (shown, e164, national)) in numbers.into_iter().enumerate() {
        if round == 1 {
            twilio.set(
                Behaviour::Answer(201),
                r#"{"sid":"SM0a1b2c3d","status":"queued"}"#,
            );
        }
        for form in forms_of(shown, e164, national) {
            forbidden.push((form, "a phone number sent through Twilio"));
        }
        let set = json!({ "phone": shown });
        let answer = send(
            &client,
            &host,
            Method::PUT,
            PHONE_URL,
            &token,
            Some(set),
            None,
        );
        assert_eq!(answer.await.status, 200);
        twilio_codes.push(code_sent(&twilio, round + 1).await);
    }
    let twilio_lines = host.stop();

    for (code, what) in [(first, "a code"), (second, "a code"), (third, "a code")]
        .into_iter()
        .chain(twilio_codes.into_iter().map(|code| (code, "a Twilio code")))
    {
        forbidden.push((code, what));
    }
    let webhook = scan(&webhook_lines, &forbidden);
    let twilio = scan(&twilio_lines, &forbidden);

    // The scan saw the component's lines: one per request, the given id in exactly its own.
    let served = requests(&webhook);
    assert_eq!(served.len(), 10, "{webhook_lines:#?}");
    let tagged: Vec<_> = served
        .iter()
        .filter(|l| l["request_id"] == "scan-set-0001")
        .collect();
    assert_eq!(tagged.len(), 1, "{webhook_lines:#?}");
    assert_eq!(
        (
            &tagged[0]["rpc"],
            &tagged[0]["http_status"],
            &tagged[0]["grpc_code"]
        ),
        (&json!("SetMyPhone"), &json!(200), &json!(0))
    );
    assert_eq!(
        (&tagged[0]["user_id"], &tagged[0]["org_id"]),
        (&json!("logan"), &json!(tokens::ORG))
    );
    assert!(served.iter().any(|l| l["request_id"] == made_up.as_str()));
    for line in &served {
        assert_eq!(line["protocol"], "json");
        assert!(line["duration_ms"].as_f64().is_some(), "{line:?}");
        assert!(line["time"].as_str().is_some_and(|t| t.ends_with('Z')));
    }
    // The refused delivery and Twilio's quoted reason were logged, scrubbed.
    let twilio_failure = twilio
        .iter()
        .find(|l| l["msg"] == "SMS not delivered")
        .unwrap_or_else(|| panic!("the Twilio failure is logged: {twilio_lines:#?}"));
    assert!(
        twilio_failure["reason"]
            .as_str()
            .is_some_and(|r| r.contains("is not a valid phone number")),
        "{twilio_failure:?}"
    );
    assert_eq!(requests(&twilio).len(), 2);
    // (The second PUT may be served before the first delivery's lines are written: sorted.)
    let mut outcomes: Vec<String> = twilio
        .iter()
        .filter(|l| l["msg"] == "audit" && l["type"].as_str().is_some_and(|t| t.contains(".code.")))
        .map(|l| {
            let field = |name| l.get(name).unwrap_or(&Value::Null);
            format!(
                "{} {} {}",
                l["type"],
                field("code_sequence"),
                field("provider_id")
            )
        })
        .collect();
    outcomes.sort();
    assert_eq!(
        outcomes,
        [
            r#""user.human.phone.code.added" null null"#,
            r#""user.human.phone.code.added" null null"#,
            r#""user.human.phone.code.delivery.failed" 2 null"#,
            r#""user.human.phone.code.sent" 4 "SM0a1b2c3d""#,
        ],
        "{twilio_lines:#?}"
    );
}

/// The write-through to ZITADEL through the host binary: each call is an audit line
/// (`…phone.synced`, `…phone.sync_failed`), and no line holds the service user's token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_write_through_is_logged_without_its_token() {
    use reqwest::Method;
    use set_my_phone_test_harness::zitadel_peer::{Mode, ZitadelPeer};
    const PAT: &str = "pat-log-scan-5ecret";
    let client = reqwest::Client::new();
    let peer = ZitadelPeer::start(Some(PAT), None).await;
    let receiver = FakeServer::start(200, "{}").await;
    let sms_url = format!("{}/sms", receiver.url);
    let host = Host::start(&env(&[
        ("SMS_PROVIDER", "webhook"),
        ("SMS_WEBHOOK_URL", &sms_url),
        ("SMS_WEBHOOK_SIGNING_KEY", SIGNING_KEY),
        ("ZITADEL_SYNC", "on"),
        ("ZITADEL_API_URL", &peer.url),
        ("ZITADEL_SERVICE_TOKEN", PAT),
    ]));
    let token = tokens::token("zoe");
    let set = send(
        &client,
        &host,
        Method::PUT,
        PHONE_URL,
        &token,
        Some(json!({"phone": "+41710000044"})),
        None,
    );
    assert_eq!(set.await.status, 200);
    let code = code_sent(&receiver, 1).await;
    peer.set_mode(Mode::Failing);
    let verify = || Some(json!({ "code": code }));
    let failed = send(
        &client,
        &host,
        Method::POST,
        VERIFY_URL,
        &token,
        verify(),
        None,
    )
    .await;
    assert_eq!(failed.status, 503);
    peer.set_mode(Mode::Normal);
    let verified = send(
        &client,
        &host,
        Method::POST,
        VERIFY_URL,
        &token,
        verify(),
        None,
    )
    .await;
    assert_eq!(verified.status, 200);
    let removed = send(
        &client,
        &host,
        Method::DELETE,
        PHONE_URL,
        &token,
        None,
        None,
    )
    .await;
    assert_eq!(removed.status, 200);

    let lines = host.stop();
    let forbidden = vec![
        (PAT.to_owned(), "the service user's token"),
        (token.clone(), "the bearer token"),
        ("+41710000044".to_owned(), "the phone number"),
    ];
    let lines = scan(&lines, &forbidden);
    let audits: Vec<(&str, &str)> = lines
        .iter()
        .filter(|l| l["msg"] == "audit")
        .filter_map(|l| {
            Some((
                l["type"].as_str()?,
                l.get("reason").and_then(Value::as_str).unwrap_or(""),
            ))
        })
        .filter(|(kind, _)| kind.contains("sync"))
        .collect();
    assert_eq!(
        audits,
        [
            ("user.human.phone.sync_failed", "unavailable"),
            ("user.human.phone.synced", "verify"),
            ("user.human.phone.synced", "remove"),
        ]
    );
    let failure = lines
        .iter()
        .find(|l| l["msg"] == "request failed")
        .expect("the 503 is logged with its reason");
    let error = failure["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("HTTP 503") && error.contains("SERVER-1"),
        "{error}"
    );
}

/// Amazon SNS, WhatsApp and Twilio Verify through the host binary, each refusing with an answer
/// that quotes the number (Verify's check also quotes the typed code): no line holds the
/// provider's secret, the number or the code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_failures_log_no_secret_number_or_code() {
    use reqwest::Method;
    const SNS_SECRET: &str = "sns-secret-key-5ca1ab1e";
    const WA_TOKEN: &str = "whatsapp-token-decaf";
    const VERIFY_TOKEN: &str = "verify-token-c0ffee";
    const TYPED: &str = "482916";
    let client = reqwest::Client::new();
    let sns = FakeServer::start(
        400,
        "<ErrorResponse><Error><Type>Sender</Type><Code>InvalidParameter</Code><Message>Invalid parameter: PhoneNumber Reason: +41710000061 is not valid</Message></Error></ErrorResponse>",
    )
    .await;
    let graph = FakeServer::start(
        400,
        r#"{"error":{"message":"(#131026) Recipient +41 71 000 00 62 cannot be reached","type":"OAuthException","code":131026,"fbtrace_id":"B1"}}"#,
    )
    .await;
    // Twilio Verify refuses to start a verification, and fails the check quoting what it got.
    let verify = FakeServer::start(500, "").await;
    verify.route(|request| {
        if request.path.ends_with("/Verifications") {
            let quoted = r#"{"code":60200,"message":"Invalid parameter To: +41 71 000 00 63"}"#;
            (400, quoted.into())
        } else {
            let quoted = format!(r#"{{"message":"check of {TYPED} for +41710000063 failed"}}"#);
            (500, quoted)
        }
    });
    let mut lines = Vec::new();
    let mut forbidden: Vec<(String, &str)> = vec![
        (SNS_SECRET.into(), "the SNS secret key"),
        (WA_TOKEN.into(), "the WhatsApp token"),
        (VERIFY_TOKEN.into(), "the Twilio auth token"),
    ];
    // Each run: the provider's settings, the number set, the provider's receiver.
    type Run<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a FakeServer);
    let runs: [Run; 3] = [
        (
            &[
                ("SMS_PROVIDER", "sns"),
                ("SMS_SNS_REGION", "eu-central-1"),
                ("SMS_SNS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
                ("SMS_SNS_SECRET_ACCESS_KEY", SNS_SECRET),
                ("SMS_SNS_BASE_URL", &sns.url),
            ],
            "+41 71 000 00 61",
            &sns,
        ),
        (
            &[
                ("SMS_PROVIDER", "whatsapp"),
                ("SMS_WHATSAPP_TOKEN", WA_TOKEN),
                ("SMS_WHATSAPP_PHONE_NUMBER_ID", "106540352242922"),
                ("SMS_WHATSAPP_TEMPLATE", "verification_code"),
                ("SMS_WHATSAPP_BASE_URL", &graph.url),
            ],
            "+41 71 000 00 62",
            &graph,
        ),
        (
            &[
                ("SMS_PROVIDER", "twilio-verify"),
                ("TWILIO_ACCOUNT_SID", "AC0001"),
                ("TWILIO_AUTH_TOKEN", VERIFY_TOKEN),
                ("TWILIO_VERIFY_SERVICE_SID", "VA0001"),
                ("TWILIO_VERIFY_BASE_URL", &verify.url),
            ],
            "+41 71 000 00 63",
            &verify,
        ),
    ];
    for (settings, number, receiver) in runs {
        let host = Host::start(&env(settings));
        let token = tokens::token("pia");
        let set = send(
            &client,
            &host,
            Method::PUT,
            PHONE_URL,
            &token,
            Some(json!({"phone": number})),
            None,
        );
        assert_eq!(set.await.status, 200);
        // The request reached the provider; its code is in the text or the template.
        let deadline = Instant::now() + LIMIT;
        while receiver.requests().is_empty() {
            assert!(Instant::now() < deadline, "no request reached the provider");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let first = receiver.requests()[0].clone();
        let body = String::from_utf8_lossy(&first.body).into_owned();
        let code = if first.path.ends_with("/Verifications") {
            // Twilio makes the code: the one typed is what must not be logged. The check fails.
            let typed = json!({ "code": TYPED });
            let answer = send(
                &client,
                &host,
                Method::POST,
                VERIFY_URL,
                &token,
                Some(typed),
                None,
            );
            assert_eq!(answer.await.status, 503);
            TYPED.to_owned()
        } else if let Ok(json) = serde_json::from_str::<Value>(&body) {
            json["template"]["components"][0]["parameters"][0]["text"]
                .as_str()
                .expect("the code")
                .to_owned()
        } else {
            body.split("code+is+")
                .nth(1)
                .expect("the English text")
                .chars()
                .take_while(char::is_ascii_alphanumeric)
                .collect()
        };
        forbidden.push((code, "the code"));
        forbidden.push((token, "the bearer token"));
        let e164 = number.replace(' ', "");
        let national = e164.trim_start_matches("+41").to_owned();
        for form in forms_of(number, &e164, &national) {
            forbidden.push((form, "the phone number"));
        }
        lines.extend(host.stop());
    }
    let parsed = scan(&lines, &forbidden);
    // The refusals are logged, scrubbed.
    let failures = parsed
        .iter()
        .filter(|l| {
            l.get("type").and_then(Value::as_str) == Some("user.human.phone.code.delivery.failed")
        })
        .count();
    assert_eq!(failures, 3, "{lines:#?}");
    let check_failed = parsed
        .iter()
        .filter(|l| {
            l.get("error")
                .and_then(Value::as_str)
                .is_some_and(|e| e.starts_with("SMS provider's code check: provider answered 500"))
        })
        .count();
    assert_eq!(check_failed, 1, "the failed check is logged: {lines:#?}");
}
