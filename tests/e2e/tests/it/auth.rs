//! Authentication: every accepted algorithm works; every bad token answers 401 / code 16 and
//! changes nothing.

use crate::support::{self, PHONE_URL, TestHost};
use crate::tokens::{self, RESOURCE_OWNER_CLAIM, claims, sign};
use jsonwebtoken::Algorithm;
use reqwest::Method;
use serde_json::json;

async fn put_with_header(host: &TestHost, authorization: Option<String>) -> support::Answer {
    let mut request = host
        .client
        .put(host.url(PHONE_URL))
        .header("content-type", "application/json")
        .body(r#"{"phone":"+41 71 000 00 00"}"#);
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.json().await.expect("JSON error body");
    support::Answer {
        status,
        headers,
        body,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_accepted_algorithm_authenticates() {
    let host = support::start().await;
    for (n, (alg, kid)) in [
        (Algorithm::RS256, "rsa"),
        (Algorithm::PS256, "rsa"),
        (Algorithm::ES256, "ec"),
        (Algorithm::EdDSA, "ed"),
    ]
    .into_iter()
    .enumerate()
    {
        let user = format!("user-{kid}-{n}");
        let token = sign(alg, Some(kid), &claims(&user));
        let answer = put_with_header(&host, Some(format!("Bearer {token}"))).await;
        assert_eq!(answer.status, 200, "{alg:?}: {:?}", answer.body);
        assert!(host.record(&user).is_some());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_and_malformed_headers_use_upstream_messages() {
    let host = support::start().await;
    let missing = put_with_header(&host, None).await;
    assert_eq!((missing.status, missing.code()), (401, 16));
    assert_eq!(
        missing.body,
        json!({"code": 16, "message": "auth header missing"})
    );

    for header in [
        "Basic YWxpY2U6c2VjcmV0",
        "Bearer",
        "Bearer ",
        "token-without-scheme",
    ] {
        let answer = put_with_header(&host, Some(header.into())).await;
        assert_eq!((answer.status, answer.code()), (401, 16), "{header}");
        assert_eq!(
            answer.body["message"], "invalid auth header (AUTH-toLo1)",
            "{header}"
        );
    }
    assert!(host.user_keys().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_are_refused_and_change_nothing() {
    let host = support::start().await;
    let now = tokens::now();
    let with = |patch: serde_json::Value| {
        let mut c = claims("mallory");
        for (k, v) in patch.as_object().expect("object") {
            c[k] = v.clone();
        }
        c
    };
    let cases: Vec<(&str, String)> = vec![
        ("garbage", "not.a.jwt".into()),
        ("one segment", "abc".into()),
        ("alg none", tokens::unsigned("mallory")),
        (
            "HS256 with a public key as secret",
            tokens::hmac_token("mallory"),
        ),
        ("forged signature", tokens::forged("mallory")),
        (
            "unknown kid",
            sign(Algorithm::RS256, Some("other"), &claims("mallory")),
        ),
        (
            "kid of a key of another type",
            sign(Algorithm::RS256, Some("ec"), &claims("mallory")),
        ),
        (
            "expired",
            sign(
                Algorithm::RS256,
                Some("rsa"),
                &with(json!({"exp": now - 3600})),
            ),
        ),
        (
            "not yet valid",
            sign(
                Algorithm::RS256,
                Some("rsa"),
                &with(json!({"nbf": now + 3600})),
            ),
        ),
        (
            "no exp",
            sign(Algorithm::RS256, Some("rsa"), &{
                let mut c = claims("mallory");
                c.as_object_mut().expect("object").remove("exp");
                c
            }),
        ),
        (
            "wrong issuer",
            sign(
                Algorithm::RS256,
                Some("rsa"),
                &with(json!({"iss": "https://evil.test"})),
            ),
        ),
        ("tampered payload", {
            let token = tokens::token("mallory");
            let parts: Vec<&str> = token.split('.').collect();
            let other = tokens::token("victim");
            let other_payload = other.split('.').nth(1).expect("payload");
            format!("{}.{}.{}", parts[0], other_payload, parts[2])
        }),
    ];
    for (name, token) in cases {
        let answer = put_with_header(&host, Some(format!("Bearer {token}"))).await;
        assert_eq!(
            (answer.status, answer.code()),
            (401, 16),
            "{name}: {:?}",
            answer.body
        );
        assert_eq!(
            answer.body["message"], "Errors.Token.Invalid (AUTH-7fs1e)",
            "{name}"
        );
        assert_eq!(answer.detail_id(), Some("AUTH-7fs1e"), "{name}");
    }
    assert!(host.user_keys().is_empty(), "nothing stored");
    host.running.idle().await;
    assert!(host.sms.messages().is_empty(), "nothing sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audience_is_checked_when_configured() {
    let mut env = support::base_env();
    env.push(("AUTH_AUDIENCE".into(), "other-client, client-1".into()));
    let host = support::start_with_env(env).await;
    let good = sign(Algorithm::RS256, Some("rsa"), &claims("ann"));
    assert_eq!(
        put_with_header(&host, Some(format!("Bearer {good}")))
            .await
            .status,
        200
    );

    let mut wrong = claims("ann2");
    wrong["aud"] = json!("someone-else");
    let wrong = sign(Algorithm::RS256, Some("rsa"), &wrong);
    let answer = put_with_header(&host, Some(format!("Bearer {wrong}"))).await;
    assert_eq!((answer.status, answer.code()), (401, 16));
    assert!(host.record("ann2").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_without_the_resource_owner_claim_is_refused_clearly() {
    let host = support::start().await;
    let mut c = claims("nora");
    c.as_object_mut()
        .expect("object")
        .remove(RESOURCE_OWNER_CLAIM);
    let token = sign(Algorithm::RS256, Some("rsa"), &c);
    let answer = put_with_header(&host, Some(format!("Bearer {token}"))).await;
    assert_eq!((answer.status, answer.code()), (401, 16));
    assert!(
        answer.body["message"]
            .as_str()
            .unwrap_or_default()
            .contains(RESOURCE_OWNER_CLAIM),
        "{:?}",
        answer.body
    );
    assert!(host.user_keys().is_empty());

    // Another claim can name the organisation.
    let mut env = support::base_env();
    env.push(("AUTH_RESOURCE_OWNER_CLAIM".into(), "org_id".into()));
    let host = support::start_with_env(env).await;
    let mut c = claims("nora");
    c["org_id"] = json!("org-9");
    let token = sign(Algorithm::RS256, Some("rsa"), &c);
    let answer = put_with_header(&host, Some(format!("Bearer {token}"))).await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    assert_eq!(answer.body["details"]["resourceOwner"], "org-9");
    assert!(
        host.record_of("org-9", "nora").is_some(),
        "stored under the organisation the claim names"
    );
    assert!(host.record("nora").is_none(), "not under the default one");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_needs_a_token_too() {
    let host = support::start().await;
    let answer = host
        .send(Method::GET, PHONE_URL, None, None, Vec::new())
        .await;
    assert_eq!((answer.status, answer.code()), (401, 16));
    assert!(host.user_keys().is_empty());
}
