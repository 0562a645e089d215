//! ZITADEL's HTTP SMS provider, byte-compatible: the JSON body upstream posts and its
//! `ZITADEL-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(key, "<t>.<body>")>` header.

use crate::provider::{Answer, Message, Outgoing, SendError, failure, setting};
use crate::url::Url;
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;

pub fn request(
    get: &dyn Fn(&str) -> Option<String>,
    message: &Message,
    now: u64,
) -> Result<Outgoing, SendError> {
    let url = get("SMS_WEBHOOK_URL").ok_or_else(|| setting("SMS_WEBHOOK_URL", "is not set"))?;
    let url =
        Url::parse(&url).ok_or_else(|| setting("SMS_WEBHOOK_URL", "is not an http(s) URL"))?;
    let body = json!({
        "contextInfo": {
            "recipientPhoneNumber": message.recipient,
            "eventType": "user.human.phone.code.added",
            "provider": {"id": "set-my-phone", "description": "webhook"},
        },
        "templateData": {"text": message.text},
        "args": {"code": message.code, "userID": message.user_id, "orgID": message.org_id},
    })
    .to_string()
    .into_bytes();
    let mut headers = vec![("content-type".to_string(), "application/json".to_string())];
    if let Some(key) = get("SMS_WEBHOOK_SIGNING_KEY") {
        headers.push((
            "zitadel-signature".into(),
            signature(key.as_bytes(), now, &body),
        ));
    }
    Ok(Outgoing { url, headers, body })
}

/// `t=<now>,v1=<hex HMAC-SHA256(key, "<now>.<body>")>`.
pub fn signature(key: &[u8], now: u64, body: &[u8]) -> String {
    // HMAC takes keys of any length: new_from_slice cannot fail; an empty MAC would not verify.
    let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(key) else {
        return String::new();
    };
    mac.update(format!("{now}.").as_bytes());
    mac.update(body);
    format!("t={now},v1={}", hex::encode(mac.finalize().into_bytes()))
}

pub fn interpret(answer: &Answer) -> Result<String, SendError> {
    if !(200..300).contains(&answer.status) {
        return Err(failure(answer.status, ""));
    }
    let id = answer
        .headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("x-message-id"))
        .map(|(_, v)| v.clone());
    Ok(id.unwrap_or_else(|| "webhook".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_and_signature_match_upstream() {
        let env = |name: &str| match name {
            "SMS_WEBHOOK_URL" => Some("http://127.0.0.1:9/hook".to_string()),
            "SMS_WEBHOOK_SIGNING_KEY" => Some("key".to_string()),
            _ => None,
        };
        let message = Message {
            recipient: "+41710000000".into(),
            text: "code ABC123".into(),
            code: "ABC123".into(),
            user_id: "u1".into(),
            org_id: "o1".into(),
        };
        let request = request(&env, &message, 1_700_000_000).unwrap();
        let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
        assert_eq!(body["contextInfo"]["recipientPhoneNumber"], "+41710000000");
        assert_eq!(
            body["contextInfo"]["eventType"],
            "user.human.phone.code.added"
        );
        assert_eq!(body["templateData"]["text"], "code ABC123");
        assert_eq!(
            body["args"],
            json!({"code": "ABC123", "userID": "u1", "orgID": "o1"})
        );
        let header = &request
            .headers
            .iter()
            .find(|(n, _)| n == "zitadel-signature")
            .unwrap()
            .1;
        assert_eq!(header, &signature(b"key", 1_700_000_000, &request.body));
        // HMAC-SHA256("key", "1.{}") computed independently (Python hmac module).
        assert_eq!(
            signature(b"key", 1, b"{}"),
            "t=1,v1=1ba6b8171186efc613e8bcc0cbdab2748f24984d7c5a84faa2637afa0e40d224"
        );
    }

    #[test]
    fn answers_map_to_ids_and_errors() {
        let answer = |status, headers: Vec<(String, String)>| Answer {
            status,
            headers,
            body: Vec::new(),
        };
        assert_eq!(
            interpret(&answer(200, vec![("X-Message-Id".into(), "m1".into())])),
            Ok("m1".into())
        );
        assert_eq!(interpret(&answer(204, vec![])), Ok("webhook".into()));
        assert!(matches!(
            interpret(&answer(404, vec![])),
            Err(SendError::Permanent(_))
        ));
        assert!(matches!(
            interpret(&answer(502, vec![])),
            Err(SendError::Retryable(_))
        ));
    }
}
