//! Property tests of the `authorization` header and of JWT header and payload parsing, through
//! `authenticate` (which decodes the token's segments and hands them to `jwt::verify`). Tokens
//! are assembled here by hand: JSON text, base64url segments, and an Ed25519 signature over them
//! with RFC 8037's example key.

use super::{Issuer, Principal, authenticate};
use crate::config::Config;
use crate::error::Error;
use crate::proptest_support::{assert_documented, config, json_string, mutated};
use crate::test_support::CountingRandom;
use crate::test_support::{FixedClock, MemoryKv, NoIssuer};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use proptest::prelude::*;
use std::cell::Cell;

const ISSUER: &str = "https://issuer.test";
const OWNER_CLAIM: &str = "urn:zitadel:iam:user:resourceowner:id";
const NOW: i64 = 1_800_000_000;
/// RFC 8037 appendix A.1/A.2: the Ed25519 key pair (d, x).
const SEED: &str = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A";
const PUBLIC: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";

fn test_config() -> Config {
    Config::from_lookup(|name| match name {
        "AUTH_ISSUER" => Some(ISSUER.into()),
        "AUTH_JWKS" => Some(format!(
            r#"{{"keys":[{{"kty":"OKP","crv":"Ed25519","kid":"k","x":"{PUBLIC}"}}]}}"#
        )),
        _ => None,
    })
    .expect("the test configuration is valid")
}

/// Runs `authenticate` on `header` with inline keys, no introspection client and no network.
fn check(header: Option<&str>) -> Result<Principal, Error> {
    let (config, kv, clock, random) = (
        test_config(),
        MemoryKv::default(),
        FixedClock::at(NOW),
        CountingRandom(Cell::new(0)),
    );
    let issuer = Issuer {
        settings: &config.auth,
        kv: &kv,
        http: &NoIssuer,
        clock: &clock,
        random: &random,
    };
    authenticate(header, &issuer)
}

/// `header.payload.signature` for two JSON texts, signed with the RFC 8037 key.
fn sign(header_json: &str, payload_json: &str) -> String {
    // PKCS#8 wrapping of an Ed25519 seed (RFC 8410): a fixed 16-byte prefix, then the seed.
    let mut der = hex::decode("302e020100300506032b657004220420").unwrap_or_default();
    der.extend(URL_SAFE_NO_PAD.decode(SEED).unwrap_or_default());
    let key = jsonwebtoken::EncodingKey::from_ed_der(&der);
    let message = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header_json),
        URL_SAFE_NO_PAD.encode(payload_json)
    );
    let signature =
        jsonwebtoken::crypto::sign(message.as_bytes(), &key, jsonwebtoken::Algorithm::EdDSA)
            .expect("the RFC 8037 key signs");
    format!("{message}.{signature}")
}

fn claims_json(sub: &str, owner: &str) -> String {
    format!(
        r#"{{"iss":{},"sub":{},{}:{},"exp":{}}}"#,
        json_string(ISSUER, false),
        json_string(sub, false),
        json_string(OWNER_CLAIM, false),
        json_string(owner, false),
        NOW + 300
    )
}

fn valid_token() -> String {
    sign(
        r#"{"alg":"EdDSA","kid":"k"}"#,
        &claims_json("user-1", "org-1"),
    )
}

/// Runs `authenticate` on `header` with the test RSA key "a" (`testdata/`, made with `openssl
/// genrsa`) as the issuer's only key.
fn check_rs256(header: &str) -> Result<Principal, Error> {
    let config = Config::from_lookup(|name| match name {
        "AUTH_ISSUER" => Some(ISSUER.into()),
        "AUTH_JWKS" => Some(format!(
            r#"{{"keys":[{}]}}"#,
            include_str!("testdata/rsa-a.jwk.json")
        )),
        _ => None,
    })
    .expect("the test configuration is valid");
    let (kv, clock, random) = (
        MemoryKv::default(),
        FixedClock::at(NOW),
        CountingRandom(Cell::new(0)),
    );
    let issuer = Issuer {
        settings: &config.auth,
        kv: &kv,
        http: &NoIssuer,
        clock: &clock,
        random: &random,
    };
    authenticate(Some(header), &issuer)
}

/// An RS256 token signed by `openssl dgst -sha256 -sign` with key "a": header
/// `{"alg":"RS256","kid":"a","typ":"JWT"}`, claims `claims_json("user-1", "org-1")`.
const RS256_TOKEN: &str = include_str!("testdata/rsa-a.openssl.jwt");

