//! Twilio Verify: Twilio makes, sends and checks the code. `POST {base}/v2/Services/{sid}/Verifications`
//! (form `To`, `Channel`, `Locale`) sends one; `POST {base}/v2/Services/{sid}/VerificationCheck`
//! (form `To`, `Code`) answers `status: approved` for the right code. HTTP Basic auth as for
//! Twilio's Messages API (`twilio.rs`).

use crate::provider::{Answer, Message, Outgoing, SendError, Url, failure, post, setting, success};
use crate::twilio;
use set_my_phone_outgoing_http::form;

const DEFAULT_BASE: &str = "https://verify.twilio.com";
const CHANNELS: [&str; 3] = ["sms", "whatsapp", "call"];
/// Twilio's error code for "no more checks on this verification" (sent with status 429): the
/// code is used up, so the answer is "not approved", not "try later".
const MAX_CHECK_ATTEMPTS: i64 = 60202;
/// "No more sends to this number for now" (429): Twilio's own lockout lasts minutes, longer
/// than a delivery's retries, so it is a permanent failure of this delivery.
const MAX_SEND_ATTEMPTS: i64 = 60203;

/// A Verify call to `resource` (`Verifications` or `VerificationCheck`) under the settings.
fn call(
    get: &dyn Fn(&str) -> Option<String>,
    resource: &str,
    fields: &[(&str, &str)],
) -> Result<Outgoing, SendError> {
    let (sid, token) = twilio::credentials(get)?;
    let service = get("TWILIO_VERIFY_SERVICE_SID")
        .ok_or_else(|| setting("TWILIO_VERIFY_SERVICE_SID", "is not set"))?;
    // Part of the path: letters and digits only (Twilio's are `VA` + hex).
    if !service.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(setting(
            "TWILIO_VERIFY_SERVICE_SID",
            "must be letters and digits",
        ));
    }
    let base = get("TWILIO_VERIFY_BASE_URL").unwrap_or_else(|| DEFAULT_BASE.into());
    let base = Url::parse(&base)
        .ok_or_else(|| setting("TWILIO_VERIFY_BASE_URL", "is not an http(s) URL"))?;
    let url = base.join(&format!("/v2/Services/{service}/{resource}"));
    let headers = twilio::headers(&sid, &token);
    Ok(post(url, headers, form(fields).into_bytes()))
}

/// Starts a verification: Twilio sends its own code to `message.recipient` over
/// `TWILIO_VERIFY_CHANNEL` (sms, whatsapp or call; default sms), in `message.language`.
pub fn request(
    get: &dyn Fn(&str) -> Option<String>,
    message: &Message,
) -> Result<Outgoing, SendError> {
    let channel = get("TWILIO_VERIFY_CHANNEL")
        .map(|c| c.trim().to_ascii_lowercase())
        .unwrap_or_else(|| "sms".into());
    if !CHANNELS.contains(&channel.as_str()) {
        return Err(setting(
            "TWILIO_VERIFY_CHANNEL",
            "must be sms, whatsapp or call",
        ));
    }
    let mut fields = vec![("To", message.recipient.as_str()), ("Channel", &channel)];
    if !message.language.is_empty() {
        fields.push(("Locale", &message.language));
    }
    call(get, "Verifications", &fields)
}

/// Asks whether `code` is the one Twilio sent to `recipient`.
pub fn check_request(
    get: &dyn Fn(&str) -> Option<String>,
    recipient: &str,
    code: &str,
) -> Result<Outgoing, SendError> {
    call(
        get,
        "VerificationCheck",
        &[("To", recipient), ("Code", code)],
    )
}

fn json(answer: &Answer) -> Option<serde_json::Value> {
    serde_json::from_slice(&answer.body).ok()
}

fn text(json: Option<&serde_json::Value>, name: &str) -> Option<String> {
    json?.get(name)?.as_str().map(str::to_owned)
}

fn twilio_code(json: Option<&serde_json::Value>) -> Option<i64> {
    json?.get("code")?.as_i64()
}

/// A started verification: its `sid` (`VE…`) as the message id.
pub fn interpret(answer: &Answer, now: u64) -> Result<String, SendError> {
    let json = json(answer);
    if !success(answer.status) {
        let detail = text(json.as_ref(), "message").unwrap_or_default();
        if twilio_code(json.as_ref()) == Some(MAX_SEND_ATTEMPTS) {
            return Err(SendError::Permanent(format!(
                "provider answered {}: {detail}",
                answer.status
            )));
        }
        return Err(failure(answer, &detail, now));
    }
    Ok(text(json.as_ref(), "sid")
        .filter(|sid| !sid.is_empty())
        .unwrap_or_else(|| format!("twilio-verify-{now}")))
}

