//! Storage behind a small compare-and-swap trait, and the one update path every change takes:
//! read, apply, swap, with bounded retries, treating a failed swap as "may have been written".

use crate::error::Error;
use crate::platform::{Clock, Random};
use crate::record::{AppliedOperation, UserRecord};
use std::time::Duration;

/// Attempts before an update gives up with `Error::TooMuchContention`.
pub const MAX_ATTEMPTS: u32 = 16;
/// Upper bound of the random back-off between attempts.
const MAX_BACKOFF_MS: u64 = 40;

/// A store failure; the text is for logs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreError(pub String);

/// Why a swap did not report success.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SwapError {
    /// The value changed since it was read (but see DESIGN.md: a buggy store may still have written).
    Conflict,
    /// The store failed mid-swap: the write may or may not have happened.
    Store(StoreError),
}

/// A compare-and-swap on one key, as wasi:keyvalue/atomics draft2 offers it.
pub trait Cas {
    /// The value when the handle was made.
    fn current(&self) -> Option<&[u8]>;
    /// Writes `value` if the key still holds `current()`.
    fn swap(self: Box<Self>, value: Vec<u8>) -> Result<(), SwapError>;
}

pub trait KeyValue {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    fn begin(&self, key: &str) -> Result<Box<dyn Cas + '_>, StoreError>;
}

/// What a change function decides after seeing the current record.
// `allow`, not `expect`: the lint fires on 64-bit targets only.
#[allow(
    clippy::large_enum_variant,
    reason = "a short-lived return value; boxing buys nothing"
)]
pub enum Change<T> {
    /// Write this record (the update loop adds the operation id) and hand back `T`.
    Write {
        record: UserRecord,
        events: u64,
        value: T,
    },
    /// Nothing to write.
    Keep(T),
}

/// A finished update: the record as stored, the operation as recorded in it (`None` when
/// nothing was written), and the change function's value.
pub struct Updated<T> {
    pub record: Option<UserRecord>,
    pub operation: Option<AppliedOperation>,
    pub value: T,
}

pub struct Updater<'a> {
    pub kv: &'a dyn KeyValue,
    pub clock: &'a dyn Clock,
    pub random: &'a dyn Random,
}

impl Updater<'_> {
    /// Reads the record at `key` (`None` when absent); a record that does not parse is an error.
    pub fn read(&self, key: &str) -> Result<Option<UserRecord>, Error> {
        let bytes = self.kv.get(key).map_err(|e| Error::StoreUnavailable(e.0))?;
        bytes.as_deref().map(decode).transpose()
    }

    /// Applies `change` to the record at `key` atomically, at most once, under operation `op_id`.
    ///
    /// `change` may run several times (once per attempt) and must be pure apart from its result.
    /// After a swap that failed in any way the record is read again: if it already carries
    /// `op_id`, the last attempt was written after all and its value is returned.
    pub fn update<T>(
        &self,
        key: &str,
        op_id: &str,
        mut change: impl FnMut(Option<UserRecord>) -> Result<Change<T>, Error>,
    ) -> Result<Updated<T>, Error> {
        let mut unconfirmed: Option<T> = None;
        let mut last_store_error = None;
        for attempt in 0..=MAX_ATTEMPTS {
            let cas = match self.kv.begin(key) {
                Ok(cas) => cas,
                // Nothing written yet: nothing to find out, so fail fast.
                Err(e) if unconfirmed.is_none() => return Err(Error::StoreUnavailable(e.0)),
                Err(e) => {
                    // Cannot read: whether the last swap landed is unknown, so keep trying.
                    last_store_error = Some(e.0);
                    self.back_off(attempt);
                    continue;
                }
            };
            let current = cas.current().map(decode).transpose()?;
            if let (Some(record), Some(_)) = (&current, &unconfirmed)
                && let Some(operation) = record.find_operation(op_id).cloned()
            {
                let value = unconfirmed.take().ok_or(Error::TooMuchContention)?;
                return Ok(Updated {
                    record: current,
                    operation: Some(operation),
                    value,
                });
            }
            if attempt == MAX_ATTEMPTS {
                // This pass only confirmed that the last attempt did not land.
                break;
            }
            match change(current.clone())? {
                Change::Keep(value) => {
                    return Ok(Updated {
                        record: current,
                        operation: None,
                        value,
                    });
                }
                Change::Write {
                    mut record,
                    events,
                    value,
                } => {
                    let operation = record.commit(op_id, events, self.clock.now());
                    match cas.swap(record.to_bytes()) {
                        Ok(()) => {
                            return Ok(Updated {
                                record: Some(record),
                                operation: Some(operation),
                                value,
                            });
                        }
                        Err(SwapError::Conflict) => {}
                        Err(SwapError::Store(e)) => last_store_error = Some(e.0),
                    }
                    unconfirmed = Some(value);
                    self.back_off(attempt);
                }
            }
        }
        match last_store_error {
            Some(e) => Err(Error::StoreUnavailable(e)),
            None => Err(Error::TooMuchContention),
        }
    }

    /// Returns the value at `key`, first storing `make()` there if the key is absent. Racing
    /// callers all end up with the one value that was stored.
    pub fn get_or_create(
        &self,
        key: &str,
        make: impl FnOnce() -> Vec<u8>,
    ) -> Result<Vec<u8>, Error> {
        let unavailable = |e: StoreError| Error::StoreUnavailable(e.0);
        if let Some(value) = self.kv.get(key).map_err(unavailable)? {
            return Ok(value);
        }
        let cas = self.kv.begin(key).map_err(unavailable)?;
        if let Some(value) = cas.current() {
            return Ok(value.to_vec());
        }
        // Win or lose the race (or not know), the stored value is the answer.
        let _ = cas.swap(make());
        self.kv
            .get(key)
            .map_err(unavailable)?
            .ok_or_else(|| Error::StoreUnavailable(format!("{key} was not stored")))
    }

    /// Sleeps a random time up to an exponentially growing bound, so racing requests spread out.
    fn back_off(&self, attempt: u32) {
        let bound_ms = (1u64 << attempt.min(6)).min(MAX_BACKOFF_MS);
        let micros = self.random.u64() % (bound_ms * 1000 + 1);
        self.clock.sleep(Duration::from_micros(micros));
    }
}

