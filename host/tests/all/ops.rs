//! The operator's surface (`--admin-listen`, `HostBuilder::admin_listen`) over real HTTP with
//! the real core: `/healthz`; `/readyz` following a real Redis that goes away and comes back, and
//! a failing store; `/metrics` parsed strictly as OpenMetrics text, its request counters and
//! latency histogram moving by exactly the requests sent (JSON, gRPC, gRPC-Web), SMS outcomes
//! and store errors; and the binary's own log lines (JSON, none per answered request).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers fail the test loudly on anything unexpected"
)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use set_my_phone_host::HostBuilder;
use set_my_phone_host::keyvalue::{Fault, MemoryBackend};
use set_my_phone_host::sms::{RecordingSms, SmsReply};

use crate::common::{HostProcess, Issuer, PHONE_URL, RedisServer, Scratch, get_phone, put_phone};

/// How long a condition that depends on the machine's speed may take to hold.
const PATIENCE: Duration = Duration::from_secs(60);

const GRPC_GET: &str = "/zitadel.auth.v1.AuthService/GetMyPhone";

// ---------------------------------------------------------------------------------------------
// A strict OpenMetrics text parser.

/// One scrape: every sample by its series, `name{a="1",b="2"}` with the labels sorted.
#[derive(Debug, Clone)]
struct Scrape {
    samples: BTreeMap<String, f64>,
}

/// The series key of `name` with `labels`, as [`Scrape`] spells it.
fn series(name: &str, labels: &[(&str, &str)]) -> String {
    let mut labels: Vec<_> = labels.to_vec();
    labels.sort();
    let labels: Vec<String> = labels
        .iter()
        .map(|(key, value)| format!("{key}=\"{value}\""))
        .collect();
    format!("{name}{{{}}}", labels.join(","))
}

fn is_name(name: &str, extra: &[char]) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || extra.contains(&c))
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || extra.contains(&c))
}

/// Parses a sample line `name{label="value",...} value`; answers its name, labels and value.
fn parse_sample(line: &str) -> (String, Vec<(String, String)>, f64) {
    let name_end = line
        .find(['{', ' '])
        .unwrap_or_else(|| panic!("no value: {line:?}"));
    let name = &line[..name_end];
    assert!(is_name(name, &[':']), "bad metric name in {line:?}");
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(after) = rest.strip_prefix('{') {
        rest = after;
        loop {
            if let Some(after) = rest.strip_prefix('}') {
                rest = after;
                break;
            }
            let (key, after) = rest
                .split_once("=\"")
                .unwrap_or_else(|| panic!("bad label in {line:?}"));
            assert!(is_name(key, &[]), "bad label name {key:?} in {line:?}");
            let mut value = String::new();
            let mut chars = after.char_indices();
            let end = loop {
                match chars.next() {
                    Some((_, '\\')) => match chars.next() {
                        Some((_, 'n')) => value.push('\n'),
                        Some((_, c @ ('\\' | '"'))) => value.push(c),
                        other => panic!("bad escape {other:?} in {line:?}"),
                    },
                    Some((i, '"')) => break i,
                    Some((_, c)) => value.push(c),
                    None => panic!("unterminated label value in {line:?}"),
                }
            };
            assert!(
                labels.iter().all(|(k, _)| k != key),
                "label {key} twice in {line:?}"
            );
            labels.push((key.to_owned(), value));
            rest = &after[end + 1..];
            if let Some(after) = rest.strip_prefix(',') {
                rest = after;
            } else {
                assert!(rest.starts_with('}'), "bad label list in {line:?}");
            }
        }
    }
    let rest = rest
        .strip_prefix(' ')
        .unwrap_or_else(|| panic!("no space before the value in {line:?}"));
    let mut parts = rest.split(' ');
    let value = parts.next().unwrap_or_default();
    let value: f64 = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        number => number
            .parse()
            .unwrap_or_else(|_| panic!("bad value {number:?} in {line:?}")),
    };
    if let Some(timestamp) = parts.next() {
        assert!(
            timestamp.parse::<f64>().is_ok(),
            "bad timestamp in {line:?}"
        );
    }
    assert!(parts.next().is_none(), "trailing text in {line:?}");
    (name.to_owned(), labels, value)
}

