//! The guest limits of the host: a guest that computes forever, waits on the host forever, grows
//! its memory without end or traps gets its client a 5xx google.rpc.Status (or the gRPC status),
//! is stopped, and the host goes on serving.
//!
//! The misbehaving guest is `tests/misbehave`, built here (for wasm32-wasip2, into
//! `target/misbehave`) once per test process.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers fail the test loudly on anything unexpected"
)]

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::common::misbehave_wasm;
use futures::StreamExt as _;
use serde_json::Value;
use set_my_phone_host::{HostBuilder, RunningHost};

const BIN: &str = env!("CARGO_BIN_EXE_set-my-phone-host");
const MIB: usize = 1 << 20;

/// The request timeout of these tests: short, so that they are quick; nothing asserts how
/// close to it an answer comes.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(1);

/// Bound on any wait that should take far less: a hung host, not a slow one.
const HANG: Duration = Duration::from_secs(120);

async fn start(max_memory: usize) -> RunningHost {
    HostBuilder::new(misbehave_wasm())
        .request_timeout(REQUEST_TIMEOUT)
        .max_memory(max_memory)
        .build()
        .expect("host builds")
        .spawn_local()
        .await
        .expect("host serves")
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(HANG)
        .build()
        .expect("client")
}

/// A JSON google.rpc.Status answer.
#[derive(Debug)]
struct Status {
    http: u16,
    code: i64,
    message: String,
    body: Value,
}

