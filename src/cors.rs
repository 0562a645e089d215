//! CORS, so that browser apps on another origin can call the API: the answers upstream
//! ZITADEL's HTTP front gives (rs/cors in `internal/api/http/middleware/cors_interceptor.go`),
//! plus `CORS_ALLOWED_ORIGINS` to close it to listed origins (docs/api.md "Browsers and CORS").
//!
//! A preflight is answered here, before routing: it needs no token, reads no store and counts
//! against nothing. Every other answer gets the headers that let the browser read it.

use crate::error::Error;
use crate::http::{Request, Response};
use crate::platform::Settings;

/// The request headers browsers may send: upstream's list, and `x-request-id`, which we echo.
pub const ALLOWED_HEADERS: &[&str] = &[
    "origin",
    "content-type",
    "accept",
    "accept-language",
    "authorization",
    "x-zitadel-orgid",
    "x-user-agent",
    "x-grpc-web",
    "x-requested-with",
    "connect-protocol-version",
    "connect-timeout-ms",
    "grpc-timeout",
    "x-request-id",
];

/// Upstream's methods.
pub const ALLOWED_METHODS: &[&str] = &["OPTIONS", "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"];

/// The answer headers scripts may read: upstream's list (gRPC-Web clients read the status from
/// them), and `x-request-id`, the id our log line carries.
pub const EXPOSED_HEADERS: &str =
    "location, content-length, grpc-status, grpc-message, grpc-status-details-bin, x-request-id";

/// How long a browser may reuse a preflight's answer (browsers cap it: Chromium at two hours).
pub const MAX_AGE_SECONDS: u32 = 86_400;

const SETTING: &str = "CORS_ALLOWED_ORIGINS";

/// Which origins may call: `CORS_ALLOWED_ORIGINS`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origins {
    /// Unset or `*`: every origin, as upstream.
    Any,
    Listed(Vec<OriginPattern>),
}

/// One listed origin: exact (`https://app.example.com`) or with a wildcard first label
/// (`https://*.example.com`, any subdomain at any depth, not the domain itself).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OriginPattern {
    Exact(String),
    /// The text before and after the `*`: `https://` and `.example.com` (with any port).
    Subdomains {
        scheme: String,
        rest: String,
    },
}

impl Origins {
    /// `CORS_ALLOWED_ORIGINS` through the host's settings; a malformed list is a config error.
    pub fn from_settings(settings: &Settings<'_>) -> Result<Origins, Error> {
        let value =
            settings(SETTING).map_err(|unavailable| Error::SettingsUnavailable(unavailable.0))?;
        Origins::parse(value.as_deref().unwrap_or_default())
    }

    /// A comma-separated list of origins and patterns; empty or `*` for any.
    pub fn parse(text: &str) -> Result<Origins, Error> {
        let entries: Vec<&str> = text
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .collect();
        if entries.is_empty() || entries.contains(&"*") {
            return Ok(Origins::Any);
        }
        entries
            .into_iter()
            .map(OriginPattern::parse)
            .collect::<Option<Vec<_>>>()
            .map(Origins::Listed)
            .ok_or_else(|| Error::Config {
                variable: SETTING,
                problem: "must list origins such as https://app.example.com or https://*.example.com, separated by commas, or be * for any".into(),
            })
    }

    pub fn allows(&self, origin: &str) -> bool {
        match self {
            Origins::Any => true,
            Origins::Listed(patterns) => {
                let origin = origin.to_ascii_lowercase();
                patterns.iter().any(|pattern| pattern.matches(&origin))
            }
        }
    }
}

impl OriginPattern {
    /// `scheme://host[:port]` with scheme http or https, no path; `*.` may start the host.
    fn parse(entry: &str) -> Option<OriginPattern> {
        let entry = entry.trim_end_matches('/').to_ascii_lowercase();
        let (scheme, authority) = entry.split_once("://")?;
        if !matches!(scheme, "http" | "https") || authority.is_empty() {
            return None;
        }
        let valid = |text: &str| {
            !text.is_empty()
                && text
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
        };
        match authority.strip_prefix("*.") {
            Some(rest) if valid(rest) && !rest.starts_with('.') => {
                Some(OriginPattern::Subdomains {
                    scheme: format!("{scheme}://"),
                    rest: format!(".{rest}"),
                })
            }
            Some(_) => None,
            None if valid(authority) => Some(OriginPattern::Exact(entry)),
            None => None,
        }
    }

