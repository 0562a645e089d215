//! Leaves the pre-initialised heap without holes, so that a fresh instance's requests touch as
//! few of its pages as they can.
//!
//! Why: pre-initialisation parses libphonenumber's metadata and compiles its regexes, freeing
//! most of what it allocates on the way, which left about 160 KB of free blocks spread over the
//! snapshot's 2.9 MB heap. On a fresh instance (`wasmtime serve`, Spin) every request's
//! allocations then searched and split those blocks: measured on `wasmtime serve`, wasi-libc's
//! dlmalloc caused about 75 of a GetMyPhone's 104 page faults, each a copy-on-write fault on
//! another page of the image (with a TLB shootdown on a multi-threaded host). Filled here with
//! blocks that are never freed (what they hold is never read), the holes cost nothing after the
//! snapshot, and a request's allocations come from the heap's end, side by side.

use std::alloc::{GlobalAlloc, Layout, System};

const WASM_PAGE: usize = 65_536;

#[allow(unsafe_code, reason = "the linker's symbol is only declared here")]
unsafe extern "C" {
    /// Where the heap starts, after the data and the stack (defined by wasm-ld).
    static __heap_base: u8;
}

/// Fills every free block below dlmalloc's top chunk with a block kept forever. Costs the
/// snapshot's memory about the heap's size again, in zero pages beyond the image's data.
#[allow(
    unsafe_code,
    reason = "reads the linker's heap base and allocates blocks it never frees"
)]
pub fn plug_holes() {
    let end = core::arch::wasm32::memory_size::<0>() * WASM_PAGE;
    let heap_base = (&raw const __heap_base) as usize;
    // A block larger than the whole heap fits in no free block, so dlmalloc extends its top
    // chunk and returns the top's start: everything free below it is a hole.
    let heap_size = end.saturating_sub(heap_base);
    let Ok(probe_layout) = Layout::from_size_align(heap_size + WASM_PAGE, 8) else {
        return;
    };
    // SAFETY: a non-zero size; the block is freed right away with the same layout.
    let probe = unsafe { System.alloc(probe_layout) };
    if probe.is_null() {
        return;
    }
    let top = probe as usize;
    // SAFETY: `probe` came from `System.alloc(probe_layout)` and is freed once.
    unsafe { System.dealloc(probe, probe_layout) };
    // Largest first, so that each hole is filled by few blocks; a block at or past the top's
    // start means no hole of that size is left, and goes back to the top.
    let mut plugged = 0usize;
    for shift in (0..=20).rev() {
        let Ok(layout) = Layout::from_size_align(1 << shift, 1) else {
            return;
        };
        // (Bounded: holes add up to less than the heap.)
        while plugged < heap_size {
            // SAFETY: a non-zero size.
            let block = unsafe { System.alloc(layout) };
            if block.is_null() {
                return;
            }
            if block as usize >= top {
                // SAFETY: `block` came from `System.alloc(layout)` and is freed once.
                unsafe { System.dealloc(block, layout) };
                break;
            }
            plugged += layout.size();
        }
    }
}
