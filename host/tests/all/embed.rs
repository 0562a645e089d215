//! The embedding API as a program uses it: examples/axum-embed.rs's router, served by axum on
//! loopback, with the phone API under `/phone` next to the program's own route and SMS sent
//! through a Rust closure, driven over real HTTP.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a failing test should stop loudly"
)]

#[allow(dead_code, reason = "the example's main is for `cargo run --example`")]
#[path = "../../examples/axum-embed.rs"]
mod example;

use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use set_my_phone_host::embed::sms_fn;
use set_my_phone_host::keyvalue::MemoryBackend;
use set_my_phone_host::sms::SmsMessage;

#[tokio::test(flavor = "multi_thread")]
async fn the_example_router_serves_the_phone_api_under_its_prefix_and_sends_sms_through_a_closure()
{
    let issuer = crate::common::Issuer::new();
    let sent: Arc<Mutex<Vec<SmsMessage>>> = Arc::default();
    let record = Arc::clone(&sent);
    let sms = sms_fn(move |message: SmsMessage| {
        let record = Arc::clone(&record);
        async move {
            record.lock().unwrap().push(message);
            Ok("closure-1".to_string())
        }
    });
    let wasm = crate::common::initialised_core_path();
    let phone = example::phone_service(
        wasm.to_str().unwrap(),
        issuer.env(),
        Arc::new(MemoryBackend::new()),
        sms,
    )
    .unwrap();
    let host = Arc::clone(phone.host());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        axum::serve(listener, example::router(phone)).await.unwrap();
    });

    let client = reqwest::Client::new();
    // The program's own route is untouched.
    let own = client.get(format!("{base}/")).send().await.unwrap();
    assert_eq!(own.status(), 200);
    assert_eq!(own.text().await.unwrap(), "the program's own page");

    let token = issuer.token("embedded-user");
    let phone_url = format!("{base}/phone/auth/v1/users/me/phone");
    let put = client
        .put(&phone_url)
        .bearer_auth(&token)
        .json(&json!({"phone": "+41 71 000 00 01"}))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200);
    let body: Value = put.json().await.unwrap();
    assert_eq!(body["details"]["sequence"], "2", "{body}");

    // The code goes out after the answer, through the closure.
    host.idle().await;
    let message = sent.lock().unwrap().last().cloned().expect("an SMS");
    assert_eq!(message.recipient, "+41710000001");
    assert_eq!(message.user_id, "embedded-user");

    let verify = client
        .post(format!("{phone_url}/_verify"))
        .bearer_auth(&token)
        .json(&json!({"code": message.code}))
        .send()
        .await
        .unwrap();
    assert_eq!(verify.status(), 200);
    let get: Value = client
        .get(&phone_url)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(get["phone"]["isPhoneVerified"], true, "{get}");

    // Errors are the component's google.rpc.Status answers, not the router's.
    let refused = client.get(&phone_url).send().await.unwrap();
    assert_eq!(refused.status(), 401);
    let status: Value = refused.json().await.unwrap();
    assert_eq!(status["code"], 16, "{status}");
    // Without the prefix there is no phone API.
    let outside = client
        .get(format!("{base}/auth/v1/users/me/phone"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(outside.status(), 404);
    server.abort();
}
