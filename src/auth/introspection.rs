//! RFC 7662 token introspection: how opaque tokens (ZITADEL's default) are checked, and JWTs too
//! with `AUTH_CHECK_REVOCATION`. The service authenticates as `client_secret_basic` or
//! `private_key_jwt` (ZITADEL's application key). What an answer establishes is remembered
//! (`verified.rs`: in the instance and the key-value store, under the SHA-256 of the token, never
//! the token): for active tokens until `min(exp, AUTH_INTROSPECTION_CACHE)`, for inactive ones
//! [`INACTIVE_CACHE_SECONDS`].

use super::verified::{self, Kind, Refusal, TokenHash, Verdict, Verified};
use super::{AuthSettings, ClientAuth};
use super::{Issuer, Principal, audience_accepted, discovery, fetch, principal};
use crate::error::Error;
use crate::platform::Method;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value};
use set_my_phone_outgoing_http::form;

/// How long a refusal is remembered: short, so that a token that just became valid (clock skew
/// between issuer and client) is not refused for long, yet long enough to absorb retries.
pub const INACTIVE_CACHE_SECONDS: i64 = 10;
/// Lifetime of a `private_key_jwt` client assertion (ZITADEL wants at most a minute).
const ASSERTION_SECONDS: i64 = 50;
const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The issuer's introspection answer: whether the token is active, and its claims.
struct Answer {
    active: bool,
    claims: Map<String, Value>,
}

/// Asks the issuer (or the cache) about `token`; an inactive token is `TokenInvalid`.
pub fn introspect(issuer: &Issuer, token: &str) -> Result<Principal, Error> {
    let config = issuer.settings;
    let Some(client) = &config.client else {
        return Err(Error::TokenInvalid(
            "not a JWT, and no introspection client is configured (AUTH_CLIENT_ID/AUTH_CLIENT_SECRET or AUTH_CLIENT_KEY)"
                .into(),
        ));
    };
    let now = issuer.clock.now().seconds;
    let hash = TokenHash::of(token);
    let settings = config.judged_by();
    let verdict = match verified::recall(Kind::Introspection, &hash, issuer.kv, settings, now) {
        Some(verdict) => verdict,
        None => {
            let answer = ask(issuer, client, token, now)?;
            let until = if answer.active {
                let exp = answer.claims.get("exp").and_then(Value::as_i64);
                let limit = now.saturating_add(
                    i64::try_from(config.introspection_cache_seconds).unwrap_or(i64::MAX),
                );
                exp.map_or(limit, |exp| exp.min(limit))
            } else {
                now + INACTIVE_CACHE_SECONDS
            };
            let verdict = judge(&answer, config, now);
            verified::remember(
                Kind::Introspection,
                &hash,
                issuer.kv,
                settings.to_owned(),
                now,
                until,
                verdict.clone(),
            );
            verdict
        }
    };
    let caller = verdict?;
    if caller.exp.is_some_and(|exp| exp <= now) {
        return Err(Error::TokenInvalid("introspection: expired".into()));
    }
    Ok(caller.into())
}

/// What an introspection answer establishes under `config`.
fn judge(answer: &Answer, config: &AuthSettings, now: i64) -> Verdict {
    let invalid = |why: &str| Err(Refusal::TokenInvalid(format!("introspection: {why}")));
    if !answer.active {
        return invalid("not active");
    }
    let claims = &answer.claims;
    let exp = claims.get("exp").and_then(Value::as_i64);
    if exp.is_some_and(|exp| exp <= now) {
        return invalid("expired");
    }
    if let Some(named) = claims.get("iss").and_then(Value::as_str)
        && named.trim_end_matches('/') != config.issuer.trim_end_matches('/')
    {
        return invalid("another issuer");
    }
    if !audience_accepted(claims, config) {
        return invalid("audience not accepted");
    }
    let principal = principal(claims, config).map_err(|error| match error {
        Error::ResourceOwnerMissing(claim) => Refusal::ResourceOwnerMissing(claim),
        Error::TokenInvalid(why) => Refusal::TokenInvalid(why),
        other => Refusal::TokenInvalid(format!("introspection: {other:?}")),
    })?;
    Ok(Verified {
        user_id: principal.user_id,
        resource_owner: principal.resource_owner,
        client_id: principal.client_id,
        locale: principal.locale,
        exp,
        key: None,
    })
}

