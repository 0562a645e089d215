//! A wasi:http component that misbehaves on request, so that tests can check the host's limits:
//!
//! - `/ok` answers 200 with a small JSON body;
//! - `/loop` computes forever without calling the host;
//! - `/grow` allocates memory without end;
//! - `/trap` panics, which traps;
//! - `/block` waits an hour on a host clock.

#[cfg(target_arch = "wasm32")]
mod component {
    use std::hint::black_box;

    use wasip2::http::types::{
        Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
    };

    struct Misbehave;

    impl wasip2::exports::http::incoming_handler::Guest for Misbehave {
        fn handle(request: IncomingRequest, out: ResponseOutparam) {
            match request.path_with_query().as_deref() {
                Some("/loop") => spin(),
                Some("/grow") => grow(),
                Some("/trap") => panic!("trap requested"),
                Some("/block") => {
                    let hour = 3_600_000_000_000;
                    wasip2::clocks::monotonic_clock::subscribe_duration(hour).block();
                    respond(out, 200, b"{\"slept\":true}");
                }
                Some("/ok") => respond(out, 200, b"{\"ok\":true}"),
                _ => respond(out, 404, b"{\"error\":\"no such path\"}"),
            }
        }
    }

    /// Never returns, and never calls the host.
    fn spin() -> ! {
        let mut n: u64 = 0;
        loop {
            n = black_box(n.wrapping_add(1));
        }
    }

    /// Keeps 1 MiB blocks (written, so that they are really used) until allocation fails, which
    /// aborts.
    fn grow() -> ! {
        let mut blocks: Vec<Vec<u8>> = Vec::new();
        loop {
            blocks.push(vec![0xa5; 1 << 20]);
            black_box(&blocks);
        }
    }

    fn respond(out: ResponseOutparam, status: u16, body: &[u8]) {
        let headers =
            Fields::from_list(&[("content-type".to_string(), b"application/json".to_vec())])
                .unwrap_or_else(|_| Fields::new());
        let response = OutgoingResponse::new(headers);
        let _ = response.set_status_code(status);
        let Ok(outgoing) = response.body() else {
            return;
        };
        ResponseOutparam::set(out, Ok(response));
        if let Ok(stream) = outgoing.write() {
            let _ = stream.blocking_write_and_flush(body);
            drop(stream);
        }
        let _ = OutgoingBody::finish(outgoing, None);
    }

    // The export macro emits the component ABI glue, which is unsafe by nature.
    #[allow(unsafe_code)]
    mod export {
        use super::Misbehave;
        wasip2::http::proxy::export!(Misbehave);
    }
}
