//! The issuer's signing keys: `AUTH_JWKS` as given, or the JWKS at `AUTH_JWKS_URL` / the
//! discovered `jwks_uri`, cached in the key-value store for its `max-age`.
//!
//! Cached keys that are stale, or that lack a token's `kid`, make one refetch, then none for
//! [`REFETCH_INTERVAL_SECONDS`] (whether it worked or not), for all instances together: of the
//! requests that see the same cached generation, only the first to `increment` its slot refetches.
//! So tokens with made-up `kid`s cannot make the service hammer the issuer, while a key rotated in
//! right after the first fetch is still picked up. When the issuer cannot be reached, cached keys
//! stay in use for a day past their age; with none, the answer is 503 (the caller did nothing
//! wrong).
//!
//! A key set is parsed lazily: only the key a token names is read into a [`Key`] (keys of kinds
//! this service does not know are ignored, as RFC 7517 section 5 asks). An instance that serves
//! many requests keeps what it parsed, per document, and a fresh copy of a fetched set for its
//! `max-age`, so it reads the store only for a `kid` it does not know or when the copy is stale.

use super::KeySource;
use super::cache::{self, Entry};
use super::discovery::{self, GRACE_SECONDS};
use super::{Issuer, fetch, jwt, rsa};
use crate::error::Error;
use crate::platform::Url;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::cell::{OnceCell, RefCell};
use std::collections::HashMap;
use std::fmt;
use std::rc::Rc;

/// One of the issuer's keys, and its RFC 7638 thumbprint (what names it in cached verifications).
#[derive(Debug)]
pub struct Key {
    pub jwk: Jwk,
    pub thumbprint: String,
    /// An RSA key ready for the core's own check, prepared when a token first needs it: an
    /// instance that serves many requests prepares each key once (`R² mod n` alone costs about
    /// a third of a verification).
    rsa: OnceCell<Result<rsa::PublicKey, String>>,
}

impl Key {
    pub fn new(jwk: Jwk) -> Self {
        let thumbprint = thumbprint(&jwk);
        Key {
            jwk,
            thumbprint,
            rsa: OnceCell::new(),
        }
    }

    /// The key prepared for the core's RSA check; `None` when it is not an RSA key. The error
    /// (a modulus or exponent that is refused) is for the log.
    pub fn rsa(&self) -> Option<Result<&rsa::PublicKey, String>> {
        let AlgorithmParameters::RSA(components) = &self.jwk.algorithm else {
            return None;
        };
        let prepared = self.rsa.get_or_init(|| jwt::rsa_key(components));
        Some(prepared.as_ref().map_err(Clone::clone))
    }
}

/// RFC 7638: SHA-256 over the key's required members, in lexicographic order, without spaces.
/// Strings are written by serde_json so that any value the document held is escaped, not spliced.
fn thumbprint(jwk: &Jwk) -> String {
    let text = |value: &str| serde_json::Value::from(value).to_string();
    let members = match &jwk.algorithm {
        AlgorithmParameters::RSA(rsa) => {
            format!(
                r#"{{"e":{},"kty":"RSA","n":{}}}"#,
                text(&rsa.e),
                text(&rsa.n)
            )
        }
        AlgorithmParameters::EllipticCurve(ec) => format!(
            r#"{{"crv":{},"kty":"EC","x":{},"y":{}}}"#,
            serde_json::to_string(&ec.curve).unwrap_or_default(),
            text(&ec.x),
            text(&ec.y)
        ),
        AlgorithmParameters::OctetKeyPair(okp) => format!(
            r#"{{"crv":{},"kty":"OKP","x":{}}}"#,
            serde_json::to_string(&okp.curve).unwrap_or_default(),
            text(&okp.x)
        ),
        AlgorithmParameters::OctetKey(oct) => {
            format!(r#"{{"k":{},"kty":"oct"}}"#, text(&oct.value))
        }
    };
    URL_SAFE_NO_PAD.encode(Sha256::digest(members.as_bytes()))
}

/// A key in a set as it is stored: its `kid`, and its JSON object as text.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct StoredKey {
    kid: Option<String>,
    json: String,
}