async fn get(client: &reqwest::Client, base: &str, path: &str) -> Status {
    let response = client
        .get(format!("{base}{path}"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap_or_else(|err| panic!("GET {path}: {err}"));
    let http = response.status().as_u16();
    let body: Value = response.json().await.expect("a JSON body");
    Status {
        http,
        code: body["code"].as_i64().unwrap_or(-1),
        message: body["message"].as_str().unwrap_or_default().to_owned(),
        body,
    }
}

/// The host has stopped every guest: none is left running.
async fn assert_guests_stopped(running: &RunningHost) {
    tokio::time::timeout(HANG, running.idle())
        .await
        .expect("a misbehaving guest is still running");
    assert_eq!(running.active_guest_tasks(), 0);
}

/// 100 ordinary requests, 10 at a time, all answered 200 by the guest.
async fn assert_hundred_ok(client: &reqwest::Client, base: &str) {
    let answers: Vec<(u16, Value)> = futures::stream::iter(0..100)
        .map(|_| async {
            let response = client
                .get(format!("{base}/ok"))
                .send()
                .await
                .expect("GET /ok");
            let status = response.status().as_u16();
            (status, response.json().await.expect("a JSON body"))
        })
        .buffer_unordered(10)
        .collect()
        .await;
    assert_eq!(answers.len(), 100);
    for (status, body) in answers {
        assert_eq!((status, &body), (200, &serde_json::json!({"ok": true})));
    }
}

fn assert_deadline_exceeded(status: &Status) {
    assert_eq!((status.http, status.code), (504, 4), "{status:?}");
    assert!(
        status.message.contains("deadline exceeded") && status.message.contains("1s"),
        "{status:?}"
    );
    assert_eq!(status.body["details"], serde_json::json!([]), "{status:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_guest_computing_forever_gets_504_and_is_stopped() {
    let running = start(64 * MIB).await;
    let client = client();
    let status = get(&client, &running.url(), "/loop").await;
    assert_deadline_exceeded(&status);
    assert_guests_stopped(&running).await;
    assert_hundred_ok(&client, &running.url()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_guest_waiting_on_the_host_forever_gets_504_and_is_stopped() {
    let running = start(64 * MIB).await;
    let client = client();
    let status = get(&client, &running.url(), "/block").await;
    assert_deadline_exceeded(&status);
    assert_guests_stopped(&running).await;
    assert_hundred_ok(&client, &running.url()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_guest_growing_past_its_memory_cap_gets_500() {
    let running = start(16 * MIB).await;
    let client = client();
    let status = get(&client, &running.url(), "/grow").await;
    assert_eq!((status.http, status.code), (500, 13), "{status:?}");
    assert!(
        status.message.contains("out of memory") && status.message.contains("16 MiB"),
        "{status:?}"
    );
    assert_eq!(status.body["details"], serde_json::json!([]), "{status:?}");
    assert_guests_stopped(&running).await;
    // The cap is per request: ordinary guests still fit.
    assert_hundred_ok(&client, &running.url()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_trapping_guest_gets_500() {
    let running = start(64 * MIB).await;
    let client = client();
    let status = get(&client, &running.url(), "/trap").await;
    assert_eq!((status.http, status.code), (500, 13), "{status:?}");
    assert!(status.message.contains("trap"), "{status:?}");
    assert_guests_stopped(&running).await;
    assert_hundred_ok(&client, &running.url()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn after_every_misbehaviour_at_once_the_host_serves_100_requests() {
    let running = start(16 * MIB).await;
    let client = client();
    let base = running.url();
    let paths = ["/loop", "/block", "/grow", "/trap"].repeat(3);
    let answers =
        futures::future::join_all(paths.iter().map(|path| get(&client, &base, path))).await;
    for (path, status) in paths.iter().zip(&answers) {
        let expected = match *path {
            "/loop" | "/block" => (504, 4),
            _ => (500, 13),
        };
        assert_eq!((status.http, status.code), expected, "{path}: {status:?}");
    }
    assert_guests_stopped(&running).await;
    assert_hundred_ok(&client, &base).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn grpc_clients_get_the_status_in_grpc_headers() {
    let running = start(16 * MIB).await;
    let base = running.url();
    // gRPC over h2c, and gRPC-Web over HTTP/1.1.
    let grpc = reqwest::Client::builder()
        .http2_prior_knowledge()
        .timeout(HANG)
        .build()
        .expect("client");
    let cases = [
        (&grpc, "application/grpc", "/loop", "4"),
        (&grpc, "application/grpc+proto", "/grow", "13"),
        (&grpc, "application/grpc", "/trap", "13"),
    ];
    let web = client();
    let web_cases = [
        (&web, "application/grpc-web+proto", "/block", "4"),
        (&web, "application/grpc-web-text", "/trap", "13"),
    ];
    for (client, content_type, path, code) in cases.into_iter().chain(web_cases) {
        let response = client
            .post(format!("{base}{path}"))
            .header("content-type", content_type)
            .body(vec![0, 0, 0, 0, 0])
            .send()
            .await
            .unwrap_or_else(|err| panic!("POST {path}: {err}"));
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|value| value.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        let seen = (
            response.status().as_u16(),
            header("content-type"),
            header("grpc-status"),
        );
        assert_eq!(
            seen,
            (200, content_type.to_owned(), code.to_owned()),
            "{path}"
        );
        assert!(!header("grpc-message").is_empty(), "{path}");
        let body = response.bytes().await.expect("body");
        assert!(
            body.is_empty(),
            "{path}: a Trailers-Only answer has no body"
        );
    }
    assert_guests_stopped(&running).await;
}

/// The host binary, killed on drop.
struct HostProcess {
    child: Child,
    url: String,
}

impl HostProcess {
    fn start(args: &[&str]) -> Self {
        let mut child = Command::new(BIN)
            .args([
                "serve",
                "--store",
                "memory:",
                "--listen",
                "127.0.0.1:0",
                "--wasm",
            ])
            .arg(misbehave_wasm())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the host");
        let stderr = BufReader::new(child.stderr.take().expect("stderr"));
        let mut lines = stderr.lines();
        // The log line `{…,"msg":"serving","url":"http://ADDR",…}` once it listens; waits
        // end with the process.
        let url = lines
            .by_ref()
            .map_while(Result::ok)
            .find_map(|line| {
                let event: serde_json::Value = serde_json::from_str(&line).ok()?;
                (event["msg"] == "serving").then(|| event["url"].as_str().map(str::to_owned))?
            })
            .expect("the host says where it serves");
        // Keep draining stderr so that the host never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Self { child, url }
    }
}

impl Drop for HostProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_binary_takes_its_limits_from_the_command_line() {
    let host = tokio::task::spawn_blocking(|| {
        HostProcess::start(&["--request-timeout", "1", "--max-memory", "16"])
    })
    .await
    .expect("start task");
    let client = client();
    assert_deadline_exceeded(&get(&client, &host.url, "/loop").await);
    let status = get(&client, &host.url, "/grow").await;
    assert_eq!((status.http, status.code), (500, 13), "{status:?}");
    assert!(status.message.contains("16 MiB"), "{status:?}");
    assert_hundred_ok(&client, &host.url).await;
}
