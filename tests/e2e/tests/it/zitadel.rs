//! The write-through to ZITADEL (`ZITADEL_SYNC=on`) against a local peer speaking ZITADEL's v2
//! shapes (`zitadel_peer.rs`): a verified phone lands there, a removed one goes, GetMyPhone reads
//! through; ZITADEL down, failing, refusing or losing its answer changes nothing here; a
//! personal access token and a service user's key (JWT bearer grant) both work, and no token
//! shows in an answer or a stored key.

use crate::support::{self, Answer, PHONE_URL, TestHost, VERIFY_URL};
use crate::tokens;
use reqwest::Method;
use rsa::pkcs1::EncodeRsaPublicKey;
use rsa::pkcs8::{EncodePrivateKey, LineEnding};
use serde_json::{Value, json};
use set_my_phone_test_harness::zitadel_peer::{Mode, ServiceUser, ZitadelPeer};
use std::time::Duration;

const PAT: &str = "pat-0123456789abcdef";
const USER: &str = "zitadel-user";
const NUMBER: &str = "+41795550101";

/// A host whose write-through goes to `peer` with `PAT`.
async fn host_with_pat(peer: &ZitadelPeer) -> TestHost {
    let mut env = support::base_env();
    env.extend(
        [
            ("ZITADEL_SYNC", "on"),
            ("ZITADEL_API_URL", peer.url.as_str()),
            ("ZITADEL_SERVICE_TOKEN", PAT),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
    );
    support::start_with_env(env).await
}

/// A host whose issuer is `peer` (ZITADEL's API at its origin) and whose write-through calls as
/// the service user `service-user-1` with the key `key_id` (`pem`).
async fn host_with_key(peer: &ZitadelPeer, key_id: &str, pem: &str) -> TestHost {
    let key =
        json!({"type": "serviceaccount", "keyId": key_id, "key": pem, "userId": "service-user-1"});
    let mut env = support::base_env();
    env.retain(|(name, _)| name != "AUTH_ISSUER");
    env.extend(
        [
            ("AUTH_ISSUER", peer.url.clone()),
            ("ZITADEL_SYNC", "on".into()),
            ("ZITADEL_SERVICE_KEY", key.to_string()),
        ]
        .map(|(k, v)| (k.to_owned(), v)),
    );
    support::start_with_env(env).await
}

/// A user with `NUMBER` set and its code not yet used, on a host writing through to a new peer
/// with `PAT`.
struct Pending {
    peer: ZitadelPeer,
    host: TestHost,
    token: String,
    code: String,
}

async fn pending_with_pat() -> Pending {
    let peer = ZitadelPeer::start(Some(PAT), None).await;
    let host = host_with_pat(&peer).await;
    let token = tokens::token(USER);
    let code = set_number(&host, &token).await;
    Pending {
        peer,
        host,
        token,
        code,
    }
}

/// Sets `NUMBER` and answers the code the SMS carried.
async fn set_number(host: &TestHost, token: &str) -> String {
    let body = json!({"phone": NUMBER}).to_string().into_bytes();
    let put = host
        .send(
            Method::PUT,
            PHONE_URL,
            Some(token),
            Some("application/json"),
            body,
        )
        .await;
    assert_eq!(put.status, 200, "{:?}", put.body);
    host.last_code(NUMBER).await
}

async fn verify(host: &TestHost, token: &str, code: &str) -> Answer {
    let body = json!({"code": code}).to_string().into_bytes();
    host.send(
        Method::POST,
        VERIFY_URL,
        Some(token),
        Some("application/json"),
        body,
    )
    .await
}

async fn get(host: &TestHost, token: &str) -> Answer {
    host.send(Method::GET, PHONE_URL, Some(token), None, Vec::new())
        .await
}

/// Writes to the user service the peer received (token grants and reads left out).
fn writes(peer: &ZitadelPeer) -> Vec<(String, String)> {
    peer.received()
        .into_iter()
        .filter(|r| r.method == "POST" || r.method == "DELETE")
        .filter(|r| r.path.starts_with("/v2/"))
        .map(|r| (r.method, r.path))
        .collect()
}

fn local_phone(host: &TestHost) -> Value {
    host.record(USER).expect("a record")["phone"].clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_verified_phone_lands_in_zitadel_and_get_reads_through() {
    let peer = ZitadelPeer::start(Some(PAT), None).await;
    let host = host_with_pat(&peer).await;
    let token = tokens::token(USER);
    peer.set_phone(USER, Some(("+41795550000", true)));

    // Setting a number does not touch ZITADEL: it keeps the old verified one meanwhile.
    let code = set_number(&host, &token).await;
    assert!(peer.received().is_empty(), "{:?}", peer.received());
    let pending = get(&host, &token).await;
    assert_eq!(pending.phone(), Some(NUMBER));
    assert_eq!(pending.body["phone"]["isPhoneVerified"], json!(false));
    assert_eq!(peer.phone(USER), Some(("+41795550000".into(), true)));

    // A wrong code goes nowhere.
    assert_eq!(verify(&host, &token, "WRONG1").await.status, 400);
    assert!(writes(&peer).is_empty());

    let verified = verify(&host, &token, &code).await;
    assert_eq!(verified.status, 200, "{:?}", verified.body);
    assert_eq!(peer.phone(USER), Some((NUMBER.into(), true)));
    let write = peer
        .received()
        .into_iter()
        .find(|r| r.method == "POST")
        .expect("a write");
    assert_eq!(write.path, format!("/v2/users/{USER}/phone"));
    assert_eq!(
        write.authorization.as_deref(),
        Some(format!("Bearer {PAT}").as_str())
    );
    let sent: Value = serde_json::from_str(&write.body).expect("JSON");
    assert_eq!(sent, json!({"phone": NUMBER, "isVerified": true}));
    assert_eq!(local_phone(&host)["verified"], true);
    let shown = get(&host, &token).await;
    assert_eq!(
        (
            shown.phone(),
            shown.body["phone"]["isPhoneVerified"].clone()
        ),
        (Some(NUMBER), json!(true))
    );

    // An administrator changes the number in ZITADEL's console: shown within 30 s.
    peer.set_phone(USER, Some(("+41795550199", true)));
    host.clock.advance(Duration::from_secs(31));
    let changed = get(&host, &token).await;
    assert_eq!(changed.phone(), Some("+41795550199"), "{:?}", changed.body);

    // Remove: in ZITADEL first, then here; again is "not found" on both sides.
    let removed = host
        .send(Method::DELETE, PHONE_URL, Some(&token), None, Vec::new())
        .await;
    assert_eq!(removed.status, 200, "{:?}", removed.body);
    assert_eq!(peer.phone(USER), None);
    assert_eq!(local_phone(&host), Value::Null);
    assert_eq!(get(&host, &token).await.phone(), None);
    let again = host
        .send(Method::DELETE, PHONE_URL, Some(&token), None, Vec::new())
        .await;
    assert_eq!((again.status, again.code()), (404, 5), "{:?}", again.body);
    // The reference host's metrics count the calls by outcome: the write, one read (once the
    // cache aged; after the verify and the removal the phone was known), two removals (the
    // second answered 404).
    let metrics = host.running.host().encode_metrics();
    for (outcome, count) in [("ok", 3), ("client_error", 1)] {
        let line = format!(
            "set_my_phone_zitadel_calls_total{{call=\"user_service\",outcome=\"{outcome}\"}} {count}"
        );
        assert!(metrics.contains(&line), "{line} in\n{metrics}");
    }
    assert_eq!(
        writes(&peer),
        [
            ("POST".to_owned(), format!("/v2/users/{USER}/phone")),
            ("DELETE".to_owned(), format!("/v2/users/{USER}/phone")),
            ("DELETE".to_owned(), format!("/v2/users/{USER}/phone")),
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn zitadel_failing_at_verify_changes_nothing_and_a_retry_succeeds() {
    let Pending {
        peer,
        host,
        token,
        code,
    } = pending_with_pat().await;
    let before = host.record(USER);

    peer.set_mode(Mode::Failing);
    let failed = verify(&host, &token, &code).await;
    assert_eq!(
        (failed.status, failed.code()),
        (503, 14),
        "{:?}",
        failed.body
    );
    assert_eq!(failed.detail_id(), Some("SMP-ZITADEL1"));
    assert_eq!(
        host.record(USER),
        before,
        "nothing changed, no attempt counted"
    );
    assert_eq!(peer.phone(USER), None);

    peer.set_mode(Mode::Normal);
    let verified = verify(&host, &token, &code).await;
    assert_eq!(verified.status, 200, "{:?}", verified.body);
    assert_eq!(peer.phone(USER), Some((NUMBER.into(), true)));
    assert_eq!(local_phone(&host)["verified"], true);
}

#[tokio::test(flavor = "multi_thread")]
async fn zitadel_unreachable_is_unavailable_and_get_without_a_cache_too() {
    // A port nobody listens on: bound, then let go.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", closed.local_addr().expect("addr"));
    drop(closed);
    let mut env = support::base_env();
    env.extend(
        [
            ("ZITADEL_SYNC", "on"),
            ("ZITADEL_API_URL", url.as_str()),
            ("ZITADEL_SERVICE_TOKEN", PAT),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
    );
    let host = support::start_with_env(env).await;
    let token = tokens::token(USER);
    let code = set_number(&host, &token).await;
    let before = host.record(USER);
    let failed = verify(&host, &token, &code).await;
    assert_eq!(
        (failed.status, failed.code()),
        (503, 14),
        "{:?}",
        failed.body
    );
    assert_eq!(host.record(USER), before);
    // A pending change is answered from here; nothing pending and nothing cached is 503.
    assert_eq!(get(&host, &token).await.phone(), Some(NUMBER));
    let other = tokens::token("someone-else");
    let unknown = get(&host, &other).await;
    assert_eq!(
        (unknown.status, unknown.code()),
        (503, 14),
        "{:?}",
        unknown.body
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_service_user_without_user_write_is_an_internal_error_that_says_so() {
    let Pending {
        peer,
        host,
        token,
        code,
    } = pending_with_pat().await;
    let before = host.record(USER);
    peer.set_mode(Mode::Forbidden);
    let denied = verify(&host, &token, &code).await;
    assert_eq!(
        (denied.status, denied.code()),
        (500, 13),
        "{:?}",
        denied.body
    );
    let message = denied.body["message"].as_str().unwrap_or_default();
    assert!(message.contains("user.write"), "{message}");
    assert!(!message.contains(PAT));
    assert_eq!(host.record(USER), before);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lost_answer_then_a_retry_verifies_once() {
    let Pending {
        peer,
        host,
        token,
        code,
    } = pending_with_pat().await;

    // ZITADEL writes, but its answer comes after the component stopped waiting.
    peer.set_mode(Mode::LoseAnswer);
    let lost = verify(&host, &token, &code).await;
    assert_eq!((lost.status, lost.code()), (503, 14), "{:?}", lost.body);
    assert_eq!(peer.phone(USER), Some((NUMBER.into(), true)));
    assert_eq!(local_phone(&host)["verified"], false);

    peer.set_mode(Mode::Normal);
    let retried = verify(&host, &token, &code).await;
    assert_eq!(retried.status, 200, "{:?}", retried.body);
    let record = host.record(USER).expect("a record");
    let verified_events = record["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|event| event["type"] == "verified")
        .count();
    assert_eq!(verified_events, 1, "{record}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_service_users_key_is_exchanged_once_and_no_token_is_stored_as_a_key_or_answered() {
    let private = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).expect("key");
    let pem = private
        .to_pkcs8_pem(LineEnding::LF)
        .expect("pem")
        .to_string();
    let public_der = private
        .to_public_key()
        .to_pkcs1_der()
        .expect("der")
        .as_bytes()
        .to_vec();
    let service = ServiceUser {
        user_id: "service-user-1".into(),
        key_id: "key-1".into(),
        public_der,
    };
    let peer = ZitadelPeer::start(None, Some(service)).await;
    let host = host_with_key(&peer, "key-1", &pem).await;
    // The user's tokens come from the same issuer (the API defaults to its origin).
    let token = tokens::token_with(USER, json!({"iss": peer.url}));

    let code = set_number(&host, &token).await;
    let verified = verify(&host, &token, &code).await;
    assert_eq!(verified.status, 200, "{:?}", verified.body);
    assert_eq!(peer.phone(USER), Some((NUMBER.into(), true)));
    host.clock.advance(Duration::from_secs(31));
    assert_eq!(get(&host, &token).await.phone(), Some(NUMBER));
    let removed = host
        .send(Method::DELETE, PHONE_URL, Some(&token), None, Vec::new())
        .await;
    assert_eq!(removed.status, 200, "{:?}", removed.body);
    assert_eq!(
        peer.grants(),
        1,
        "one grant, its token reused from the store"
    );

    let issued = peer.tokens();
    assert_eq!(issued.len(), 1);
    for (key, value) in host.store.entries("default") {
        let value = String::from_utf8_lossy(&value).into_owned();
        assert!(!key.contains(&issued[0]) && !key.contains("BEGIN"), "{key}");
        assert!(!value.contains("PRIVATE KEY"), "{key}");
        if value.contains(&issued[0]) {
            assert!(
                key.starts_with("zitadel:service-token:"),
                "{key} holds the access token"
            );
        }
    }
    for answer in [&verified, &removed] {
        assert!(!answer.body.to_string().contains(&issued[0]));
    }

    // A key ZITADEL does not know: the grant is refused, which is the service user's problem.
    let other = host_with_key(&peer, "key-2", &pem).await;
    let code = set_number(&other, &token).await;
    let refused = verify(&other, &token, &code).await;
    assert_eq!(
        (refused.status, refused.code()),
        (500, 13),
        "{:?}",
        refused.body
    );
    assert_eq!(local_phone(&other)["verified"], false);
}