/// A key in a set: as stored, and the key itself once a token named it (`None` when it is not a
/// key this service can read).
struct Slot {
    stored: StoredKey,
    key: OnceCell<Option<Rc<Key>>>,
}

impl Slot {
    fn key(&self) -> Option<Rc<Key>> {
        self.key
            .get_or_init(|| {
                let jwk = serde_json::from_str::<Jwk>(&self.stored.json).ok()?;
                Some(Rc::new(Key::new(jwk)))
            })
            .clone()
    }
}

/// A JWKS document whose keys are parsed when first named.
pub struct KeySet {
    slots: Vec<Slot>,
}

impl fmt::Debug for KeySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kids: Vec<Option<&str>> = self.slots.iter().map(|s| s.stored.kid.as_deref()).collect();
        f.debug_struct("KeySet").field("kids", &kids).finish()
    }
}

/// A JWKS document split into its keys: their `kid`s, and each key's JSON text to be parsed
/// when a token names it.
fn split(document: &str) -> Result<Vec<StoredKey>, String> {
    #[derive(Deserialize)]
    struct Document {
        keys: Vec<serde_json::Map<String, serde_json::Value>>,
    }
    let document: Document = serde_json::from_str(document).map_err(|e| e.to_string())?;
    document
        .keys
        .into_iter()
        .map(|key| {
            let kid = match key.get("kid") {
                None => None,
                Some(serde_json::Value::String(kid)) => Some(kid.clone()),
                Some(_) => return Err("a key's kid is not a string".to_string()),
            };
            let json = serde_json::Value::Object(key).to_string();
            Ok(StoredKey { kid, json })
        })
        .collect()
}

impl KeySet {
    /// Splits a JWKS document (`{"keys":[{...}, ...]}`) into its keys, parsing none of them.
    pub fn parse(document: &str) -> Result<KeySet, String> {
        Ok(KeySet::from_stored(split(document)?))
    }

    fn from_stored(keys: Vec<StoredKey>) -> KeySet {
        let slots = keys
            .into_iter()
            .map(|stored| Slot {
                stored,
                key: OnceCell::new(),
            })
            .collect();
        KeySet { slots }
    }

    /// Whether the set holds no key.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Parses every key now (each is parsed once: a token naming one later reuses it), for a
    /// set that is checked whole when configured; names the first key that is not a JWK.
    pub fn check_whole(&self) -> Result<(), String> {
        match self.slots.iter().position(|slot| slot.key().is_none()) {
            None => Ok(()),
            Some(index) => Err(format!("key {} is not a readable JWK", index + 1)),
        }
    }

    /// Whether a key named `kid` is in the set.
    pub fn knows(&self, kid: &str) -> bool {
        self.slots
            .iter()
            .any(|slot| slot.stored.kid.as_deref() == Some(kid))
    }

    /// The readable keys a token naming `kid` may have been signed with: those with that `kid`,
    /// or every key when the token names none. Only these are parsed.
    pub fn candidates(&self, kid: Option<&str>) -> Vec<Rc<Key>> {
        self.slots
            .iter()
            .filter(|slot| match (kid, slot.stored.kid.as_deref()) {
                (Some(kid), Some(key_id)) => kid == key_id,
                (Some(_), None) => false,
                (None, _) => true,
            })
            .filter_map(Slot::key)
            .collect()
    }
}

/// Least time between two refetches of a key set, across instances.
pub const REFETCH_INTERVAL_SECONDS: i64 = 30;

/// A cached key set.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Cached {
    /// The served document's keys, each still to be parsed.
    keys: Vec<StoredKey>,
    /// SHA-256 of the served document, hex: names its parsed form in an instance.
    digest: String,
    /// Counts the writes of this entry; names the slot that elects the next refetch.
    generation: u64,
    /// When the last refetch was tried (the first fetch does not count).
    refetched: Option<i64>,
}

/// How many fetched key sets (one per URL) an instance keeps parsed.
const HELD_SETS: usize = 8;

/// A fetched key set as this instance parsed it, and the lifetimes of the store entry it came from.
struct Held {
    digest: String,
    keys: Rc<KeySet>,
    stored: i64,
    fresh_until: i64,
}

