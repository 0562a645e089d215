//! Sending verification codes: the message the core hands to the `sms` import (its text is
//! `sms_text.rs`'s).

/// One message for the `set-my-phone:sms/sender` import, and why it was not sent.
pub use set_my_phone_wire::sms::{SendError, SmsMessage as Message};

pub trait Sms {
    /// Delivers `message`; answers the provider's message id.
    fn send(&self, message: &Message) -> Result<String, SendError>;
}