/// Parses `text` as the OpenMetrics text format, strictly: `# EOF` last; every family with one
/// HELP and one TYPE before its samples; sample names that fit their family's type; no series
/// twice; histogram buckets that never decrease and end in `+Inf` equal to `_count`.
fn parse_metrics(text: &str) -> Scrape {
    let body = text
        .strip_suffix("# EOF\n")
        .unwrap_or_else(|| panic!("does not end with # EOF:\n{text}"));
    let mut types: HashMap<String, String> = HashMap::new();
    let mut helps: HashSet<String> = HashSet::new();
    let mut samples = BTreeMap::new();
    let mut buckets: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for line in body.lines() {
        assert!(!line.is_empty(), "empty line in:\n{text}");
        if let Some(meta) = line.strip_prefix("# ") {
            let mut parts = meta.splitn(3, ' ');
            let (kind, name, rest) = (
                parts.next().unwrap_or_default(),
                parts.next().unwrap_or_default(),
                parts.next().unwrap_or_default(),
            );
            assert!(is_name(name, &[':']), "bad family name in {line:?}");
            assert!(
                name.starts_with("set_my_phone_"),
                "unprefixed family {name}"
            );
            match kind {
                "HELP" => {
                    assert!(!rest.trim().is_empty(), "empty HELP for {name}");
                    assert!(helps.insert(name.to_owned()), "two HELPs for {name}");
                }
                "TYPE" => {
                    assert!(
                        matches!(
                            rest,
                            "counter"
                                | "gauge"
                                | "histogram"
                                | "summary"
                                | "info"
                                | "stateset"
                                | "gaugehistogram"
                                | "unknown"
                        ),
                        "bad type in {line:?}"
                    );
                    let previous = types.insert(name.to_owned(), rest.to_owned());
                    assert!(previous.is_none(), "two TYPEs for {name}");
                }
                "UNIT" => {}
                _ => panic!("unknown metadata line {line:?}"),
            }
            continue;
        }
        assert!(!line.starts_with('#'), "bad comment {line:?}");
        let (name, labels, value) = parse_sample(line);
        let family = types
            .iter()
            .find(|(family, kind)| {
                let suffixes: &[&str] = match kind.as_str() {
                    "counter" => &["_total", "_created"],
                    "histogram" => &["_bucket", "_count", "_sum", "_created"],
                    _ => &[""],
                };
                suffixes
                    .iter()
                    .any(|suffix| name == format!("{family}{suffix}"))
            })
            .map(|(family, _)| family.clone())
            .unwrap_or_else(|| panic!("sample {line:?} belongs to no declared family"));
        assert!(helps.contains(&family), "{family} has no HELP");
        let mut label_refs: Vec<(&str, &str)> = labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        if name.ends_with("_bucket") {
            let le = labels
                .iter()
                .find(|(k, _)| k == "le")
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| panic!("bucket without le: {line:?}"));
            let le: f64 = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().unwrap()
            };
            label_refs.retain(|(k, _)| *k != "le");
            buckets
                .entry(series(&family, &label_refs))
                .or_default()
                .push((le, value));
        }
        let key = series(
            &name,
            &labels
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect::<Vec<_>>(),
        );
        assert!(
            samples.insert(key.clone(), value).is_none(),
            "series {key} twice"
        );
    }
    for (histogram, mut bounds) in buckets {
        bounds.sort_by(|a, b| a.0.total_cmp(&b.0));
        assert!(
            bounds.windows(2).all(|w| w[0].1 <= w[1].1),
            "{histogram}: buckets decrease: {bounds:?}"
        );
        let (last_le, last) = *bounds.last().unwrap();
        assert_eq!(last_le, f64::INFINITY, "{histogram}: no +Inf bucket");
        let count_key = histogram.replacen('{', "_count{", 1);
        assert_eq!(
            samples.get(&count_key),
            Some(&last),
            "{histogram}: +Inf != count"
        );
    }
    Scrape { samples }
}

