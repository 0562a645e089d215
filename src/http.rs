//! Plain HTTP request and response types the API works on, free of WIT bindings.

use crate::error::Error;

/// Largest request body the service reads.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

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
