//! Settings read from the environment (docs/configuration.md), parsed once per instance for
//! each environment it sees: [`Config::load`] keys its cache by the values of every variable
//! the core reads (`set_my_phone_wire::settings`), so an instance whose settings change reads
//! them anew. Where a value comes from (environment or `wasi:config`) is the host side's business
//! (`crate::platform::Services::settings`).
//! A missing or malformed required setting is an `Error::Config` naming the variable.

use crate::auth::KeySet;
use crate::error::Error;
use crate::platform::{Settings, SettingsUnavailable, Url};
use jsonwebtoken::jwk::JwkSet;
use serde::Deserialize;
use set_my_phone_wire::settings::Reader;
use std::cell::RefCell;
use std::rc::Rc;

/// Every setting the core reads (the wire crate's list): the key of the per-instance cache.
fn variables() -> impl Iterator<Item = &'static str> {
    set_my_phone_wire::settings::read_by(Reader::Core)
        .map(|setting| setting.name)
        // Read by `cors.rs` on its own: a preflight needs no other setting.
        .filter(|name| *name != "CORS_ALLOWED_ORIGINS")
}

/// How many distinct environments an instance keeps parsed settings for.
const CACHED_ENVIRONMENTS: usize = 4;

/// The values of the core's settings, in [`variables`] order.
type Environment = Vec<Option<String>>;

thread_local! {
    /// Parsed settings by their environment, newest last.
    static PARSED: RefCell<Vec<(Environment, Rc<Config>)>> = const { RefCell::new(Vec::new()) };
}

pub const DEFAULT_RESOURCE_OWNER_CLAIM: &str = "urn:zitadel:iam:user:resourceowner:id";
/// Below this an HMAC key is too easy to guess.
const MIN_SECRET_BYTES: usize = 16;

/// Which SMS provider the deployment uses; the core only needs to know whether one is set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmsProvider {
    None,
    Webhook,
    Twilio,
}

/// Where the issuer's signing keys come from.
#[derive(Clone, Debug)]
pub enum KeySource {
    /// `AUTH_JWKS`: a fixed set (air-gapped setups, tests), checked whole when read.
    Inline(Rc<KeySet>),
    /// `AUTH_JWKS_URL`, or (when `None`) the discovery document's `jwks_uri`.
    Fetched(Option<Url>),
}

/// How the service authenticates itself to the introspection endpoint.
#[derive(Clone, Debug)]
pub enum ClientAuth {
    /// `client_secret_basic` from `AUTH_CLIENT_ID` and `AUTH_CLIENT_SECRET`.
    Basic { client_id: String, secret: String },
    /// `private_key_jwt` from ZITADEL's application key JSON in `AUTH_CLIENT_KEY`.
    PrivateKeyJwt {
        client_id: String,
        key_id: String,
        /// PEM (PKCS#1 or PKCS#8) RSA private key.
        key_pem: String,
    },
}

impl ClientAuth {
    /// The variable to name when the issuer refuses these credentials.
    pub fn variable(&self) -> &'static str {
        match self {
            ClientAuth::Basic { .. } => "AUTH_CLIENT_SECRET",
            ClientAuth::PrivateKeyJwt { .. } => "AUTH_CLIENT_KEY",
        }
    }
}

/// ZITADEL's application key document (`AUTH_CLIENT_KEY`).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ApplicationKey {
    #[serde(rename = "type")]
    kind: String,
    key_id: String,
    key: String,
    client_id: String,
}

#[derive(Clone, Debug)]
pub struct Config {
    /// `iss` of tokens; discovery lives below it.
    pub issuer: String,
    pub keys: KeySource,
    /// `AUTH_INTROSPECTION_URL`; else the discovery document's `introspection_endpoint`.
    pub introspection_url: Option<Url>,
    /// Credentials for introspection; without them only JWTs are accepted.
    pub client: Option<ClientAuth>,
    /// Introspect JWTs too, so that revoked ones are refused.
    pub check_revocation: bool,
    /// Longest an active introspection result is reused; 0 = never.
    pub introspection_cache_seconds: u64,
    /// Accepted `aud` values; `None` means not checked.
    pub audiences: Option<Vec<String>>,
    pub resource_owner_claim: String,
    pub default_region: phonenumber::country::Id,
    /// HMAC key for stored codes; `None` only when no provider is set (then the store keeps one).
    pub code_secret: Option<Vec<u8>>,
    pub code_length: usize,
    pub code_expiry_seconds: u64,
    /// Wrong attempts after which a code is void.
    pub code_max_attempts: u32,
    /// Least time between two codes for one user; 0 = no cooldown.
    pub resend_cooldown_seconds: u64,
    /// Most codes one user may be sent per hour; 0 = no cap.
    pub codes_per_hour: u32,
    /// Where numbers may be from; empty = anywhere.
    pub allowed_regions: AllowedRegions,
    pub kv_store: String,
    /// Limits on codes across accounts and the SMS-pumping guard.
    pub sms_limits: crate::domain::SmsLimits,
    /// The code SMS's texts and languages.
    pub sms_texts: crate::sms_text::SmsTexts,
}

