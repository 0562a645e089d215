//! JWT access tokens: signature (RS256, PS256, ES256, EdDSA), issuer, validity period and
//! audience, against a given key set.

use super::AuthSettings;
use super::audience_accepted;
use super::keys::{Key, KeySet};
use super::rsa;
use crate::time::Timestamp;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, RSAKeyParameters};
use jsonwebtoken::{Algorithm, DecodingKey, Header};
use serde_json::{Map, Value};
use std::rc::Rc;

/// Clock skew tolerated on `exp` and `nbf`.
pub const LEEWAY_SECONDS: i64 = 60;

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
        // jsonwebtoken slices the first 32 bytes of `x` and panics on fewer: a short key from a
        // broken or hostile JWKS would trap the component, so it fits nothing.
        (AlgorithmParameters::OctetKeyPair(okp), Algorithm::EdDSA) => {
            okp.curve == EllipticCurve::Ed25519
                && URL_SAFE_NO_PAD.decode(&okp.x).is_ok_and(|x| x.len() == 32)
        }
        _ => false,
    };
    let declared_fits = match jwk.common.key_algorithm {
        None => true,
        Some(declared) => declared.to_string() == format!("{alg:?}"),
    };
    kind_fits && declared_fits
}

/// The key a token with `header` must have been signed with: the one of its `kid` that fits its
/// algorithm, or without a `kid` the only key that fits. The error string is for the log only.
pub fn select_key(header: &Header, keys: &KeySet) -> Result<Rc<Key>, String> {
    if !accepted(header.alg) {
        return Err(format!("algorithm {:?} not accepted", header.alg));
    }
    let mut candidates: Vec<Rc<Key>> = keys
        .candidates(header.kid.as_deref())
        .into_iter()
        .filter(|key| key_fits(&key.jwk, header.alg))
        .collect();
    // Without a `kid` the choice must be unambiguous.
    match candidates.len() {
        1 => candidates.pop().ok_or_else(String::new),
        0 => Err(format!(
            "no key for kid {:?} and {:?}",
            header.kid, header.alg
        )),
        _ => Err("token has no kid and several keys fit".into()),
    }
}

/// Checks `token`'s signature by `jwk`, a key that fits `alg` (see [`key_fits`]): RS256 and
/// PS256 with the core's own RSA check (eight times cheaper in wasm than the `rsa` crate's), the
/// other algorithms through jsonwebtoken. The RSA key is prepared for this one check, as on a
/// fresh instance; [`check_key_signature`] prepares each held key once. The error string is for
/// the log only.
pub fn check_signature(token: &str, alg: Algorithm, jwk: &Jwk) -> Result<(), String> {
    match (rsa_check(alg), &jwk.algorithm) {
        (Some(check), AlgorithmParameters::RSA(components)) => {
            check_rsa(token, check, &rsa_key(components)?)
        }
        _ => check_signature_with_library(token, alg, jwk),
    }
}

/// [`check_signature`] by a key of the issuer's set, whose RSA form is prepared once.
pub fn check_key_signature(token: &str, alg: Algorithm, key: &Key) -> Result<(), String> {
    match (rsa_check(alg), key.rsa()) {
        (Some(check), Some(prepared)) => check_rsa(token, check, prepared?),
        _ => check_signature_with_library(token, alg, &key.jwk),
    }
}

type RsaCheck = fn(&rsa::PublicKey, &[u8], &[u8]) -> Result<(), String>;

/// The core's own check of `alg`, for the RSA algorithms it checks itself.
fn rsa_check(alg: Algorithm) -> Option<RsaCheck> {
    match alg {
        Algorithm::RS256 => Some(rsa::PublicKey::verify_rs256),
        Algorithm::PS256 => Some(rsa::PublicKey::verify_ps256),
        _ => None,
    }
}

fn check_rsa(token: &str, check: RsaCheck, key: &rsa::PublicKey) -> Result<(), String> {
    let (message, signature) = token.rsplit_once('.').ok_or("not a JWT")?;
    check(key, message.as_bytes(), &decode("signature", signature)?)
}

/// The RSA key of a JWK's `n` and `e`. The error string is for the log only.
pub fn rsa_key(components: &RSAKeyParameters) -> Result<rsa::PublicKey, String> {
    rsa::PublicKey::new(
        &decode("key n", &components.n)?,
        &decode("key e", &components.e)?,
    )
}

fn decode(what: &str, text: &str) -> Result<Vec<u8>, String> {
    URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|e| format!("{what}: {e}"))
}

/// `token`'s signature checked by jsonwebtoken, as every algorithm was before RSA had its own
/// check (`bench/verify` compares the two). The error string is for the log only.
pub fn check_signature_with_library(token: &str, alg: Algorithm, jwk: &Jwk) -> Result<(), String> {
    let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("key: {e}"))?;
    let (message, signature) = token.rsplit_once('.').ok_or("not a JWT")?;
    match jsonwebtoken::crypto::verify(signature, message.as_bytes(), &key, alg) {
        Ok(true) => Ok(()),
        Ok(false) => Err("verification: InvalidSignature".into()),
        Err(e) => Err(format!("verification: {e}")),
    }
}

/// Verifies signature (by `key`, from [`select_key`]), issuer, audience and validity period;
/// returns the claims. The error string is for the log only.
pub fn verify(
    token: &str,
    header: &Header,
    key: &Key,
    config: &AuthSettings,
    now: Timestamp,
) -> Result<Map<String, Value>, String> {
    if !accepted(header.alg) {
        return Err(format!("algorithm {:?} not accepted", header.alg));
    }
    check_key_signature(token, header.alg, key)?;
    // The signature holds, so the claims may be read; issuer, time and audience are checked
    // below, against our own settings and clock.
    let claims = jsonwebtoken::dangerous::insecure_decode::<Map<String, Value>>(token)
        .map_err(|e| format!("claims: {e}"))?
        .claims;

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
    if !audience_accepted(&claims, config) {
        return Err("audience not accepted".into());
    }
    Ok(claims)
}
