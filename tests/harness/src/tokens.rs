//! Test signing keys and access tokens: one key per accepted algorithm, published as a JWKS.
#![allow(
    clippy::expect_used,
    reason = "test keys and tokens: a failure to make one is the test's failure"
)]

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::traits::PublicKeyParts;
use serde_json::{Value, json};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

pub const ISSUER: &str = "https://issuer.test";
pub const RESOURCE_OWNER_CLAIM: &str = "urn:zitadel:iam:user:resourceowner:id";
pub const ORG: &str = "org-1";

pub struct Keys {
    rsa_der: Vec<u8>,
    ec_der: Vec<u8>,
    ed_der: Vec<u8>,
    /// A second RSA key that the service does not trust.
    foreign_rsa_der: Vec<u8>,
    pub jwks: String,
}

fn rsa_key() -> rsa::RsaPrivateKey {
    let mut rng = rand::thread_rng();
    rsa::RsaPrivateKey::new(&mut rng, 2048).expect("RSA key generation")
}

/// Keys are made once per test process (RSA generation takes a moment).
pub fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        use p256::pkcs8::EncodePrivateKey as _;
        let rsa = rsa_key();
        let ec = p256::SecretKey::random(&mut rand::thread_rng());
        let ed = ed25519_dalek::SigningKey::generate(&mut rand::thread_rng());
        let ec_point = p256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(&ec.public_key(), false);
        let jwks = json!({"keys": [
            {"kty": "RSA", "kid": "rsa", "use": "sig", "n": B64.encode(rsa.n().to_bytes_be()), "e": B64.encode(rsa.e().to_bytes_be())},
            {"kty": "EC", "kid": "ec", "crv": "P-256", "x": B64.encode(ec_point.x().expect("x")), "y": B64.encode(ec_point.y().expect("y"))},
            {"kty": "OKP", "kid": "ed", "crv": "Ed25519", "x": B64.encode(ed.verifying_key().to_bytes())},
        ]});
        Keys {
            rsa_der: rsa.to_pkcs1_der().expect("pkcs1").as_bytes().to_vec(),
            ec_der: ec.to_pkcs8_der().expect("pkcs8").as_bytes().to_vec(),
            ed_der: ed25519_dalek::pkcs8::EncodePrivateKey::to_pkcs8_der(&ed).expect("pkcs8").as_bytes().to_vec(),
            foreign_rsa_der: rsa_key().to_pkcs1_der().expect("pkcs1").as_bytes().to_vec(),
            jwks: jwks.to_string(),
        }
    })
}

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

/// Standard claims for `user` in `ORG`, valid for an hour.
pub fn claims(user: &str) -> Value {
    json!({"iss": ISSUER, "sub": user, "aud": ["client-1"], "iat": now(), "exp": now() + 3600,
           RESOURCE_OWNER_CLAIM: ORG})
}

pub fn sign(alg: Algorithm, kid: Option<&str>, claims: &Value) -> String {
    let keys = keys();
    let key = match alg {
        Algorithm::RS256 | Algorithm::PS256 => EncodingKey::from_rsa_der(&keys.rsa_der),
        Algorithm::ES256 => EncodingKey::from_ec_der(&keys.ec_der),
        Algorithm::EdDSA => EncodingKey::from_ed_der(&keys.ed_der),
        other => panic!("no test key for {other:?}"),
    };
    let mut header = Header::new(alg);
    header.kid = kid.map(String::from);
    jsonwebtoken::encode(&header, claims, &key).expect("signing")
}

/// A valid RS256 token for `user`.
pub fn token(user: &str) -> String {
    sign(Algorithm::RS256, Some("rsa"), &claims(user))
}

/// A valid RS256 token for `user` with `extra` claims (e.g. `{"locale": "de-CH"}`).
pub fn token_with(user: &str, extra: Value) -> String {
    let mut claims = claims(user);
    if let (Some(claims), Value::Object(extra)) = (claims.as_object_mut(), extra) {
        claims.extend(extra);
    }
    sign(Algorithm::RS256, Some("rsa"), &claims)
}

/// Signed by a key the service does not know, under the trusted key's id.
pub fn forged(user: &str) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("rsa".into());
    jsonwebtoken::encode(
        &header,
        &claims(user),
        &EncodingKey::from_rsa_der(&keys().foreign_rsa_der),
    )
    .expect("signing")
}

/// An HS256 token keyed with the RSA modulus text: the classic algorithm-confusion attack.
pub fn hmac_token(user: &str) -> String {
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("rsa".into());
    jsonwebtoken::encode(
        &header,
        &claims(user),
        &EncodingKey::from_secret(keys().jwks.as_bytes()),
    )
    .expect("signing")
}

/// `alg: none` with an empty signature.
pub fn unsigned(user: &str) -> String {
    let header = B64.encode(json!({"alg": "none", "typ": "JWT"}).to_string());
    let payload = B64.encode(claims(user).to_string());
    format!("{header}.{payload}.")
}