fn config_error(variable: &'static str, problem: impl Into<String>) -> Error {
    Error::Config {
        variable,
        problem: problem.into(),
    }
}

impl Config {
    /// The settings in `env`: parsed once per instance for each environment, and parsed again
    /// whenever a variable they are read from changes. Invalid settings are not kept.
    pub fn load(settings: &Settings<'_>) -> Result<Rc<Config>, Error> {
        let values: Environment = variables()
            .map(settings)
            .collect::<Result<_, _>>()
            .map_err(|unavailable: SettingsUnavailable| {
                Error::SettingsUnavailable(unavailable.0)
            })?;
        let known = PARSED.with_borrow(|parsed| {
            parsed
                .iter()
                .find(|(seen, _)| *seen == values)
                .map(|(_, config)| Rc::clone(config))
        });
        if let Some(config) = known {
            return Ok(config);
        }
        let config = Rc::new(Config::from_lookup(|name| {
            let index = variables().position(|known| known == name);
            debug_assert!(
                index.is_some(),
                "{name} is missing from the wire crate's settings"
            );
            index.and_then(|i| values.get(i).cloned().flatten())
        })?);
        PARSED.with_borrow_mut(|parsed| {
            if parsed.len() >= CACHED_ENVIRONMENTS {
                parsed.remove(0);
            }
            parsed.push((values, Rc::clone(&config)));
        });
        Ok(config)
    }

    /// Reads every setting through `lookup` (the process environment in the component).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, Error> {
        // Empty values count as unset, as shells and manifests often write `VAR=`.
        let get = |name: &str| lookup(name).filter(|value| !value.trim().is_empty());

