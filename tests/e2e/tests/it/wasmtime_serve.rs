//! The real `wasmtime serve` (wasmtime-cli 48) running the artifact built for it: core + SMS
//! provider + file-backed key-value over a preopened directory. Nothing of ours hosts it.

use crate::fake_http::FakeServer;
use crate::support::{self, Answer};
use crate::tokens;
use futures::future::join_all;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const ARTIFACT: &str = "set-my-phone-wasmtime-serve.wasm";
const SIGNING_KEY: &str = "serve-signing-key";

/// `wasmtime` from `WASMTIME`, PATH or ~/.cargo/bin; .ci/run installs wasmtime-cli@48.0.8.
pub(crate) fn wasmtime_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("WASMTIME") {
        return PathBuf::from(path);
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join("wasmtime"))
        .find(|candidate| candidate.exists());
    let cargo_bin =
        std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo/bin/wasmtime"));
    on_path.or(cargo_bin.filter(|p| p.exists())).expect(
        "wasmtime is not installed: cargo install wasmtime-cli@48.0.8 --locked (.ci/run does)",
    )
}

/// A `wasmtime serve` process, killed on drop.
struct Serve {
    child: Child,
    url: String,
    client: reqwest::Client,
}

impl Serve {
    async fn start(data: &Path, env: &[(String, String)]) -> Serve {
        Serve::start_logging(data, env, Stdio::inherit()).await
    }

    /// As `start`, with the server's (and so the component's) stderr going to `stderr`.
    async fn start_logging(data: &Path, env: &[(String, String)], stderr: Stdio) -> Serve {
        Serve::start_with(ARTIFACT, data, env, &[], stderr).await
    }

    /// `artifact` with `env` as `--env` and, when any, `config` as `-Sconfig -Sconfig-var=…`.
    async fn start_with(
        artifact: &str,
        data: &Path,
        env: &[(String, String)],
        config: &[(String, String)],
        stderr: Stdio,
    ) -> Serve {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port();
        let mut command = Command::new(wasmtime_binary());
        command.args([
            "serve",
            "--addr",
            &format!("127.0.0.1:{port}"),
            "-Scli",
            "--dir",
        ]);
        command.arg(format!("{}::/data", data.display()));
        for (name, value) in env {
            command.arg("--env").arg(format!("{name}={value}"));
        }
        if !config.is_empty() {
            command.arg("-Sconfig");
        }
        for (key, value) in config {
            command.arg(format!("-Sconfig-var={key}={value}"));
        }
        command.arg(support::artifact_path(artifact));
        let child = command
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("wasmtime serve starts");
        let serve = Serve {
            child,
            url: format!("http://127.0.0.1:{port}"),
            client: reqwest::Client::new(),
        };
        for _ in 0..300 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return serve;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("wasmtime serve did not listen on {port}");
    }

    async fn request(
        &self,
        method: reqwest::Method,
        user: &str,
        body: Option<serde_json::Value>,
    ) -> Answer {
        self.request_with(method, &tokens::token(user), body).await
    }

    async fn request_with(
        &self,
        method: reqwest::Method,
        token: &str,
        body: Option<serde_json::Value>,
    ) -> Answer {
        let mut request = self
            .client
            .request(method, format!("{}{}", self.url, support::PHONE_URL))
            .header("authorization", format!("Bearer {token}"));
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let response = request.send().await.expect("wasmtime serve answers");
        support::answer(response)
            .await
            .expect("wasmtime serve's answer is read")
    }

    async fn set(&self, user: &str, phone: &str) -> Answer {
        self.request(
            reqwest::Method::PUT,
            user,
            Some(serde_json::json!({ "phone": phone })),
        )
        .await
    }

