//! Just enough URL parsing for outgoing requests: scheme, authority, path and query.

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Url {
    pub https: bool,
    pub authority: String,
    /// Path and query, at least `/`.
    pub path_with_query: String,
}

impl Url {
    pub fn parse(text: &str) -> Option<Url> {
        let (scheme, rest) = text.trim().split_once("://")?;
        let https = match scheme.to_ascii_lowercase().as_str() {
            "https" => true,
            "http" => false,
            _ => return None,
        };
        let (authority, path) = match rest.find(['/', '?']) {
            Some(at) => (&rest[..at], &rest[at..]),
            None => (rest, "/"),
        };
        if authority.is_empty() || authority.contains(['@', ' ']) {
            return None;
        }
        let path_with_query = if path.starts_with('?') {
            format!("/{path}")
        } else {
            path.to_string()
        };
        Some(Url {
            https,
            authority: authority.into(),
            path_with_query,
        })
    }

    /// This URL with `path` appended to its path (no query).
    pub fn join(&self, path: &str) -> Url {
        let base = self.path_with_query.trim_end_matches('/');
        Url {
            path_with_query: format!("{base}{path}"),
            ..self.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_providers_need() {
        let url = Url::parse("http://127.0.0.1:8080/sms?x=1").unwrap();
        assert_eq!(
            (
                url.https,
                url.authority.as_str(),
                url.path_with_query.as_str()
            ),
            (false, "127.0.0.1:8080", "/sms?x=1")
        );
        let url = Url::parse("https://api.twilio.com").unwrap();
        assert_eq!((url.https, url.path_with_query.as_str()), (true, "/"));
        assert_eq!(url.join("/2010-04-01/x").path_with_query, "/2010-04-01/x");
        for bad in [
            "",
            "api.twilio.com",
            "ftp://x/",
            "http:///path",
            "http://user@host/",
        ] {
            assert_eq!(Url::parse(bad), None, "{bad}");
        }
    }
}