/// A check's answer: approved or not. Twilio answers 404 when it has no pending verification
/// for the number (expired, approved already, cancelled) and 429/60202 when the checks are
/// used up: both mean "not this code", not a failure to check.
pub fn interpret_check(answer: &Answer, now: u64) -> Result<bool, SendError> {
    let json = json(answer);
    if answer.status == 404 || twilio_code(json.as_ref()) == Some(MAX_CHECK_ATTEMPTS) {
        return Ok(false);
    }
    if !success(answer.status) {
        let detail = text(json.as_ref(), "message").unwrap_or_default();
        return Err(failure(answer, &detail, now));
    }
    Ok(text(json.as_ref(), "status").as_deref() == Some("approved"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "TWILIO_ACCOUNT_SID" => Some("AC123".into()),
            "TWILIO_AUTH_TOKEN" => Some("tok".into()),
            "TWILIO_VERIFY_SERVICE_SID" => Some("VA42".into()),
            "TWILIO_VERIFY_BASE_URL" => Some("http://127.0.0.1:9".into()),
            _ => None,
        }
    }

    fn message() -> Message {
        Message {
            recipient: "+41710000000".into(),
            text: String::new(),
            code: String::new(),
            user_id: "u".into(),
            org_id: "o".into(),
            language: "de".into(),
        }
    }

    fn body(request: &Outgoing) -> String {
        String::from_utf8(request.body.clone()).unwrap()
    }

    #[test]
    fn starts_a_verification_in_the_users_language() {
        let request = request(&env, &message()).unwrap();
        assert_eq!(request.url.authority, "127.0.0.1:9");
        assert_eq!(
            request.url.path_with_query,
            "/v2/Services/VA42/Verifications"
        );
        assert_eq!(body(&request), "To=%2B41710000000&Channel=sms&Locale=de");
        // base64("AC123:tok"), computed with `printf AC123:tok | base64`.
        assert_eq!(request.header("authorization"), Some("Basic QUMxMjM6dG9r"));
        let whatsapp = |name: &str| match name {
            "TWILIO_VERIFY_CHANNEL" => Some("WhatsApp".into()),
            other => env(other),
        };
        assert_eq!(
            body(&super::request(&whatsapp, &message()).unwrap()),
            "To=%2B41710000000&Channel=whatsapp&Locale=de"
        );
    }

    #[test]
    fn checks_send_the_typed_code() {
        let request = check_request(&env, "+41710000000", "123456").unwrap();
        assert_eq!(
            request.url.path_with_query,
            "/v2/Services/VA42/VerificationCheck"
        );
        assert_eq!(body(&request), "To=%2B41710000000&Code=123456");
    }

    #[test]
    fn settings_are_checked_and_named_without_values() {
        let default = |name: &str| match name {
            "TWILIO_VERIFY_BASE_URL" => None,
            other => env(other),
        };
        let request = request(&default, &message()).unwrap();
        assert!(request.url.https);
        assert_eq!(request.url.authority, "verify.twilio.com");
        for (name, value) in [
            ("TWILIO_VERIFY_SERVICE_SID", "VA1/../secret"),
            ("TWILIO_VERIFY_CHANNEL", "pigeon-secret"),
            ("TWILIO_VERIFY_BASE_URL", "secret-not-a-url"),
        ] {
            let bad = |n: &str| {
                if n == name {
                    Some(value.into())
                } else {
                    env(n)
                }
            };
            let why = match super::request(&bad, &message()) {
                Err(SendError::Permanent(why)) => why,
                other => panic!("{name}: {other:?}"),
            };
            assert!(why.contains(name) && !why.contains("secret"), "{why}");
        }
        let missing = |n: &str| {
            if n == "TWILIO_VERIFY_SERVICE_SID" {
                None
            } else {
                env(n)
            }
        };
        assert!(matches!(
            check_request(&missing, "+41710000000", "1"),
            Err(SendError::Permanent(why)) if why.contains("TWILIO_VERIFY_SERVICE_SID")
        ));
    }

    fn answer(status: u16, body: &str) -> Answer {
        Answer {
            status,
            headers: Vec::new(),
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn verification_answers_map_to_sids_and_errors() {
        assert_eq!(
            interpret(&answer(201, r#"{"sid":"VE1","status":"pending"}"#), 7),
            Ok("VE1".into())
        );
        assert_eq!(interpret(&answer(201, ""), 7), Ok("twilio-verify-7".into()));
        assert!(matches!(
            interpret(&answer(429, r#"{"code":60203,"message":"Max send attempts reached"}"#), 7),
            Err(SendError::Permanent(why)) if why.contains("Max send attempts")
        ));
        assert!(matches!(
            interpret(
                &answer(429, r#"{"code":20429,"message":"Too Many Requests"}"#),
                7
            ),
            Err(SendError::Retryable(_))
        ));
        assert!(matches!(
            interpret(&answer(401, ""), 7),
            Err(SendError::Permanent(_))
        ));
    }

    #[test]
    fn check_answers_say_approved_or_not() {
        let check = |status, body: &str| interpret_check(&answer(status, body), 7);
        assert_eq!(
            check(200, r#"{"status":"approved","valid":true}"#),
            Ok(true)
        );
        assert_eq!(
            check(200, r#"{"status":"pending","valid":false}"#),
            Ok(false)
        );
        assert_eq!(check(200, "not json"), Ok(false));
        assert_eq!(check(404, r#"{"code":20404}"#), Ok(false));
        assert_eq!(check(429, r#"{"code":60202}"#), Ok(false));
        assert!(matches!(check(503, ""), Err(SendError::Retryable(_))));
        assert!(matches!(check(401, ""), Err(SendError::Permanent(_))));
    }
}
