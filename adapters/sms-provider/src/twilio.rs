//! Twilio's Messages API: `POST {base}/2010-04-01/Accounts/{sid}/Messages.json`, form fields
//! `To`, `From`, `Body`, HTTP Basic auth `sid:token`; the answer's `sid` is the message id.

use crate::provider::{Answer, Message, Outgoing, SendError, failure, setting};
use crate::url::Url;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

const DEFAULT_BASE: &str = "https://api.twilio.com";

pub fn request(
    get: &dyn Fn(&str) -> Option<String>,
    message: &Message,
) -> Result<Outgoing, SendError> {
    let sid =
        get("TWILIO_ACCOUNT_SID").ok_or_else(|| setting("TWILIO_ACCOUNT_SID", "is not set"))?;
    let token =
        get("TWILIO_AUTH_TOKEN").ok_or_else(|| setting("TWILIO_AUTH_TOKEN", "is not set"))?;
    let from = get("TWILIO_FROM").ok_or_else(|| setting("TWILIO_FROM", "is not set"))?;
    if !sid.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(setting("TWILIO_ACCOUNT_SID", "must be letters and digits"));
    }
    let base = get("TWILIO_BASE_URL").unwrap_or_else(|| DEFAULT_BASE.into());
    let base =
        Url::parse(&base).ok_or_else(|| setting("TWILIO_BASE_URL", "is not an http(s) URL"))?;
    let url = base.join(&format!("/2010-04-01/Accounts/{sid}/Messages.json"));
    let body = format!(
        "To={}&From={}&Body={}",
        form_encode(&message.recipient),
        form_encode(&from),
        form_encode(&message.text)
    );
    let headers = vec![
        (
            "content-type".to_string(),
            "application/x-www-form-urlencoded".to_string(),
        ),
        (
            "authorization".into(),
            format!("Basic {}", STANDARD.encode(format!("{sid}:{token}"))),
        ),
        ("accept".into(), "application/json".into()),
    ];
    Ok(Outgoing {
        url,
        headers,
        body: body.into_bytes(),
    })
}

/// application/x-www-form-urlencoded: unreserved characters stay, space is `+`, the rest `%XX`.
pub fn form_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(byte))
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

pub fn interpret(answer: &Answer) -> Result<String, SendError> {
    let json: Option<serde_json::Value> = serde_json::from_slice(&answer.body).ok();
    let field = |name: &str| {
        json.as_ref()
            .and_then(|j| j.get(name))
            .and_then(|v| v.as_str())
            .map(String::from)
    };
    if !(200..300).contains(&answer.status) {
        return Err(failure(
            answer.status,
            &field("message").unwrap_or_default(),
        ));
    }
    field("sid").ok_or_else(|| SendError::Retryable("Twilio's answer has no message sid".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_the_messages_api_call() {
        let env = |name: &str| match name {
            "TWILIO_ACCOUNT_SID" => Some("AC123".to_string()),
            "TWILIO_AUTH_TOKEN" => Some("tok".to_string()),
            "TWILIO_FROM" => Some("+15005550006".to_string()),
            "TWILIO_BASE_URL" => Some("http://127.0.0.1:9".to_string()),
            _ => None,
        };
        let message = Message {
            recipient: "+41710000000".into(),
            text: "code é 1".into(),
            code: "1".into(),
            user_id: "u".into(),
            org_id: "o".into(),
        };
        let request = request(&env, &message).unwrap();
        assert_eq!(
            request.url.path_with_query,
            "/2010-04-01/Accounts/AC123/Messages.json"
        );
        assert_eq!(
            String::from_utf8(request.body).unwrap(),
            "To=%2B41710000000&From=%2B15005550006&Body=code+%C3%A9+1"
        );
        let auth = &request
            .headers
            .iter()
            .find(|(n, _)| n == "authorization")
            .unwrap()
            .1;
        assert_eq!(auth, "Basic QUMxMjM6dG9r");
    }

    #[test]
    fn answers_map_to_sids_and_errors() {
        let answer = |status, body: &str| Answer {
            status,
            headers: Vec::new(),
            body: body.as_bytes().to_vec(),
        };
        assert_eq!(
            interpret(&answer(201, r#"{"sid":"SM1"}"#)),
            Ok("SM1".into())
        );
        match interpret(&answer(
            400,
            r#"{"code":21211,"message":"Invalid 'To' Phone Number"}"#,
        )) {
            Err(SendError::Permanent(why)) => assert!(why.contains("Invalid 'To'"), "{why}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            interpret(&answer(503, "")),
            Err(SendError::Retryable(_))
        ));
    }
}
