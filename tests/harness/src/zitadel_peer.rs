//! A local peer that speaks ZITADEL's shapes for what the write-through uses: the user service
//! v2 (`POST`/`DELETE /v2/users/{id}/phone`, `GET /v2/users/{id}`, errors as
//! `{code, message, details: [{"@type", id, message}]}`) and the issuer's token endpoint for a
//! service user's JWT bearer grant, which checks the assertion's RS256 signature, `iss` and `sub`
//! (the service user's id), `aud` (the issuer) and expiry. It records every request.
//! `cargo run -p set-my-phone-test-harness --bin zitadel-peer` serves one to try the
//! write-through by hand (docs/zitadel.md).
#![allow(
    clippy::expect_used,
    reason = "a test peer: a poisoned lock or a response that cannot be built is the test's failure"
)]

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;

/// How the peer answers the user service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Normal,
    /// 503 to every user-service call (ZITADEL failing).
    Failing,
    /// 403: the service user lacks `user.write`.
    Forbidden,
    /// Applies a write, then holds the answer longer than any caller waits.
    LoseAnswer,
}

#[derive(Clone, Debug)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub authorization: Option<String>,
    pub body: String,
}

#[derive(Default)]
struct State {
    /// userId → (phone, isVerified); absent or `None` = no phone.
    phones: HashMap<String, Option<(String, bool)>>,
    received: Vec<Received>,
    /// Access tokens the token endpoint handed out, and the personal access tokens accepted.
    tokens: Vec<String>,
    grants: usize,
    mode: Option<Mode>,
}

/// The service user the token endpoint accepts assertions from.
pub struct ServiceUser {
    pub user_id: String,
    pub key_id: String,
    /// The RSA public key, DER (PKCS#1).
    pub public_der: Vec<u8>,
}

#[derive(Clone)]
pub struct ZitadelPeer {
    pub url: String,
    state: Arc<Mutex<State>>,
    task: Arc<tokio::task::JoinHandle<()>>,
}

fn error_body(code: i32, id: &str, message: &str) -> String {
    json!({
        "code": code,
        "message": format!("{message} ({id})"),
        "details": [{"@type": "type.googleapis.com/zitadel.v1.ErrorDetail", "id": id, "message": message}],
    })
    .to_string()
}

impl ZitadelPeer {
    /// Starts on loopback; `pat` is a personal access token it accepts, `service` the key
    /// whose assertions its token endpoint accepts.
    pub async fn start(pat: Option<&str>, service: Option<ServiceUser>) -> ZitadelPeer {
        Self::start_at("127.0.0.1:0", pat, service).await
    }

    /// [`ZitadelPeer::start`] on `address`.
    pub async fn start_at(
        address: &str,
        pat: Option<&str>,
        service: Option<ServiceUser>,
    ) -> ZitadelPeer {
        let listener = TcpListener::bind(address)
            .await
            .unwrap_or_else(|e| panic!("cannot listen on {address}: {e}"));
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let state = Arc::new(Mutex::new(State {
            tokens: pat.map(String::from).into_iter().collect(),
            mode: Some(Mode::Normal),
            ..State::default()
        }));
        let service = Arc::new(service);
        let (shared, issuer) = (state.clone(), url.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (state, service, issuer) = (shared.clone(), service.clone(), issuer.clone());
                tokio::spawn(async move {
                    let handler = service_fn(move |request: hyper::Request<Incoming>| {
                        let (state, service, issuer) =
                            (state.clone(), service.clone(), issuer.clone());
                        async move {
                            let (status, body, delay) =
                                answer(request, &state, service.as_ref().as_ref(), &issuer).await;
                            if let Some(delay) = delay {
                                tokio::time::sleep(delay).await;
                            }
                            let response = hyper::Response::builder()
                                .status(status)
                                .header("content-type", "application/json")
                                .body(Full::new(Bytes::from(body)))
                                .expect("response");
                            Ok::<_, Infallible>(response)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), handler)
                        .await;
                });
            }
        });
        ZitadelPeer {
            url,
            state,
            task: Arc::new(task),
        }
    }

    pub fn set_mode(&self, mode: Mode) {
        self.state.lock().expect("lock").mode = Some(mode);
    }

    /// What an administrator does in ZITADEL's console.
    pub fn set_phone(&self, user: &str, phone: Option<(&str, bool)>) {
        self.state
            .lock()
            .expect("lock")
            .phones
            .insert(user.into(), phone.map(|(p, v)| (p.to_owned(), v)));
    }

    pub fn phone(&self, user: &str) -> Option<(String, bool)> {
        self.state
            .lock()
            .expect("lock")
            .phones
            .get(user)
            .cloned()
            .flatten()
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.lock().expect("lock").received.clone()
    }

    /// The access tokens handed out and accepted (a PAT among them).
    pub fn tokens(&self) -> Vec<String> {
        self.state.lock().expect("lock").tokens.clone()
    }

    /// JWT bearer grants answered with a token.
    pub fn grants(&self) -> usize {
        self.state.lock().expect("lock").grants
    }
}

impl Drop for ZitadelPeer {
    fn drop(&mut self) {
        if Arc::strong_count(&self.task) == 1 {
            self.task.abort();
        }
    }
}

/// Longer than the component's 5 s per call.
const LOST: Duration = Duration::from_secs(8);

