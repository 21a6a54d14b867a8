//! Adaptive concurrency: a queue's limit follows its backlog. Up by `step` while
//! the backlog (jobs ready in Redis) exceeds twice the limit, down by `step` while
//! it is under half, at most one change per `scale_up_interval_ms` going up (per
//! `scale_down_interval_ms` going down), never outside `min..=max`. The decision is
//! a pure function of the backlog and the time ([`Scaler::observe`]); [`Slots`]
//! applies it to the claim loop's semaphore.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use crate::config::AdaptiveConcurrency;

/// How often the backlog is read.
pub(crate) const OBSERVE_EVERY: Duration = Duration::from_secs(1);

/// The limit of one queue and when it last changed.
#[derive(Debug)]
pub(crate) struct Scaler {
    bounds: AdaptiveConcurrency,
    limit: u32,
    last_change: Instant,
}

impl Scaler {
    /// Starts at `min`, as if it had just changed at `now`.
    pub(crate) fn new(bounds: AdaptiveConcurrency, now: Instant) -> Self {
        Self {
            bounds,
            limit: bounds.min,
            last_change: now,
        }
    }

    pub(crate) fn limit(&self) -> u32 {
        self.limit
    }

    /// The new limit, if `backlog` at `now` calls for a change.
    pub(crate) fn observe(&mut self, backlog: u64, now: Instant) -> Option<u32> {
        let b = self.bounds;
        let since = now.saturating_duration_since(self.last_change);
        let limit = u64::from(self.limit);
        let next = if backlog > 2 * limit
            && self.limit < b.max
            && since >= Duration::from_millis(b.scale_up_interval_ms)
        {
            self.limit.saturating_add(b.step).min(b.max)
        } else if backlog * 2 < limit
            && self.limit > b.min
            && since >= Duration::from_millis(b.scale_down_interval_ms)
        {
            self.limit.saturating_sub(b.step).max(b.min)
        } else {
            return None;
        };
        self.limit = next;
        self.last_change = now;
        Some(next)
    }
}

/// The claim loop's free slots under a limit that can change.
#[derive(Clone)]
pub(crate) struct Slots {
    pub(crate) semaphore: Arc<Semaphore>,
    limit: Arc<AtomicU32>,
}

impl Slots {
    pub(crate) fn new(limit: u32) -> Self {
        Self {
            semaphore: Arc::new(Semaphore::new(limit as usize)),
            limit: Arc::new(AtomicU32::new(limit)),
        }
    }

    /// Raises or lowers the limit. Lowering takes slots as running jobs free them
    /// (running jobs are never stopped for it).
    pub(crate) fn set_limit(&self, limit: u32) {
        let old = self.limit.swap(limit, Ordering::SeqCst);
        if limit > old {
            self.semaphore.add_permits((limit - old) as usize);
        } else if limit < old {
            let semaphore = self.semaphore.clone();
            let fewer = old - limit;
            tokio::spawn(async move {
                if let Ok(taken) = semaphore.acquire_many_owned(fewer).await {
                    taken.forget();
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bounds() -> AdaptiveConcurrency {
        AdaptiveConcurrency {
            min: 2,
            max: 10,
            step: 3,
            scale_up_interval_ms: 5_000,
            scale_down_interval_ms: 30_000,
        }
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn scales_up_by_step_while_the_backlog_exceeds_twice_the_limit() {
        let t0 = Instant::now();
        let mut s = Scaler::new(bounds(), t0);
        assert_eq!(s.limit(), 2);
        assert_eq!(
            s.observe(100, t0 + secs(4)),
            None,
            "not before the interval"
        );
        assert_eq!(s.observe(100, t0 + secs(5)), Some(5));
        assert_eq!(
            s.observe(100, t0 + secs(9)),
            None,
            "interval since the change"
        );
        assert_eq!(s.observe(100, t0 + secs(10)), Some(8));
        assert_eq!(s.observe(100, t0 + secs(15)), Some(10), "capped at max");
        assert_eq!(s.observe(1_000, t0 + secs(20)), None, "never above max");
    }

    #[test]
    fn a_backlog_of_exactly_twice_the_limit_holds_it() {
        let t0 = Instant::now();
        let mut s = Scaler::new(bounds(), t0);
        assert_eq!(s.observe(4, t0 + secs(60)), None);
        assert_eq!(s.observe(5, t0 + secs(60)), Some(5));
    }

    #[test]
    fn scales_down_while_the_backlog_is_under_half_and_never_below_min() {
        let t0 = Instant::now();
        let mut s = Scaler::new(bounds(), t0);
        for i in 1..=3 {
            s.observe(1_000, t0 + secs(5 * i));
        }
        assert_eq!(s.limit(), 10);
        let t1 = t0 + secs(15);
        assert_eq!(s.observe(0, t1 + secs(29)), None, "down waits longer");
        assert_eq!(s.observe(0, t1 + secs(30)), Some(7));
        assert_eq!(s.observe(3, t1 + secs(60)), Some(4), "3 < 7 / 2");
        assert_eq!(s.observe(2, t1 + secs(90)), None, "2 is half of 4: held");
        assert_eq!(s.observe(0, t1 + secs(90)), Some(2), "floored at min");
        assert_eq!(s.observe(0, t1 + secs(200)), None, "never below min");
    }

    #[tokio::test]
    async fn the_slots_follow_the_limit() {
        let slots = Slots::new(2);
        let held = slots.semaphore.clone().acquire_many_owned(2).await.unwrap();
        slots.set_limit(5);
        assert_eq!(slots.semaphore.available_permits(), 3);
        slots.set_limit(1);
        tokio::task::yield_now().await;
        // The 4 slots to give up: the 3 free ones now, one more once a job ends.
        assert_eq!(slots.semaphore.available_permits(), 0);
        drop(held);
        tokio::task::yield_now().await;
        assert_eq!(slots.semaphore.available_permits(), 1);
    }
}
