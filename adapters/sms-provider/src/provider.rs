//! The provider-independent part: which provider, what to send, and what an answer means.

use crate::{retry, sns, twilio, twilio_verify, webhook, whatsapp};
pub use set_my_phone_outgoing_http::{Answer, Method, Request as Outgoing, Url};
use std::time::Duration;

/// Time allowed for one delivery: connecting, sending, and reading the whole answer.
pub const TIMEOUT: Duration = Duration::from_secs(5);
/// Largest provider answer read; the rest is ignored.
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// What `send` answers when `SMS_PROVIDER` is `none` or unset.
pub const NOT_CONFIGURED: &str = "no SMS provider configured (SMS_PROVIDER=none)";

/// One message, as the `sender` interface hands it over, and why it was not sent.
pub use set_my_phone_wire::sms::{SendError, SmsMessage as Message};

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
    TwilioVerify,
    Sns,
    WhatsApp,
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

/// The chosen provider's name, lower case; `None` when unset or blank.
fn chosen(env: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    env("SMS_PROVIDER")
        .map(|v| v.trim().to_ascii_lowercase())
        .filter(|v| !v.is_empty())
}

/// Whether the chosen provider makes and checks the codes itself (Twilio Verify).
pub fn makes_codes(env: &dyn Fn(&str) -> Option<String>) -> bool {
    chosen(env).as_deref() == Some("twilio-verify")
}

/// The request that asks the provider whether `code` is right for `recipient`: Twilio Verify's
/// check (read its answer with [`twilio_verify::interpret_check`]); other providers have none.
pub fn check(
    env: &dyn Fn(&str) -> Option<String>,
    recipient: &str,
    code: &str,
) -> Result<Outgoing, SendError> {
    let get = |name: &str| env(name).filter(|v| !v.trim().is_empty());
    if !makes_codes(&get) {
        return Err(SendError::Permanent(
            "this SMS provider does not check codes (only SMS_PROVIDER=twilio-verify does)".into(),
        ));
    }
    twilio_verify::check_request(&get, recipient, code)
}

/// Reads the settings through `env` and prepares the request for `message`; `now` is unix
/// seconds (the webhook signs it). Blank settings count as unset.
pub fn plan(env: &dyn Fn(&str) -> Option<String>, message: &Message, now: u64) -> Plan {
    let get = |name: &str| env(name).filter(|v| !v.trim().is_empty());
    let prepared = match chosen(&get).as_deref() {
        None | Some("none") => Err(SendError::Permanent(NOT_CONFIGURED.into())),
        Some("webhook") => webhook::request(&get, message, now).map(|r| (r, Provider::Webhook)),
        Some("twilio") => twilio::request(&get, message).map(|r| (r, Provider::Twilio)),
        Some("twilio-verify") => {
            twilio_verify::request(&get, message).map(|r| (r, Provider::TwilioVerify))
        }
        Some("sns") => sns::request(&get, message, now).map(|r| (r, Provider::Sns)),
        Some("whatsapp") => whatsapp::request(&get, message).map(|r| (r, Provider::WhatsApp)),
        Some("custom") => Err(SendError::Permanent(
            "SMS_PROVIDER=custom needs a provider component of your own in place of this one \
             (docs/sms-providers.md)"
                .into(),
        )),
        Some(_) => Err(setting(
            "SMS_PROVIDER",
            "must be none, webhook, twilio, twilio-verify, sns, whatsapp or custom",
        )),
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
        Provider::TwilioVerify => twilio_verify::interpret(answer, now),
        Provider::Sns => sns::interpret(answer, now),
        Provider::WhatsApp => whatsapp::interpret(answer, now),
    }
}

/// Statuses that say "not now" rather than "not this": 408 (the provider gave up waiting for
/// the request) and 429 (too many requests).
const LATER: [u16; 2] = [408, 429];