fn header_refusal(e: &Error) -> bool {
    matches!(e, Error::AuthHeaderMissing | Error::AuthHeaderInvalid)
}
fn token_refusal(e: &Error) -> bool {
    matches!(e, Error::TokenInvalid(_) | Error::ResourceOwnerMissing(_))
}

/// A JSON value for a claim or header field, or nothing at all.
fn json_value() -> impl Strategy<Value = Option<String>> {
    proptest::option::of(prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        (NOW - 200..NOW + 200).prop_map(|n| n.to_string()),
        (-1e3f64..1e3).prop_map(|f| format!("{}", NOW as f64 + f)),
        Just("1e300".to_string()),
        Just("-1e300".to_string()),
        any::<bool>().prop_map(|b| b.to_string()),
        Just("null".to_string()),
        Just("[]".to_string()),
        Just(format!("[{}]", json_string(ISSUER, false))),
        "[ -~]{0,12}".prop_map(|s| json_string(&s, false)),
        Just(json_string(ISSUER, false)),
        Just(json_string("", false)),
    ])
}

fn object(fields: &[(&str, &Option<String>)]) -> String {
    let inner: Vec<String> = fields
        .iter()
        .filter_map(|(name, value)| {
            value
                .as_ref()
                .map(|v| format!("{}:{v}", json_string(name, false)))
        })
        .collect();
    format!("{{{}}}", inner.join(","))
}

/// What the rules of docs/configuration.md "Authentication" say about claims, decided here from the JSON
/// values themselves: `Some(principal)` when the token must be accepted.
fn expected(
    alg: &Option<String>,
    kid: &Option<String>,
    claims: &serde_json::Map<String, serde_json::Value>,
) -> Option<Principal> {
    use serde_json::Value;
    let text = |v: &Option<String>| {
        v.as_ref()
            .and_then(|v| serde_json::from_str::<Value>(v).ok())
    };
    if text(alg) != Some(Value::String("EdDSA".into())) {
        return None;
    }
    match text(kid) {
        None | Some(Value::Null) => {}
        Some(Value::String(kid)) if kid == "k" => {}
        _ => return None,
    }
    if claims.get("iss") != Some(&Value::String(ISSUER.into())) {
        return None;
    }
    let exp = claims.get("exp").and_then(Value::as_f64)?;
    if NOW as f64 > exp + 60.0 {
        return None;
    }
    if let Some(nbf) = claims.get("nbf")
        && NOW as f64 + 60.0 < nbf.as_f64()?
    {
        return None;
    }
    let user_id = claims
        .get("sub")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())?;
    let resource_owner = match claims.get(OWNER_CLAIM)? {
        Value::String(owner) if !owner.is_empty() => owner.clone(),
        Value::Number(owner) => owner.to_string(),
        _ => return None,
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
    Some(Principal {
        user_id: user_id.into(),
        resource_owner,
        client_id,
        locale,
    })
}

