//! Amazon SNS: `Publish` to a phone number (`POST https://sns.{region}.amazonaws.com/`, the
//! Query API's form `Action=Publish&Version=2010-03-31&PhoneNumber=…&Message=…` with the
//! message attributes `AWS.SNS.SMS.SMSType=Transactional` and, when set, the sender id and the
//! origination number), signed with AWS Signature Version 4 (`sigv4`). The answer's
//! `<MessageId>` is the message id; errors are `<ErrorResponse><Error><Code>…<Message>…`.

use crate::provider::{Answer, Message, Outgoing, SendError, Url, failure, post, setting, success};
use hmac::{Hmac, Mac};
use set_my_phone_outgoing_http::form;
use sha2::{Digest, Sha256};

const SERVICE: &str = "sns";

/// AWS's error codes that mean "not now": a retry later may pass.
const LATER: [&str; 4] = [
    "Throttling",
    "ThrottlingException",
    "ServiceUnavailable",
    "InternalError",
];

/// The `Publish` call for `message` under the `SMS_SNS_*` settings, signed at `now` (unix s).
pub fn request(
    get: &dyn Fn(&str) -> Option<String>,
    message: &Message,
    now: u64,
) -> Result<Outgoing, SendError> {
    let required = |name: &str| get(name).ok_or_else(|| setting(name, "is not set"));
    let region = required("SMS_SNS_REGION")?.trim().to_owned();
    if region.is_empty()
        || !region
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        return Err(setting(
            "SMS_SNS_REGION",
            "must be a region such as eu-central-1",
        ));
    }
    let key_id = required("SMS_SNS_ACCESS_KEY_ID")?.trim().to_owned();
    let secret = required("SMS_SNS_SECRET_ACCESS_KEY")?.trim().to_owned();
    let base =
        get("SMS_SNS_BASE_URL").unwrap_or_else(|| format!("https://sns.{region}.amazonaws.com"));
    let url = Url::parse(base.trim().trim_end_matches('/'))
        .ok_or_else(|| setting("SMS_SNS_BASE_URL", "is not an http(s) URL"))?
        .join("/");
    let mut fields: Vec<(String, String)> = vec![
        ("Action".into(), "Publish".into()),
        ("Version".into(), "2010-03-31".into()),
        ("PhoneNumber".into(), message.recipient.clone()),
        ("Message".into(), message.text.clone()),
    ];
    let mut attributes = vec![("AWS.SNS.SMS.SMSType", "Transactional".to_owned())];
    if let Some(sender) = get("SMS_SNS_SENDER_ID") {
        attributes.push(("AWS.SNS.SMS.SenderID", sender.trim().to_owned()));
    }
    if let Some(number) = get("SMS_SNS_ORIGINATION_NUMBER") {
        attributes.push(("AWS.MM.SMS.OriginationNumber", number.trim().to_owned()));
    }
    for (i, (name, value)) in attributes.into_iter().enumerate() {
        let entry = format!("MessageAttributes.entry.{}", i + 1);
        fields.push((format!("{entry}.Name"), name.into()));
        fields.push((format!("{entry}.Value.DataType"), "String".into()));
        fields.push((format!("{entry}.Value.StringValue"), value));
    }
    let pairs: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let body = form(&pairs);
    let mut headers = vec![
        (
            "content-type".to_string(),
            "application/x-www-form-urlencoded; charset=utf-8".to_string(),
        ),
        ("x-amz-date".into(), amz_date(now)),
    ];
    if let Some(token) = get("SMS_SNS_SESSION_TOKEN") {
        headers.push(("x-amz-security-token".into(), token.trim().to_owned()));
    }
    // `host` is signed but not set: the HTTP client sends it (wasi:http forbids setting it).
    let mut signed = headers.clone();
    signed.push(("host".into(), url.authority.clone()));
    let authorization = sigv4(
        &Credentials {
            key_id: &key_id,
            secret: &secret,
            region: &region,
        },
        "POST",
        &url.path_with_query,
        &signed,
        body.as_bytes(),
        now,
    );
    headers.push(("authorization".into(), authorization));
    headers.push(("accept".into(), "text/xml".into()));
    Ok(post(url, headers, body.into_bytes()))
}