/// An unsuccessful answer. Other 4xx mean the request itself is wrong (and 3xx that the URL is:
/// redirects are not followed), so retrying cannot help; 408, 429, 5xx and anything else may
/// pass later. A retryable failure names the provider's `Retry-After`, if it sent one, as
/// seconds from `now` (unix seconds): `provider answered 429; retry after 30 s`.
pub fn failure(answer: &Answer, detail: &str, now: u64) -> SendError {
    let status = answer.status;
    let mut text = if detail.is_empty() {
        format!("provider answered {status}")
    } else {
        format!("provider answered {status}: {detail}")
    };
    if (300..500).contains(&status) && !LATER.contains(&status) {
        return SendError::Permanent(text);
    }
    let hint = answer.header("retry-after");
    if let Some(seconds) = hint.and_then(|value| retry::retry_after(value, now)) {
        text.push_str(&format!("; retry after {seconds} s"));
    }
    SendError::Retryable(text)
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
            language: "en".into(),
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
    fn only_twilio_verify_makes_and_checks_codes() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        let verify = env(&[
            ("SMS_PROVIDER", " Twilio-Verify "),
            ("TWILIO_ACCOUNT_SID", "AC1"),
            ("TWILIO_AUTH_TOKEN", "t"),
            ("TWILIO_VERIFY_SERVICE_SID", "VA1"),
        ]);
        assert!(makes_codes(&verify));
        let request = check(&verify, "+41710000000", "123456").unwrap();
        assert_eq!(
            request.url.path_with_query,
            "/v2/Services/VA1/VerificationCheck"
        );
        assert!(matches!(
            plan(&verify, &message(), 0),
            Plan::Send {
                provider: Provider::TwilioVerify,
                ..
            }
        ));
        for others in [
            &[("SMS_PROVIDER", "twilio")][..],
            &[("SMS_PROVIDER", "none")],
            &[],
        ] {
            let get = env(others);
            assert!(!makes_codes(&get));
            assert!(matches!(
                check(&get, "+41710000000", "123456"),
                Err(SendError::Permanent(why)) if why.contains("twilio-verify")
            ));
        }
    }

    fn answer(status: u16, retry_after: Option<&str>) -> Answer {
        Answer {
            status,
            headers: retry_after
                .map(|value| vec![("Retry-After".to_string(), value.to_string())])
                .unwrap_or_default(),
            body: Vec::new(),
        }
    }

    const NOW: u64 = 1_445_412_480; // Wed, 21 Oct 2015 07:28:00 GMT

    #[test]
    fn status_classes_decide_retrying() {
        let fail = |status| failure(&answer(status, None), "", NOW);
        for status in [400, 401, 403, 404, 301, 302, 409, 422] {
            assert!(matches!(fail(status), SendError::Permanent(_)), "{status}");
        }
        for status in [408, 429, 500, 502, 503, 504, 600] {
            assert!(matches!(fail(status), SendError::Retryable(_)), "{status}");
        }
        assert_eq!(
            failure(&answer(404, None), "gone", NOW),
            SendError::Permanent("provider answered 404: gone".into())
        );
        assert!(success(200) && success(204) && !success(199) && !success(300));
    }

    #[test]
    fn retryable_failures_name_the_providers_retry_after() {
        assert_eq!(
            failure(&answer(429, Some("30")), "", NOW),
            SendError::Retryable("provider answered 429; retry after 30 s".into())
        );
        assert_eq!(
            failure(
                &answer(408, Some("Wed, 21 Oct 2015 07:30:00 GMT")),
                "slow",
                NOW
            ),
            SendError::Retryable("provider answered 408: slow; retry after 120 s".into())
        );
        assert_eq!(
            failure(&answer(503, Some("2")), "", NOW),
            SendError::Retryable("provider answered 503; retry after 2 s".into())
        );
        // A hint that cannot be read is left out; the failure stays retryable.
        assert_eq!(
            failure(&answer(429, Some("whenever")), "", NOW),
            SendError::Retryable("provider answered 429".into())
        );
        // A permanent failure is not retried, so its hint does not matter.
        assert_eq!(
            failure(&answer(400, Some("30")), "", NOW),
            SendError::Permanent("provider answered 400".into())
        );
    }
}
