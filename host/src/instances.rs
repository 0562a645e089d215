//! Warm instances reused serially, as `wasmtime serve --max-instance-reuse-count` does.
//!
//! A request takes the most recently returned idle instance, or the server makes a new one. Once
//! the guest's `handle` call has returned (its work after the answer included), the server gives
//! the instance back, unless it failed (trap, deadline, memory cap, a call cut off mid-way) or kept
//! a wasi:http resource of its request; the pool then keeps it unless it has served its share of
//! requests or the pool is full. Idle instances are dropped after the idle timeout, so their memory
//! is returned.
//!
//! [`ReuseStats`] counts what happens to instances, for the log and metrics.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// How many requests one instance serves by default before it is dropped.
pub(crate) const DEFAULT_MAX_REUSE: u32 = 1_000;

/// How many idle instances the pool keeps by default.
pub(crate) const DEFAULT_MAX_IDLE: usize = 32;

/// How long an idle instance is kept by default.
pub(crate) const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// How instances are reused.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ReuseSettings {
    /// Requests one instance serves at most (1: a fresh instance per request).
    pub(crate) max_reuse: NonZeroU32,
    /// Idle instances kept at most.
    pub(crate) max_idle: usize,
    /// How long an instance is kept idle.
    pub(crate) idle_timeout: Duration,
}

/// Why an instance was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DropReason {
    /// It served the largest number of requests one instance may serve.
    ReuseLimit,
    /// It stayed idle for the idle timeout.
    IdleTimeout,
    /// The idle pool was full when it was done.
    PoolFull,
    /// It trapped.
    Trap,
    /// Its request's deadline passed (while it computed, or while it waited on the host and its
    /// call was cut off).
    Deadline,
    /// It asked for more memory than its cap.
    Memory,
    /// Its call failed otherwise (a host call's error, or the request could not be handed to it).
    Error,
    /// It still held a wasi:http resource (part of its request or response) after its call
    /// returned.
    ResourcesLeft,
}

impl DropReason {
    /// Every reason, in the order of [`DropReason::index`].
    pub const ALL: [DropReason; 8] = [
        Self::ReuseLimit,
        Self::IdleTimeout,
        Self::PoolFull,
        Self::Trap,
        Self::Deadline,
        Self::Memory,
        Self::Error,
        Self::ResourcesLeft,
    ];

    /// A label for logs and metrics, e.g. `reuse_limit`.
    pub fn label(self) -> &'static str {
        match self {
            Self::ReuseLimit => "reuse_limit",
            Self::IdleTimeout => "idle_timeout",
            Self::PoolFull => "pool_full",
            Self::Trap => "trap",
            Self::Deadline => "deadline",
            Self::Memory => "memory",
            Self::Error => "error",
            Self::ResourcesLeft => "resources_left",
        }
    }

    fn index(self) -> usize {
        match self {
            Self::ReuseLimit => 0,
            Self::IdleTimeout => 1,
            Self::PoolFull => 2,
            Self::Trap => 3,
            Self::Deadline => 4,
            Self::Memory => 5,
            Self::Error => 6,
            Self::ResourcesLeft => 7,
        }
    }
}

/// Counters of what happened to instances, since the host was built.
#[derive(Debug, Default)]
pub(crate) struct ReuseStats {
    created: AtomicU64,
    reused: AtomicU64,
    dropped: [AtomicU64; DropReason::ALL.len()],
    idle: AtomicU64,
}

impl ReuseStats {
    /// Instances made (instantiated successfully).
    pub(crate) fn instances_created(&self) -> u64 {
        self.created.load(Ordering::Relaxed)
    }

    /// Requests served on an instance that had served a request before.
    pub(crate) fn requests_on_reused_instances(&self) -> u64 {
        self.reused.load(Ordering::Relaxed)
    }

    /// Instances dropped for `reason`.
    pub(crate) fn instances_dropped(&self, reason: DropReason) -> u64 {
        self.dropped[reason.index()].load(Ordering::Relaxed)
    }

    /// Instances idle in the pool now.
    pub(crate) fn idle_instances(&self) -> u64 {
        self.idle.load(Ordering::Relaxed)
    }

    /// A copy of every counter.
    pub(crate) fn snapshot(&self) -> InstanceStats {
        InstanceStats {
            instances_created: self.instances_created(),
            requests_on_reused_instances: self.requests_on_reused_instances(),
            dropped: DropReason::ALL.map(|reason| self.instances_dropped(reason)),
            idle_instances: self.idle_instances(),
        }
    }

