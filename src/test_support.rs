//! In-memory fakes of what the core needs from its host (store, clock, randomness), shared by
//! every native test.

use crate::platform::{Answer, Clock, Failure, Http, Random, Request};
use crate::sms::{Message, SendError, Sms};
use crate::store::{Cas, KeyValue, StoreError, SwapError};
use crate::time::Timestamp;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

/// Deterministic byte source: counts up from a seed.
pub struct CountingRandom(pub Cell<u8>);

impl Random for CountingRandom {
    fn fill(&self, buf: &mut [u8]) {
        for byte in buf {
            *byte = self.0.get();
            self.0.set(self.0.get().wrapping_add(1));
        }
    }
}

/// In-memory store with versioned values and switchable faults, for native tests.
#[derive(Default)]
pub struct MemoryKv {
    pub data: RefCell<HashMap<String, (u64, Vec<u8>)>>,
    /// Swap writes, then reports a conflict anyway (Spin 4.0.2's Redis store).
    pub write_then_conflict: Cell<bool>,
    /// Swap fails with a store error without writing.
    pub swap_store_error: Cell<bool>,
    /// Another writer slips in before each of the next N swaps.
    pub interleave: Cell<u32>,
    /// What that writer stores when the key is absent (it only bumps the version otherwise).
    pub interleaved_value: RefCell<Vec<u8>>,
    /// A swap whose handle read "absent" writes unconditionally and reports success
    /// (Spin's SQLite store).
    pub upsert_from_absent: Cell<bool>,
    /// Another creator stores (key, value) during the n-th `get` from now.
    pub write_after_gets: RefCell<Option<(String, Vec<u8>, u32)>>,
    pub counters: RefCell<HashMap<String, i64>>,
    pub swaps: Cell<u32>,
    /// Calls of `increment`, reads by `increment(key, 0)` included.
    pub increments: Cell<u32>,
}

impl MemoryKv {
    pub fn counter(&self, key: &str) -> i64 {
        self.counters.borrow().get(key).copied().unwrap_or(0)
    }
}

struct MemoryCas<'a> {
    kv: &'a MemoryKv,
    key: String,
    version: u64,
    value: Option<Vec<u8>>,
}

impl Cas for MemoryCas<'_> {
    fn current(&self) -> Option<&[u8]> {
        self.value.as_deref()
    }

    fn swap(self: Box<Self>, value: Vec<u8>) -> Result<(), SwapError> {
        let kv = self.kv;
        kv.swaps.set(kv.swaps.get() + 1);
        if kv.swap_store_error.get() {
            return Err(SwapError::Store(StoreError("injected".into())));
        }
        let mut data = kv.data.borrow_mut();
        if kv.upsert_from_absent.get() && self.value.is_none() {
            let version = data.get(&self.key).map_or(0, |(v, _)| *v);
            data.insert(self.key.clone(), (version + 1, value));
            return Ok(());
        }
        if kv.interleave.get() > 0 {
            kv.interleave.set(kv.interleave.get() - 1);
            let created = kv.interleaved_value.borrow().clone();
            let entry = data.entry(self.key.clone()).or_insert((0, created));
            entry.0 += 1;
        }
        let version = data.get(&self.key).map_or(0, |(v, _)| *v);
        if version != self.version {
            return Err(SwapError::Conflict);
        }
        data.insert(self.key.clone(), (version + 1, value));
        if kv.write_then_conflict.get() {
            Err(SwapError::Conflict)
        } else {
            Ok(())
        }
    }
}

impl KeyValue for MemoryKv {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let mut pending = self.write_after_gets.borrow_mut();
        if let Some((other_key, value, gets)) = pending.as_mut() {
            *gets = gets.saturating_sub(1);
            if *gets == 0 {
                let mut data = self.data.borrow_mut();
                let version = data.get(other_key.as_str()).map_or(0, |(v, _)| *v);
                data.insert(other_key.clone(), (version + 1, std::mem::take(value)));
                *pending = None;
            }
        }
        Ok(self.data.borrow().get(key).map(|(_, v)| v.clone()))
    }

    fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        let mut data = self.data.borrow_mut();
        let version = data.get(key).map_or(0, |(v, _)| *v);
        data.insert(key.into(), (version + 1, value.to_vec()));
        Ok(())
    }

    fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.data.borrow_mut().remove(key);
        self.counters.borrow_mut().remove(key);
        Ok(())
    }

    fn increment(&self, key: &str, delta: i64) -> Result<i64, StoreError> {
        self.increments.set(self.increments.get() + 1);
        let mut counters = self.counters.borrow_mut();
        let counter = counters.entry(key.into()).or_insert(0);
        *counter += delta;
        Ok(*counter)
    }

    fn start_swap(&self, key: &str) -> Result<Box<dyn Cas + '_>, StoreError> {
        let (version, value) = match self.data.borrow().get(key) {
            Some((version, value)) => (*version, Some(value.clone())),
            None => (0, None),
        };
        Ok(Box::new(MemoryCas {
            kv: self,
            key: key.into(),
            version,
            value,
        }))
    }
}