async fn answer(
    request: hyper::Request<Incoming>,
    state: &Mutex<State>,
    service: Option<&ServiceUser>,
    issuer: &str,
) -> (u16, String, Option<Duration>) {
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
        .unwrap_or_default();
    let method = parts.method.to_string();
    let path = parts.uri.path().to_string();
    let authorization = parts
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    let mut state = state.lock().expect("lock");
    state.received.push(Received {
        method: method.clone(),
        path: path.clone(),
        authorization: authorization.clone(),
        body: body.clone(),
    });
    if path == "/oauth/v2/token" && method == "POST" {
        return match grant(&body, service, issuer) {
            Ok(()) => {
                state.grants += 1;
                let token = format!("access-{}-{}", state.grants, rand_suffix());
                state.tokens.push(token.clone());
                let answer =
                    json!({"access_token": token, "token_type": "Bearer", "expires_in": 43199});
                (200, answer.to_string(), None)
            }
            Err(why) => (
                400,
                json!({"error": "invalid_grant", "error_description": why}).to_string(),
                None,
            ),
        };
    }
    let Some(user) = path.strip_prefix("/v2/users/") else {
        return (404, error_body(5, "ROUTE-1", "Not Found"), None);
    };
    let token = authorization
        .as_deref()
        .and_then(|value| value.strip_prefix("Bearer "));
    if !token.is_some_and(|token| state.tokens.iter().any(|known| known == token)) {
        return (
            401,
            error_body(16, "AUTH-7fs1e", "Errors.Token.Invalid"),
            None,
        );
    }
    match state.mode.unwrap_or(Mode::Normal) {
        Mode::Failing => return (503, error_body(14, "SERVER-1", "unavailable"), None),
        Mode::Forbidden => {
            return (
                403,
                error_body(7, "AUTH-5mWD2", "No matching permissions found"),
                None,
            );
        }
        Mode::Normal | Mode::LoseAnswer => {}
    }
    let delay = (state.mode == Some(Mode::LoseAnswer)).then_some(LOST);
    let details =
        json!({"sequence": "7", "changeDate": "2026-12-07T00:00:00Z", "resourceOwner": "org-1"});
    match (method.as_str(), user.strip_suffix("/phone")) {
        ("POST", Some(user)) => {
            let Ok(request) = serde_json::from_str::<Value>(&body) else {
                return (400, error_body(3, "PARSE-1", "invalid JSON"), None);
            };
            let (Some(phone), Some(true)) =
                (request["phone"].as_str(), request["isVerified"].as_bool())
            else {
                return (
                    400,
                    error_body(3, "PHONE-1", "phone and isVerified expected"),
                    None,
                );
            };
            let current = state.phones.get(user).cloned().flatten();
            if current.as_ref() == Some(&(phone.to_owned(), true)) {
                return (
                    400,
                    error_body(9, "COMMAND-Uch5e", "Errors.User.Phone.NotChanged"),
                    None,
                );
            }
            state
                .phones
                .insert(user.to_owned(), Some((phone.to_owned(), true)));
            (200, json!({"details": details}).to_string(), delay)
        }
        ("DELETE", Some(user)) => {
            if state.phones.get(user).cloned().flatten().is_none() {
                return (
                    404,
                    error_body(5, "COMMAND-ieJ2e", "Errors.User.Phone.NotFound"),
                    None,
                );
            }
            state.phones.insert(user.to_owned(), None);
            (200, json!({"details": details}).to_string(), delay)
        }
        ("GET", None) => {
            let phone = match state.phones.get(user).cloned().flatten() {
                Some((phone, verified)) => json!({"phone": phone, "isVerified": verified}),
                None => json!({}),
            };
            let user = json!({
                "details": details,
                "user": {
                    "userId": user, "state": "USER_STATE_ACTIVE", "username": user,
                    "human": {
                        "profile": {"givenName": "Test", "familyName": "User"},
                        "email": {"email": "user@example.com", "isVerified": true},
                        "phone": phone,
                    },
                },
            });
            (200, user.to_string(), None)
        }
        _ => (404, error_body(5, "ROUTE-1", "Not Found"), None),
    }
}

fn rand_suffix() -> u64 {
    rand::random()
}

/// Checks a JWT bearer grant as ZITADEL's token endpoint does.
fn grant(body: &str, service: Option<&ServiceUser>, issuer: &str) -> Result<(), String> {
    let service = service.ok_or("no service user known")?;
    let form: HashMap<String, String> = form_pairs(body);
    if form.get("grant_type").map(String::as_str)
        != Some("urn:ietf:params:oauth:grant-type:jwt-bearer")
    {
        return Err("unsupported grant_type".into());
    }
    let scope = form.get("scope").cloned().unwrap_or_default();
    if !scope
        .split(' ')
        .any(|s| s == "urn:zitadel:iam:org:project:id:zitadel:aud")
    {
        return Err("scope lacks ZITADEL's audience".into());
    }
    let assertion = form.get("assertion").ok_or("no assertion")?;
    let header = jsonwebtoken::decode_header(assertion).map_err(|e| e.to_string())?;
    if header.kid.as_deref() != Some(service.key_id.as_str()) {
        return Err("unknown key id".into());
    }
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&[issuer]);
    validation.set_issuer(&[service.user_id.as_str()]);
    validation.sub = Some(service.user_id.clone());
    validation.leeway = 0;
    jsonwebtoken::decode::<Value>(
        assertion,
        &jsonwebtoken::DecodingKey::from_rsa_der(&service.public_der),
        &validation,
    )
    .map(|_| ())
    .map_err(|e| e.to_string())
}

fn form_pairs(body: &str) -> HashMap<String, String> {
    body.split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

fn decode(text: &str) -> String {
    let bytes = text.replace('+', " ").into_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = text.get(i + 1..i + 3)
            && let Ok(byte) = u8::from_str_radix(hex, 16)
        {
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
