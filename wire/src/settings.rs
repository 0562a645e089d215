//! The settings every shipped component reads, and where a component finds each one: the
//! environment under its usual name (`AUTH_ISSUER`), or the host's `wasi:config/store` under the
//! same name in lower case (`auth_issuer`, a valid Spin variable name). docs/configuration.md
//! has what each means.
//!
//! Precedence: a non-empty environment variable wins; otherwise the config store's non-empty
//! value; otherwise the setting is unset. The environment is what an operator sets for one run
//! (`--env`), while a config store usually carries a manifest's defaults (Spin variables must
//! have a default or be required), so the other order would silently ignore `--env` overrides.

/// One setting: its environment name, whether its value is a secret (never logged, a Spin
/// `secret = true` variable) and which component reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Setting {
    pub name: &'static str,
    pub secret: bool,
    pub reader: Reader,
}

/// Which shipped component reads a setting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reader {
    /// The core component (`src/config.rs`).
    Core,
    /// The SMS provider component (`adapters/sms-provider`).
    SmsProvider,
    /// Both (`SMS_PROVIDER`: the core needs to know whether codes are sent at all).
    Both,
}

const fn setting(name: &'static str, secret: bool, reader: Reader) -> Setting {
    Setting {
        name,
        secret,
        reader,
    }
}

