//! The SMS sender behind the `set-my-phone:sms/sender` import: the host's (the reference
//! host) or a provider component plugged in (`set-my-phone-tools plug`).

use super::bindings::set_my_phone::sms::sender;
use crate::sms::{Message, SendError, Sms};

/// The SMS provider behind the `set-my-phone:sms/sender` import.
pub struct WasiSms;

impl Sms for WasiSms {
    fn makes_codes(&self) -> bool {
        sender::makes_codes()
    }

    fn check(&self, recipient: &str, code: &str) -> Result<bool, SendError> {
        sender::check(recipient, code).map_err(from_wit)
    }

    fn send(&self, message: &Message) -> Result<String, SendError> {
        let message = sender::Message {
            recipient: message.recipient.clone(),
            text: message.text.clone(),
            code: message.code.clone(),
            user_id: message.user_id.clone(),
            org_id: message.org_id.clone(),
            language: message.language.clone(),
        };
        sender::send(&message).map_err(from_wit)
    }
}

fn from_wit(error: sender::SendError) -> SendError {
    match error {
        sender::SendError::Retryable(why) => SendError::Retryable(why),
        sender::SendError::Permanent(why) => SendError::Permanent(why),
    }
}
