//! Real-process tests of the `set-my-phone-host` binary over real HTTP: restart persistence on the
//! embedded store, graceful shutdown, two hosts on one Redis, a Redis outage, HTTP/1.1 and h2c,
//! start-up failures, and the Redis backend's compare-and-swap contract.
//!
//! They need the pre-initialised core (`scripts/build-artifacts`) and Debian's `redis-server`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers fail the test loudly on anything unexpected"
)]

use std::collections::HashSet;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use set_my_phone_host::keyvalue::{Backend as _, RedisBackend, Swap, Version};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::common::{
    Answer, BIN, HostProcess, Issuer, PHONE_URL, RedisServer, START_LIMIT, Scratch, get_phone,
    put_phone, signal, wait_with_limit,
};

/// The host binary serving the pre-initialised core with `args` and `env`. These tests are about
/// stores, connections and shutdown, not deadlines: a generous answer deadline keeps a busy
/// machine (some run beside a busy loop per core) from turning slow answers into 504s.
fn start_host(args: &[&str], env: &[(String, String)]) -> HostProcess {
    let mut all = vec!["--request-timeout", "300"];
    all.extend_from_slice(args);
    HostProcess::start(&crate::common::initialised_core_path(), &all, env)
}

#[tokio::test(flavor = "multi_thread")]
async fn embedded_store_keeps_numbers_and_sequences_across_a_restart() {
    let scratch = Scratch::new("restart");
    let issuer = Issuer::new();
    let env = issuer.env();
    let token = issuer.token("restart-user");
    // A folder that does not exist yet: the host creates it.
    let store = format!("redb:{}", scratch.path("data/phones.redb").display());
    let client = reqwest::Client::new();

    let mut first = start_host(&["--store", &store], &env);
    let set = put_phone(&client, &first.url(PHONE_URL), &token, "+41 71 000 00 01").await;
    assert_eq!(set.status, 200, "{set:?}");
    assert_eq!(set.sequence(), 2);
    let before = get_phone(&client, &first.url(PHONE_URL), &token).await;
    assert!(first.terminate().success(), "{}", first.stderr());
    assert!(first.stderr().contains("stopped"), "{}", first.stderr());

    let second = start_host(&["--store", &store], &env);
    let after = get_phone(&client, &second.url(PHONE_URL), &token).await;
    assert_eq!(after.status, 200, "{after:?}");
    assert_eq!(after.phone(), Some("+41710000001"));
    assert_eq!(after.sequence(), 2);
    assert_eq!(
        after.body, before.body,
        "the record changed across the restart"
    );

    let again = put_phone(&client, &second.url(PHONE_URL), &token, "+41 71 000 00 02").await;
    assert_eq!(again.status, 200, "{again:?}");
    assert_eq!(again.sequence(), 4);
    let last = get_phone(&client, &second.url(PHONE_URL), &token).await;
    assert_eq!(last.phone(), Some("+41710000002"));
    assert_eq!(last.sequence(), 4);
    assert_eq!(
        last.body["details"]["creationDate"],
        before.body["details"]["creationDate"]
    );
}

/// Reads one response head (through its blank line) and nothing after it.
async fn read_head(stream: &mut tokio::net::TcpStream) -> String {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let byte = stream.read_u8().await.expect("a response head");
        head.push(byte);
    }
    String::from_utf8(head).expect("an ASCII head")
}

