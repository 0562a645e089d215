//! The settings that say how tokens are checked (`AUTH_*`), parsed once, here, where they are
//! used: the issuer, where its keys come from, introspection and its credentials, the claims
//! read. A missing or malformed one is an `Error::Config` naming the variable.

use super::KeySet;
use crate::error::Error;
use crate::platform::Url;
use crate::time::parse_duration_seconds;
use serde::Deserialize;
use std::rc::Rc;

pub const DEFAULT_RESOURCE_OWNER_CLAIM: &str = "urn:zitadel:iam:user:resourceowner:id";

/// How tokens are checked.
#[derive(Clone, Debug)]
pub struct AuthSettings {
    /// `iss` of tokens; discovery lives below it.
    pub issuer: String,
    pub keys: KeySource,
    /// `AUTH_INTROSPECTION_URL`; else the discovery document's `introspection_endpoint`.
    pub introspection_url: Option<Url>,
    /// Credentials for introspection; without them only JWTs are accepted.
    pub client: Option<ClientAuth>,
    /// Introspect JWTs too, so that revoked ones are refused.
    pub check_revocation: bool,
    /// Longest an active introspection result is reused; 0 = never.
    pub introspection_cache_seconds: u64,
    /// Accepted `aud` values; `None` means not checked.
    pub audiences: Option<Vec<String>>,
    pub resource_owner_claim: String,
    /// [`super::verified::settings`] of these settings, worked out once when they are parsed
    /// rather than on every request (a SHA-256 of their JSON).
    judged_by: String,
}

/// Where the issuer's signing keys come from.
#[derive(Clone, Debug)]
pub enum KeySource {
    /// `AUTH_JWKS`: a fixed set (air-gapped setups, tests), checked whole when read.
    Inline(Rc<KeySet>),
    /// `AUTH_JWKS_URL`, or (when `None`) the discovery document's `jwks_uri`.
    Fetched(Option<Url>),
}

/// How the service authenticates itself to the introspection endpoint.
#[derive(Clone, Debug)]
pub enum ClientAuth {
    /// `client_secret_basic` from `AUTH_CLIENT_ID` and `AUTH_CLIENT_SECRET`.
    Basic { client_id: String, secret: String },
    /// `private_key_jwt` from ZITADEL's application key JSON in `AUTH_CLIENT_KEY`.
    PrivateKeyJwt {
        client_id: String,
        key_id: String,
        /// PEM (PKCS#1 or PKCS#8) RSA private key.
        key_pem: String,
    },
}

impl ClientAuth {
    /// The variable to name when the issuer refuses these credentials.
    pub fn variable(&self) -> &'static str {
        match self {
            ClientAuth::Basic { .. } => "AUTH_CLIENT_SECRET",
            ClientAuth::PrivateKeyJwt { .. } => "AUTH_CLIENT_KEY",
        }
    }
}

/// ZITADEL's application key document (`AUTH_CLIENT_KEY`).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ApplicationKey {
    #[serde(rename = "type")]
    kind: String,
    key_id: String,
    key: String,
    client_id: String,
}

