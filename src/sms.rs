//! Sending verification codes: the message the core hands to the `sms` import (its text is
//! `sms_text.rs`'s), and asking a provider that makes its own codes whether one is right.

/// One message for the `set-my-phone:sms/sender` import, and why it was not sent.
pub use set_my_phone_wire::sms::{SendError, SmsMessage as Message};

pub trait Sms {
    /// Whether the provider makes and checks codes itself (Twilio Verify): the core then stores
    /// no code, sends messages without one, and asks [`check`](Sms::check).
    fn makes_codes(&self) -> bool;
    /// Delivers `message`; answers the provider's message id.
    fn send(&self, message: &Message) -> Result<String, SendError>;
    /// Whether the provider approves `code` for `recipient` (only asked when it makes codes).
    fn check(&self, recipient: &str, code: &str) -> Result<bool, SendError>;
}
