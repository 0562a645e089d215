//! Sending verification codes: the message the core hands to the `sms` import, and its text.

/// One message for the `set-my-phone:sms/sender` import.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub recipient: String,
    pub text: String,
    pub code: String,
    pub user_id: String,
    pub org_id: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SendError {
    Retryable(String),
    Permanent(String),
}

pub trait Sms {
    /// Delivers `message`; answers the provider's message id.
    fn send(&self, message: &Message) -> Result<String, SendError>;
}

/// Upstream's English text for a new phone number's code.
pub fn phone_code_text(code: &str) -> String {
    format!("A new phone number has been added. Please use the following code to verify it {code}")
}
