//! The limits across accounts and the SMS-pumping guard through a real host, on their defaults:
//! the two experiments of SMS bombing (40 accounts, one number) and pumping (40 accounts, one
//! range), and 50 accounts racing for a window's last slot. src/domain/limits_tests.rs has the
//! rules in detail; wasmtime_serve.rs, spin.rs and edge/deno run the bombing experiment too.

use crate::support::{self, Answer, TestHost};
use futures::future::join_all;

/// The guards on their defaults: only the test keys set (no per-user guard in the way either,
/// since every account sends one code).
async fn host_on_defaults() -> TestHost {
    support::start_with_env(support::guarded_env()).await
}

fn is_refusal(answer: &Answer, id: &str, reason: &str) -> bool {
    answer.status == 429
        && answer.code() == 8
        && answer.detail_id() == Some(id)
        && answer
            .headers
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|seconds| (1..=86_400).contains(&seconds))
        && answer
            .headers
            .get("set-my-phone-refusal")
            .is_some_and(|v| v == reason)
}

/// `accounts` users each PUT the number `number(i)`, one after the other.
async fn accounts_set(
    host: &TestHost,
    accounts: usize,
    number: impl Fn(usize) -> String,
) -> Vec<Answer> {
    let mut answers = Vec::new();
    for i in 0..accounts {
        answers.push(host.set_phone(&format!("account-{i}"), &number(i)).await);
    }
    answers
}

fn metric(host: &TestHost, reason: &str) -> u64 {
    let text = host.running.host().encode_metrics();
    let name = format!("set_my_phone_codes_refused_total{{reason=\"{reason}\"}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&name))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn forty_accounts_send_five_codes_to_one_number() {
    let host = host_on_defaults().await;
    let answers = accounts_set(&host, 40, |_| "+41 79 555 00 00".into()).await;
    let ok = answers.iter().filter(|a| a.status == 200).count();
    assert_eq!(
        ok,
        5,
        "{:?}",
        answers.iter().map(|a| a.status).collect::<Vec<_>>()
    );
    assert_eq!(host.sms_to("+41795550000").len(), 5);
    for refused in &answers[5..] {
        assert!(
            is_refusal(refused, "SMP-RATE3", "number_hour"),
            "{refused:?}"
        );
    }
    // The refused accounts have no record; the metric counted each refusal.
    assert_eq!(host.user_keys().len(), 5);
    assert_eq!(metric(&host, "number_hour"), 35);
}

#[tokio::test(flavor = "multi_thread")]
async fn forty_accounts_send_at_most_twenty_codes_into_one_range() {
    let host = host_on_defaults().await;
    let answers = accounts_set(&host, 40, |i| format!("+41 79 555 01 {i:02}")).await;
    let sent: usize = (0..40)
        .map(|i| host.sms_to(&format!("+417955501{i:02}")).len())
        .sum();
    // On the defaults the pumping guard pauses the unverified range after ten codes, before
    // the range's hourly limit of twenty.
    assert_eq!(sent, 10);
    assert!(
        is_refusal(&answers[10], "SMP-PUMP1", "pumping_tripped"),
        "{:?}",
        answers[10]
    );
    for refused in &answers[11..] {
        assert!(
            is_refusal(refused, "SMP-PUMP1", "pumping_block"),
            "{refused:?}"
        );
    }
    assert_eq!(
        (
            metric(&host, "pumping_tripped"),
            metric(&host, "pumping_block")
        ),
        (1, 29)
    );

    // With the guard off, the range limit holds at twenty.
    let mut env = support::guarded_env();
    env.push(("PHONE_PUMPING_MIN_VERIFIED".into(), "0".into()));
    let host = support::start_with_env(env).await;
    let answers = accounts_set(&host, 40, |i| format!("+41 79 555 01 {i:02}")).await;
    assert_eq!(answers.iter().filter(|a| a.status == 200).count(), 20);
    for refused in &answers[20..] {
        assert!(
            is_refusal(refused, "SMP-RATE4", "range_hour"),
            "{refused:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn fifty_accounts_racing_for_the_last_slot_send_one_code() {
    let host = host_on_defaults().await;
    let number = "+41 79 555 00 00";
    for i in 0..4 {
        assert_eq!(
            host.set_phone(&format!("first-{i}"), number).await.status,
            200
        );
    }
    let racers = (0..50).map(|i| {
        let host = &host;
        async move { host.set_phone(&format!("racer-{i}"), number).await }
    });
    let answers = join_all(racers).await;
    assert_eq!(answers.iter().filter(|a| a.status == 200).count(), 1);
    assert!(
        answers
            .iter()
            .filter(|a| a.status != 200)
            .all(|a| is_refusal(a, "SMP-RATE3", "number_hour"))
    );
    assert_eq!(host.sms_to("+41795550000").len(), 5);
    assert_eq!(host.user_keys().len(), 5, "refused racers stored nothing");
}

/// The bombing experiment through another host: `set` PUTs as one account and answers the
/// status; six accounts, five codes.
pub(crate) async fn five_of_six_accounts<F, Fut>(set: F)
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Answer>,
{
    let mut statuses = Vec::new();
    for i in 0..6 {
        statuses.push(set(format!("bomber-{i}")).await);
    }
    let ok = statuses.iter().filter(|a| a.status == 200).count();
    assert_eq!(ok, 5, "{statuses:?}");
    assert!(
        is_refusal(&statuses[5], "SMP-RATE3", "number_hour"),
        "{:?}",
        statuses[5]
    );
}
