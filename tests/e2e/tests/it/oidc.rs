//! Authentication against a real OpenID provider (Node's oidc-provider, tests/oidc/, started on
//! loopback by these tests): discovery, fetched and rotated keys, opaque tokens by introspection
//! with both client authentication methods, revocation, an unreachable issuer, and wrong
//! credentials. The issuer is the only setting the JWT path needs.

use crate::support::{self, Answer, CODE_SECRET, PHONE_URL, TestHost};
use reqwest::Method;
use serde_json::{Value, json};
use set_my_phone_host::keyvalue::MemoryBackend;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

/// The test OpenID provider, stopped when dropped.
pub struct Provider {
    child: Option<Child>,
    state: crate::support::tempdir::Dir,
    port: u16,
    pub issuer: String,
    pub client_id: String,
    pub client_secret: String,
    pub key_json: String,
    http: reqwest::Client,
}

fn oidc_dir() -> PathBuf {
    crate::support::workspace_root().join("tests/oidc")
}

/// `npm ci` of the pinned provider, once per test process.
fn install() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let status = Command::new(oidc_dir().join("install"))
            .status()
            .expect("tests/oidc/install runs (needs Node.js and npm)");
        assert!(status.success(), "tests/oidc/install failed");
    });
}

impl Provider {
    pub async fn start() -> Provider {
        install();
        let state = crate::support::tempdir::Dir::new("oidc");
        let (child, line) = spawn(&state.0, 0).await;
        let issuer = line["issuer"].as_str().expect("issuer").to_string();
        let port = issuer
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("port");
        Provider {
            child: Some(child),
            state,
            port,
            client_id: line["basic"]["clientId"].as_str().expect("id").into(),
            client_secret: line["basic"]["clientSecret"]
                .as_str()
                .expect("secret")
                .into(),
            key_json: line["jwtClient"]["keyJson"].as_str().expect("key").into(),
            issuer,
            http: reqwest::Client::new(),
        }
    }

    /// Stops the provider: its port refuses connections until [`Provider::restart`].
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port, with the same keys, clients and tokens.
    pub async fn restart(&mut self) {
        self.stop();
        let (child, _) = spawn(&self.state.0, self.port).await;
        self.child = Some(child);
    }

    /// An access token for `sub` in `org`, `"opaque"` or `"jwt"`.
    pub async fn token(&self, sub: &str, org: &str, format: &str) -> String {
        let answer = self
            .control(
                Method::POST,
                "/test/token",
                Some(json!({"sub": sub, "org": org, "format": format})),
            )
            .await;
        answer["access_token"]
            .as_str()
            .expect("access_token")
            .to_string()
    }

    pub async fn rotate_keys(&self) {
        self.control(Method::POST, "/test/rotate-keys", Some(json!({})))
            .await;
    }

    /// Requests the provider served since it started, by kind (`jwks`, `introspection`, …).
    pub async fn served(&self, kind: &str) -> u64 {
        self.control(Method::GET, "/test/stats", None).await[kind]
            .as_u64()
            .expect("counter")
    }

    /// Revokes `token` through the provider's revocation endpoint (RFC 7009).
    pub async fn revoke(&self, token: &str) {
        let response = self
            .http
            .post(format!("{}/oauth/v2/revoke", self.issuer))
            .basic_auth(
                form_encoded(&self.client_id),
                Some(form_encoded(&self.client_secret)),
            )
            .form(&[("token", token)])
            .send()
            .await
            .expect("revocation");
        assert!(response.status().is_success(), "{}", response.status());
    }

    async fn control(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self.http.request(method, format!("{}{path}", self.issuer));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("control endpoint");
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
        response.json().await.expect("JSON")
    }

    /// Settings for the service: the issuer, plus the basic client's credentials.
    pub fn basic_env(&self) -> Vec<(String, String)> {
        let mut env = issuer_env(&self.issuer);
        env.push(("AUTH_CLIENT_ID".into(), self.client_id.clone()));
        env.push(("AUTH_CLIENT_SECRET".into(), self.client_secret.clone()));
        env
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        self.stop();
    }
}

fn form_encoded(text: &str) -> String {
    text.replace('%', "%25").replace('@', "%40")
}

