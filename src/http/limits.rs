//! Per-API admission: a concurrency limit and an optional request rate.

use std::num::{NonZeroU32, NonZeroUsize};
use std::sync::Arc;

use governor::clock::Clock;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Gate every request passes before it is sent.
#[derive(Debug)]
pub struct Limits {
    rate: Option<DefaultDirectRateLimiter>,
    slots: Arc<Semaphore>,
    capacity: usize,
}

impl Limits {
    pub fn new(
        rate_per_sec: Option<NonZeroU32>,
        burst: NonZeroU32,
        concurrency: NonZeroUsize,
    ) -> Self {
        Limits {
            rate: rate_per_sec
                .map(|rate| RateLimiter::direct(Quota::per_second(rate).allow_burst(burst))),
            slots: Arc::new(Semaphore::new(concurrency.get())),
            capacity: concurrency.get(),
        }
    }

    /// Waits for a concurrency slot, then for the rate limiter. The slot is
    /// taken first so waiting requests do not use up the burst while queued.
    pub async fn admit(&self) -> OwnedSemaphorePermit {
        let permit = self
            .slots
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        if let Some(rate) = &self.rate {
            // Waits on tokio's timer: governor's own wait parks on a timer
            // thread of its own, a thread hand-off for every paced request.
            while let Err(not_until) = rate.check() {
                let wait = not_until.wait_time_from(rate.clock().now());
                tokio::time::sleep(wait).await;
            }
        }
        permit
    }

    /// How many requests may be in flight at once (the configured
    /// concurrency).
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Free concurrency slots right now (for stats and tests).
    pub fn available_slots(&self) -> usize {
        self.slots.available_permits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[tokio::test]
    async fn concurrency_slots_are_returned() {
        let limits = Limits::new(
            None,
            NonZeroU32::new(1).unwrap(),
            NonZeroUsize::new(2).unwrap(),
        );
        let a = limits.admit().await;
        let _b = limits.admit().await;
        assert_eq!(limits.available_slots(), 0);
        drop(a);
        assert_eq!(limits.available_slots(), 1);
    }

    #[tokio::test]
    async fn rate_limit_spaces_requests_after_the_burst() {
        let limits = Limits::new(
            NonZeroU32::new(20),
            NonZeroU32::new(2).unwrap(),
            NonZeroUsize::new(8).unwrap(),
        );
        let start = Instant::now();
        for _ in 0..4 {
            drop(limits.admit().await);
        }
        // 2 immediately (burst), then 2 more at 50 ms intervals.
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(90), "{took:?}");
        assert!(took < Duration::from_millis(1000), "{took:?}");
    }
}
