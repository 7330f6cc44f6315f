//! Limits that keep one client from hurting the others: a token bucket on each connection's
//! frames, caps on concurrent connections per client address and in all, and a rate of new
//! connections per address.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
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
    /// `per_sec` and `burst` are validated settings (see `config`): above 0.
    pub fn new(per_sec: f64, burst: u32, now: Instant) -> Self {
        let capacity = f64::from(burst);
        TokenBucket {
            capacity,
            per_sec,
            tokens: capacity,
            last: now,
        }
    }

    /// Whether the bucket would be full at `now`: nothing to remember about it.
    pub fn is_full(&self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens + elapsed * self.per_sec >= self.capacity
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

/// A token bucket for one connection's frames that keeps only its level and when it was last
/// drawn on (milliseconds since the connection began). Its size and rate are the caller's, the
/// same for every connection (validated settings, see `config`), so each bucket costs 8 bytes
/// of every session (a test below keeps that true).
#[derive(Debug, Clone, Copy)]
pub struct Tokens {
    level: f32,
    at_ms: u32,
}

impl Tokens {
    /// A full bucket of `burst`.
    pub fn full(burst: u32) -> Self {
        Tokens {
            level: burst as f32,
            at_ms: 0,
        }
    }

    /// Takes one token if there is one, `now_ms` after the connection began; the bucket holds
    /// up to `burst` and refills at `per_sec`.
    pub fn try_take(&mut self, now_ms: u32, per_sec: f64, burst: u32) -> bool {
        // Wrapping: correct across the u32 wrap (49 days) for any gap shorter than that.
        let elapsed_ms = now_ms.wrapping_sub(self.at_ms);
        self.at_ms = now_ms;
        let refill = f64::from(elapsed_ms) * per_sec / 1000.0;
        let level = (f64::from(self.level) + refill).min(f64::from(burst));
        if level >= 1.0 {
            self.level = (level - 1.0) as f32;
            true
        } else {
            self.level = level as f32;
            false
        }
    }
}

/// The address a limit counts by: an IPv4 address as it is (an IPv4-mapped IPv6 address is the
/// IPv4 address it maps), an IPv6 address by its /64, which one subscriber usually holds whole.
pub fn address_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(prefix))
        }
    }
}

/// Why a connection was not given a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Its address (see `address_key`) has its share already: 429.
    AddressFull,
    /// The server holds `--max-connections` already: 503.
    ServerFull,
}

/// Counts live connections, per client address and in all. Touched only when a connection
/// opens or closes, never per message.
#[derive(Debug)]
pub struct ConnsPerIp {
    max: usize,
    max_total: usize,
    counts: Mutex<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    per_address: HashMap<IpAddr, usize>,
    total: usize,
}

/// Holds one of an address's connection slots until dropped.
#[derive(Debug)]
pub struct IpSlot {
    limiter: Arc<ConnsPerIp>,
    key: IpAddr,
}

impl ConnsPerIp {
    pub fn new(max: usize, max_total: usize) -> Arc<Self> {
        Arc::new(ConnsPerIp {
            max,
            max_total,
            counts: Mutex::new(Counts::default()),
        })
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        // A poisoned lock only means another thread panicked mid-update of a counter.
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A slot for `ip`, unless its address or the server is full.
    pub fn try_acquire(self: &Arc<Self>, ip: IpAddr) -> Result<IpSlot, Refused> {
        let key = address_key(ip);
        let mut counts = self.counts();
        if counts.total >= self.max_total {
            return Err(Refused::ServerFull);
        }
        let count = counts.per_address.entry(key).or_insert(0);
        if *count >= self.max {
            return Err(Refused::AddressFull);
        }
        *count += 1;
        counts.total += 1;
        Ok(IpSlot {
            limiter: self.clone(),
            key,
        })
    }

    pub fn count(&self, ip: IpAddr) -> usize {
        let counts = self.counts();
        counts
            .per_address
            .get(&address_key(ip))
            .copied()
            .unwrap_or(0)
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut counts = self.limiter.counts();
        counts.total = counts.total.saturating_sub(1);
        if let Some(count) = counts.per_address.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                counts.per_address.remove(&self.key);
            }
        }
    }
}

/// New connections per second per address (see `address_key`): a token bucket each, kept
/// only while it is not full again.
#[derive(Debug)]
pub struct ConnectRate {
    per_sec: f64,
    burst: u32,
    buckets: Mutex<HashMap<IpAddr, TokenBucket>>,
}

