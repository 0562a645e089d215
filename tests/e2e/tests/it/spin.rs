//! The repository's `spin.toml` under the real Spin CLI (4.0.2), as users run it: `spin up` on
//! the shipped artifact, with Spin's SQLite store (the default) and with a real `redis-server`
//! through a runtime config. Skipped, saying so on stderr, when `spin` is not installed (a fresh
//! clone has none; `.ci/run` installs it from `../shared/tools` when that folder exists).

use crate::fake_http::FakeServer;
use crate::support::{self, Answer};
use crate::tokens;
use set_my_phone_test_harness::{RedisServer, find_binary, free_port, workspace_root};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SIGNING_KEY: &str = "spin-signing-key";

/// `spin` from `SPIN`, PATH or ~/.cargo/bin; None (and a line saying the test is skipped) if absent.
fn spin_binary(test: &str) -> Option<PathBuf> {
    let found = find_binary("spin", "SPIN");
    if found.is_none() {
        eprintln!(
            "SKIPPED {test}: spin is not installed (../shared/tools/install-spin installs Spin 4.0.2)"
        );
    }
    found
}

/// A `spin up` of the repository's spin.toml, killed on drop.
struct SpinUp {
    child: Child,
    url: String,
    log: PathBuf,
    client: reqwest::Client,
}

impl SpinUp {
    /// Starts `spin up` with its state (SQLite store, logs) in `state`, every setting given as
    /// an application variable (`SPIN_VARIABLE_*`, as an operator keeps secrets out of the
    /// command line), and `runtime_config` when given.
    async fn start(
        spin: &Path,
        state: &Path,
        variables: &[(String, String)],
        runtime_config: Option<&Path>,
    ) -> SpinUp {
        support::artifact_path("set-my-phone.wasm");
        let port = free_port();
        let log = state.join("spin-up.log");
        let log_file = std::fs::File::create(&log).expect("log file");
        let mut command = Command::new(spin);
        // `spin up` runs the app in a child (`spin trigger http`): a group of their own lets
        // drop kill both, instead of leaving the trigger serving on.
        command.process_group(0);
        command
            .arg("up")
            .arg("--from")
            .arg(workspace_root().join("spin.toml"))
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--state-dir")
            .arg(state);
        if let Some(path) = runtime_config {
            command.arg("--runtime-config-file").arg(path);
        }
        for (name, value) in variables {
            command.env(format!("SPIN_VARIABLE_{}", name.to_uppercase()), value);
        }
        let mut child = command
            .stdout(Stdio::null())
            .stderr(Stdio::from(log_file))
            .spawn()
            .expect("spin up starts");
        // Spin compiles the component before it listens: give a busy machine time.
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                break;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "spin up exited ({status}): {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "spin up did not listen on {port}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        SpinUp {
            child,
            url: format!("http://127.0.0.1:{port}"),
            log,
            client: reqwest::Client::new(),
        }
    }