    /// `origin` in lower case.
    fn matches(&self, origin: &str) -> bool {
        match self {
            OriginPattern::Exact(exact) => origin == exact,
            OriginPattern::Subdomains { scheme, rest } => origin
                .strip_prefix(scheme.as_str())
                .and_then(|authority| authority.strip_suffix(rest.as_str()))
                .is_some_and(|labels| {
                    !labels.is_empty()
                        && !labels.starts_with('.')
                        && !labels.ends_with('.')
                        && labels
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'))
                }),
        }
    }
}

/// A CORS preflight: `OPTIONS` with an `Origin` and the method the browser wants to use.
pub fn is_preflight(request: &Request) -> bool {
    request.method == "OPTIONS"
        && request.header("origin").is_some()
        && request.header("access-control-request-method").is_some()
}

/// The answer to a preflight: 204, with the permissions when the origin, the method and every
/// requested header are allowed, else without them (the browser then refuses the call).
pub fn preflight(request: &Request, origins: &Origins) -> Response {
    let mut headers = vec![(
        "vary".to_owned(),
        "Origin, Access-Control-Request-Method, Access-Control-Request-Headers".to_owned(),
    )];
    let origin = request.header("origin").unwrap_or_default();
    let method = request
        .header("access-control-request-method")
        .unwrap_or_default();
    let requested = request
        .header("access-control-request-headers")
        .unwrap_or_default();
    let headers_allowed = requested
        .split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .all(|name| {
            ALLOWED_HEADERS
                .iter()
                .any(|allowed| allowed.eq_ignore_ascii_case(name))
        });
    let method_allowed = ALLOWED_METHODS
        .iter()
        .any(|allowed| allowed.eq_ignore_ascii_case(method.trim()));
    if origins.allows(origin) && method_allowed && headers_allowed {
        headers.extend([
            ("access-control-allow-origin".to_owned(), origin.to_owned()),
            (
                "access-control-allow-credentials".to_owned(),
                "true".to_owned(),
            ),
            (
                "access-control-allow-methods".to_owned(),
                ALLOWED_METHODS.join(", "),
            ),
            (
                "access-control-allow-headers".to_owned(),
                ALLOWED_HEADERS.join(", "),
            ),
            (
                "access-control-max-age".to_owned(),
                MAX_AGE_SECONDS.to_string(),
            ),
        ]);
    }
    Response {
        status: 204,
        headers,
        body: Vec::new(),
        trailers: Vec::new(),
    }
}

