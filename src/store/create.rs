//! Creating a key exactly once, on stores whose "swap from absent" cannot be trusted.
//!
//! Spin's default (SQLite) store turns a compare-and-swap whose handle read "absent" into an
//! upsert: two creators both succeed and the second overwrites the first (docs/design.md, "A record
//! is created once, by one swap from absent that only one caller may make"). Swaps from an existing value are exact there, and `increment` is atomic on every
//! draft2 store. So a key is created like this:
//!
//! 1. A creator claims the next epoch of the claim counter `create:<key>` with
//!    `increment(claim, 1)`. Only the caller whose increment answers exactly one more than the
//!    epoch it saw owns that epoch; it alone swaps from absent. The first time, a creator assumes
//!    epoch 0 (nobody has claimed the key: almost always so) without reading the counter, so an
//!    uncontended creation makes one increment, not a read by `increment(claim, 0)` and then one;
//!    later, `increment(claim, 0)` reads the epoch being waited on.
//! 2. Everybody else waits for the key to appear, then works on it with swaps from an existing
//!    value. A claim whose owner never writes (it crashed between its two calls) is taken over by
//!    a waiter after [`CLAIM_LEASE`]; an owner that finds itself past half the lease before its
//!    swap gives up rather than write late, so a takeover never races a live owner unless the host
//!    stalls one guest for more than half the lease between two consecutive calls.
//!
//! On honest stores the swap from absent is exclusive anyway; the claim costs one increment and a
//! delete once per key, and nothing for keys that exist.

use super::{StoreError, SwapError, Updater};
use crate::error::Error;
use std::time::Duration;

/// How long waiters give a claim's owner to write the key before taking over.
pub const CLAIM_LEASE: Duration = Duration::from_secs(10);
/// Longest a caller waits for a key to be created, takeovers included.
const MAX_WAIT: Duration = Duration::from_secs(25);
/// Polling interval bounds while waiting for another creator.
const FIRST_POLL: Duration = Duration::from_millis(1);
const MAX_POLL: Duration = Duration::from_millis(50);

/// The counter that serialises creators of `key`.
pub fn claim_key(key: &str) -> String {
    format!("create:{key}")
}

/// What the owner of a claim found or did.
enum Claimed {
    /// The key existed already.
    Present,
    /// Written: the key holds this value.
    Written(Vec<u8>),
    /// Lost to a writer the next read will show.
    Lost,
    /// Too long since the claim: nothing written, so as not to race a takeover.
    TooLate,
    /// The store failed during the swap: written or not, unknown.
    Failed(StoreError),
}

fn unavailable(error: StoreError) -> Error {
    Error::StoreUnavailable(error.0)
}

