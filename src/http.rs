//! Plain HTTP request and response types the API works on, free of WIT bindings.

use crate::error::Error;

/// Largest request body the service reads.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// A header value as text: valid UTF-8 (every header a sane client sends) keeps its bytes without
/// a copy; anything else has its invalid sequences replaced with U+FFFD. For the wasm32
/// component's requests (`component::wasi_http`).
#[cfg(any(test, all(target_arch = "wasm32", feature = "component")))]
pub(crate) fn header_text(value: Vec<u8>) -> String {
    String::from_utf8(value)
        .unwrap_or_else(|invalid| String::from_utf8_lossy(invalid.as_bytes()).into_owned())
}

pub struct Request {
    pub method: String,
    /// Path without the query string.
    pub path: String,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    /// The body, or why it was not read (too large, broken stream).
    pub body: Result<Vec<u8>, Error>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

#[derive(Debug, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Sent after the body (gRPC status); empty for most responses.
    pub trailers: Vec<(String, String)>,
}

impl Response {
    pub fn json(status: u16, body: Vec<u8>) -> Response {
        Response {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body,
            trailers: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::header_text;

    #[test]
    fn header_values_keep_valid_utf8_and_replace_the_rest() {
        assert_eq!(header_text(b"Bearer eyJ.x.y".to_vec()), "Bearer eyJ.x.y");
        assert_eq!(
            header_text("fr;q=0.8, é".as_bytes().to_vec()),
            "fr;q=0.8, é"
        );
        assert_eq!(header_text(b"a\xffb\xc3".to_vec()), "a\u{fffd}b\u{fffd}");
    }
}
