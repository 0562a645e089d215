//! Sending verification codes: the message the core hands to the `sms` import, and its text.

/// One message for the `set-my-phone:sms/sender` import, and why it was not sent.
pub use set_my_phone_wire::sms::{SendError, SmsMessage as Message};

pub trait Sms {
    /// Delivers `message`; answers the provider's message id.
    fn send(&self, message: &Message) -> Result<String, SendError>;
}

/// Upstream's English text for a new phone number's code.
pub fn phone_code_text(code: &str) -> String {
    format!("A new phone number has been added. Please use the following code to verify it {code}")
}
