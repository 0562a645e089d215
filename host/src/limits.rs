//! Limits on one request's guest, and what the client hears when its guest breaks one.
//!
//! - A deadline for the answer (`request_timeout`): a guest that computes is interrupted through
//!   wasmtime's epoch interruption (a ticker thread advances the engine's epoch; every time slice
//!   the guest yields to other tasks, and past its deadline it traps); a guest waiting on the host is
//!   dropped by a timer. Once answered, the guest may finish its work (the SMS) until the guest
//!   limit (`guest_timeout`), under the same two mechanisms.
//! - A memory cap (`max_memory`): the linear memories and tables of one guest together; growing
//!   past it fails (the guest sees `memory.grow` return -1, which Rust guests turn into a trap).
//!   An instance that serves several requests (`instances.rs`) counts them all against its cap.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use hyper::StatusCode;
use wasmtime::{Engine, ResourceLimiter, Trap, UpdateDeadline};

use crate::instances::DropReason;

/// How often the epoch advances.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(50);

/// A computing guest's time slice, in epoch ticks (50 to 100 ms): how long it computes before it
/// lets other requests' guests on its thread run, and how late, at most, it notices its deadline.
/// An ordinary request computes a few milliseconds and is rarely cut: cutting it between a read
/// and its compare-and-swap would only make conflicts likelier under load.
pub(crate) const SLICE_TICKS: u64 = 2;

/// The default memory cap of one guest: 64 MiB.
pub(crate) const DEFAULT_MAX_MEMORY: usize = 64 << 20;

/// The largest memory cap: a 32-bit linear memory cannot grow beyond 4 GiB, and the pooling
/// allocator's memory slots are no larger.
pub(crate) const MAX_MAX_MEMORY: usize = 4 << 30;

/// The limits every request's guest runs under.
#[derive(Clone, Copy, Debug)]
pub(crate) struct GuestLimits {
    /// How long the guest may take to answer.
    pub(crate) request_timeout: Duration,
    /// How long the guest may run in all, the work after its answer included (never less than
    /// `request_timeout`).
    pub(crate) guest_timeout: Duration,
    /// How many bytes of linear memory and tables the guest may hold.
    pub(crate) max_memory: usize,
}

/// Starts a thread that advances `engine`'s epoch every [`EPOCH_TICK`]; the thread ends once the
/// engine is dropped.
pub(crate) fn start_epoch_ticker(engine: &Engine) -> anyhow::Result<()> {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("wasm-epoch-ticker".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .context("cannot start the epoch ticker thread")?;
    Ok(())
}

/// One request's deadlines, shared by the request (waiting for the answer) and its guest task.
pub(crate) struct Deadlines {
    answer_by: Instant,
    finish_by: Instant,
    answered: AtomicBool,
    failure: OnceLock<Failure>,
}

impl Deadlines {
    /// Deadlines counted from now.
    pub(crate) fn start(limits: &GuestLimits) -> Arc<Self> {
        let now = Instant::now();
        Arc::new(Self {
            answer_by: now + limits.request_timeout,
            finish_by: now + limits.guest_timeout.max(limits.request_timeout),
            answered: AtomicBool::new(false),
            failure: OnceLock::new(),
        })
    }

    /// When the guest must have answered.
    pub(crate) fn answer_by(&self) -> Instant {
        self.answer_by
    }

    /// The guest answered: from now on only the guest limit applies.
    pub(crate) fn answered(&self) {
        self.answered.store(true, Ordering::Release);
    }

    /// The deadline in force: the answer's until the guest answers, then the guest limit.
    fn current(&self) -> Instant {
        if self.answered.load(Ordering::Acquire) {
            self.finish_by
        } else {
            self.answer_by
        }
    }

    /// At the end of every time slice while the guest computes: yield to other tasks, or trap
    /// (with [`Trap::Interrupt`]) once the deadline in force has passed.
    pub(crate) fn on_epoch(&self) -> UpdateDeadline {
        if Instant::now() >= self.current() {
            UpdateDeadline::Interrupt
        } else {
            UpdateDeadline::Yield(SLICE_TICKS)
        }
    }

    /// Completes once the deadline in force has passed (for a guest waiting on the host).
    pub(crate) async fn passed(&self) {
        loop {
            let deadline = self.current();
            tokio::time::sleep_until(deadline.into()).await;
            // The guest may have answered meanwhile, which moves the deadline.
            if Instant::now() >= self.current() {
                return;
            }
        }
    }

    /// Records why the guest ended, before its store (and the request's response slot) is
    /// dropped, so that a request still waiting can say what happened.
    pub(crate) fn fail(&self, failure: Failure) {
        let _ = self.failure.set(failure);
    }

    /// Why the guest ended, if it failed.
    pub(crate) fn failure(&self) -> Option<Failure> {
        self.failure.get().copied()
    }
}

/// Why a guest stopped before it was done.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Failure {
    /// It ran past its deadline.
    Deadline,
    /// It asked for more memory than its cap.
    Memory,
    /// It trapped.
    Trap,
    /// Anything else: no instance could be made, a host call failed, it gave no answer.
    Other,
}

impl Failure {
    /// What `error`, the end of a guest's run, means; `memory_exceeded` says whether the guest was
    /// refused memory (its trap is then the consequence).
    pub(crate) fn of(error: &wasmtime::Error, memory_exceeded: bool) -> Self {
        match error.downcast_ref::<Trap>() {
            _ if memory_exceeded => Self::Memory,
            Some(Trap::Interrupt) => Self::Deadline,
            Some(_) => Self::Trap,
            None => Self::Other,
        }
    }