/// A clock that stands still (or jumps `step_on_read` seconds on every reading) and only
/// counts the time it is asked to sleep.
pub struct FixedClock {
    pub seconds: Cell<i64>,
    pub step_on_read: Cell<Option<i64>>,
    pub slept: Cell<Duration>,
}

impl FixedClock {
    pub fn at(seconds: i64) -> Self {
        FixedClock {
            seconds: Cell::new(seconds),
            step_on_read: Cell::new(None),
            slept: Cell::new(Duration::ZERO),
        }
    }
}

impl Clock for FixedClock {
    fn now(&self) -> Timestamp {
        let now = self.seconds.get();
        if let Some(step) = self.step_on_read.get() {
            self.seconds.set(now + step);
        }
        Timestamp::new(now, 0)
    }
    fn sleep(&self, duration: Duration) {
        self.slept.set(self.slept.get() + duration);
    }
}

/// A store the test keeps a handle on while the code under test owns another.
impl KeyValue for Rc<MemoryKv> {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.as_ref().get(key)
    }
    fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.as_ref().set(key, value)
    }
    fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.as_ref().delete(key)
    }
    fn increment(&self, key: &str, delta: i64) -> Result<i64, StoreError> {
        self.as_ref().increment(key, delta)
    }
    fn start_swap(&self, key: &str) -> Result<Box<dyn Cas + '_>, StoreError> {
        self.as_ref().start_swap(key)
    }
}

/// An identity provider that cannot be reached (tests that use inline keys never ask it).
pub struct NoIssuer;

impl Http for NoIssuer {
    fn exchange(&self, _: &Request) -> Result<Answer, Failure> {
        Err(Failure::Unreachable("no network in native tests".into()))
    }
}

/// An SMS sender that records every message and answers `reply`; with a `provider_code` it
/// plays a provider that makes its own codes (Twilio Verify) and approves that code.
pub struct RecordingSms {
    pub sent: RefCell<Vec<Message>>,
    pub reply: RefCell<Result<String, SendError>>,
    /// `Some`: the provider makes codes and approves this one.
    pub provider_code: RefCell<Option<String>>,
    /// Every check asked, as (recipient, code).
    pub checks: RefCell<Vec<(String, String)>>,
    /// `Some`: checks fail with this.
    pub check_error: RefCell<Option<SendError>>,
}

impl RecordingSms {
    pub fn new() -> Self {
        RecordingSms {
            sent: RefCell::new(Vec::new()),
            reply: RefCell::new(Ok("sms-1".into())),
            provider_code: RefCell::new(None),
            checks: RefCell::new(Vec::new()),
            check_error: RefCell::new(None),
        }
    }

    /// A provider that makes its codes and approves `code`.
    pub fn making_codes(code: &str) -> Self {
        let sms = Self::new();
        *sms.provider_code.borrow_mut() = Some(code.into());
        sms
    }
}

impl Sms for RecordingSms {
    fn makes_codes(&self) -> bool {
        self.provider_code.borrow().is_some()
    }

    fn send(&self, message: &Message) -> Result<String, SendError> {
        self.sent.borrow_mut().push(message.clone());
        self.reply.borrow().clone()
    }

    fn check(&self, recipient: &str, code: &str) -> Result<bool, SendError> {
        self.checks
            .borrow_mut()
            .push((recipient.to_owned(), code.to_owned()));
        if let Some(error) = self.check_error.borrow().clone() {
            return Err(error);
        }
        Ok(self.provider_code.borrow().as_deref() == Some(code))
    }
}