/// Starts `provider.mjs` and reads its one line of output. A provider that says nothing in time
/// is killed (which also ends the blocking read of its stdout, so the test's runtime can shut
/// down) and started again: once, a node process here hung at start-up on a lock of its own,
/// using no CPU, and the suite waited forever.
async fn spawn(state: &Path, port: u16) -> (Child, Value) {
    const ATTEMPTS: u32 = 3;
    // Generating its RSA keys takes a few seconds, more on a busy machine.
    const START_LIMIT: Duration = Duration::from_secs(90);
    for attempt in 1..=ATTEMPTS {
        let mut child = Command::new("node")
            .arg(oidc_dir().join("provider.mjs"))
            .env("OIDC_PORT", port.to_string())
            .env("OIDC_STATE_DIR", state)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("node starts");
        let stdout = child.stdout.take().expect("stdout");
        let reader = tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            BufReader::new(stdout).read_line(&mut line).map(|_| line)
        });
        match tokio::time::timeout(START_LIMIT, reader).await {
            Ok(Ok(Ok(line))) if !line.trim().is_empty() => {
                let value: Value = serde_json::from_str(&line).unwrap_or_else(|_| {
                    let _ = child.kill();
                    panic!("JSON line: {line}")
                });
                return (child, value);
            }
            outcome => {
                let _ = child.kill();
                let _ = child.wait();
                eprintln!(
                    "the OpenID provider did not start (attempt {attempt} of {ATTEMPTS}): {}",
                    match outcome {
                        Err(_) => format!("no line within {} s", START_LIMIT.as_secs()),
                        Ok(other) => format!("{other:?}"),
                    }
                );
            }
        }
    }
    panic!("the OpenID provider did not start in {ATTEMPTS} attempts");
}

