//! Development mode: the host makes a throwaway signing key (Ed25519, or RSA-2048 for RS256 as
//! ZITADEL signs by default), trusts it, and hands out ready access tokens, so the service can be
//! tried and benchmarked without an identity provider.
//! Never on by default: anyone with a printed token is that development user.

use anyhow::Context as _;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::pkcs8::EncodePrivateKey as _;
use rsa::pkcs1::EncodeRsaPrivateKey as _;
use rsa::traits::PublicKeyParts as _;
use serde_json::{Value, json};
use std::time::{SystemTime, UNIX_EPOCH};

pub const DEV_USER: &str = "dev-user";
pub const DEV_ORG: &str = "dev-org";
const TOKEN_LIFETIME_SECONDS: u64 = 24 * 3600;
/// The key id in the tokens' headers and the JWKS.
const KEY_ID: &str = "dev";
/// RS256 keys as ZITADEL makes them.
const RSA_BITS: usize = 2048;

/// The signature algorithm of the development tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Algorithm {
    /// Ed25519 signatures: small keys, cheap to verify.
    #[default]
    #[value(name = "EdDSA")]
    EdDsa,
    /// RSA-2048 with SHA-256 (PKCS#1 v1.5): ZITADEL's default for access tokens.
    #[value(name = "RS256")]
    Rs256,
}

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

/// A development identity with one EdDSA token, for `DEV_USER`.
pub fn identity(issuer: &str) -> anyhow::Result<DevIdentity> {
    identity_for(issuer, &[DEV_USER.to_owned()], Algorithm::EdDsa)
}

/// A throwaway signing key: the public half as a JWK, the private half for signing.
struct Key {
    jwk: Value,
    encoding: jsonwebtoken::EncodingKey,
    algorithm: jsonwebtoken::Algorithm,
}

impl Key {
    fn generate(algorithm: Algorithm) -> anyhow::Result<Self> {
        match algorithm {
            Algorithm::EdDsa => {
                let key = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
                let der = key.to_pkcs8_der().context("encoding the development key")?;
                Ok(Self {
                    jwk: json!({
                        "kty": "OKP", "crv": "Ed25519", "kid": KEY_ID, "use": "sig", "alg": "EdDSA",
                        "x": URL_SAFE_NO_PAD.encode(key.verifying_key().to_bytes()),
                    }),
                    encoding: jsonwebtoken::EncodingKey::from_ed_der(der.as_bytes()),
                    algorithm: jsonwebtoken::Algorithm::EdDSA,
                })
            }
            Algorithm::Rs256 => {
                let key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, RSA_BITS)
                    .context("making the development RSA key")?;
                let der = key.to_pkcs1_der().context("encoding the development key")?;
                Ok(Self {
                    jwk: json!({
                        "kty": "RSA", "kid": KEY_ID, "use": "sig", "alg": "RS256",
                        "n": URL_SAFE_NO_PAD.encode(key.n().to_bytes_be()),
                        "e": URL_SAFE_NO_PAD.encode(key.e().to_bytes_be()),
                    }),
                    encoding: jsonwebtoken::EncodingKey::from_rsa_der(der.as_bytes()),
                    algorithm: jsonwebtoken::Algorithm::RS256,
                })
            }
        }
    }
}

