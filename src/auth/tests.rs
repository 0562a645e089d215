//! What one process (= one reused instance) keeps between requests: verified tokens, parsed
//! settings and keys. Checked through `authenticate` and through whole requests (`api::handle`),
//! with Ed25519 tokens signed here by two known key pairs (RFC 8032 section 7.1, tests 1 and 2).

use super::{Issuer, Principal, authenticate, forget_instance};
use crate::config::Config;
use crate::error::Error;
use crate::http::{Request, Response};
use crate::platform::{OpenError, Services};
use crate::store::KeyValue;
use crate::test_support::{CountingRandom, FixedClock, MemoryKv, NoIssuer};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use std::cell::{Cell, RefCell};
use std::rc::Rc;

thread_local! {
    static SIGNATURE_CHECKS: Cell<u32> = const { Cell::new(0) };
}

/// Called before every JWT signature check.
pub fn count_signature_check() {
    SIGNATURE_CHECKS.set(SIGNATURE_CHECKS.get() + 1);
}

/// Signature checks on this thread so far.
fn signature_checks() -> u32 {
    SIGNATURE_CHECKS.get()
}

const ISSUER: &str = "https://issuer.test";
const OWNER_CLAIM: &str = "urn:zitadel:iam:user:resourceowner:id";
const NOW: i64 = 1_800_000_000;

/// An Ed25519 key pair: secret seed and public key, hex.
struct Pair {
    seed: &'static str,
    public: &'static str,
}

const KEY_1: Pair = Pair {
    seed: "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
    public: "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
};
const KEY_2: Pair = Pair {
    seed: "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
    public: "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
};

/// `AUTH_JWKS` holding `pair`'s public key under `kid`.
fn jwks(pair: &Pair, kid: &str) -> String {
    let x = URL_SAFE_NO_PAD.encode(hex::decode(pair.public).expect("hex"));
    format!(r#"{{"keys":[{{"kty":"OKP","crv":"Ed25519","kid":"{kid}","x":"{x}"}}]}}"#)
}

/// A token for `user` in `org`, expiring at `exp`, signed by `pair` and naming `kid`.
fn token(pair: &Pair, kid: &str, user: &str, org: &str, exp: i64) -> String {
    // PKCS#8 wrapping of an Ed25519 seed (RFC 8410): a fixed 16-byte prefix, then the seed.
    let der = hex::decode(format!("302e020100300506032b657004220420{}", pair.seed)).expect("hex");
    let key = jsonwebtoken::EncodingKey::from_ed_der(&der);
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
    header.kid = Some(kid.into());
    let claims = serde_json::json!({
        "iss": ISSUER, "sub": user, OWNER_CLAIM: org, "exp": exp, "client_id": "app",
    });
    jsonwebtoken::encode(&header, &claims, &key).expect("the test key signs")
}

fn settings(pairs: &[(&str, String)]) -> Config {
    Config::from_lookup(|name| {
        pairs
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.clone())
    })
    .expect("valid test settings")
}

fn inline(pair: &Pair, kid: &str) -> Config {
    settings(&[
        ("AUTH_ISSUER", ISSUER.into()),
        ("AUTH_JWKS", jwks(pair, kid)),
    ])
}

/// `authenticate` with `config` over `kv` at `clock`, no network.
fn check(
    config: &Config,
    kv: &MemoryKv,
    clock: &FixedClock,
    token: &str,
) -> Result<Principal, Error> {
    let random = CountingRandom(Cell::new(0));
    let issuer = Issuer {
        settings: &config.auth,
        kv,
        http: &NoIssuer,
        clock,
        random: &random,
    };
    authenticate(Some(&format!("Bearer {token}")), &issuer)
}

/// Runs `check` and says how many signature checks it made.
fn checked(
    config: &Config,
    kv: &MemoryKv,
    clock: &FixedClock,
    token: &str,
) -> (Result<Principal, Error>, u32) {
    let before = signature_checks();
    let result = check(config, kv, clock, token);
    (result, signature_checks() - before)
}

