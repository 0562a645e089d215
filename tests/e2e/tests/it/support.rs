//! Shared test set-up: serves the built core component through the reference host, with an
//! in-memory store, a recording SMS sender and a wall clock the test can move forward, and talks
//! to it over real HTTP.

use crate::tokens::{self, ISSUER, ORG};
use reqwest::Method;
use serde_json::Value;
use set_my_phone_host::keyvalue::MemoryBackend;
use set_my_phone_host::sms::RecordingSms;
use set_my_phone_host::{HostBuilder, HostWallClock, RunningHost};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A test secret for code hashes (at least 16 bytes).
pub const CODE_SECRET: &str = "test-secret-0123456789";

pub use set_my_phone_test_harness::{files_under, workspace_root};

/// The component under test: `SET_MY_PHONE_WASM`, or the release build `scripts/build-component`
/// makes (checked not older than its sources).
pub fn wasm_path() -> PathBuf {
    match std::env::var_os("SET_MY_PHONE_WASM") {
        Some(path) => PathBuf::from(path),
        None => set_my_phone_test_harness::core_component(),
    }
}

/// A shipped artifact from `scripts/build-artifacts` (under target/artifacts), checked not older
/// than its sources.
pub fn artifact_path(name: &str) -> PathBuf {
    set_my_phone_test_harness::artifact(name)
}

/// Compiles the component once before tests start hosts in parallel, so that the
/// compilation cache serves them all.
fn warm_cache() {
    static WARM: OnceLock<()> = OnceLock::new();
    WARM.get_or_init(|| {
        HostBuilder::new(wasm_path())
            .build()
            .expect("the component compiles");
    });
}

/// The settings most tests run with: trusted test keys, and the abuse guards off so that
/// tests may change numbers quickly (tests/it/lifecycle.rs covers the guards).
pub fn base_env() -> Vec<(String, String)> {
    let mut env = guarded_env();
    env.extend(
        set_my_phone_test_harness::GUARDS_OFF
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string())),
    );
    env
}

