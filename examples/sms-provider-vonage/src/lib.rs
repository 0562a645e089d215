//! An SMS provider brought from outside the main provider crate: Vonage's SMS API
//! (`POST https://rest.nexmo.com/sms/json`, form `api_key`, `api_secret`, `from`, `to`, `text`;
//! the answer's `messages[0]` has `status` "0" and a `message-id` when accepted). It exports
//! `set-my-phone:sms/sender@0.2.0` (`wit/deps/sms@0.2.0`) and imports only wasi:*, so
//! `set-my-phone-tools plug` composes it into the core like the shipped provider.
//! docs/sms-providers.md walks through writing one.
//!
//! Settings (environment, as the component sees them): `SMS_VONAGE_API_KEY`, `SMS_VONAGE_API_SECRET`,
//! `SMS_VONAGE_FROM`, and `SMS_VONAGE_BASE_URL` (tests).

/// Vonage's SMS endpoint.
pub const DEFAULT_BASE: &str = "https://rest.nexmo.com";

/// The form Vonage takes for one message; `Err` names the missing setting.
pub fn form(
    get: &dyn Fn(&str) -> Option<String>,
    recipient: &str,
    text: &str,
) -> Result<Vec<(String, String)>, String> {
    let required = |name: &str| get(name).ok_or_else(|| format!("{name} is not set"));
    Ok(vec![
        ("api_key".into(), required("SMS_VONAGE_API_KEY")?),
        ("api_secret".into(), required("SMS_VONAGE_API_SECRET")?),
        ("from".into(), required("SMS_VONAGE_FROM")?),
        // Vonage takes the number without its `+`.
        ("to".into(), recipient.trim_start_matches('+').to_owned()),
        ("text".into(), text.to_owned()),
        ("type".into(), "unicode".into()),
    ])
}

/// What an answer means: the message id, or why not (and whether a retry may help: Vonage's
/// status 1 is "throttled"; an HTTP 5xx is its failure).
pub fn outcome(status: u16, body: &[u8]) -> Result<String, (bool, String)> {
    if status >= 500 || status == 429 {
        return Err((true, format!("Vonage answered {status}")));
    }
    let json: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let message = &json["messages"][0];
    match message["status"].as_str() {
        Some("0") => Ok(message["message-id"]
            .as_str()
            .unwrap_or("vonage")
            .to_owned()),
        Some(code) => Err((
            code == "1",
            format!(
                "Vonage status {code}: {}",
                message["error-text"].as_str().unwrap_or("")
            ),
        )),
        None => Err((false, format!("Vonage answered {status} without a status"))),
    }
}

/// `application/x-www-form-urlencoded` of `pairs`.
pub fn encode(pairs: &[(String, String)]) -> String {
    let byte = |b: u8| match b {
        b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
            (b as char).to_string()
        }
        b' ' => "+".into(),
        other => format!("%{other:02X}"),
    };
    pairs
        .iter()
        .map(|(k, v)| {
            let k: String = k.bytes().map(byte).collect();
            let v: String = v.bytes().map(byte).collect();
            format!("{k}={v}")
        })
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(target_arch = "wasm32")]
mod component;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_and_the_answers() {
        let get = |name: &str| match name {
            "SMS_VONAGE_API_KEY" => Some("key".to_owned()),
            "SMS_VONAGE_API_SECRET" => Some("secret".to_owned()),
            "SMS_VONAGE_FROM" => Some("SetMyPhone".to_owned()),
            _ => None,
        };
        let form = form(&get, "+41710000000", "Code: ABC 123").expect("a form");
        assert_eq!(
            encode(&form),
            "api_key=key&api_secret=secret&from=SetMyPhone&to=41710000000&text=Code%3A+ABC+123&type=unicode"
        );
        assert!(
            super::form(&|_| None, "+1", "x").is_err_and(|why| why.contains("SMS_VONAGE_API_KEY"))
        );
        let ok = br#"{"message-count":"1","messages":[{"to":"41710000000","message-id":"0A0000000123ABCD1","status":"0"}]}"#;
        assert_eq!(outcome(200, ok), Ok("0A0000000123ABCD1".into()));
        let throttled = br#"{"messages":[{"status":"1","error-text":"Throttled"}]}"#;
        assert!(matches!(outcome(200, throttled), Err((true, _))));
        let invalid = br#"{"messages":[{"status":"4","error-text":"Invalid credentials"}]}"#;
        assert!(
            matches!(outcome(200, invalid), Err((false, why)) if why.contains("Invalid credentials"))
        );
        assert!(matches!(outcome(503, b""), Err((true, _))));
    }
}
