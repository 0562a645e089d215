//! Development mode: the host makes a throwaway Ed25519 signing key, trusts it, and hands out
//! a ready access token, so the service can be tried without an identity provider.
//! Never on by default: anyone with the printed token is the development user.

use anyhow::Context as _;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::pkcs8::EncodePrivateKey as _;
use serde_json::json;
use std::time::{SystemTime, UNIX_EPOCH};

pub const DEV_USER: &str = "dev-user";
pub const DEV_ORG: &str = "dev-org";
const TOKEN_LIFETIME_SECONDS: u64 = 24 * 3600;

/// Settings that make the component trust the development key, and tokens signed with it.
pub struct DevIdentity {
    pub env: Vec<(String, String)>,
    /// One token per requested user, in order; the first is `DEV_USER`'s in `identity`.
    pub tokens: Vec<String>,
}

impl DevIdentity {
    pub fn token(&self) -> &str {
        self.tokens.first().map(String::as_str).unwrap_or_default()
    }
}

/// A development identity with one token, for `DEV_USER`.
pub fn identity(issuer: &str) -> anyhow::Result<DevIdentity> {
    identity_for(issuer, &[DEV_USER.to_owned()])
}

/// A development identity with a token for each of `users` (all in `DEV_ORG`).
pub fn identity_for(issuer: &str, users: &[String]) -> anyhow::Result<DevIdentity> {
    let key = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
    let jwks = json!({"keys": [{
        "kty": "OKP", "crv": "Ed25519", "kid": "dev", "use": "sig", "alg": "EdDSA",
        "x": URL_SAFE_NO_PAD.encode(key.verifying_key().to_bytes()),
    }]});
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("system clock before 1970")?
        .as_secs();
    let der = key.to_pkcs8_der().context("encoding the development key")?;
    let signing_key = jsonwebtoken::EncodingKey::from_ed_der(der.as_bytes());
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
    header.kid = Some("dev".into());
    let tokens = users
        .iter()
        .map(|user| {
            let claims = json!({
                "iss": issuer, "sub": user, "iat": now, "exp": now + TOKEN_LIFETIME_SECONDS,
                "urn:zitadel:iam:user:resourceowner:id": DEV_ORG,
            });
            jsonwebtoken::encode(&header, &claims, &signing_key)
                .context("signing a development token")
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut secret = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut secret);
    let env = vec![
        ("AUTH_ISSUER".to_owned(), issuer.to_owned()),
        ("AUTH_JWKS".to_owned(), jwks.to_string()),
        ("PHONE_CODE_SECRET".to_owned(), hex::encode(secret)),
    ];
    Ok(DevIdentity { env, tokens })
}

/// What to tell the developer at start-up.
pub fn instructions(base_url: &str, token: &str) -> String {
    format!(
        "\nDEVELOPMENT MODE: trusting a throwaway key; this token acts as user {DEV_USER} of org {DEV_ORG} for 24 h.\n\
         Try:\n\
         \x20 TOKEN={token}\n\
         \x20 curl -s -X PUT {base_url}/auth/v1/users/me/phone -H \"authorization: Bearer $TOKEN\" \
         -H 'content-type: application/json' -d '{{\"phone\":\"+41 71 000 00 00\"}}'\n\
         \x20 curl -s {base_url}/auth/v1/users/me/phone -H \"authorization: Bearer $TOKEN\"\n\
         Codes sent by SMS are printed below.\n"
    )
}