thread_local! {
    /// Fetched key sets this instance has parsed, by their store key.
    static HELD: RefCell<HashMap<String, Held>> = RefCell::new(HashMap::new());
}

/// The instance's copy of the set at `key`, when it is fresh and knows `kid`.
fn held_fresh(key: &str, now: i64, kid: Option<&str>) -> Option<Rc<KeySet>> {
    HELD.with_borrow(|held| {
        let held = held.get(key)?;
        let usable = held.stored <= now
            && now < held.fresh_until
            && kid.is_none_or(|kid| held.keys.knows(kid));
        usable.then(|| Rc::clone(&held.keys))
    })
}

/// The set in `entry` (stored at `key`) as this instance holds it: its copy when it is the same
/// document, else taken from the entry and kept.
fn hold(key: &str, entry: &Entry<Cached>) -> Rc<KeySet> {
    let digest = &entry.value.digest;
    HELD.with_borrow_mut(|held| {
        let keys = match held.get(key) {
            Some(known) if known.digest == *digest => Rc::clone(&known.keys),
            _ => Rc::new(KeySet::from_stored(entry.value.keys.clone())),
        };
        if held.len() >= HELD_SETS && !held.contains_key(key) {
            held.clear();
        }
        held.insert(
            key.to_string(),
            Held {
                digest: digest.clone(),
                keys: Rc::clone(&keys),
                stored: entry.stored,
                fresh_until: entry.fresh_until,
            },
        );
        keys
    })
}

/// Forgets every key set this instance parsed (tests: a fresh instance).
#[cfg(test)]
pub fn forget_held() {
    HELD.with_borrow_mut(HashMap::clear);
}

/// The keys to verify a token naming `kid` with.
pub fn key_set(issuer: &Issuer, kid: Option<&str>) -> Result<Rc<KeySet>, Error> {
    let url = match &issuer.settings.keys {
        KeySource::Inline(keys) => return Ok(Rc::clone(keys)),
        KeySource::Fetched(Some(url)) => url.clone(),
        KeySource::Fetched(None) => {
            let named = discovery::endpoints(issuer)?.jwks_uri;
            discovery::endpoint(named, "jwks_uri", "AUTH_JWKS_URL")?
        }
    };
    let url_text = format!(
        "{}://{}{}",
        if url.https { "https" } else { "http" },
        url.authority,
        url.path_with_query
    );
    let key = cache::key("jwks", &url_text);
    let now = issuer.clock.now().seconds;
    if let Some(keys) = held_fresh(&key, now, kid) {
        return Ok(keys);
    }
    let cached: Option<Entry<Cached>> = cache::read(issuer.kv, &key);
    let usable = cached.filter(|entry| entry.is_usable(now)).map(|entry| {
        let keys = hold(&key, &entry);
        (entry, keys)
    });
    let Some((entry, keys)) = usable else {
        // Nothing usable cached: ask, whatever other requests do.
        let (keys, digest, max_age) = fetch_keys(issuer, &url)?;
        let cached = Cached {
            keys,
            digest,
            generation: 0,
            refetched: None,
        };
        let entry = Entry::fetched(now, max_age, GRACE_SECONDS, cached);
        cache::write(issuer.kv, &key, &entry);
        return Ok(hold(&key, &entry));
    };
    let knows_kid = kid.is_none_or(|kid| keys.knows(kid));
    if entry.is_fresh(now) && knows_kid {
        return Ok(keys);
    }
    // Stale, or a kid we have not seen: refetch if this request is elected; otherwise (and if
    // the refetch fails) the cached keys are the answer, and an unknown kid then fails.
    let recently = entry
        .value
        .refetched
        .is_some_and(|at| now - at < REFETCH_INTERVAL_SECONDS);
    if recently || !elected(issuer, &key, entry.value.generation) {
        return Ok(keys);
    }
    let generation = entry.value.generation + 1;
    let written = match fetch_keys(issuer, &url) {
        Ok((keys, digest, max_age)) => {
            let cached = Cached {
                keys,
                digest,
                generation,
                refetched: Some(now),
            };
            Entry::fetched(now, max_age, GRACE_SECONDS, cached)
        }
        Err(error) => {
            crate::log::line(
                crate::log::Level::Warn,
                "using cached signing keys",
                &[("error", crate::log::scrub(&error.to_string(), &[]).into())],
            );
            // Same keys and lifetimes; only the attempt is noted, so the next waits its turn.
            let mut kept = entry;
            kept.value.generation = generation;
            kept.value.refetched = Some(now);
            kept
        }
    };
    cache::write(issuer.kv, &key, &written);
    // The slot before last is done with (hosts cap the number of keys).
    if let Some(old) = generation.checked_sub(2) {
        let _ = issuer.kv.delete(&slot(&key, old));
    }
    Ok(hold(&key, &written))
}

