//! Twilio's Messages API: `POST {base}/2010-04-01/Accounts/{sid}/Messages.json`, form fields
//! `To`, `From`, `Body`, HTTP Basic auth `sid:token`; the answer's `sid` is the message id.

use crate::provider::{Answer, Message, Outgoing, SendError, Url, failure, post, setting, success};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use set_my_phone_outgoing_http::form;

const DEFAULT_BASE: &str = "https://api.twilio.com";

/// The Messages API call for `message` under the `TWILIO_*` settings.
pub fn request(
    get: &dyn Fn(&str) -> Option<String>,
    message: &Message,
) -> Result<Outgoing, SendError> {
    let (sid, token) = credentials(get)?;
    let from = get("TWILIO_FROM").ok_or_else(|| setting("TWILIO_FROM", "is not set"))?;
    let base = get("TWILIO_BASE_URL").unwrap_or_else(|| DEFAULT_BASE.into());
    let base =
        Url::parse(&base).ok_or_else(|| setting("TWILIO_BASE_URL", "is not an http(s) URL"))?;
    let url = base.join(&format!("/2010-04-01/Accounts/{sid}/Messages.json"));
    let body = form(&[
        ("To", &message.recipient),
        ("From", &from),
        ("Body", &message.text),
    ]);
    let headers = headers(&sid, &token);
    Ok(post(url, headers, body.into_bytes()))
}

/// The account's sid and auth token (`TWILIO_ACCOUNT_SID`, `TWILIO_AUTH_TOKEN`), shared with
/// Twilio Verify. The sid becomes part of paths: letters and digits only (Twilio's are `AC` + hex).
pub fn credentials(get: &dyn Fn(&str) -> Option<String>) -> Result<(String, String), SendError> {
    let required = |name: &str| get(name).ok_or_else(|| setting(name, "is not set"));
    let sid = required("TWILIO_ACCOUNT_SID")?;
    let token = required("TWILIO_AUTH_TOKEN")?;
    if !sid.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(setting("TWILIO_ACCOUNT_SID", "must be letters and digits"));
    }
    Ok((sid, token))
}

/// A form post with HTTP Basic auth `sid:token`, answered in JSON.
pub fn headers(sid: &str, token: &str) -> Vec<(String, String)> {
    vec![
        (
            "content-type".to_string(),
            "application/x-www-form-urlencoded".to_string(),
        ),
        (
            "authorization".into(),
            format!("Basic {}", STANDARD.encode(format!("{sid}:{token}"))),
        ),
        ("accept".into(), "application/json".into()),
    ]
}

/// 2xx: the created message's `sid`; otherwise a classified failure carrying Twilio's
/// `message` (e.g. "The 'To' number … is not a valid phone number.") when it sent one, and its
/// `Retry-After` when it says "later" (429 with error 20429 when the account sends too fast).
pub fn interpret(answer: &Answer, now: u64) -> Result<String, SendError> {
    let json: Option<serde_json::Value> = serde_json::from_slice(&answer.body).ok();
    let field = |name: &str| {
        json.as_ref()
            .and_then(|j| j.get(name))
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
    };
    if !success(answer.status) {
        return Err(failure(answer, &field("message").unwrap_or_default(), now));
    }
    // Accepted without a readable sid: the message is on its way, so report it sent (an error
    // would invite a retry and a second SMS) under a generated id.
    Ok(field("sid")
        .filter(|sid| !sid.is_empty())
        .unwrap_or_else(|| format!("twilio-{now}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "TWILIO_ACCOUNT_SID" => Some("AC123".into()),
            "TWILIO_AUTH_TOKEN" => Some("tok".into()),
            "TWILIO_FROM" => Some("+15005550006".into()),
            "TWILIO_BASE_URL" => Some("http://127.0.0.1:9".into()),
            _ => None,
        }
    }

    fn message() -> Message {
        Message {
            recipient: "+41710000000".into(),
            text: "Code: é 1+1&x=y".into(),
            code: "1".into(),
            user_id: "u".into(),
            org_id: "o".into(),
            language: "en".into(),
        }
    }

    #[test]
    fn builds_the_messages_api_call() {
        let request = request(&env, &message()).unwrap();
        assert!(!request.url.https);
        assert_eq!(request.url.authority, "127.0.0.1:9");
        assert_eq!(
            request.url.path_with_query,
            "/2010-04-01/Accounts/AC123/Messages.json"
        );
        assert_eq!(
            String::from_utf8(request.body.clone()).unwrap(),
            "To=%2B41710000000&From=%2B15005550006&Body=Code%3A+%C3%A9+1%2B1%26x%3Dy"
        );
        // base64("AC123:tok"), computed with `printf AC123:tok | base64`.
        assert_eq!(request.header("authorization"), Some("Basic QUMxMjM6dG9r"));
        assert_eq!(
            request.header("content-type"),
            Some("application/x-www-form-urlencoded")
        );
    }

    #[test]
    fn base_url_defaults_to_twilio_and_sid_is_checked() {
        let default = |name: &str| match name {
            "TWILIO_BASE_URL" => None,
            other => env(other),
        };
        let request = request(&default, &message()).unwrap();
        assert!(request.url.https);
        assert_eq!(request.url.authority, "api.twilio.com");
        let sneaky = |name: &str| match name {
            "TWILIO_ACCOUNT_SID" => Some("AC1/../x".into()),
            other => env(other),
        };
        assert!(matches!(
            super::request(&sneaky, &message()),
            Err(SendError::Permanent(why)) if why.contains("TWILIO_ACCOUNT_SID") && !why.contains("..")
        ));
    }

    #[test]
    fn answers_map_to_sids_and_errors() {
        let answer = |status, body: &str| Answer {
            status,
            headers: Vec::new(),
            body: body.as_bytes().to_vec(),
        };
        assert_eq!(
            interpret(&answer(201, r#"{"sid":"SM1","status":"queued"}"#), 7),
            Ok("SM1".into())
        );
        assert_eq!(
            interpret(&answer(201, "not json"), 7),
            Ok("twilio-7".into())
        );
        assert_eq!(
            interpret(
                &answer(
                    400,
                    r#"{"code":21211,"message":"Invalid 'To' Phone Number","status":400}"#
                ),
                7
            ),
            Err(SendError::Permanent(
                "provider answered 400: Invalid 'To' Phone Number".into()
            ))
        );
        assert_eq!(
            interpret(&answer(401, ""), 7),
            Err(SendError::Permanent("provider answered 401".into()))
        );
        assert!(matches!(
            interpret(&answer(503, ""), 7),
            Err(SendError::Retryable(_))
        ));
    }

    #[test]
    fn too_many_requests_is_retryable_after_twilios_hint() {
        let answer = Answer {
            status: 429,
            headers: vec![("retry-after".into(), "5".into())],
            body: br#"{"code":20429,"message":"Too Many Requests","status":429}"#.to_vec(),
        };
        assert_eq!(
            interpret(&answer, 7),
            Err(SendError::Retryable(
                "provider answered 429: Too Many Requests; retry after 5 s".into()
            ))
        );
    }
}