/// 2xx: the `<MessageId>`; otherwise a classified failure with AWS's `<Code>: <Message>`.
/// AWS answers throttling with a 400, which is retryable all the same.
pub fn interpret(answer: &Answer, now: u64) -> Result<String, SendError> {
    let body = String::from_utf8_lossy(&answer.body);
    if success(answer.status) {
        return Ok(element(&body, "MessageId")
            .filter(|id| !id.is_empty())
            .unwrap_or_else(|| format!("sns-{now}")));
    }
    let code = element(&body, "Code").unwrap_or_default();
    let detail = match element(&body, "Message") {
        Some(text) => format!("{code}: {text}"),
        None => code.clone(),
    };
    match failure(answer, &detail, now) {
        SendError::Permanent(text) if LATER.contains(&code.as_str()) => {
            Err(SendError::Retryable(text))
        }
        other => Err(other),
    }
}

/// The text of the first `<name>…</name>` in `xml`, unescaped.
fn element(xml: &str, name: &str) -> Option<String> {
    let start = xml.find(&format!("<{name}>"))? + name.len() + 2;
    let end = start + xml[start..].find(&format!("</{name}>"))?;
    Some(
        xml[start..end]
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&"),
    )
}

pub struct Credentials<'a> {
    pub key_id: &'a str,
    pub secret: &'a str,
    pub region: &'a str,
}

