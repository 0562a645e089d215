//! The message the core hands to `set-my-phone:sms/sender` and why a delivery failed: the same
//! shape on both sides of that interface (the core, the SMS provider component, the reference
//! host's native senders), each converting to and from its own WIT bindings.

use std::fmt;

/// One verification message, already rendered by the core.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SmsMessage {
    /// Recipient in E.164 form, e.g. `+41710000000`.
    pub recipient: String,
    /// The full text to deliver.
    pub text: String,
    /// The verification code inside `text`.
    pub code: String,
    /// The user the code belongs to.
    pub user_id: String,
    /// The user's organisation (resource owner).
    pub org_id: String,
    /// The language `text` is written in (`en`, `de`, …).
    pub language: String,
}

/// Why a message was not sent (the WIT `send-error`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SendError {
    /// Trying again later may succeed.
    Retryable(String),
    /// Trying again will not help.
    Permanent(String),
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Retryable(reason) => write!(f, "retryable: {reason}"),
            Self::Permanent(reason) => write!(f, "permanent: {reason}"),
        }
    }
}

impl std::error::Error for SendError {}
