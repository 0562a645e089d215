//! Storage behind a small compare-and-swap trait, and the one update path every change takes:
//! read, apply, swap, with bounded retries, treating a failed swap as "may have been written".
//! A record is created through [`Updater::create_once`] (module `create`), or, on stores whose swap
//! from absent has exactly one winner (`KV_CREATE=swap`), by that swap. A record's older events
//! go into history chunks, each stored before the swap that names it (`record::history`).

mod create;

#[cfg(test)]
use create::claim_key;

use crate::error::Error;
pub use crate::platform::{Cas, KeyValue, StoreError, SwapError};
use crate::platform::{Clock, Random};
use crate::record::{AppliedOperation, HistoryChunk, RecordHead, UserRecord, chunk_key};
use std::time::Duration;

/// Attempts before an update gives up with `Error::TooMuchContention`.
pub const MAX_ATTEMPTS: u32 = 16;
/// Upper bound of the random back-off between attempts.
const MAX_BACKOFF_MS: u64 = 40;

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
    /// The store's swap from absent is exact (`KV_CREATE=swap`): new keys are created by one
    /// swap, without the creation claim.
    pub create_by_swap: bool,
}

impl Updater<'_> {
    /// Reads the record at `key` (`None` when absent); a record that does not parse is an error.
    pub fn read(&self, key: &str) -> Result<Option<UserRecord>, Error> {
        let bytes = self.kv.get(key).map_err(|e| Error::StoreUnavailable(e.0))?;
        bytes.as_deref().map(decode).transpose()
    }

    /// Reads only the head of the record at `key` (see [`RecordHead`]).
    pub fn read_head(&self, key: &str) -> Result<Option<RecordHead>, Error> {
        let bytes = self.kv.get(key).map_err(|e| Error::StoreUnavailable(e.0))?;
        bytes
            .as_deref()
            .map(|bytes| RecordHead::from_bytes(bytes).map_err(Error::CorruptRecord))
            .transpose()
    }

    /// Reads a history chunk that a record references: a missing chunk, or one that does not
    /// parse, makes the record corrupt (chunks are written before the record that names them).
    pub fn read_history_chunk(&self, key: &str) -> Result<HistoryChunk, Error> {
        let bytes = self.kv.get(key).map_err(|e| Error::StoreUnavailable(e.0))?;
        let bytes = bytes
            .ok_or_else(|| Error::CorruptRecord(format!("the history chunk {key} is missing")))?;
        HistoryChunk::from_bytes(&bytes).map_err(Error::CorruptRecord)
    }

    /// Applies `change` to the record at `key` atomically, at most once, under operation `op_id`.
    ///
    /// `change` may run several times (once per attempt) and must be pure apart from its result.
    /// After a swap that failed in any way the record is read again: if it already carries
    /// `op_id`, the last attempt was written after all and its value is returned.
    ///
    /// When the record is absent and `change` wants to write, the changed record is stored
    /// through [`Updater::create_once`]: only the caller owning the creation claim swaps from
    /// absent. When another caller created the record first, `change` runs again on theirs, as
    /// a swap from an existing value. With `create_by_swap` the record is swapped in from absent
    /// like any other change (a lost race is a conflict, retried on the winner's record).
    pub fn update<T>(
        &self,
        key: &str,
        op_id: &str,
        mut change: impl FnMut(Option<UserRecord>) -> Result<Change<T>, Error>,
    ) -> Result<Updated<T>, Error> {
        let mut unconfirmed: Option<T> = None;
        let mut last_store_error = None;
        // The history chunk the last attempt wrote, until a read shows whether its swap landed.
        let mut unconfirmed_chunk: Option<String> = None;
        for attempt in 0..=MAX_ATTEMPTS {
            let cas = match self.kv.start_swap(key) {
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
                && let Some(operation) =
                    record.find_operation(op_id).map_err(Error::CorruptRecord)?
            {
                let value = unconfirmed.take().ok_or(Error::TooMuchContention)?;
                return Ok(Updated {
                    record: current,
                    operation: Some(operation),
                    value,
                });
            }
            if let Some(chunk) = unconfirmed_chunk.take() {
                self.forget_chunk_unless_referenced(chunk, current.as_ref());
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
                } if current.is_none() && !self.create_by_swap => {
                    // A new key: its first change is what creates it, written by whoever owns
                    // the creation claim, so a first write costs one swap, not two.
                    record.commit(op_id, events, self.clock.now());
                    let stored = decode(&self.create_once(key, || record.to_bytes())?)?;
                    if let Some(operation) =
                        stored.find_operation(op_id).map_err(Error::CorruptRecord)?
                    {
                        return Ok(Updated {
                            record: Some(stored),
                            operation: Some(operation),
                            value,
                        });
                    }
                    // Another caller created it: the next attempt applies the change to theirs.
                }
                Change::Write {
                    mut record,
                    events,
                    value,
                } => {
                    let operation = record.commit(op_id, events, self.clock.now());
                    unconfirmed_chunk = self.spill(key, &mut record)?;
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

    /// Moves the record's oldest events into a new history chunk when it has too many inline
    /// ([`UserRecord::spill`]), and stores the chunk: before the record's swap, so that a record
    /// never references a chunk that is not there. Answers the chunk's key.
    fn spill(&self, key: &str, record: &mut UserRecord) -> Result<Option<String>, Error> {
        let Some((chunk_key, chunk)) = record.spill(|last| chunk_key(key, last, self.random.u64()))
        else {
            return Ok(None);
        };
        self.kv
            .set(&chunk_key, &chunk.to_bytes())
            .map_err(|e| Error::StoreUnavailable(e.0))?;
        Ok(Some(chunk_key))
    }

    /// Deletes a chunk whose swap did not land, seen from the record read since: neither the
    /// update's operation nor the chunk is in it. (A swap that landed is found by its operation
    /// id, as is any record built on it, so such a chunk is kept.) Best effort: a chunk left
    /// behind is only a stray key, never read as history.
    fn forget_chunk_unless_referenced(&self, chunk: String, current: Option<&UserRecord>) {
        let referenced = current
            .and_then(|record| record.history.as_ref())
            .is_some_and(|history| history.newest == chunk);
        if !referenced {
            let _ = self.kv.delete(&chunk);
        }
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
mod tests {
    use super::*;
    use crate::record::EventKind;
    use crate::record::history::{INLINE_KEPT, INLINE_MAX};
    use crate::test_support::{CountingRandom, FixedClock, MemoryKv};
    use crate::time::Timestamp;
    use std::cell::Cell;

    fn bump(record: Option<UserRecord>) -> Result<Change<u64>, Error> {
        let record = record.unwrap_or_else(|| UserRecord::new("u", "o", Timestamp::new(1, 0)));
        Ok(Change::Write {
            value: record.sequence + 2,
            record,
            events: 2,
        })
    }

    fn fixtures() -> (MemoryKv, FixedClock, CountingRandom) {
        (
            MemoryKv::default(),
            FixedClock::at(10),
            CountingRandom(Cell::new(0)),
        )
    }

    fn updater<'a>(kv: &'a MemoryKv, clock: &'a FixedClock, random: &'a dyn Random) -> Updater<'a> {
        Updater {
            kv,
            clock,
            random,
            create_by_swap: false,
        }
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
        assert!(matches!(stored.find_operation("op"), Ok(Some(_))));
    }

    #[test]
    fn a_swap_that_wrote_but_reported_failure_is_not_applied_twice() {
        let (kv, clock, random) = fixtures();
        kv.write_then_conflict.set(true);
        let updated = updater(&kv, &clock, &random)
            .update("k", "op", bump)
            .unwrap();
        assert_eq!(updated.value, 2);
        assert_eq!(
            kv.swaps.get(),
            1,
            "one swap creates the record with its first change"
        );
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
        assert_eq!(
            kv.swaps.get(),
            1 + 4,
            "creation with the first update, then 4 attempts"
        );
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
    fn a_first_update_never_swaps_from_absent_under_the_upsert_fault() {
        let (kv, clock, random) = fixtures();
        kv.upsert_from_absent.set(true);
        // Another creator writes its empty record while this one waits for the claim it lost.
        kv.counters.borrow_mut().insert(claim_key("k"), 1);
        let theirs = UserRecord::new("u", "o", Timestamp::new(3, 0));
        *kv.write_after_gets.borrow_mut() = Some(("k".into(), theirs.to_bytes(), 2));
        let updated = updater(&kv, &clock, &random)
            .update("k", "op", bump)
            .unwrap();
        assert_eq!(updated.value, 2);
        let stored = updater(&kv, &clock, &random).read("k").unwrap().unwrap();
        assert_eq!(
            stored.created,
            Timestamp::new(3, 0),
            "built on the other creation"
        );
        assert_eq!(
            (stored.sequence, kv.swaps.get()),
            (2, 1),
            "one swap, from a value"
        );
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

    fn by_swap<'a>(kv: &'a MemoryKv, clock: &'a FixedClock, random: &'a dyn Random) -> Updater<'a> {
        Updater {
            create_by_swap: true,
            ..updater(kv, clock, random)
        }
    }

    #[test]
    fn on_exact_stores_a_first_update_is_one_swap_without_a_claim() {
        let (kv, clock, random) = fixtures();
        let updated = by_swap(&kv, &clock, &random)
            .update("k", "op", bump)
            .unwrap();
        assert_eq!(updated.operation.map(|op| op.sequence), Some(2));
        assert_eq!(kv.swaps.get(), 1);
        assert!(kv.counters.borrow().is_empty(), "no claim counter");
        assert!(by_swap(&kv, &clock, &random).read("k").unwrap().is_some());
    }

    #[test]
    fn on_exact_stores_a_lost_creation_race_applies_the_change_to_the_winners_record() {
        let (kv, clock, random) = fixtures();
        // Another creator writes its record between this one's read and its swap.
        let mut theirs = UserRecord::new("u", "o", Timestamp::new(3, 0));
        theirs.commit("their-op", 2, Timestamp::new(3, 0));
        *kv.interleaved_value.borrow_mut() = theirs.to_bytes();
        kv.interleave.set(1);
        let updated = by_swap(&kv, &clock, &random)
            .update("k", "op", bump)
            .unwrap();
        assert_eq!(updated.value, 2 + 2, "applied on top of the other record");
        assert_eq!(kv.swaps.get(), 2);
    }

    #[test]
    fn on_exact_stores_a_creation_reported_failed_after_writing_counts_once() {
        let (kv, clock, random) = fixtures();
        kv.write_then_conflict.set(true);
        let updated = by_swap(&kv, &clock, &random)
            .update("k", "op", bump)
            .unwrap();
        assert_eq!(updated.value, 2);
        let stored = by_swap(&kv, &clock, &random).read("k").unwrap().unwrap();
        assert_eq!(stored.sequence, 2, "not applied twice");
        let made = by_swap(&kv, &clock, &random).create_once("s", || b"one".to_vec());
        assert_eq!(made.unwrap(), b"one");
        let again = by_swap(&kv, &clock, &random).create_once("s", || b"two".to_vec());
        assert_eq!(again.unwrap(), b"one", "the first value stays");
    }

    /// A change that adds two stored events.
    fn two_events(record: Option<UserRecord>) -> Result<Change<()>, Error> {
        let mut record = record.unwrap_or_else(|| UserRecord::new("u", "o", Timestamp::new(1, 0)));
        record.add_events(&[EventKind::CodeAdded, EventKind::CodeAdded], None, None);
        Ok(Change::Write {
            record,
            events: 2,
            value: (),
        })
    }

    /// A record whose inline events are full: the next change moves the oldest into a chunk.
    fn full_record(kv: &MemoryKv, clock: &FixedClock, random: &dyn Random) {
        for i in 0..INLINE_MAX / 2 {
            by_swap(kv, clock, random)
                .update("k", &format!("fill-{i}"), two_events)
                .unwrap();
        }
        let record = by_swap(kv, clock, random).read("k").unwrap().unwrap();
        assert_eq!((record.events.len(), record.history), (INLINE_MAX, None));
    }

    fn history_keys(kv: &MemoryKv) -> Vec<String> {
        let data = kv.data.borrow();
        data.keys()
            .filter(|key| key.starts_with("history:"))
            .cloned()
            .collect()
    }

    #[test]
    fn a_chunk_is_stored_before_the_record_that_names_it() {
        let (kv, clock, random) = fixtures();
        full_record(&kv, &clock, &random);
        by_swap(&kv, &clock, &random)
            .update("k", "op", two_events)
            .unwrap();
        let record = by_swap(&kv, &clock, &random).read("k").unwrap().unwrap();
        let history = record.history.expect("a chunk");
        assert_eq!(history.events, (INLINE_MAX + 2 - INLINE_KEPT) as u64);
        assert_eq!(record.events.len(), INLINE_KEPT);
        assert_eq!(history_keys(&kv), std::slice::from_ref(&history.newest));
        let chunk = by_swap(&kv, &clock, &random)
            .read_history_chunk(&history.newest)
            .unwrap();
        let sequences: Vec<u64> = chunk
            .events
            .to_vec()
            .unwrap()
            .iter()
            .map(|e| e.sequence)
            .collect();
        assert_eq!(sequences, (1..=history.events).collect::<Vec<u64>>());
        assert_eq!(chunk.previous, None);
    }

    #[test]
    fn a_chunk_whose_swap_lost_is_deleted_and_never_named() {
        let (kv, clock, random) = fixtures();
        full_record(&kv, &clock, &random);
        // Another writer slips in before the swap: the first attempt's chunk is left unnamed.
        kv.interleave.set(1);
        by_swap(&kv, &clock, &random)
            .update("k", "op", two_events)
            .unwrap();
        let record = by_swap(&kv, &clock, &random).read("k").unwrap().unwrap();
        let named = record.history.expect("a chunk").newest;
        assert_eq!(
            history_keys(&kv),
            [named],
            "the lost attempt's chunk is gone"
        );
    }

    #[test]
    fn a_chunk_whose_swap_wrote_but_reported_failure_is_kept() {
        let (kv, clock, random) = fixtures();
        full_record(&kv, &clock, &random);
        kv.write_then_conflict.set(true);
        by_swap(&kv, &clock, &random)
            .update("k", "op", two_events)
            .unwrap();
        kv.write_then_conflict.set(false);
        let record = by_swap(&kv, &clock, &random).read("k").unwrap().unwrap();
        assert_eq!(record.sequence, INLINE_MAX as u64 + 2, "applied once");
        let named = record.history.expect("a chunk").newest;
        assert_eq!(history_keys(&kv), std::slice::from_ref(&named));
        assert!(
            by_swap(&kv, &clock, &random)
                .read_history_chunk(&named)
                .is_ok()
        );
    }
}
