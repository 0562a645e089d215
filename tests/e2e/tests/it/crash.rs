//! Crash safety of the file-backed store (the kv-file adapter) under the real `wasmtime serve`:
//! the server is killed with SIGKILL in the middle of concurrent PUTs and restarted on the same
//! directory, again and again. Whatever was acknowledged must survive, no sequence may be handed
//! out twice, and the locks a killed writer leaves behind must be broken after the restart.
//!
//! Set `CRASH_SEED` to repeat the kill points of an earlier run (each run prints its seed).

use crate::support::{self, Answer, PHONE_URL};
use crate::tokens;
use crate::wasmtime_serve::wasmtime_binary;
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const ARTIFACT: &str = "set-my-phone-wasmtime-serve.wasm";
/// Kill-restart cycles. Fewer than the reference host's 30: a kill that leaves a lock behind
/// costs the next cycle the lock's stale time (10 s, adapters/kv-file/src/lock.rs) before that
/// user can write again, and most kills do.
const CYCLES: usize = 8;
/// More kills until one has left a lock behind (about every second kill does), so that lock
/// breaking is always tested; kills that leave none are quick.
const MAX_CYCLES: usize = 40;
const USERS: usize = 4;
/// Concurrent writers per user, so that PUTs of one user also race for its lock.
const WRITERS_PER_USER: usize = 3;
/// The kill comes this long at most after every user's first acknowledged PUT of the cycle.
const MAX_KILL_DELAY: Duration = Duration::from_millis(200);
/// Bound on any one wait (a stale lock is broken after 10 s; this is for a stuck server).
const PATIENCE: Duration = Duration::from_secs(120);

/// `wasmtime serve` of the artifact over `data`, its stderr in a file; killed on drop.
struct Serve {
    child: Child,
    url: String,
    log: PathBuf,
}