    /// A JSON call; bodies go with `content_type` (upstream reads any non-gRPC type as JSON).
    async fn call_as(
        &self,
        method: reqwest::Method,
        path: &str,
        user: &str,
        body: Option<&str>,
        content_type: &str,
    ) -> Answer {
        let mut request = self
            .client
            .request(method, format!("{}{}", self.url, path))
            .header("authorization", format!("Bearer {}", tokens::token(user)))
            .timeout(Duration::from_secs(60));
        if let Some(body) = body {
            request = request
                .header("content-type", content_type)
                .body(body.to_owned());
        }
        let response = request.send().await.expect("spin answers");
        support::answer(response)
            .await
            .expect("spin's answer is read")
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        user: &str,
        body: Option<&str>,
    ) -> Answer {
        self.call_as(method, path, user, body, "application/json")
            .await
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for SpinUp {
    fn drop(&mut self) {
        kill_group(&mut self.child);
    }
}

/// SIGKILL to the process group `child` leads (started with `process_group(0)`), then reaps it.
fn kill_group(child: &mut Child) {
    let leader = i32::try_from(child.id())
        .ok()
        .and_then(rustix::process::Pid::from_raw);
    // Only a real group id (> 1): never 0 (our own group) or -1 (every process).
    if let Some(leader) = leader.filter(|pid| pid.as_raw_nonzero().get() > 1) {
        let _ = rustix::process::kill_process_group(leader, rustix::process::Signal::KILL);
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn state_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("spin-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("state dir");
    dir
}

/// The settings as Spin variables (lower-case names): trusted test keys, a webhook SMS provider
/// at `receiver`, and the origin Spin must let the component call.
fn variables(receiver: &FakeServer) -> Vec<(String, String)> {
    let mut env = support::base_env();
    // The limits per number stay on their defaults: `round_trip` checks them on Spin's stores.
    env.retain(|(name, _)| !name.starts_with("PHONE_CODES_PER_NUMBER"));
    env.extend([
        ("SMS_PROVIDER".to_owned(), "webhook".to_owned()),
        ("SMS_WEBHOOK_URL".into(), format!("{}/sms", receiver.url)),
        ("SMS_WEBHOOK_SIGNING_KEY".into(), SIGNING_KEY.into()),
        ("SMS_WEBHOOK_ORIGIN".into(), receiver.url.clone()),
    ]);
    env.into_iter()
        .map(|(name, value)| (name.to_lowercase(), value))
        .collect()
}

/// The code in the newest SMS the receiver got since `seen` requests, waiting (bounded) for it.
async fn next_code(receiver: &FakeServer, seen: usize, recipient: &str) -> String {
    // The newest SMS to `recipient` after the first `seen`: a code for another number may still
    // arrive late (Spin sends each SMS after its answer), as the limits' six accounts' do.
    for _ in 0..300 {
        let requests = receiver.requests();
        let code = requests.iter().skip(seen).rev().find_map(|request| {
            let body: serde_json::Value = serde_json::from_slice(&request.body).expect("JSON");
            (body["contextInfo"]["recipientPhoneNumber"] == recipient)
                .then(|| body["args"]["code"].as_str().expect("a code").to_owned())
        });
        if let Some(code) = code {
            return code;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no SMS to {recipient} reached the webhook");
}

/// PUT (form-typed JSON), the webhook SMS, verify with its code, GET verified; then the same
/// in gRPC-Web text mode; a restart on the same store finds the record; no secret was written.
async fn round_trip(spin: &Path, name: &str, runtime_config: Option<&Path>, state: &Path) {
    let receiver = FakeServer::start(200, "{}").await;
    let variables = variables(&receiver);
    let up = SpinUp::start(spin, state, &variables, runtime_config).await;
    let user = format!("spin-{name}");

    // Sent as `curl -d` sends it without -H: a form content type, read as JSON as upstream does.
    let set = up
        .call_as(
            reqwest::Method::PUT,
            support::PHONE_URL,
            &user,
            Some(r#"{"phone":"+41 71 000 00 50"}"#),
            "application/x-www-form-urlencoded",
        )
        .await;
    assert_eq!(
        (set.status, set.sequence()),
        (200, 2),
        "{:?}\n{}",
        set.body,
        up.log()
    );
    let code = next_code(&receiver, 0, "+41710000050").await;
    let verify = up
        .call(
            reqwest::Method::POST,
            &format!("{}/_verify", support::PHONE_URL),
            &user,
            Some(&format!(r#"{{"code":"{code}"}}"#)),
        )
        .await;
    assert_eq!(verify.status, 200, "{:?}", verify.body);
    let get = up
        .call(reqwest::Method::GET, support::PHONE_URL, &user, None)
        .await;
    assert_eq!(
        get.body["phone"],
        serde_json::json!({"phone": "+41710000050", "isPhoneVerified": true})
    );

    crate::cors::assert_answers_browsers(&up.client, &up.url).await;
    crate::sms_limits::five_of_six_accounts(|user| {
        let up = &up;
        async move {
            let body = r#"{"phone":"+41 79 555 00 00"}"#;
            up.call(reqwest::Method::PUT, support::PHONE_URL, &user, Some(body))
                .await
        }
    })
    .await;

    let seen = receiver.requests().len();
    crate::grpc_web_text::round_trip(&up.url, &format!("{user}-text"), "+41 71 000 00 51", || {
        next_code(&receiver, seen, "+41710000051")
    })
    .await;

    drop(up);
    let up = SpinUp::start(spin, state, &variables, runtime_config).await;
    let get = up
        .call(reqwest::Method::GET, support::PHONE_URL, &user, None)
        .await;
    assert_eq!(
        (get.body["phone"]["phone"].as_str(), get.sequence()),
        (Some("+41710000050"), 3),
        "the record outlived the restart: {:?}",
        get.body
    );
    drop(up);

    // No secret in Spin's log, the component's logs or the store (SQLite runs keep it here).
    let secrets = [support::CODE_SECRET, SIGNING_KEY, &code];
    for (path, text) in support::files_under(state) {
        for secret in secrets {
            assert!(!text.contains(secret), "{} holds a secret", path.display());
        }
    }
}

/// Without settings Spin refuses to start, naming the required variable (Spin's own message).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spin_up_without_settings_names_the_missing_variable() {
    let Some(spin) = spin_binary("spin_up_without_settings_names_the_missing_variable") else {
        return;
    };
    let state = state_dir("unset");
    let log = state.join("spin-up.log");
    let mut child = Command::new(&spin)
        .process_group(0)
        .arg("up")
        .arg("--from")
        .arg(workspace_root().join("spin.toml"))
        .arg("--listen")
        .arg(format!("127.0.0.1:{}", free_port()))
        .arg("--state-dir")
        .arg(&state)
        .env_remove("SPIN_VARIABLE_AUTH_ISSUER")
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(&log).expect("log file")))
        .spawn()
        .expect("spin up runs");
    let deadline = Instant::now() + Duration::from_secs(300);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for spin up") {
            break status;
        }
        if Instant::now() > deadline {
            kill_group(&mut child);
            panic!("spin up kept running without its required variable");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let stderr = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(!status.success(), "{stderr}");
    assert!(
        stderr.contains("required variable") && stderr.contains("auth_issuer"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spin_up_on_its_default_sqlite_store() {
    let Some(spin) = spin_binary("spin_up_on_its_default_sqlite_store") else {
        return;
    };
    let state = state_dir("sqlite");
    round_trip(&spin, "sqlite", None, &state).await;
    assert!(
        state.join("sqlite_key_value.db").exists(),
        "Spin's default store is a SQLite file in the state dir"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spin_up_on_redis_through_a_runtime_config() {
    let Some(spin) = spin_binary("spin_up_on_redis_through_a_runtime_config") else {
        return;
    };
    let state = state_dir("redis");
    let redis = RedisServer::start(&state, false);
    let config = state.join("runtime-config.toml");
    std::fs::write(
        &config,
        format!(
            "[key_value_store.default]\ntype = \"redis\"\nurl = \"{}\"\n",
            redis.url()
        ),
    )
    .expect("runtime config");
    round_trip(&spin, "redis", Some(&config), &state).await;
    let keys = Command::new("redis-cli")
        .args(["-u", &redis.url(), "DBSIZE"])
        .output()
        .expect("redis-cli (Debian's redis-tools, which redis-server pulls in)");
    let keys = String::from_utf8_lossy(&keys.stdout);
    assert!(
        keys.trim().parse::<u64>().is_ok_and(|n| n > 0),
        "the records are in Redis: DBSIZE {keys}"
    );
}

/// Every setting is a variable of the repository's spin.toml and reaches the component: Spin
/// passes only declared variables, so a setting missing there could not be set on Spin at all.
#[test]
fn spin_toml_declares_every_setting() {
    let manifest = std::fs::read_to_string(workspace_root().join("spin.toml")).expect("spin.toml");
    let (variables, component) = manifest
        .split_once("[component.set-my-phone.variables]")
        .expect("the component's variables section");
    for setting in set_my_phone_wire::settings::SETTINGS {
        let key = set_my_phone_wire::settings::config_key(setting.name);
        assert!(
            variables
                .lines()
                .any(|line| line.starts_with(&format!("{key} = {{"))),
            "[variables] lacks {key}"
        );
        assert!(
            component.contains(&format!("{key} = \"{{{{ {key} }}}}\"")),
            "the component does not get {key}"
        );
    }
}
