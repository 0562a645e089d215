//! Instance reuse (`HostBuilder::max_instance_reuse_count`, `--max-instance-reuse-count`): users
//! served one after the other through one warm instance each see only their own data; an instance
//! that trapped, missed its deadline or ran out of memory is dropped and the next request works;
//! a reuse count of 1 gives every request a fresh instance; idle instances are dropped after the
//! idle timeout.
//!
//! The real core runs through the library with tokens of a test issuer; the misbehaving guest
//! (`tests/misbehave`, built here into `target/misbehave`) supplies the failures.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers fail the test loudly on anything unexpected"
)]

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::{Issuer, PHONE_URL, get_phone, misbehave_wasm, put_phone};
use set_my_phone_host::keyvalue::MemoryBackend;
use set_my_phone_host::sms::RecordingSms;
use set_my_phone_host::{DropReason, HostBuilder, InstanceStats, RunningHost};

/// Bound on any wait that should take far less: a hung host, not a slow one.
const HANG: Duration = Duration::from_secs(120);

/// The core on a memory store, trusting `issuer`, reusing each instance for up to `reuse`
/// requests.
async fn start_core(issuer: &Issuer, reuse: u32, sms: &RecordingSms) -> RunningHost {
    HostBuilder::new(crate::common::initialised_core_path())
        .envs(issuer.env())
        .backend(Arc::new(MemoryBackend::new()))
        .sms(Arc::new(sms.clone()))
        .max_instance_reuse_count(reuse)
        .build()
        .expect("host builds")
        .spawn_local()
        .await
        .expect("host serves")
}

/// Waits until every guest has finished (its instance given back or dropped) and answers the
/// instance counters then.
async fn settled(running: &RunningHost) -> InstanceStats {
    tokio::time::timeout(HANG, running.idle())
        .await
        .expect("a guest is still running");
    running.host().instance_stats()
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(HANG)
        .build()
        .expect("client")
}