/// Trusted test keys with every other setting at its default.
pub fn guarded_env() -> Vec<(String, String)> {
    [
        ("AUTH_ISSUER", ISSUER),
        ("AUTH_JWKS", tokens::keys().jwks.as_str()),
        ("PHONE_CODE_SECRET", CODE_SECRET),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// The guest's wall clock: the system's time plus however far the test has moved it on.
#[derive(Clone, Debug, Default)]
pub struct TestClock {
    ahead_nanos: Arc<AtomicU64>,
}

impl TestClock {
    /// Moves the guest's time `by` forward, for every request from now on.
    pub fn advance(&self, by: Duration) {
        let nanos = u64::try_from(by.as_nanos()).expect("a test moves time by less than 584 years");
        self.ahead_nanos.fetch_add(nanos, Ordering::SeqCst);
    }
}

impl HostWallClock for TestClock {
    fn resolution(&self) -> Duration {
        Duration::from_nanos(1)
    }

    fn now(&self) -> Duration {
        let system = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("the system clock is after 1970");
        system + Duration::from_nanos(self.ahead_nanos.load(Ordering::SeqCst))
    }
}

pub struct TestHost {
    pub running: RunningHost,
    pub store: MemoryBackend,
    pub sms: RecordingSms,
    /// The guest's wall clock; `clock.advance(..)` instead of sleeping.
    pub clock: TestClock,
    pub client: reqwest::Client,
}

pub async fn start() -> TestHost {
    start_with_env(base_env()).await
}

pub async fn start_with_env(env: Vec<(String, String)>) -> TestHost {
    warm_cache();
    start_wasm(wasm_path(), env).await
}

/// Serves the core on `store` (which another host may share).
pub async fn start_with_store(env: Vec<(String, String)>, store: MemoryBackend) -> TestHost {
    warm_cache();
    start_wasm_on(wasm_path(), env, store).await
}

/// Serves the component at `wasm` (the core, or a composed artifact).
pub async fn start_wasm(wasm: PathBuf, env: Vec<(String, String)>) -> TestHost {
    start_wasm_on(wasm, env, MemoryBackend::new()).await
}

async fn start_wasm_on(
    wasm: PathBuf,
    env: Vec<(String, String)>,
    store: MemoryBackend,
) -> TestHost {
    let sms = RecordingSms::new();
    let clock = TestClock::default();
    let running = HostBuilder::new(wasm)
        .envs(env)
        .backend(Arc::new(store.clone()))
        .sms(Arc::new(sms.clone()))
        .wall_clock(clock.clone())
        .build()
        .expect("host builds")
        .spawn_local()
        .await
        .expect("host serves");
    TestHost {
        running,
        store,
        sms,
        clock,
        client: reqwest::Client::new(),
    }
}

pub use set_my_phone_test_harness::{Answer, PHONE_URL, RESEND_URL, VERIFY_URL, answer};

impl TestHost {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.running.url())
    }

    /// Sends `body` with `content_type`, bearer `token` when given.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Answer {
        let mut request = self.client.request(method, self.url(path)).body(body);
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let response = request.send().await.expect("request reaches the host");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.expect("body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        Answer {
            status,
            headers,
            body,
        }
    }

    pub async fn set_phone(&self, user: &str, phone: &str) -> Answer {
        let body = serde_json::json!({ "phone": phone })
            .to_string()
            .into_bytes();
        self.send(
            Method::PUT,
            PHONE_URL,
            Some(&tokens::token(user)),
            Some("application/json"),
            body,
        )
        .await
    }

    pub async fn verify(&self, user: &str, code: &str) -> Answer {
        let body = serde_json::json!({ "code": code }).to_string().into_bytes();
        self.send(
            Method::POST,
            VERIFY_URL,
            Some(&tokens::token(user)),
            Some("application/json"),
            body,
        )
        .await
    }

    pub async fn resend(&self, user: &str) -> Answer {
        self.send(
            Method::POST,
            RESEND_URL,
            Some(&tokens::token(user)),
            Some("application/json"),
            b"{}".to_vec(),
        )
        .await
    }

    pub async fn remove(&self, user: &str) -> Answer {
        self.send(
            Method::DELETE,
            PHONE_URL,
            Some(&tokens::token(user)),
            None,
            Vec::new(),
        )
        .await
    }

    /// The code of the latest SMS to `recipient` (after waiting for deliveries).
    pub async fn last_code(&self, recipient: &str) -> String {
        self.running.idle().await;
        self.sms_to(recipient)
            .last()
            .map(|m| m.message.code.clone())
            .expect("an SMS was sent")
    }

    pub async fn get_phone(&self, user: &str) -> Answer {
        self.send(
            Method::GET,
            PHONE_URL,
            Some(&tokens::token(user)),
            None,
            Vec::new(),
        )
        .await
    }

    /// The stored record of `user` in the test organisation, as JSON.
    pub fn record(&self, user: &str) -> Option<Value> {
        self.record_of(ORG, user)
    }

    /// The stored record of `user` in organisation `org` (ids without characters to escape).
    pub fn record_of(&self, org: &str, user: &str) -> Option<Value> {
        let bytes = self
            .store
            .snapshot("default", &format!("user:{org}:{user}"))?;
        Some(serde_json::from_slice(&bytes).expect("stored records are JSON"))
    }

    /// Every key in the default bucket except the store-kept code secret.
    pub fn user_keys(&self) -> Vec<String> {
        self.store
            .entries("default")
            .into_iter()
            .map(|(k, _)| k)
            .filter(|k| k.starts_with("user:"))
            .collect()
    }

    /// SMS messages sent to `recipient`.
    pub fn sms_to(&self, recipient: &str) -> Vec<set_my_phone_host::sms::SentSms> {
        self.sms
            .messages()
            .into_iter()
            .filter(|m| m.message.recipient == recipient)
            .collect()
    }
}

pub mod tempdir {
    /// A directory removed when dropped.
    pub struct Dir(pub std::path::PathBuf);

    impl Dir {
        pub fn new(name: &str) -> Dir {
            let path = std::env::temp_dir().join(format!(
                "set-my-phone-{name}-{}-{}",
                std::process::id(),
                rand::random::<u64>()
            ));
            std::fs::create_dir_all(&path).expect("temp dir");
            Dir(path)
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}