#[test]
fn a_token_seen_before_costs_no_signature_check_in_either_layer_and_is_never_stored() {
    forget_instance();
    let (config, kv, clock) = (
        inline(&KEY_1, "k"),
        MemoryKv::default(),
        FixedClock::at(NOW),
    );
    let token = token(&KEY_1, "k", "user-1", "org-1", NOW + 3600);
    let (first, checks) = checked(&config, &kv, &clock, &token);
    let first = first.expect("valid");
    assert_eq!(
        (first.user_id.as_str(), first.resource_owner.as_str()),
        ("user-1", "org-1")
    );
    assert_eq!(first.client_id.as_deref(), Some("app"));
    assert_eq!(checks, 1);

    // The instance remembers it, even without the store's entry.
    let empty = MemoryKv::default();
    let (again, checks) = checked(&config, &empty, &clock, &token);
    assert_eq!((again.expect("valid"), checks), (first.clone(), 0));

    // A fresh instance finds it in the store.
    forget_instance();
    let (fresh, checks) = checked(&config, &kv, &clock, &token);
    assert_eq!((fresh.expect("valid"), checks), (first, 0));

    let hash = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(token.as_bytes()));
    let data = kv.data.borrow();
    assert!(
        data.contains_key(&format!("auth:verified:{hash}")),
        "{:?}",
        data.keys()
    );
    let signature = token.rsplit('.').next().expect("three parts");
    for (key, (_, value)) in data.iter() {
        let value = String::from_utf8_lossy(value);
        for part in [token.as_str(), signature] {
            assert!(
                !key.contains(part) && !value.contains(part),
                "{key} holds the token"
            );
        }
    }
}

#[test]
fn another_key_under_the_same_kid_or_the_kid_gone_means_a_new_check() {
    forget_instance();
    let (kv, clock) = (MemoryKv::default(), FixedClock::at(NOW));
    let token = token(&KEY_1, "k", "user-1", "org-1", NOW + 3600);
    let (result, checks) = checked(&inline(&KEY_1, "k"), &kv, &clock, &token);
    assert!(result.is_ok() && checks == 1);
    // The issuer's key "k" is now another key: remembered in both layers, yet checked, refused.
    let (result, checks) = checked(&inline(&KEY_2, "k"), &kv, &clock, &token);
    assert!(matches!(result, Err(Error::TokenInvalid(_))), "{result:?}");
    assert_eq!(checks, 1);
    forget_instance();
    let (result, checks) = checked(&inline(&KEY_2, "k"), &kv, &clock, &token);
    assert!(matches!(result, Err(Error::TokenInvalid(_))), "{result:?}");
    assert_eq!(checks, 1, "the store's entry does not count either");
    // "k" gone: refused without a check.
    let (result, _) = checked(&inline(&KEY_1, "other"), &kv, &clock, &token);
    assert!(matches!(result, Err(Error::TokenInvalid(_))), "{result:?}");
    // The key back: remembered again.
    let (result, checks) = checked(&inline(&KEY_1, "k"), &kv, &clock, &token);
    assert!(result.is_ok());
    assert_eq!(checks, 0);
}

#[test]
fn entries_end_at_exp_or_after_five_minutes_and_expired_tokens_are_refused() {
    forget_instance();
    let (config, kv, clock) = (
        inline(&KEY_1, "k"),
        MemoryKv::default(),
        FixedClock::at(NOW),
    );
    let short = token(&KEY_1, "k", "user-1", "org-1", NOW + 100);
    let long = token(&KEY_1, "k", "user-2", "org-1", NOW + 3600);
    for token in [&short, &long] {
        assert_eq!(checked(&config, &kv, &clock, token).1, 1);
    }
    clock.seconds.set(NOW + 99);
    for token in [&short, &long] {
        assert_eq!(checked(&config, &kv, &clock, token).1, 0);
    }
    // Past exp, within the tolerated skew: checked again, still accepted.
    clock.seconds.set(NOW + 101);
    let (result, checks) = checked(&config, &kv, &clock, &short);
    assert!(result.is_ok() && checks == 1, "{result:?}, {checks} checks");
    // Past the skew: refused, however often it was seen.
    clock.seconds.set(NOW + 100 + 61);
    let (result, _) = checked(&config, &kv, &clock, &short);
    assert!(matches!(result, Err(Error::TokenInvalid(_))), "{result:?}");
    clock.seconds.set(NOW + 299);
    assert_eq!(checked(&config, &kv, &clock, &long).1, 0);
    clock.seconds.set(NOW + 300);
    assert_eq!(
        checked(&config, &kv, &clock, &long).1,
        1,
        "five minutes at most"
    );
}

