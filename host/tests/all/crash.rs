//! Crash safety of the embedded store: the host binary on a redb file is killed with SIGKILL in
//! the middle of concurrent PUTs, again and again, and restarted on the same file each time.
//! Whatever was acknowledged must survive, and no sequence may be handed out twice.
//!
//! Set `CRASH_SEED` to repeat the kill points of an earlier run (each run prints its seed).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers fail the test loudly on anything unexpected"
)]

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::{HostProcess, Issuer, PHONE_URL, Scratch, get_phone, put_phone, try_put_phone};
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};

/// Kill-restart cycles.
const CYCLES: usize = 30;
const USERS: usize = 4;
/// Concurrent writers per user, so that PUTs of one user also race each other.
const WRITERS_PER_USER: usize = 3;
/// The kill comes this long at most after the cycle's first acknowledged PUT.
const MAX_KILL_DELAY: Duration = Duration::from_millis(200);
/// Bound on any one wait that should take far less (a stuck host, not a slow one).
const PATIENCE: Duration = Duration::from_secs(120);

/// What the test knows about one user's stored state.
#[derive(Default)]
struct UserLog {
    /// The newest state known to be stored: the highest sequence answered 200, or read back
    /// after a restart, with its number.
    newest: (u64, String),
    /// Every sequence answered 200, over all runs.
    answered: HashSet<u64>,
    /// Numbers sent since the last start without a 200 answer: in flight at the kill, or
    /// answered otherwise. The store may hold any of them.
    unacknowledged: HashSet<String>,
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

/// PUTs fresh numbers for one user until the host dies. Checks every 200 as it comes: its
/// sequence is new for the user and above everything acknowledged before the PUT was sent.
async fn writer(
    client: reqwest::Client,
    url: String,
    user: (String, String, Arc<Mutex<UserLog>>),
    numbers: Arc<AtomicU64>,
    acknowledged: Arc<AtomicUsize>,
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
        let answer = match try_put_phone(&client, &url, &token, &number).await {
            Ok(answer) => answer,
            Err(_) if killed.load(Ordering::SeqCst) => return Ok(()),
            Err(err) => return Err(format!("{name}: PUT failed while the host was up: {err}")),
        };
        match answer.status {
            200 => {
                let sequence = answer.sequence();
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
                acknowledged.fetch_add(1, Ordering::SeqCst);
            }
            // Lost the race to its sibling writers too often: nothing acknowledged.
            409 if answer.code() == 10 => {}
            _ => return Err(format!("{name}: unexpected answer {answer:?}")),
        }
    }
}

/// After a restart: every user's record is at least as new as the last acknowledged PUT; if it
/// is newer, it holds a number that was sent but never acknowledged. The state read becomes the
/// new floor. Answers how many records hold an unacknowledged number.
async fn check_restarted(host: &HostProcess, client: &reqwest::Client, users: &[User]) -> usize {
    let mut newer = 0;
    for user in users {
        let got = get_phone(client, &host.url(PHONE_URL), &user.token).await;
        assert_eq!(got.status, 200, "{}: {got:?}\n{}", user.name, host.stderr());
        let mut log = user.log.lock().unwrap();
        let (newest, newest_number) = log.newest.clone();
        let (Some(sequence), Some(number)) = (got.try_sequence(), got.phone()) else {
            panic!(
                "{}: after the restart the record is gone ({got:?}); acknowledged was {newest} \
                 ({newest_number})",
                user.name
            );
        };
        let number = number.to_owned();
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
                log.unacknowledged.contains(&number),
                "{}: sequence {sequence} holds {number}, which no unacknowledged PUT sent",
                user.name
            );
            newer += 1;
        }
        log.newest = (sequence, number);
        log.unacknowledged.clear();
    }
    newer
}

