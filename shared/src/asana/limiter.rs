//! Client-side limits for Asana requests: a per-minute budget and concurrency caps.
//!
//! Asana counts requests per token (150 a minute on free workspaces, 1,500 on paid ones) and caps
//! concurrent requests at about 50 reads and 15 writes. Rejected requests still count, so staying
//! under the budget is cheaper than reacting to 429s. The budget is a token bucket that refills
//! continuously and keeps at most one second's worth of requests, so bursts stay small.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Mutex, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

#[derive(Debug, Clone, Copy)]
pub struct RateLimits {
    pub requests_per_minute: u32,
    pub max_concurrent_reads: usize,
    pub max_concurrent_writes: usize,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            requests_per_minute: 1500,
            max_concurrent_reads: 50,
            max_concurrent_writes: 15,
        }
    }
}

#[derive(Debug, Clone)]
pub struct RateLimiter {
    bucket: Arc<Mutex<Bucket>>,
    reads: Arc<Semaphore>,
    writes: Arc<Semaphore>,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    capacity: f64,
    per_second: f64,
    refilled_at: Instant,
}

/// Held for the duration of one request.
pub struct Permit {
    _concurrency: OwnedSemaphorePermit,
}

impl RateLimiter {
    pub fn new(limits: RateLimits) -> Self {
        let per_second = f64::from(limits.requests_per_minute.max(1)) / 60.0;
        let capacity = per_second.max(1.0);
        Self {
            bucket: Arc::new(Mutex::new(Bucket {
                tokens: capacity,
                capacity,
                per_second,
                refilled_at: Instant::now(),
            })),
            reads: Arc::new(Semaphore::new(limits.max_concurrent_reads.max(1))),
            writes: Arc::new(Semaphore::new(limits.max_concurrent_writes.max(1))),
        }
    }

    /// Waits for a concurrency slot and a budget token.
    pub async fn acquire(&self, write: bool) -> Permit {
        let semaphore = if write { &self.writes } else { &self.reads };
        let concurrency = semaphore
            .clone()
            .acquire_owned()
            .await
            .expect("semaphore never closes");

        loop {
            let wait = self.bucket.lock().await.take();
            match wait {
                None => break,
                Some(wait) => tokio::time::sleep(wait).await,
            }
        }
        Permit {
            _concurrency: concurrency,
        }
    }
}

impl Bucket {
    /// Takes a token, or returns how long until one is available.
    fn take(&mut self) -> Option<Duration> {
        let now = Instant::now();
        let elapsed = now.duration_since(self.refilled_at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.capacity);
        self.refilled_at = now;

        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return None;
        }
        Some(Duration::from_secs_f64(
            (1.0 - self.tokens) / self.per_second,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn limiter_spreads_requests_over_the_minute() {
        let limiter = RateLimiter::new(RateLimits {
            requests_per_minute: 60,
            max_concurrent_reads: 50,
            max_concurrent_writes: 15,
        });
        let start = Instant::now();
        for _ in 0..11 {
            drop(limiter.acquire(false).await);
        }
        // One token is ready at start, then one a second.
        let elapsed = start.elapsed().as_secs_f64();
        assert!(
            (9.9..10.1).contains(&elapsed),
            "11 requests took {elapsed} s"
        );
    }

    #[tokio::test]
    async fn limiter_caps_concurrent_writes() {
        let limiter = RateLimiter::new(RateLimits {
            requests_per_minute: 60_000,
            max_concurrent_reads: 50,
            max_concurrent_writes: 2,
        });
        let first = limiter.acquire(true).await;
        let _second = limiter.acquire(true).await;
        let third = tokio::time::timeout(Duration::from_millis(50), limiter.acquire(true)).await;
        assert!(third.is_err(), "a third write got a slot");

        drop(first);
        let third = tokio::time::timeout(Duration::from_secs(5), limiter.acquire(true)).await;
        assert!(third.is_ok(), "a freed slot was not handed on");
    }
}
