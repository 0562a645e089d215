//! Structured logs: every line the component writes to stderr is one JSON object,
//! `{"time":…,"level":…,"msg":…,"request_id":…, …fields}`.
//!
//! One line per request (`msg` = `request`) is written by [`Request::finish`]; any other line
//! (a server-side failure, an SMS not delivered, an audit event) goes through [`line`] or
//! [`record`], which add the id of the request being served. Hosts collect stderr; none of
//! these lines may carry a token, a code, a secret or a phone number: free text that could
//! (an error's detail, a provider's answer) goes through [`scrub`] first.
//!
//! The request being served lives in a thread-local (wasm is single-threaded; a reused
//! instance begins each request with a fresh one). Native tests read the lines with
//! [`capture`] instead of stderr.

use crate::platform::Random;
use crate::time::Timestamp;
use serde::Serialize;
use serde_json::Value;
use std::cell::RefCell;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Longest `x-request-id` taken from a client; longer ones are replaced.
pub const MAX_REQUEST_ID: usize = 128;
/// Longest free text (an error's detail) a line keeps, in bytes.
const MAX_TEXT: usize = 300;
/// What [`scrub`] writes instead of what it removes.
pub const REDACTED: &str = "[redacted]";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Info,
    Warn,
    Error,
}

impl Level {
    fn as_str(self) -> &'static str {
        match self {
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }
}

/// What the request line says about the request being served.
struct Current {
    id: String,
    started: Instant,
    rpc: String,
    protocol: &'static str,
    user: Option<(String, String)>,
    /// The google.rpc.Status code and HTTP status of the error answered, if any.
    failure: Option<(i32, u16)>,
}

thread_local! {
    static CURRENT: RefCell<Option<Current>> = const { RefCell::new(None) };
    #[cfg(test)]
    static CAPTURED: RefCell<Option<Vec<String>>> = const { RefCell::new(None) };
}

/// The request being served, from [`begin`] to [`Request::finish`].
#[must_use = "finish writes the request's line"]
pub struct Request(());

/// Starts serving a request: lines written from now on (until the next request begins) carry
/// `id`. `rpc` is the method's name (`SetMyPhone`) or `unknown`; `protocol` is `json`, `grpc`
/// or `grpc-web`.
pub fn begin(id: String, rpc: String, protocol: &'static str) -> Request {
    CURRENT.with(|current| {
        *current.borrow_mut() = Some(Current {
            id,
            started: Instant::now(),
            rpc,
            protocol,
            user: None,
            failure: None,
        });
    });
    Request(())
}

/// The request's caller is known: its line names the user and organisation.
pub fn authenticated(user_id: &str, org_id: &str) {
    CURRENT.with(|current| {
        if let Some(current) = current.borrow_mut().as_mut() {
            current.user = Some((user_id.to_owned(), org_id.to_owned()));
        }
    });
}

/// The request is answered with an error: `code` (google.rpc.Code) and the HTTP status the
/// error maps to (a gRPC answer's own status stays 200).
pub fn failed(code: i32, http_status: u16) {
    CURRENT.with(|current| {
        if let Some(current) = current.borrow_mut().as_mut() {
            current.failure = Some((code, http_status));
        }
    });
}

impl Request {
    /// Writes the request's line: answered with `http_status`, now.
    pub fn finish(self, http_status: u16) {
        let Some(fields) = CURRENT.with(|current| {
            let current = current.borrow();
            let current = current.as_ref()?;
            let (code, mapped) = current.failure.unwrap_or((0, http_status));
            let millis = current.started.elapsed().as_micros() as f64 / 1000.0;
            let mut fields = vec![
                ("rpc", Value::from(current.rpc.as_str())),
                ("protocol", Value::from(current.protocol)),
                ("http_status", Value::from(http_status)),
                ("grpc_code", Value::from(code)),
                ("duration_ms", Value::from(millis)),
            ];
            if let Some((user, org)) = &current.user {
                fields.push(("user_id", Value::from(user.as_str())));
                fields.push(("org_id", Value::from(org.as_str())));
            }
            let level = if mapped >= 500 {
                Level::Error
            } else {
                Level::Info
            };
            Some((level, fields))
        }) else {
            return;
        };
        line(fields.0, "request", &fields.1);
    }
}

/// The id of the request being served, if one is.
pub fn request_id() -> Option<String> {
    CURRENT.with(|current| current.borrow().as_ref().map(|c| c.id.clone()))
}

