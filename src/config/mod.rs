//! Settings read from the environment (docs/configuration.md), parsed once per instance for
//! each environment it sees: [`Config::load`] keys its cache by the values of every variable
//! the core reads (`set_my_phone_wire::settings`), so an instance whose settings change reads
//! them anew. Where a value comes from (environment or `wasi:config`) is the host side's business
//! (`crate::platform::Services::settings`).
//! A missing or malformed required setting is an `Error::Config` naming the variable.

use crate::auth::AuthSettings;
use crate::error::Error;
use crate::platform::{Settings, SettingsUnavailable};
use crate::time::parse_duration_seconds;
use crate::zitadel::ZitadelSync;
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
    /// The settings of the last settings generation loaded (see [`Config::load`]).
    static LAST_GENERATION: RefCell<Option<(u64, Rc<Config>)>> = const { RefCell::new(None) };
}

/// Below this an HMAC key is too easy to guess.
const MIN_SECRET_BYTES: usize = 16;

/// Which SMS provider the deployment uses; the core only needs to know whether one is set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmsProvider {
    None,
    Webhook,
    Twilio,
    /// Twilio Verify: the provider makes and checks the codes, so no code secret is needed.
    TwilioVerify,
    Sns,
    WhatsApp,
    Custom,
}

#[derive(Clone, Debug)]
pub struct Config {
    /// How tokens are checked (`AUTH_*`).
    pub auth: AuthSettings,
    /// Write-through to ZITADEL (`ZITADEL_*`); `None` when off.
    pub zitadel: Option<ZitadelSync>,
    pub default_region: phonenumber::country::Id,
    /// HMAC key for stored codes; `None` only when no provider is set (then the store keeps one)
    /// or the provider makes the codes.
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
    /// `KV_CREATE=swap`: the store's swap from absent is exact, so new records are created by
    /// one swap without the creation claim (`crate::store`); `claim` (the default) trusts it not.
    pub create_by_swap: bool,
    /// Limits on codes across accounts and the SMS-pumping guard.
    pub sms_limits: SmsLimits,
    /// The code SMS's texts and languages.
    pub sms_texts: crate::sms_text::SmsTexts,
}

impl Config {
    /// The settings in `env`: parsed once per instance for each environment, and parsed again
    /// whenever a variable they are read from changes. Invalid settings are not kept.
    ///
    /// With a `generation` (`Services::settings_generation`) equal to the last one loaded, the
    /// settings are the same and are not read again: reading each of the variables cost about
    /// 5 % of a GetMyPhone on a reused instance (bench/README.md, issue #23).
    pub fn load(settings: &Settings<'_>, generation: Option<u64>) -> Result<Rc<Config>, Error> {
        if let Some(generation) = generation {
            let known = LAST_GENERATION.with_borrow(|last| {
                last.as_ref()
                    .filter(|(seen, _)| *seen == generation)
                    .map(|(_, config)| Rc::clone(config))
            });
            if let Some(config) = known {
                return Ok(config);
            }
            let config = Self::load_values(settings)?;
            LAST_GENERATION.set(Some((generation, Rc::clone(&config))));
            return Ok(config);
        }
        Self::load_values(settings)
    }

    /// [`Config::load`] by the values of every variable.
    fn load_values(settings: &Settings<'_>) -> Result<Rc<Config>, Error> {
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

        let auth = AuthSettings::from_settings(&get)?;
        let zitadel = ZitadelSync::from_settings(&get, &auth.issuer)?;
        let default_region = match get("PHONE_DEFAULT_REGION") {
            None => phonenumber::country::Id::CH,
            Some(region) => region.trim().to_ascii_uppercase().parse().map_err(|_| {
                Error::config(
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
            Some("twilio-verify") => SmsProvider::TwilioVerify,
            Some("sns") => SmsProvider::Sns,
            Some("whatsapp") => SmsProvider::WhatsApp,
            // A provider component of your own (docs/sms-providers.md) reads its own settings.
            Some("custom") => SmsProvider::Custom,
            Some(_) => {
                return Err(Error::config(
                    "SMS_PROVIDER",
                    "must be none, webhook, twilio, twilio-verify, sns, whatsapp or custom",
                ));
            }
        };
        let code_secret = match get("PHONE_CODE_SECRET") {
            Some(secret) if secret.len() < MIN_SECRET_BYTES => {
                return Err(Error::config(
                    "PHONE_CODE_SECRET",
                    format!("must be at least {MIN_SECRET_BYTES} bytes long"),
                ));
            }
            Some(secret) => Some(secret.into_bytes()),
            None if !matches!(sms_provider, SmsProvider::None | SmsProvider::TwilioVerify) => {
                return Err(Error::config(
                    "PHONE_CODE_SECRET",
                    "is required when SMS_PROVIDER is set (except twilio-verify)",
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
                    Error::config("PHONE_CODE_LENGTH", "must be a number from 4 to 16")
                })?,
        };
        let code_expiry_seconds = match get("PHONE_CODE_EXPIRY") {
            None => 3600,
            Some(expiry) => parse_duration_seconds(&expiry).ok_or_else(|| {
                Error::config(
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
                    Error::config("PHONE_CODE_MAX_ATTEMPTS", "must be a number from 1 to 100")
                })?,
        };
        let resend_cooldown_seconds = match get("PHONE_RESEND_COOLDOWN") {
            None => 60,
            Some(text) if text.trim() == "0" || text.trim() == "0s" => 0,
            Some(text) => parse_duration_seconds(&text).ok_or_else(|| {
                Error::config(
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
                    Error::config(
                        "PHONE_CODES_PER_HOUR",
                        "must be a number from 0 (no cap) to 1000",
                    )
                })?,
        };
        let allowed_regions = match get("PHONE_ALLOWED_REGIONS") {
            None => AllowedRegions::default(),
            Some(list) => AllowedRegions::parse(&list).ok_or_else(|| {
                Error::config(
                    "PHONE_ALLOWED_REGIONS",
                    "must list regions (CH) or calling codes (+41), separated by commas",
                )
            })?,
        };
        let kv_store = get("KV_STORE").unwrap_or_else(|| "default".into());
        let create_by_swap = match get("KV_CREATE").map(|v| v.trim().to_ascii_lowercase()) {
            None => false,
            Some(mode) if mode == "claim" => false,
            Some(mode) if mode == "swap" => true,
            Some(_) => return Err(Error::config("KV_CREATE", "must be claim or swap")),
        };
        let sms_limits = SmsLimits::from_settings(&get)?;
        let sms_texts = crate::sms_text::SmsTexts::from_settings(&get)?;
        Ok(Config {
            auth,
            zitadel,
            default_region,
            code_secret,
            code_length,
            code_expiry_seconds,
            code_max_attempts,
            resend_cooldown_seconds,
            codes_per_hour,
            allowed_regions,
            kv_store,
            create_by_swap,
            sms_limits,
            sms_texts,
        })
    }
}

/// Forgets the parsed settings (tests: a fresh instance).
#[cfg(test)]
pub fn forget_parsed() {
    PARSED.with_borrow_mut(Vec::clear);
    LAST_GENERATION.set(None);
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

mod sms_limits;
pub use sms_limits::{PumpingGuard, SmsLimits};

#[cfg(test)]
mod tests;
