//! Helpers shared by the real-process tests of the host binary: the built component, a scratch
//! folder, a test issuer and its tokens, the binary as a child process, and PUT/GET over HTTP.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, OnceLock, mpsc};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub const BIN: &str = env!("CARGO_BIN_EXE_set-my-phone-host");

/// How long a host may take to start (the first start compiles the component).
pub const START_LIMIT: Duration = Duration::from_secs(300);

/// Variables of the test process that would reach the component if inherited.
const PASSED_PREFIXES: [&str; 7] = [
    "AUTH_", "PHONE_", "SMS_", "TWILIO_", "CORS_", "ZITADEL_", "KV_STORE",
];

/// The core pre-initialised with wizer (`scripts/build-artifacts`): libphonenumber's metadata is
/// parsed already, so a PUT costs milliseconds rather than a parse per request.
pub fn initialised_core_path() -> PathBuf {
    set_my_phone_test_harness::artifact("set-my-phone-core-initialised.wasm")
}

/// A fresh folder under cargo's temporary folder, removed on drop.
pub struct Scratch {
    pub dir: PathBuf,
}

impl Scratch {
    pub fn new(name: &str) -> Self {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "serve-{name}-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&dir).expect("create scratch folder");
        Self { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The test issuer: the shared harness's keys, which hosts trust through `AUTH_JWKS`.
pub struct Issuer(());

impl Issuer {
    pub fn new() -> Self {
        Issuer(())
    }

    /// The environment of a host that trusts this issuer, with the abuse guards off.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("AUTH_ISSUER", tokens::ISSUER.to_owned()),
            ("AUTH_JWKS", tokens::keys().jwks.clone()),
            (
                "PHONE_CODE_SECRET",
                "serve-test-secret-0123456789".to_owned(),
            ),
        ]
        .into_iter()
        .chain(
            set_my_phone_test_harness::GUARDS_OFF
                .iter()
                .map(|(name, value)| (*name, (*value).to_owned())),
        )
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    /// A valid RS256 token for `user` (ZITADEL's default algorithm).
    pub fn token(&self, user: &str) -> String {
        tokens::token(user)
    }
}

/// Waits for `child` to exit, at most `limit`.
/// The core component as `scripts/build-component` builds it (release, not pre-initialised).
pub fn core_path() -> PathBuf {
    set_my_phone_test_harness::core_component()
}

/// Sends `signal` (e.g. `-TERM`) to process `pid`.
pub fn signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .arg(signal)
        .arg(pid.to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill {signal} {pid} failed");
}

/// Waits for `child` to exit, at most `limit`.
pub fn wait_with_limit(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("poll child") {
            return Some(status);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The host binary running as a child process; killed on drop.
pub struct HostProcess {
    pub child: Child,
    /// The base URL it serves, `http://127.0.0.1:PORT`.
    pub url: String,
    /// The admin listener's base URL, when started with `--admin-listen`.
    pub admin_url: Option<String>,
    stderr: Arc<Mutex<String>>,
}

impl HostProcess {
    /// Starts `serve` of `wasm` on a free port of 127.0.0.1 with `args` and `env`; waits until
    /// it says it serves.
    pub fn start(wasm: &Path, args: &[&str], env: &[(String, String)]) -> Self {
        let mut command = Command::new(BIN);
        command
            .arg("serve")
            .arg("--wasm")
            .arg(wasm)
            .arg("--listen")
            .arg("127.0.0.1:0")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (name, _) in std::env::vars() {
            if PASSED_PREFIXES.iter().any(|p| name.starts_with(p)) {
                command.env_remove(name);
            }
        }
        command.envs(env.iter().map(|(k, v)| (k, v)));
        let mut child = command.spawn().expect("start the host binary");

        let stderr = Arc::new(Mutex::new(String::new()));
        let (url_tx, url_rx) = mpsc::channel();
        let pipe = child.stderr.take().expect("stderr is piped");
        let log = Arc::clone(&stderr);
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                // The host's log line `{"time":…,"level":"info","msg":"serving","url":…,…}`.
                if let Ok(event) = serde_json::from_str::<Value>(&line)
                    && event["msg"] == "serving"
                    && let Some(url) = event["url"].as_str()
                {
                    let admin_url = event["admin_url"].as_str().map(str::to_owned);
                    let _ = url_tx.send((url.to_owned(), admin_url));
                }
                let mut log = log.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });

        let deadline = Instant::now() + START_LIMIT;
        loop {
            match url_rx.recv_timeout(Duration::from_millis(100)) {
                Ok((url, admin_url)) => {
                    return Self {
                        child,
                        url,
                        admin_url,
                        stderr,
                    };
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = wait_with_limit(&mut child, Duration::from_secs(5));
                    panic!(
                        "the host exited before serving ({status:?}); stderr:\n{}",
                        stderr.lock().unwrap()
                    );
                }
            }
            if let Some(status) = child.try_wait().expect("poll host") {
                std::thread::sleep(Duration::from_millis(100));
                panic!(
                    "the host exited before serving ({status}); stderr:\n{}",
                    stderr.lock().unwrap()
                );
            }
            assert!(
                Instant::now() < deadline,
                "the host did not serve within {START_LIMIT:?}; stderr:\n{}",
                stderr.lock().unwrap()
            );
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits until stderr contains `text`, at most `limit`.
    pub fn wait_for_stderr(&self, text: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        while !self.stderr().contains(text) {
            assert!(
                Instant::now() < deadline,
                "stderr never said {text:?}:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGTERM and waits for the exit.
    pub fn terminate(&mut self) -> ExitStatus {
        signal(self.child.id(), "-TERM");
        let status = wait_with_limit(&mut self.child, Duration::from_secs(60));
        status.unwrap_or_else(|| panic!("the host did not stop on SIGTERM:\n{}", self.stderr()))
    }

    /// Kills the host at once (SIGKILL), as a crash or the OOM killer would, and reaps it.
    pub fn kill(mut self) {
        self.child.kill().expect("SIGKILL the host");
        self.child.wait().expect("reap the host");
    }
}

impl Drop for HostProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

use set_my_phone_test_harness::tokens;
pub use set_my_phone_test_harness::{Answer, PHONE_URL, answer};

/// PUTs `phone`; `Err` when no whole answer arrived (the host died, say).
pub async fn try_put_phone(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    phone: &str,
) -> Result<Answer, reqwest::Error> {
    let response = client
        .put(url)
        .bearer_auth(token)
        .json(&json!({ "phone": phone }))
        .send()
        .await?;
    answer(response).await
}

pub async fn put_phone(client: &reqwest::Client, url: &str, token: &str, phone: &str) -> Answer {
    try_put_phone(client, url, token, phone)
        .await
        .expect("PUT answered")
}

pub async fn get_phone(client: &reqwest::Client, url: &str, token: &str) -> Answer {
    let response = client
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .expect("GET answered");
    answer(response).await.expect("GET answered whole")
}

pub use set_my_phone_test_harness::RedisServer;

/// The misbehaving component, built on first use.
pub fn misbehave_wasm() -> &'static Path {
    static WASM: OnceLock<PathBuf> = OnceLock::new();
    WASM.get_or_init(|| {
        let host = Path::new(env!("CARGO_MANIFEST_DIR"));
        let target_dir = host.join("../target/misbehave");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = Command::new(cargo)
            .args([
                "build",
                "--release",
                "--target",
                "wasm32-wasip2",
                "--manifest-path",
            ])
            .arg(host.join("tests/misbehave/Cargo.toml"))
            .arg("--target-dir")
            .arg(&target_dir)
            .status()
            .expect("run cargo");
        assert!(status.success(), "building tests/misbehave failed");
        let wasm = target_dir.join("wasm32-wasip2/release/set_my_phone_misbehave.wasm");
        assert!(wasm.is_file(), "{} is missing", wasm.display());
        wasm
    })
}
