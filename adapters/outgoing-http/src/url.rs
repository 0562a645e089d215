//! Just enough URL parsing for outgoing requests: scheme, authority, path and query.

/// An absolute `http` or `https` URL, split the way wasi:http wants it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Url {
    pub https: bool,
    /// `host` or `host:port`; never user information.
    pub authority: String,
    /// Path and query, at least `/`; never a fragment.
    pub path_with_query: String,
}

impl Url {
    /// Parses `http(s)://authority[/path][?query][#fragment]`; `None` for anything else,
    /// including URLs carrying user information (credentials belong in settings, not URLs).
    pub fn parse(text: &str) -> Option<Url> {
        let (scheme, rest) = text.trim().split_once("://")?;
        let https = match scheme.to_ascii_lowercase().as_str() {
            "https" => true,
            "http" => false,
            _ => return None,
        };
        let rest = rest.split_once('#').map_or(rest, |(before, _)| before);
        let (authority, path) = match rest.find(['/', '?']) {
            Some(at) => rest.split_at(at),
            None => (rest, "/"),
        };
        if authority.is_empty()
            || authority
                .chars()
                .any(|c| c == '@' || c.is_whitespace() || c.is_control())
            || path.chars().any(|c| c.is_whitespace() || c.is_control())
        {
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

    /// This URL with `path` (which starts with `/`) appended to its path; any query is dropped.
    pub fn join(&self, path: &str) -> Url {
        let base = self
            .path_with_query
            .split_once('?')
            .map_or(self.path_with_query.as_str(), |(base, _)| base)
            .trim_end_matches('/');
        Url {
            path_with_query: format!("{base}{path}"),
            ..self.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(text: &str) -> Option<(bool, String, String)> {
        Url::parse(text).map(|u| (u.https, u.authority, u.path_with_query))
    }

    #[test]
    fn parses_what_providers_need() {
        assert_eq!(
            parts("http://127.0.0.1:8080/sms?x=1"),
            Some((false, "127.0.0.1:8080".into(), "/sms?x=1".into()))
        );
        assert_eq!(
            parts(" HTTPS://api.twilio.com "),
            Some((true, "api.twilio.com".into(), "/".into()))
        );
        assert_eq!(
            parts("https://h?a=b#frag"),
            Some((true, "h".into(), "/?a=b".into()))
        );
    }

    #[test]
    fn rejects_what_it_cannot_send() {
        for bad in [
            "",
            "api.twilio.com",
            "ftp://x/",
            "http:///path",
            "http://user:pw@host/",
            "http://ho st/",
            "http://host/a b",
        ] {
            assert_eq!(Url::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn join_appends_below_the_base_path() -> Result<(), String> {
        let base = Url::parse("https://api.twilio.com").ok_or("parse")?;
        assert_eq!(base.join("/2010-04-01/x").path_with_query, "/2010-04-01/x");
        let base = Url::parse("http://mock:1/twilio/?debug=1").ok_or("parse")?;
        assert_eq!(
            base.join("/2010-04-01/x").path_with_query,
            "/twilio/2010-04-01/x"
        );
        Ok(())
    }
}