    async fn get(&self, user: &str) -> Answer {
        self.request(reqwest::Method::GET, user, None).await
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn env(webhook: &str) -> Vec<(String, String)> {
    let mut env = support::base_env();
    env.extend([
        ("SMS_PROVIDER".to_string(), "webhook".to_string()),
        ("SMS_WEBHOOK_URL".into(), format!("{webhook}/sms")),
        ("SMS_WEBHOOK_SIGNING_KEY".into(), SIGNING_KEY.into()),
    ]);
    env
}

fn data_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("wasmtime-serve-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("data dir");
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_persists_and_delivers_by_webhook() {
    let receiver = FakeServer::start(200, "{}").await;
    let data = data_dir("persist");
    let serve = Serve::start(&data, &env(&receiver.url)).await;

    let set = serve.set("sam", "+41 71 000 00 30").await;
    assert_eq!((set.status, set.sequence()), (200, 2), "{:?}", set.body);
    let get = serve.get("sam").await;
    assert_eq!(
        get.body["phone"],
        serde_json::json!({"phone": "+41710000030", "isPhoneVerified": false})
    );
    let unchanged = serve.set("sam", "+41710000030").await;
    assert_eq!((unchanged.status, unchanged.code()), (400, 9));

    // The webhook was called after the answer; give it a moment (bounded).
    let mut requests = receiver.requests();
    for _ in 0..100 {
        if !requests.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        requests = receiver.requests();
    }
    assert_eq!(requests.len(), 1, "one SMS");
    let request = &requests[0];
    let signature = request.headers["zitadel-signature"]
        .to_str()
        .expect("ascii");
    let (t, v1) = signature.split_once(",v1=").expect("t=…,v1=…");
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(SIGNING_KEY.as_bytes()).expect("key");
    mac.update(format!("{}.", t.trim_start_matches("t=")).as_bytes());
    mac.update(&request.body);
    assert_eq!(
        hex::encode(mac.finalize().into_bytes()),
        v1,
        "signature verifies"
    );
    let body: serde_json::Value = serde_json::from_slice(&request.body).expect("JSON");
    assert_eq!(body["args"]["code"].as_str().map(str::len), Some(6));

    // Restart on the same directory: the record is still there and the sequence goes on.
    drop(serve);
    let serve = Serve::start(&data, &env(&receiver.url)).await;
    let get = serve.get("sam").await;
    assert_eq!(
        (get.body["phone"]["phone"].as_str(), get.sequence()),
        (Some("+41710000030"), 2)
    );
    let again = serve.set("sam", "+41 71 000 00 31").await;
    assert_eq!((again.status, again.sequence()), (200, 4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_updates_lose_nothing_on_the_file_store() {
    let receiver = FakeServer::start(200, "{}").await;
    let data = data_dir("race");
    let serve = Serve::start(&data, &env(&receiver.url)).await;
    const REQUESTS: usize = 24;
    let answers = join_all((0..REQUESTS).map(|i| {
        let serve = &serve;
        async move {
            (
                i,
                serve.set("crowd", &format!("+41 71 003 00 {i:02}")).await,
            )
        }
    }))
    .await;
    let mut sequences = HashSet::new();
    let mut winners = Vec::new();
    for (i, answer) in &answers {
        match answer.status {
            200 => {
                assert!(
                    sequences.insert(answer.sequence()),
                    "sequence {} twice",
                    answer.sequence()
                );
                winners.push((answer.sequence(), *i));
            }
            409 => assert_eq!(answer.code(), 10),
            other => panic!("request {i}: {other} {:?}", answer.body),
        }
    }
    assert!(!winners.is_empty());
    let get = serve.get("crowd").await;
    let (last_sequence, last) = winners.iter().max().copied().expect("a winner");
    assert_eq!(get.sequence(), last_sequence);
    assert_eq!(
        last_sequence as usize,
        2 * winners.len(),
        "every success counted exactly twice"
    );
    assert_eq!(get.body["phone"]["phone"], format!("+417100300{last:02}"));
}

/// The shipped artifact checks ZITADEL's default (opaque) tokens by introspection at a real
/// OpenID provider; with a wrong client secret it answers 500 naming the variable, and the secret
/// shows up nowhere: not in the answer, not in the log, not in the data directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opaque_tokens_round_trip_through_the_issuer() {
    let provider = crate::oidc::Provider::start().await;
    let data = data_dir("opaque");
    let log = data.join("serve.log");
    let mut env = provider.basic_env();
    env.retain(|(name, _)| name != "AUTH_CLIENT_SECRET");
    let wrong = "wrong-secret-0123456789";
    let mut bad_env = env.clone();
    bad_env.push(("AUTH_CLIENT_SECRET".into(), wrong.into()));
    env.push(("AUTH_CLIENT_SECRET".into(), provider.client_secret.clone()));
    let token = provider.token("serve-user", "org-9", "opaque").await;

    for dir in ["good", "bad"] {
        std::fs::create_dir_all(data.join(dir)).expect("data dir");
    }
    let serve = Serve::start(&data.join("good"), &env).await;
    let set = serve
        .request_with(
            reqwest::Method::PUT,
            &token,
            Some(serde_json::json!({ "phone": "+41 71 000 00 31" })),
        )
        .await;
    assert_eq!(set.status, 200, "{:?}", set.body);
    let get = serve.request_with(reqwest::Method::GET, &token, None).await;
    assert_eq!(get.body["phone"]["phone"], "+41710000031");
    drop(serve);

    let log_file = std::fs::File::create(&log).expect("log file");
    let serve = Serve::start_logging(&data.join("bad"), &bad_env, Stdio::from(log_file)).await;
    let refused = serve.request_with(reqwest::Method::GET, &token, None).await;
    assert_eq!(refused.status, 500, "{:?}", refused.body);
    assert!(refused.body.to_string().contains("AUTH_CLIENT_SECRET"));
    drop(serve);

    let logged = std::fs::read_to_string(&log).expect("log");
    assert!(
        logged.contains("AUTH_CLIENT_SECRET"),
        "the problem is logged: {logged}"
    );
    for secret in [wrong, provider.client_secret.as_str(), token.as_str()] {
        assert!(!refused.body.to_string().contains(secret));
        assert!(!logged.contains(secret), "a secret in the log");
        for (entry, text) in support::files_under(&data) {
            let name = entry.display().to_string();
            assert!(
                !text.contains(secret) && !name.contains(secret),
                "{name} holds a secret"
            );
        }
    }
}

/// gRPC-Web text mode on `wasmtime serve` (HTTP/1.1), request bodies in padded chunks; and a
/// form-typed JSON body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_web_text_mode_round_trips() {
    let receiver = FakeServer::start(200, "{}").await;
    let data = data_dir("text");
    let serve = Serve::start(&data, &env(&receiver.url)).await;
    // JSON as `curl -d` sends it without -H (a form content type) is read as JSON, as upstream does.
    let form = serve
        .client
        .put(format!("{}{}", serve.url, support::PHONE_URL))
        .header(
            "authorization",
            format!("Bearer {}", tokens::token("form-serve")),
        )
        .header("content-type", "application/x-www-form-urlencoded")
        .body(r#"{"phone":"+41 71 000 00 43"}"#)
        .send()
        .await
        .expect("wasmtime serve answers");
    assert_eq!(form.status(), 200, "{:?}", form.text().await);
    crate::grpc_web_text::round_trip(&serve.url, "text-serve", "+41 71 000 00 42", || async {
        for _ in 0..100 {
            // The SMS to this number (the form-typed PUT above sent one to another).
            let code = receiver.requests().iter().rev().find_map(|request| {
                let body: serde_json::Value = serde_json::from_slice(&request.body).ok()?;
                (body["contextInfo"]["recipientPhoneNumber"] == "+41710000042")
                    .then(|| body["args"]["code"].as_str().map(str::to_owned))
                    .flatten()
            });
            if let Some(code) = code {
                return code;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no SMS reached the webhook");
    })
    .await;
}

/// The artifact for `wasmtime serve -Sconfig`: every setting as a `-Sconfig-var` (lower-case
/// names) except the JSON key set, which `-S` cannot carry (wasmtime splits `-S` values at
/// commas) and so comes as `--env` (docs/hosts.md). PUT, webhook SMS, verify; an `--env` value
/// overrides the config var; no secret in the log or the data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_from_config_vars_round_trip() {
    let receiver = FakeServer::start(200, "{}").await;
    let data = data_dir("config");
    let mut config = Vec::new();
    let mut env_only = Vec::new();
    for (name, value) in env(&receiver.url) {
        if name == "AUTH_JWKS" {
            env_only.push((name, value));
        } else {
            config.push((name.to_lowercase(), value));
        }
    }
    // The environment wins: the config var says DE, --env says CH (national numbers read in CH).
    config.push(("phone_default_region".into(), "DE".into()));
    env_only.push(("PHONE_DEFAULT_REGION".into(), "CH".into()));
    let log = data.join("serve.log");
    let serve = Serve::start_with(
        "set-my-phone-wasmtime-serve-config.wasm",
        &data,
        &env_only,
        &config,
        Stdio::from(std::fs::File::create(&log).expect("log file")),
    )
    .await;

    let set = serve.set("cfg", "071 000 00 44").await;
    assert_eq!(set.status, 200, "{:?}", set.body);
    let mut code = None;
    for _ in 0..100 {
        if let Some(request) = receiver.requests().last() {
            let body: serde_json::Value = serde_json::from_slice(&request.body).expect("JSON");
            assert_eq!(body["contextInfo"]["recipientPhoneNumber"], "+41710000044");
            code = body["args"]["code"].as_str().map(str::to_owned);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let code = code.expect("the SMS reached the webhook set by -Sconfig-var");
    let verify = serve
        .client
        .post(format!("{}{}/_verify", serve.url, support::PHONE_URL))
        .header("authorization", format!("Bearer {}", tokens::token("cfg")))
        .header("content-type", "application/json")
        .body(serde_json::json!({ "code": code }).to_string())
        .send()
        .await
        .expect("wasmtime serve answers");
    assert_eq!(verify.status(), 200);
    let get = serve.get("cfg").await;
    assert_eq!(
        get.body["phone"],
        serde_json::json!({"phone": "+41710000044", "isPhoneVerified": true})
    );
    drop(serve);
    for (entry, text) in support::files_under(&data) {
        for secret in [support::CODE_SECRET, SIGNING_KEY, code.as_str()] {
            assert!(!text.contains(secret), "{} holds a secret", entry.display());
        }
    }
}

/// Without `-Sconfig`, the config artifact cannot start: wasmtime names the missing import.
/// (The default artifact needs no flag: tests above run it with `--env` alone.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_config_artifact_needs_s_config() {
    let output = Command::new(wasmtime_binary())
        .args(["serve", "--addr", "127.0.0.1:0", "-Scli"])
        .arg(support::artifact_path(
            "set-my-phone-wasmtime-serve-config.wasm",
        ))
        .output()
        .expect("wasmtime runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("wasi:config/store@0.2.0-rc.1"), "{stderr}");
}

/// The limits across accounts on their defaults, counted by the file-backed key-value
/// component's `increment`: six accounts send five codes to one number, and 50 accounts racing
/// for another number's last slot send one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_across_accounts_hold_on_the_file_store_under_a_race() {
    let receiver = FakeServer::start(200, "{}").await;
    let data = data_dir("limits");
    let mut settings = support::guarded_env();
    settings.extend(
        env(&receiver.url)
            .into_iter()
            .filter(|(name, _)| name.starts_with("SMS_")),
    );
    let serve = Serve::start(&data, &settings).await;
    crate::sms_limits::five_of_six_accounts(|user| {
        let serve = &serve;
        async move { serve.set(&user, "+41 79 555 00 00").await }
    })
    .await;

    for i in 0..4 {
        let first = serve.set(&format!("first-{i}"), "+41 79 666 00 00").await;
        assert_eq!(first.status, 200, "{:?}", first.body);
    }
    let racers = (0..50).map(|i| {
        let serve = &serve;
        async move { serve.set(&format!("racer-{i}"), "+41 79 666 00 00").await }
    });
    let answers = join_all(racers).await;
    let statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 429),
        "{statuses:?}"
    );
}
