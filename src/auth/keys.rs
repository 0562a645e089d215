//! The issuer's signing keys: `AUTH_JWKS` as given, or the JWKS at `AUTH_JWKS_URL` / the
//! discovered `jwks_uri`, cached in the key-value store for its `max-age`.
//!
//! A token naming a `kid` the cache does not hold makes one refetch, at most once per
//! [`REFETCH_WINDOW_SECONDS`] for all instances together (an `increment`-allocated slot in the
//! store), so tokens with made-up `kid`s cannot make the service hammer the issuer. When the
//! issuer cannot be reached, cached keys stay in use for a day past their age; with none, the
//! answer is 503 (the caller did nothing wrong).

use super::cache::{self, Entry};
use super::discovery::{self, GRACE_SECONDS};
use super::{Issuer, fetch};
use crate::config::KeySource;
use crate::error::Error;
use crate::platform::Url;
use jsonwebtoken::jwk::JwkSet;

/// At most one refetch of a key set per window, across instances.
pub const REFETCH_WINDOW_SECONDS: i64 = 30;

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
    // The raw document is cached: parsing it is the cheap part.
    let cached: Option<Entry<String>> = cache::read(issuer.kv, &key);
    let cached_keys = cached
        .as_ref()
        .filter(|entry| entry.is_usable(now))
        .and_then(|entry| serde_json::from_str::<JwkSet>(&entry.value).ok());
    if let (Some(entry), Some(keys)) = (&cached, &cached_keys) {
        let knows_kid = kid.is_none_or(|kid| keys.find(kid).is_some());
        if entry.is_fresh(now) && knows_kid {
            return Ok(keys.clone());
        }
        // Stale, or a kid we have not seen: refetch, unless another request already did in
        // this window; meanwhile the cached keys are the answer (an unknown kid then fails).
        if !refetch_slot(issuer, &key, now) {
            return Ok(keys.clone());
        }
    }
    match fetch_keys(issuer, &url) {
        Ok((document, keys, max_age)) => {
            let entry = Entry::fetched(now, max_age, GRACE_SECONDS, document);
            cache::write(issuer.kv, &key, &entry);
            Ok(keys)
        }
        Err(error) => match cached_keys {
            Some(keys) => {
                eprintln!("set-my-phone: using cached signing keys: {error}");
                Ok(keys)
            }
            None => Err(error),
        },
    }
}

fn fetch_keys(issuer: &Issuer, url: &Url) -> Result<(String, JwkSet, i64), Error> {
    let (body, max_age) = fetch::json_document(issuer.http, url, "signing keys")?;
    let document = String::from_utf8(body)
        .map_err(|_| Error::IssuerUnavailable("signing keys: not UTF-8".into()))?;
    let keys: JwkSet = serde_json::from_str(&document)
        .map_err(|e| Error::IssuerUnavailable(format!("signing keys: not a JWKS: {e}")))?;
    Ok((document, keys, max_age))
}

/// Whether this request may refetch the key set cached at `key`: the first to ask in the
/// current window gets the slot. A store that cannot count says no (the cached keys serve).
fn refetch_slot(issuer: &Issuer, key: &str, now: i64) -> bool {
    let window = now.div_euclid(REFETCH_WINDOW_SECONDS);
    let slot = format!("{key}:refetch:{window}");
    match issuer.kv.increment(&slot, 1) {
        Ok(1) => {
            // The previous window's counter is done with; hosts cap the number of keys.
            let _ = issuer.kv.delete(&format!("{key}:refetch:{}", window - 1));
            true
        }
        _ => false,
    }
}
