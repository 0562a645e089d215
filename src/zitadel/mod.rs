//! Write-through to ZITADEL (`ZITADEL_SYNC=on`): a phone verified here is written to the user
//! in ZITADEL as verified, a removed one is removed there first, and GetMyPhone reads ZITADEL's
//! phone when no change is pending here. Calls go to ZITADEL's user service v2
//! (`POST /v2/users/{id}/phone`, `DELETE /v2/users/{id}/phone`, `GET /v2/users/{id}`) as a
//! service user, each under [`CALL_TIMEOUT`]. docs/zitadel.md has the whole picture.

mod settings;
mod token;

pub use settings::ZitadelSync;

use crate::error::Error;
use crate::platform::{Answer, Clock, Http, KeyValue, Method, Request};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::time::Duration;

/// Longest one call to ZITADEL may take (well inside a host's request deadline).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// Bytes of an answer kept (a user is a few KiB).
const MAX_ANSWER_BYTES: usize = 256 * 1024;
/// Longest ZITADEL's phone is reused for GetMyPhone, in seconds.
pub const READ_CACHE_SECONDS: i64 = 30;

/// ZITADEL's phone of a user, as GetMyPhone shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZitadelPhone {
    pub phone: String,
    pub verified: bool,
}

/// ZITADEL's phone as cached for GetMyPhone: the phone (none = no phone) and when it was read.
#[derive(Serialize, Deserialize)]
struct CachedPhone {
    phone: Option<ZitadelPhone>,
    at: i64,
}

/// A client of ZITADEL's user service for one request.
pub struct Zitadel<'a> {
    pub settings: &'a ZitadelSync,
    pub http: &'a dyn Http,
    /// Keeps the service user's access token and the read-through cache.
    pub kv: &'a dyn KeyValue,
    pub clock: &'a dyn Clock,
}

/// ZITADEL could not be reached or failed (5xx, 429): nothing changed, retry later.
fn unavailable(what: &str, why: &str) -> Error {
    Error::ZitadelUnavailable(format!("{what}: {}", crate::log::scrub(why, &[])))
}

/// What a failed answer says: HTTP status, ZITADEL's error id and message (`{code, message,
/// details: [{id, message}]}`), scrubbed for a log line.
fn describe(answer: &Answer) -> String {
    let body: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
    let id = body["details"][0]["id"].as_str().unwrap_or("none");
    let message = body["message"].as_str().unwrap_or("");
    crate::log::scrub(
        &format!("HTTP {}, ZITADEL error id {id}: {message}", answer.status),
        &[],
    )
}

/// The common answers to a failed call: down or overloaded, or not allowed.
fn failure(what: &str, answer: &Answer) -> Error {
    match answer.status {
        401 | 403 => Error::ZitadelDenied(format!("{what}: {}", describe(answer))),
        status if status >= 500 || status == 429 => {
            Error::ZitadelUnavailable(format!("{what}: {}", describe(answer)))
        }
        _ => Error::ZitadelRefused(format!("{what}: {}", describe(answer))),
    }
}