/// Every setting, in the order docs/configuration.md lists them.
pub const SETTINGS: &[Setting] = &[
    setting("AUTH_ISSUER", false, Reader::Core),
    setting("AUTH_JWKS", false, Reader::Core),
    setting("AUTH_JWKS_URL", false, Reader::Core),
    setting("AUTH_INTROSPECTION_URL", false, Reader::Core),
    setting("AUTH_CLIENT_ID", false, Reader::Core),
    setting("AUTH_CLIENT_SECRET", true, Reader::Core),
    setting("AUTH_CLIENT_KEY", true, Reader::Core),
    setting("AUTH_CHECK_REVOCATION", false, Reader::Core),
    setting("AUTH_INTROSPECTION_CACHE", false, Reader::Core),
    setting("AUTH_AUDIENCE", false, Reader::Core),
    setting("AUTH_RESOURCE_OWNER_CLAIM", false, Reader::Core),
    setting("PHONE_DEFAULT_REGION", false, Reader::Core),
    setting("PHONE_CODE_SECRET", true, Reader::Core),
    setting("PHONE_CODE_LENGTH", false, Reader::Core),
    setting("PHONE_CODE_EXPIRY", false, Reader::Core),
    setting("PHONE_CODE_MAX_ATTEMPTS", false, Reader::Core),
    setting("PHONE_RESEND_COOLDOWN", false, Reader::Core),
    setting("PHONE_CODES_PER_HOUR", false, Reader::Core),
    setting("PHONE_ALLOWED_REGIONS", false, Reader::Core),
    setting("PHONE_CODES_PER_NUMBER_PER_HOUR", false, Reader::Core),
    setting("PHONE_CODES_PER_NUMBER_PER_DAY", false, Reader::Core),
    setting("PHONE_CODES_PER_RANGE_PER_HOUR", false, Reader::Core),
    setting("PHONE_SMS_PER_ORG_PER_HOUR", false, Reader::Core),
    setting("PHONE_SMS_PER_HOUR", false, Reader::Core),
    setting("PHONE_PUMPING_MIN_CODES", false, Reader::Core),
    setting("PHONE_PUMPING_MIN_CODES_PER_COUNTRY", false, Reader::Core),
    setting("PHONE_PUMPING_MIN_VERIFIED", false, Reader::Core),
    setting("ZITADEL_SYNC", false, Reader::Core),
    setting("ZITADEL_API_URL", false, Reader::Core),
    setting("ZITADEL_SERVICE_TOKEN", true, Reader::Core),
    setting("ZITADEL_SERVICE_KEY", true, Reader::Core),
    setting("KV_STORE", false, Reader::Core),
    setting("KV_CREATE", false, Reader::Core),
    setting("CORS_ALLOWED_ORIGINS", false, Reader::Core),
    setting("SMS_DEFAULT_LANGUAGE", false, Reader::Core),
    setting("SMS_APP_NAME", false, Reader::Core),
    setting("SMS_TEXT", false, Reader::Core),
    setting("SMS_TEXT_EN", false, Reader::Core),
    setting("SMS_TEXT_DE", false, Reader::Core),
    setting("SMS_TEXT_FR", false, Reader::Core),
    setting("SMS_TEXT_IT", false, Reader::Core),
    setting("SMS_TEXT_ES", false, Reader::Core),
    setting("SMS_TEXT_PT", false, Reader::Core),
    setting("SMS_TEXT_NL", false, Reader::Core),
    setting("SMS_TEXT_PL", false, Reader::Core),
    setting("SMS_TEXT_JA", false, Reader::Core),
    setting("SMS_TEXT_ZH", false, Reader::Core),
    setting("SMS_AUTOFILL_DOMAIN", false, Reader::Core),
    setting("SMS_ANDROID_HASH", false, Reader::Core),
    setting("SMS_PROVIDER", false, Reader::Both),
    setting("SMS_WEBHOOK_URL", false, Reader::SmsProvider),
    setting("SMS_WEBHOOK_SIGNING_KEY", true, Reader::SmsProvider),
    setting("TWILIO_ACCOUNT_SID", false, Reader::SmsProvider),
    setting("TWILIO_AUTH_TOKEN", true, Reader::SmsProvider),
    setting("TWILIO_FROM", false, Reader::SmsProvider),
    setting("TWILIO_BASE_URL", false, Reader::SmsProvider),
    setting("TWILIO_VERIFY_SERVICE_SID", false, Reader::SmsProvider),
    setting("TWILIO_VERIFY_CHANNEL", false, Reader::SmsProvider),
    setting("TWILIO_VERIFY_BASE_URL", false, Reader::SmsProvider),
    setting("SMS_SNS_REGION", false, Reader::SmsProvider),
    setting("SMS_SNS_ACCESS_KEY_ID", false, Reader::SmsProvider),
    setting("SMS_SNS_SECRET_ACCESS_KEY", true, Reader::SmsProvider),
    setting("SMS_SNS_SESSION_TOKEN", true, Reader::SmsProvider),
    setting("SMS_SNS_SENDER_ID", false, Reader::SmsProvider),
    setting("SMS_SNS_ORIGINATION_NUMBER", false, Reader::SmsProvider),
    setting("SMS_SNS_BASE_URL", false, Reader::SmsProvider),
    setting("SMS_WHATSAPP_TOKEN", true, Reader::SmsProvider),
    setting("SMS_WHATSAPP_PHONE_NUMBER_ID", false, Reader::SmsProvider),
    setting("SMS_WHATSAPP_TEMPLATE", false, Reader::SmsProvider),
    setting("SMS_WHATSAPP_LANGUAGE", false, Reader::SmsProvider),
    setting("SMS_WHATSAPP_API_VERSION", false, Reader::SmsProvider),
    setting("SMS_WHATSAPP_BASE_URL", false, Reader::SmsProvider),
];

/// The settings `reader` reads (those marked `Both` included).
pub fn read_by(reader: Reader) -> impl Iterator<Item = &'static Setting> {
    SETTINGS
        .iter()
        .filter(move |setting| setting.reader == reader || setting.reader == Reader::Both)
}

/// The setting named `name` in either spelling (`AUTH_ISSUER` or `auth_issuer`), if it is one.
pub fn find(name: &str) -> Option<&'static Setting> {
    SETTINGS
        .iter()
        .find(|setting| setting.name.eq_ignore_ascii_case(name))
}

/// Whether `name` is a setting's environment name, exactly (`AUTH_ISSUER`, not `auth_issuer`):
/// what a host passes from its own environment to the component.
pub fn is_env_name(name: &str) -> bool {
    SETTINGS.iter().any(|setting| setting.name == name)
}

