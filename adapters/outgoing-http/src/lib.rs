//! Outgoing HTTP as the components need it: one request, sent and answered under one deadline,
//! with a bounded answer. The types build natively (providers and the core plan requests and read
//! answers in native tests); [`exchange`] talks wasi:http/outgoing-handler on wasm32.

pub mod url;

#[cfg(target_arch = "wasm32")]
mod wasi;

use std::time::Duration;

pub use url::Url;
#[cfg(target_arch = "wasm32")]
pub use wasi::exchange;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Delete,
}

/// A request to make.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub method: Method,
    pub url: Url,
    /// Lower-case names.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Connecting, sending and reading the whole answer together.
    pub timeout: Duration,
    /// Bytes of the answer's body kept; the rest is not read.
    pub max_answer_bytes: usize,
}

impl Request {
    /// The value of header `name` (lower case), if set.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// An answer (at most the request's `max_answer_bytes` of its body).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    /// The first value of header `name`, compared without regard to case.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Why no answer came: the peer may or may not have seen the request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The host would not make the request as built (a bad URL or header); retrying cannot help.
    Refused(String),
    /// Unreachable, reset, or not answered in time.
    Unreachable(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Refused(why) | Failure::Unreachable(why) => f.write_str(why),
        }
    }
}

/// An `application/x-www-form-urlencoded` body from `fields`, in order.
pub fn form(fields: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields)
        .finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_encode_reserved_bytes() {
        assert_eq!(
            form(&[("To", "+41 71"), ("Body", "a&b=ü")]),
            "To=%2B41+71&Body=a%26b%3D%C3%BC"
        );
    }
}
