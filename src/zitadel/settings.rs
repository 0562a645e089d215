//! The settings of the write-through to ZITADEL (`ZITADEL_*`): whether it is on, where ZITADEL's
//! API is, and the service user it calls as. A missing or malformed one is an `Error::Config`
//! naming the variable.

use crate::error::Error;
use crate::platform::Url;
use serde::Deserialize;

/// ZITADEL's token endpoint, below the issuer (the JWT bearer grant of a service user's key).
const TOKEN_PATH: &str = "/oauth/v2/token";

/// Where a verified phone goes, and as whom.
#[derive(Clone, Debug)]
pub struct ZitadelSync {
    /// The base of ZITADEL's API (`ZITADEL_API_URL`, else the issuer's origin).
    pub api: Url,
    /// The issuer: the audience of a key's assertion.
    pub issuer: String,
    /// The issuer's token endpoint, for a key's JWT bearer grant.
    pub token_url: Url,
    pub credentials: ServiceCredentials,
}

/// The service user's credentials.
#[derive(Clone)]
pub enum ServiceCredentials {
    /// `ZITADEL_SERVICE_TOKEN`: a personal access token, sent as it is.
    Token(String),
    /// `ZITADEL_SERVICE_KEY`: the service user's key, exchanged for access tokens.
    Key {
        key_id: String,
        user_id: String,
        /// PEM (PKCS#1 or PKCS#8) RSA private key.
        key_pem: String,
    },
}

/// Never prints a secret.
impl std::fmt::Debug for ServiceCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServiceCredentials::Token(_) => f.write_str("Token([redacted])"),
            ServiceCredentials::Key {
                key_id, user_id, ..
            } => f
                .debug_struct("Key")
                .field("key_id", key_id)
                .field("user_id", user_id)
                .finish_non_exhaustive(),
        }
    }
}

/// A service user's key document as ZITADEL's console downloads it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ServiceKey {
    #[serde(rename = "type")]
    kind: String,
    key_id: String,
    key: String,
    user_id: String,
}

impl ZitadelSync {
    /// The `ZITADEL_*` settings through `get` (unset or empty is `None`); `None` when sync is
    /// off. `issuer` is `AUTH_ISSUER`, already checked.
    pub fn from_settings(
        get: &dyn Fn(&str) -> Option<String>,
        issuer: &str,
    ) -> Result<Option<ZitadelSync>, Error> {
        match get("ZITADEL_SYNC")
            .map(|v| v.trim().to_ascii_lowercase())
            .as_deref()
        {
            None | Some("off") => return Ok(None),
            Some("on") => {}
            Some(_) => return Err(Error::config("ZITADEL_SYNC", "must be on or off")),
        }
        let api = match get("ZITADEL_API_URL") {
            Some(url) => Url::parse(url.trim().trim_end_matches('/'))
                .ok_or_else(|| Error::config("ZITADEL_API_URL", "is not an http(s) URL"))?,
            None => Url::parse(origin(issuer))
                .ok_or_else(|| Error::config("AUTH_ISSUER", "is not an http(s) URL"))?,
        };
        let token_url = Url::parse(&format!("{}{TOKEN_PATH}", issuer.trim_end_matches('/')))
            .ok_or_else(|| Error::config("AUTH_ISSUER", "is not an http(s) URL"))?;
        let credentials = match (get("ZITADEL_SERVICE_TOKEN"), get("ZITADEL_SERVICE_KEY")) {
            (Some(_), Some(_)) => {
                return Err(Error::config(
                    "ZITADEL_SERVICE_KEY",
                    "is set together with ZITADEL_SERVICE_TOKEN: use one",
                ));
            }
            (Some(token), None) => ServiceCredentials::Token(token.trim().to_owned()),
            (None, Some(json)) => service_key(&json)?,
            (None, None) => {
                return Err(Error::config(
                    "ZITADEL_SERVICE_TOKEN",
                    "is not set: ZITADEL_SYNC=on needs a service user's personal access token \
                     (ZITADEL_SERVICE_TOKEN) or key (ZITADEL_SERVICE_KEY)",
                ));
            }
        };
        Ok(Some(ZitadelSync {
            api,
            issuer: issuer.to_owned(),
            token_url,
            credentials,
        }))
    }
}