#[test]
fn other_settings_judge_a_remembered_token_again() {
    forget_instance();
    let (kv, clock) = (MemoryKv::default(), FixedClock::at(NOW));
    let token = token(&KEY_1, "k", "user-1", "org-1", NOW + 3600);
    assert!(check(&inline(&KEY_1, "k"), &kv, &clock, &token).is_ok());
    let audience = settings(&[
        ("AUTH_ISSUER", ISSUER.into()),
        ("AUTH_JWKS", jwks(&KEY_1, "k")),
        ("AUTH_AUDIENCE", "another-app".into()),
    ]);
    let result = check(&audience, &kv, &clock, &token);
    assert!(matches!(result, Err(Error::TokenInvalid(_))), "{result:?}");
    let claim = settings(&[
        ("AUTH_ISSUER", ISSUER.into()),
        ("AUTH_JWKS", jwks(&KEY_1, "k")),
        ("AUTH_RESOURCE_OWNER_CLAIM", "org".into()),
    ]);
    let result = check(&claim, &kv, &clock, &token);
    assert!(
        matches!(result, Err(Error::ResourceOwnerMissing(_))),
        "{result:?}"
    );
}

// --- whole requests through one process, as through one reused instance ---

/// A deployment: its environment (which the test changes), store and clock.
struct Deployment {
    env: RefCell<Vec<(&'static str, String)>>,
    kv: Rc<MemoryKv>,
    clock: FixedClock,
    random: CountingRandom,
}

impl Deployment {
    fn new(keys: String) -> Self {
        Deployment {
            env: RefCell::new(vec![("AUTH_ISSUER", ISSUER.into()), ("AUTH_JWKS", keys)]),
            kv: Rc::new(MemoryKv::default()),
            clock: FixedClock::at(NOW),
            random: CountingRandom(Cell::new(1)),
        }
    }

    fn send(&self, method: &str, token: &str, body: &str) -> Response {
        let env = |name: &str| {
            self.env
                .borrow()
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.clone())
        };
        let kv = Rc::clone(&self.kv);
        let open =
            move |_: &str| -> Result<Box<dyn KeyValue>, OpenError> { Ok(Box::new(Rc::clone(&kv))) };
        let services = Services {
            settings: &|name: &str| Ok(env(name)),
            settings_generation: None,
            open_store: &open,
            clock: &self.clock,
            random: &self.random,
            http: &NoIssuer,
            sms: &crate::test_support::RecordingSms::new(),
        };
        let request = Request {
            method: method.into(),
            path: "/auth/v1/users/me/phone".into(),
            headers: vec![
                ("authorization".into(), format!("Bearer {token}")),
                ("content-type".into(), "application/json".into()),
            ],
            body: Ok(body.as_bytes().to_vec()),
        };
        crate::api::handle(&request, &services).response
    }

    /// GetMyPhone: the status, and the number answered.
    fn phone(&self, token: &str) -> (u16, Option<String>) {
        let response = self.send("GET", token, "");
        let body: serde_json::Value = serde_json::from_slice(&response.body).unwrap_or_default();
        let phone = body["phone"]["phone"].as_str().map(String::from);
        (response.status, phone)
    }
}

const ALICE: &str = "+41446681800";
const BOB: &str = "+41791234567";