/// The key of a setting in `wasi:config/store`: its name in lower case.
pub fn config_key(name: &str) -> String {
    name.to_ascii_lowercase()
}

/// A setting's value by the precedence above: `env` is looked up under `name`, `config` under
/// [`config_key`]; empty values count as unset.
pub fn resolve(
    name: &str,
    env: impl FnOnce(&str) -> Option<String>,
    config: impl FnOnce(&str) -> Option<String>,
) -> Option<String> {
    env(name)
        .filter(|value| !value.is_empty())
        .or_else(|| config(&config_key(name)).filter(|value| !value.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The README's provider table and docs/configuration.md name every setting the SMS
    /// provider component reads.
    #[test]
    fn the_docs_list_every_provider_setting() {
        let read = |path: &str| {
            std::fs::read_to_string(format!("{}/../{path}", env!("CARGO_MANIFEST_DIR")))
                .unwrap_or_else(|e| panic!("{path}: {e}"))
        };
        let readme = read("README.md");
        let table: String = readme
            .lines()
            .skip_while(|line| !line.starts_with("| `SMS_PROVIDER` | sends |"))
            .take_while(|line| line.starts_with('|'))
            .collect();
        let configuration = read("docs/configuration.md");
        for setting in SETTINGS.iter().filter(|s| s.reader == Reader::SmsProvider) {
            let quoted = format!("`{}`", setting.name);
            assert!(
                table.contains(&quoted),
                "README's provider table lacks {quoted}"
            );
            assert!(
                configuration.contains(&quoted),
                "docs/configuration.md lacks {quoted}"
            );
        }
    }

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        }
    }

    #[test]
    fn the_environment_wins_then_the_config_store_then_nothing() {
        let env = lookup(&[("AUTH_ISSUER", "https://env"), ("KV_STORE", "")]);
        let config = lookup(&[
            ("auth_issuer", "https://config"),
            ("kv_store", "shared"),
            ("phone_code_secret", "from-config"),
            ("PHONE_DEFAULT_REGION", "upper-case keys are not read"),
        ]);
        let value = |name| resolve(name, &env, &config);
        assert_eq!(value("AUTH_ISSUER").as_deref(), Some("https://env"));
        assert_eq!(
            value("KV_STORE").as_deref(),
            Some("shared"),
            "empty env falls back"
        );
        assert_eq!(value("PHONE_CODE_SECRET").as_deref(), Some("from-config"));
        assert_eq!(value("PHONE_DEFAULT_REGION"), None);
        let empty_config = lookup(&[("auth_jwks", "")]);
        assert_eq!(
            resolve("AUTH_JWKS", &env, &empty_config),
            None,
            "empty is unset"
        );
    }

    #[test]
    fn every_name_is_a_valid_spin_variable_once_lower_cased_and_listed_once() {
        for (i, setting) in SETTINGS.iter().enumerate() {
            let key = config_key(setting.name);
            let mut chars = key.chars();
            assert!(
                chars.next().is_some_and(|c| c.is_ascii_lowercase()),
                "{key}"
            );
            assert!(
                chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                "{key}"
            );
            assert_eq!(find(&key), Some(setting));
            assert!(
                SETTINGS[..i].iter().all(|other| other.name != setting.name),
                "{} twice",
                setting.name
            );
        }
        assert_eq!(find("NOT_A_SETTING"), None);
        assert!(is_env_name("TWILIO_FROM") && !is_env_name("twilio_from") && !is_env_name("PATH"));
        assert!(read_by(Reader::Core).any(|s| s.name == "SMS_PROVIDER"));
        assert!(read_by(Reader::SmsProvider).any(|s| s.name == "SMS_PROVIDER"));
        assert!(!read_by(Reader::Core).any(|s| s.name == "TWILIO_AUTH_TOKEN"));
    }
}
