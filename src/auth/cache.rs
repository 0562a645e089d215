//! Authentication results kept in the key-value store, shared by every instance on the store.
//! Keys are `auth:<kind>:<hex SHA-256 of what they describe>`, so no token or URL is stored as a
//! key, and a cache entry is only ever an optimisation: unreadable ones count as missing, and
//! failing to write one fails nothing.

use crate::store::KeyValue;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A cached value: `fresh_until` it is used as it is; after that, until `usable_until`, only
/// when the issuer cannot be asked (unix seconds).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Entry<T> {
    pub stored: i64,
    pub fresh_until: i64,
    pub usable_until: i64,
    pub value: T,
}

impl<T> Entry<T> {
    /// A value fetched at `now`, fresh for `max_age` seconds and usable `grace` seconds longer.
    pub fn fetched(now: i64, max_age: i64, grace: i64, value: T) -> Self {
        Entry {
            stored: now,
            fresh_until: now + max_age,
            usable_until: now + max_age + grace,
            value,
        }
    }

    pub fn is_fresh(&self, now: i64) -> bool {
        now < self.fresh_until
    }

    pub fn is_usable(&self, now: i64) -> bool {
        now < self.usable_until
    }
}

/// The store key for the `kind` entry about `subject` (a token, a URL).
pub fn key(kind: &str, subject: &str) -> String {
    format!(
        "auth:{kind}:{}",
        hex::encode(Sha256::digest(subject.as_bytes()))
    )
}

pub fn read<T: DeserializeOwned>(kv: &dyn KeyValue, key: &str) -> Option<Entry<T>> {
    let bytes = kv.get(key).ok()??;
    serde_json::from_slice(&bytes).ok()
}

pub fn write<T: Serialize>(kv: &dyn KeyValue, key: &str, entry: &Entry<T>) {
    if let Ok(bytes) = serde_json::to_vec(entry)
        && let Err(e) = kv.set(key, &bytes)
    {
        crate::log::line(
            crate::log::Level::Warn,
            "could not cache",
            &[
                ("key", key.into()),
                ("error", crate::log::scrub(&e.0, &[]).into()),
            ],
        );
    }
}