        let issuer = get("AUTH_ISSUER").ok_or_else(|| config_error("AUTH_ISSUER", "is not set"))?;
        if Url::parse(&issuer).is_none() {
            return Err(config_error("AUTH_ISSUER", "is not an http(s) URL"));
        }
        let keys = match (get("AUTH_JWKS"), get("AUTH_JWKS_URL")) {
            (Some(inline), _) => {
                let jwks = serde_json::from_str::<JwkSet>(&inline).map_err(|e| {
                    config_error("AUTH_JWKS", format!("is not a JWKS document: {e}"))
                })?;
                if jwks.keys.is_empty() {
                    return Err(config_error("AUTH_JWKS", "holds no keys"));
                }
                let keys = KeySet::parse(&inline).map_err(|e| {
                    config_error("AUTH_JWKS", format!("is not a JWKS document: {e}"))
                })?;
                KeySource::Inline(Rc::new(keys))
            }
            (None, Some(url)) => KeySource::Fetched(Some(
                Url::parse(&url)
                    .ok_or_else(|| config_error("AUTH_JWKS_URL", "is not an http(s) URL"))?,
            )),
            (None, None) => KeySource::Fetched(None),
        };
        let introspection_url = get("AUTH_INTROSPECTION_URL")
            .map(|url| {
                Url::parse(&url)
                    .ok_or_else(|| config_error("AUTH_INTROSPECTION_URL", "is not an http(s) URL"))
            })
            .transpose()?;
        let client = client_auth(&get)?;
        let check_revocation = match get("AUTH_CHECK_REVOCATION") {
            None => false,
            Some(flag) => parse_flag(&flag)
                .ok_or_else(|| config_error("AUTH_CHECK_REVOCATION", "must be true or false"))?,
        };
        if check_revocation && client.is_none() {
            return Err(config_error(
                "AUTH_CHECK_REVOCATION",
                "needs introspection credentials: set AUTH_CLIENT_ID and AUTH_CLIENT_SECRET, or AUTH_CLIENT_KEY",
            ));
        }
        let introspection_cache_seconds = match get("AUTH_INTROSPECTION_CACHE") {
            None => 60,
            Some(text) if text.trim() == "0" || text.trim() == "0s" => 0,
            Some(text) => parse_duration_seconds(&text)
                .or_else(|| text.trim().parse::<u64>().ok())
                .ok_or_else(|| {
                    config_error(
                        "AUTH_INTROSPECTION_CACHE",
                        "must be a duration such as 60s, or 0 for no cache",
                    )
                })?,
        };
        let audiences = get("AUTH_AUDIENCE").map(|list| {
            list.split(',')
                .map(str::trim)
                .filter(|a| !a.is_empty())
                .map(String::from)
                .collect()
        });
        let resource_owner_claim =
            get("AUTH_RESOURCE_OWNER_CLAIM").unwrap_or_else(|| DEFAULT_RESOURCE_OWNER_CLAIM.into());
        let default_region = match get("PHONE_DEFAULT_REGION") {
            None => phonenumber::country::Id::CH,
            Some(region) => region.trim().to_ascii_uppercase().parse().map_err(|_| {
                config_error(
                    "PHONE_DEFAULT_REGION",
                    "is not an ISO 3166 region code such as CH",
                )
            })?,
        };
        // Case-insensitive, as the SMS provider component reads it.
        let provider_name = get("SMS_PROVIDER").map(|name| name.trim().to_ascii_lowercase());
        let sms_provider = match provider_name.as_deref() {
            None | Some("none") => SmsProvider::None,
            Some("webhook") => SmsProvider::Webhook,
            Some("twilio") => SmsProvider::Twilio,
            Some(_) => {
                return Err(config_error(
                    "SMS_PROVIDER",
                    "must be none, webhook or twilio",
                ));
            }
        };
        let code_secret = match get("PHONE_CODE_SECRET") {
            Some(secret) if secret.len() < MIN_SECRET_BYTES => {
                return Err(config_error(
                    "PHONE_CODE_SECRET",
                    format!("must be at least {MIN_SECRET_BYTES} bytes long"),
                ));
            }
            Some(secret) => Some(secret.into_bytes()),
            None if sms_provider != SmsProvider::None => {
                return Err(config_error(
                    "PHONE_CODE_SECRET",
                    "is required when SMS_PROVIDER is set",
                ));
            }
            None => None,
        };
        let code_length = match get("PHONE_CODE_LENGTH") {
            None => 6,
            Some(length) => length
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|n| (4..=16).contains(n))
                .ok_or_else(|| {
                    config_error("PHONE_CODE_LENGTH", "must be a number from 4 to 16")
                })?,
        };
        let code_expiry_seconds = match get("PHONE_CODE_EXPIRY") {
            None => 3600,
            Some(expiry) => parse_duration_seconds(&expiry).ok_or_else(|| {
                config_error(
                    "PHONE_CODE_EXPIRY",
                    "must be a duration such as 1h, 15m or 90s",
                )
            })?,
        };
        let code_max_attempts = match get("PHONE_CODE_MAX_ATTEMPTS") {
            None => 5,
            Some(n) => n
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=100).contains(n))
                .ok_or_else(|| {
                    config_error("PHONE_CODE_MAX_ATTEMPTS", "must be a number from 1 to 100")
                })?,
        };
        let resend_cooldown_seconds = match get("PHONE_RESEND_COOLDOWN") {
            None => 60,
            Some(text) if text.trim() == "0" || text.trim() == "0s" => 0,
            Some(text) => parse_duration_seconds(&text).ok_or_else(|| {
                config_error(
                    "PHONE_RESEND_COOLDOWN",
                    "must be a duration such as 60s, or 0 for none",
                )
            })?,
        };
        let codes_per_hour = match get("PHONE_CODES_PER_HOUR") {
            None => 5,
            Some(n) => n
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|n| *n <= 1000)
                .ok_or_else(|| {
                    config_error(
                        "PHONE_CODES_PER_HOUR",
                        "must be a number from 0 (no cap) to 1000",
                    )
                })?,
        };
        let allowed_regions = match get("PHONE_ALLOWED_REGIONS") {
            None => AllowedRegions::default(),
            Some(list) => AllowedRegions::parse(&list).ok_or_else(|| {
                config_error(
                    "PHONE_ALLOWED_REGIONS",
                    "must list regions (CH) or calling codes (+41), separated by commas",
                )
            })?,
        };
        let kv_store = get("KV_STORE").unwrap_or_else(|| "default".into());
        let sms_limits = crate::domain::SmsLimits::from_settings(&get)?;
        let sms_texts = crate::sms_text::SmsTexts::from_settings(&get)?;
        Ok(Config {
            issuer,
            keys,
            introspection_url,
            client,
            check_revocation,
            introspection_cache_seconds,
            audiences,
            resource_owner_claim,
            default_region,
            code_secret,
            code_length,
            code_expiry_seconds,
            code_max_attempts,
            resend_cooldown_seconds,
            codes_per_hour,
            allowed_regions,
            kv_store,
            sms_limits,
            sms_texts,
        })
    }
}