    pub(crate) fn count_created(&self) {
        self.created.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_dropped(&self, reason: DropReason) {
        self.dropped[reason.index()].fetch_add(1, Ordering::Relaxed);
    }
}

/// What happened to a host's instances since it was built (see [`crate::Host::instance_stats`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InstanceStats {
    /// Instances made.
    pub instances_created: u64,
    /// Requests served on an instance that had served a request before.
    pub requests_on_reused_instances: u64,
    dropped: [u64; DropReason::ALL.len()],
    /// Instances idle now, kept for the next requests.
    pub idle_instances: u64,
}

impl InstanceStats {
    /// Instances dropped for `reason`.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.dropped[reason.index()]
    }

    /// Instances dropped for any reason.
    pub fn dropped_total(&self) -> u64 {
        self.dropped.iter().sum()
    }
}

/// An instance between requests, with the number of requests it has served.
pub(crate) struct Warm<T> {
    pub(crate) instance: T,
    pub(crate) served: u32,
}

struct Idle<T> {
    warm: Warm<T>,
    since: Instant,
}

/// Idle instances, most recently returned last.
pub(crate) struct InstancePool<T> {
    idle: Mutex<Vec<Idle<T>>>,
    settings: ReuseSettings,
    stats: ReuseStats,
    /// Wakes the reaper when the pool stops being empty, and when the pool is dropped.
    wake: Arc<Notify>,
    reaper_started: AtomicBool,
}

