//! ListMyUserChanges (the phone's audit trail) over JSON, gRPC (tonic over HTTP/2) and gRPC-Web
//! (tonic-web over HTTP/1.1), paged by sequence both ways; and Healthz without a token. The
//! messages are declared here from upstream's change.proto field numbers, independently of the
//! component's own.

use crate::grpc::{PhoneClient, grpc_client, grpc_web_client};
use crate::support::{self, TestHost};
use crate::tokens::{self, ORG};
use jsonwebtoken::Algorithm;
use prost::Message;
use reqwest::Method;
use serde_json::{Value, json};
use tonic::client::GrpcService;
use tonic::{Code, Status};

const CHANGES_URL: &str = "/auth/v1/users/me/changes/_search";
const LIST: &str = "/zitadel.auth.v1.AuthService/ListMyUserChanges";
const HEALTHZ: &str = "/zitadel.auth.v1.AuthService/Healthz";

#[derive(Clone, PartialEq, Message)]
struct ChangeQuery {
    #[prost(uint64, tag = "1")]
    sequence: u64,
    #[prost(uint32, tag = "2")]
    limit: u32,
    #[prost(bool, tag = "3")]
    asc: bool,
}
#[derive(Clone, PartialEq, Message)]
struct ListMyUserChangesRequest {
    #[prost(message, optional, tag = "1")]
    query: Option<ChangeQuery>,
}
#[derive(Clone, PartialEq, Message)]
struct Timestamp {
    #[prost(int64, tag = "1")]
    seconds: i64,
    #[prost(int32, tag = "2")]
    nanos: i32,
}
#[derive(Clone, PartialEq, Message)]
struct LocalizedMessage {
    #[prost(string, tag = "1")]
    key: String,
    #[prost(string, tag = "2")]
    localized_message: String,
}
#[derive(Clone, PartialEq, Message)]
struct Change {
    #[prost(message, optional, tag = "1")]
    change_date: Option<Timestamp>,
    #[prost(message, optional, tag = "2")]
    event_type: Option<LocalizedMessage>,
    #[prost(uint64, tag = "3")]
    sequence: u64,
    #[prost(string, tag = "4")]
    editor_id: String,
    #[prost(string, tag = "6")]
    resource_owner_id: String,
}
#[derive(Clone, PartialEq, Message)]
struct ListMyUserChangesResponse {
    #[prost(message, repeated, tag = "2")]
    result: Vec<Change>,
}
#[derive(Clone, PartialEq, Message)]
struct Empty {}

/// A token for `user` issued to the client `azp` (how ZITADEL names the application).
fn token_from_client(user: &str, azp: &str) -> String {
    let mut claims = tokens::claims(user);
    claims["azp"] = json!(azp);
    tokens::sign(Algorithm::RS256, Some("rsa"), &claims)
}

/// set (changed 1, code added 2), a wrong code (3), resend (4), the right code (5), remove (6),
/// all through JSON; answers the sequences the calls answered.
async fn six_events(host: &TestHost, user: &str) -> Vec<u64> {
    let token = token_from_client(user, "app-web");
    let set = host
        .send(
            Method::PUT,
            support::PHONE_URL,
            Some(&token),
            Some("application/json"),
            json!({"phone": "+41 71 000 00 42"})
                .to_string()
                .into_bytes(),
        )
        .await;
    assert_eq!(set.status, 200, "{:?}", set.body);
    let wrong = host.verify(user, "WRONG1").await;
    assert_eq!(wrong.status, 400, "{:?}", wrong.body);
    let resent = host.resend(user).await;
    let code = host.last_code("+41710000042").await;
    let verified = host.verify(user, &code).await;
    let removed = host.remove(user).await;
    let answered = vec![
        set.sequence(),
        resent.sequence(),
        verified.sequence(),
        removed.sequence(),
    ];
    assert_eq!(answered, [2, 4, 5, 6]);
    answered
}

async fn list_json(host: &TestHost, user: &str, body: Value) -> support::Answer {
    host.send(
        Method::POST,
        CHANGES_URL,
        Some(&tokens::token(user)),
        Some("application/json"),
        body.to_string().into_bytes(),
    )
    .await
}

/// The sequences of a JSON answer (protojson: strings), checked to be 200.
fn sequences(answer: &support::Answer) -> Vec<u64> {
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    match answer.body.get("result") {
        None => Vec::new(),
        Some(result) => result
            .as_array()
            .expect("result is an array")
            .iter()
            .map(|change| {
                change["sequence"]
                    .as_str()
                    .expect("a string")
                    .parse()
                    .expect("u64")
            })
            .collect(),
    }
}

