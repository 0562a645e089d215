//! Settings read from the environment on every request (DESIGN.md "Configuration").
//! A missing or malformed required setting is an `Error::Config` naming the variable.

use crate::error::Error;
use jsonwebtoken::jwk::JwkSet;

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

#[derive(Clone, Debug)]
pub struct Config {
    pub issuer: String,
    pub jwks: JwkSet,
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
    pub sms_provider: SmsProvider,
    pub kv_store: String,
}

fn config_error(variable: &'static str, problem: impl Into<String>) -> Error {
    Error::Config {
        variable,
        problem: problem.into(),
    }
}

impl Config {
    /// Reads every setting through `lookup` (the process environment in the component).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, Error> {
        // Empty values count as unset, as shells and manifests often write `VAR=`.
        let get = |name: &str| lookup(name).filter(|value| !value.trim().is_empty());

        let issuer = get("AUTH_ISSUER").ok_or_else(|| config_error("AUTH_ISSUER", "is not set"))?;
        let jwks = match (get("AUTH_JWKS"), get("AUTH_JWKS_URL")) {
            (Some(inline), _) => serde_json::from_str::<JwkSet>(&inline)
                .map_err(|e| config_error("AUTH_JWKS", format!("is not a JWKS document: {e}")))?,
            (None, Some(_)) => {
                return Err(config_error(
                    "AUTH_JWKS_URL",
                    "is not supported by this build yet: set AUTH_JWKS to the issuer's keys",
                ));
            }
            (None, None) => return Err(config_error("AUTH_JWKS", "is not set")),
        };
        if jwks.keys.is_empty() {
            return Err(config_error("AUTH_JWKS", "holds no keys"));
        }
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
        Ok(Config {
            issuer,
            jwks,
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
            sms_provider,
            kv_store,
        })
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
        assert_eq!(config.sms_provider, SmsProvider::None);
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
        assert_eq!(variable_of(config(&[("AUTH_ISSUER", "x")])), "AUTH_JWKS");
        assert_eq!(
            variable_of(config(&[("AUTH_ISSUER", "x"), ("AUTH_JWKS", "{")])),
            "AUTH_JWKS"
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
    fn durations_parse() {
        assert_eq!(parse_duration_seconds("1h"), Some(3600));
        assert_eq!(parse_duration_seconds("90s"), Some(90));
        assert_eq!(parse_duration_seconds("1h30m"), Some(5400));
        for bad in ["", "0s", "10", "1d", "h", "-5s"] {
            assert_eq!(parse_duration_seconds(bad), None, "{bad}");
        }
    }
}
