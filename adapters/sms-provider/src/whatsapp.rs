//! WhatsApp through Meta's Cloud API: an authentication template message carrying the code
//! (`POST {base}/{version}/{phone-number-id}/messages`, bearer token, JSON
//! `{"messaging_product":"whatsapp","to":…,"type":"template","template":{name, language,
//! components}}`: the code is the body's parameter and the copy-code button's). The template
//! is one the business created in WhatsApp Manager in the category "authentication"; Meta
//! writes its text. The answer's `messages[0].id` is the message id.

use crate::provider::{Answer, Message, Outgoing, SendError, Url, failure, post, setting, success};

const DEFAULT_BASE: &str = "https://graph.facebook.com";
const DEFAULT_VERSION: &str = "v21.0";

/// Meta's error codes that mean "not now": rate limits, throttling, temporary failures.
const LATER: [i64; 7] = [4, 80007, 130429, 131048, 131056, 131000, 2];

/// The template message for `message` under the `SMS_WHATSAPP_*` settings.
pub fn request(
    get: &dyn Fn(&str) -> Option<String>,
    message: &Message,
) -> Result<Outgoing, SendError> {
    let required = |name: &str| get(name).ok_or_else(|| setting(name, "is not set"));
    let token = required("SMS_WHATSAPP_TOKEN")?;
    let number_id = required("SMS_WHATSAPP_PHONE_NUMBER_ID")?.trim().to_owned();
    if !number_id.chars().all(|c| c.is_ascii_digit()) {
        return Err(setting("SMS_WHATSAPP_PHONE_NUMBER_ID", "must be digits"));
    }
    let template = required("SMS_WHATSAPP_TEMPLATE")?.trim().to_owned();
    // The template's language: the setting, else the message's (WhatsApp names languages
    // `en`, `de`, `pt_BR`…, and the authentication templates exist per language).
    let language = get("SMS_WHATSAPP_LANGUAGE")
        .map(|l| l.trim().to_owned())
        .unwrap_or_else(|| message.language.clone());
    let version = get("SMS_WHATSAPP_API_VERSION").unwrap_or_else(|| DEFAULT_VERSION.into());
    if !version.starts_with('v') || !version[1..].chars().all(|c| c.is_ascii_digit() || c == '.') {
        return Err(setting(
            "SMS_WHATSAPP_API_VERSION",
            "must be a version such as v21.0",
        ));
    }
    let base = get("SMS_WHATSAPP_BASE_URL").unwrap_or_else(|| DEFAULT_BASE.into());
    let base = Url::parse(base.trim().trim_end_matches('/'))
        .ok_or_else(|| setting("SMS_WHATSAPP_BASE_URL", "is not an http(s) URL"))?;
    let url = base.join(&format!("/{}/{number_id}/messages", version.trim()));
    let body = serde_json::json!({
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        // WhatsApp takes the number without its `+`.
        "to": message.recipient.trim_start_matches('+'),
        "type": "template",
        "template": {
            "name": template,
            "language": {"code": language},
            "components": [
                {"type": "body", "parameters": [{"type": "text", "text": message.code}]},
                {"type": "button", "sub_type": "url", "index": "0",
                 "parameters": [{"type": "text", "text": message.code}]},
            ],
        },
    });
    let headers = vec![
        ("content-type".to_string(), "application/json".to_string()),
        ("authorization".into(), format!("Bearer {}", token.trim())),
        ("accept".into(), "application/json".into()),
    ];
    Ok(post(url, headers, body.to_string().into_bytes()))
}

/// 2xx: `messages[0].id`; otherwise a classified failure with Meta's `error.code` and
/// `error.message`; its rate-limit codes are retryable whatever the HTTP status.
pub fn interpret(answer: &Answer, now: u64) -> Result<String, SendError> {
    let json: serde_json::Value = serde_json::from_slice(&answer.body).unwrap_or_default();
    if success(answer.status) {
        return Ok(json["messages"][0]["id"]
            .as_str()
            .filter(|id| !id.is_empty())
            .map_or_else(|| format!("whatsapp-{now}"), str::to_owned));
    }
    let code = json["error"]["code"].as_i64();
    let detail = match (code, json["error"]["message"].as_str()) {
        (Some(code), Some(text)) => format!("error {code}: {text}"),
        (Some(code), None) => format!("error {code}"),
        (None, Some(text)) => text.to_owned(),
        (None, None) => String::new(),
    };
    match failure(answer, &detail, now) {
        SendError::Permanent(text) if code.is_some_and(|c| LATER.contains(&c)) => {
            Err(SendError::Retryable(text))
        }
        other => Err(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "SMS_WHATSAPP_TOKEN" => Some("wa-secret-token".into()),
            "SMS_WHATSAPP_PHONE_NUMBER_ID" => Some("106540352242922".into()),
            "SMS_WHATSAPP_TEMPLATE" => Some("verification_code".into()),
            _ => None,
        }
    }

    fn message() -> Message {
        Message {
            recipient: "+41710000000".into(),
            text: "ignored".into(),
            code: "ABC123".into(),
            user_id: "u".into(),
            org_id: "o".into(),
            language: "de".into(),
        }
    }

    #[test]
    fn the_template_carries_the_code_twice_in_the_users_language() {
        let request = request(&env, &message()).unwrap();
        assert_eq!(request.url.authority, "graph.facebook.com");
        assert_eq!(
            request.url.path_with_query,
            "/v21.0/106540352242922/messages"
        );
        assert_eq!(
            request.header("authorization"),
            Some("Bearer wa-secret-token")
        );
        let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
        assert_eq!(body["to"], "41710000000");
        assert_eq!(body["template"]["name"], "verification_code");
        assert_eq!(body["template"]["language"]["code"], "de");
        assert_eq!(
            body["template"]["components"][0]["parameters"][0]["text"],
            "ABC123"
        );
        assert_eq!(
            body["template"]["components"][1]["parameters"][0]["text"],
            "ABC123"
        );
        for missing in [
            "SMS_WHATSAPP_TOKEN",
            "SMS_WHATSAPP_PHONE_NUMBER_ID",
            "SMS_WHATSAPP_TEMPLATE",
        ] {
            let get = |name: &str| if name == missing { None } else { env(name) };
            match super::request(&get, &message()) {
                Err(SendError::Permanent(why)) => {
                    assert!(why.contains(missing) && !why.contains("wa-secret"), "{why}")
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn answers_give_the_message_id_or_a_classified_error() {
        let ok = Answer {
            status: 200,
            headers: vec![],
            body: br#"{"messaging_product":"whatsapp","contacts":[{"input":"41710000000","wa_id":"41710000000"}],"messages":[{"id":"wamid.HBgL"}]}"#.to_vec(),
        };
        assert_eq!(interpret(&ok, 0).unwrap(), "wamid.HBgL");
        let error = |status: u16, code: i64| {
            Answer {
            status,
            headers: vec![],
            body: format!(r#"{{"error":{{"message":"why","type":"OAuthException","code":{code},"fbtrace_id":"A"}}}}"#).into_bytes(),
        }
        };
        assert!(matches!(interpret(&error(400, 132001), 0),
            Err(SendError::Permanent(why)) if why.contains("error 132001: why")));
        assert!(matches!(
            interpret(&error(400, 131056), 0),
            Err(SendError::Retryable(_))
        ));
        assert!(matches!(
            interpret(&error(401, 190), 0),
            Err(SendError::Permanent(_))
        ));
        assert!(matches!(
            interpret(&error(503, 1), 0),
            Err(SendError::Retryable(_))
        ));
    }
}
