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

use super::cache::{self, Entry};
use super::discovery::{self, GRACE_SECONDS};
use super::{Issuer, fetch};
use crate::config::KeySource;
use crate::error::Error;
use crate::platform::Url;
use jsonwebtoken::jwk::JwkSet;
use serde::{Deserialize, Serialize};

/// Least time between two refetches of a key set, across instances.
pub const REFETCH_INTERVAL_SECONDS: i64 = 30;

/// A cached key set.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Cached {
    /// The JWKS document as served: parsing it is the cheap part.
    document: String,
    /// Counts the writes of this entry; names the slot that elects the next refetch.
    generation: u64,
    /// When the last refetch was tried (the first fetch does not count).
    refetched: Option<i64>,
}

/// The keys to verify a token naming `kid` with.
pub fn key_set(issuer: &Issuer, kid: Option<&str>) -> Result<JwkSet, Error> {
    let url = match &issuer.config.keys {
        KeySource::Inline(keys) => return Ok(keys.clone()),
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
    let cached: Option<Entry<Cached>> = cache::read(issuer.kv, &key);
    let usable = cached
        .filter(|entry| entry.is_usable(now))
        .and_then(|entry| {
            let keys = serde_json::from_str::<JwkSet>(&entry.value.document).ok()?;
            Some((entry, keys))
        });
    let Some((entry, keys)) = usable else {
        // Nothing usable cached: ask, whatever other requests do.
        let (document, keys, max_age) = fetch_keys(issuer, &url)?;
        let cached = Cached {
            document,
            generation: 0,
            refetched: None,
        };
        cache::write(
            issuer.kv,
            &key,
            &Entry::fetched(now, max_age, GRACE_SECONDS, cached),
        );
        return Ok(keys);
    };
    let knows_kid = kid.is_none_or(|kid| keys.find(kid).is_some());
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
    let (written, answer) = match fetch_keys(issuer, &url) {
        Ok((document, fresh_keys, max_age)) => {
            let cached = Cached {
                document,
                generation,
                refetched: Some(now),
            };
            (
                Entry::fetched(now, max_age, GRACE_SECONDS, cached),
                fresh_keys,
            )
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
            (kept, keys)
        }
    };
    cache::write(issuer.kv, &key, &written);
    // The slot before last is done with (hosts cap the number of keys).
    if let Some(old) = generation.checked_sub(2) {
        let _ = issuer.kv.delete(&slot(&key, old));
    }
    Ok(answer)
}

fn fetch_keys(issuer: &Issuer, url: &Url) -> Result<(String, JwkSet, i64), Error> {
    let (body, max_age) = fetch::json_document(issuer.http, url, "signing keys")?;
    let document = String::from_utf8(body)
        .map_err(|_| Error::IssuerUnavailable("signing keys: not UTF-8".into()))?;
    let keys: JwkSet = serde_json::from_str(&document)
        .map_err(|e| Error::IssuerUnavailable(format!("signing keys: not a JWKS: {e}")))?;
    Ok((document, keys, max_age))
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
            .keys
            .iter()
            .filter_map(|k| k.common.key_id.clone())
            .collect())
    }

    /// Runs `test` with an issuer over a fresh store, a clock at 1000 s and a fake issuer
    /// serving the key "a" (or down).
    fn with_issuer(down: bool, test: impl FnOnce(&Issuer, &FakeIssuer, &FixedClock)) {
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
            config: &config,
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
}