proptest! {
    #![proptest_config(config(256))]

    // --- the authorization header ---

    #[test]
    fn any_header_is_refused_as_documented(
        header in proptest::option::of(prop_oneof![
            any::<String>(),
            "[ -~]{0,60}",
            "(Bearer|bearer|BEARER|Basic|Token) ?[ -~]{0,60}",
            "Bearer [A-Za-z0-9_\\-]{1,30}\\.[A-Za-z0-9_\\-]{0,30}\\.[A-Za-z0-9_\\-]{0,30}",
        ]),
    ) {
        let result = check(header.as_deref());
        let error = result.expect_err("no header without a signed token can pass");
        assert_documented(&error, &[header_refusal, token_refusal])?;
        prop_assert_eq!(header.is_none(), error == Error::AuthHeaderMissing);
    }

    #[test]
    fn headers_that_are_not_bearer_credentials_are_invalid(
        scheme in "[A-Za-z]{0,8}".prop_filter("not bearer", |s| !s.eq_ignore_ascii_case("bearer")),
        separator in "[ ]{0,2}",
        credentials in "[ -~]{0,40}",
    ) {
        // RFC 6750: `Bearer` (any case) 1*SP token; any other scheme, or none, is refused.
        let header = format!("{scheme}{separator}{credentials}");
        prop_assume!(!header.to_ascii_lowercase().starts_with("bearer "));
        prop_assert_eq!(check(Some(&header)), Err(Error::AuthHeaderInvalid));
    }

    #[test]
    fn bearer_headers_round_trip(
        scheme in "[Bb][Ee][Aa][Rr][Ee][Rr]",
        spaces in "[ ]{1,3}",
        trailing in "[ ]{0,2}",
        sub in any::<String>().prop_filter("non-empty", |s| !s.is_empty()),
        owner in prop_oneof![any::<String>(), "[0-9]{18}"].prop_filter("non-empty", |s| !s.is_empty()),
    ) {
        let token = sign(r#"{"alg":"EdDSA","kid":"k","typ":"JWT"}"#, &claims_json(&sub, &owner));
        let header = format!("{scheme}{spaces}{token}{trailing}");
        prop_assert_eq!(
            check(Some(&header)),
            Ok(Principal { user_id: sub, resource_owner: owner, client_id: None, locale: None })
        );
    }

    #[test]
    fn mutated_tokens_are_refused_or_unchanged(
        token in mutated(valid_token().into_bytes()),
    ) {
        let header = format!("Bearer {}", String::from_utf8_lossy(&token));
        match check(Some(&header)) {
            // Only a token that still carries the signed header and claims may pass.
            Ok(principal) => prop_assert_eq!(
                principal,
                Principal { user_id: "user-1".into(), resource_owner: "org-1".into(), client_id: None, locale: None }
            ),
            Err(error) => assert_documented(&error, &[header_refusal, token_refusal])?,
        }
    }

    #[test]
    fn mutated_rs256_tokens_are_refused_or_unchanged(
        token in mutated(RS256_TOKEN.trim().as_bytes().to_vec()),
    ) {
        let header = format!("Bearer {}", String::from_utf8_lossy(&token));
        match check_rs256(&header) {
            Ok(principal) => prop_assert_eq!(
                principal,
                Principal { user_id: "user-1".into(), resource_owner: "org-1".into(), client_id: None, locale: None }
            ),
            Err(error) => assert_documented(&error, &[header_refusal, token_refusal])?,
        }
    }

    // --- JWT header and payload ---

    #[test]
    fn signed_tokens_pass_exactly_when_their_header_and_claims_do(
        alg in proptest::option::of(prop_oneof![
            proptest::sample::select(vec!["EdDSA", "RS256", "ES256", "HS256", "none", "eddsa"])
                .prop_map(|a| json_string(a, false)),
            Just("7".to_string()),
        ]),
        kid in proptest::option::of(prop_oneof![
            Just(json_string("k", false)),
            Just(json_string("other", false)),
            Just("null".to_string()),
            Just("1".to_string()),
        ]),
        typ in json_value(),
        iss in json_value(),
        sub in json_value(),
        owner in json_value(),
        exp in json_value(),
        nbf in json_value(),
        aud in json_value(),
    ) {
        let header = object(&[("alg", &alg), ("kid", &kid), ("typ", &typ)]);
        let payload = object(&[
            ("iss", &iss),
            ("sub", &sub),
            (OWNER_CLAIM, &owner),
            ("exp", &exp),
            ("nbf", &nbf),
            ("aud", &aud),
        ]);
        let claims: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&payload).unwrap_or_default();
        let got = check(Some(&format!("Bearer {}", sign(&header, &payload))));
        match expected(&alg, &kid, &claims) {
            Some(principal) => prop_assert_eq!(got, Ok(principal), "{} {}", header, payload),
            None => {
                let error = got.expect_err("the rules refuse this token");
                assert_documented(&error, &[token_refusal])?;
            }
        }
    }

    #[test]
    fn segments_of_any_bytes_are_refused_as_invalid_tokens(
        header in proptest::collection::vec(any::<u8>(), 0..48),
        payload in proptest::collection::vec(any::<u8>(), 0..48),
        signature in proptest::collection::vec(any::<u8>(), 0..70),
    ) {
        let token = format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(&header),
            URL_SAFE_NO_PAD.encode(&payload),
            URL_SAFE_NO_PAD.encode(&signature)
        );
        let error = check(Some(&format!("Bearer {token}"))).expect_err("unsigned");
        assert_documented(&error, &[token_refusal])?;
    }
}

