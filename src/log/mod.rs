//! Structured logs: every line the component writes to stderr is one JSON object,
//! `{"time":…,"level":…,"msg":…,"request_id":…, …fields}`.
//!
//! One line per request (`msg` = `request`) is written by [`RequestScope::finish`]; any other line
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

/// The request being served, from [`enter_request`] to [`RequestScope::finish`].
#[must_use = "finish writes the request's line"]
pub struct RequestScope(());

/// Starts serving a request: lines written from now on (until the next request begins) carry
/// `id`. `rpc` is the method's name (`SetMyPhone`) or `unknown`; `protocol` is `json`, `grpc`
/// or `grpc-web`.
pub fn enter_request(id: String, rpc: String, protocol: &'static str) -> RequestScope {
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
    RequestScope(())
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

impl RequestScope {
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

mod scrub;
pub use scrub::scrub;

#[cfg(test)]
mod tests;