impl Updater<'_> {
    /// Returns the value at `key`, first storing `make()` there if the key is absent. Exactly one
    /// of any number of racing callers writes; all of them answer the value that was stored.
    pub fn create_once(&self, key: &str, make: impl FnOnce() -> Vec<u8>) -> Result<Vec<u8>, Error> {
        if self.create_by_swap {
            return self.create_with_one_swap(key, make);
        }
        let claim = claim_key(key);
        let mut make = Some(make);
        // The epoch being waited on, and how long it has been waited on (sum of sleeps, which
        // real time can only exceed).
        let mut watched: Option<(i64, Duration)> = None;
        let mut waited_total = Duration::ZERO;
        let mut poll = FIRST_POLL;
        let mut claimed = false;
        let mut first_pass = true;
        loop {
            if let Some(value) = self.kv.get(key).map_err(unavailable)? {
                if claimed {
                    self.drop_claim(&claim);
                }
                return Ok(value);
            }
            let epoch = if first_pass {
                first_pass = false;
                0
            } else {
                self.kv.increment(&claim, 0).map_err(unavailable)?
            };
            let take_over = match watched {
                _ if epoch == 0 => true,
                Some((seen, waited)) if seen == epoch => waited >= CLAIM_LEASE,
                _ => {
                    watched = Some((epoch, Duration::ZERO));
                    false
                }
            };
            if take_over {
                let mine = self.kv.increment(&claim, 1).map_err(unavailable)?;
                claimed = true;
                if mine == epoch + 1 {
                    let value = make.take().map(|make| make()).unwrap_or_default();
                    match self.write_claimed(key, value)? {
                        Claimed::Written(value) => {
                            self.drop_claim(&claim);
                            return Ok(value);
                        }
                        // Somebody else's value, or given up: the next pass reads what is there.
                        Claimed::Present | Claimed::Lost | Claimed::TooLate => continue,
                        Claimed::Failed(why) => {
                            // Nobody else may write under this claim: say so now rather than
                            // wait out a lease for a write that may never come.
                            return match self.kv.get(key).map_err(unavailable)? {
                                Some(existing) => Ok(existing),
                                None => Err(Error::StoreUnavailable(why.0)),
                            };
                        }
                    }
                }
                // Another caller claimed the same epoch first: wait on the newest one.
                watched = Some((mine, Duration::ZERO));
            }
            if waited_total >= MAX_WAIT {
                return Err(Error::StoreUnavailable(format!(
                    "{key} was claimed for creation but not written within {MAX_WAIT:?}"
                )));
            }
            self.clock.sleep(poll);
            waited_total += poll;
            if let Some((_, waited)) = &mut watched {
                *waited += poll;
            }
            poll = (poll * 2).min(MAX_POLL);
        }
    }

    /// On a store whose swap from absent is exact (`KV_CREATE=swap`): one swap creates the key,
    /// and a caller that loses reads the winner's value. A swap reported failed may have written
    /// (Spin's Redis store does that), so what counts is what the key holds afterwards.
    fn create_with_one_swap(
        &self,
        key: &str,
        make: impl FnOnce() -> Vec<u8>,
    ) -> Result<Vec<u8>, Error> {
        let cas = self.kv.start_swap(key).map_err(unavailable)?;
        if let Some(value) = cas.current() {
            return Ok(value.to_vec());
        }
        let value = make();
        let failure = match cas.swap(value.clone()) {
            Ok(()) => return Ok(value),
            Err(SwapError::Conflict) => None,
            Err(SwapError::Store(why)) => Some(why),
        };
        match (self.kv.get(key).map_err(unavailable)?, failure) {
            (Some(stored), _) => Ok(stored),
            (None, Some(why)) => Err(unavailable(why)),
            (None, None) => Err(Error::StoreUnavailable(format!(
                "{key}: the swap from absent conflicted, yet the key is absent"
            ))),
        }
    }

    /// As the owner of a fresh claim: swaps `value` in from absent, unless the key appeared
    /// meanwhile or half the lease has passed.
    fn write_claimed(&self, key: &str, value: Vec<u8>) -> Result<Claimed, Error> {
        let claimed_at = self.clock.now();
        let cas = self.kv.start_swap(key).map_err(unavailable)?;
        if cas.current().is_some() {
            return Ok(Claimed::Present);
        }
        let elapsed_ms = u128::from(self.clock.now().millis_since(claimed_at));
        if elapsed_ms * 2 >= CLAIM_LEASE.as_millis() {
            return Ok(Claimed::TooLate);
        }
        Ok(match cas.swap(value.clone()) {
            Ok(()) => Claimed::Written(value),
            // Somebody wrote the key after all: the next read shows what.
            Err(SwapError::Conflict) => Claimed::Lost,
            Err(SwapError::Store(why)) => Claimed::Failed(why),
        })
    }

    /// Once the key exists it exists for good (keys made here are never deleted), so its claim
    /// is no longer consulted: dropped rather than kept as a second key per user (hosts such as
    /// Spin cap the number of keys). Failing to is harmless.
    fn drop_claim(&self, claim: &str) {
        let _ = self.kv.delete(claim);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{FixedClock, MemoryKv};
    use std::cell::Cell;

    fn random() -> crate::test_support::CountingRandom {
        crate::test_support::CountingRandom(Cell::new(0))
    }

    /// Runs `create_once("k", make)` on `kv` with a standing clock; answers it and the clock.
    fn create(
        kv: &MemoryKv,
        clock: FixedClock,
        make: &[u8],
    ) -> (Result<Vec<u8>, Error>, FixedClock) {
        let random = random();
        let updater = Updater {
            kv,
            clock: &clock,
            random: &random,
            create_by_swap: false,
        };
        let result = updater.create_once("k", || make.to_vec());
        (result, clock)
    }

    #[test]
    fn the_first_creator_writes_and_later_ones_read_its_value() {
        let kv = MemoryKv::default();
        assert_eq!(create(&kv, FixedClock::at(5), b"one").0.unwrap(), b"one");
        assert_eq!(
            kv.counter(&claim_key("k")),
            0,
            "the claim is dropped once used"
        );
        assert_eq!(
            kv.increments.get(),
            1,
            "an uncontended creation claims without reading the counter first"
        );
        assert_eq!(create(&kv, FixedClock::at(5), b"two").0.unwrap(), b"one");
        assert_eq!(kv.swaps.get(), 1, "one swap, from absent, by the one owner");
        assert_eq!(kv.increments.get(), 1, "an existing key needs no claim");
    }

    #[test]
    fn a_creator_that_loses_the_claim_waits_and_never_swaps_from_absent() {
        let kv = MemoryKv::default();
        kv.upsert_from_absent.set(true);
        // Another caller has just claimed epoch 1 and writes "theirs" on our third poll.
        kv.counters.borrow_mut().insert(claim_key("k"), 1);
        *kv.write_after_gets.borrow_mut() = Some(("k".into(), b"theirs".to_vec(), 3));
        assert_eq!(
            create(&kv, FixedClock::at(5), b"mine").0.unwrap(),
            b"theirs"
        );
        assert_eq!(kv.swaps.get(), 0, "a waiter never swaps from absent");
    }

    #[test]
    fn an_abandoned_claim_is_taken_over_after_the_lease() {
        let kv = MemoryKv::default();
        // Epoch 1 was claimed by a caller that died before writing.
        kv.counters.borrow_mut().insert(claim_key("k"), 1);
        let (result, clock) = create(&kv, FixedClock::at(5), b"mine");
        assert_eq!(result.unwrap(), b"mine");
        assert_eq!(kv.swaps.get(), 1, "took over epoch 2 and wrote once");
        assert!(
            clock.slept.get() >= CLAIM_LEASE,
            "waited the whole lease first"
        );
    }

    #[test]
    fn an_owner_past_half_the_lease_does_not_write() {
        let kv = MemoryKv::default();
        // The clock jumps 6 s between the claim and the swap: the owner must give up, and (as
        // nobody else writes here) the caller ends up taking over its own stale claim.
        let clock = FixedClock::at(5);
        clock.step_on_read.set(Some(6));
        let (result, _) = create(&kv, clock, b"mine");
        assert!(
            matches!(result, Err(Error::StoreUnavailable(_))),
            "{result:?}"
        );
        assert_eq!(kv.swaps.get(), 0, "a late owner never writes");
    }

    #[test]
    fn nothing_is_written_when_the_store_fails() {
        let kv = MemoryKv::default();
        kv.swap_store_error.set(true);
        assert!(create(&kv, FixedClock::at(5), b"v").0.is_err());
        assert!(kv.data.borrow().is_empty());
    }
}