/// One introspection request.
fn ask(issuer: &Issuer, client: &ClientAuth, token: &str, now: i64) -> Result<Answer, Error> {
    let url = match &issuer.settings.introspection_url {
        Some(url) => url.clone(),
        None => {
            let named = discovery::endpoints(issuer)?.introspection_endpoint;
            discovery::endpoint(named, "introspection_endpoint", "AUTH_INTROSPECTION_URL")?
        }
    };
    let mut fields = vec![("token", token.to_string())];
    let mut headers = vec![
        (
            "content-type".to_string(),
            "application/x-www-form-urlencoded".to_string(),
        ),
        ("accept".into(), "application/json".into()),
    ];
    match client {
        ClientAuth::Basic { client_id, secret } => {
            // RFC 6749 §2.3.1: both parts form-encoded before Basic encoding.
            let pair = format!("{}:{}", form_part(client_id), form_part(secret));
            headers.push((
                "authorization".into(),
                format!("Basic {}", STANDARD.encode(pair)),
            ));
        }
        ClientAuth::PrivateKeyJwt { .. } => {
            fields.push(("client_assertion_type", ASSERTION_TYPE.into()));
            fields.push(("client_assertion", assertion(issuer, client, now)?));
        }
    }
    let pairs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let request = fetch::request(Method::Post, url, headers, form(&pairs).into_bytes());
    let answer = fetch::exchange(issuer.http, &request, "introspection")?;
    match answer.status {
        200 => {
            let mut claims: Map<String, Value> = serde_json::from_slice(&answer.body)
                .map_err(|e| Error::IssuerUnavailable(format!("introspection answer: {e}")))?;
            let active = claims.remove("active").and_then(|a| a.as_bool()) == Some(true);
            if !active {
                claims.clear();
            }
            Ok(Answer { active, claims })
        }
        400 | 401 | 403 => {
            let error: Option<String> = serde_json::from_slice::<Value>(&answer.body)
                .ok()
                .and_then(|body| body.get("error")?.as_str().map(String::from));
            let problem = match error.as_deref() {
                Some("invalid_client" | "unauthorized_client") => {
                    "was refused by the introspection endpoint (invalid_client)".to_string()
                }
                Some(other) => format!(
                    "or the introspection request was refused by the issuer ({})",
                    other
                        .chars()
                        .filter(char::is_ascii_graphic)
                        .take(64)
                        .collect::<String>()
                ),
                None => format!(
                    "or the introspection request was refused by the issuer (HTTP {})",
                    answer.status
                ),
            };
            Err(Error::Config {
                variable: client.variable(),
                problem,
            })
        }
        404 | 405 => Err(Error::Config {
            variable: "AUTH_INTROSPECTION_URL",
            problem: format!(
                "does not lead to an introspection endpoint (HTTP {})",
                answer.status
            ),
        }),
        status => Err(Error::IssuerUnavailable(format!(
            "introspection: the issuer answered {status}"
        ))),
    }
}

