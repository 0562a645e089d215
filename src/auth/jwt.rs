//! Bearer-token authentication: verifies a JWT access token against the configured issuer
//! keys and names the user (subject) and the user's organisation (resource owner).

use crate::config::Config;
use crate::error::Error;
use crate::time::Timestamp;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

/// Clock skew tolerated on `exp` and `nbf`.
const LEEWAY_SECONDS: i64 = 60;

/// The authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub user_id: String,
    pub resource_owner: String,
}

/// Checks the `authorization` header value and returns the caller it names.
pub fn authenticate(
    header: Option<&str>,
    config: &Config,
    now: Timestamp,
) -> Result<Principal, Error> {
    let header = header.ok_or(Error::AuthHeaderMissing)?;
    let token = match header.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            token.trim()
        }
        _ => return Err(Error::AuthHeaderInvalid),
    };
    let claims = verify(token, config, now).map_err(Error::TokenInvalid)?;
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
    Ok(Principal {
        user_id,
        resource_owner,
    })
}

/// Only asymmetric algorithms: an HMAC key would have to be shared with every verifier.
fn accepted(alg: Algorithm) -> bool {
    matches!(
        alg,
        Algorithm::RS256 | Algorithm::PS256 | Algorithm::ES256 | Algorithm::EdDSA
    )
}

/// Whether `jwk` is a key of the kind `alg` needs (the JWK's own `alg`, when given, must agree).
fn key_fits(jwk: &Jwk, alg: Algorithm) -> bool {
    let kind_fits = match (&jwk.algorithm, alg) {
        (AlgorithmParameters::RSA(_), Algorithm::RS256 | Algorithm::PS256) => true,
        (AlgorithmParameters::EllipticCurve(ec), Algorithm::ES256) => {
            ec.curve == EllipticCurve::P256
        }
        (AlgorithmParameters::OctetKeyPair(okp), Algorithm::EdDSA) => {
            okp.curve == EllipticCurve::Ed25519
        }
        _ => false,
    };
    let declared_fits = match jwk.common.key_algorithm {
        None => true,
        Some(declared) => declared.to_string() == format!("{alg:?}"),
    };
    kind_fits && declared_fits
}

/// Verifies signature, issuer, audience and validity period; returns the claims.
/// The error string is for the log only.
fn verify(token: &str, config: &Config, now: Timestamp) -> Result<Map<String, Value>, String> {
    let header = jsonwebtoken::decode_header(token).map_err(|e| format!("header: {e}"))?;
    if !accepted(header.alg) {
        return Err(format!("algorithm {:?} not accepted", header.alg));
    }
    let candidates: Vec<&Jwk> = config
        .jwks
        .keys
        .iter()
        .filter(|jwk| match (&header.kid, &jwk.common.key_id) {
            (Some(kid), Some(key_id)) => kid == key_id,
            (Some(_), None) => false,
            (None, _) => true,
        })
        .filter(|jwk| key_fits(jwk, header.alg))
        .collect();
    // Without a `kid` the choice must be unambiguous.
    let jwk = match candidates.as_slice() {
        [jwk] => *jwk,
        [] => {
            return Err(format!(
                "no key for kid {:?} and {:?}",
                header.kid, header.alg
            ));
        }
        _ => return Err("token has no kid and several keys fit".into()),
    };
    let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("key: {e}"))?;

    // Time and audience are checked below against our own clock, not the library's.
    let mut validation = Validation::new(header.alg);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.set_issuer(&[config.issuer.as_str()]);
    let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation)
        .map_err(|e| format!("verification: {e}"))?;
    let claims = data.claims;

    if claims.get("iss").and_then(Value::as_str) != Some(config.issuer.as_str()) {
        return Err("wrong or missing iss".into());
    }
    let exp = claims
        .get("exp")
        .and_then(Value::as_f64)
        .ok_or("missing exp")?;
    if (now.seconds as f64) > exp + LEEWAY_SECONDS as f64 {
        return Err("expired".into());
    }
    if let Some(nbf) = claims.get("nbf") {
        let nbf = nbf.as_f64().ok_or("nbf is not a number")?;
        if (now.seconds as f64) + (LEEWAY_SECONDS as f64) < nbf {
            return Err("not yet valid".into());
        }
    }
    if let Some(accepted) = &config.audiences {
        let present: Vec<&str> = match claims.get("aud") {
            Some(Value::String(aud)) => vec![aud.as_str()],
            Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        if !present
            .iter()
            .any(|aud| accepted.iter().any(|ok| ok == aud))
        {
            return Err("audience not accepted".into());
        }
    }
    Ok(claims)
}