/// Only the issuer (and the test code secret, with every guard off).
fn issuer_env(issuer: &str) -> Vec<(String, String)> {
    [("AUTH_ISSUER", issuer), ("PHONE_CODE_SECRET", CODE_SECRET)]
        .iter()
        .chain(set_my_phone_test_harness::GUARDS_OFF)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

async fn get(host: &TestHost, token: &str) -> Answer {
    host.send(Method::GET, PHONE_URL, Some(token), None, Vec::new())
        .await
}

async fn put(host: &TestHost, token: &str, phone: &str) -> Answer {
    let body = json!({ "phone": phone }).to_string().into_bytes();
    host.send(
        Method::PUT,
        PHONE_URL,
        Some(token),
        Some("application/json"),
        body,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opaque_tokens_are_accepted_with_client_secret_basic() {
    let provider = Provider::start().await;
    let host = support::start_with_env(provider.basic_env()).await;
    let token = provider.token("opaque-user", "org-9", "opaque").await;
    let set = put(&host, &token, "+41 71 000 00 09").await;
    assert_eq!(set.status, 200, "{:?}", set.body);
    assert_eq!(set.body["details"]["resourceOwner"], "org-9");
    let got = get(&host, &token).await;
    assert_eq!(got.body["phone"]["phone"], "+41710000009");
    assert!(host.record_of("org-9", "opaque-user").is_some());

    // Neither the token nor the client secret is stored, under any key or in any value.
    for (key, value) in host.store.entries("default") {
        let value = String::from_utf8_lossy(&value);
        for secret in [token.as_str(), provider.client_secret.as_str()] {
            assert!(
                !key.contains(secret) && !value.contains(secret),
                "{key} holds a secret"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opaque_tokens_are_accepted_with_private_key_jwt() {
    let provider = Provider::start().await;
    let mut env = issuer_env(&provider.issuer);
    env.push(("AUTH_CLIENT_KEY".into(), provider.key_json.clone()));
    let host = support::start_with_env(env).await;
    let token = provider.token("keyed-user", "org-9", "opaque").await;
    let answer = get(&host, &token).await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    assert_eq!(answer.body["details"]["resourceOwner"], "org-9");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwts_verify_against_discovered_keys_and_rotated_keys_need_no_restart() {
    let provider = Provider::start().await;
    let host = support::start_with_env(issuer_env(&provider.issuer)).await;
    let before = provider.token("jwt-user", "org-9", "jwt").await;
    assert_eq!(get(&host, &before).await.status, 200);

    provider.rotate_keys().await;
    let after = provider.token("jwt-user", "org-9", "jwt").await;
    let answer = get(&host, &after).await;
    assert_eq!(
        answer.status, 200,
        "a token signed by the new key: {:?}",
        answer.body
    );
    assert_eq!(
        get(&host, &before).await.status,
        200,
        "the previous key is still served"
    );

    // Without introspection credentials an opaque token cannot be checked: 401.
    let opaque = provider.token("jwt-user", "org-9", "opaque").await;
    assert_eq!(get(&host, &opaque).await.status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn made_up_key_ids_cost_at_most_one_refetch() {
    let provider = Provider::start().await;
    let host = support::start_with_env(issuer_env(&provider.issuer)).await;
    let real = provider.token("kid-user", "org-9", "jwt").await;
    assert_eq!(get(&host, &real).await.status, 200, "keys cached");
    let fetched = provider.served("jwks").await;

    let mut claims = json!({"iss": provider.issuer, "sub": "kid-user", "exp": crate::tokens::now() + 600,
                            crate::tokens::RESOURCE_OWNER_CLAIM: "org-9"});
    for i in 0..50 {
        claims["jti"] = json!(i);
        let kid = format!("made-up-{}", rand::random::<u64>());
        let token = crate::tokens::sign(jsonwebtoken::Algorithm::RS256, Some(&kid), &claims);
        let answer = get(&host, &token).await;
        assert_eq!(answer.status, 401, "{:?}", answer.body);
    }
    let refetches = provider.served("jwks").await - fetched;
    assert!(refetches <= 1, "{refetches} refetches for 50 unknown kids");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_token_is_refused_once_its_cache_entry_expires() {
    let provider = Provider::start().await;
    let mut env = provider.basic_env();
    env.push(("AUTH_INTROSPECTION_CACHE".into(), "1s".into()));
    env.push(("AUTH_CHECK_REVOCATION".into(), "true".into()));
    let host = support::start_with_env(env).await;
    for format in ["opaque", "jwt"] {
        let token = provider.token("revoked-user", "org-9", format).await;
        assert_eq!(get(&host, &token).await.status, 200, "{format}");
        provider.revoke(&token).await;
        // The cached answer lives one second; real time past it is all this waits for.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let answer = get(&host, &token).await;
        assert_eq!(answer.status, 401, "{format}: {:?}", answer.body);
        assert_eq!(answer.detail_id(), Some("AUTH-7fs1e"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_issuer_is_unavailable_not_unauthenticated() {
    let mut provider = Provider::start().await;
    let store = MemoryBackend::new();
    let warm = support::start_with_store(provider.basic_env(), store.clone()).await;
    let jwt = provider.token("outage-user", "org-9", "jwt").await;
    let opaque = provider.token("outage-user", "org-9", "opaque").await;
    assert_eq!(get(&warm, &jwt).await.status, 200);
    assert_eq!(get(&warm, &opaque).await.status, 200);

    provider.stop();
    // Warm: cached keys and a cached introspection answer carry on.
    assert_eq!(get(&warm, &jwt).await.status, 200);
    assert_eq!(get(&warm, &opaque).await.status, 200);
    // Cold (a store that has seen nothing): 503 UNAVAILABLE, not 401.
    let cold = support::start_with_env(provider.basic_env()).await;
    for token in [&jwt, &opaque] {
        let answer = get(&cold, token).await;
        assert_eq!(answer.status, 503, "{:?}", answer.body);
        assert_eq!(answer.code(), 14);
    }

    provider.restart().await;
    assert_eq!(get(&cold, &jwt).await.status, 200);
    assert_eq!(get(&cold, &opaque).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_client_secret_is_a_configuration_error_that_never_shows_the_secret() {
    let provider = Provider::start().await;
    let wrong = "not-the-secret-4711-0815";
    let mut env = issuer_env(&provider.issuer);
    env.push(("AUTH_CLIENT_ID".into(), provider.client_id.clone()));
    env.push(("AUTH_CLIENT_SECRET".into(), wrong.into()));
    let host = support::start_with_env(env).await;
    let token = provider.token("wrong-secret-user", "org-9", "opaque").await;
    let answer = get(&host, &token).await;
    assert_eq!(answer.status, 500, "{:?}", answer.body);
    assert_eq!(answer.code(), 13);
    let text = answer.body.to_string();
    assert!(text.contains("AUTH_CLIENT_SECRET"), "{text}");
    assert!(!text.contains(wrong) && !text.contains(&provider.client_secret));
}
