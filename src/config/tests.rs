use super::*;
use std::collections::HashMap;

const JWKS: &str = r#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k1","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#;

fn config(pairs: &[(&str, &str)]) -> Result<Config, Error> {
    let env: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Config::from_lookup(|name| env.get(name).cloned())
}

fn variable_of(result: Result<Config, Error>) -> &'static str {
    match result {
        Err(Error::Config { variable, .. }) => variable,
        other => panic!("expected a config error, got {other:?}"),
    }
}

#[test]
fn defaults_apply_with_only_the_required_settings() {
    let config = config(&[("AUTH_ISSUER", "https://issuer"), ("AUTH_JWKS", JWKS)]).unwrap();
    assert_eq!(config.default_region, phonenumber::country::Id::CH);
    assert_eq!((config.code_length, config.code_expiry_seconds), (6, 3600));
    assert_eq!(
        config.auth.resource_owner_claim,
        crate::auth::DEFAULT_RESOURCE_OWNER_CLAIM
    );
    assert_eq!(config.kv_store, "default");
    assert!(config.auth.audiences.is_none() && config.code_secret.is_none());
    assert_eq!(
        (
            config.code_max_attempts,
            config.resend_cooldown_seconds,
            config.codes_per_hour
        ),
        (5, 60, 5)
    );
    assert!(config.allowed_regions.is_empty());
}

#[test]
fn each_bad_setting_is_named() {
    let base = [("AUTH_ISSUER", "https://issuer"), ("AUTH_JWKS", JWKS)];
    let with = |extra: (&'static str, &'static str)| {
        let mut pairs = base.to_vec();
        pairs.push(extra);
        config(&pairs)
    };
    assert_eq!(variable_of(config(&[("AUTH_JWKS", JWKS)])), "AUTH_ISSUER");
    assert_eq!(variable_of(config(&[("AUTH_ISSUER", "x")])), "AUTH_ISSUER");
    assert_eq!(
        variable_of(config(&[("AUTH_ISSUER", "https://i"), ("AUTH_JWKS", "{")])),
        "AUTH_JWKS"
    );
    assert_eq!(
        variable_of(config(&[
            ("AUTH_ISSUER", "https://i"),
            ("AUTH_JWKS_URL", "x")
        ])),
        "AUTH_JWKS_URL"
    );
    assert_eq!(
        variable_of(with(("AUTH_INTROSPECTION_URL", "/x"))),
        "AUTH_INTROSPECTION_URL"
    );
    assert_eq!(
        variable_of(with(("AUTH_CLIENT_ID", "c"))),
        "AUTH_CLIENT_SECRET"
    );
    assert_eq!(
        variable_of(with(("AUTH_CLIENT_SECRET", "s"))),
        "AUTH_CLIENT_ID"
    );
    assert_eq!(
        variable_of(with(("AUTH_CLIENT_KEY", "{}"))),
        "AUTH_CLIENT_KEY"
    );
    assert_eq!(
        variable_of(with(("AUTH_CHECK_REVOCATION", "true"))),
        "AUTH_CHECK_REVOCATION"
    );
    assert_eq!(
        variable_of(with(("AUTH_INTROSPECTION_CACHE", "soon"))),
        "AUTH_INTROSPECTION_CACHE"
    );
    assert_eq!(
        variable_of(with(("PHONE_DEFAULT_REGION", "XX"))),
        "PHONE_DEFAULT_REGION"
    );
    assert_eq!(
        variable_of(with(("PHONE_CODE_LENGTH", "3"))),
        "PHONE_CODE_LENGTH"
    );
    assert_eq!(
        variable_of(with(("PHONE_CODE_EXPIRY", "soon"))),
        "PHONE_CODE_EXPIRY"
    );
    assert_eq!(
        variable_of(with(("SMS_PROVIDER", "pigeon"))),
        "SMS_PROVIDER"
    );
    assert_eq!(
        variable_of(with(("SMS_PROVIDER", "webhook"))),
        "PHONE_CODE_SECRET"
    );
    assert_eq!(
        variable_of(with(("PHONE_CODE_SECRET", "short"))),
        "PHONE_CODE_SECRET"
    );
}

#[test]
fn guards_can_be_switched_off_and_allow_lists_parse() {
    let base = [("AUTH_ISSUER", "https://issuer"), ("AUTH_JWKS", JWKS)];
    let mut pairs = base.to_vec();
    pairs.extend([
        ("PHONE_RESEND_COOLDOWN", "0"),
        ("PHONE_CODES_PER_HOUR", "0"),
        ("PHONE_ALLOWED_REGIONS", "ch, +1"),
    ]);
    let config = config(&pairs).unwrap();
    assert_eq!(
        (config.resend_cooldown_seconds, config.codes_per_hour),
        (0, 0)
    );
    assert_eq!(
        config.allowed_regions.regions,
        vec![phonenumber::country::Id::CH]
    );
    assert_eq!(config.allowed_regions.calling_codes, vec![1]);
}

#[test]
fn every_variable_read_is_in_the_cache_key() {
    // Valid settings that make every variable be read.
    let pairs = [
        ("AUTH_ISSUER", "https://issuer"),
        ("AUTH_JWKS", JWKS),
        ("AUTH_CLIENT_ID", "c"),
        ("AUTH_CLIENT_SECRET", "s"),
        ("SMS_PROVIDER", "webhook"),
        ("PHONE_CODE_SECRET", "0123456789abcdef0123"),
        ("ZITADEL_SYNC", "on"),
        ("ZITADEL_SERVICE_TOKEN", "t"),
    ];
    let read = std::cell::RefCell::new(Vec::new());
    Config::from_lookup(|name| {
        read.borrow_mut().push(name.to_string());
        pairs
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.to_string())
    })
    .unwrap();
    let mut read = read.into_inner();
    read.sort();
    read.dedup();
    let mut listed: Vec<String> = variables().map(str::to_string).collect();
    listed.sort();
    assert_eq!(read, listed);
}

#[test]
fn durations_parse() {
    assert_eq!(parse_duration_seconds("1h"), Some(3600));
    assert_eq!(parse_duration_seconds("90s"), Some(90));
    assert_eq!(parse_duration_seconds("1h30m"), Some(5400));
    for bad in ["", "0s", "10", "1d", "h", "-5s"] {
        assert_eq!(parse_duration_seconds(bad), None, "{bad}");
    }
}
