//! Which encoding a request asks for, from its `content-type`, as upstream ZITADEL routes them:
//! `application/grpc…` to its gRPC server, `application/grpc-web…` through improbable-eng's
//! grpcweb wrapper, everything else to grpc-gateway, whose default marshaler reads any other
//! content type (or none) as JSON.

/// How a request is encoded, and how its answer must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// REST with JSON bodies (grpc-gateway).
    Json,
    /// gRPC over HTTP/2, the status in HTTP trailers.
    Grpc,
    /// gRPC-Web, binary frames; the status in a trailer frame at the end of the body.
    GrpcWeb,
    /// gRPC-Web text mode: the same frames, base64-encoded (the default of Google's grpc-web
    /// JavaScript client).
    GrpcWebText,
}

impl Protocol {
    /// The protocol for a `content-type` header value (`None` when the request has none).
    /// Media types are compared without parameters and case. A codec suffix other than `+proto`
    /// (`application/grpc+json`) still means gRPC: grpc-go falls back to protobuf for codecs it
    /// does not know, and so does the service.
    pub fn of_content_type(content_type: Option<&str>) -> Self {
        let Some(value) = content_type else {
            return Self::Json;
        };
        let media = value
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        let suffix_ok = |rest: &str| rest.is_empty() || rest.starts_with('+');
        if let Some(rest) = media.strip_prefix("application/grpc-web-text") {
            if suffix_ok(rest) {
                return Self::GrpcWebText;
            }
        } else if let Some(rest) = media.strip_prefix("application/grpc-web") {
            if suffix_ok(rest) {
                return Self::GrpcWeb;
            }
        } else if let Some(rest) = media.strip_prefix("application/grpc")
            && suffix_ok(rest)
        {
            return Self::Grpc;
        }
        Self::Json
    }

    /// Whether answers carry a gRPC status (`grpc-status`) rather than an HTTP one.
    pub fn is_grpc(self) -> bool {
        !matches!(self, Self::Json)
    }

    /// Whether the status travels in a trailer frame inside the body (gRPC-Web, both modes).
    pub fn is_grpc_web(self) -> bool {
        matches!(self, Self::GrpcWeb | Self::GrpcWebText)
    }

    /// The content type of this protocol's answers.
    pub fn answer_content_type(self) -> &'static str {
        match self {
            Self::Json => "application/json",
            Self::Grpc => "application/grpc",
            Self::GrpcWeb => "application/grpc-web+proto",
            Self::GrpcWebText => "application/grpc-web-text+proto",
        }
    }

    /// The name logs and metrics use.
    pub fn label(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::Grpc => "grpc",
            Self::GrpcWeb => "grpc-web",
            Self::GrpcWebText => "grpc-web-text",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Protocol;

    #[test]
    fn content_types_choose_the_protocol() {
        for (content_type, protocol) in [
            (None, Protocol::Json),
            (Some("application/json"), Protocol::Json),
            (Some("application/x-www-form-urlencoded"), Protocol::Json),
            (Some("text/plain; charset=utf-8"), Protocol::Json),
            (Some(""), Protocol::Json),
            (Some("application/grpc"), Protocol::Grpc),
            (Some("application/grpc+proto"), Protocol::Grpc),
            (Some("application/grpc+json"), Protocol::Grpc),
            (Some("Application/GRPC; x=y"), Protocol::Grpc),
            (Some("application/grpcx"), Protocol::Json),
            (Some("application/grpc-web"), Protocol::GrpcWeb),
            (
                Some("Application/GRPC-Web+proto; charset=x"),
                Protocol::GrpcWeb,
            ),
            (Some("application/grpc-webx"), Protocol::Json),
            (Some("application/grpc-web-text"), Protocol::GrpcWebText),
            (
                Some("application/grpc-web-text+proto"),
                Protocol::GrpcWebText,
            ),
            (Some("application/grpc-web-textual"), Protocol::Json),
        ] {
            assert_eq!(
                Protocol::of_content_type(content_type),
                protocol,
                "{content_type:?}"
            );
        }
    }
}
