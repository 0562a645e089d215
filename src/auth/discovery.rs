//! The issuer's OpenID discovery document (`{issuer}/.well-known/openid-configuration`): where its
//! keys and its introspection endpoint are. Cached in the key-value store for its `max-age`.

use super::cache::{self, Entry};
use super::{Issuer, fetch};
use crate::error::Error;
use crate::platform::Url;
use serde::{Deserialize, Serialize};

/// How long past its age a cached document is still used while the issuer cannot be reached.
pub const GRACE_SECONDS: i64 = 24 * 3600;

/// What the service needs of the discovery document.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Endpoints {
    pub jwks_uri: Option<String>,
    pub introspection_endpoint: Option<String>,
}

#[derive(Deserialize)]
struct Document {
    issuer: Option<String>,
    jwks_uri: Option<String>,
    introspection_endpoint: Option<String>,
}

/// The issuer's endpoints: cached, or fetched (and cached) when stale; a stale copy within the
/// grace period stands in when the issuer cannot be reached.
pub fn endpoints(issuer: &Issuer) -> Result<Endpoints, Error> {
    let config = issuer.settings;
    let key = cache::key("discovery", &config.issuer);
    let now = issuer.clock.now().seconds;
    let cached: Option<Entry<Endpoints>> = cache::read(issuer.kv, &key);
    if let Some(entry) = cached.as_ref().filter(|entry| entry.is_fresh(now)) {
        return Ok(entry.value.clone());
    }
    let url = discovery_url(&config.issuer)?;
    match fetch::json_document(issuer.http, &url, "discovery") {
        Ok((body, max_age)) => {
            let document: Document = serde_json::from_slice(&body).map_err(|e| {
                Error::IssuerUnavailable(format!("discovery document unreadable: {e}"))
            })?;
            // OpenID Connect Discovery: the document must name the issuer it was fetched for.
            if let Some(named) = &document.issuer
                && named.trim_end_matches('/') != config.issuer.trim_end_matches('/')
            {
                return Err(Error::Config {
                    variable: "AUTH_ISSUER",
                    problem: format!(
                        "differs from the issuer its discovery document names ({named})"
                    ),
                });
            }
            let endpoints = Endpoints {
                jwks_uri: document.jwks_uri,
                introspection_endpoint: document.introspection_endpoint,
            };
            let entry = Entry::fetched(now, max_age, GRACE_SECONDS, endpoints.clone());
            cache::write(issuer.kv, &key, &entry);
            Ok(endpoints)
        }
        Err(error) => match cached.filter(|entry| entry.is_usable(now)) {
            Some(entry) => {
                crate::log::line(
                    crate::log::Level::Warn,
                    "using the cached discovery document",
                    &[("error", crate::log::scrub(&error.to_string(), &[]).into())],
                );
                Ok(entry.value)
            }
            None => Err(error),
        },
    }
}

fn discovery_url(issuer: &str) -> Result<Url, Error> {
    Url::parse(&format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    ))
    .ok_or(Error::Config {
        variable: "AUTH_ISSUER",
        problem: "is not an http(s) URL".into(),
    })
}

/// Parses an endpoint the discovery document named, or says which setting would name it.
pub fn endpoint(named: Option<String>, what: &str, variable: &'static str) -> Result<Url, Error> {
    let named = named.ok_or_else(|| Error::Config {
        variable,
        problem: format!("is not set and the issuer's discovery document names no {what}"),
    })?;
    Url::parse(&named).ok_or_else(|| {
        Error::IssuerUnavailable(format!("the discovery document's {what} is not a URL"))
    })
}