impl<T: Send + 'static> InstancePool<T> {
    pub(crate) fn new(settings: ReuseSettings) -> Self {
        Self {
            idle: Mutex::new(Vec::new()),
            settings,
            stats: ReuseStats::default(),
            wake: Arc::new(Notify::new()),
            reaper_started: AtomicBool::new(false),
        }
    }

    pub(crate) fn stats(&self) -> &ReuseStats {
        &self.stats
    }

    /// The most recently returned idle instance (warmest caches), if any; counts a reuse.
    pub(crate) fn take(&self) -> Option<Warm<T>> {
        let warm = self.lock().pop().map(|idle| idle.warm);
        if warm.is_some() {
            self.stats.idle.fetch_sub(1, Ordering::Relaxed);
            self.stats.reused.fetch_add(1, Ordering::Relaxed);
        }
        warm
    }

    /// Drops an instance that cannot serve again.
    pub(crate) fn discard(&self, instance: T, reason: DropReason) {
        self.stats.count_dropped(reason);
        drop(instance);
    }

    /// Takes back an instance whose call ended well, after `warm.served` requests: keeps it
    /// unless it has served its share or the pool is full. In a Tokio runtime, the first instance
    /// kept starts the task that drops instances idle for too long.
    pub(crate) fn give_back(self: &Arc<Self>, warm: Warm<T>) {
        self.give_back_at(warm, Instant::now());
    }

    fn give_back_at(self: &Arc<Self>, warm: Warm<T>, now: Instant) {
        if warm.served >= self.settings.max_reuse.get() {
            return self.discard(warm.instance, DropReason::ReuseLimit);
        }
        let mut idle = self.lock();
        if idle.len() >= self.settings.max_idle {
            drop(idle);
            return self.discard(warm.instance, DropReason::PoolFull);
        }
        let was_empty = idle.is_empty();
        idle.push(Idle { warm, since: now });
        self.stats.idle.fetch_add(1, Ordering::Relaxed);
        drop(idle);
        if was_empty {
            // Stored as a permit when the reaper is busy, so the wake-up is never lost.
            self.wake.notify_one();
        }
        self.start_reaper();
    }

    /// Drops the instances idle since before `now - idle_timeout`; answers when the next one
    /// expires, if any is left.
    pub(crate) fn evict_expired(&self, now: Instant) -> Option<Instant> {
        let timeout = self.settings.idle_timeout;
        let mut idle = self.lock();
        let fresh = idle
            .iter()
            .position(|entry| now.saturating_duration_since(entry.since) < timeout)
            .unwrap_or(idle.len());
        let expired: Vec<Idle<T>> = idle.drain(..fresh).collect();
        let next = idle.first().map(|entry| entry.since + timeout);
        drop(idle);
        for entry in expired {
            self.stats.idle.fetch_sub(1, Ordering::Relaxed);
            self.discard(entry.warm.instance, DropReason::IdleTimeout);
        }
        next
    }

    fn start_reaper(self: &Arc<Self>) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.reaper_started.swap(true, Ordering::AcqRel) {
            return;
        }
        runtime.spawn(reap(Arc::downgrade(self), Arc::clone(&self.wake)));
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Idle<T>>> {
        // A panic while the lock was held cannot leave the list half-changed: every change is
        // one push, pop or drain.
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<T> Drop for InstancePool<T> {
    fn drop(&mut self) {
        // Lets the reaper see that the pool is gone.
        self.wake.notify_one();
    }
}

/// Drops idle instances once their idle timeout has passed; ends with the pool.
async fn reap<T: Send + 'static>(pool: Weak<InstancePool<T>>, wake: Arc<Notify>) {
    loop {
        let next = match pool.upgrade() {
            Some(pool) => pool.evict_expired(Instant::now()),
            None => return,
        };
        match next {
            Some(at) => tokio::time::sleep_until(at.into()).await,
            None => wake.notified().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_pool(max_reuse: u32, max_idle: usize, idle_timeout: Duration) -> Arc<InstancePool<u32>> {
        Arc::new(InstancePool::new(ReuseSettings {
            max_reuse: NonZeroU32::new(max_reuse).unwrap_or(NonZeroU32::MIN),
            max_idle,
            idle_timeout,
        }))
    }

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn the_most_recently_returned_instance_is_taken_first() {
        let pool = new_pool(10, 4, HOUR);
        assert!(pool.take().is_none());
        pool.give_back(Warm {
            instance: 1,
            served: 1,
        });
        pool.give_back(Warm {
            instance: 2,
            served: 1,
        });
        assert_eq!(pool.stats().idle_instances(), 2);
        assert_eq!(pool.take().map(|warm| warm.instance), Some(2));
        assert_eq!(pool.take().map(|warm| warm.instance), Some(1));
        assert!(pool.take().is_none());
        let stats = pool.stats().snapshot();
        assert_eq!(stats.requests_on_reused_instances, 2);
        assert_eq!((stats.idle_instances, stats.dropped_total()), (0, 0));
    }

    #[test]
    fn an_instance_that_served_its_share_is_dropped() {
        let pool = new_pool(3, 4, HOUR);
        pool.give_back(Warm {
            instance: 1,
            served: 2,
        });
        pool.give_back(Warm {
            instance: 2,
            served: 3,
        });
        assert_eq!(pool.stats().instances_dropped(DropReason::ReuseLimit), 1);
        assert_eq!(pool.take().map(|warm| warm.instance), Some(1));
        // A reuse count of 1 keeps nothing.
        let fresh_each_time = new_pool(1, 4, HOUR);
        fresh_each_time.give_back(Warm {
            instance: 1,
            served: 1,
        });
        assert!(fresh_each_time.take().is_none());
    }

    #[test]
    fn a_full_pool_drops_what_comes_back() {
        let pool = new_pool(10, 1, HOUR);
        for instance in [1, 2] {
            pool.give_back(Warm {
                instance,
                served: 1,
            });
        }
        let stats = pool.stats().snapshot();
        assert_eq!(
            (stats.idle_instances, stats.dropped(DropReason::PoolFull)),
            (1, 1)
        );
        assert_eq!(pool.take().map(|warm| warm.instance), Some(1));
    }

    #[test]
    fn idle_instances_expire_oldest_first() {
        let timeout = Duration::from_secs(10);
        let pool = new_pool(10, 4, timeout);
        let start = Instant::now();
        let later = start + Duration::from_secs(4);
        pool.give_back_at(
            Warm {
                instance: 1,
                served: 1,
            },
            start,
        );
        pool.give_back_at(
            Warm {
                instance: 2,
                served: 1,
            },
            later,
        );
        assert_eq!(pool.evict_expired(start), Some(start + timeout));
        assert_eq!(pool.evict_expired(start + timeout), Some(later + timeout));
        let stats = pool.stats().snapshot();
        assert_eq!(
            (stats.dropped(DropReason::IdleTimeout), stats.idle_instances),
            (1, 1)
        );
        assert_eq!(pool.evict_expired(later + timeout), None);
        let stats = pool.stats().snapshot();
        assert_eq!(
            (stats.dropped(DropReason::IdleTimeout), stats.idle_instances),
            (2, 0)
        );
        assert!(pool.take().is_none());
    }

    #[tokio::test]
    async fn the_reaper_drops_idle_instances() {
        let pool = new_pool(10, 4, Duration::from_millis(1));
        pool.give_back(Warm {
            instance: 1,
            served: 1,
        });
        let mut waited = Duration::ZERO;
        while pool.stats().instances_dropped(DropReason::IdleTimeout) == 0 {
            assert!(waited < Duration::from_secs(60), "the reaper never ran");
            tokio::time::sleep(Duration::from_millis(10)).await;
            waited += Duration::from_millis(10);
        }
        assert!(pool.take().is_none());
    }
}