/// The issuer's key set, split into its keys, its digest, and how long it may be cached.
fn fetch_keys(issuer: &Issuer, url: &Url) -> Result<(Vec<StoredKey>, String, i64), Error> {
    let (body, max_age) = fetch::json_document(issuer.http, url, "signing keys")?;
    let document = String::from_utf8(body)
        .map_err(|_| Error::IssuerUnavailable("signing keys: not UTF-8".into()))?;
    let keys = split(&document)
        .map_err(|e| Error::IssuerUnavailable(format!("signing keys: not a JWKS: {e}")))?;
    Ok((
        keys,
        hex::encode(Sha256::digest(document.as_bytes())),
        max_age,
    ))
}

fn slot(key: &str, generation: u64) -> String {
    format!("{key}:refetch:{generation}")
}

/// Whether this request is the first to ask to refetch the `generation` cached at `key`. A
/// store that cannot count says no (the cached keys serve).
fn elected(issuer: &Issuer, key: &str, generation: u64) -> bool {
    matches!(issuer.kv.increment(&slot(key, generation), 1), Ok(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::platform::{Answer, Failure, Http, Request};
    use crate::test_support::CountingRandom;
    use crate::test_support::{FixedClock, MemoryKv};
    use std::cell::{Cell, RefCell};

    /// An issuer that serves `jwks` (or nothing, when down) and counts what it is asked.
    struct FakeIssuer {
        jwks: RefCell<String>,
        down: Cell<bool>,
        fetches: Cell<u32>,
    }

    impl Http for FakeIssuer {
        fn exchange(&self, _: &Request) -> Result<Answer, Failure> {
            if self.down.get() {
                return Err(Failure::Unreachable("connection refused".into()));
            }
            self.fetches.set(self.fetches.get() + 1);
            Ok(Answer {
                status: 200,
                headers: vec![("cache-control".into(), "max-age=300".into())],
                body: self.jwks.borrow().clone().into_bytes(),
            })
        }
    }

    fn jwks(kids: &[&str]) -> String {
        let keys: Vec<String> = kids
            .iter()
            .map(|kid| {
                format!(
                    r#"{{"kty":"OKP","crv":"Ed25519","kid":"{kid}","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}}"#
                )
            })
            .collect();
        format!(r#"{{"keys":[{}]}}"#, keys.join(","))
    }

    fn config() -> Config {
        Config::from_lookup(|name| match name {
            "AUTH_ISSUER" => Some("https://issuer.test".into()),
            "AUTH_JWKS_URL" => Some("https://issuer.test/keys".into()),
            _ => None,
        })
        .unwrap()
    }

    fn kids(issuer: &Issuer, kid: &str) -> Result<Vec<String>, Error> {
        let keys = key_set(issuer, Some(kid))?;
        Ok(keys
            .slots
            .iter()
            .filter_map(|s| s.stored.kid.clone())
            .collect())
    }

    /// Runs `test` with an issuer over a fresh store, a clock at 1000 s and a fake issuer
    /// serving the key "a" (or down).
    fn with_issuer(down: bool, test: impl FnOnce(&Issuer, &FakeIssuer, &FixedClock)) {
        crate::auth::forget_instance();
        let (kv, clock, random, config) = (
            MemoryKv::default(),
            FixedClock::at(1000),
            CountingRandom(Cell::new(0)),
            config(),
        );
        let http = FakeIssuer {
            jwks: RefCell::new(jwks(&["a"])),
            down: Cell::new(down),
            fetches: Cell::new(0),
        };
        let issuer = Issuer {
            settings: &config.auth,
            kv: &kv,
            http: &http,
            clock: &clock,
            random: &random,
        };
        test(&issuer, &http, &clock);
    }

    #[test]
    fn unknown_kids_refetch_once_then_wait_their_turn() {
        with_issuer(false, |issuer, http, clock| {
            assert_eq!(kids(issuer, "a").unwrap(), ["a"]);
            // The issuer rotates in "b": a token naming it makes one refetch, at once.
            *http.jwks.borrow_mut() = jwks(&["a", "b"]);
            assert_eq!(kids(issuer, "b").unwrap(), ["a", "b"]);
            assert_eq!(http.fetches.get(), 2);
            // Made-up kids for the next 30 s: no more fetches.
            for second in 0..30 {
                clock.seconds.set(1000 + second);
                assert_eq!(kids(issuer, "made-up").unwrap(), ["a", "b"]);
            }
            assert_eq!(http.fetches.get(), 2);
            clock.seconds.set(1031);
            kids(issuer, "made-up").unwrap();
            assert_eq!(http.fetches.get(), 3, "one more after 30 s");
        });
    }

    #[test]
    fn an_unreachable_issuer_leaves_cached_keys_in_use_and_none_is_unavailable() {
        with_issuer(true, |issuer, http, clock| {
            assert!(matches!(
                kids(issuer, "a"),
                Err(Error::IssuerUnavailable(_))
            ));
            http.down.set(false);
            kids(issuer, "a").unwrap();
            http.down.set(true);
            // Stale (past max-age) but within the day of grace: still served.
            clock.seconds.set(1000 + 300 + 3600);
            assert_eq!(kids(issuer, "a").unwrap(), ["a"]);
            // Past the grace: nothing usable.
            clock.seconds.set(1000 + 300 + 24 * 3600 + 1);
            assert!(matches!(
                kids(issuer, "a"),
                Err(Error::IssuerUnavailable(_))
            ));
        });
    }

    fn test_key(file: &str) -> Key {
        let path = format!("{}/src/auth/testdata/{file}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap();
        Key::new(serde_json::from_str(&text).unwrap())
    }

    #[test]
    fn a_held_rsa_key_is_prepared_once_and_checks_as_a_fresh_one_does() {
        let key = test_key("rsa-a.jwk.json");
        let first: *const rsa::PublicKey = key.rsa().unwrap().unwrap();
        let again: *const rsa::PublicKey = key.rsa().unwrap().unwrap();
        assert_eq!(first, again, "prepared once");
        let token = include_str!("testdata/rsa-a.openssl.jwt").trim();
        let alg = jsonwebtoken::Algorithm::RS256;
        assert_eq!(jwt::check_key_signature(token, alg, &key), Ok(()));
        assert_eq!(jwt::check_signature(token, alg, &key.jwk), Ok(()));
        // One signature bit flipped: both refuse it, the held key as much as the fresh one.
        let (message, signature) = token.rsplit_once('.').unwrap();
        let flipped = if signature.starts_with('A') { 'Q' } else { 'A' };
        let tampered = format!("{message}.{flipped}{}", &signature[1..]);
        assert!(jwt::check_key_signature(&tampered, alg, &key).is_err());
        assert!(jwt::check_signature(&tampered, alg, &key.jwk).is_err());
        // A key of another issuer's set does not open it.
        let other = test_key("rsa-b.jwk.json");
        assert!(jwt::check_key_signature(token, alg, &other).is_err());
    }

    #[test]
    fn a_refused_rsa_key_stays_refused_and_other_kinds_are_not_prepared() {
        let short = test_key("rsa-short.jwk.json");
        let token = include_str!("testdata/rsa-a.openssl.jwt").trim();
        for _ in 0..2 {
            assert!(short.rsa().unwrap().is_err_and(|e| e.contains("1024 bits")));
            let refused = jwt::check_key_signature(token, jsonwebtoken::Algorithm::RS256, &short);
            assert!(refused.is_err_and(|e| e.contains("1024 bits")));
        }
        let ed25519 = Key::new(
            serde_json::from_str(
                r#"{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#,
            )
            .unwrap(),
        );
        assert!(ed25519.rsa().is_none());
    }
}
