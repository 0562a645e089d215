//! SetMyPhone and GetMyPhone over JSON: the reference scenario, stored state and SMS.

use crate::support::{self, PHONE_URL};
use crate::tokens::{self, ORG};
use reqwest::Method;
use set_my_phone_host::sms::SmsReply;
use std::time::Duration;

fn is_timestamp(value: &serde_json::Value) -> bool {
    value
        .as_str()
        .is_some_and(|s| s.len() >= 20 && s.ends_with('Z') && s.as_bytes()[10] == b'T')
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_then_get_then_unchanged_then_change() {
    let host = support::start().await;

    let set = host.set_phone("alice", "+41 71 000 00 00").await;
    assert_eq!(set.status, 200, "{:?}", set.body);
    let details = &set.body["details"];
    assert_eq!(details["sequence"], "2");
    assert!(is_timestamp(&details["creationDate"]), "{details}");
    assert!(is_timestamp(&details["changeDate"]), "{details}");
    assert_eq!(details["resourceOwner"], ORG);
    assert_eq!(set.headers["content-type"], "application/json");

    let get = host.get_phone("alice").await;
    assert_eq!(get.status, 200);
    assert_eq!(
        get.body["phone"],
        serde_json::json!({"phone": "+41710000000", "isPhoneVerified": false})
    );
    assert_eq!(get.body["details"]["sequence"], "2");
    assert_eq!(get.body["details"]["creationDate"], details["creationDate"]);

    host.running.idle().await;
    let sent = host.sms_to("+41710000000");
    assert_eq!(sent.len(), 1, "exactly one SMS");
    let code = &sent[0].message.code;
    assert_eq!(code.len(), 6);
    assert!(
        code.chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit()),
        "{code}"
    );
    // No `locale`, no Accept-Language: the default language, English; codes live an hour.
    assert_eq!(
        sent[0].message.text,
        format!(
            "Your verification code is {code}. It expires in 60 min. Never share it with anyone."
        )
    );
    assert_eq!(sent[0].message.language, "en");
    assert_eq!(
        (
            sent[0].message.user_id.as_str(),
            sent[0].message.org_id.as_str()
        ),
        ("alice", ORG)
    );

    let record = host.record("alice").expect("record stored");
    let stored = record.to_string();
    assert!(
        !stored.contains(code.as_str()),
        "the code is stored only as a hash: {stored}"
    );
    // A sent SMS is logged, not stored: the code's delivery stays "pending" (no failure).
    host.running.idle().await;
    let record = host.record("alice").expect("record stored");
    assert_eq!(record["phone"]["code"]["delivery"]["status"], "pending");

    let again = host.set_phone("alice", "+41710000000").await;
    assert_eq!((again.status, again.code()), (400, 9));
    assert_eq!(again.body["message"], "Phone not changed (COMMAND-wF94r)");
    assert_eq!(again.detail_id(), Some("COMMAND-wF94r"));

    let changed = host.set_phone("alice", "071 000 00 01").await;
    assert_eq!(changed.status, 200);
    assert_eq!(changed.body["details"]["sequence"], "4");
    let get = host.get_phone("alice").await;
    assert_eq!(get.body["phone"]["phone"], "+41710000001");
    host.running.idle().await;
    assert_eq!(
        host.sms.messages().len(),
        2,
        "one SMS per change, none for the refused one"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_without_phone_answers_an_empty_phone() {
    let host = support::start().await;
    let get = host.get_phone("bob").await;
    assert_eq!(get.status, 200, "{:?}", get.body);
    assert_eq!(get.body["phone"], serde_json::json!({}));
    assert_eq!(get.body["details"]["resourceOwner"], ORG);
    assert!(
        get.body["details"].get("sequence").is_none(),
        "zero is omitted: {}",
        get.body
    );
    assert!(
        host.record("bob").is_some(),
        "the record is created on first use"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_answer_goes_out_before_the_sms() {
    let host = support::start().await;
    host.sms.set_delay(Duration::from_secs(20));
    let set = host.set_phone("carol", "+41 71 000 00 02").await;
    assert_eq!(set.status, 200);
    assert!(
        host.sms.messages().is_empty(),
        "answered while the SMS was still being sent"
    );
    assert_eq!(
        host.running.active_guest_tasks(),
        1,
        "delivery still running"
    );
    let record = host.record("carol").expect("stored before the SMS");
    assert_eq!(record["phone"]["code"]["delivery"]["status"], "pending");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_delivery_keeps_the_change_and_says_why() {
    let host = support::start().await;
    host.sms
        .set_reply(SmsReply::Permanent("number blocked".into()));
    let set = host.set_phone("dave", "+41 71 000 00 03").await;
    assert_eq!(set.status, 200);
    host.running.idle().await;
    let record = host.record("dave").expect("record kept");
    assert_eq!(record["phone"]["number"], "+41710000003");
    let delivery = &record["phone"]["code"]["delivery"];
    assert_eq!(
        (delivery["status"].as_str(), delivery["retryable"].as_bool()),
        (Some("failed"), Some(false))
    );
    assert_eq!(delivery["reason"], "number blocked");

    host.sms
        .set_reply(SmsReply::Retryable("provider down".into()));
    let set = host.set_phone("dave", "+41 71 000 00 04").await;
    assert_eq!(set.status, 200);
    host.running.idle().await;
    let delivery = &host.record("dave").expect("record")["phone"]["code"]["delivery"];
    assert_eq!(delivery["retryable"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn national_numbers_use_the_configured_default_region() {
    let mut env = support::base_env();
    env.push(("PHONE_DEFAULT_REGION".into(), "DE".into()));
    let host = support::start_with_env(env).await;
    let set = host.set_phone("erin", "030 1234567").await;
    assert_eq!(set.status, 200, "{:?}", set.body);
    assert_eq!(
        host.get_phone("erin").await.body["phone"]["phone"],
        "+49301234567"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_length_and_store_kept_secret_without_provider() {
    let env = vec![
        ("AUTH_ISSUER".to_string(), tokens::ISSUER.to_string()),
        ("AUTH_JWKS".into(), tokens::keys().jwks.clone()),
        ("PHONE_CODE_LENGTH".into(), "8".into()),
    ];
    let host = support::start_with_env(env).await;
    let set = host.set_phone("frank", "+41 71 000 00 05").await;
    assert_eq!(set.status, 200, "{:?}", set.body);
    host.running.idle().await;
    assert_eq!(host.sms.messages()[0].message.code.len(), 8);
    assert!(
        host.store
            .snapshot("default", "secret:phone-code-hmac")
            .is_some_and(|s| s.len() == 32)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_record_is_reported_and_left_alone() {
    let host = support::start().await;
    let key = format!("user:{ORG}:gina");
    host.store.insert("default", &key, b"not json".to_vec());
    let set = host.set_phone("gina", "+41 71 000 00 06").await;
    assert_eq!((set.status, set.code()), (500, 13));
    assert_eq!(
        host.store.snapshot("default", &key).as_deref(),
        Some(&b"not json"[..])
    );
    let get = host
        .send(
            Method::GET,
            PHONE_URL,
            Some(&tokens::token("gina")),
            None,
            Vec::new(),
        )
        .await;
    assert_eq!((get.status, get.code()), (500, 13));
    host.running.idle().await;
    assert!(host.sms.messages().is_empty());
}

/// Without a `locale` in the token, the request's Accept-Language picks the SMS's language.
#[tokio::test(flavor = "multi_thread")]
async fn the_sms_follows_accept_language_without_a_locale() {
    let host = support::start().await;
    let set = host
        .client
        .put(host.url(PHONE_URL))
        .header("authorization", format!("Bearer {}", tokens::token("yuki")))
        .header("accept-language", "ja-JP, en;q=0.5")
        .body(r#"{"phone":"+41 71 000 00 31"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(set.status(), 200);
    host.running.idle().await;
    let sent = host.sms_to("+41710000031");
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].message.language, "ja");
    let code = &sent[0].message.code;
    assert!(
        sent[0]
            .message
            .text
            .starts_with(&format!("認証コードは{code}です。")),
        "{}",
        sent[0].message.text
    );
}