/// An HTTP/1.1 response read to its end: status and JSON body (chunked or not).
fn raw_answer(response: &[u8]) -> Answer {
    let text = String::from_utf8_lossy(response);
    let (head, mut rest) = text.split_once("\r\n\r\n").expect("a complete head");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let mut body = String::new();
    if chunked {
        loop {
            let (size, after) = rest.split_once("\r\n").expect("a chunk size");
            let size = usize::from_str_radix(size.trim(), 16).expect("a hex chunk size");
            if size == 0 {
                break;
            }
            body.push_str(&after[..size]);
            rest = &after[size + 2..];
        }
    } else {
        body.push_str(rest);
    }
    Answer {
        status,
        // The raw exchange keeps no headers: the tests here read the status and body.
        headers: Default::default(),
        body: serde_json::from_str(&body).unwrap_or(Value::String(body)),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_lets_a_request_in_flight_finish_and_refuses_new_connections() {
    let issuer = Issuer::new();
    let token = issuer.token("graceful-user");
    let mut host = start_host(&["--store", "memory:"], &issuer.env());
    let addr = host.url.trim_start_matches("http://").to_owned();

    // A PUT whose body waits for `100 Continue`: the host sends it only once the request is
    // being served and its body is read (RFC 9110 §10.1.1), so the request is in flight.
    let body = b"{\"phone\":\"+41 71 000 00 03\"}";
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "PUT {PHONE_URL} HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {token}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\
         expect: 100-continue\r\nconnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let interim = read_head(&mut stream).await;
    assert!(
        interim.starts_with("HTTP/1.1 100"),
        "expected 100 Continue, got {interim:?}"
    );

    signal(host.child.id(), "-TERM");
    host.wait_for_stderr("stopping", Duration::from_secs(10));
    // The listener closes right after the "stopping" line: give a busy machine a moment.
    let closing = std::time::Instant::now();
    while std::net::TcpStream::connect(&addr).is_ok() {
        assert!(
            closing.elapsed() < Duration::from_secs(10),
            "the host still accepts connections 10 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        host.child.try_wait().expect("poll host").is_none(),
        "the host exited with a request in flight"
    );

    stream.write_all(body).await.unwrap();
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .await
        .expect("the request in flight is answered");
    let set = raw_answer(&response);
    assert_eq!(set.status, 200, "{set:?}");
    assert_eq!(set.sequence(), 2);
    let status = wait_with_limit(&mut host.child, Duration::from_secs(30))
        .unwrap_or_else(|| panic!("the host did not stop:\n{}", host.stderr()));
    assert!(status.success(), "exit {status}:\n{}", host.stderr());
}

#[tokio::test(flavor = "multi_thread")]
async fn http1_and_h2c_are_served_on_one_port_in_dev_mode() {
    let scratch = Scratch::new("protocols");
    let token_file = scratch.path("token");
    let token_arg = token_file.display().to_string();
    let store = format!("redb:{}", scratch.path("dev.redb").display());
    let host = start_host(
        &["--store", &store, "--dev", "--token-file", &token_arg],
        &[],
    );
    let token = std::fs::read_to_string(&token_file).expect("dev token written");

    let http1 = reqwest::Client::builder().http1_only().build().unwrap();
    let response = http1
        .put(host.url(PHONE_URL))
        .bearer_auth(&token)
        .json(&json!({"phone": "+41 71 000 00 04"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_11);
    let set = crate::common::answer(response)
        .await
        .expect("read the body");
    assert_eq!(set.status, 200, "{set:?}");

    let h2c = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let response = h2c
        .get(host.url(PHONE_URL))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    let got = crate::common::answer(response)
        .await
        .expect("read the body");
    assert_eq!(got.status, 200, "{got:?}");
    assert_eq!(got.phone(), Some("+41710000004"));
    assert_eq!(got.sequence(), set.sequence());

    // The "set my phone" screen, signed in as the development user; other paths still go to
    // the guest.
    let page = http1.get(host.url("/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(
        page.headers()["content-type"].to_str().unwrap(),
        "text/html; charset=utf-8"
    );
    let html = page.text().await.unwrap();
    assert!(html.contains("<title>Set my phone</title>"));
    assert!(html.contains(&format!(r#"content="{}""#, token.trim())));
    let other = http1.get(host.url("/index.html")).send().await.unwrap();
    assert_eq!(other.status(), 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_front_page_is_served_only_in_dev_mode() {
    let host = start_host(&["--store", "memory:"], &Issuer::new().env());
    let response = reqwest::get(host.url("/")).await.unwrap();
    assert_eq!(response.status(), 404);
    assert!(!response.text().await.unwrap().contains("<html"));
}

/// A busy loop per core (at a lower priority, like a build running beside), stopped on drop.
struct CpuHog(Vec<Child>);

impl CpuHog {
    fn start() -> CpuHog {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        CpuHog(
            (0..cores)
                .map(|_| {
                    Command::new("nice")
                        .args(["-n", "10", "sh", "-c", "while :; do :; done"])
                        .spawn()
                        .expect("a busy loop starts")
                })
                .collect(),
        )
    }
}

impl Drop for CpuHog {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `puts` concurrent PUTs of different numbers for one new user, spread over `hosts`: every
/// answer is 200 or 409, no sequence repeats, and every host then reads the last winner's number.
async fn race_one_user(hosts: &[&HostProcess], issuer: &Issuer, puts: usize) {
    let token = issuer.token("shared-user");
    let client = reqwest::Client::new();
    let mut tasks = Vec::new();
    for i in 0..puts {
        let url = hosts[i % hosts.len()].url(PHONE_URL);
        let (client, token) = (client.clone(), token.clone());
        let phone = format!("+41 71 000 10 {i:02}");
        tasks.push(tokio::spawn(async move {
            let answer = put_phone(&client, &url, &token, &phone).await;
            (phone, answer)
        }));
    }
    let mut sequences = HashSet::new();
    let mut last = None;
    for task in tasks {
        let (phone, answer) = task.await.unwrap();
        match answer.status {
            200 => {
                let sequence = answer.sequence();
                assert!(sequences.insert(sequence), "sequence {sequence} repeated");
                if last.as_ref().is_none_or(|(s, _)| *s < sequence) {
                    last = Some((sequence, phone));
                }
            }
            409 => assert_eq!(answer.code(), 10, "{answer:?}"),
            _ => {
                let logs: Vec<String> = hosts.iter().map(|host| host.stderr()).collect();
                panic!(
                    "unexpected answer {answer:?}; host logs:\n{}",
                    logs.join("\n")
                );
            }
        }
    }
    let successes = sequences.len() as u64;
    eprintln!("{successes} of {puts} concurrent PUTs succeeded, the rest answered 409");
    assert!(successes > 0, "no PUT succeeded");
    let (last_sequence, last_phone) = last.unwrap();
    assert_eq!(last_sequence, 2 * successes);
    let expected_phone = last_phone.replace(' ', "");
    for host in hosts {
        let got = get_phone(&client, &host.url(PHONE_URL), &token).await;
        assert_eq!(got.status, 200, "{got:?}");
        assert_eq!(got.sequence(), 2 * successes, "{got:?}");
        assert_eq!(got.phone(), Some(expected_phone.as_str()), "{got:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn two_hosts_on_one_redis_lose_no_update_and_never_repeat_a_sequence() {
    let scratch = Scratch::new("two-hosts");
    let redis = RedisServer::start(&scratch.dir, false);
    let issuer = Issuer::new();
    let env = issuer.env();
    let store = redis.url();
    let a = start_host(&["--store", &store], &env);
    let b = start_host(&["--store", &store], &env);
    race_one_user(&[&a, &b], &issuer, 40).await;
}

/// A busy machine must not make a store on loopback "unavailable" (it did: the host's workers,
/// busy with guests, left Redis's answers unread past the time limit).
#[tokio::test(flavor = "multi_thread")]
async fn stores_keep_answering_with_every_core_busy() {
    let scratch = Scratch::new("busy");
    let redis = RedisServer::start(&scratch.dir, false);
    let issuer = Issuer::new();
    let env = issuer.env();
    let _hog = CpuHog::start();
    let store = redis.url();
    let a = start_host(&["--store", &store], &env);
    let b = start_host(&["--store", &store], &env);
    race_one_user(&[&a, &b], &issuer, 40).await;
    drop((a, b));
    let redb = format!("redb:{}", scratch.path("busy.redb").display());
    let host = start_host(&["--store", &redb], &env);
    race_one_user(&[&host], &issuer, 50).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_outage_answers_503_and_the_host_recovers_when_redis_returns() {
    let scratch = Scratch::new("outage");
    let mut redis = RedisServer::start(&scratch.dir, true);
    let issuer = Issuer::new();
    let host = start_host(&["--store", &redis.url()], &issuer.env());
    let token = issuer.token("outage-user");
    let client = reqwest::Client::new();
    let url = host.url(PHONE_URL);

    assert_eq!(
        put_phone(&client, &url, &token, "+41 71 000 00 05")
            .await
            .status,
        200
    );
    let before = get_phone(&client, &url, &token).await;
    assert_eq!(before.sequence(), 2);

    redis.kill();
    for _ in 0..3 {
        let started = Instant::now();
        let set = put_phone(&client, &url, &token, "+41 71 000 00 06").await;
        assert_eq!((set.status, set.code()), (503, 14), "{set:?}");
        let got = get_phone(&client, &url, &token).await;
        assert_eq!((got.status, got.code()), (503, 14), "{got:?}");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "answers took {:?} while Redis was down",
            started.elapsed()
        );
    }

    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(20);
    let recovered = loop {
        let set = put_phone(&client, &url, &token, "+41 71 000 00 07").await;
        match (set.status, set.code()) {
            (200, _) => break set,
            (503, 14) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            _ => panic!("no recovery: {set:?}"),
        }
    };
    // The PUTs during the outage wrote nothing: this is the second change.
    assert_eq!(recovered.sequence(), 4, "{recovered:?}");
    let got = get_phone(&client, &url, &token).await;
    assert_eq!(got.status, 200, "{got:?}");
    assert_eq!(got.phone(), Some("+41710000007"));
    assert_eq!(got.sequence(), 4);
    assert_eq!(
        got.body["details"]["creationDate"],
        before.body["details"]["creationDate"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_backend_swaps_only_unchanged_keys_and_reports_failure_only_without_writing() {
    let scratch = Scratch::new("contract");
    let redis = RedisServer::start(&scratch.dir, false);
    let store = RedisBackend::connect(&redis.url()).unwrap();
    store.ping().await.unwrap();
    let b = "default";

    let absent = store.get(b, "k").await.unwrap();
    assert_eq!(absent.version, Version::Absent);
    assert_eq!(
        store
            .compare_and_swap(b, "k", Version::Absent, b"one".to_vec())
            .await
            .unwrap(),
        Swap::Swapped
    );
    assert_eq!(
        store
            .compare_and_swap(b, "k", Version::Absent, b"two".to_vec())
            .await
            .unwrap(),
        Swap::Conflict
    );
    let seen = store.get(b, "k").await.unwrap();
    assert_eq!(seen.value.as_deref(), Some(&b"one"[..]));

    // Rewriting the same value, or deleting and recreating, changes the version.
    store.set(b, "k", b"one".to_vec()).await.unwrap();
    assert_eq!(
        store
            .compare_and_swap(b, "k", seen.version, b"x".to_vec())
            .await
            .unwrap(),
        Swap::Conflict
    );
    assert_eq!(
        store.get(b, "k").await.unwrap().value.as_deref(),
        Some(&b"one"[..])
    );
    let current = store.get(b, "k").await.unwrap();
    store.delete(b, "k").await.unwrap();
    assert!(!store.exists(b, "k").await.unwrap());
    store.set(b, "k", b"one".to_vec()).await.unwrap();
    assert_eq!(
        store
            .compare_and_swap(b, "k", current.version, b"x".to_vec())
            .await
            .unwrap(),
        Swap::Conflict
    );
    let fresh = store.get(b, "k").await.unwrap();
    assert_eq!(
        store
            .compare_and_swap(b, "k", fresh.version, b"three".to_vec())
            .await
            .unwrap(),
        Swap::Swapped
    );
    assert_eq!(
        store.get(b, "k").await.unwrap().value.as_deref(),
        Some(&b"three"[..])
    );

    // Buckets are apart, even with a `:` in the label; keys list per bucket.
    store.set("a:b", "c", b"1".to_vec()).await.unwrap();
    store.set("a", "b:c", b"2".to_vec()).await.unwrap();
    assert_eq!(
        store.get("a:b", "c").await.unwrap().value.as_deref(),
        Some(&b"1"[..])
    );
    assert_eq!(store.list_keys("a", None).await.unwrap().keys, ["b:c"]);
    let mut listed = Vec::new();
    let mut cursor = None;
    loop {
        let page = store.list_keys(b, cursor).await.unwrap();
        listed.extend(page.keys);
        cursor = page.cursor;
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(listed, ["k"]);

    assert_eq!(store.increment(b, "n", 5).await.unwrap(), 5);
    assert_eq!(store.increment(b, "n", -7).await.unwrap(), -2);
    assert_eq!(
        store.get(b, "n").await.unwrap().value.as_deref(),
        Some(&b"-2"[..])
    );
    assert!(
        store.increment(b, "k", 1).await.is_err(),
        "incremented text"
    );
    assert_eq!(
        store.get(b, "k").await.unwrap().value.as_deref(),
        Some(&b"three"[..])
    );

    // 8 writers × 25 increments by compare-and-swap: every swap reported as done wrote, every
    // reported failure did not, so the count is exact.
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut swapped = 0;
            for _ in 0..25 {
                loop {
                    let seen = store.get(b, "count").await.unwrap();
                    let n: u64 = seen
                        .value
                        .as_deref()
                        .map(|v| std::str::from_utf8(v).unwrap().parse().unwrap())
                        .unwrap_or(0);
                    let next = (n + 1).to_string().into_bytes();
                    if store
                        .compare_and_swap(b, "count", seen.version, next)
                        .await
                        .unwrap()
                        == Swap::Swapped
                    {
                        swapped += 1;
                        break;
                    }
                }
            }
            swapped
        }));
    }
    let mut swapped = 0;
    for task in tasks {
        swapped += task.await.unwrap();
    }
    assert_eq!(swapped, 200);
    assert_eq!(
        store.get(b, "count").await.unwrap().value.as_deref(),
        Some(&b"200"[..])
    );
}

/// Runs the binary with `args`, expecting it to fail at start-up; answers its stderr.
fn start_up_failure(args: &[&str]) -> String {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the host binary");
    let status = wait_with_limit(&mut child, START_LIMIT).expect("the host exits");
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success(), "{args:?} started; stderr:\n{stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{args:?}: not one line:\n{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

#[test]
fn start_up_failures_are_one_clear_line_and_a_non_zero_exit() {
    let scratch = Scratch::new("failures");
    let wasm = crate::common::core_path().display().to_string();

    let missing = scratch.path("missing.wasm").display().to_string();
    let stderr = start_up_failure(&["serve", "--wasm", &missing, "--store", "memory:"]);
    assert!(
        stderr.contains("missing.wasm") && stderr.contains("not found"),
        "{stderr}"
    );

    let garbage = scratch.path("garbage.wasm");
    std::fs::write(&garbage, b"this is not WebAssembly").unwrap();
    let garbage = garbage.display().to_string();
    let stderr = start_up_failure(&["serve", "--wasm", &garbage, "--store", "memory:"]);
    assert!(stderr.contains("garbage.wasm"), "{stderr}");

    let stderr = start_up_failure(&["serve", "--wasm", &wasm, "--store", "sqlite:x.db"]);
    assert!(
        stderr.contains("--store") && stderr.contains("sqlite:x.db"),
        "{stderr}"
    );

    // The redb file would go under a regular file: its folder cannot be created.
    let blocker = scratch.path("blocker");
    std::fs::write(&blocker, b"").unwrap();
    let store = format!("redb:{}", blocker.join("x.redb").display());
    let stderr = start_up_failure(&["serve", "--wasm", &wasm, "--store", &store]);
    assert!(stderr.contains("blocker"), "{stderr}");

    // A file that is not a redb database.
    let stderr = start_up_failure(&[
        "serve",
        "--wasm",
        &wasm,
        "--store",
        &format!("redb:{garbage}"),
    ]);
    assert!(stderr.contains("garbage.wasm"), "{stderr}");

    let stderr = start_up_failure(&["serve", "--wasm", &wasm, "--bogus"]);
    assert!(stderr.contains("--bogus"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_library_host_serves_with_and_without_the_pooling_allocator() {
    let issuer = Issuer::new();
    let token = issuer.token("pool-user");
    let client = reqwest::Client::new();
    for (pooling, phone) in [(true, "+41 71 000 00 08"), (false, "+41 71 000 00 09")] {
        let running = set_my_phone_host::HostBuilder::new(crate::common::core_path())
            .envs(issuer.env())
            .pooling_allocator(pooling)
            .build()
            .expect("host builds")
            .spawn_local()
            .await
            .expect("host serves");
        let url = format!("{}{PHONE_URL}", running.url());
        let set = put_phone(&client, &url, &token, phone).await;
        assert_eq!(set.status, 200, "pooling {pooling}: {set:?}");
        let got = get_phone(&client, &url, &token).await;
        assert_eq!(got.phone(), Some(phone.replace(' ', "").as_str()));
        running.idle().await;
        running.stop().await.expect("host stops");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn profile_perfmap_names_the_guests_functions_for_perf() {
    let issuer = Issuer::new();
    let token = issuer.token("profiled-user");
    let mut host = start_host(
        &["--store", "memory:", "--profile", "perfmap"],
        &issuer.env(),
    );
    let map = std::path::PathBuf::from(format!("/tmp/perf-{}.map", host.child.id()));
    let client = reqwest::Client::new();
    let answer = get_phone(&client, &host.url(PHONE_URL), &token).await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    // One line per compiled function, `START SIZE NAME`, named after the guest's Rust code.
    let text = std::fs::read_to_string(&map).expect("the perf map is written");
    assert!(
        text.lines().any(|line| line
            .split(' ')
            .nth(2)
            .is_some_and(|name| name.contains("set_my_phone"))),
        "no guest function in {}",
        map.display()
    );
    host.terminate();
    let _ = std::fs::remove_file(&map);
}