/// The `Authorization` header of AWS Signature Version 4 for a request to SNS: every header
/// given is signed (names lower case), the payload is hashed whole.
pub fn sigv4(
    credentials: &Credentials,
    method: &str,
    path_with_query: &str,
    headers: &[(String, String)],
    body: &[u8],
    now: u64,
) -> String {
    let amz_date = amz_date(now);
    let date = &amz_date[..8];
    let (path, query) = path_with_query
        .split_once('?')
        .unwrap_or((path_with_query, ""));
    let mut sorted: Vec<(String, String)> = headers
        .iter()
        .map(|(name, value)| (name.to_ascii_lowercase(), squeeze(value)))
        .collect();
    sorted.sort();
    let canonical_headers: String = sorted.iter().map(|(n, v)| format!("{n}:{v}\n")).collect();
    let signed_headers = sorted
        .iter()
        .map(|(n, _)| n.as_str())
        .collect::<Vec<_>>()
        .join(";");
    let canonical_request = format!(
        "{method}\n{path}\n{}\n{canonical_headers}\n{signed_headers}\n{}",
        canonical_query(query),
        hex::encode(Sha256::digest(body)),
    );
    let scope = format!("{date}/{}/{SERVICE}/aws4_request", credentials.region);
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical_request.as_bytes()))
    );
    let mut key = hmac(
        format!("AWS4{}", credentials.secret).as_bytes(),
        date.as_bytes(),
    );
    for part in [credentials.region, SERVICE, "aws4_request"] {
        key = hmac(&key, part.as_bytes());
    }
    let signature = hex::encode(hmac(&key, string_to_sign.as_bytes()));
    format!(
        "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
        credentials.key_id
    )
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC takes a key of any length: the error case cannot happen (an empty digest would
    // only make AWS refuse the signature).
    let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(key) else {
        return Vec::new();
    };
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// A header value as SigV4 signs it: trimmed, inner runs of spaces as one.
fn squeeze(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The query's pairs sorted by name (they arrive encoded already).
fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<&str> = query.split('&').filter(|p| !p.is_empty()).collect();
    pairs.sort_unstable();
    pairs
        .iter()
        .map(|p| {
            if p.contains('=') {
                (*p).to_owned()
            } else {
                format!("{p}=")
            }
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// `YYYYMMDDTHHMMSSZ` of unix seconds `now`.
pub fn amz_date(now: u64) -> String {
    let days = i64::try_from(now / 86_400).unwrap_or(0);
    let seconds = now % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let month = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_utc_in_amz_form() {
        assert_eq!(amz_date(0), "19700101T000000Z");
        assert_eq!(amz_date(1_440_938_160), "20150830T123600Z");
        assert_eq!(amz_date(1_709_251_199), "20240229T235959Z");
    }

    /// The example of AWS's Signature Version 4 documentation ("GET with a query", IAM
    /// ListUsers, 20150830T123600Z, us-east-1, the documented example key): its signing key and
    /// string to sign give the published signature.
    #[test]
    fn the_signing_key_chain_matches_awss_published_example() {
        let mut key = hmac(b"AWS4wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", b"20150830");
        for part in ["us-east-1", "iam", "aws4_request"] {
            key = hmac(&key, part.as_bytes());
        }
        assert_eq!(
            hex::encode(&key),
            "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9"
        );
        let string_to_sign = "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/iam/aws4_request\nf536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59";
        assert_eq!(
            hex::encode(hmac(&key, string_to_sign.as_bytes())),
            "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
        );
    }

    fn env(name: &str) -> Option<String> {
        match name {
            "SMS_SNS_REGION" => Some("eu-central-1".into()),
            "SMS_SNS_ACCESS_KEY_ID" => Some("AKIDEXAMPLE".into()),
            "SMS_SNS_SECRET_ACCESS_KEY" => Some("secret-key".into()),
            "SMS_SNS_SENDER_ID" => Some("MyApp".into()),
            _ => None,
        }
    }

    #[test]
    fn publish_carries_the_number_text_and_transactional_type() {
        let message = Message {
            recipient: "+41710000000".into(),
            text: "Your code is ABC123".into(),
            code: "ABC123".into(),
            user_id: "u".into(),
            org_id: "o".into(),
            language: "en".into(),
        };
        let request = request(&env, &message, 1_440_938_160).unwrap();
        assert_eq!(request.url.authority, "sns.eu-central-1.amazonaws.com");
        let body = String::from_utf8(request.body.clone()).unwrap();
        for part in [
            "Action=Publish",
            "PhoneNumber=%2B41710000000",
            "Message=Your+code+is+ABC123",
            "MessageAttributes.entry.1.Name=AWS.SNS.SMS.SMSType",
            "MessageAttributes.entry.1.Value.StringValue=Transactional",
            "MessageAttributes.entry.2.Value.StringValue=MyApp",
        ] {
            assert!(body.contains(part), "{part} in {body}");
        }
        let authorization = request.header("authorization").unwrap();
        assert!(authorization.starts_with(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/eu-central-1/sns/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature="
        ), "{authorization}");
        assert!(!authorization.contains("secret-key"));
        for missing in [
            "SMS_SNS_REGION",
            "SMS_SNS_ACCESS_KEY_ID",
            "SMS_SNS_SECRET_ACCESS_KEY",
        ] {
            let get = |name: &str| if name == missing { None } else { env(name) };
            match super::request(&get, &message, 0) {
                Err(SendError::Permanent(why)) => assert!(why.contains(missing), "{why}"),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn answers_give_the_message_id_or_a_classified_error() {
        let ok = Answer {
            status: 200,
            headers: vec![],
            body: b"<PublishResponse><PublishResult><MessageId>567910cd-659e-55d4-8ccb-5aaf14679dc0</MessageId></PublishResult></PublishResponse>".to_vec(),
        };
        assert_eq!(
            interpret(&ok, 0).unwrap(),
            "567910cd-659e-55d4-8ccb-5aaf14679dc0"
        );
        let error = |status: u16, code: &str| {
            Answer {
            status,
            headers: vec![],
            body: format!("<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>why &amp; how</Message></Error></ErrorResponse>").into_bytes(),
        }
        };
        assert!(matches!(interpret(&error(400, "InvalidParameter"), 0),
            Err(SendError::Permanent(why)) if why.contains("InvalidParameter: why & how")));
        assert!(matches!(
            interpret(&error(400, "Throttling"), 0),
            Err(SendError::Retryable(_))
        ));
        assert!(matches!(
            interpret(&error(403, "InvalidClientTokenId"), 0),
            Err(SendError::Permanent(_))
        ));
        assert!(matches!(
            interpret(&error(500, "InternalError"), 0),
            Err(SendError::Retryable(_))
        ));
    }
}
