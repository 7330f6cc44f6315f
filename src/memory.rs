//! Giving memory back. glibc's allocator keeps what thousands of departed connections freed in
//! its per-thread arenas, so the process stays near its peak size after the crowd leaves (the
//! soak's RSS figures, before and after this, are in BENCHMARKS.md). When the number of connections
//! has fallen well below its peak, `malloc_trim` returns the free pages. A small task of its
//! own watches the hub's connection count for it.

use std::time::{Duration, Instant};

use crate::chat::hub::HubHandle;

/// Trim once connections fall below this fraction of the peak since the last trim...
const FALL_RATIO: usize = 2;
/// ...and the peak was at least this many connections (small swings are not worth a trim)...
const MIN_PEAK: usize = 256;
/// ...and not more often than this.
const MIN_INTERVAL: Duration = Duration::from_secs(5);

/// How often the trimming task looks at the connection count.
const WATCH_INTERVAL: Duration = Duration::from_secs(1);

/// Decides when a trim is worth it, from the connection counts it is shown.
#[derive(Debug)]
pub struct Trimmer {
    peak: usize,
    last: Option<Instant>,
}

impl Trimmer {
    pub fn new() -> Self {
        Trimmer {
            peak: 0,
            last: None,
        }
    }

    /// Whether to trim now, given `connections` at `now`.
    pub fn observe(&mut self, connections: usize, now: Instant) -> bool {
        self.peak = self.peak.max(connections);
        let fallen = self.peak >= MIN_PEAK && connections * FALL_RATIO <= self.peak;
        let rested = self
            .last
            .is_none_or(|last| now.duration_since(last) >= MIN_INTERVAL);
        if fallen && rested {
            self.peak = connections;
            self.last = Some(now);
            true
        } else {
            false
        }
    }
}

impl Default for Trimmer {
    fn default() -> Self {
        Self::new()
    }
}

/// Starts the task that trims after a crowd leaves (on the current Tokio runtime); it ends with
/// the hub.
pub fn spawn_trimmer(hub: HubHandle) {
    tokio::spawn(async move {
        let mut trimmer = Trimmer::new();
        let mut tick = tokio::time::interval(WATCH_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tick.tick().await;
            let Ok(stats) = hub.stats().await else { break };
            if trimmer.observe(stats.connections, Instant::now()) {
                trim_in_background();
            }
        }
    });
}

/// Returns free heap pages to the OS, off the async workers (it walks every arena).
pub fn trim_in_background() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let _ = std::thread::Builder::new()
            .name("malloc-trim".into())
            .spawn(|| {
                // SAFETY: malloc_trim only releases free memory; it has no preconditions.
                unsafe {
                    libc::malloc_trim(0);
                }
            });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_after_a_large_crowd_has_mostly_left_and_not_too_often() {
        let t0 = Instant::now();
        let mut trimmer = Trimmer::new();
        assert!(!trimmer.observe(100, t0), "small crowds are not worth it");
        assert!(!trimmer.observe(2_000, t0));
        assert!(!trimmer.observe(1_500, t0), "not fallen far enough");
        assert!(trimmer.observe(900, t0));
        assert!(!trimmer.observe(0, t0 + Duration::from_secs(1)), "too soon");
        // The rest left meanwhile: worth another trim once the interval has passed.
        assert!(trimmer.observe(0, t0 + Duration::from_secs(6)));
        assert!(
            !trimmer.observe(0, t0 + Duration::from_secs(20)),
            "nothing left to free"
        );
    }
}