impl Zitadel<'_> {
    /// Writes `phone` to the user `user_id` as verified. A phone ZITADEL already holds as
    /// verified (a retry after an answer that was lost) counts as written.
    pub fn set_verified_phone(&self, user_id: &str, phone: &str) -> Result<(), Error> {
        let body = serde_json::json!({"phone": phone, "isVerified": true}).to_string();
        let path = format!("/v2/users/{}/phone", path_segment(user_id));
        let answer = self.call(Method::Post, &path, body.into_bytes())?;
        if (200..300).contains(&answer.status) {
            return Ok(());
        }
        if matches!(answer.status, 400 | 409 | 412) {
            // ZITADEL refuses to set the phone it has ("Errors.User.Phone.NotChanged"): a
            // write whose answer was lost. Written, if it holds this number verified.
            let held = self.read_phone(user_id)?;
            if held
                .as_ref()
                .is_some_and(|held| held.phone == phone && held.verified)
            {
                return Ok(());
            }
        }
        Err(failure("setting the phone", &answer))
    }

    /// Removes the user's phone; a user without one counts as removed. Answers whether ZITADEL
    /// had a phone.
    pub fn remove_phone(&self, user_id: &str) -> Result<bool, Error> {
        let path = format!("/v2/users/{}/phone", path_segment(user_id));
        let answer = self.call(Method::Delete, &path, Vec::new())?;
        match answer.status {
            200..300 => Ok(true),
            // "Errors.User.Phone.NotFound": nothing to remove.
            404 => Ok(false),
            _ => Err(failure("removing the phone", &answer)),
        }
    }

    /// The user's phone in ZITADEL, read at most [`READ_CACHE_SECONDS`] ago; kept under
    /// `cache_key` (the user's record key, with a prefix).
    pub fn cached_phone(
        &self,
        user_id: &str,
        cache_key: &str,
    ) -> Result<Option<ZitadelPhone>, Error> {
        let now = self.clock.now().seconds;
        let key = format!("zitadel:phone:{cache_key}");
        if let Ok(Some(bytes)) = self.kv.get(&key)
            && let Ok(cached) = serde_json::from_slice::<CachedPhone>(&bytes)
            && (0..READ_CACHE_SECONDS).contains(&(now - cached.at))
        {
            return Ok(cached.phone);
        }
        let phone = self.read_phone(user_id)?;
        self.remember_phone(cache_key, phone.clone());
        Ok(phone)
    }

    /// Keeps `phone` as ZITADEL's current one (after this service wrote it), so that the
    /// user's next GetMyPhone shows it without a read.
    pub fn remember_phone(&self, cache_key: &str, phone: Option<ZitadelPhone>) {
        let cached = CachedPhone {
            phone,
            at: self.clock.now().seconds,
        };
        if let Ok(bytes) = serde_json::to_vec(&cached) {
            // A cache that cannot be written is read through next time.
            let _ = self.kv.set(&format!("zitadel:phone:{cache_key}"), &bytes);
        }
    }

    /// `GET /v2/users/{id}`: `user.human.phone`, if it holds a number.
    fn read_phone(&self, user_id: &str) -> Result<Option<ZitadelPhone>, Error> {
        let path = format!("/v2/users/{}", path_segment(user_id));
        let answer = self.call(Method::Get, &path, Vec::new())?;
        if !(200..300).contains(&answer.status) {
            return Err(failure("reading the user", &answer));
        }
        let body: Value = serde_json::from_slice(&answer.body).map_err(|_| {
            Error::ZitadelRefused("reading the user: the answer is not JSON".into())
        })?;
        let phone = &body["user"]["human"]["phone"];
        Ok(match phone["phone"].as_str() {
            Some(number) if !number.is_empty() => Some(ZitadelPhone {
                phone: number.to_owned(),
                verified: phone["isVerified"].as_bool().unwrap_or(false),
            }),
            _ => None,
        })
    }

    /// One call with the service user's token; a cached token that is refused (revoked,
    /// expired early) is dropped and the call made once more with a new one.
    fn call(&self, method: Method, path: &str, body: Vec<u8>) -> Result<Answer, Error> {
        let mut fresh = false;
        loop {
            let bearer = self.bearer(fresh)?;
            let mut headers = vec![
                ("authorization".into(), format!("Bearer {}", bearer.token)),
                ("accept".into(), "application/json".into()),
            ];
            if !body.is_empty() {
                headers.push(("content-type".into(), "application/json".into()));
            }
            let request = Request {
                method,
                url: self.settings.api.join(path),
                headers,
                body: body.clone(),
                timeout: CALL_TIMEOUT,
                max_answer_bytes: MAX_ANSWER_BYTES,
            };
            let answer = self
                .http
                .exchange(&request)
                .map_err(|failure| unavailable("ZITADEL", &failure.to_string()))?;
            if answer.status == 401 && bearer.cached && !fresh {
                self.forget_token();
                fresh = true;
                continue;
            }
            return Ok(answer);
        }
    }
}

/// A user id as one path segment: ZITADEL's ids are digits, anything else is escaped.
fn path_segment(id: &str) -> String {
    form_urlencoded::byte_serialize(id.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}