fn service_key(json: &str) -> Result<ServiceCredentials, Error> {
    let key: ServiceKey = serde_json::from_str(json).map_err(|_| {
        Error::config(
            "ZITADEL_SERVICE_KEY",
            "is not a ZITADEL service user key (JSON with type, keyId, key, userId)",
        )
    })?;
    if key.kind != "serviceaccount" {
        return Err(Error::config(
            "ZITADEL_SERVICE_KEY",
            "is not a service user key (its type must be \"serviceaccount\")",
        ));
    }
    // Checked now, so that a broken key is a configuration error, not a failed call later.
    jsonwebtoken::EncodingKey::from_rsa_pem(key.key.as_bytes())
        .map_err(|_| Error::config("ZITADEL_SERVICE_KEY", "holds no RSA private key in PEM"))?;
    Ok(ServiceCredentials::Key {
        key_id: key.key_id,
        user_id: key.user_id,
        key_pem: key.key,
    })
}

/// `https://host:port` of a URL.
fn origin(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |at| at + 3);
    match url[after_scheme..].find('/') {
        Some(slash) => &url[..after_scheme + slash],
        None => url,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sync(pairs: &[(&str, &str)]) -> Result<Option<ZitadelSync>, Error> {
        let get = |name: &str| {
            pairs
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
        };
        ZitadelSync::from_settings(&get, "https://zitadel.example.com/issuer")
    }

    fn variable_of(result: Result<Option<ZitadelSync>, Error>) -> &'static str {
        match result {
            Err(Error::Config { variable, .. }) => variable,
            other => panic!("not a configuration error: {other:?}"),
        }
    }

    #[test]
    fn off_by_default_and_on_needs_credentials() {
        assert!(sync(&[]).unwrap().is_none());
        assert!(sync(&[("ZITADEL_SYNC", "off")]).unwrap().is_none());
        assert_eq!(
            variable_of(sync(&[("ZITADEL_SYNC", "yes please")])),
            "ZITADEL_SYNC"
        );
        assert_eq!(
            variable_of(sync(&[("ZITADEL_SYNC", "on")])),
            "ZITADEL_SERVICE_TOKEN"
        );
        assert_eq!(
            variable_of(sync(&[
                ("ZITADEL_SYNC", "on"),
                ("ZITADEL_SERVICE_TOKEN", "pat"),
                ("ZITADEL_SERVICE_KEY", "{}"),
            ])),
            "ZITADEL_SERVICE_KEY"
        );
        for bad in [
            "{",
            r#"{"type":"application","keyId":"k","key":"x","userId":"u"}"#,
            r#"{"type":"serviceaccount","keyId":"k","key":"not a pem","userId":"u"}"#,
        ] {
            assert_eq!(
                variable_of(sync(&[
                    ("ZITADEL_SYNC", "on"),
                    ("ZITADEL_SERVICE_KEY", bad)
                ])),
                "ZITADEL_SERVICE_KEY",
                "{bad}"
            );
        }
        assert_eq!(
            variable_of(sync(&[
                ("ZITADEL_SYNC", "on"),
                ("ZITADEL_SERVICE_TOKEN", "pat"),
                ("ZITADEL_API_URL", "ftp://x"),
            ])),
            "ZITADEL_API_URL"
        );
    }

    #[test]
    fn the_api_defaults_to_the_issuers_origin_and_secrets_stay_out_of_debug() {
        let on = sync(&[
            ("ZITADEL_SYNC", "on"),
            ("ZITADEL_SERVICE_TOKEN", "pat-secret"),
        ])
        .unwrap()
        .unwrap();
        let user = on.api.join("/v2/users/1");
        assert_eq!(
            (user.authority.as_str(), user.path_with_query.as_str()),
            ("zitadel.example.com", "/v2/users/1")
        );
        assert_eq!(on.token_url.path_with_query, "/issuer/oauth/v2/token");
        assert!(!format!("{on:?}").contains("pat-secret"));
    }
}