/// An issuer's Ed25519 key whose `x` is not 32 bytes (a broken or hostile JWKS) must make the
/// token invalid, not trap the component.
#[test]
fn a_short_ed25519_key_refuses_the_token() {
    let (kv, clock, random) = (
        MemoryKv::default(),
        FixedClock::at(NOW),
        CountingRandom(Cell::new(0)),
    );
    for x in ["", "AAAA", &PUBLIC[..20]] {
        let config = Config::from_lookup(|name| match name {
            "AUTH_ISSUER" => Some(ISSUER.into()),
            "AUTH_JWKS" => Some(format!(
                r#"{{"keys":[{{"kty":"OKP","crv":"Ed25519","kid":"k","x":"{x}"}}]}}"#
            )),
            _ => None,
        })
        .expect("the test configuration is valid");
        let issuer = Issuer {
            settings: &config.auth,
            kv: &kv,
            http: &NoIssuer,
            clock: &clock,
            random: &random,
        };
        let header = format!("Bearer {}", valid_token());
        let result = authenticate(Some(&header), &issuer);
        assert!(
            matches!(result, Err(Error::TokenInvalid(_))),
            "{x:?}: {result:?}"
        );
    }
}

/// openssl's RS256 token passes; with its header saying PS256, or naming another algorithm
/// that the RSA key could fit, the same signature is refused.
#[test]
fn an_rs256_signature_passes_as_rs256_only() {
    let token = RS256_TOKEN.trim();
    assert_eq!(
        check_rs256(&format!("Bearer {token}")),
        Ok(Principal {
            user_id: "user-1".into(),
            resource_owner: "org-1".into(),
            client_id: None,
            locale: None
        })
    );
    let (_, rest) = token.split_once('.').expect("three segments");
    for alg in ["PS256", "RS384", "RS512", "PS512"] {
        let header = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"{alg}","kid":"a","typ":"JWT"}}"#));
        let result = check_rs256(&format!("Bearer {header}.{rest}"));
        assert!(
            matches!(result, Err(Error::TokenInvalid(_))),
            "{alg}: {result:?}"
        );
    }
}

/// A JWKS key of the given kind with `kid` "k" and the given raw components.
fn jwk(kind: u8, a: &[u8], b: &[u8]) -> (String, &'static str) {
    let (a, b) = (URL_SAFE_NO_PAD.encode(a), URL_SAFE_NO_PAD.encode(b));
    match kind {
        0 => (
            format!(r#"{{"kty":"OKP","crv":"Ed25519","kid":"k","x":"{a}"}}"#),
            "EdDSA",
        ),
        1 => (
            format!(r#"{{"kty":"EC","crv":"P-256","kid":"k","x":"{a}","y":"{b}"}}"#),
            "ES256",
        ),
        _ => (
            format!(r#"{{"kty":"RSA","kid":"k","n":"{a}","e":"{b}"}}"#),
            "RS256",
        ),
    }
}

proptest! {
    #![proptest_config(config(256))]

    /// Keys come from the issuer (fetched) or the configuration; whatever their bytes, a token
    /// naming them is checked or refused, never a trap.
    #[test]
    fn keys_of_any_bytes_refuse_tokens_without_panicking(
        kind in 0u8..3,
        a in proptest::collection::vec(any::<u8>(), 0..72),
        b in proptest::collection::vec(any::<u8>(), 0..40),
        signature in proptest::collection::vec(any::<u8>(), 0..80),
    ) {
        let (key, alg) = jwk(kind, &a, &b);
        let config = Config::from_lookup(|name| match name {
            "AUTH_ISSUER" => Some(ISSUER.into()),
            "AUTH_JWKS" => Some(format!(r#"{{"keys":[{key}]}}"#)),
            _ => None,
        });
        // A JWKS the configuration itself refuses is a configuration error, reported as such.
        let Ok(config) = config else { return Ok(()) };
        let (kv, clock, random) = (MemoryKv::default(), FixedClock::at(NOW), CountingRandom(Cell::new(0)));
        let issuer = Issuer { settings: &config.auth, kv: &kv, http: &NoIssuer, clock: &clock, random: &random };
        let token = format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"{alg}","kid":"k"}}"#)),
            URL_SAFE_NO_PAD.encode(claims_json("user-1", "org-1")),
            URL_SAFE_NO_PAD.encode(&signature)
        );
        let error = authenticate(Some(&format!("Bearer {token}")), &issuer).expect_err("not signed by that key");
        assert_documented(&error, &[token_refusal])?;
    }
}