/// Adds to an answer what lets a script on an allowed origin read it.
pub fn decorate(response: &mut Response, request: &Request, origins: &Origins) {
    response.headers.push(("vary".into(), "Origin".into()));
    let Some(origin) = request.header("origin") else {
        return;
    };
    if origins.allows(origin) {
        response.headers.extend([
            ("access-control-allow-origin".to_owned(), origin.to_owned()),
            (
                "access-control-allow-credentials".to_owned(),
                "true".to_owned(),
            ),
            (
                "access-control-expose-headers".to_owned(),
                EXPOSED_HEADERS.to_owned(),
            ),
        ]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: &str, headers: &[(&str, &str)]) -> Request {
        Request {
            method: method.into(),
            path: "/auth/v1/users/me/phone".into(),
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect(),
            body: Ok(Vec::new()),
        }
    }

    fn header<'r>(response: &'r Response, name: &str) -> Option<&'r str> {
        response
            .headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn listed(text: &str) -> Origins {
        Origins::parse(text).expect("a valid list")
    }

    #[test]
    fn unset_and_star_allow_every_origin() {
        assert_eq!(Origins::parse("").unwrap(), Origins::Any);
        assert_eq!(Origins::parse(" * ").unwrap(), Origins::Any);
        assert_eq!(
            Origins::parse("https://a.example, *").unwrap(),
            Origins::Any
        );
        assert!(Origins::Any.allows("http://127.0.0.1:3000"));
    }

    #[test]
    fn exact_origins_match_exactly_and_ignore_case() {
        let origins = listed("https://app.example.com, http://127.0.0.1:3000/");
        assert!(origins.allows("https://app.example.com"));
        assert!(origins.allows("HTTPS://APP.example.com"));
        assert!(origins.allows("http://127.0.0.1:3000"));
        assert!(!origins.allows("http://app.example.com"));
        assert!(!origins.allows("https://app.example.com:8443"));
        assert!(!origins.allows("https://app.example.com.evil.test"));
        assert!(!origins.allows("http://127.0.0.1:3001"));
        assert!(!origins.allows("null"));
    }

    #[test]
    fn wildcards_match_subdomains_only() {
        let origins = listed("https://*.example.com");
        assert!(origins.allows("https://app.example.com"));
        assert!(origins.allows("https://a.b.example.com"));
        assert!(!origins.allows("https://example.com"));
        assert!(!origins.allows("https://evilexample.com"));
        assert!(!origins.allows("https://app.example.com:8443"));
        assert!(!origins.allows("http://app.example.com"));
        assert!(!origins.allows("https://x.evil.test/.example.com"));
        assert!(!origins.allows("https://a:b@x.example.com"));
        let with_port = listed("http://*.localhost:8080");
        assert!(with_port.allows("http://app.localhost:8080"));
        assert!(!with_port.allows("http://app.localhost"));
    }

    #[test]
    fn malformed_lists_name_the_setting() {
        for bad in [
            "example.com",
            "*.example.com",
            "ftp://a.example",
            "https://",
            "https://a.example/path",
            "https://*.",
            "https://a*.example.com",
        ] {
            match Origins::parse(bad) {
                Err(Error::Config { variable, .. }) => assert_eq!(variable, SETTING, "{bad}"),
                other => panic!("{bad}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_preflight_gets_upstreams_permissions() {
        let preflight_request = request(
            "OPTIONS",
            &[
                ("origin", "http://127.0.0.1:3000"),
                ("access-control-request-method", "PUT"),
                (
                    "access-control-request-headers",
                    "authorization, content-type, x-grpc-web, x-user-agent",
                ),
            ],
        );
        assert!(is_preflight(&preflight_request));
        let response = preflight(&preflight_request, &Origins::Any);
        assert_eq!(response.status, 204);
        assert_eq!(
            header(&response, "access-control-allow-origin"),
            Some("http://127.0.0.1:3000")
        );
        assert_eq!(
            header(&response, "access-control-allow-credentials"),
            Some("true")
        );
        assert_eq!(
            header(&response, "access-control-allow-methods"),
            Some("OPTIONS, GET, HEAD, POST, PUT, PATCH, DELETE")
        );
        let allowed = header(&response, "access-control-allow-headers").unwrap_or_default();
        for name in [
            "authorization",
            "content-type",
            "x-grpc-web",
            "x-user-agent",
            "grpc-timeout",
            "x-zitadel-orgid",
        ] {
            assert!(
                allowed.split(", ").any(|n| n == name),
                "{name} in {allowed}"
            );
        }
        assert_eq!(header(&response, "access-control-max-age"), Some("86400"));
        assert!(response.body.is_empty());
    }

    #[test]
    fn a_preflight_from_a_refused_origin_or_for_unknown_headers_gets_no_permissions() {
        let origins = listed("https://app.example.com");
        let cases = [
            ("https://evil.example.com", "PUT", "authorization"),
            ("https://app.example.com", "PUT", "authorization, x-secret"),
            ("https://app.example.com", "TRACE", ""),
        ];
        for (origin, method, headers) in cases {
            let response = preflight(
                &request(
                    "OPTIONS",
                    &[
                        ("origin", origin),
                        ("access-control-request-method", method),
                        ("access-control-request-headers", headers),
                    ],
                ),
                &origins,
            );
            assert_eq!(response.status, 204);
            assert_eq!(
                header(&response, "access-control-allow-origin"),
                None,
                "{origin} {method} {headers}"
            );
        }
    }

    #[test]
    fn options_without_a_cors_method_is_no_preflight() {
        assert!(!is_preflight(&request(
            "OPTIONS",
            &[("origin", "https://a.example")]
        )));
        assert!(!is_preflight(&request(
            "OPTIONS",
            &[("access-control-request-method", "PUT")]
        )));
        assert!(!is_preflight(&request(
            "PUT",
            &[
                ("origin", "https://a.example"),
                ("access-control-request-method", "PUT")
            ]
        )));
    }

    #[test]
    fn answers_carry_the_origin_only_when_it_is_allowed() {
        let origins = listed("https://app.example.com");
        let mut allowed = Response::json(200, Vec::new());
        decorate(
            &mut allowed,
            &request("PUT", &[("origin", "https://app.example.com")]),
            &origins,
        );
        assert_eq!(
            header(&allowed, "access-control-allow-origin"),
            Some("https://app.example.com")
        );
        assert_eq!(
            header(&allowed, "access-control-expose-headers"),
            Some(EXPOSED_HEADERS)
        );
        assert_eq!(header(&allowed, "vary"), Some("Origin"));
        let mut refused = Response::json(200, Vec::new());
        decorate(
            &mut refused,
            &request("PUT", &[("origin", "https://evil.example.com")]),
            &origins,
        );
        assert_eq!(header(&refused, "access-control-allow-origin"), None);
        assert_eq!(header(&refused, "vary"), Some("Origin"));
        let mut no_origin = Response::json(200, Vec::new());
        decorate(&mut no_origin, &request("PUT", &[]), &Origins::Any);
        assert_eq!(header(&no_origin, "access-control-allow-origin"), None);
    }
}
