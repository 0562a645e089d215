//! The smallest useful wasi:http component: answers every request with a fixed JSON body of
//! about the size of a GetMyPhone answer. The benchmark serves it beside set-my-phone on the
//! same host, so each figure has a baseline measured in the same run.

#[cfg(target_arch = "wasm32")]
mod component {
    use wasip2::http::types::{
        Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
    };

    const BODY: &[u8] = br#"{"details":{"sequence":"2","creationDate":"2026-01-01T00:00:00Z","changeDate":"2026-01-01T00:00:00Z","resourceOwner":"dev-org"},"phone":{"phone":"+41710000000","isPhoneVerified":false}}"#;

    struct Hello;

    impl wasip2::exports::http::incoming_handler::Guest for Hello {
        fn handle(_request: IncomingRequest, out: ResponseOutparam) {
            let headers =
                Fields::from_list(&[("content-type".to_string(), b"application/json".to_vec())])
                    .unwrap_or_else(|_| Fields::new());
            let response = OutgoingResponse::new(headers);
            let Ok(body) = response.body() else { return };
            ResponseOutparam::set(out, Ok(response));
            if let Ok(stream) = body.write() {
                let _ = stream.blocking_write_and_flush(BODY);
                drop(stream);
            }
            let _ = OutgoingBody::finish(body, None);
        }
    }

    // The export macro emits the component ABI glue, which is unsafe by nature.
    #[allow(unsafe_code)]
    mod export {
        use super::Hello;
        wasip2::http::proxy::export!(Hello);
    }
}