/// A development identity with a token for each of `users` (all in `DEV_ORG`), signed with a new
/// key of `algorithm`.
pub fn identity_for(
    issuer: &str,
    users: &[String],
    algorithm: Algorithm,
) -> anyhow::Result<DevIdentity> {
    let key = Key::generate(algorithm)?;
    let jwks = json!({ "keys": [key.jwk] });
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("system clock before 1970")?
        .as_secs();
    let mut header = jsonwebtoken::Header::new(key.algorithm);
    header.kid = Some(KEY_ID.into());
    let tokens = users
        .iter()
        .map(|user| {
            let claims = json!({
                "iss": issuer, "sub": user, "iat": now, "exp": now + TOKEN_LIFETIME_SECONDS,
                "urn:zitadel:iam:user:resourceowner:id": DEV_ORG,
            });
            jsonwebtoken::encode(&header, &claims, &key.encoding)
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
         Or open {base_url}/ in a browser. Codes sent by SMS are printed below.\n"
    )
}

/// The "set my phone" screen (`web/index.html`) signed in as the development user: what
/// `serve --dev` answers `GET /` with.
pub fn page(token: &str) -> String {
    // The token is base64url and dots: nothing to escape in an attribute.
    include_str!("../../web/index.html").replace(
        r#"<meta name="set-my-phone-token" content="">"#,
        &format!(r#"<meta name="set-my-phone-token" content="{token}">"#),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(identity: &'a DevIdentity, name: &str) -> &'a str {
        identity
            .env
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .expect(name)
    }

    /// The token's header, decoded without checking the signature.
    fn header(token: &str) -> Value {
        let segment = token.split('.').next().expect("a JWT");
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(segment).expect("base64url")).expect("JSON")
    }

    /// The claims of `identity`'s tokens, each verified against the JWKS `trusted` printed with
    /// `jsonwebtoken`'s own JWK decoding (independent of how the key was made).
    fn verified_claims(
        identity: &DevIdentity,
        trusted: &DevIdentity,
        alg: jsonwebtoken::Algorithm,
    ) -> jsonwebtoken::errors::Result<Vec<Value>> {
        let jwks: jsonwebtoken::jwk::JwkSet =
            serde_json::from_str(env(trusted, "AUTH_JWKS")).expect("AUTH_JWKS is a JWKS");
        assert_eq!(jwks.keys.len(), 1);
        let key = jsonwebtoken::DecodingKey::from_jwk(&jwks.keys[0])?;
        let mut validation = jsonwebtoken::Validation::new(alg);
        validation.set_issuer(&[env(trusted, "AUTH_ISSUER")]);
        validation.validate_aud = false;
        identity
            .tokens
            .iter()
            .map(|token| Ok(jsonwebtoken::decode::<Value>(token, &key, &validation)?.claims))
            .collect()
    }

    #[test]
    fn both_algorithms_sign_tokens_the_printed_jwks_verifies() {
        let users: Vec<String> = ["a", "b"].map(String::from).to_vec();
        for (algorithm, alg) in [
            (Algorithm::EdDsa, jsonwebtoken::Algorithm::EdDSA),
            (Algorithm::Rs256, jsonwebtoken::Algorithm::RS256),
        ] {
            let identity =
                identity_for("https://dev.invalid", &users, algorithm).expect("identity");
            let claims = verified_claims(&identity, &identity, alg).expect("the tokens verify");
            let subjects: Vec<&str> = claims.iter().filter_map(|c| c["sub"].as_str()).collect();
            assert_eq!(subjects, ["a", "b"], "{algorithm:?}");
            for claim in &claims {
                assert_eq!(claim["urn:zitadel:iam:user:resourceowner:id"], DEV_ORG);
            }
            for token in &identity.tokens {
                assert_eq!(header(token)["alg"], format!("{alg:?}"), "{algorithm:?}");
                assert_eq!(header(token)["kid"], KEY_ID);
            }
        }
    }

    #[test]
    fn rs256_keys_are_rsa_2048() {
        let identity = identity_for(
            "https://dev.invalid",
            &[DEV_USER.to_owned()],
            Algorithm::Rs256,
        )
        .expect("identity");
        let jwks: Value = serde_json::from_str(env(&identity, "AUTH_JWKS")).expect("JSON");
        let key = &jwks["keys"][0];
        assert_eq!(
            (key["kty"].as_str(), key["alg"].as_str()),
            (Some("RSA"), Some("RS256"))
        );
        let n = URL_SAFE_NO_PAD
            .decode(key["n"].as_str().expect("n"))
            .expect("base64url");
        assert_eq!(n.len() * 8, RSA_BITS);
        assert_eq!(key["e"], "AQAB", "the public exponent 65537");
    }

    #[test]
    fn a_token_of_one_identity_does_not_verify_with_another() {
        let users = [DEV_USER.to_owned()];
        let first = identity_for("https://dev.invalid", &users, Algorithm::Rs256).expect("RS256");
        let second = identity_for("https://dev.invalid", &users, Algorithm::Rs256).expect("RS256");
        assert!(verified_claims(&first, &first, jsonwebtoken::Algorithm::RS256).is_ok());
        assert!(verified_claims(&first, &second, jsonwebtoken::Algorithm::RS256).is_err());
    }
}