/// The request id to use: the client's `x-request-id` when it is sane (1 to
/// [`MAX_REQUEST_ID`] characters, each an ASCII letter, digit or one of `-_.:+/=@~`),
/// otherwise 16 hex digits from `random`.
pub fn request_id_for(header: Option<&str>, random: &dyn Random) -> String {
    match header {
        Some(id) if sane_request_id(id) => id.to_owned(),
        _ => {
            let mut bytes = [0u8; 8];
            random.fill(&mut bytes);
            hex::encode(bytes)
        }
    }
}

fn sane_request_id(id: &str) -> bool {
    (1..=MAX_REQUEST_ID).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:+/=@~".contains(&b))
}

/// Writes one line: `level`, `msg`, the current request's id, then `fields` in order.
/// String values are written as given: pass free text through [`scrub`] first.
pub fn line(level: Level, msg: &str, fields: &[(&str, Value)]) {
    write_line(Value::from(now()), level, msg, fields);
}

fn write_line(time: Value, level: Level, msg: &str, fields: &[(&str, Value)]) {
    let mut text = String::with_capacity(160);
    text.push_str("{\"time\":");
    push_json(&mut text, &time);
    text.push_str(",\"level\":");
    push_json(&mut text, &Value::from(level.as_str()));
    text.push_str(",\"msg\":");
    push_json(&mut text, &Value::from(msg));
    if let Some(id) = request_id() {
        text.push_str(",\"request_id\":");
        push_json(&mut text, &Value::from(id));
    }
    for (key, value) in fields {
        text.push(',');
        push_json(&mut text, &Value::from(*key));
        text.push(':');
        push_json(&mut text, value);
    }
    text.push('}');
    write(text);
}

/// Writes one line whose fields are those of `value` (a struct serialising to a JSON object,
/// such as an audit event: `log::record(Level::Info, "audit", &event)`) after `level`, `msg`
/// and the request id. A `time` field of `value` is the line's time (an event's own time);
/// its `level`, `msg` or `request_id` fields are dropped. Anything but an object is written as
/// a field `value`.
pub fn record(level: Level, msg: &str, value: &impl Serialize) {
    match serde_json::to_value(value) {
        Ok(Value::Object(mut map)) => {
            let time = map.remove("time").unwrap_or_else(|| Value::from(now()));
            let fields: Vec<(&str, Value)> = map
                .iter()
                .filter(|(k, _)| !matches!(k.as_str(), "level" | "msg" | "request_id"))
                .map(|(k, v)| (k.as_str(), v.clone()))
                .collect();
            write_line(time, level, msg, &fields);
        }
        Ok(other) => line(level, msg, &[("value", other)]),
        Err(e) => line(
            Level::Error,
            "log record not serialisable",
            &[("error", Value::from(e.to_string()))],
        ),
    }
}

/// Serialising a `Value` to a string cannot fail (its map keys are strings).
fn push_json(text: &mut String, value: &Value) {
    text.push_str(&value.to_string());
}

/// Now, RFC 3339 UTC with milliseconds: `2026-11-27T17:44:44.123Z`.
fn now() -> String {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let seconds = i64::try_from(since.as_secs()).unwrap_or(i64::MAX);
    let whole = Timestamp::new(seconds, 0).to_string();
    let base = whole.strip_suffix('Z').unwrap_or(&whole);
    format!("{base}.{:03}Z", since.subsec_millis())
}