/// User `n`'s number in round `round`, as entered and in E.164.
fn number(n: u32, round: u32) -> (String, String) {
    (
        format!("+41 71 000 {round:02} 0{n}"),
        format!("+4171000{round:02}0{n}"),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn two_users_alternating_through_one_reused_instance_see_only_their_own_phone() {
    let issuer = Issuer::new();
    let sms = RecordingSms::new();
    let running = start_core(&issuer, 1_000, &sms).await;
    let url = format!("{}{PHONE_URL}", running.url());
    let client = client();
    let users = [
        ("alice", issuer.token("alice")),
        ("bob", issuer.token("bob")),
    ];
    let mut requests = 0;
    // One request at a time, each after the previous one's guest (its SMS included) is done,
    // so that every request finds the one instance idle.
    for round in 0..3 {
        for (n, (user, token)) in (1..).zip(&users) {
            let (entered, e164) = number(n, round);
            let put = put_phone(&client, &url, token, &entered).await;
            assert_eq!(put.status, 200, "{user}, round {round}: {put:?}");
            settled(&running).await;
            let sent = sms.last().expect("an SMS");
            assert_eq!(sent.message.recipient, e164, "{user}'s code went elsewhere");
            requests += 1;
        }
        for (n, (user, token)) in (1..).zip(&users) {
            let got = get_phone(&client, &url, token).await;
            assert_eq!(got.status, 200, "{user}: {got:?}");
            assert_eq!(
                got.phone(),
                Some(number(n, round).1.as_str()),
                "{user}: {got:?}"
            );
            settled(&running).await;
            requests += 1;
        }
    }
    // A third user right after them has no phone, and an unauthenticated request is refused.
    let carol = get_phone(&client, &url, &issuer.token("carol")).await;
    assert_eq!(carol.status, 200, "{carol:?}");
    assert_eq!(carol.body["phone"], serde_json::json!({}), "{carol:?}");
    settled(&running).await;
    let anonymous = client.get(&url).send().await.expect("GET answered");
    assert_eq!(anonymous.status(), 401);
    requests += 2;

    let stats = settled(&running).await;
    assert_eq!(stats.instances_created, 1, "{stats:?}");
    assert_eq!(
        stats.requests_on_reused_instances,
        requests - 1,
        "{stats:?}"
    );
    assert_eq!(
        (stats.dropped_total(), stats.idle_instances),
        (0, 1),
        "{stats:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_instance_serves_its_share_of_requests_and_a_reuse_count_of_one_none_more() {
    let issuer = Issuer::new();
    let token = issuer.token("dave");
    let client = client();
    for (reuse, created, reused) in [(1, 7, 0), (3, 3, 4)] {
        let sms = RecordingSms::new();
        let running = start_core(&issuer, reuse, &sms).await;
        let url = format!("{}{PHONE_URL}", running.url());
        // Seven requests: a change, then reads that must see it.
        let (entered, e164) = number(1, 0);
        assert_eq!(put_phone(&client, &url, &token, &entered).await.status, 200);
        settled(&running).await;
        for _ in 0..6 {
            let got = get_phone(&client, &url, &token).await;
            assert_eq!(got.phone(), Some(e164.as_str()), "reuse {reuse}: {got:?}");
            settled(&running).await;
        }
        let stats = settled(&running).await;
        assert_eq!(
            (stats.instances_created, stats.requests_on_reused_instances),
            (created, reused),
            "reuse {reuse}: {stats:?}"
        );
        // Every instance but the last idle one reached the reuse count.
        assert_eq!(
            stats.dropped(DropReason::ReuseLimit),
            created - stats.idle_instances,
            "reuse {reuse}: {stats:?}"
        );
        assert_eq!(stats.dropped_total(), stats.dropped(DropReason::ReuseLimit));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_instance_that_failed_is_dropped_and_the_next_request_works() {
    let running = HostBuilder::new(misbehave_wasm())
        .request_timeout(Duration::from_secs(1))
        .max_memory(16 << 20)
        .build()
        .expect("host builds")
        .spawn_local()
        .await
        .expect("host serves");
    let client = client();
    let get = |path: &'static str| {
        let client = client.clone();
        let url = format!("{}{path}", running.url());
        async move {
            let response = client.get(url).send().await.expect("answered");
            let status = response.status().as_u16();
            let _ = response.bytes().await;
            status
        }
    };
    assert_eq!(get("/ok").await, 200);
    let mut before = settled(&running).await;
    assert_eq!(before.instances_created, 1, "{before:?}");
    for (path, status, reason) in [
        ("/trap", 500, DropReason::Trap),
        ("/loop", 504, DropReason::Deadline),
        ("/block", 504, DropReason::Deadline),
        ("/grow", 500, DropReason::Memory),
    ] {
        // The failing request gets the idle instance...
        assert_eq!(get(path).await, status, "{path}");
        let after = settled(&running).await;
        assert_eq!(
            after.requests_on_reused_instances,
            before.requests_on_reused_instances + 1,
            "{path}: {after:?}"
        );
        assert_eq!(
            after.dropped(reason),
            before.dropped(reason) + 1,
            "{path}: {after:?}"
        );
        assert_eq!(after.idle_instances, 0, "{path}: {after:?}");
        // ... which is gone: the next request gets a new instance, and works.
        assert_eq!(get("/ok").await, 200, "after {path}");
        let next = settled(&running).await;
        assert_eq!(
            next.instances_created,
            after.instances_created + 1,
            "after {path}: {next:?}"
        );
        assert_eq!(next.idle_instances, 1, "after {path}: {next:?}");
        before = next;
    }
    assert_eq!(
        before.dropped_total(),
        4,
        "nothing else was dropped: {before:?}"
    );
}

/// A fresh instance per request starts from the component's own memory, whatever the pooled slot
/// held before: the slot's memory is reset by copying back the pages the last instance dirtied
/// (`KEEP_RESIDENT_BYTES`) and unmapping the rest. A reused instance does see its own marks,
/// which shows that the probe would see a leak.
#[tokio::test(flavor = "multi_thread")]
async fn a_fresh_instance_sees_nothing_an_earlier_one_left_in_memory() {
    for (reuse, expect_seen) in [(1, false), (1000, true)] {
        let running = HostBuilder::new(misbehave_wasm())
            .max_instance_reuse_count(reuse)
            // 8 MiB kept per request: 12 of them on the reused instance.
            .max_memory(160 << 20)
            .build()
            .expect("host builds")
            .spawn_local()
            .await
            .expect("host serves");
        let client = client();
        for request in 0..12 {
            let url = format!("{}/residue", running.url());
            let response = client.get(url).send().await.expect("answered");
            assert_eq!(response.status(), 200);
            let body: serde_json::Value = response.json().await.expect("JSON");
            let seen = request > 0 && expect_seen;
            assert_eq!(
                (&body["static_seen"], &body["heap_dirty_bytes"]),
                (&serde_json::json!(seen), &serde_json::json!(0)),
                "reuse {reuse}, request {request}: {body}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_instances_are_dropped_after_the_idle_timeout() {
    let running = HostBuilder::new(misbehave_wasm())
        .idle_instance_timeout(Duration::from_millis(100))
        .build()
        .expect("host builds")
        .spawn_local()
        .await
        .expect("host serves");
    let client = client();
    let url = format!("{}/ok", running.url());
    for round in 1..=2 {
        let response = client.get(&url).send().await.expect("answered");
        assert_eq!(response.status(), 200);
        settled(&running).await;
        // Waits for the instance to be dropped (a condition, not a duration).
        let start = Instant::now();
        loop {
            let stats = running.host().instance_stats();
            if stats.dropped(DropReason::IdleTimeout) == round {
                assert_eq!(stats.idle_instances, 0, "{stats:?}");
                assert_eq!(stats.instances_created, round, "{stats:?}");
                break;
            }
            assert!(start.elapsed() < HANG, "never dropped: {stats:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[test]
fn the_binary_refuses_a_reuse_count_of_zero() {
    let output = Command::new(crate::common::BIN)
        .args([
            "serve",
            "--wasm",
            "x.wasm",
            "--store",
            "memory:",
            "--max-instance-reuse-count",
            "0",
        ])
        .output()
        .expect("run the host");
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("--max-instance-reuse-count") && stderr.contains("at least 1"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_binary_serves_with_a_fresh_instance_per_request() {
    let issuer = Issuer::new();
    let env = issuer.env();
    let host = tokio::task::spawn_blocking(move || {
        crate::common::HostProcess::start(
            &crate::common::initialised_core_path(),
            &["--store", "memory:", "--max-instance-reuse-count", "1"],
            &env,
        )
    })
    .await
    .expect("start task");
    let client = client();
    let url = host.url(PHONE_URL);
    for (n, user) in [(1, "erin"), (2, "frank")] {
        let (entered, e164) = number(n, 0);
        let token = issuer.token(user);
        assert_eq!(put_phone(&client, &url, &token, &entered).await.status, 200);
        let got = get_phone(&client, &url, &token).await;
        assert_eq!(got.phone(), Some(e164.as_str()), "{user}: {got:?}");
    }
}
