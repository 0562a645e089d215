//! Talking to the issuer: JSON documents by `GET` (discovery, keys) with their cache lifetime,
//! and the one `POST` introspection makes. Every exchange finishes within [`TIMEOUT`].

use crate::error::Error;
use crate::platform::{Answer, Http, Method, Request, Url};
use std::time::Duration;

/// How long the issuer has to answer, connecting and reading included.
pub const TIMEOUT: Duration = Duration::from_secs(3);
/// Largest document read from the issuer.
const MAX_ANSWER_BYTES: usize = 512 * 1024;
/// Cache lifetime when the issuer names none, and the bounds of any it names (seconds).
const DEFAULT_MAX_AGE: i64 = 300;
const MIN_MAX_AGE: i64 = 30;
const MAX_MAX_AGE: i64 = 86_400;

/// A request to the issuer with the common limits.
pub fn request(method: Method, url: Url, headers: Vec<(String, String)>, body: Vec<u8>) -> Request {
    Request {
        method,
        url,
        headers,
        body,
        timeout: TIMEOUT,
        max_answer_bytes: MAX_ANSWER_BYTES,
    }
}

/// Sends `request`; an issuer that cannot be reached is `IssuerUnavailable`.
pub fn exchange(http: &dyn Http, request: &Request, what: &str) -> Result<Answer, Error> {
    http.exchange(request)
        .map_err(|failure| Error::IssuerUnavailable(format!("{what}: {failure}")))
}

/// `GET url` for a JSON document: the body, and seconds it may be cached (`Cache-Control:
/// max-age`, clamped to 30 s … 1 day, 300 s when absent). Anything but 200 is unavailable.
pub fn json_document(http: &dyn Http, url: &Url, what: &str) -> Result<(Vec<u8>, i64), Error> {
    let headers = vec![("accept".to_string(), "application/json".to_string())];
    let answer = exchange(
        http,
        &request(Method::Get, url.clone(), headers, Vec::new()),
        what,
    )?;
    if answer.status != 200 {
        return Err(Error::IssuerUnavailable(format!(
            "{what}: the issuer answered {}",
            answer.status
        )));
    }
    let max_age = answer
        .header("cache-control")
        .and_then(max_age)
        .unwrap_or(DEFAULT_MAX_AGE)
        .clamp(MIN_MAX_AGE, MAX_MAX_AGE);
    Ok((answer.body, max_age))
}

/// `max-age=N` of a `Cache-Control` value; `no-store` and `no-cache` count as 0.
fn max_age(cache_control: &str) -> Option<i64> {
    cache_control
        .split(',')
        .map(str::trim)
        .find_map(|directive| {
            let lower = directive.to_ascii_lowercase();
            if lower == "no-store" || lower == "no-cache" {
                return Some(0);
            }
            lower
                .strip_prefix("max-age=")?
                .trim_matches('"')
                .parse()
                .ok()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_age_is_read_from_cache_control() {
        assert_eq!(max_age("max-age=300, must-revalidate"), Some(300));
        assert_eq!(max_age("public, MAX-AGE=\"60\""), Some(60));
        assert_eq!(max_age("no-store"), Some(0));
        assert_eq!(max_age("private"), None);
    }
}
