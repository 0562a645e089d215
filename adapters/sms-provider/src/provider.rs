//! The provider-independent part: which provider, what to send, and what an answer means.

use crate::url::Url;
use crate::{twilio, webhook};

/// Time allowed for one delivery, connection to last byte.
pub const TIMEOUT_MS: u64 = 5_000;
/// Largest provider answer read.
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// One message, as the `sender` interface hands it over.
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

/// An HTTP request to make.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outgoing {
    pub url: Url,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// A provider's answer.
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// What a configured provider does with a message.
pub enum Plan {
    /// Nothing to send: the permanent error says why.
    Skip(SendError),
    Send {
        request: Outgoing,
        provider: Provider,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Provider {
    Webhook,
    Twilio,
}

/// Reads the settings through `env` and prepares the request for `message`; `now` is unix
/// seconds (the webhook signs it).
pub fn plan(env: &dyn Fn(&str) -> Option<String>, message: &Message, now: u64) -> Plan {
    let get = |name: &str| env(name).filter(|v| !v.trim().is_empty());
    let prepared = match get("SMS_PROVIDER").as_deref().map(str::trim) {
        None | Some("none") => {
            return Plan::Skip(SendError::Permanent(
                "no SMS provider configured (SMS_PROVIDER=none)".into(),
            ));
        }
        Some("webhook") => webhook::request(&get, message, now).map(|r| (r, Provider::Webhook)),
        Some("twilio") => twilio::request(&get, message).map(|r| (r, Provider::Twilio)),
        Some(_) => Err(setting("SMS_PROVIDER", "must be none, webhook or twilio")),
    };
    match prepared {
        Ok((request, provider)) => Plan::Send { request, provider },
        Err(e) => Plan::Skip(e),
    }
}

/// A missing or bad setting: permanent until someone fixes it. Names the variable, not its value.
pub fn setting(variable: &str, problem: &str) -> SendError {
    SendError::Permanent(format!("{variable} {problem}"))
}

/// Maps a provider's answer to a message id or an error saying whether retrying can help.
pub fn interpret(provider: Provider, answer: &Answer) -> Result<String, SendError> {
    match provider {
        Provider::Webhook => webhook::interpret(answer),
        Provider::Twilio => twilio::interpret(answer),
    }
}

/// 4xx means the request itself is wrong; anything else unsuccessful may pass later.
pub fn failure(status: u16, detail: &str) -> SendError {
    let text = if detail.is_empty() {
        format!("provider answered {status}")
    } else {
        format!("provider answered {status}: {detail}")
    };
    if (400..500).contains(&status) {
        SendError::Permanent(text)
    } else {
        SendError::Retryable(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    pub fn message() -> Message {
        Message {
            recipient: "+41710000000".into(),
            text: "A new phone number has been added. Please use the following code to verify it ABC123".into(),
            code: "ABC123".into(),
            user_id: "u1".into(),
            org_id: "o1".into(),
        }
    }

    fn plan_with(pairs: &[(&str, &str)]) -> Plan {
        let env: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        plan(&|name| env.get(name).cloned(), &message(), 1_700_000_000)
    }

    fn skipped(plan: Plan) -> String {
        match plan {
            Plan::Skip(SendError::Permanent(why)) => why,
            _ => panic!("expected a permanent skip"),
        }
    }

    #[test]
    fn none_and_bad_settings_are_permanent_and_named() {
        assert!(skipped(plan_with(&[])).contains("SMS_PROVIDER=none"));
        assert!(skipped(plan_with(&[("SMS_PROVIDER", "pigeon")])).contains("SMS_PROVIDER"));
        assert!(skipped(plan_with(&[("SMS_PROVIDER", "webhook")])).contains("SMS_WEBHOOK_URL"));
        assert!(
            skipped(plan_with(&[
                ("SMS_PROVIDER", "webhook"),
                ("SMS_WEBHOOK_URL", "nope")
            ]))
            .contains("SMS_WEBHOOK_URL")
        );
        let twilio = skipped(plan_with(&[
            ("SMS_PROVIDER", "twilio"),
            ("TWILIO_ACCOUNT_SID", "AC1"),
            ("TWILIO_FROM", "+1"),
        ]));
        assert!(twilio.contains("TWILIO_AUTH_TOKEN"), "{twilio}");
    }

    #[test]
    fn status_classes_decide_retrying() {
        assert!(matches!(failure(400, ""), SendError::Permanent(_)));
        assert!(matches!(failure(429, ""), SendError::Permanent(_)));
        assert!(matches!(failure(500, "x"), SendError::Retryable(_)));
        assert!(matches!(failure(302, ""), SendError::Retryable(_)));
    }
}
