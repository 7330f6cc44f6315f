//! Limits that keep one client from hurting the others: a token bucket on each connection's
//! frames, and a cap on concurrent connections per client address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// A token bucket: `burst` frames at once, refilled at `per_sec`.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    capacity: f64,
    per_sec: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    pub fn new(per_sec: f64, burst: u32, now: Instant) -> Self {
        let capacity = f64::from(burst.max(1));
        TokenBucket {
            capacity,
            per_sec: per_sec.max(0.0),
            tokens: capacity,
            last: now,
        }
    }

    /// Takes one token if there is one.
    pub fn try_take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.per_sec).min(self.capacity);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Counts live connections per client address. Touched only when a connection opens or closes,
/// never per message.
#[derive(Debug)]
pub struct ConnsPerIp {
    max: usize,
    counts: Mutex<HashMap<IpAddr, usize>>,
}

/// Holds one of an address's connection slots until dropped.
#[derive(Debug)]
pub struct IpSlot {
    limiter: Arc<ConnsPerIp>,
    ip: IpAddr,
}

impl ConnsPerIp {
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(ConnsPerIp {
            max,
            counts: Mutex::new(HashMap::new()),
        })
    }

    /// A slot for `ip`, or `None` when it has `max` connections already.
    pub fn try_acquire(self: &Arc<Self>, ip: IpAddr) -> Option<IpSlot> {
        // A poisoned lock only means another thread panicked mid-update of a counter.
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let count = counts.entry(ip).or_insert(0);
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(IpSlot {
            limiter: self.clone(),
            ip,
        })
    }

    pub fn count(&self, ip: IpAddr) -> usize {
        let counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        counts.get(&ip).copied().unwrap_or(0)
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut counts = self
            .limiter
            .counts
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(count) = counts.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_bucket_allows_its_burst_then_its_rate() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(5.0, 10, t0);
        assert_eq!((0..12).filter(|_| bucket.try_take(t0)).count(), 10);
        assert!(!bucket.try_take(t0 + Duration::from_millis(100)));
        assert!(bucket.try_take(t0 + Duration::from_millis(300)));
        // A long pause refills only up to the burst.
        let later = t0 + Duration::from_secs(60);
        assert_eq!((0..20).filter(|_| bucket.try_take(later)).count(), 10);
    }

    #[test]
    fn an_address_gets_at_most_max_slots_and_gets_them_back() {
        let limiter = ConnsPerIp::new(2);
        let ip: IpAddr = [10, 0, 0, 1].into();
        let other: IpAddr = [10, 0, 0, 2].into();
        let a = limiter.try_acquire(ip).expect("first");
        let _b = limiter.try_acquire(ip).expect("second");
        assert!(limiter.try_acquire(ip).is_none());
        assert!(limiter.try_acquire(other).is_some());
        drop(a);
        assert!(limiter.try_acquire(ip).is_some());
    }
}