impl AuthSettings {
    /// Reads the `AUTH_*` settings through `get` (which answers `None` for unset or empty).
    pub fn from_settings(get: &dyn Fn(&str) -> Option<String>) -> Result<AuthSettings, Error> {
        let issuer =
            get("AUTH_ISSUER").ok_or_else(|| Error::config("AUTH_ISSUER", "is not set"))?;
        if Url::parse(&issuer).is_none() {
            return Err(Error::config("AUTH_ISSUER", "is not an http(s) URL"));
        }
        let keys = match (get("AUTH_JWKS"), get("AUTH_JWKS_URL")) {
            (Some(inline), _) => {
                let keys = KeySet::parse(&inline).map_err(|e| {
                    Error::config("AUTH_JWKS", format!("is not a JWKS document: {e}"))
                })?;
                if keys.is_empty() {
                    return Err(Error::config("AUTH_JWKS", "holds no keys"));
                }
                keys.check_whole().map_err(|e| {
                    Error::config("AUTH_JWKS", format!("is not a JWKS document: {e}"))
                })?;
                KeySource::Inline(Rc::new(keys))
            }
            (None, Some(url)) => KeySource::Fetched(Some(
                Url::parse(&url)
                    .ok_or_else(|| Error::config("AUTH_JWKS_URL", "is not an http(s) URL"))?,
            )),
            (None, None) => KeySource::Fetched(None),
        };
        let introspection_url = get("AUTH_INTROSPECTION_URL")
            .map(|url| {
                Url::parse(&url)
                    .ok_or_else(|| Error::config("AUTH_INTROSPECTION_URL", "is not an http(s) URL"))
            })
            .transpose()?;
        let client = client_auth(get)?;
        let check_revocation = match get("AUTH_CHECK_REVOCATION") {
            None => false,
            Some(flag) => parse_flag(&flag)
                .ok_or_else(|| Error::config("AUTH_CHECK_REVOCATION", "must be true or false"))?,
        };
        if check_revocation && client.is_none() {
            return Err(Error::config(
                "AUTH_CHECK_REVOCATION",
                "needs introspection credentials: set AUTH_CLIENT_ID and AUTH_CLIENT_SECRET, or AUTH_CLIENT_KEY",
            ));
        }
        let introspection_cache_seconds = match get("AUTH_INTROSPECTION_CACHE") {
            None => 60,
            Some(text) if text.trim() == "0" || text.trim() == "0s" => 0,
            Some(text) => parse_duration_seconds(&text)
                .or_else(|| text.trim().parse::<u64>().ok())
                .ok_or_else(|| {
                    Error::config(
                        "AUTH_INTROSPECTION_CACHE",
                        "must be a duration such as 60s, or 0 for no cache",
                    )
                })?,
        };
        let audiences = get("AUTH_AUDIENCE").map(|list| {
            list.split(',')
                .map(str::trim)
                .filter(|a| !a.is_empty())
                .map(String::from)
                .collect()
        });
        let resource_owner_claim =
            get("AUTH_RESOURCE_OWNER_CLAIM").unwrap_or_else(|| DEFAULT_RESOURCE_OWNER_CLAIM.into());
        let judged_by =
            super::verified::settings(&issuer, audiences.as_deref(), &resource_owner_claim);
        Ok(AuthSettings {
            issuer,
            keys,
            introspection_url,
            client,
            check_revocation,
            introspection_cache_seconds,
            audiences,
            resource_owner_claim,
            judged_by,
        })
    }

    /// What in these settings decides whether a token names a caller: a remembered verdict
    /// counts only under the same value.
    pub fn judged_by(&self) -> &str {
        &self.judged_by
    }
}

/// Introspection credentials: a client id and secret, or an application key, not both.
fn client_auth(get: &dyn Fn(&str) -> Option<String>) -> Result<Option<ClientAuth>, Error> {
    let (id, secret, key) = (
        get("AUTH_CLIENT_ID"),
        get("AUTH_CLIENT_SECRET"),
        get("AUTH_CLIENT_KEY"),
    );
    match (id, secret, key) {
        (None, None, None) => Ok(None),
        (Some(_), _, Some(_)) | (_, Some(_), Some(_)) => Err(Error::config(
            "AUTH_CLIENT_KEY",
            "is set together with AUTH_CLIENT_ID/AUTH_CLIENT_SECRET: use one method",
        )),
        (Some(client_id), Some(secret), None) => Ok(Some(ClientAuth::Basic {
            client_id: client_id.trim().into(),
            secret,
        })),
        (Some(_), None, None) => Err(Error::config("AUTH_CLIENT_SECRET", "is not set")),
        (None, Some(_), None) => Err(Error::config("AUTH_CLIENT_ID", "is not set")),
        (None, None, Some(json)) => {
            let key: ApplicationKey = serde_json::from_str(&json).map_err(|_| {
                Error::config(
                    "AUTH_CLIENT_KEY",
                    "is not a ZITADEL application key (JSON with type, keyId, key, clientId)",
                )
            })?;
            if key.kind != "application" {
                return Err(Error::config(
                    "AUTH_CLIENT_KEY",
                    "is not an application key (its type must be \"application\")",
                ));
            }
            // Checked now, so that a broken key is a configuration error, not a 401 later.
            jsonwebtoken::EncodingKey::from_rsa_pem(key.key.as_bytes())
                .map_err(|_| Error::config("AUTH_CLIENT_KEY", "holds no RSA private key in PEM"))?;
            Ok(Some(ClientAuth::PrivateKeyJwt {
                client_id: key.client_id,
                key_id: key.key_id,
                key_pem: key.key,
            }))
        }
    }
}

pub fn parse_flag(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}