#[cfg(not(test))]
fn write(mut text: String) {
    use std::io::Write as _;
    text.push('\n');
    // One write per line, so lines of concurrent writers never interleave; a closed stderr
    // loses the line rather than failing the request.
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

#[cfg(test)]
fn write(text: String) {
    let unclaimed = CAPTURED.with(|captured| match captured.borrow_mut().as_mut() {
        Some(lines) => {
            lines.push(text);
            None
        }
        None => Some(text),
    });
    if let Some(text) = unclaimed {
        eprintln!("{text}");
    }
}

/// Runs `f` and returns the lines it logged on this thread (instead of writing them).
#[cfg(test)]
pub fn capture<R>(f: impl FnOnce() -> R) -> (R, Vec<String>) {
    let outer = CAPTURED.with(|captured| captured.borrow_mut().replace(Vec::new()));
    let result = f();
    let lines = CAPTURED.with(|captured| {
        let mut captured = captured.borrow_mut();
        let lines = captured.take().unwrap_or_default();
        *captured = outer;
        lines
    });
    (result, lines)
}

/// Free text made fit for a log line: each of `secrets` (compared without regard to ASCII
/// case) and every group of 5 to 15 digits, optionally after `+`, with up to two of
/// ` -.()/` between digits (a phone number in any form; an IPv4 address is kept) become
/// [`REDACTED`]; what is left is cut to 300 bytes.
pub fn scrub(text: &str, secrets: &[&str]) -> String {
    let mut text = text.to_owned();
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        text = replace_ignoring_case(&text, secret);
    }
    let text = mask_digit_groups(&text);
    if text.len() <= MAX_TEXT {
        return text;
    }
    let mut end = MAX_TEXT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

fn replace_ignoring_case(text: &str, secret: &str) -> String {
    let lower_text = text.to_ascii_lowercase();
    let lower_secret = secret.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut from = 0;
    // ASCII lower-casing keeps byte offsets, so positions in `lower_text` are those in `text`.
    while let Some(at) = lower_text[from..].find(&lower_secret) {
        out.push_str(&text[from..from + at]);
        out.push_str(REDACTED);
        from += at + lower_secret.len();
    }
    out.push_str(&text[from..]);
    out
}

const SEPARATORS: &[char] = &[' ', '-', '.', '(', ')', '/'];

fn mask_digit_groups(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let starts_group = chars[i].is_ascii_digit()
            || (chars[i] == '+' && chars.get(i + 1).is_some_and(char::is_ascii_digit));
        // A group starts at a digit not glued to letters or digits before it.
        let glued = i > 0 && (chars[i - 1].is_ascii_alphanumeric());
        if !starts_group || glued {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        let start = i;
        let mut end = i + usize::from(chars[i] == '+');
        let mut digits = 0;
        let mut j = end;
        loop {
            while j < chars.len() && chars[j].is_ascii_digit() {
                digits += 1;
                j += 1;
            }
            end = j;
            let mut k = j;
            while k < chars.len() && k - j < 2 && SEPARATORS.contains(&chars[k]) {
                k += 1;
            }
            if k > j && k < chars.len() && chars[k].is_ascii_digit() {
                j = k;
            } else {
                break;
            }
        }
        let group: String = chars[start..end].iter().collect();
        if (5..=15).contains(&digits) && !ipv4(&group) {
            out.push_str(REDACTED);
        } else {
            out.push_str(&group);
        }
        i = end;
    }
    out
}

fn ipv4(group: &str) -> bool {
    let parts: Vec<&str> = group.split('.').collect();
    parts.len() == 4
        && parts
            .iter()
            .all(|p| (1..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::CountingRandom;
    use std::cell::Cell;

    fn parse(line: &str) -> serde_json::Map<String, Value> {
        match serde_json::from_str(line) {
            Ok(Value::Object(map)) => map,
            other => panic!("not a JSON object: {line} ({other:?})"),
        }
    }

    #[test]
    fn a_line_is_one_json_object_with_time_level_msg_and_fields_in_order() {
        let ((), lines) = capture(|| {
            line(
                Level::Warn,
                "sms not delivered",
                &[("retryable", Value::from(true)), ("n", Value::from(3))],
            );
        });
        assert_eq!(lines.len(), 1);
        let text = &lines[0];
        assert!(!text.contains('\n'));
        assert!(
            text.starts_with(r#"{"time":""#)
                && text.contains(r#","level":"warn","msg":"sms not delivered","#),
            "{text}"
        );
        let map = parse(text);
        assert_eq!(map["retryable"], true);
        assert_eq!(map["n"], 3);
        let time = map["time"].as_str().unwrap();
        // 2026-11-27T17:44:44.123Z
        assert_eq!(time.len(), 24, "{time}");
        assert_eq!((&time[4..5], &time[10..11], &time[19..20]), ("-", "T", "."));
        assert!(time.ends_with('Z'));
    }

    #[test]
    fn hostile_values_stay_inside_their_json_string() {
        let hostile = "a\"b\\c\nd\r{\"level\":\"error\"}\u{0}\u{2028}";
        let ((), lines) =
            capture(|| line(Level::Info, hostile, &[(hostile, Value::from(hostile))]));
        assert_eq!(lines.len(), 1);
        assert!(!lines[0].contains('\n') && !lines[0].contains('\r'));
        let map = parse(&lines[0]);
        assert_eq!(map["msg"], hostile);
        assert_eq!(map[hostile], hostile);
        assert_eq!(map["level"], "info");
    }

    #[test]
    fn request_ids_from_clients_are_kept_only_when_sane() {
        let random = CountingRandom(Cell::new(0));
        for good in [
            "abc",
            "0f8fad5b-d9cb-469f-a165-70867728950e",
            "Root=1-5759e988-bd862e3fe1be46a994272793",
            &"x".repeat(MAX_REQUEST_ID),
        ] {
            assert_eq!(request_id_for(Some(good), &random), good);
        }
        for bad in [
            "",
            "a b",
            "line\nbreak",
            "cr\rlf",
            "quote\"d",
            "back\\slash",
            "{\"level\":\"error\"}",
            "tab\there",
            "ünïcode",
            "semi;colon",
            "<script>",
            &"x".repeat(MAX_REQUEST_ID + 1),
            &"y".repeat(10 * 1024),
        ] {
            let made = request_id_for(Some(bad), &random);
            assert_ne!(made, bad);
            assert_eq!(made.len(), 16, "{made}");
            assert!(made.bytes().all(|b| b.is_ascii_hexdigit()), "{made}");
        }
        let made = request_id_for(None, &random);
        assert_eq!(made.len(), 16);
        // Made-up ids differ from request to request.
        assert_ne!(request_id_for(None, &random), made);
    }

    #[test]
    fn the_request_line_names_the_request_and_other_lines_carry_its_id() {
        let ((), lines) = capture(|| {
            let request = begin("req-1".into(), "SetMyPhone".into(), "grpc-web");
            authenticated("user-1", "org-1");
            line(Level::Error, "request failed", &[]);
            failed(14, 503);
            request.finish(200);
        });
        assert_eq!(lines.len(), 2, "{lines:?}");
        let first = parse(&lines[0]);
        assert_eq!(first["request_id"], "req-1");
        let request = parse(&lines[1]);
        assert_eq!(request["msg"], "request");
        assert_eq!(request["level"], "error");
        assert_eq!(request["request_id"], "req-1");
        assert_eq!(request["rpc"], "SetMyPhone");
        assert_eq!(request["protocol"], "grpc-web");
        assert_eq!(request["http_status"], 200);
        assert_eq!(request["grpc_code"], 14);
        assert!(request["duration_ms"].as_f64().unwrap() >= 0.0);
        assert_eq!(request["user_id"], "user-1");
        assert_eq!(request["org_id"], "org-1");

        // The next request starts afresh: no caller, no failure of the previous one.
        let ((), lines) = capture(|| begin("req-2".into(), "unknown".into(), "json").finish(404));
        let request = parse(&lines[0]);
        assert_eq!(request["request_id"], "req-2");
        assert_eq!(request["grpc_code"], 0);
        assert_eq!(request["level"], "info");
        assert!(!request.contains_key("user_id") && !request.contains_key("org_id"));
    }

    /// Sends a request without a token through `api::handle`; the answer and the lines logged.
    fn serve(
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> (crate::http::Response, Vec<serde_json::Map<String, Value>>) {
        use crate::platform::{OpenError, Services};
        use crate::store::KeyValue;
        use crate::test_support::{FixedClock, MemoryKv, NoIssuer};
        let env = |name: &str| {
            match name {
            "AUTH_ISSUER" => Some("https://issuer.example".to_owned()),
            "AUTH_JWKS" => Some(r#"{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#.to_owned()),
            _ => None,
        }
        };
        let open =
            |_: &str| -> Result<Box<dyn KeyValue>, OpenError> { Ok(Box::new(MemoryKv::default())) };
        let (clock, random) = (FixedClock::at(1_800_000_000), CountingRandom(Cell::new(7)));
        let services = Services {
            settings: &|name: &str| Ok(env(name)),
            open_store: &open,
            clock: &clock,
            random: &random,
            http: &NoIssuer,
        };
        let request = crate::http::Request {
            method: method.into(),
            path: path.into(),
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            body: Ok(Vec::new()),
        };
        let (reply, lines) = capture(|| crate::api::handle(&request, &services));
        (reply.response, lines.iter().map(|l| parse(l)).collect())
    }

    fn header<'r>(response: &'r crate::http::Response, name: &str) -> Vec<&'r str> {
        response
            .headers
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    #[test]
    fn every_answer_carries_its_request_id_and_is_logged_once() {
        let token = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiIrNDE3MTAwMDAwMjAifQ.c2lnbmF0dXJl";
        let (response, lines) = serve(
            "PUT",
            "/auth/v1/users/me/phone",
            &[
                ("x-request-id", "client-id-1"),
                ("authorization", &format!("Bearer {token}")),
            ],
        );
        assert_eq!(response.status, 401);
        assert_eq!(header(&response, "x-request-id"), ["client-id-1"]);
        let request: Vec<_> = lines.iter().filter(|l| l["msg"] == "request").collect();
        assert_eq!(request.len(), 1, "{lines:?}");
        let line = request[0];
        assert_eq!(line["request_id"], "client-id-1");
        assert_eq!(line["rpc"], "SetMyPhone");
        assert_eq!(line["protocol"], "json");
        assert_eq!(line["http_status"], 401);
        assert_eq!(line["grpc_code"], 16);
        assert_eq!(line["level"], "info");
        // Why the token was refused is for operators: a warning, not an error.
        let failed: Vec<_> = lines
            .iter()
            .filter(|l| l["msg"] == "request failed")
            .collect();
        assert_eq!(failed.len(), 1, "{lines:?}");
        assert_eq!(failed[0]["level"], "warn");
        assert_eq!(failed[0]["request_id"], "client-id-1");
        for line in &lines {
            let text = Value::Object(line.clone()).to_string();
            assert!(
                !text.contains("signature") && !text.contains("c2lnbmF0dXJl"),
                "{text}"
            );
        }

        // gRPC-Web, an unknown method, a hostile id: replaced, and the same id answered.
        let (response, lines) = serve(
            "POST",
            "/zitadel.auth.v1.AuthService/NoSuchThing",
            &[
                ("content-type", "application/grpc-web+proto"),
                ("x-request-id", "evil\n{\"level\":\"error\"}"),
            ],
        );
        let id = header(&response, "x-request-id");
        assert_eq!(id.len(), 1);
        assert_eq!(id[0].len(), 16, "{id:?}");
        let line = lines.iter().find(|l| l["msg"] == "request").unwrap();
        assert_eq!(line["request_id"], id[0]);
        assert_eq!(line["rpc"], "unknown");
        assert_eq!(line["protocol"], "grpc-web");
        assert_eq!(line["http_status"], 200);
        assert_eq!(line["grpc_code"], 12);

        let (response, lines) = serve("GET", "/nowhere", &[]);
        assert_eq!(response.status, 404);
        let line = lines.iter().find(|l| l["msg"] == "request").unwrap();
        assert_eq!(line["rpc"], "unknown");
        assert_eq!(line["grpc_code"], 5);
        assert!(!Value::Object(line.clone()).to_string().contains("nowhere"));
    }

    #[test]
    fn records_flatten_into_the_line() {
        #[derive(Serialize)]
        struct Event {
            time: &'static str,
            msg: &'static str,
            sequence: u64,
            r#type: &'static str,
        }
        let ((), lines) = capture(|| {
            record(
                Level::Info,
                "audit",
                &Event {
                    time: "2026-11-27T17:00:00Z",
                    msg: "ignored",
                    sequence: 7,
                    r#type: "user.human.phone.removed",
                },
            );
        });
        let map = parse(&lines[0]);
        assert_eq!(map["msg"], "audit");
        assert_eq!(map["time"], "2026-11-27T17:00:00Z");
        assert_eq!(lines[0].matches("\"msg\"").count(), 1, "{}", lines[0]);
        assert_eq!(map["sequence"], 7);
        assert_eq!(map["type"], "user.human.phone.removed");
    }

    #[test]
    fn scrub_masks_numbers_in_any_form_and_named_secrets() {
        for (text, want) in [
            ("to +41710000020: bad", "to [redacted]: bad"),
            ("number 41710000020", "number [redacted]"),
            ("number 710000020.", "number [redacted]."),
            ("+41 71 000 00 20 refused", "[redacted] refused"),
            ("(071) 000-00-20", "([redacted]"),
            ("01.23.45.67.89", "[redacted]"),
            (
                "provider answered 503; retry after 30 s",
                "provider answered 503; retry after 30 s",
            ),
            (
                "connect 127.0.0.1:8080 refused",
                "connect 127.0.0.1:8080 refused",
            ),
            ("kid 283746637281726354", "kid 283746637281726354"),
            ("kid ab12345cd", "kid ab12345cd"),
        ] {
            assert_eq!(scrub(text, &[]), want, "{text}");
        }
        assert_eq!(
            scrub("code Ab12Cd for you, AB12CD again", &["AB12CD"]),
            "code [redacted] for you, [redacted] again"
        );
        let long = "é".repeat(1000);
        let cut = scrub(&long, &[]);
        assert!(cut.len() <= MAX_TEXT + "…".len() && cut.ends_with('…'));
    }
}
