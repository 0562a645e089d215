//! The service user's bearer token: a personal access token as it is, or for a key, an access
//! token from the issuer's JWT bearer grant (RFC 7523), kept in the store until shortly before it
//! expires. The store's key names the key id, never a token; the access token is the value.

use super::settings::{ServiceCredentials, ZitadelSync};
use super::{Zitadel, unavailable};
use crate::error::Error;
use crate::platform::{Method, Request};
use serde::{Deserialize, Serialize};

/// What the grant asks for: an OpenID token whose audience includes ZITADEL's own API.
const SCOPE: &str = "openid urn:zitadel:iam:org:project:id:zitadel:aud";
const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// How long an assertion is valid.
const ASSERTION_SECONDS: i64 = 60;
/// A cached token is not used in its last minute (a call may take that long).
const EXPIRY_MARGIN: i64 = 60;

/// A token as the store keeps it.
#[derive(Serialize, Deserialize)]
struct Cached {
    access_token: String,
    /// Unix seconds.
    expires: i64,
}

/// A bearer token, and whether it came from the store (and may be stale).
pub(super) struct Bearer {
    pub(super) token: String,
    pub(super) cached: bool,
}

fn cache_key(key_id: &str) -> String {
    format!("zitadel:service-token:{key_id}")
}

impl Zitadel<'_> {
    /// The token to call ZITADEL with; `fresh` skips the store (a cached one was refused).
    pub(super) fn bearer(&self, fresh: bool) -> Result<Bearer, Error> {
        let (key_id, user_id, key_pem) = match &self.settings.credentials {
            ServiceCredentials::Token(token) => {
                return Ok(Bearer {
                    token: token.clone(),
                    cached: false,
                });
            }
            ServiceCredentials::Key {
                key_id,
                user_id,
                key_pem,
            } => (key_id, user_id, key_pem),
        };
        let now = self.clock.now().seconds;
        let key = cache_key(key_id);
        if !fresh
            && let Ok(Some(bytes)) = self.kv.get(&key)
            && let Ok(cached) = serde_json::from_slice::<Cached>(&bytes)
            && now < cached.expires - EXPIRY_MARGIN
        {
            return Ok(Bearer {
                token: cached.access_token,
                cached: true,
            });
        }
        let (token, expires) = self.grant(self.settings, key_id, user_id, key_pem, now)?;
        let cached = Cached {
            access_token: token.clone(),
            expires,
        };
        // A token that cannot be cached is still good for this call.
        if let Ok(bytes) = serde_json::to_vec(&cached) {
            let _ = self.kv.set(&key, &bytes);
        }
        Ok(Bearer {
            token,
            cached: false,
        })
    }

    /// The JWT bearer grant: an assertion signed by the service user's key (`iss` = `sub` =
    /// the user's id, `aud` = the issuer) for an access token and its expiry.
    fn grant(
        &self,
        settings: &ZitadelSync,
        key_id: &str,
        user_id: &str,
        key_pem: &str,
        now: i64,
    ) -> Result<(String, i64), Error> {
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(key_pem.as_bytes())
            .map_err(|_| Error::config("ZITADEL_SERVICE_KEY", "holds no RSA private key in PEM"))?;
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        header.kid = Some(key_id.to_owned());
        let claims = serde_json::json!({
            "iss": user_id,
            "sub": user_id,
            "aud": settings.issuer,
            "iat": now,
            "exp": now + ASSERTION_SECONDS,
        });
        let assertion = jsonwebtoken::encode(&header, &claims, &key).map_err(|e| {
            Error::config(
                "ZITADEL_SERVICE_KEY",
                format!("could not sign an assertion: {e}"),
            )
        })?;
        let body: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", GRANT_TYPE)
            .append_pair("scope", SCOPE)
            .append_pair("assertion", &assertion)
            .finish();
        let request = Request {
            method: Method::Post,
            url: settings.token_url.clone(),
            headers: vec![
                (
                    "content-type".into(),
                    "application/x-www-form-urlencoded".into(),
                ),
                ("accept".into(), "application/json".into()),
            ],
            body: body.into_bytes(),
            timeout: super::CALL_TIMEOUT,
            max_answer_bytes: super::MAX_ANSWER_BYTES,
        };
        let answer = self
            .http
            .exchange(&request)
            .map_err(|failure| unavailable("token endpoint", &failure.to_string()))?;
        #[derive(Deserialize)]
        struct Granted {
            access_token: String,
            expires_in: Option<i64>,
        }
        match answer.status {
            200 => {
                let granted: Granted = serde_json::from_slice(&answer.body).map_err(|_| {
                    unavailable("token endpoint", "answered 200 without an access token")
                })?;
                let expires = now + granted.expires_in.unwrap_or(300).max(0);
                Ok((granted.access_token, expires))
            }
            status if status >= 500 || status == 429 => Err(unavailable(
                "token endpoint",
                &format!("answered HTTP {status}"),
            )),
            // invalid_grant, invalid_client: the key is wrong, gone or not the service user's.
            status => Err(Error::ZitadelDenied(format!(
                "the token endpoint refused the service user's key (HTTP {status}: {})",
                crate::log::scrub(&String::from_utf8_lossy(&answer.body), &[]),
            ))),
        }
    }

    /// Forgets a cached token ZITADEL refused.
    pub(super) fn forget_token(&self) {
        if let ServiceCredentials::Key { key_id, .. } = &self.settings.credentials {
            let _ = self.kv.delete(&cache_key(key_id));
        }
    }
}
