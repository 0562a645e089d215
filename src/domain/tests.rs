//! The phone lifecycle's rules, natively, over the in-memory fakes: what each RPC changes in the
//! record, what it refuses, and what it leaves for the SMS sender.

use super::*;
use crate::platform::{OpenError, Services};
use crate::record::Delivery;
use crate::sms::SendError;
use crate::test_support::{CountingRandom, FixedClock, MemoryKv, NoIssuer, RecordingSms};
use std::cell::Cell;
use std::rc::Rc;

const START: i64 = 1_800_000_000;
const USER: &str = "user-1";
const ORG: &str = "org-1";

/// One user's world: a store the test can look into, a clock it moves, and the settings.
struct World {
    kv: Rc<MemoryKv>,
    clock: FixedClock,
    random: CountingRandom,
    env: Vec<(&'static str, String)>,
}

impl World {
    fn new() -> Self {
        World {
            kv: Rc::new(MemoryKv::default()),
            clock: FixedClock::at(START),
            random: CountingRandom(Cell::new(7)),
            env: vec![
                ("AUTH_ISSUER", "https://issuer.test".into()),
                (
                    "AUTH_JWKS",
                    r#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#.into(),
                ),
                ("PHONE_CODE_SECRET", "native-test-secret-0123456789".into()),
                ("PHONE_RESEND_COOLDOWN", "0".into()),
                ("PHONE_CODES_PER_HOUR", "0".into()),
            ],
        }
    }

    fn with(mut self, name: &'static str, value: &str) -> Self {
        self.env.retain(|(n, _)| *n != name);
        self.env.push((name, value.into()));
        self
    }

    /// Runs `rpc` as the user, the way the API layer would after authentication.
    fn call<T>(&self, rpc: impl FnOnce(&Caller) -> T) -> T {
        let env = |name: &str| {
            self.env
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.clone())
        };
        let kv = Rc::clone(&self.kv);
        let open =
            move |_: &str| -> Result<Box<dyn KeyValue>, OpenError> { Ok(Box::new(Rc::clone(&kv))) };
        let services = Services {
            env: &env,
            open_store: &open,
            clock: &self.clock,
            random: &self.random,
            http: &NoIssuer,
        };
        let config = Config::from_lookup(env).expect("test settings are valid");
        let principal = Principal {
            user_id: USER.into(),
            resource_owner: ORG.into(),
            client_id: Some("client-1".into()),
        };
        let key = crate::record::record_key(ORG, USER);
        let caller = Caller::new(
            &services,
            config,
            principal,
            key,
            Box::new(Rc::clone(&self.kv)),
        );
        rpc(&caller)
    }

    /// SetMyPhone, then the SMS it leaves for after the answer, delivered through `sms`.
    fn set(&self, number: &str, sms: &RecordingSms) -> Result<Details, Error> {
        self.call(|caller| {
            let (details, job) = set_my_phone(caller, number)?;
            job.deliver(sms, &caller.updater());
            Ok(details)
        })
    }

    fn resend(&self, sms: &RecordingSms) -> Result<Details, Error> {
        self.call(|caller| {
            let (details, job) = resend_my_phone_verification(caller)?;
            job.deliver(sms, &caller.updater());
            Ok(details)
        })
    }

    fn verify(&self, code: &str) -> Result<Details, Error> {
        self.call(|caller| verify_my_phone(caller, code))
    }

    fn get(&self) -> (Details, Option<PhoneView>) {
        self.call(get_my_phone).expect("GetMyPhone")
    }

    fn record(&self) -> UserRecord {
        self.call(|caller| caller.updater().read(&caller.record_key))
            .expect("readable")
            .expect("a record")
    }
}

fn last_code(sms: &RecordingSms) -> String {
    sms.sent.borrow().last().expect("an SMS").code.clone()
}

#[test]
fn set_stores_the_e164_number_unverified_and_sends_its_code() {
    let world = World::new();
    let sms = RecordingSms::new();
    let details = world.set("044 668 18 00", &sms).unwrap();
    // Upstream writes two events for a new number: phone changed and code added.
    assert_eq!(details.sequence, 2);
    assert_eq!(details.resource_owner, ORG);
    let (_, phone) = world.get();
    assert_eq!(
        phone,
        Some(PhoneView {
            phone: "+41446681800".into(),
            is_phone_verified: false,
        })
    );
    let sent = sms.sent.borrow();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].recipient, "+41446681800");
    assert_eq!(
        (sent[0].user_id.as_str(), sent[0].org_id.as_str()),
        (USER, ORG)
    );
    assert!(sent[0].text.ends_with(&sent[0].code), "{}", sent[0].text);
    // The store keeps only the code's hash.
    let stored = world.record();
    let pending = stored.phone.and_then(|p| p.code).expect("a pending code");
    assert_ne!(pending.hash, sent[0].code);
    assert!(matches!(pending.delivery, Delivery::Sent { .. }));
}

