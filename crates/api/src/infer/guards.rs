//! Admission control for `POST /v1/infer`: the in-flight counter behind the 503 guard and
//! the per-client rate limiter behind the 429 guard.
//!
//! Both are cheap, synchronous and bounded: the counter is one atomic released by a drop
//! guard (so a request abandoned by its client, whose future is dropped, frees its place),
//! and the limiter holds at most `max_clients` buckets, evicting full (idle) ones first.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Requests admitted and not yet answered (waiting for a slot or running).
#[derive(Debug, Clone)]
pub struct Admission {
    inflight: Arc<AtomicUsize>,
    max: usize,
}

/// A place in the in-flight count; released on drop.
#[derive(Debug)]
pub struct Admitted(Arc<AtomicUsize>);

impl Drop for Admitted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Admission {
    pub fn new(max: usize) -> Self {
        Admission {
            inflight: Arc::new(AtomicUsize::new(0)),
            max,
        }
    }

    /// A place, or None when `max` requests are already in flight.
    pub fn try_admit(&self) -> Option<Admitted> {
        let mut cur = self.inflight.load(Ordering::Acquire);
        loop {
            if cur >= self.max {
                return None;
            }
            match self.inflight.compare_exchange_weak(
                cur,
                cur + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Some(Admitted(self.inflight.clone())),
                Err(now) => cur = now,
            }
        }
    }

    pub fn inflight(&self) -> usize {
        self.inflight.load(Ordering::Acquire)
    }
}

/// Token buckets per client: `per_minute` capacity, refilled continuously.
#[derive(Debug)]
pub struct RateLimiter {
    per_minute: u32,
    max_clients: usize,
    buckets: Mutex<HashMap<String, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The key shared by new clients while the table is full of active ones.
const OVERFLOW_KEY: &str = "(overflow)";

impl RateLimiter {
    /// `per_minute = 0` disables the limit.
    pub fn new(per_minute: u32, max_clients: usize) -> Self {
        RateLimiter {
            per_minute,
            max_clients: max_clients.max(1),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token for `key`; `Err(retry_after)` when none is left.
    pub fn check(&self, key: &str, now: Instant) -> Result<(), Duration> {
        if self.per_minute == 0 {
            return Ok(());
        }
        let cap = f64::from(self.per_minute);
        let rate = cap / 60.0;
        let refill = |b: &Bucket| {
            (b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * rate).min(cap)
        };
        let mut map = self.buckets.lock();
        let key = if map.contains_key(key) || map.len() < self.max_clients {
            key
        } else {
            // Evict buckets that have refilled completely: their clients are idle, and a
            // fresh bucket would be identical.
            map.retain(|_, b| refill(b) < cap);
            if map.len() < self.max_clients {
                key
            } else {
                OVERFLOW_KEY
            }
        };
        let b = map.entry(key.to_owned()).or_insert(Bucket {
            tokens: cap,
            at: now,
        });
        b.tokens = refill(b);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - b.tokens) / rate))
        }
    }

    /// Buckets held (for tests and metrics).
    pub fn clients(&self) -> usize {
        self.buckets.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admission_is_bounded_and_released_on_drop() {
        let a = Admission::new(2);
        let x = a.try_admit().unwrap();
        let _y = a.try_admit().unwrap();
        assert!(a.try_admit().is_none());
        drop(x);
        assert!(a.try_admit().is_some());
        let zero = Admission::new(0);
        assert!(zero.try_admit().is_none());
    }

    #[test]
    fn rate_limit_refills_and_evicts_idle_clients() {
        let r = RateLimiter::new(60, 2);
        let t0 = Instant::now();
        for _ in 0..60 {
            r.check("a", t0).unwrap();
        }
        let wait = r.check("a", t0).unwrap_err();
        assert!(wait <= Duration::from_secs(1) && wait > Duration::ZERO);
        // One token per second comes back.
        r.check("a", t0 + Duration::from_millis(1001)).unwrap();
        r.check("b", t0).unwrap();
        // Table full of active clients: a newcomer shares the overflow bucket.
        r.check("c", t0).unwrap();
        assert!(r.clients() <= 3);
        // Much later every bucket is full again, so they are evicted.
        r.check("d", t0 + Duration::from_secs(600)).unwrap();
        assert_eq!(r.clients(), 1);
    }

    #[test]
    fn zero_disables() {
        let r = RateLimiter::new(0, 1);
        for _ in 0..1000 {
            r.check("a", Instant::now()).unwrap();
        }
        assert_eq!(r.clients(), 0);
    }
}
