//! Bearer-token authentication, as ZITADEL's own API does it: JWTs verified against the issuer's
//! keys (inline, or discovered and cached in the key-value store), opaque tokens (ZITADEL's
//! default) through RFC 7662 introspection, and optionally JWTs introspected too so that revoked
//! ones are refused. Names the user (subject) and the user's organisation (resource owner).
//! What a check establishes is remembered for the token (`verified.rs`), so a token is checked
//! once, not on every request.

mod cache;
mod discovery;
mod fetch;
mod introspection;
mod jwt;
mod keys;
#[cfg(test)]
mod proptests;
mod rsa;
mod settings;
#[cfg(test)]
mod tests;
mod verified;

#[cfg(test)]
pub use settings::DEFAULT_RESOURCE_OWNER_CLAIM;
pub use settings::{AuthSettings, ClientAuth, KeySource};

// The signature step alone, for `bench/verify` (re-exported, hidden, at the crate root).
pub use jwt::{check_key_signature, check_signature, check_signature_with_library};
pub use keys::Key;

use crate::error::Error;
use crate::platform::{Clock, Http, Random};
use crate::store::KeyValue;
use serde_json::{Map, Value};
use verified::{Kind, TokenHash, Verified};

pub(crate) use keys::KeySet;

/// The authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub user_id: String,
    pub resource_owner: String,
    /// The OAuth client the token was issued to (`client_id`, else `azp`), for the audit trail.
    pub client_id: Option<String>,
    /// The user's preferred language (OpenID's `locale` claim), for the code SMS.
    pub locale: Option<String>,
}

/// What checking a token needs: the settings, the shared cache, and the way to the issuer.
pub struct Issuer<'a> {
    pub settings: &'a AuthSettings,
    pub kv: &'a dyn KeyValue,
    pub http: &'a dyn Http,
    pub clock: &'a dyn Clock,
    pub random: &'a dyn Random,
}

/// Checks the `authorization` header value and returns the caller it names.
pub fn authenticate(header: Option<&str>, issuer: &Issuer) -> Result<Principal, Error> {
    let header = header.ok_or(Error::AuthHeaderMissing)?;
    let token = match header.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            token.trim()
        }
        _ => return Err(Error::AuthHeaderInvalid),
    };
    match jsonwebtoken::decode_header(token) {
        Ok(header) => {
            let verified = verify_jwt(issuer, token, &header)?;
            if issuer.settings.check_revocation {
                introspection::introspect(issuer, token)?;
            }
            Ok(verified.into())
        }
        // Not a JWT: only the issuer can say what it is.
        Err(_) => introspection::introspect(issuer, token),
    }
}

/// Checks a JWT: remembered, while the key it names is the one that verified it; else verified
/// now and remembered.
fn verify_jwt(
    issuer: &Issuer,
    token: &str,
    header: &jsonwebtoken::Header,
) -> Result<Verified, Error> {
    let config = issuer.settings;
    let keys = keys::key_set(issuer, header.kid.as_deref())?;
    let key = jwt::select_key(header, &keys).map_err(Error::TokenInvalid)?;
    let now = issuer.clock.now();
    let hash = TokenHash::of(token);
    let settings = config.judged_by();
    let recalled = verified::recall(Kind::Signature, &hash, issuer.kv, settings, now.seconds)
        .and_then(Result::ok)
        .filter(|known| known.key.as_deref() == Some(key.thumbprint.as_str()));
    if let Some(known) = recalled {
        if verified::jwt_expired(known.exp, now.seconds) {
            return Err(Error::TokenInvalid("expired".into()));
        }
        return Ok(known);
    }
    #[cfg(test)]
    tests::count_signature_check();
    let claims = jwt::verify(token, header, &key, config, now).map_err(Error::TokenInvalid)?;
    let principal = principal(&claims, config)?;
    // `verify` made sure there is a finite `exp`; fractions of a second are dropped.
    let exp = claims
        .get("exp")
        .and_then(Value::as_f64)
        .map(|exp| exp.floor() as i64);
    let known = Verified {
        user_id: principal.user_id,
        resource_owner: principal.resource_owner,
        client_id: principal.client_id,
        locale: principal.locale,
        exp,
        key: Some(key.thumbprint.clone()),
    };
    if let Some(exp) = exp {
        let until = verified::jwt_until(exp, now.seconds);
        verified::remember(
            Kind::Signature,
            &hash,
            issuer.kv,
            settings.to_owned(),
            now.seconds,
            until,
            Ok(known.clone()),
        );
    }
    Ok(known)
}

/// Forgets everything this instance keeps between requests (tests: a fresh instance). Tests only:
/// outside them `auth` reads its own settings and never names `config`.
#[cfg(test)]
pub fn forget_instance() {
    verified::forget_instance();
    keys::forget_held();
    crate::config::forget_parsed();
}

/// The caller named by verified claims (a JWT's, or an introspection answer's).
fn principal(claims: &Map<String, Value>, config: &AuthSettings) -> Result<Principal, Error> {
    let user_id = match claims.get("sub") {
        Some(Value::String(sub)) if !sub.is_empty() => sub.clone(),
        _ => return Err(Error::TokenInvalid("no sub claim".into())),
    };
    let resource_owner = match claims.get(&config.resource_owner_claim) {
        Some(Value::String(owner)) if !owner.is_empty() => owner.clone(),
        Some(Value::Number(owner)) => owner.to_string(),
        _ => {
            return Err(Error::ResourceOwnerMissing(
                config.resource_owner_claim.clone(),
            ));
        }
    };
    let client_id = ["client_id", "azp"]
        .iter()
        .find_map(|name| claims.get(*name).and_then(Value::as_str))
        .filter(|id| !id.is_empty())
        .map(str::to_string);
    let locale = claims
        .get("locale")
        .and_then(Value::as_str)
        .filter(|locale| !locale.is_empty() && locale.len() <= 35)
        .map(str::to_string);
    Ok(Principal {
        user_id,
        resource_owner,
        client_id,
        locale,
    })
}

/// Whether `claims` name an accepted audience (always, when `AUTH_AUDIENCE` is not set).
fn audience_accepted(claims: &Map<String, Value>, config: &AuthSettings) -> bool {
    let Some(accepted) = &config.audiences else {
        return true;
    };
    let present: Vec<&str> = match claims.get("aud") {
        Some(Value::String(aud)) => vec![aud.as_str()],
        Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    present
        .iter()
        .any(|aud| accepted.iter().any(|ok| ok == aud))
}
