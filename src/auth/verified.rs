//! Verified callers, remembered so that a token is checked once, not on every request: what its
//! check established (user, organisation, client, `exp`, and for a JWT the thumbprint of the key
//! whose signature was checked), under the SHA-256 of the token, never the token itself.
//!
//! Two layers, one shape: a bounded map in the instance, for hosts that reuse instances, and the
//! key-value store (`auth:<kind>:<hex SHA-256>`), for hosts that start one per request. A store
//! hit fills the instance's map. An entry counts only for the settings that judged it (issuer,
//! audiences, resource-owner claim), only while the clock has not gone back past its writing, and
//! only until its end (never past the token's `exp`). A JWT's entry counts only while the key
//! the token names is the key that verified it: a rotated key, or one gone, means a new check.

use super::cache::{self, Entry};
use super::{Principal, jwt};
use crate::error::Error;
use crate::store::KeyValue;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};

/// Longest a verified JWT is remembered.
pub const JWT_SECONDS: i64 = 300;
/// Entries the instance's map holds; past it, the oldest entry goes first.
pub const INSTANCE_CAPACITY: usize = 1000;

/// What a cached result came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A JWT's signature, issuer, audience and validity period, checked here.
    Signature,
    /// The issuer's introspection answer.
    Introspection,
}

impl Kind {
    fn store_name(self) -> &'static str {
        match self {
            Kind::Signature => "verified",
            Kind::Introspection => "introspection",
        }
    }
}

/// The caller a token names, as its check established.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verified {
    pub user_id: String,
    pub resource_owner: String,
    pub client_id: Option<String>,
    /// The `locale` claim (entries written before it was kept have none).
    #[serde(default)]
    pub locale: Option<String>,
    /// The token's `exp` (unix seconds), when it has one.
    pub exp: Option<i64>,
    /// RFC 7638 thumbprint of the key whose signature was checked (JWTs only).
    pub key: Option<String>,
}

impl From<Verified> for Principal {
    fn from(verified: Verified) -> Self {
        Principal {
            user_id: verified.user_id,
            resource_owner: verified.resource_owner,
            client_id: verified.client_id,
            locale: verified.locale,
        }
    }
}

/// Why the issuer's answer is refused: an introspection answer that is not active, or names a
/// caller these settings do not accept. (A failed signature check is never remembered.)
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Refusal {
    TokenInvalid(String),
    ResourceOwnerMissing(String),
}

impl From<Refusal> for Error {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::TokenInvalid(why) => Error::TokenInvalid(why),
            Refusal::ResourceOwnerMissing(claim) => Error::ResourceOwnerMissing(claim),
        }
    }
}

pub type Verdict = Result<Verified, Refusal>;

/// One remembered result, as both layers hold it.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Remembered {
    /// [`settings`] of the configuration that judged the token.
    settings: String,
    verdict: Verdict,
}

/// The SHA-256 of a token: all that is kept of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TokenHash([u8; 32]);

impl TokenHash {
    pub fn of(token: &str) -> Self {
        TokenHash(Sha256::digest(token.as_bytes()).into())
    }

    fn store_key(&self, kind: Kind) -> String {
        format!("auth:{}:{}", kind.store_name(), hex::encode(self.0))
    }
}

/// What in the settings decides whether a token names a caller: a remembered verdict counts only
/// under the same issuer, audiences and resource-owner claim.
pub fn settings(issuer: &str, audiences: Option<&[String]>, resource_owner_claim: &str) -> String {
    let judged_by = serde_json::json!([issuer, audiences, resource_owner_claim]);
    hex::encode(Sha256::digest(judged_by.to_string().as_bytes()))
}

/// The instance's layer: entries by kind and token hash, and their order of arrival.
#[derive(Default)]
struct InstanceMap {
    entries: HashMap<(Kind, TokenHash), Entry<Remembered>>,
    arrival: VecDeque<(Kind, TokenHash)>,
}

impl InstanceMap {
    fn insert(&mut self, id: (Kind, TokenHash), entry: Entry<Remembered>) {
        if self.entries.insert(id, entry).is_some() {
            return;
        }
        self.arrival.push_back(id);
        while self.entries.len() > INSTANCE_CAPACITY {
            match self.arrival.pop_front() {
                Some(oldest) => {
                    self.entries.remove(&oldest);
                }
                None => break,
            }
        }
    }