/// Forgets the parsed settings (tests: a fresh instance).
#[cfg(test)]
pub fn forget_parsed() {
    PARSED.with_borrow_mut(Vec::clear);
}

/// Introspection credentials: a client id and secret, or an application key, not both.
fn client_auth(get: &dyn Fn(&str) -> Option<String>) -> Result<Option<ClientAuth>, Error> {
    let (id, secret, key) = (
        get("AUTH_CLIENT_ID"),
        get("AUTH_CLIENT_SECRET"),
        get("AUTH_CLIENT_KEY"),
    );
    match (id, secret, key) {
        (None, None, None) => Ok(None),
        (Some(_), _, Some(_)) | (_, Some(_), Some(_)) => Err(config_error(
            "AUTH_CLIENT_KEY",
            "is set together with AUTH_CLIENT_ID/AUTH_CLIENT_SECRET: use one method",
        )),
        (Some(client_id), Some(secret), None) => Ok(Some(ClientAuth::Basic {
            client_id: client_id.trim().into(),
            secret,
        })),
        (Some(_), None, None) => Err(config_error("AUTH_CLIENT_SECRET", "is not set")),
        (None, Some(_), None) => Err(config_error("AUTH_CLIENT_ID", "is not set")),
        (None, None, Some(json)) => {
            let key: ApplicationKey = serde_json::from_str(&json).map_err(|_| {
                config_error(
                    "AUTH_CLIENT_KEY",
                    "is not a ZITADEL application key (JSON with type, keyId, key, clientId)",
                )
            })?;
            if key.kind != "application" {
                return Err(config_error(
                    "AUTH_CLIENT_KEY",
                    "is not an application key (its type must be \"application\")",
                ));
            }
            // Checked now, so that a broken key is a configuration error, not a 401 later.
            jsonwebtoken::EncodingKey::from_rsa_pem(key.key.as_bytes())
                .map_err(|_| config_error("AUTH_CLIENT_KEY", "holds no RSA private key in PEM"))?;
            Ok(Some(ClientAuth::PrivateKeyJwt {
                client_id: key.client_id,
                key_id: key.key_id,
                key_pem: key.key,
            }))
        }
    }
}

fn parse_flag(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// The optional allow-list of where phone numbers may come from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AllowedRegions {
    pub regions: Vec<phonenumber::country::Id>,
    pub calling_codes: Vec<u16>,
}

impl AllowedRegions {
    /// `CH, DE, +1`: region codes and `+`-prefixed calling codes.
    fn parse(list: &str) -> Option<Self> {
        let mut allowed = AllowedRegions::default();
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            match entry.strip_prefix('+') {
                Some(code) => allowed
                    .calling_codes
                    .push(code.parse().ok().filter(|c| *c > 0)?),
                None => allowed
                    .regions
                    .push(entry.to_ascii_uppercase().parse().ok()?),
            }
        }
        Some(allowed)
    }

    pub fn is_empty(&self) -> bool {
        self.regions.is_empty() && self.calling_codes.is_empty()
    }
}

/// Parses `1h`, `15m`, `90s`, `1h30m` into whole seconds (at least one).
pub fn parse_duration_seconds(text: &str) -> Option<u64> {
    let text = text.trim();
    let mut total: u64 = 0;
    let mut digits = String::new();
    for ch in text.chars() {
        if ch.is_ascii_digit() {
            digits.push(ch);
            continue;
        }
        let unit = match ch {
            'h' => 3600,
            'm' => 60,
            's' => 1,
            _ => return None,
        };
        let amount: u64 = digits.parse().ok()?;
        total = total.checked_add(amount.checked_mul(unit)?)?;
        digits.clear();
    }
    (digits.is_empty() && total > 0).then_some(total)
}

#[cfg(test)]
mod tests {
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
        assert_eq!(config.resource_owner_claim, DEFAULT_RESOURCE_OWNER_CLAIM);
        assert_eq!(config.kv_store, "default");
        assert!(config.audiences.is_none() && config.code_secret.is_none());
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
}