/// Waits until `condition` holds, polling; panics with `what` after [`PATIENCE`].
async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !condition() {
        assert!(Instant::now() < deadline, "waited {PATIENCE:?} for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_mid_write_loses_no_acknowledged_update_and_repeats_no_sequence() {
    let seed = match std::env::var("CRASH_SEED") {
        Ok(seed) => seed.parse().expect("CRASH_SEED is a number"),
        Err(_) => rand::random(),
    };
    eprintln!("crash seed {seed} (CRASH_SEED={seed} repeats these kill points)");
    let mut rng = StdRng::seed_from_u64(seed);

    let scratch = Scratch::new("crash");
    let store = format!("redb:{}", scratch.path("db.redb").display());
    let args = ["--store", store.as_str()];
    let wasm = crate::common::initialised_core_path();
    let issuer = Issuer::new();
    let env = issuer.env();
    let client = reqwest::Client::builder()
        .timeout(PATIENCE)
        .build()
        .expect("client");
    let numbers = Arc::new(AtomicU64::new(0));
    let users: Vec<User> = (0..USERS)
        .map(|i| {
            let name = format!("crash-user-{i}");
            User {
                token: issuer.token(&name),
                name,
                log: Arc::default(),
            }
        })
        .collect();

    let mut host = HostProcess::start(&wasm, &args, &env);
    // Each record is created before the first kill: a creation cut short holds its key for the
    // claim lease (10 s, src/store/create.rs), which would make every cycle slow.
    for user in &users {
        let number = fresh_number(&numbers);
        let set = put_phone(&client, &host.url(PHONE_URL), &user.token, &number).await;
        assert_eq!(set.status, 200, "{set:?}");
        let mut log = user.log.lock().unwrap();
        log.answered.insert(set.sequence());
        log.newest = (set.sequence(), number);
    }

    let started = Instant::now();
    let (mut total_acknowledged, mut total_newer) = (0, 0);
    for cycle in 1..=CYCLES {
        let acknowledged = Arc::new(AtomicUsize::new(0));
        let killed = Arc::new(AtomicBool::new(false));
        let mut writers = Vec::new();
        for user in &users {
            for _ in 0..WRITERS_PER_USER {
                writers.push(tokio::spawn(writer(
                    client.clone(),
                    host.url(PHONE_URL),
                    (user.name.clone(), user.token.clone(), Arc::clone(&user.log)),
                    Arc::clone(&numbers),
                    Arc::clone(&acknowledged),
                    Arc::clone(&killed),
                )));
            }
        }
        // Writes are under way once one is acknowledged; a writer that stopped has failed.
        wait_until("the first acknowledged PUT", || {
            acknowledged.load(Ordering::SeqCst) > 0 || writers.iter().any(|w| w.is_finished())
        })
        .await;
        let delay = rng.gen_range(Duration::ZERO..=MAX_KILL_DELAY);
        tokio::time::sleep(delay).await;

        killed.store(true, Ordering::SeqCst);
        let log = host.stderr();
        host.kill();
        for writer in writers {
            if let Err(why) = writer.await.expect("writer task") {
                panic!("cycle {cycle}: {why}\nhost stderr:\n{log}");
            }
        }
        let acknowledged = acknowledged.load(Ordering::SeqCst);
        total_acknowledged += acknowledged;

        let unacknowledged: usize = users
            .iter()
            .map(|user| user.log.lock().unwrap().unacknowledged.len())
            .sum();

        host = HostProcess::start(&wasm, &args, &env);
        let newer = check_restarted(&host, &client, &users).await;
        total_newer += newer;
        eprintln!(
            "cycle {cycle}: killed {delay:?} after the first 200; {acknowledged} PUTs \
             acknowledged, {unacknowledged} not; {newer} records hold an unacknowledged \
             number; {:?} so far",
            started.elapsed()
        );
    }
    eprintln!(
        "{CYCLES} kills: {total_acknowledged} acknowledged PUTs all kept, {total_newer} \
         unacknowledged ones found stored, in {:?}",
        started.elapsed()
    );
}
