//! CORS through the whole stack (docs/api.md "Browsers and CORS"): preflights on REST and gRPC
//! paths without a token, and the headers on successes and errors, as curl sees them.
//! tests/browser runs the same in a real browser on the reference host and `wasmtime serve`.

use crate::support::{self, PHONE_URL};
use crate::tokens;
use reqwest::Method;

const ORIGIN: &str = "http://127.0.0.1:3000";

async fn preflight(
    host: &support::TestHost,
    path: &str,
    origin: &str,
    headers: &str,
) -> reqwest::Response {
    host.client
        .request(Method::OPTIONS, host.url(path))
        .header("origin", origin)
        .header("access-control-request-method", "PUT")
        .header("access-control-request-headers", headers)
        .send()
        .await
        .expect("the host answers")
}

fn header<'r>(response: &'r reqwest::Response, name: &str) -> Option<&'r str> {
    response.headers().get(name).and_then(|v| v.to_str().ok())
}

#[tokio::test(flavor = "multi_thread")]
async fn preflights_are_answered_on_every_route_without_a_token_or_a_store() {
    let host = support::start().await;
    for path in [
        PHONE_URL,
        "/auth/v1/users/me/phone/_verify",
        "/zitadel.auth.v1.AuthService/SetMyPhone",
        "/no/such/route",
    ] {
        let response = preflight(
            &host,
            path,
            ORIGIN,
            "authorization, content-type, x-grpc-web, x-user-agent",
        )
        .await;
        assert_eq!(response.status(), 204, "{path}");
        assert_eq!(
            header(&response, "access-control-allow-origin"),
            Some(ORIGIN),
            "{path}"
        );
        assert_eq!(
            header(&response, "access-control-allow-credentials"),
            Some("true")
        );
        assert_eq!(
            header(&response, "access-control-allow-methods"),
            Some("OPTIONS, GET, HEAD, POST, PUT, PATCH, DELETE")
        );
        let allowed = header(&response, "access-control-allow-headers").unwrap_or_default();
        for name in [
            "authorization",
            "content-type",
            "x-grpc-web",
            "x-user-agent",
            "grpc-timeout",
        ] {
            assert!(allowed.contains(name), "{name} in {allowed}");
        }
        assert_eq!(header(&response, "access-control-max-age"), Some("86400"));
        assert!(header(&response, "x-request-id").is_some());
    }
    assert!(
        host.user_keys().is_empty(),
        "a preflight reads and writes nothing"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn successes_and_errors_expose_the_status_headers_to_the_origin() {
    let host = support::start().await;
    let token = tokens::token("cors-user");
    let ok = host
        .client
        .put(host.url(PHONE_URL))
        .header("origin", ORIGIN)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(r#"{"phone":"+41 79 555 00 00"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(header(&ok, "access-control-allow-origin"), Some(ORIGIN));
    assert_eq!(
        header(&ok, "access-control-allow-credentials"),
        Some("true")
    );
    assert_eq!(header(&ok, "vary"), Some("Origin"));
    let exposed = header(&ok, "access-control-expose-headers").unwrap_or_default();
    for name in [
        "grpc-status",
        "grpc-message",
        "grpc-status-details-bin",
        "location",
        "content-length",
    ] {
        assert!(exposed.contains(name), "{name} in {exposed}");
    }
    // An error in gRPC-Web: the browser may read it.
    let refused = host
        .client
        .post(host.url("/zitadel.auth.v1.AuthService/GetMyPhone"))
        .header("origin", ORIGIN)
        .header("content-type", "application/grpc-web+proto")
        .header("x-grpc-web", "1")
        .body(vec![0, 0, 0, 0, 0])
        .send()
        .await
        .unwrap();
    assert_eq!(
        header(&refused, "access-control-allow-origin"),
        Some(ORIGIN)
    );
    assert!(
        header(&refused, "access-control-expose-headers")
            .is_some_and(|h| h.contains("grpc-status"))
    );
    // gRPC-Web carries the status in a trailer frame at the end of the body.
    let body = refused.bytes().await.unwrap();
    assert!(
        String::from_utf8_lossy(&body).contains("grpc-status:16"),
        "{body:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn listed_origins_close_it_to_everyone_else() {
    let mut env = support::base_env();
    env.push((
        "CORS_ALLOWED_ORIGINS".into(),
        "https://app.example.com, http://*.localhost:3000".into(),
    ));
    let host = support::start_with_env(env).await;
    for (origin, allowed) in [
        ("https://app.example.com", true),
        ("http://shop.localhost:3000", true),
        ("http://localhost:3000", false),
        ("https://evil.example.com", false),
        (ORIGIN, false),
    ] {
        let response = preflight(&host, PHONE_URL, origin, "authorization").await;
        assert_eq!(response.status(), 204);
        assert_eq!(
            header(&response, "access-control-allow-origin"),
            allowed.then_some(origin),
            "{origin}"
        );
        let get = host
            .client
            .get(host.url(PHONE_URL))
            .header("origin", origin)
            .send()
            .await
            .unwrap();
        assert_eq!(get.status(), 401, "{origin}");
        assert_eq!(
            header(&get, "access-control-allow-origin"),
            allowed.then_some(origin),
            "{origin}"
        );
    }
    // A header outside upstream's list: no permission.
    let response = preflight(
        &host,
        PHONE_URL,
        "https://app.example.com",
        "authorization, x-secret",
    )
    .await;
    assert_eq!(header(&response, "access-control-allow-origin"), None);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_malformed_origin_list_fails_closed_and_names_the_setting() {
    let mut env = support::base_env();
    env.push(("CORS_ALLOWED_ORIGINS".into(), "app.example.com".into()));
    let host = support::start_with_env(env).await;
    let response = preflight(&host, PHONE_URL, ORIGIN, "authorization").await;
    assert_eq!(response.status(), 500);
    assert_eq!(header(&response, "access-control-allow-origin"), None);
    let answer = support::answer(response).await.unwrap();
    assert_eq!(answer.detail_id(), Some("SMP-CONF1"));
    assert!(
        answer.body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("CORS_ALLOWED_ORIGINS")
    );
    let put = host.set_phone("cors-user", "+41 79 555 00 00").await;
    assert_eq!(put.status, 500);
    assert!(host.user_keys().is_empty(), "nothing ran");
}

/// A preflight to `base_url` and a GET from an origin, as a browser sends them, answered with
/// the permissions: for hosts other than the reference host (Spin).
pub(crate) async fn assert_answers_browsers(client: &reqwest::Client, base_url: &str) {
    let url = format!("{base_url}{PHONE_URL}");
    let response = client
        .request(Method::OPTIONS, &url)
        .header("origin", ORIGIN)
        .header("access-control-request-method", "PUT")
        .header(
            "access-control-request-headers",
            "authorization, content-type",
        )
        .send()
        .await
        .expect("the host answers a preflight");
    assert_eq!(response.status(), 204);
    assert_eq!(
        header(&response, "access-control-allow-origin"),
        Some(ORIGIN)
    );
    assert_eq!(header(&response, "access-control-max-age"), Some("86400"));
    let get = client
        .get(&url)
        .header("origin", ORIGIN)
        .send()
        .await
        .expect("the host answers");
    assert_eq!(get.status(), 401);
    assert_eq!(header(&get, "access-control-allow-origin"), Some(ORIGIN));
    assert!(
        header(&get, "access-control-expose-headers").is_some_and(|h| h.contains("grpc-status"))
    );
}