fn decode(bytes: &[u8]) -> Result<UserRecord, Error> {
    UserRecord::from_bytes(bytes).map_err(Error::CorruptRecord)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::time::Timestamp;
    use std::cell::{Cell, RefCell};
    use std::collections::HashMap;

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
        pub swaps: Cell<u32>,
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
            if kv.interleave.get() > 0 {
                kv.interleave.set(kv.interleave.get() - 1);
                let entry = data.entry(self.key.clone()).or_insert((0, Vec::new()));
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
            Ok(self.data.borrow().get(key).map(|(_, v)| v.clone()))
        }

        fn begin(&self, key: &str) -> Result<Box<dyn Cas + '_>, StoreError> {
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

    pub struct FixedClock(pub Cell<i64>);

    impl Clock for FixedClock {
        fn now(&self) -> Timestamp {
            Timestamp::new(self.0.get(), 0)
        }
        fn sleep(&self, _: Duration) {}
    }

    fn bump(record: Option<UserRecord>) -> Result<Change<u64>, Error> {
        let record = record.unwrap_or_else(|| UserRecord::new("u", "o", Timestamp::new(1, 0)));
        Ok(Change::Write {
            value: record.sequence + 2,
            record,
            events: 2,
        })
    }

    fn fixtures() -> (MemoryKv, FixedClock, crate::code::tests::CountingRandom) {
        (
            MemoryKv::default(),
            FixedClock(Cell::new(10)),
            crate::code::tests::CountingRandom(Cell::new(0)),
        )
    }

    fn updater<'a>(kv: &'a MemoryKv, clock: &'a FixedClock, random: &'a dyn Random) -> Updater<'a> {
        Updater { kv, clock, random }
    }

    #[test]
    fn an_update_writes_once_and_records_its_operation() {
        let (kv, clock, random) = fixtures();
        let updated = updater(&kv, &clock, &random)
            .update("k", "op", bump)
            .unwrap();
        assert_eq!(updated.operation.map(|op| op.sequence), Some(2));
        let stored = updater(&kv, &clock, &random).read("k").unwrap().unwrap();
        assert_eq!(stored.sequence, 2);
        assert!(stored.find_operation("op").is_some());
    }

    #[test]
    fn a_swap_that_wrote_but_reported_failure_is_not_applied_twice() {
        let (kv, clock, random) = fixtures();
        kv.write_then_conflict.set(true);
        let updated = updater(&kv, &clock, &random)
            .update("k", "op", bump)
            .unwrap();
        assert_eq!(updated.value, 2);
        assert_eq!(kv.swaps.get(), 1);
        assert_eq!(
            updater(&kv, &clock, &random)
                .read("k")
                .unwrap()
                .unwrap()
                .sequence,
            2
        );
    }

    #[test]
    fn conflicts_are_retried_on_the_fresh_value() {
        let (kv, clock, random) = fixtures();
        updater(&kv, &clock, &random)
            .update("k", "first", bump)
            .unwrap();
        kv.interleave.set(3);
        let updated = updater(&kv, &clock, &random)
            .update("k", "second", bump)
            .unwrap();
        assert_eq!(kv.swaps.get(), 1 + 4);
        assert_eq!(updated.operation.map(|op| op.sequence), Some(4));
    }

    #[test]
    fn endless_conflicts_give_up_cleanly() {
        let (kv, clock, random) = fixtures();
        updater(&kv, &clock, &random)
            .update("k", "first", bump)
            .unwrap();
        kv.interleave.set(u32::MAX);
        let result = updater(&kv, &clock, &random).update("k", "op", bump);
        assert!(matches!(result, Err(Error::TooMuchContention)));
        assert_eq!(kv.swaps.get(), 1 + MAX_ATTEMPTS);
        let stored = updater(&kv, &clock, &random).read("k").unwrap().unwrap();
        assert_eq!(
            stored.sequence, 2,
            "nothing of the failed update was written"
        );
    }

    #[test]
    fn store_errors_on_swap_surface_as_unavailable() {
        let (kv, clock, random) = fixtures();
        kv.swap_store_error.set(true);
        let result = updater(&kv, &clock, &random).update("k", "op", bump);
        assert!(matches!(result, Err(Error::StoreUnavailable(_))));
        assert!(kv.data.borrow().is_empty());
    }

    #[test]
    fn corrupt_records_are_reported_not_overwritten() {
        let (kv, clock, random) = fixtures();
        kv.data
            .borrow_mut()
            .insert("k".into(), (1, b"garbage".to_vec()));
        let result = updater(&kv, &clock, &random).update("k", "op", bump);
        assert!(matches!(result, Err(Error::CorruptRecord(_))));
        assert_eq!(kv.data.borrow()["k"].1, b"garbage");
    }
}
