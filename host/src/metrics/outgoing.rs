//! The component's outgoing HTTP as the metrics see it: calls to ZITADEL for the write-through
//! (its user service v2 and its token endpoint, told by their paths), counted by outcome. Every
//! request is sent as wasmtime's default would send it.

use std::future::Future;
use std::sync::Arc;

use hyper::{Request, Response};
use wasmtime_wasi_http::{RequestOptions, WasiBody, WasiHttpHooks};

use super::Metrics;

/// The hooks of one request's wasi:http context: counting, when the host keeps metrics.
#[derive(Default)]
pub(crate) struct OutgoingHooks {
    pub(crate) metrics: Option<Arc<Metrics>>,
}

/// Which ZITADEL call a path is, if any.
fn zitadel_call(path: &str) -> Option<&'static str> {
    if path.starts_with("/v2/users/") {
        Some("user_service")
    } else if path.ends_with("/oauth/v2/token") {
        Some("token")
    } else {
        None
    }
}

/// An answer's outcome label.
fn outcome(status: u16) -> &'static str {
    match status {
        200..=299 => "ok",
        400..=499 => "client_error",
        _ => "server_error",
    }
}

type Sent = Box<
    dyn Future<
            Output = wasmtime_wasi_http::Result<(
                Response<WasiBody>,
                Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
            )>,
        > + Send,
>;

impl WasiHttpHooks for OutgoingHooks {
    fn send_request(
        &mut self,
        request: Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
    ) -> Sent {
        drop(fut);
        let counted = self.metrics.clone().zip(zitadel_call(request.uri().path()));
        Box::new(async move {
            use http_body_util::BodyExt;
            let sent = wasmtime_wasi_http::default_send_request(request, options).await;
            if let Some((metrics, call)) = counted {
                let result = match &sent {
                    Ok((response, _)) => outcome(response.status().as_u16()),
                    Err(_) => "unreachable",
                };
                metrics.count_zitadel(call, result);
            }
            let (response, io) = sent?;
            Ok((
                response.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = _> + Send>,
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_zitadel_paths_are_counted() {
        assert_eq!(zitadel_call("/v2/users/123/phone"), Some("user_service"));
        assert_eq!(zitadel_call("/v2/users/123"), Some("user_service"));
        assert_eq!(zitadel_call("/oauth/v2/token"), Some("token"));
        assert_eq!(zitadel_call("/oauth/v2/introspect"), None);
        assert_eq!(zitadel_call("/sms"), None);
        assert_eq!(
            (outcome(200), outcome(403), outcome(503)),
            ("ok", "client_error", "server_error")
        );
    }
}