/// A credential form-encoded on its own.
fn form_part(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// The `private_key_jwt` client assertion: RS256 by the application key, `iss` = `sub` = the
/// client id, `aud` = the issuer, a fresh `jti`, valid for less than a minute.
fn assertion(issuer: &Issuer, client: &ClientAuth, now: i64) -> Result<String, Error> {
    let ClientAuth::PrivateKeyJwt {
        client_id,
        key_id,
        key_pem,
    } = client
    else {
        return Err(Error::TokenInvalid("no application key".into()));
    };
    let key =
        jsonwebtoken::EncodingKey::from_rsa_pem(key_pem.as_bytes()).map_err(|_| Error::Config {
            variable: "AUTH_CLIENT_KEY",
            problem: "holds no RSA private key in PEM".into(),
        })?;
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some(key_id.clone());
    let claims = serde_json::json!({
        "iss": client_id,
        "sub": client_id,
        "aud": issuer.settings.issuer,
        "iat": now,
        "exp": now + ASSERTION_SECONDS,
        "jti": issuer.random.operation_id(),
    });
    jsonwebtoken::encode(&header, &claims, &key).map_err(|e| Error::Config {
        variable: "AUTH_CLIENT_KEY",
        problem: format!("could not sign a client assertion: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::platform::{Answer as HttpAnswer, Failure, Http, Request};
    use crate::test_support::CountingRandom;
    use crate::test_support::{FixedClock, MemoryKv};
    use std::cell::{Cell, RefCell};

    const TOKEN: &str = "opaque-token-0123456789";
    const SECRET: &str = "client-secret-0123456789";

    /// An introspection endpoint answering `status` and `body`, remembering what it was sent.
    struct Endpoint {
        status: Cell<u16>,
        body: RefCell<String>,
        sent: RefCell<Vec<Request>>,
    }

    impl Http for Endpoint {
        fn exchange(&self, request: &Request) -> Result<HttpAnswer, Failure> {
            self.sent.borrow_mut().push(request.clone());
            Ok(HttpAnswer {
                status: self.status.get(),
                headers: Vec::new(),
                body: self.body.borrow().clone().into_bytes(),
            })
        }
    }

    fn endpoint(status: u16, body: &str) -> Endpoint {
        Endpoint {
            status: Cell::new(status),
            body: RefCell::new(body.into()),
            sent: RefCell::new(Vec::new()),
        }
    }

    fn config() -> Config {
        Config::from_lookup(|name| match name {
            "AUTH_ISSUER" => Some("https://issuer.test".into()),
            "AUTH_INTROSPECTION_URL" => Some("https://issuer.test/introspect".into()),
            "AUTH_CLIENT_ID" => Some("123@project".into()),
            "AUTH_CLIENT_SECRET" => Some(SECRET.into()),
            _ => None,
        })
        .unwrap()
    }

    fn ask(endpoint: &Endpoint, kv: &MemoryKv, clock: &FixedClock) -> Result<Principal, Error> {
        let (config, random) = (config(), CountingRandom(Cell::new(0)));
        let issuer = Issuer {
            settings: &config.auth,
            kv,
            http: endpoint,
            clock,
            random: &random,
        };
        introspect(&issuer, TOKEN)
    }

    #[test]
    fn credentials_are_form_encoded() {
        assert_eq!(form_part("123@set-my-phone"), "123%40set-my-phone");
        assert_eq!(form_part("a b+c"), "a+b%2Bc");
    }

    #[test]
    fn an_active_answer_names_the_caller_and_is_reused_until_the_cache_expires() {
        crate::auth::forget_instance();
        let (kv, clock) = (MemoryKv::default(), FixedClock::at(1000));
        let endpoint = endpoint(
            200,
            r#"{"active":true,"sub":"u1","exp":5000,"iss":"https://issuer.test","urn:zitadel:iam:user:resourceowner:id":"o1"}"#,
        );
        let principal = ask(&endpoint, &kv, &clock).unwrap();
        assert_eq!(
            (
                principal.user_id.as_str(),
                principal.resource_owner.as_str()
            ),
            ("u1", "o1")
        );
        clock.seconds.set(1059);
        ask(&endpoint, &kv, &clock).unwrap();
        assert_eq!(endpoint.sent.borrow().len(), 1, "answered from the cache");
        clock.seconds.set(1060);
        ask(&endpoint, &kv, &clock).unwrap();
        assert_eq!(endpoint.sent.borrow().len(), 2, "asked again after 60 s");

        let request = &endpoint.sent.borrow()[0];
        let expected = format!(
            "Basic {}",
            STANDARD.encode(format!("123%40project:{SECRET}"))
        );
        assert_eq!(request.header("authorization"), Some(expected.as_str()));
        assert_eq!(request.body, format!("token={TOKEN}").into_bytes());
        for (key, (_, value)) in kv.data.borrow().iter() {
            let value = String::from_utf8_lossy(value);
            assert!(
                !key.contains(TOKEN) && !value.contains(TOKEN),
                "{key} holds the token"
            );
        }
    }

    #[test]
    fn an_instance_remembers_answers_without_the_store_and_a_fresh_one_reads_the_store() {
        crate::auth::forget_instance();
        let (kv, clock) = (MemoryKv::default(), FixedClock::at(1000));
        let endpoint = endpoint(
            200,
            r#"{"active":true,"sub":"u1","exp":5000,"urn:zitadel:iam:user:resourceowner:id":"o1"}"#,
        );
        let first = ask(&endpoint, &kv, &clock).unwrap();
        // The same instance, another (empty) store: not asked again.
        assert_eq!(ask(&endpoint, &MemoryKv::default(), &clock).unwrap(), first);
        assert_eq!(endpoint.sent.borrow().len(), 1);
        // A fresh instance on the store: not asked either.
        crate::auth::forget_instance();
        assert_eq!(ask(&endpoint, &kv, &clock).unwrap(), first);
        assert_eq!(endpoint.sent.borrow().len(), 1);
        // A fresh instance on an empty store asks.
        crate::auth::forget_instance();
        ask(&endpoint, &MemoryKv::default(), &clock).unwrap();
        assert_eq!(endpoint.sent.borrow().len(), 2);
    }

    #[test]
    fn an_inactive_token_is_refused_and_the_refusal_kept_ten_seconds() {
        crate::auth::forget_instance();
        let (kv, clock) = (MemoryKv::default(), FixedClock::at(1000));
        let endpoint = endpoint(200, r#"{"active":false}"#);
        assert!(matches!(
            ask(&endpoint, &kv, &clock),
            Err(Error::TokenInvalid(_))
        ));
        clock.seconds.set(1009);
        assert!(matches!(
            ask(&endpoint, &kv, &clock),
            Err(Error::TokenInvalid(_))
        ));
        assert_eq!(endpoint.sent.borrow().len(), 1);
        clock.seconds.set(1010);
        let _ = ask(&endpoint, &kv, &clock);
        assert_eq!(endpoint.sent.borrow().len(), 2);
    }

    #[test]
    fn refused_credentials_name_the_variable_and_a_failing_issuer_is_unavailable() {
        crate::auth::forget_instance();
        let (kv, clock) = (MemoryKv::default(), FixedClock::at(1000));
        let endpoint = endpoint(401, r#"{"error":"invalid_client"}"#);
        match ask(&endpoint, &kv, &clock) {
            Err(Error::Config { variable, problem }) => {
                assert_eq!(variable, "AUTH_CLIENT_SECRET");
                assert!(!problem.contains(SECRET));
            }
            other => panic!("expected a configuration error, got {other:?}"),
        }
        endpoint.status.set(503);
        assert!(matches!(
            ask(&endpoint, &kv, &clock),
            Err(Error::IssuerUnavailable(_))
        ));
    }
}