/// Addresses tracked before the buckets that have refilled are forgotten.
const CONNECT_RATE_PRUNE_AT: usize = 4_096;

impl ConnectRate {
    /// `per_sec` new connections a second from one address, `burst` at once.
    pub fn new(per_sec: f64, burst: u32) -> Self {
        ConnectRate {
            per_sec,
            burst,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `ip` may open one more connection now.
    pub fn allow(&self, ip: IpAddr, now: Instant) -> bool {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= CONNECT_RATE_PRUNE_AT {
            buckets.retain(|_, bucket| !bucket.is_full(now));
        }
        buckets
            .entry(address_key(ip))
            .or_insert_with(|| TokenBucket::new(self.per_sec, self.burst, now))
            .try_take(now)
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
    fn a_connection_bucket_is_two_words_of_four_bytes() {
        assert_eq!(std::mem::size_of::<Tokens>(), 8);
    }

    #[test]
    fn a_small_bucket_allows_its_burst_then_its_rate() {
        let mut tokens = Tokens::full(10);
        assert_eq!((0..12).filter(|_| tokens.try_take(0, 5.0, 10)).count(), 10);
        assert!(!tokens.try_take(100, 5.0, 10));
        assert!(tokens.try_take(300, 5.0, 10));
        assert_eq!(
            (0..20).filter(|_| tokens.try_take(60_000, 5.0, 10)).count(),
            10
        );
        // Across the wrap of the millisecond clock.
        let mut wrapping = Tokens::full(1);
        assert!(wrapping.try_take(u32::MAX - 100, 5.0, 1));
        assert!(!wrapping.try_take(u32::MAX - 50, 5.0, 1));
        assert!(wrapping.try_take(200, 5.0, 1));
    }

    #[test]
    fn an_address_gets_at_most_max_slots_and_gets_them_back() {
        let limiter = ConnsPerIp::new(2, 100);
        let ip: IpAddr = [10, 0, 0, 1].into();
        let other: IpAddr = [10, 0, 0, 2].into();
        let a = limiter.try_acquire(ip).expect("first");
        let _b = limiter.try_acquire(ip).expect("second");
        assert_eq!(limiter.try_acquire(ip).err(), Some(Refused::AddressFull));
        assert!(limiter.try_acquire(other).is_ok());
        drop(a);
        assert!(limiter.try_acquire(ip).is_ok());
    }

    #[test]
    fn ipv6_counts_by_its_64_and_mapped_ipv4_as_ipv4() {
        let limiter = ConnsPerIp::new(2, 100);
        let a: IpAddr = "2001:db8:1:2::1".parse().expect("v6");
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().expect("v6");
        let c: IpAddr = "2001:db8:1:3::1".parse().expect("v6");
        let _slots = [limiter.try_acquire(a), limiter.try_acquire(b)];
        assert_eq!(limiter.try_acquire(a).err(), Some(Refused::AddressFull));
        assert!(
            limiter.try_acquire(c).is_ok(),
            "another /64 has its own share"
        );
        let v4: IpAddr = "10.0.0.9".parse().expect("v4");
        let mapped: IpAddr = "::ffff:10.0.0.9".parse().expect("mapped");
        let _more = [limiter.try_acquire(v4), limiter.try_acquire(mapped)];
        assert_eq!(limiter.try_acquire(v4).err(), Some(Refused::AddressFull));
        assert_eq!(limiter.count(mapped), 2);
    }

    #[test]
    fn the_server_cap_counts_every_address() {
        let limiter = ConnsPerIp::new(10, 2);
        let _a = limiter.try_acquire([10, 0, 0, 1].into()).expect("first");
        let b = limiter.try_acquire([10, 0, 0, 2].into()).expect("second");
        let third = limiter.try_acquire([10, 0, 0, 3].into());
        assert_eq!(third.err(), Some(Refused::ServerFull));
        drop(b);
        assert!(limiter.try_acquire([10, 0, 0, 3].into()).is_ok());
    }

    #[test]
    fn new_connections_per_address_are_rate_limited() {
        let t0 = Instant::now();
        let rate = ConnectRate::new(1.0, 3);
        let ip: IpAddr = [10, 0, 0, 1].into();
        assert_eq!((0..5).filter(|_| rate.allow(ip, t0)).count(), 3);
        assert!(rate.allow([10, 0, 0, 2].into(), t0));
        assert!(rate.allow(ip, t0 + Duration::from_millis(1_100)));
    }
}
