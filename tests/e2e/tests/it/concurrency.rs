//! Concurrent updates of one user: no update is lost, no sequence is handed out twice, and
//! neither of Spin's store faults changes that: a swap that writes but reports failure (Spin
//! 4.0.2 with Redis) and a swap from "absent" that is an upsert (Spin's default SQLite store).

use crate::support::{self, Answer, TestHost};
use futures::future::join_all;
use set_my_phone_host::keyvalue::Fault;
use std::collections::HashSet;
use std::time::Duration;

const REQUESTS: usize = 50;

fn number(i: usize) -> String {
    format!("+41 71 000 {:02} {:02}", i / 100, i % 100)
}

fn e164(i: usize) -> String {
    format!("+4171000{:02}{:02}", i / 100, i % 100)
}

async fn race(host: &TestHost, user: &str) {
    // A store across a network answers reads after a while; writers then overlap, as in
    // production. (In-memory reads answer at once and the races below would rarely happen.)
    host.store.set_read_latency(Duration::from_millis(5));
    let answers: Vec<Answer> =
        join_all((0..REQUESTS).map(|i| async move { (i, host.set_phone(user, &number(i)).await) }))
            .await
            .into_iter()
            .map(|(_, answer)| answer)
            .collect();
    host.running.idle().await;
    // Without overlapping requests this test would prove nothing about concurrency. (Refused
    // swaps are not the measure: how many happen depends on timing, and under the upsert fault
    // a first write is never refused.)
    let stats = host.store.stats();
    assert!(
        stats.peak_reads_in_flight > 1,
        "the {REQUESTS} requests never overlapped (peak reads in flight {}, conflicts {})",
        stats.peak_reads_in_flight,
        stats.conflicts
    );

    let mut sequences = HashSet::new();
    let mut winners = Vec::new();
    for (i, answer) in answers.iter().enumerate() {
        match answer.status {
            200 => {
                let sequence = answer.sequence();
                assert!(
                    sequences.insert(sequence),
                    "sequence {sequence} handed out twice"
                );
                winners.push((sequence, i));
            }
            409 => {
                assert_eq!(answer.code(), 10, "{:?}", answer.body);
                assert!(
                    host.sms_to(&e164(i)).is_empty(),
                    "a refused change sends nothing"
                );
            }
            other => panic!("request {i}: unexpected {other} {:?}", answer.body),
        }
    }
    assert!(
        winners.len() * 10 >= REQUESTS * 8,
        "most succeed: {} of {REQUESTS}",
        winners.len()
    );

    let record = host.record(user).expect("record");
    let (last_sequence, last_index) = winners.iter().max().copied().expect("a winner");
    assert_eq!(record["sequence"], serde_json::json!(last_sequence));
    assert_eq!(
        last_sequence as usize,
        2 * winners.len(),
        "every success counted exactly twice"
    );
    assert_eq!(
        record["phone"]["number"],
        e164(last_index),
        "the last writer's number is stored"
    );
    let mut expected: Vec<u64> = (1..=winners.len() as u64).map(|n| 2 * n).collect();
    let mut got: Vec<u64> = winners.iter().map(|(s, _)| *s).collect();
    got.sort();
    expected.sort();
    assert_eq!(got, expected, "successes hold consecutive sequences");
    for (_, i) in &winners {
        assert_eq!(
            host.sms_to(&e164(*i)).len(),
            1,
            "one SMS per successful change"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sets_lose_nothing() {
    let host = support::start().await;
    race(&host, "racer").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sets_on_a_store_that_writes_then_reports_failure() {
    let host = support::start().await;
    host.store.set_fault(Fault::SwapWritesThenReportsFailure);
    race(&host, "racer").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_set_under_the_write_then_fail_fault_counts_once() {
    let host = support::start().await;
    let first = host.set_phone("solo", "+41 71 000 00 00").await;
    assert_eq!(first.sequence(), 2);
    host.store.set_fault(Fault::SwapWritesThenReportsFailure);
    let second = host.set_phone("solo", "+41 71 000 00 01").await;
    assert_eq!(second.status, 200, "{:?}", second.body);
    assert_eq!(second.sequence(), 4, "raised by exactly 2");
    host.running.idle().await;
    assert_eq!(host.record("solo").expect("record")["sequence"], 4);
    assert_eq!(host.sms_to("+41710000001").len(), 1, "exactly one SMS");
    let get = host.get_phone("solo").await;
    assert_eq!(get.body["phone"]["phone"], "+41710000001");
}

/// A host whose store upserts on a swap from absent, as Spin's SQLite store does, configured as
/// spin.toml configures Spin: `KV_CREATE=claim` (the reference host would declare `swap`).
async fn start_like_spin_sqlite(mut env: Vec<(String, String)>) -> TestHost {
    env.push(("KV_CREATE".into(), "claim".into()));
    let host = support::start_with_env(env).await;
    host.store.set_fault(Fault::SwapFromAbsentOverwrites);
    host
}

/// The store writes of one new user's first GetMyPhone (which creates the record).
async fn writes_of_a_first_get(env: Vec<(String, String)>) -> u64 {
    let host = support::start_with_env(env).await;
    let before = host.store.stats().writes;
    assert_eq!(host.get_phone("newcomer").await.status, 200);
    host.running.idle().await;
    host.store.stats().writes - before
}

/// The reference host declares its store exact, so a record is created by one swap; with
/// `KV_CREATE=claim` (as on Spin) the creation claim costs its increments and its removal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reference_host_creates_records_without_a_claim() {
    let declared = writes_of_a_first_get(support::base_env()).await;
    let mut env = support::base_env();
    env.push(("KV_CREATE".into(), "claim".into()));
    let claimed = writes_of_a_first_get(env).await;
    assert!(
        claimed >= declared + 2,
        "declared swap: {declared} writes; claim: {claimed}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_sets_on_a_store_whose_swap_from_absent_overwrites() {
    let host = start_like_spin_sqlite(support::base_env()).await;
    race(&host, "newcomer").await;
}

/// Reads and changes racing for a user nobody has seen: GetMyPhone creates the record too, so
/// under the upsert fault either could overwrite the other's first write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_gets_racing_first_sets_lose_nothing_when_swap_from_absent_overwrites() {
    let host = start_like_spin_sqlite(support::base_env()).await;
    let host = &host;
    let user = "first-contact";
    let answers = join_all((0..40).map(|i| async move {
        if i % 4 == 0 {
            (None, host.get_phone(user).await)
        } else {
            (Some(i), host.set_phone(user, &number(i)).await)
        }
    }))
    .await;
    host.running.idle().await;

    let mut sequences = HashSet::new();
    let mut winners = Vec::new();
    for (set, answer) in &answers {
        match (set, answer.status) {
            (None, 200) => {}
            (Some(i), 200) => {
                assert!(sequences.insert(answer.sequence()), "{:?}", answer.body);
                winners.push((answer.sequence(), *i));
            }
            (Some(_), 409) => assert_eq!(answer.code(), 10),
            (_, status) => panic!("unexpected {status} {:?}", answer.body),
        }
    }
    let record = host.record(user).expect("record");
    let (last_sequence, last_index) = winners.iter().max().copied().expect("a winner");
    assert_eq!(last_sequence as usize, 2 * winners.len());
    assert_eq!(record["sequence"], serde_json::json!(last_sequence));
    assert_eq!(record["phone"]["number"], e164(last_index));
    let creations: HashSet<&str> = answers
        .iter()
        .filter(|(_, answer)| answer.status == 200)
        .filter_map(|(_, answer)| answer.body["details"]["creationDate"].as_str())
        .collect();
    assert_eq!(creations.len(), 1, "one record was created: {creations:?}");
    for (set, answer) in &answers {
        if set.is_none() {
            let seen = answer.sequence();
            assert!(seen <= last_sequence && seen % 2 == 0, "{:?}", answer.body);
        }
    }
    for (_, i) in &winners {
        assert_eq!(host.sms_to(&e164(*i)).len(), 1, "one SMS per success");
    }
}

/// Resend, remove and wrong verifications racing on an existing record under the upsert fault:
/// every success has its own sequence and the record counts every event exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resends_removes_and_verifies_racing_count_every_event_once() {
    let mut env = support::base_env();
    env.push(("PHONE_CODE_MAX_ATTEMPTS".into(), "100".into()));
    let host = start_like_spin_sqlite(env).await;
    let host = &host;
    let user = "busy";
    assert_eq!(host.set_phone(user, &number(1)).await.status, 200);
    host.running.idle().await;

    let answers = join_all((0..30).map(|i| async move {
        let answer = match i % 3 {
            0 => host.resend(user).await,
            1 => host.verify(user, "WRONG1").await,
            _ => host.remove(user).await,
        };
        (i % 3, answer)
    }))
    .await;
    host.running.idle().await;

    let mut sequences = HashSet::new();
    let mut events = 2;
    let mut resent = 0;
    for (kind, answer) in &answers {
        match (kind, answer.status) {
            (0 | 2, 200) => {
                assert!(sequences.insert(answer.sequence()), "{:?}", answer.body);
                events += 1;
                resent += usize::from(*kind == 0);
            }
            (1, 400) => {
                assert_eq!(answer.detail_id(), Some("COMMAND-sM0cs"));
                events += 1;
            }
            (_, 404 | 409) => {}
            (_, status) => panic!("unexpected {status} {:?}", answer.body),
        }
    }
    let record = host.record(user).expect("record");
    assert_eq!(record["sequence"], serde_json::json!(events));
    assert!(sequences.iter().all(|s| *s <= events));
    assert_eq!(
        host.sms_to(&e164(1)).len(),
        1 + resent,
        "one SMS per code issued"
    );
}
