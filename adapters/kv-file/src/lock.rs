//! Lock files (pure part): what a lock file says (when it was taken, by whom), when a lock counts
//! as abandoned, how long to wait between attempts, and the timing policy.
//!
//! A lock file is created with create + exclusive; its text is `<wall-clock ns> <owner hex>\n`.
//! A writer that crashed leaves its lock behind; after [`LockPolicy::stale_after`] anyone may
//! break it. A lock whose text cannot be read yet (created, not yet written) is dated by its
//! modification time instead.

use std::time::Duration;

/// What a lock file says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockInfo {
    /// Wall-clock time the lock was taken, in nanoseconds since the Unix epoch.
    pub taken_at: u64,
    /// Random number of the instance holding it: only the holder removes it.
    pub owner: u64,
}

impl LockInfo {
    pub fn encode(&self) -> Vec<u8> {
        format!("{} {:016x}\n", self.taken_at, self.owner).into_bytes()
    }

    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(bytes).ok()?.strip_suffix('\n')?;
        let (taken_at, owner) = text.split_once(' ')?;
        Some(Self {
            taken_at: taken_at.parse().ok()?,
            owner: u64::from_str_radix(owner, 16).ok()?,
        })
    }
}

/// Timing of locks. All instances sharing a directory should use the same policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockPolicy {
    /// A lock older than this is abandoned and may be broken.
    pub stale_after: Duration,
    /// How long a writer waits for a lock held by someone else before answering
    /// `other("key is locked")`.
    pub wait_at_most: Duration,
    /// A holder that has held its lock longer than this gives up instead of writing, so that a
    /// slow holder never writes after its lock may have been broken.
    pub hold_at_most: Duration,
}

impl Default for LockPolicy {
    fn default() -> Self {
        Self {
            stale_after: Duration::from_secs(10),
            wait_at_most: Duration::from_secs(2),
            hold_at_most: Duration::from_secs(5),
        }
    }
}

/// Whether a lock is abandoned: taken (by its text, else by its modification time) longer ago
/// than `stale_after`, or that far in the future (the clock was set back). A lock with neither
/// date is never stale.
pub fn is_stale(
    now: u64,
    taken_at: Option<u64>,
    modified_at: Option<u64>,
    stale_after: Duration,
) -> bool {
    let Some(taken) = taken_at.or(modified_at) else {
        return false;
    };
    u128::from(now.abs_diff(taken)) > stale_after.as_nanos()
}

/// Pause before attempt `attempt + 1` at a held lock: doubling from 1 ms up to 16 ms, half of it
/// random (`random`) so that waiters do not retry in step.
pub fn backoff(attempt: u32, random: u64) -> Duration {
    let base_ms = 1u64 << attempt.min(4);
    let base = base_ms * 1_000_000;
    Duration::from_nanos(base / 2 + random % (base / 2 + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000_000;

    #[test]
    fn lock_text_round_trips_and_garbage_is_none() {
        let info = LockInfo {
            taken_at: 1_700_000_000 * SEC,
            owner: 0xdead_beef,
        };
        assert_eq!(LockInfo::decode(&info.encode()), Some(info));
        assert_eq!(
            info.encode(),
            b"1700000000000000000 00000000deadbeef\n".to_vec()
        );
        for garbage in [&b""[..], b"12", b"12 zz\n", b"12 ab", b"\xff\n"] {
            assert_eq!(LockInfo::decode(garbage), None);
        }
    }

    #[test]
    fn staleness() {
        let ten = Duration::from_secs(10);
        let now = 1_000 * SEC;
        assert!(!is_stale(now, Some(now - 10 * SEC), None, ten));
        assert!(is_stale(now, Some(now - 10 * SEC - 1), None, ten));
        assert!(!is_stale(now, Some(now + 5 * SEC), None, ten));
        assert!(
            is_stale(now, Some(now + 11 * SEC), None, ten),
            "clock set back"
        );
        // The text wins over the modification time; the time is the fallback.
        assert!(!is_stale(now, Some(now), Some(0), ten));
        assert!(is_stale(now, None, Some(now - 11 * SEC), ten));
        assert!(!is_stale(now, None, Some(now - SEC), ten));
        assert!(!is_stale(now, None, None, ten));
    }

    #[test]
    fn backoff_grows_to_a_bound_with_jitter() {
        assert_eq!(backoff(0, 0), Duration::from_micros(500));
        assert_eq!(backoff(0, 500_000), Duration::from_millis(1));
        assert_eq!(backoff(3, 0), Duration::from_millis(4));
        assert_eq!(backoff(40, 0), Duration::from_millis(8));
        assert!(backoff(40, u64::MAX) <= Duration::from_millis(16));
    }
}
