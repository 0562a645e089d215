//! The whole phone lifecycle (verify, resend, remove) and the abuse guards.

use crate::support::{self, TestHost, VERIFY_URL};
use crate::tokens;
use futures::future::join;
use reqwest::Method;
use serde_json::json;
use std::time::Duration;

fn env_with(extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut env = support::base_env();
    for (name, value) in extra {
        env.retain(|(n, _)| n != name);
        env.push((name.to_string(), value.to_string()));
    }
    env
}

fn assert_error(answer: &support::Answer, status: u16, code: i64, id: &str) {
    assert_eq!(
        (answer.status, answer.code(), answer.detail_id()),
        (status, code, Some(id)),
        "{:?}",
        answer.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_full_story() {
    let host = support::start().await;
    assert_eq!(
        host.set_phone("lena", "+41 71 000 00 00").await.sequence(),
        2
    );
    let code = host.last_code("+41710000000").await;

    let verified = host.verify("lena", &code).await;
    assert_eq!(verified.status, 200, "{:?}", verified.body);
    assert_eq!(verified.sequence(), 3);
    let get = host.get_phone("lena").await;
    assert_eq!(
        get.body["phone"],
        json!({"phone": "+41710000000", "isPhoneVerified": true})
    );
    assert!(
        host.record("lena").expect("record")["phone"]
            .get("code")
            .is_none(),
        "the code is void"
    );

    assert_error(&host.resend("lena").await, 400, 9, "COMMAND-2M9sf");
    assert_error(&host.verify("lena", &code).await, 404, 5, "COMMAND-Rsj8c");

    let removed = host.remove("lena").await;
    assert_eq!((removed.status, removed.sequence()), (200, 4));
    assert_eq!(host.get_phone("lena").await.body["phone"], json!({}));
    assert_error(&host.remove("lena").await, 404, 5, "COMMAND-p6rsc");

    let again = host.set_phone("lena", "+41 71 000 00 00").await;
    assert_eq!(
        (again.status, again.sequence()),
        (200, 6),
        "the same number can be set after removal"
    );
    host.running.idle().await;
    assert_eq!(host.sms_to("+41710000000").len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_and_resend_errors() {
    let host = support::start().await;
    assert_error(&host.verify("mia", "ABC123").await, 404, 5, "COMMAND-Rsj8c");
    assert_error(&host.resend("mia").await, 404, 5, "COMMAND-2b7Hf");
    assert_error(&host.remove("mia").await, 404, 5, "COMMAND-p6rsc");
    host.set_phone("mia", "+41 71 000 00 01").await;
    assert_error(&host.verify("mia", "").await, 400, 3, "COMMAND-wMe9f");
    let long = host.verify("mia", &"A".repeat(201)).await;
    assert_eq!((long.status, long.code()), (400, 3));
    assert!(
        long.body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("between 1 and 200 runes")
    );
    let not_string = host
        .send(
            Method::POST,
            VERIFY_URL,
            Some(&tokens::token("mia")),
            Some("application/json"),
            br#"{"code": 5}"#.to_vec(),
        )
        .await;
    assert_eq!((not_string.status, not_string.code()), (400, 3));
    // None of these counted as an attempt: the right code still works, typed in lower case.
    let code = host.last_code("+41710000001").await;
    assert_eq!(
        host.verify("mia", &format!(" {} ", code.to_lowercase()))
            .await
            .status,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_wrong_attempts_void_the_code() {
    let host = support::start().await;
    host.set_phone("nils", "+41 71 000 00 02").await;
    let code = host.last_code("+41710000002").await;
    let wrong = if code == "AAAAAA" { "BBBBBB" } else { "AAAAAA" };
    for attempt in 1..=5 {
        let answer = host.verify("nils", wrong).await;
        assert_error(&answer, 400, 3, "COMMAND-sM0cs");
        assert_eq!(
            host.record("nils").expect("record")["phone"]["code"]["failed_attempts"],
            attempt
        );
    }
    assert_error(&host.verify("nils", &code).await, 400, 3, "COMMAND-sM0cs");
    assert_eq!(
        host.get_phone("nils").await.body["phone"]["isPhoneVerified"],
        false
    );

    assert_eq!(
        host.resend("nils").await.status,
        200,
        "a new code is the way out"
    );
    let fresh = host.last_code("+41710000002").await;
    assert_eq!(host.verify("nils", &fresh).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_code_fails() {
    let host = support::start_with_env(env_with(&[("PHONE_CODE_EXPIRY", "10m")])).await;
    host.set_phone("olga", "+41 71 000 00 03").await;
    let code = host.last_code("+41710000003").await;
    // The guest's clock, not real time: the code's ten minutes pass at once (the token's hour
    // does not).
    host.clock.advance(Duration::from_secs(10 * 60 + 1));
    assert_error(&host.verify("olga", &code).await, 400, 3, "COMMAND-sM0cs");
    assert_eq!(
        host.get_phone("olga").await.body["phone"]["isPhoneVerified"],
        false
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resend_cooldown_answers_429_and_sends_nothing() {
    let host = support::start_with_env(support::guarded_env()).await;
    assert_eq!(host.set_phone("paul", "+41 71 000 00 04").await.status, 200);
    host.running.idle().await;
    let before = host.record("paul").expect("record");

    let answer = host.resend("paul").await;
    assert_error(&answer, 429, 8, "SMP-RATE1");
    let retry_after: u64 = answer.headers["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    // Changing the number goes through the same guard.
    assert_error(
        &host.set_phone("paul", "+41 71 000 00 05").await,
        429,
        8,
        "SMP-RATE1",
    );

    host.running.idle().await;
    assert_eq!(host.sms.messages().len(), 1, "nothing more sent");
    assert_eq!(
        host.record("paul").expect("record"),
        before,
        "nothing changed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hourly_cap_refuses_resends_and_sets_whole() {
    let host = support::start_with_env(env_with(&[("PHONE_CODES_PER_HOUR", "2")])).await;
    assert_eq!(
        host.set_phone("quinn", "+41 71 000 00 06").await.status,
        200
    );
    assert_eq!(host.resend("quinn").await.status, 200);
    assert_error(&host.resend("quinn").await, 429, 8, "SMP-RATE2");
    assert_error(
        &host.set_phone("quinn", "+41 71 000 00 07").await,
        429,
        8,
        "SMP-RATE2",
    );
    // Removing and setting again does not reset the cap.
    assert_eq!(host.remove("quinn").await.status, 200);
    assert_error(
        &host.set_phone("quinn", "+41 71 000 00 07").await,
        429,
        8,
        "SMP-RATE2",
    );
    host.running.idle().await;
    assert_eq!(host.sms.messages().len(), 2);
    assert!(host.sms_to("+41710000007").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn numbers_outside_the_allow_list_are_refused_before_anything_happens() {
    let host = support::start_with_env(env_with(&[("PHONE_ALLOWED_REGIONS", "CH, +43")])).await;
    assert_error(
        &host.set_phone("rita", "+49 30 1234567").await,
        400,
        3,
        "SMP-PHONE1",
    );
    host.running.idle().await;
    assert!(host.user_keys().is_empty(), "nothing stored");
    assert!(host.sms.messages().is_empty(), "nothing sent");
    assert_eq!(host.set_phone("rita", "+41 71 000 00 08").await.status, 200);
    assert_eq!(
        host.set_phone("rita", "+43 1 5880000").await.status,
        200,
        "calling codes work too"
    );
}

/// One round: the phone holds number A with a known code; verify(A's code) races set(B).
async fn race_round(host: &TestHost, round: usize) {
    let user = format!("racer-{round}");
    let (a, b) = (
        format!("+41 71 001 {:02} 00", round),
        format!("+41 71 002 {:02} 00", round),
    );
    let (a164, b164) = (
        format!("+4171001{:02}00", round),
        format!("+4171002{:02}00", round),
    );
    assert_eq!(host.set_phone(&user, &a).await.status, 200);
    let code = host.last_code(&a164).await;

    let (verify, set) = join(host.verify(&user, &code), host.set_phone(&user, &b)).await;
    assert_eq!(set.status, 200, "{:?}", set.body);
    let record = host.record(&user).expect("record");
    assert_eq!(
        record["phone"]["number"],
        b164.as_str(),
        "round {round}: the new number is stored"
    );
    assert_eq!(
        record["phone"]["verified"], false,
        "round {round}: never verified by the old number's code"
    );
    match verify.status {
        // Verify went first: it must have been ordered before the set.
        200 => assert!(verify.sequence() < set.sequence(), "round {round}"),
        // Set went first: A's code no longer matches B's.
        400 => assert_eq!(verify.detail_id(), Some("COMMAND-sM0cs"), "round {round}"),
        other => panic!("round {round}: verify answered {other} {:?}", verify.body),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_racing_a_new_number_never_verifies_the_old_one() {
    let host = support::start().await;
    for round in 0..20 {
        race_round(&host, round).await;
    }
}