impl Serve {
    /// Starts the server and waits (polling) until it accepts connections.
    async fn start(data: &Path, log: &Path) -> Serve {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let mut command = Command::new(wasmtime_binary());
        command
            .args([
                "serve",
                "--addr",
                &format!("127.0.0.1:{port}"),
                "-Scli",
                "--dir",
            ])
            .arg(format!("{}::/data", data.display()));
        for (name, value) in support::base_env() {
            command.arg("--env").arg(format!("{name}={value}"));
        }
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("log file");
        let child = command
            .arg(support::artifact_path(ARTIFACT))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("wasmtime serve starts");
        let mut serve = Serve {
            child,
            url: format!("http://127.0.0.1:{port}{PHONE_URL}"),
            log: log.to_owned(),
        };
        let deadline = Instant::now() + PATIENCE;
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            if let Some(status) = serve.child.try_wait().expect("poll wasmtime serve") {
                panic!("wasmtime serve exited ({status}):\n{}", serve.log());
            }
            assert!(
                Instant::now() < deadline,
                "wasmtime serve did not listen on {port}:\n{}",
                serve.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        serve
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL, as a crash or the OOM killer would, and reap the process.
    fn kill(mut self) {
        self.child.kill().expect("SIGKILL wasmtime serve");
        self.child.wait().expect("reap wasmtime serve");
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn send(
    client: &reqwest::Client,
    request: reqwest::RequestBuilder,
) -> Result<Answer, reqwest::Error> {
    support::answer(client.execute(request.build()?).await?).await
}

/// `details.sequence`, `None` when the answer has none (no record).
fn sequence(answer: &Answer) -> Option<u64> {
    answer.body["details"]["sequence"]
        .as_str()
        .and_then(|s| s.parse().ok())
}

/// What the test knows about one user's stored state.
#[derive(Default)]
struct UserLog {
    /// The newest state known to be stored: the highest sequence answered 200, or read back
    /// after a restart, with its number.
    newest: (u64, String),
    /// Every sequence answered 200, over all runs.
    answered: HashSet<u64>,
    /// Numbers sent since the last start without a 200 answer (in flight at the kill, or
    /// answered 409 or 503): the store may hold any of them.
    unacknowledged: HashSet<String>,
    /// 200s since the last start.
    acknowledged: usize,
}

struct User {
    name: String,
    token: String,
    log: Arc<Mutex<UserLog>>,
}

/// A number never sent before in this test (E.164, as the service stores it).
fn fresh_number(counter: &AtomicU64) -> String {
    format!("+4179{:07}", counter.fetch_add(1, Ordering::Relaxed))
}

/// PUTs fresh numbers for one user until the server dies. Checks every 200 as it comes: its
/// sequence is new for the user and above everything acknowledged before the PUT was sent.
async fn writer(
    client: reqwest::Client,
    url: String,
    user: (String, String, Arc<Mutex<UserLog>>),
    numbers: Arc<AtomicU64>,
    killed: Arc<AtomicBool>,
) -> Result<(), String> {
    let (name, token, log) = user;
    loop {
        let number = fresh_number(&numbers);
        let floor = {
            let mut log = log.lock().unwrap();
            log.unacknowledged.insert(number.clone());
            log.newest.0
        };
        let request = client
            .put(&url)
            .bearer_auth(&token)
            .json(&serde_json::json!({ "phone": number }));
        let answer = match send(&client, request).await {
            Ok(answer) => answer,
            Err(_) if killed.load(Ordering::SeqCst) => return Ok(()),
            Err(err) => return Err(format!("{name}: PUT failed while the server was up: {err}")),
        };
        match (answer.status, answer.code(), sequence(&answer)) {
            (200, _, Some(sequence)) => {
                let mut log = log.lock().unwrap();
                if sequence <= floor {
                    return Err(format!(
                        "{name}: PUT answered sequence {sequence}, but {floor} was acknowledged \
                         before it was sent"
                    ));
                }
                if !log.answered.insert(sequence) {
                    return Err(format!("{name}: sequence {sequence} answered twice"));
                }
                log.unacknowledged.remove(&number);
                if sequence > log.newest.0 {
                    log.newest = (sequence, number);
                }
                log.acknowledged += 1;
            }
            // Lost the race to its sibling writers too often; or the key stayed locked (by a
            // sibling, or by a killed writer whose lock is not stale yet): written or not.
            (409, 10, _) | (503, 14, _) => {}
            _ => return Err(format!("{name}: unexpected answer {answer:?}")),
        }
    }
}

/// After a restart: every user's record is at least as new as the last acknowledged PUT; if it
/// is newer, it holds a number that was sent but never acknowledged. The state read becomes the
/// new floor. Answers how many records hold an unacknowledged number.
async fn check_restarted(serve: &Serve, client: &reqwest::Client, users: &[User]) -> usize {
    let mut newer = 0;
    for user in users {
        let got = send(client, client.get(&serve.url).bearer_auth(&user.token))
            .await
            .expect("GET answered");
        assert_eq!(got.status, 200, "{}: {got:?}\n{}", user.name, serve.log());
        let mut log = user.log.lock().unwrap();
        let (newest, newest_number) = log.newest.clone();
        let (Some(sequence), Some(number)) = (sequence(&got), got.body["phone"]["phone"].as_str())
        else {
            panic!(
                "{}: after the restart the record is gone ({got:?}); acknowledged was {newest} \
                 ({newest_number})",
                user.name
            );
        };
        assert!(
            sequence >= newest,
            "{}: after the restart the record is at sequence {sequence} ({number}), older than \
             the acknowledged {newest} ({newest_number})",
            user.name
        );
        if sequence == newest {
            assert_eq!(number, newest_number, "{}: sequence {sequence}", user.name);
        } else {
            assert!(
                log.unacknowledged.contains(number),
                "{}: sequence {sequence} holds {number}, which no unacknowledged PUT sent",
                user.name
            );
            newer += 1;
        }
        log.newest = (sequence, number.to_owned());
        log.unacknowledged.clear();
        log.acknowledged = 0;
    }
    newer
}

/// The store's own files below `dir` whose name starts with `prefix` (`.lock-`, `.break-`,
/// `.tmp-`; adapters/kv-file/src/name.rs), with their contents.
fn store_files(dir: &Path, prefix: &str) -> Vec<(PathBuf, StoreFile)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(store_files(&path, prefix));
        } else if entry.file_name().to_string_lossy().starts_with(prefix)
            && let Some(file) = StoreFile::read(&path)
        {
            found.push((path, file));
        }
    }
    found
}

/// A store file as found: its text and when it was last written. A lock's text names its taker,
/// except when the kill came between creating the lock and writing it: then only its time tells
/// it from a live writer's lock, just created at the same path.
#[derive(Debug, PartialEq, Eq)]
struct StoreFile {
    contents: Vec<u8>,
    modified: Option<std::time::SystemTime>,
}

impl StoreFile {
    fn read(path: &Path) -> Option<StoreFile> {
        let modified = std::fs::metadata(path).ok()?.modified().ok();
        Some(StoreFile {
            contents: std::fs::read(path).ok()?,
            modified,
        })
    }
}

/// Whether `path` is a lock (or break marker) of a history chunk's key (`history:…`, stored
/// percent-encoded after a `k`: adapters/kv-file/src/name.rs).
fn is_history_chunk_lock(path: &Path) -> bool {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    [".lock-khistory%3A", ".break-khistory%3A"]
        .iter()
        .any(|prefix| name.starts_with(prefix))
}

/// Waits until `condition` holds, polling; panics with `what` after [`PATIENCE`].
async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !condition() {
        assert!(Instant::now() < deadline, "waited {PATIENCE:?} for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_write_on_the_file_store_loses_nothing_and_stale_locks_are_broken() {
    let seed = match std::env::var("CRASH_SEED") {
        Ok(seed) => seed.parse().expect("CRASH_SEED is a number"),
        Err(_) => rand::random(),
    };
    eprintln!("crash seed {seed} (CRASH_SEED={seed} repeats these kill points)");
    let mut rng = StdRng::seed_from_u64(seed);

    let scratch = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("crash-wasmtime-serve-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    let data = scratch.join("data");
    std::fs::create_dir_all(&data).expect("data dir");
    let log = scratch.join("serve.log");
    let client = reqwest::Client::builder()
        .timeout(PATIENCE)
        .build()
        .expect("client");
    let numbers = Arc::new(AtomicU64::new(0));
    let users: Vec<User> = (0..USERS)
        .map(|i| {
            let name = format!("crash-user-{i}");
            User {
                token: tokens::token(&name),
                name,
                log: Arc::default(),
            }
        })
        .collect();

    let mut serve = Serve::start(&data, &log).await;
    // Each record is created before the first kill: a creation cut short holds its key for the
    // claim lease (10 s, src/store/create.rs) on top of any lock.
    for user in &users {
        let number = fresh_number(&numbers);
        let request = client
            .put(&serve.url)
            .bearer_auth(&user.token)
            .json(&serde_json::json!({ "phone": number }));
        let set = send(&client, request).await.expect("PUT answered");
        let sequence = sequence(&set).unwrap_or_else(|| panic!("{set:?}\n{}", serve.log()));
        let mut log = user.log.lock().unwrap();
        log.answered.insert(sequence);
        log.newest = (sequence, number);
    }

    let started = Instant::now();
    let mut left_locks: Vec<(PathBuf, StoreFile)> = Vec::new();
    let (mut total_left, mut total_newer) = (0, 0);
    let mut cycle = 0;
    while cycle < CYCLES || (total_left == 0 && cycle < MAX_CYCLES) {
        cycle += 1;
        let killed = Arc::new(AtomicBool::new(false));
        let mut writers = Vec::new();
        for user in &users {
            for _ in 0..WRITERS_PER_USER {
                writers.push(tokio::spawn(writer(
                    client.clone(),
                    serve.url.clone(),
                    (user.name.clone(), user.token.clone(), Arc::clone(&user.log)),
                    Arc::clone(&numbers),
                    Arc::clone(&killed),
                )));
            }
        }
        // Every user writing again means every lock the last kill left on a record was broken
        // (a writer that stopped has failed: then stop waiting and report it).
        wait_until("a 200 for every user", || {
            users
                .iter()
                .all(|user| user.log.lock().unwrap().acknowledged > 0)
                || writers.iter().any(|w| w.is_finished())
        })
        .await;
        for (path, left) in &left_locks {
            assert!(
                StoreFile::read(path).as_ref() != Some(left),
                "cycle {cycle}: the lock {} left by the killed server is still there ({left:?})",
                path.display(),
            );
        }
        let delay = rng.gen_range(Duration::ZERO..=MAX_KILL_DELAY);
        tokio::time::sleep(delay).await;

        killed.store(true, Ordering::SeqCst);
        serve.kill();
        for writer in writers {
            if let Err(why) = writer.await.expect("writer task") {
                panic!(
                    "cycle {cycle}: {why}\nserver log:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
        }
        let acknowledged: usize = users
            .iter()
            .map(|user| user.log.lock().unwrap().acknowledged)
            .sum();
        left_locks = store_files(&data, ".lock-");
        left_locks.extend(store_files(&data, ".break-"));
        // A history chunk is written once, under a key of its own, before the record's swap
        // that would reference it: a kill mid-write leaves its lock, which no later write
        // breaks, and the chunk unreferenced (never read as history: src/record/history.rs).
        left_locks.retain(|(path, _)| !is_history_chunk_lock(path));
        total_left += left_locks.len();

        serve = Serve::start(&data, &log).await;
        let newer = check_restarted(&serve, &client, &users).await;
        total_newer += newer;
        eprintln!(
            "cycle {cycle}: killed {delay:?} after every user's first 200; {acknowledged} PUTs \
             acknowledged; {} locks left behind; {newer} records hold an unacknowledged \
             number; {:?} so far",
            left_locks.len(),
            started.elapsed()
        );
    }
    // The locks the last kill left are broken by the next writes to their keys (a PUT may
    // answer 503 while a lock is not stale yet: then ask again).
    for user in &users {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let number = fresh_number(&numbers);
            let request = client
                .put(&serve.url)
                .bearer_auth(&user.token)
                .json(&serde_json::json!({ "phone": number }));
            let set = send(&client, request).await.expect("PUT answered");
            match (set.status, set.code()) {
                (200, _) => break,
                (503, 14) if Instant::now() < deadline => {}
                _ => panic!("{}: {set:?}\n{}", user.name, serve.log()),
            }
        }
    }
    for (path, left) in &left_locks {
        assert!(
            StoreFile::read(path).as_ref() != Some(left),
            "the lock {} left by the last kill is still there",
            path.display()
        );
    }
    assert!(total_left > 0, "none of {cycle} kills left a lock behind");
    let temporaries = store_files(&data, ".tmp-").len();
    eprintln!(
        "{cycle} kills: {total_left} locks left behind and broken, {total_newer} unacknowledged \
         PUTs found stored, {temporaries} temporary files left, in {:?}",
        started.elapsed()
    );
    drop(serve);
    let _ = std::fs::remove_dir_all(&scratch);
}
