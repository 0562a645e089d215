//! A wasi:http component that misbehaves on request, so that tests can check the host's limits:
//!
//! - `/ok` answers 200 with a small JSON body;
//! - `/loop` computes forever without calling the host;
//! - `/grow` allocates memory without end;
//! - `/trap` panics, which traps;
//! - `/block` waits an hour on a host clock;
//! - `/residue` reports what an earlier request left in this instance's memory (a static, and
//!   8 MiB of heap that must come up zero), then leaves its own marks there.

#[cfg(target_arch = "wasm32")]
mod component {
    use std::hint::black_box;
    use std::sync::atomic::{AtomicU64, Ordering};

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
                Some("/residue") => {
                    let (seen, dirty) = residue();
                    let body = format!("{{\"static_seen\":{seen},\"heap_dirty_bytes\":{dirty}}}");
                    respond(out, 200, body.as_bytes());
                }
                _ => respond(out, 404, b"{\"error\":\"no such path\"}"),
            }
        }
    }

    static MARK: AtomicU64 = AtomicU64::new(0);

    /// Whether the static holds an earlier request's mark, and how many bytes of a fresh 8 MiB
    /// zeroed allocation are not zero; then marks both (one byte per 4 KiB page of the heap).
    /// Memory grown for the allocation counts as zero to the allocator, so on a fresh instance
    /// anything left there by an earlier instance in the same pooled slot shows up here.
    fn residue() -> (bool, usize) {
        let seen = MARK.swap(0x5e75_3a1d_c0de_0001, Ordering::SeqCst) != 0;
        let mut heap = vec![0u8; 8 << 20];
        let dirty = heap.iter().filter(|byte| **byte != 0).count();
        for page in heap.chunks_mut(4096) {
            page[0] = 0xa5;
        }
        black_box(&heap);
        // Kept for the instance's life, so that the next request's allocation is new memory.
        std::mem::forget(heap);
        (seen, dirty)
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