    /// A few words for the log.
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Self::Deadline => "deadline passed while it computed",
            Self::Memory => "memory limit reached",
            Self::Trap => "trap",
            Self::Other => "error",
        }
    }

    /// The HTTP status, gRPC code and message the client gets.
    pub(crate) fn answer(self, limits: &GuestLimits) -> (StatusCode, u32, String) {
        match self {
            Self::Deadline => (
                StatusCode::GATEWAY_TIMEOUT,
                4,
                format!(
                    "deadline exceeded: the service did not answer within {:?}",
                    limits.request_timeout
                ),
            ),
            Self::Memory => (
                StatusCode::INTERNAL_SERVER_ERROR,
                13,
                format!(
                    "the service ran out of memory (limit {} MiB)",
                    limits.max_memory >> 20
                ),
            ),
            Self::Trap => (
                StatusCode::INTERNAL_SERVER_ERROR,
                13,
                "the service failed (trap)".to_owned(),
            ),
            Self::Other => (
                StatusCode::INTERNAL_SERVER_ERROR,
                13,
                "internal error".to_owned(),
            ),
        }
    }
}

impl From<Failure> for DropReason {
    /// Why an instance whose guest failed so is dropped.
    fn from(failure: Failure) -> Self {
        match failure {
            Failure::Deadline => Self::Deadline,
            Failure::Memory => Self::Memory,
            Failure::Trap => Self::Trap,
            Failure::Other => Self::Error,
        }
    }
}

/// The memory cap of one guest: its linear memories and tables together (a table element counts
/// as a pointer). Memories and tables never shrink, so the sum of granted growths is the total.
pub(crate) struct MemoryCap {
    limit: usize,
    used: usize,
    /// The last growth granted, taken back if the growth then fails.
    last_grant: usize,
    exceeded: bool,
}

impl MemoryCap {
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            limit,
            used: 0,
            last_grant: 0,
            exceeded: false,
        }
    }

    /// Whether the guest was refused memory.
    pub(crate) fn exceeded(&self) -> bool {
        self.exceeded
    }

    fn grow(&mut self, bytes: usize) -> bool {
        match self.used.checked_add(bytes) {
            Some(used) if used <= self.limit => {
                self.used = used;
                self.last_grant = bytes;
                true
            }
            _ => {
                self.exceeded = true;
                false
            }
        }
    }

    fn grow_failed(&mut self) {
        self.used = self.used.saturating_sub(self.last_grant);
        self.last_grant = 0;
    }
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(self.grow(desired.saturating_sub(current)))
    }

    fn memory_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        self.grow_failed();
        Ok(())
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let elements = desired.saturating_sub(current);
        Ok(self.grow(elements.saturating_mul(size_of::<usize>())))
    }

    fn table_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        self.grow_failed();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1 << 20;

    #[test]
    fn the_memory_cap_counts_every_memory_and_table_of_a_guest() {
        let mut cap = MemoryCap::new(4 * MIB);
        assert!(cap.memory_growing(0, 2 * MIB, None).unwrap_or(false));
        // A second memory: 2 MiB more fit exactly.
        assert!(cap.memory_growing(0, MIB, None).unwrap_or(false));
        assert!(cap.memory_growing(2 * MIB, 3 * MIB, None).unwrap_or(false));
        assert!(!cap.exceeded());
        // One table element more is 8 bytes past the cap.
        assert!(!cap.table_growing(10, 11, None).unwrap_or(true));
        assert!(cap.exceeded());
    }

    #[test]
    fn a_failed_growth_gives_its_grant_back() {
        let mut cap = MemoryCap::new(2 * MIB);
        assert!(cap.memory_growing(0, 2 * MIB, None).unwrap_or(false));
        cap.memory_grow_failed(wasmtime::Error::msg("no room"))
            .unwrap_or(());
        assert!(cap.memory_growing(0, 2 * MIB, None).unwrap_or(false));
        assert!(!cap.exceeded());
    }

    #[test]
    fn an_answer_moves_the_deadline_to_the_guest_limit() {
        let limits = GuestLimits {
            request_timeout: Duration::ZERO,
            guest_timeout: Duration::from_secs(3600),
            max_memory: MIB,
        };
        let deadlines = Deadlines::start(&limits);
        assert!(matches!(deadlines.on_epoch(), UpdateDeadline::Interrupt));
        deadlines.answered();
        assert!(matches!(
            deadlines.on_epoch(),
            UpdateDeadline::Yield(SLICE_TICKS)
        ));
    }

    #[test]
    fn failures_answer_with_google_rpc_codes() {
        let limits = GuestLimits {
            request_timeout: Duration::from_secs(2),
            guest_timeout: Duration::from_secs(60),
            max_memory: 16 * MIB,
        };
        let (status, code, message) = Failure::Deadline.answer(&limits);
        assert_eq!((status.as_u16(), code), (504, 4));
        assert!(message.contains("2s"), "{message}");
        let (status, code, message) = Failure::Memory.answer(&limits);
        assert_eq!((status.as_u16(), code), (500, 13));
        assert!(message.contains("16 MiB"), "{message}");
        let interrupt = wasmtime::Error::from(Trap::Interrupt);
        assert_eq!(Failure::of(&interrupt, false), Failure::Deadline);
        assert_eq!(Failure::of(&interrupt, true), Failure::Memory);
        let unreachable = wasmtime::Error::from(Trap::UnreachableCodeReached).context("in guest");
        assert_eq!(Failure::of(&unreachable, false), Failure::Trap);
        assert_eq!(
            Failure::of(&wasmtime::Error::msg("pool full"), false),
            Failure::Other
        );
    }
}
