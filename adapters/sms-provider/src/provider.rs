//! The provider-independent part: which provider, what to send, and what an answer means.

use crate::{twilio, webhook};
pub use set_my_phone_outgoing_http::{Answer, Method, Request as Outgoing, Url};
use std::time::Duration;

/// Time allowed for one delivery: connecting, sending, and reading the whole answer.
pub const TIMEOUT: Duration = Duration::from_secs(5);
/// Largest provider answer read; the rest is ignored.
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// What `send` answers when `SMS_PROVIDER` is `none` or unset.
pub const NOT_CONFIGURED: &str = "no SMS provider configured (SMS_PROVIDER=none)";

/// One message, as the `sender` interface hands it over.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// E.164, e.g. `+41710000000`.
    pub recipient: String,
    pub text: String,
    pub code: String,
    pub user_id: String,
    pub org_id: String,
}

/// Why a message was not sent (mirrors the WIT `send-error`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SendError {
    Retryable(String),
    Permanent(String),
}

/// A `POST` of `body` to a provider, under the delivery's time and size limits.
pub fn post(url: Url, headers: Vec<(String, String)>, body: Vec<u8>) -> Outgoing {
    Outgoing {
        method: Method::Post,
        url,
        headers,
        body,
        timeout: TIMEOUT,
        max_answer_bytes: MAX_RESPONSE_BYTES,
    }
}

/// The providers that talk HTTP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Provider {
    Webhook,
    Twilio,
}

/// What to do with a message under the current settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Plan {
    /// Nothing to send; the (permanent) error says why.
    Skip(SendError),
    /// Make `request`, then read the answer with [`interpret`].
    Send {
        request: Outgoing,
        provider: Provider,
    },
}

/// Reads the settings through `env` and prepares the request for `message`; `now` is unix
/// seconds (the webhook signs it). Blank settings count as unset.
pub fn plan(env: &dyn Fn(&str) -> Option<String>, message: &Message, now: u64) -> Plan {
    let get = |name: &str| env(name).filter(|v| !v.trim().is_empty());
    let chosen = get("SMS_PROVIDER").map(|v| v.trim().to_ascii_lowercase());
    let prepared = match chosen.as_deref() {
        None | Some("none") => Err(SendError::Permanent(NOT_CONFIGURED.into())),
        Some("webhook") => webhook::request(&get, message, now).map(|r| (r, Provider::Webhook)),
        Some("twilio") => twilio::request(&get, message).map(|r| (r, Provider::Twilio)),
        Some(_) => Err(setting("SMS_PROVIDER", "must be none, webhook or twilio")),
    };
    match prepared {
        Ok((request, provider)) => Plan::Send { request, provider },
        Err(e) => Plan::Skip(e),
    }
}

/// A missing or bad setting: permanent until someone fixes it. Names the variable, never its
/// value (it may be a secret).
pub fn setting(variable: &str, problem: &str) -> SendError {
    SendError::Permanent(format!("{variable} {problem}"))
}

/// Maps a provider's answer to a message id or an error saying whether retrying can help;
/// `now` (unix seconds) names messages whose provider gave no id.
pub fn interpret(provider: Provider, answer: &Answer, now: u64) -> Result<String, SendError> {
    match provider {
        Provider::Webhook => webhook::interpret(answer, now),
        Provider::Twilio => twilio::interpret(answer, now),
    }
}

/// An unsuccessful status: 4xx means the request itself is wrong (and 3xx that the URL is:
/// redirects are not followed), so retrying cannot help; 5xx and anything else may pass later.
pub fn failure(status: u16, detail: &str) -> SendError {
    let text = if detail.is_empty() {
        format!("provider answered {status}")
    } else {
        format!("provider answered {status}: {detail}")
    };
    if (300..500).contains(&status) {
        SendError::Permanent(text)
    } else {
        SendError::Retryable(text)
    }
}

/// Whether `status` is a success (2xx).
pub fn success(status: u16) -> bool {
    (200..300).contains(&status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn message() -> Message {
        Message {
            recipient: "+41710000000".into(),
            text: "Your code is ABC123".into(),
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
            other => panic!("expected a permanent skip, got {other:?}"),
        }
    }

    #[test]
    fn none_or_unset_sends_nothing_and_says_so() {
        assert_eq!(skipped(plan_with(&[])), NOT_CONFIGURED);
        assert_eq!(
            skipped(plan_with(&[("SMS_PROVIDER", "none")])),
            NOT_CONFIGURED
        );
        assert_eq!(skipped(plan_with(&[("SMS_PROVIDER", " ")])), NOT_CONFIGURED);
    }

    #[test]
    fn bad_settings_are_permanent_and_named_without_values() {
        let why = skipped(plan_with(&[("SMS_PROVIDER", "pigeon")]));
        assert!(
            why.contains("SMS_PROVIDER") && !why.contains("pigeon"),
            "{why}"
        );
        let why = skipped(plan_with(&[("SMS_PROVIDER", "webhook")]));
        assert!(why.contains("SMS_WEBHOOK_URL"), "{why}");
        let why = skipped(plan_with(&[
            ("SMS_PROVIDER", "webhook"),
            ("SMS_WEBHOOK_URL", "secret-not-a-url"),
        ]));
        assert!(
            why.contains("SMS_WEBHOOK_URL") && !why.contains("secret"),
            "{why}"
        );
        for missing in ["TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_FROM"] {
            let settings: Vec<(&str, &str)> = [
                ("SMS_PROVIDER", "twilio"),
                ("TWILIO_ACCOUNT_SID", "AC1"),
                ("TWILIO_AUTH_TOKEN", "secret-token"),
                ("TWILIO_FROM", "+15005550006"),
            ]
            .into_iter()
            .filter(|(k, _)| *k != missing)
            .collect();
            let why = skipped(plan_with(&settings));
            assert!(why.contains(missing) && !why.contains("secret"), "{why}");
        }
    }

    #[test]
    fn configured_providers_plan_a_request() {
        let plan = plan_with(&[
            ("SMS_PROVIDER", "Webhook"),
            ("SMS_WEBHOOK_URL", "http://127.0.0.1:9/hook"),
        ]);
        assert!(
            matches!(&plan, Plan::Send { provider: Provider::Webhook, request }
                if request.header("zitadel-signature").is_none()),
            "{plan:?}"
        );
        let plan = plan_with(&[
            ("SMS_PROVIDER", "twilio"),
            ("TWILIO_ACCOUNT_SID", "AC1"),
            ("TWILIO_AUTH_TOKEN", "t"),
            ("TWILIO_FROM", "+15005550006"),
        ]);
        assert!(
            matches!(&plan, Plan::Send { provider: Provider::Twilio, request }
                if request.url.authority == "api.twilio.com" && request.url.https),
            "{plan:?}"
        );
    }

    #[test]
    fn status_classes_decide_retrying() {
        assert!(matches!(failure(400, ""), SendError::Permanent(_)));
        assert!(matches!(failure(429, ""), SendError::Permanent(_)));
        assert!(matches!(failure(301, ""), SendError::Permanent(_)));
        assert!(matches!(failure(500, "x"), SendError::Retryable(_)));
        assert!(matches!(failure(503, ""), SendError::Retryable(_)));
        assert_eq!(
            failure(404, "gone"),
            SendError::Permanent("provider answered 404: gone".into())
        );
        assert!(success(200) && success(204) && !success(199) && !success(300));
    }
}