impl Scrape {
    fn value(&self, key: &str) -> f64 {
        self.samples.get(key).copied().unwrap_or(0.0)
    }

    /// The series of `name` whose value changed since `before`, with the change.
    fn moved(&self, before: &Scrape, name: &str) -> BTreeMap<String, f64> {
        let prefix = format!("{name}{{");
        self.samples
            .iter()
            .filter(|(key, _)| key.starts_with(&prefix))
            .map(|(key, value)| (key.clone(), value - before.value(key)))
            .filter(|(_, change)| *change != 0.0)
            .collect()
    }
}

#[test]
fn the_parser_refuses_what_is_not_openmetrics() {
    let good = "# HELP set_my_phone_x X.\n# TYPE set_my_phone_x counter\n\
                set_my_phone_x_total{a=\"1\"} 2\n# EOF\n";
    assert_eq!(
        parse_metrics(good).value(&series("set_my_phone_x_total", &[("a", "1")])),
        2.0
    );
    for bad in [
        good.replace("# EOF\n", ""),
        good.replace("# HELP set_my_phone_x X.\n", ""),
        good.replace("x_total", "y_total"),
        good.replace("} 2", "} two"),
        good.replace("a=\"1\"", "a=1"),
        good.replace("# EOF\n", "set_my_phone_x_total{a=\"1\"} 3\n# EOF\n"),
    ] {
        assert!(
            std::panic::catch_unwind(|| parse_metrics(&bad)).is_err(),
            "accepted:\n{bad}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP helpers.

async fn fetch(client: &reqwest::Client, url: &str) -> (u16, String) {
    let response = client.get(url).send().await.expect("admin answered");
    let status = response.status().as_u16();
    (status, response.text().await.expect("admin body"))
}

async fn scrape(client: &reqwest::Client, admin: &str) -> Scrape {
    let response = client
        .get(format!("{admin}/metrics"))
        .send()
        .await
        .expect("/metrics answered");
    assert_eq!(response.status(), 200);
    let content_type = response.headers()[reqwest::header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    parse_metrics(&response.text().await.expect("/metrics body"))
}

/// Scrapes until `done` holds, at most [`PATIENCE`]; answers the last scrape.
async fn scrape_until(
    client: &reqwest::Client,
    admin: &str,
    what: &str,
    done: impl Fn(&Scrape) -> bool,
) -> Scrape {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let scrape = scrape(client, admin).await;
        if done(&scrape) {
            return scrape;
        }
        assert!(Instant::now() < deadline, "never: {what}: {scrape:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn requests(rpc: &str, protocol: &str, code: &str) -> String {
    series(
        "set_my_phone_requests_total",
        &[("rpc", rpc), ("protocol", protocol), ("code", code)],
    )
}

fn latency_count(rpc: &str) -> String {
    series(
        "set_my_phone_request_duration_seconds_count",
        &[("rpc", rpc)],
    )
}

fn sms(outcome: &str) -> String {
    series("set_my_phone_sms_deliveries_total", &[("outcome", outcome)])
}

/// An empty protobuf message in one gRPC frame.
const EMPTY_FRAME: [u8; 5] = [0, 0, 0, 0, 0];

async fn grpc_web_get(client: &reqwest::Client, base: &str, token: &str) -> u16 {
    let response = client
        .post(format!("{base}{GRPC_GET}"))
        .header("content-type", "application/grpc-web+proto")
        .bearer_auth(token)
        .body(EMPTY_FRAME.to_vec())
        .send()
        .await
        .expect("gRPC-Web answered");
    let status = response.status().as_u16();
    response.bytes().await.expect("gRPC-Web body");
    status
}

async fn grpc_call(client: &reqwest::Client, base: &str, path: &str, token: &str) -> u16 {
    let response = client
        .post(format!("{base}{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .bearer_auth(token)
        .body(EMPTY_FRAME.to_vec())
        .send()
        .await
        .expect("gRPC answered");
    let status = response.status().as_u16();
    response.bytes().await.expect("gRPC body");
    status
}

// ---------------------------------------------------------------------------------------------
// The binary.

fn start_host(args: &[&str], env: &[(String, String)]) -> HostProcess {
    let mut all = vec!["--request-timeout", "300", "--admin-listen", "127.0.0.1:0"];
    all.extend_from_slice(args);
    // The default filter, whatever the environment running the tests says.
    let mut env = env.to_vec();
    env.push(("RUST_LOG".to_owned(), "info".to_owned()));
    HostProcess::start(&crate::common::initialised_core_path(), &all, &env)
}

/// The host's own log lines (JSON events with a `target`), parsed.
fn host_events(stderr: &str) -> Vec<Value> {
    stderr
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|event| event["target"].is_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_binary_serves_probes_and_metrics_that_count_every_request() {
    let issuer = Issuer::new();
    let mut host = start_host(&["--store", "memory:"], &issuer.env());
    let admin = host
        .admin_url
        .clone()
        .expect("the serving line names the admin URL");
    let client = reqwest::Client::new();

    assert_eq!(
        fetch(&client, &format!("{admin}/healthz")).await,
        (200, "ok\n".into())
    );
    assert_eq!(
        fetch(&client, &format!("{admin}/readyz")).await,
        (200, "ready\n".into())
    );
    assert_eq!(fetch(&client, &format!("{admin}/nope")).await.0, 404);
    let posted = client
        .post(format!("{admin}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 405);

    let token = issuer.token("metrics-user");
    let url = host.url(PHONE_URL);
    // Warm up (the first request creates the user's record), then count from here.
    assert_eq!(get_phone(&client, &url, &token).await.status, 200);
    let before = scrape(&client, &admin).await;
    const GOOD: usize = 5;
    const BAD: usize = 3;
    for _ in 0..GOOD {
        assert_eq!(get_phone(&client, &url, &token).await.status, 200);
    }
    for _ in 0..BAD {
        assert_eq!(get_phone(&client, &url, "not-a-token").await.status, 401);
    }
    let unknown = client.get(host.url("/no/such/path")).send().await.unwrap();
    assert_eq!(unknown.status(), 404);
    unknown.bytes().await.unwrap();
    // A request is counted before its client has its status: no wait is needed.
    let after = scrape(&client, &admin).await;

    let expected: BTreeMap<String, f64> = [
        (requests("GetMyPhone", "json", "OK"), GOOD as f64),
        (
            requests("GetMyPhone", "json", "UNAUTHENTICATED"),
            BAD as f64,
        ),
        (requests("unknown", "json", "NOT_FOUND"), 1.0),
    ]
    .into_iter()
    .collect();
    assert_eq!(
        after.moved(&before, "set_my_phone_requests_total"),
        expected
    );
    let expected: BTreeMap<String, f64> = [
        (latency_count("GetMyPhone"), (GOOD + BAD) as f64),
        (latency_count("unknown"), 1.0),
    ]
    .into_iter()
    .collect();
    assert_eq!(
        after.moved(&before, "set_my_phone_request_duration_seconds_count"),
        expected
    );
    let inf = series(
        "set_my_phone_request_duration_seconds_bucket",
        &[("rpc", "GetMyPhone"), ("le", "+Inf")],
    );
    assert_eq!(after.value(&inf) - before.value(&inf), (GOOD + BAD) as f64);
    assert_eq!(after.value("set_my_phone_requests_in_flight{}"), 0.0);

    // A PUT sends its SMS after the answer: its outcome is counted once the sender answered.
    // Without --print-sms the core alone has nothing to deliver through: a permanent failure
    // that says so, and no code in the logs.
    let phone = "+41 71 000 00 11";
    assert_eq!(put_phone(&client, &url, &token, phone).await.status, 200);
    let sent = scrape_until(&client, &admin, "the SMS counted", |scrape| {
        scrape.value(&sms("permanent")) == before.value(&sms("permanent")) + 1.0
    })
    .await;
    assert_eq!(
        sent.moved(&before, "set_my_phone_sms_deliveries_total"),
        [(sms("permanent"), 1.0)].into_iter().collect()
    );
    host.wait_for_stderr("no SMS provider", PATIENCE);
    assert!(!host.stderr().contains("sms #"), "{}", host.stderr());

    // The host logged its start as one JSON line, and nothing for the requests it passed on.
    let events = host_events(&host.stderr());
    assert_eq!(events.len(), 1, "{events:#?}");
    let serving = &events[0];
    assert_eq!(serving["msg"], "serving");
    assert_eq!(serving["level"], "info");
    assert!(
        serving["time"].as_str().unwrap().ends_with('Z'),
        "{serving}"
    );
    assert_eq!(serving["admin_url"], admin.as_str());
    assert!(host.terminate().success());
    host.wait_for_stderr(r#""msg":"stopped""#, PATIENCE);
    let stderr = host.stderr();
    let messages: Vec<String> = host_events(&stderr)
        .iter()
        .map(|event| event["msg"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(
        messages.iter().any(|m| m.starts_with("stopping")),
        "{stderr}"
    );
    assert!(messages.iter().any(|m| m == "stopped"), "{stderr}");
    for event in host_events(&stderr) {
        let line = event.to_string();
        assert!(!line.contains(&token), "{line}");
        assert!(!line.contains("710000011"), "{line}");
    }
}

/// Polls `/readyz` until it answers `status`, at most [`PATIENCE`]; answers its body.
async fn readyz_until(client: &reqwest::Client, admin: &str, status: u16) -> String {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (got, body) = fetch(client, &format!("{admin}/readyz")).await;
        if got == status {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "/readyz never answered {status}; last {got} {body:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn readyz_fails_while_redis_is_down_and_passes_when_it_returns() {
    let scratch = Scratch::new("readyz");
    let mut redis = RedisServer::start(&scratch.dir, false);
    let issuer = Issuer::new();
    let host = start_host(&["--store", &redis.url()], &issuer.env());
    let admin = host.admin_url.clone().expect("admin URL");
    let client = reqwest::Client::new();
    assert_eq!(readyz_until(&client, &admin, 200).await, "ready\n");

    redis.kill();
    let body = readyz_until(&client, &admin, 503).await;
    assert!(body.starts_with("not ready: store"), "{body:?}");
    // The process is alive all the same.
    assert_eq!(fetch(&client, &format!("{admin}/healthz")).await.0, 200);
    // Logged once, when readiness changed (the reader of the host's stderr may lag behind).
    host.wait_for_stderr(
        r#""level":"warn","msg":"not ready","reason":"store"#,
        PATIENCE,
    );

    redis.restart();
    assert_eq!(readyz_until(&client, &admin, 200).await, "ready\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn print_sms_prints_each_code_for_local_runs() {
    let issuer = Issuer::new();
    let host = start_host(&["--store", "memory:", "--print-sms"], &issuer.env());
    let admin = host.admin_url.clone().expect("admin URL");
    let client = reqwest::Client::new();
    let token = issuer.token("print-user");
    let url = host.url(PHONE_URL);
    assert_eq!(
        put_phone(&client, &url, &token, "+41 71 000 00 12")
            .await
            .status,
        200
    );
    host.wait_for_stderr("sms #1 to +41710000012 ", PATIENCE);
    scrape_until(&client, &admin, "the SMS counted", |scrape| {
        scrape.value(&sms("delivered")) == 1.0
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// The library.

#[tokio::test(flavor = "multi_thread")]
async fn the_library_counts_grpc_codes_sms_outcomes_and_store_errors() {
    let issuer = Issuer::new();
    let memory = MemoryBackend::new();
    let recorder = RecordingSms::new();
    let running = HostBuilder::new(crate::common::initialised_core_path())
        .envs(issuer.env())
        .backend(Arc::new(memory.clone()))
        .sms(Arc::new(recorder.clone()))
        .admin_listen("127.0.0.1:0".parse().unwrap())
        .build()
        .expect("host builds")
        .spawn_local()
        .await
        .expect("host serves");
    let admin = format!(
        "http://{}",
        running.host().admin_addr().expect("admin address")
    );
    let base = running.url();
    let client = reqwest::Client::new();
    let h2c = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let token = issuer.token("grpc-user");
    let url = format!("{base}{PHONE_URL}");
    assert_eq!(get_phone(&client, &url, &token).await.status, 200);

    // gRPC-Web carries its status in a trailer frame at the end of the body, gRPC in HTTP
    // trailers; errors in the head (Trailers-Only).
    let before = scrape(&client, &admin).await;
    assert_eq!(grpc_web_get(&client, &base, &token).await, 200);
    assert_eq!(grpc_web_get(&client, &base, &token).await, 200);
    assert_eq!(grpc_web_get(&client, &base, "bad").await, 200);
    assert_eq!(grpc_call(&h2c, &base, GRPC_GET, &token).await, 200);
    assert_eq!(grpc_call(&h2c, &base, GRPC_GET, "bad").await, 200);
    let nowhere = "/zitadel.auth.v1.AuthService/NoSuchMethod";
    assert_eq!(grpc_call(&h2c, &base, nowhere, &token).await, 200);
    let after = scrape(&client, &admin).await;
    let expected: BTreeMap<String, f64> = [
        (requests("GetMyPhone", "grpc-web", "OK"), 2.0),
        (requests("GetMyPhone", "grpc-web", "UNAUTHENTICATED"), 1.0),
        (requests("GetMyPhone", "grpc", "OK"), 1.0),
        (requests("GetMyPhone", "grpc", "UNAUTHENTICATED"), 1.0),
        (requests("unknown", "grpc", "UNIMPLEMENTED"), 1.0),
    ]
    .into_iter()
    .collect();
    assert_eq!(
        after.moved(&before, "set_my_phone_requests_total"),
        expected
    );

    // SMS outcomes, once the work after each answer is done.
    let before = after;
    for (reply, phone) in [
        (SmsReply::Sent, "+41 71 000 00 21"),
        (SmsReply::Retryable("busy".into()), "+41 71 000 00 22"),
        (
            SmsReply::Permanent("no such number".into()),
            "+41 71 000 00 23",
        ),
        (
            SmsReply::Permanent("no such number".into()),
            "+41 71 000 00 24",
        ),
    ] {
        recorder.set_reply(reply);
        assert_eq!(put_phone(&client, &url, &token, phone).await.status, 200);
        running.idle().await;
    }
    let after = scrape(&client, &admin).await;
    let expected: BTreeMap<String, f64> = [
        (sms("delivered"), 1.0),
        (sms("retryable"), 1.0),
        (sms("permanent"), 2.0),
    ]
    .into_iter()
    .collect();
    assert_eq!(
        after.moved(&before, "set_my_phone_sms_deliveries_total"),
        expected
    );
    assert_eq!(
        after.moved(&before, "set_my_phone_store_errors_total"),
        BTreeMap::new()
    );

    // A store that fails: answers 503, counts the failed reads, and /readyz says why.
    let before = after;
    memory.set_fault(Fault::FailGets);
    let failed = get_phone(&client, &url, &token).await;
    assert_eq!((failed.status, failed.code()), (503, 14), "{failed:?}");
    let (status, body) = fetch(&client, &format!("{admin}/readyz")).await;
    assert_eq!(status, 503);
    assert_eq!(body, "not ready: store unavailable: injected fault\n");
    let after = scrape(&client, &admin).await;
    let gets = series("set_my_phone_store_errors_total", &[("operation", "get")]);
    assert!(after.value(&gets) > before.value(&gets), "{after:?}");
    assert_eq!(
        after.moved(&before, "set_my_phone_requests_total"),
        [(requests("GetMyPhone", "json", "UNAVAILABLE"), 1.0)]
            .into_iter()
            .collect()
    );
    memory.set_fault(Fault::None);
    assert_eq!(
        fetch(&client, &format!("{admin}/readyz")).await,
        (200, "ready\n".into())
    );
    assert_eq!(running.host().readiness().await, Ok(()));
    running.idle().await;
    running.stop().await.expect("host stops");
}

#[tokio::test(flavor = "multi_thread")]
async fn operators_list_and_lift_sms_pumping_blocks() {
    let issuer = Issuer::new();
    // The pumping guard on, judging a range after two codes.
    let mut env: Vec<(String, String)> = issuer
        .env()
        .into_iter()
        .filter(|(name, _)| name != "PHONE_PUMPING_MIN_VERIFIED")
        .collect();
    env.push(("PHONE_PUMPING_MIN_CODES".into(), "2".into()));
    let host = start_host(&["--store", "memory:", "--print-sms"], &env);
    let admin = host.admin_url.clone().expect("the admin URL");
    let client = reqwest::Client::new();
    let url = host.url(PHONE_URL);
    let blocks_url = format!("{admin}/sms-guard/blocks");

    let (status, body) = fetch(&client, &blocks_url).await;
    assert_eq!((status, body.trim()), (200, r#"{"blocks":[]}"#));
    for (i, phone) in ["+41 79 555 01 00", "+41 79 555 01 01"].iter().enumerate() {
        let set = put_phone(&client, &url, &issuer.token(&format!("u{i}")), phone).await;
        assert_eq!(set.status, 200, "{set:?}");
    }
    let tripped = put_phone(&client, &url, &issuer.token("u2"), "+41 79 555 01 02").await;
    assert_eq!((tripped.status, tripped.code()), (429, 8), "{tripped:?}");

    let (status, body) = fetch(&client, &blocks_url).await;
    assert_eq!(status, 200);
    let listed: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        listed["blocks"].as_array().map(Vec::len),
        Some(1),
        "{listed}"
    );
    assert_eq!(listed["blocks"][0]["prefix"], "+41795550");
    assert_eq!(listed["blocks"][0]["codes"], 2);

    let lift = |prefix: &str| client.delete(format!("{blocks_url}/{prefix}")).send();
    assert_eq!(lift("not-a-range").await.unwrap().status(), 400);
    assert_eq!(lift("+44").await.unwrap().status(), 404);
    let lifted = lift("+41795550").await.unwrap();
    assert_eq!(lifted.status(), 200);
    let lifted: Value = lifted.json().await.unwrap();
    assert_eq!(lifted["blocks"][0]["lifted"], true, "{lifted}");
    assert_eq!(
        lift("41795550").await.unwrap().status(),
        404,
        "already lifted"
    );
    // Codes flow into the range again, and the same counts do not trip it again.
    for i in 2..5 {
        let set = put_phone(
            &client,
            &url,
            &issuer.token(&format!("u{i}")),
            &format!("+41 79 555 01 0{i}"),
        )
        .await;
        assert_eq!(set.status, 200, "{set:?}");
    }
    let scrape = scrape(&client, &admin).await;
    assert_eq!(
        scrape.value(&series(
            "set_my_phone_codes_refused_total",
            &[("reason", "pumping_tripped")]
        )),
        1.0
    );
}