#[test]
fn two_callers_alternating_through_one_instance_each_see_only_their_own_phone() {
    forget_instance();
    let deployment = Deployment::new(jwks(&KEY_1, "k"));
    let alice = token(&KEY_1, "k", "alice", "org-1", NOW + 3600);
    let bob = token(&KEY_1, "k", "bob", "org-1", NOW + 600);
    for (token, number) in [(&alice, ALICE), (&bob, BOB)] {
        let body = format!(r#"{{"phone":"{number}"}}"#);
        assert_eq!(deployment.send("PUT", token, &body).status, 200);
    }
    let before = signature_checks();
    for _ in 0..3 {
        assert_eq!(deployment.phone(&alice), (200, Some(ALICE.into())));
        assert_eq!(deployment.phone(&bob), (200, Some(BOB.into())));
    }
    assert_eq!(signature_checks(), before, "both tokens were remembered");

    // Bob's token expires: he is refused, Alice is not, and never sees his number.
    deployment.clock.seconds.set(NOW + 600 + 61);
    for _ in 0..2 {
        assert_eq!(deployment.phone(&bob), (401, None));
        assert_eq!(deployment.phone(&alice), (200, Some(ALICE.into())));
    }

    // The issuer's key changes (same kid): old tokens are refused, new ones work.
    deployment.env.borrow_mut()[1].1 = jwks(&KEY_2, "k");
    assert_eq!(deployment.phone(&alice).0, 401);
    let alice = token(&KEY_2, "k", "alice", "org-1", NOW + 3600);
    let bob = token(&KEY_2, "k", "bob", "org-1", NOW + 3600);
    for _ in 0..2 {
        assert_eq!(deployment.phone(&bob), (200, Some(BOB.into())));
        assert_eq!(deployment.phone(&alice), (200, Some(ALICE.into())));
    }
    // Another resource-owner claim, read from the changed environment: nobody is let in.
    deployment
        .env
        .borrow_mut()
        .push(("AUTH_RESOURCE_OWNER_CLAIM", "org".into()));
    assert_eq!(deployment.phone(&alice), (401, None));
    assert_eq!(deployment.phone(&bob), (401, None));
}

/// A settings generation the component has seen before means the same settings: they are not
/// read again; another generation reads them, and invalid settings are never kept for one.
#[test]
fn settings_of_a_known_generation_are_not_read_again() {
    forget_instance();
    let env = RefCell::new(vec![
        ("AUTH_ISSUER", ISSUER.to_string()),
        ("AUTH_JWKS", jwks(&KEY_1, "k")),
    ]);
    let reads = std::cell::Cell::new(0);
    let lookup = |name: &str| {
        reads.set(reads.get() + 1);
        Ok(env
            .borrow()
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.clone()))
    };
    let first = Config::load(&lookup, Some(7)).expect("valid");
    assert!(reads.get() > 0);
    reads.set(0);
    let again = Config::load(&lookup, Some(7)).expect("valid");
    assert!(Rc::ptr_eq(&first, &again));
    assert_eq!(reads.get(), 0, "a known generation reads nothing");

    env.borrow_mut().push(("PHONE_CODE_LENGTH", "8".into()));
    let changed = Config::load(&lookup, Some(8)).expect("valid");
    assert!(reads.get() > 0);
    assert_eq!((first.code_length, changed.code_length), (6, 8));

    env.borrow_mut()[1].1 = "{".into();
    for _ in 0..2 {
        reads.set(0);
        assert!(matches!(
            Config::load(&lookup, Some(9)),
            Err(Error::Config {
                variable: "AUTH_JWKS",
                ..
            })
        ));
        assert!(reads.get() > 0, "invalid settings are read every time");
    }
}

#[test]
fn settings_are_parsed_once_per_environment() {
    forget_instance();
    let env = RefCell::new(vec![
        ("AUTH_ISSUER", ISSUER.to_string()),
        ("AUTH_JWKS", jwks(&KEY_1, "k")),
    ]);
    let lookup = |name: &str| {
        Ok(env
            .borrow()
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.clone()))
    };
    let first = Config::load(&lookup, None).expect("valid");
    let again = Config::load(&lookup, None).expect("valid");
    assert!(Rc::ptr_eq(&first, &again), "parsed once");
    env.borrow_mut().push(("PHONE_CODE_LENGTH", "8".into()));
    let changed = Config::load(&lookup, None).expect("valid");
    assert!(!Rc::ptr_eq(&first, &changed));
    assert_eq!((first.code_length, changed.code_length), (6, 8));
    env.borrow_mut()[1].1 = "{".into();
    assert!(matches!(
        Config::load(&lookup, None),
        Err(Error::Config {
            variable: "AUTH_JWKS",
            ..
        })
    ));
}