    fn remove(&mut self, id: &(Kind, TokenHash)) {
        if self.entries.remove(id).is_some() {
            self.arrival.retain(|known| known != id);
        }
    }
}

thread_local! {
    static INSTANCE: RefCell<InstanceMap> = RefCell::new(InstanceMap::default());
}

/// Whether `entry` is to be believed at `now` under `settings`.
fn counts(entry: &Entry<Remembered>, settings: &str, now: i64) -> bool {
    entry.stored <= now && entry.is_fresh(now) && entry.value.settings == settings
}

/// The remembered verdict on the token hashed to `hash`, from the instance or else the store.
pub fn recall(
    kind: Kind,
    hash: &TokenHash,
    kv: &dyn KeyValue,
    settings: &str,
    now: i64,
) -> Option<Verdict> {
    let id = (kind, *hash);
    let held = INSTANCE.with_borrow_mut(|map| {
        let entry = map.entries.get(&id)?;
        if counts(entry, settings, now) {
            Some(entry.value.verdict.clone())
        } else {
            map.remove(&id);
            None
        }
    });
    if held.is_some() {
        return held;
    }
    let entry: Entry<Remembered> = cache::read(kv, &hash.store_key(kind))?;
    if !counts(&entry, settings, now) {
        return None;
    }
    let verdict = entry.value.verdict.clone();
    INSTANCE.with_borrow_mut(|map| map.insert(id, entry));
    Some(verdict)
}

/// Remembers `verdict` on the token hashed to `hash` in both layers until `until` (unix
/// seconds); nothing when that is not after `now`.
pub fn remember(
    kind: Kind,
    hash: &TokenHash,
    kv: &dyn KeyValue,
    settings: String,
    now: i64,
    until: i64,
    verdict: Verdict,
) {
    if until <= now {
        return;
    }
    let entry = Entry::fetched(now, until - now, 0, Remembered { settings, verdict });
    cache::write(kv, &hash.store_key(kind), &entry);
    INSTANCE.with_borrow_mut(|map| map.insert((kind, *hash), entry));
}

/// When a verified JWT's entry ends: at its `exp`, and at most [`JWT_SECONDS`] from `now`.
pub fn jwt_until(exp: i64, now: i64) -> i64 {
    exp.min(now.saturating_add(JWT_SECONDS))
}

/// Whether a JWT with this `exp` is past it (and the tolerated skew) at `now`.
pub fn jwt_expired(exp: Option<i64>, now: i64) -> bool {
    exp.is_none_or(|exp| now > exp.saturating_add(jwt::LEEWAY_SECONDS))
}

/// Forgets what this instance remembers (tests: a fresh instance).
#[cfg(test)]
pub fn forget_instance() {
    INSTANCE.with_borrow_mut(|map| *map = InstanceMap::default());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verified(user: &str) -> Verdict {
        Ok(Verified {
            user_id: user.into(),
            resource_owner: "org".into(),
            client_id: None,
            locale: None,
            exp: Some(10_000),
            key: Some("thumbprint".into()),
        })
    }

    #[test]
    fn the_instance_map_keeps_the_newest_thousand() {
        let mut map = InstanceMap::default();
        let entry = |user: &str| {
            Entry::fetched(
                0,
                100,
                0,
                Remembered {
                    settings: String::new(),
                    verdict: verified(user),
                },
            )
        };
        let ids: Vec<(Kind, TokenHash)> = (0..INSTANCE_CAPACITY + 5)
            .map(|n| (Kind::Signature, TokenHash::of(&format!("token-{n}"))))
            .collect();
        for (n, id) in ids.iter().enumerate() {
            map.insert(*id, entry(&format!("user-{n}")));
        }
        // Seen again: not a new arrival.
        map.insert(ids[INSTANCE_CAPACITY], entry("again"));
        assert_eq!(map.entries.len(), INSTANCE_CAPACITY);
        assert_eq!(map.arrival.len(), INSTANCE_CAPACITY);
        for id in &ids[..5] {
            assert!(!map.entries.contains_key(id), "the oldest went first");
        }
        assert!(ids[5..].iter().all(|id| map.entries.contains_key(id)));
    }
}