#[tokio::test]
async fn list_my_user_changes_over_json_pages_by_sequence_both_ways() {
    let host = support::start().await;
    six_events(&host, "hana").await;

    let all = list_json(&host, "hana", json!({})).await;
    assert_eq!(
        sequences(&all),
        [6, 5, 4, 3, 2, 1],
        "newest first by default"
    );
    let keys: Vec<&str> = all.body["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|change| change["eventType"]["key"].as_str().unwrap())
        .collect();
    assert_eq!(
        keys,
        [
            "user.human.phone.removed",
            "user.human.phone.verified",
            "user.human.phone.code.added",
            "user.human.phone.verification.failed",
            "user.human.phone.code.added",
            "user.human.phone.changed",
        ]
    );
    for change in all.body["result"].as_array().unwrap() {
        assert_eq!(change["editorId"], "hana");
        assert_eq!(change["resourceOwnerId"], ORG);
        assert!(
            change["eventType"]["localizedMessage"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{change}"
        );
        let date = change["changeDate"].as_str().unwrap();
        assert!(date.len() >= 20 && date.ends_with('Z'), "{date}");
    }

    // Paging: ascending after a sequence, descending before it.
    let page = |query: Value| list_json(&host, "hana", json!({ "query": query }));
    assert_eq!(
        sequences(&page(json!({"limit": 4, "asc": true})).await),
        [1, 2, 3, 4]
    );
    assert_eq!(
        sequences(&page(json!({"sequence": "4", "limit": 4, "asc": true})).await),
        [5, 6]
    );
    assert_eq!(
        sequences(&page(json!({"sequence": 6, "asc": true})).await),
        Vec::<u64>::new()
    );
    assert_eq!(sequences(&page(json!({"limit": 2})).await), [6, 5]);
    assert_eq!(
        sequences(&page(json!({"sequence": "5", "limit": "2"})).await),
        [4, 3]
    );

    // The client the token named is on the stored events.
    let record = host.record("hana").expect("a record");
    assert_eq!(record["events"][0]["client"], "app-web");
    assert_eq!(record["events"][0]["last2"], "42");

    // Somebody else has none of them.
    assert_eq!(
        sequences(&list_json(&host, "ida", json!({})).await),
        Vec::<u64>::new()
    );
    assert!(host.record("ida").is_none(), "listing creates no record");
}

/// A history longer than a record keeps inline is listed whole: older events come back from the
/// history chunks the host's store holds, in either order and by page.
#[tokio::test]
async fn a_long_history_is_listed_whole_from_its_chunks() {
    let host = support::start().await;
    for i in 0..40 {
        let set = host
            .set_phone("kai", &format!("+41 71 000 01 0{}", i % 2))
            .await;
        assert_eq!(set.status, 200, "{:?}", set.body);
    }
    let record = host.record("kai").expect("a record");
    let inline = record["events"].as_array().expect("events").len() as u64;
    assert!(inline <= 48, "{inline} events inline");
    let in_chunks = record["history"]["events"].as_u64().expect("a history");
    assert_eq!(in_chunks + inline, 80);
    let newest = record["history"]["newest"]
        .as_str()
        .expect("the newest chunk");
    let chunk = host
        .store
        .snapshot("default", newest)
        .expect("the chunk is stored");
    let chunk: Value = serde_json::from_slice(&chunk).expect("a chunk is JSON");
    assert!(
        chunk["events"].as_array().is_some_and(|e| !e.is_empty()),
        "{chunk}"
    );

    let page = |query: Value| list_json(&host, "kai", json!({ "query": query }));
    let newest_first: Vec<u64> = (1..=80).rev().collect();
    assert_eq!(sequences(&page(json!({"limit": 1000})).await), newest_first);
    let oldest_first: Vec<u64> = (1..=80).collect();
    assert_eq!(
        sequences(&page(json!({"limit": 1000, "asc": true})).await),
        oldest_first
    );
    assert_eq!(
        sequences(&page(json!({"sequence": "10", "limit": 3, "asc": true})).await),
        [11, 12, 13]
    );
    assert_eq!(
        sequences(&page(json!({"sequence": "10", "limit": 3})).await),
        [9, 8, 7]
    );
}

#[tokio::test]
async fn bad_change_queries_are_invalid_arguments_and_change_nothing() {
    let host = support::start().await;
    six_events(&host, "jon").await;
    let before = host.record("jon");
    for body in [
        json!({"query": {"limit": -1}}),
        json!({"query": {"limit": 1001}}),
        json!({"query": {"limit": 1e12}}),
        json!({"query": {"sequence": "minus one"}}),
        json!({"query": {"asc": "yes"}}),
    ] {
        let answer = list_json(&host, "jon", body.clone()).await;
        assert_eq!(
            (answer.status, answer.code()),
            (400, 3),
            "{body}: {:?}",
            answer.body
        );
        assert!(
            answer.body["message"]
                .as_str()
                .is_some_and(|m| m.contains("ChangeQuery"))
        );
    }
    let malformed = host
        .send(
            Method::POST,
            CHANGES_URL,
            Some(&tokens::token("jon")),
            Some("application/json"),
            b"{\"query\":".to_vec(),
        )
        .await;
    assert_eq!(
        (malformed.status, malformed.code()),
        (400, 3),
        "{:?}",
        malformed.body
    );
    let anonymous = host
        .send(
            Method::POST,
            CHANGES_URL,
            None,
            Some("application/json"),
            b"{}".to_vec(),
        )
        .await;
    assert_eq!((anonymous.status, anonymous.code()), (401, 16));
    assert_eq!(host.record("jon"), before);
}

/// ListMyUserChanges on the gRPC test client of `grpc.rs`.
impl<T> PhoneClient<T>
where
    T: GrpcService<tonic::body::Body>,
    T::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    T::ResponseBody: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    <T::ResponseBody as http_body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    async fn list(
        &mut self,
        user: &str,
        sequence: u64,
        limit: u32,
        asc: bool,
    ) -> Result<Vec<Change>, Status> {
        let request = ListMyUserChangesRequest {
            query: Some(ChangeQuery {
                sequence,
                limit,
                asc,
            }),
        };
        let response: ListMyUserChangesResponse =
            self.call(LIST, Some(&tokens::token(user)), request).await?;
        Ok(response.result)
    }
}

/// The cases both transports must pass, against the JSON answer for the same user.
async fn exercise<T>(host: &TestHost, client: &mut PhoneClient<T>, user: &str)
where
    T: GrpcService<tonic::body::Body>,
    T::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    T::ResponseBody: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    <T::ResponseBody as http_body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let seqs = |changes: &[Change]| changes.iter().map(|c| c.sequence).collect::<Vec<_>>();
    let all = client
        .list(user, 0, 0, false)
        .await
        .expect("ListMyUserChanges");
    assert_eq!(seqs(&all), [6, 5, 4, 3, 2, 1]);
    // The same events as JSON shows, field by field.
    let json = list_json(host, user, json!({})).await;
    for (change, shown) in all.iter().zip(json.body["result"].as_array().unwrap()) {
        let event_type = change.event_type.as_ref().expect("an event type");
        assert_eq!(event_type.key, shown["eventType"]["key"].as_str().unwrap());
        assert_eq!(
            event_type.localized_message,
            shown["eventType"]["localizedMessage"].as_str().unwrap()
        );
        assert_eq!(
            (change.editor_id.as_str(), change.resource_owner_id.as_str()),
            (user, ORG)
        );
        let date = change.change_date.as_ref().expect("a change date");
        assert!((date.seconds - tokens::now()).abs() < 24 * 3600, "{date:?}");
    }
    assert_eq!(
        seqs(&client.list(user, 0, 4, true).await.unwrap()),
        [1, 2, 3, 4]
    );
    assert_eq!(seqs(&client.list(user, 4, 4, true).await.unwrap()), [5, 6]);
    assert_eq!(seqs(&client.list(user, 0, 2, false).await.unwrap()), [6, 5]);
    assert_eq!(seqs(&client.list(user, 5, 2, false).await.unwrap()), [4, 3]);
    assert_eq!(
        seqs(&client.list(user, 6, 0, true).await.unwrap()),
        Vec::<u64>::new()
    );

    let too_many = client
        .list(user, 0, 1001, false)
        .await
        .expect_err("limit over 1000");
    assert_eq!(too_many.code(), Code::InvalidArgument, "{too_many:?}");
    let anonymous = client
        .call::<_, ListMyUserChangesResponse>(LIST, None, ListMyUserChangesRequest::default())
        .await
        .expect_err("no token");
    assert_eq!(anonymous.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn list_my_user_changes_over_grpc_and_grpc_web() {
    let host = support::start().await;
    six_events(&host, "kai").await;
    six_events(&host, "lou").await;
    exercise(&host, &mut grpc_client(&host).await, "kai").await;
    exercise(&host, &mut grpc_web_client(&host), "lou").await;
}

#[tokio::test]
async fn healthz_answers_without_a_token() {
    // Without a usable configuration the phone RPCs fail; Healthz still answers, as upstream's
    // does: it says the component runs (the host's /readyz says whether the store does).
    let host = support::start_with_env(Vec::new()).await;
    let health = host
        .send(Method::GET, "/auth/v1/healthz", None, None, Vec::new())
        .await;
    assert_eq!((health.status, &health.body), (200, &json!({})));
    let post = host
        .send(Method::POST, "/auth/v1/healthz", None, None, Vec::new())
        .await;
    assert_eq!((post.status, post.code()), (405, 12));
    let phone = host.get_phone("mia").await;
    assert_eq!(phone.status, 500, "{:?}", phone.body);

    let _: Empty = grpc_client(&host)
        .await
        .call(HEALTHZ, None, Empty {})
        .await
        .expect("gRPC Healthz");
    let _: Empty = grpc_web_client(&host)
        .call(HEALTHZ, None, Empty {})
        .await
        .expect("gRPC-Web Healthz");
}
