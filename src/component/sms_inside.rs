//! Our SMS providers compiled into the core (feature `sms-inside`, the shipped artifacts).

use super::services::HostSettings;
use crate::platform::SettingsUnavailable;
use crate::sms::{Message, SendError, Sms};

/// The SMS provider compiled in (`sms-inside`): adapters/sms-provider's sending, with the
/// request's settings (the provider component reads the same ones: the environment over
/// wasi:config, by the wire crate's precedence).
pub struct ProviderInside<'a>(pub &'a HostSettings);

impl ProviderInside<'_> {
    /// The settings as the provider reads them; a config store that failed is worth a retry
    /// (as the provider component answers when it cannot read its settings).
    fn settings(&self) -> Result<impl Fn(&str) -> Option<String> + '_, SendError> {
        self.0
            .get("SMS_PROVIDER")
            .map_err(|SettingsUnavailable(why)| {
                SendError::Retryable(format!(
                    "the host's settings store (wasi:config) failed: {why}"
                ))
            })?;
        // The store answered above, and its answer is kept for the request: no lookup fails.
        Ok(|name: &str| self.0.get(name).ok().flatten())
    }
}

impl Sms for ProviderInside<'_> {
    fn makes_codes(&self) -> bool {
        self.settings()
            .is_ok_and(|lookup| set_my_phone_sms_provider::provider::makes_codes(&lookup))
    }

    fn check(&self, recipient: &str, code: &str) -> Result<bool, SendError> {
        set_my_phone_sms_provider::wasi::check(&self.settings()?, recipient, code)
    }

    fn send(&self, message: &Message) -> Result<String, SendError> {
        set_my_phone_sms_provider::wasi::send(&self.settings()?, message)
    }
}
