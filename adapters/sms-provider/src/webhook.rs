//! ZITADEL's HTTP SMS provider, byte-compatible: the JSON body upstream posts and its
//! `ZITADEL-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(key, "<t>.<body>")>` header.

use crate::provider::{Answer, Message, Outgoing, SendError, Url, failure, post, setting, success};
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;

/// The event upstream names in `contextInfo.eventType` for a phone verification code.
pub const EVENT_TYPE: &str = "user.human.phone.code.added";
/// Our entry in `contextInfo.provider`.
const PROVIDER_ID: &str = "set-my-phone";
const PROVIDER_DESCRIPTION: &str = "webhook";
/// Response header a receiver may use to name the message it accepted.
const MESSAGE_ID_HEADER: &str = "x-message-id";

/// The signed JSON `POST` to `SMS_WEBHOOK_URL`; `now` is unix seconds.
pub fn request(
    get: &dyn Fn(&str) -> Option<String>,
    message: &Message,
    now: u64,
) -> Result<Outgoing, SendError> {
    let url = get("SMS_WEBHOOK_URL").ok_or_else(|| setting("SMS_WEBHOOK_URL", "is not set"))?;
    let url =
        Url::parse(&url).ok_or_else(|| setting("SMS_WEBHOOK_URL", "is not an http(s) URL"))?;
    let body = body(message)?.into_bytes();
    let mut headers = vec![("content-type".to_string(), "application/json".to_string())];
    if let Some(key) = get("SMS_WEBHOOK_SIGNING_KEY") {
        headers.push((
            "zitadel-signature".into(),
            signature(key.as_bytes(), now, &body),
        ));
    }
    Ok(post(url, headers, body))
}

/// Upstream's body; serde writes fields in declaration order, which is upstream's.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Body<'a> {
    context_info: ContextInfo<'a>,
    template_data: TemplateData<'a>,
    args: Args<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ContextInfo<'a> {
    recipient_phone_number: &'a str,
    event_type: &'a str,
    provider: ProviderInfo,
}

#[derive(Serialize)]
struct ProviderInfo {
    id: &'static str,
    description: &'static str,
}

#[derive(Serialize)]
struct TemplateData<'a> {
    text: &'a str,
    /// The language `text` is written in (ours: upstream's receivers read `text`).
    language: &'a str,
}

#[derive(Serialize)]
struct Args<'a> {
    code: &'a str,
    #[serde(rename = "userID")]
    user_id: &'a str,
    #[serde(rename = "orgID")]
    org_id: &'a str,
}

/// Upstream's body for `message`, compact JSON: `contextInfo`, `templateData`, `args`.
pub fn body(message: &Message) -> Result<String, SendError> {
    let body = Body {
        context_info: ContextInfo {
            recipient_phone_number: &message.recipient,
            event_type: EVENT_TYPE,
            provider: ProviderInfo {
                id: PROVIDER_ID,
                description: PROVIDER_DESCRIPTION,
            },
        },
        template_data: TemplateData {
            text: &message.text,
            language: &message.language,
        },
        args: Args {
            code: &message.code,
            user_id: &message.user_id,
            org_id: &message.org_id,
        },
    };
    // Strings only: serde_json cannot fail here, but says so rather than panic if it did.
    serde_json::to_string(&body)
        .map_err(|e| SendError::Permanent(format!("webhook body not written: {e}")))
}

/// `t=<now>,v1=<lowercase hex HMAC-SHA256(key, "<now>.<body>")>`.
pub fn signature(key: &[u8], now: u64, body: &[u8]) -> String {
    let digest = match <Hmac<Sha256> as Mac>::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(format!("{now}.").as_bytes());
            mac.update(body);
            hex::encode(mac.finalize().into_bytes())
        }
        // HMAC accepts keys of any length, so this cannot happen; an empty v1 fails to verify.
        Err(_) => String::new(),
    };
    format!("t={now},v1={digest}")
}

/// 2xx: the receiver's `x-message-id`, else `webhook-<now>`; otherwise a classified failure
/// (with the receiver's `Retry-After` when it says "later").
pub fn interpret(answer: &Answer, now: u64) -> Result<String, SendError> {
    if !success(answer.status) {
        return Err(failure(answer, "", now));
    }
    Ok(answer
        .header(MESSAGE_ID_HEADER)
        .map(str::trim)
        .filter(|id| !id.is_empty())
        .map_or_else(|| format!("webhook-{now}"), str::to_owned))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message() -> Message {
        Message {
            recipient: "+41710000000".into(),
            text: "Your code is \"ABC123\"\n".into(),
            code: "ABC123".into(),
            user_id: "u1".into(),
            org_id: "o1".into(),
            language: "en".into(),
        }
    }

    fn env(name: &str) -> Option<String> {
        match name {
            "SMS_WEBHOOK_URL" => Some("http://127.0.0.1:9/hook".into()),
            "SMS_WEBHOOK_SIGNING_KEY" => Some("key".into()),
            _ => None,
        }
    }

    #[test]
    fn body_has_upstreams_fields_in_upstreams_order() {
        let expected = r#"{"contextInfo":{"recipientPhoneNumber":"+41710000000","eventType":"user.human.phone.code.added","provider":{"id":"set-my-phone","description":"webhook"}},"templateData":{"text":"Your code is \"ABC123\"\n","language":"en"},"args":{"code":"ABC123","userID":"u1","orgID":"o1"}}"#;
        assert_eq!(body(&message()).unwrap(), expected);
        let parsed: serde_json::Value = serde_json::from_str(expected).unwrap();
        assert_eq!(parsed["templateData"]["text"], "Your code is \"ABC123\"\n");
    }

    #[test]
    fn request_is_a_signed_json_post() {
        let request = request(&env, &message(), 1_700_000_000).unwrap();
        assert_eq!(request.url.authority, "127.0.0.1:9");
        assert_eq!(request.url.path_with_query, "/hook");
        assert_eq!(request.header("content-type"), Some("application/json"));
        assert_eq!(request.body, body(&message()).unwrap().into_bytes());
        // `printf '%s' "1700000000.$BODY" | openssl dgst -sha256 -hmac key`
        assert_eq!(
            request.header("zitadel-signature"),
            Some(
                "t=1700000000,v1=bf98b79fa8106eda5fe831657ab6d6d569bd89082cba84b26f94bb3e5b7d5866"
            )
        );
    }

    #[test]
    fn signature_matches_an_independent_hmac() {
        // `printf '1.{}' | openssl dgst -sha256 -hmac key`
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
            interpret(&answer(200, vec![("X-Message-Id".into(), "m1".into())]), 7),
            Ok("m1".into())
        );
        assert_eq!(interpret(&answer(204, vec![]), 7), Ok("webhook-7".into()));
        assert!(matches!(
            interpret(&answer(404, vec![]), 7),
            Err(SendError::Permanent(_))
        ));
        assert!(matches!(
            interpret(&answer(502, vec![]), 7),
            Err(SendError::Retryable(_))
        ));
        assert_eq!(
            interpret(&answer(429, vec![("Retry-After".into(), "60".into())]), 7),
            Err(SendError::Retryable(
                "provider answered 429; retry after 60 s".into()
            ))
        );
        assert_eq!(
            interpret(&answer(408, vec![]), 7),
            Err(SendError::Retryable("provider answered 408".into()))
        );
    }
}