#[test]
fn an_unchanged_or_invalid_number_changes_nothing() {
    let world = World::new();
    let sms = RecordingSms::new();
    world.set("+41 44 668 18 00", &sms).unwrap();
    let before = world.record();
    assert_eq!(
        world.set("044 668 18 00", &sms),
        Err(Error::PhoneNotChanged)
    );
    assert_eq!(world.set("12", &sms), Err(Error::PhoneInvalid));
    assert_eq!(world.set("", &sms), Err(Error::PhoneLength));
    assert_eq!(world.record(), before);
    assert_eq!(sms.sent.borrow().len(), 1);
}

#[test]
fn the_right_code_verifies_once_and_is_then_void() {
    let world = World::new();
    let sms = RecordingSms::new();
    world.set("+41 44 668 18 00", &sms).unwrap();
    // Codes are compared case-insensitively and trimmed, as people type them.
    let typed = format!(" {} ", last_code(&sms).to_lowercase());
    let details = world.verify(&typed).unwrap();
    assert_eq!(details.sequence, 3);
    assert_eq!(world.get().1.map(|p| p.is_phone_verified), Some(true));
    let phone = world.record().phone.expect("a phone");
    assert_eq!(phone.code, None, "a used code must not stay stored");
    assert_eq!(world.verify(&last_code(&sms)), Err(Error::CodeNotFound));
}

#[test]
fn wrong_codes_count_and_the_last_allowed_attempt_voids_the_code() {
    let world = World::new().with("PHONE_CODE_MAX_ATTEMPTS", "2");
    let sms = RecordingSms::new();
    world.set("+41 44 668 18 00", &sms).unwrap();
    assert_eq!(world.verify("WRONG1"), Err(Error::CodeInvalid));
    assert_eq!(world.verify("WRONG2"), Err(Error::CodeInvalid));
    // A failed attempt is an event too.
    assert_eq!(world.record().sequence, 4);
    assert_eq!(world.verify(&last_code(&sms)), Err(Error::CodeInvalid));
    assert_eq!(world.get().1.map(|p| p.is_phone_verified), Some(false));
}

#[test]
fn an_expired_code_is_refused_and_a_resent_one_verifies() {
    let world = World::new().with("PHONE_CODE_EXPIRY", "600s");
    let sms = RecordingSms::new();
    world.set("+41 44 668 18 00", &sms).unwrap();
    let first = last_code(&sms);
    world.clock.seconds.set(START + 601);
    assert_eq!(world.verify(&first), Err(Error::CodeInvalid));
    world.resend(&sms).unwrap();
    let second = last_code(&sms);
    assert_ne!(second, first);
    assert_eq!(world.verify(&first), Err(Error::CodeInvalid));
    world.verify(&second).unwrap();
}

#[test]
fn the_cooldown_refuses_a_resend_until_it_has_passed() {
    let world = World::new().with("PHONE_RESEND_COOLDOWN", "60s");
    let sms = RecordingSms::new();
    world.set("+41 44 668 18 00", &sms).unwrap();
    let before = world.record();
    assert!(matches!(
        world.resend(&sms),
        Err(Error::ResendCooldown { .. })
    ));
    assert_eq!(world.record(), before);
    world.clock.seconds.set(START + 60);
    world.resend(&sms).unwrap();
    assert_eq!(sms.sent.borrow().len(), 2);
}

#[test]
fn remove_forgets_the_number_once() {
    let world = World::new();
    let sms = RecordingSms::new();
    world.set("+41 44 668 18 00", &sms).unwrap();
    world.call(remove_my_phone).unwrap();
    assert_eq!(world.get().1, None);
    assert!(matches!(
        world.call(remove_my_phone),
        Err(Error::PhoneNotFound(_))
    ));
    // The same number can be set again.
    world.set("+41 44 668 18 00", &sms).unwrap();
}

#[test]
fn a_failed_delivery_is_filed_on_the_pending_code() {
    let world = World::new();
    let sms = RecordingSms::new();
    *sms.reply.borrow_mut() = Err(SendError::Retryable("provider answered 429".into()));
    world.set("+41 44 668 18 00", &sms).unwrap();
    let code = world
        .record()
        .phone
        .and_then(|p| p.code)
        .expect("a pending code");
    match code.delivery {
        Delivery::Failed {
            retryable, reason, ..
        } => assert!(retryable && reason.contains("429"), "{reason}"),
        other => panic!("expected a failed delivery, got {other:?}"),
    }
}

#[test]
fn get_creates_the_record_once() {
    let world = World::new();
    let (first, phone) = world.get();
    assert_eq!(phone, None);
    let (second, _) = world.get();
    assert_eq!(first, second);
}
