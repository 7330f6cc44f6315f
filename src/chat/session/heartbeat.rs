//! When a connection is pinged and when it is dropped for silence, decided without sockets.
//! A client silent for `heartbeat` (nothing from it since our last ping either) is pinged; one
//! silent for `client_timeout` (no frame, no pong) is dropped. The session sleeps until the
//! one deadline this gives, so an idle connection wakes once per ping, not once per tick.
//!
//! Deadlines fall on a coarse clock shared by every session (`granule`): the pings due within
//! one granule go out together and their pongs come back together, so thousands of idle
//! connections wake their worker a few times a second rather than a thousand times.

use std::sync::OnceLock;
use std::time::Duration;

use tokio::time::Instant;

/// The coarse clock's step at most...
const MAX_GRANULE: Duration = Duration::from_millis(250);
/// ...and at most this fraction of the heartbeat and of the time a pinged client has to answer
/// (the timeout less the heartbeat), so that short timings keep their precision and a ping is
/// never rounded past the timeout.
const GRANULES_PER_PERIOD: u32 = 16;

/// What the session should do when its heartbeat deadline has come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// Nothing yet (the client was heard meanwhile): sleep until the new deadline.
    Nothing,
    /// Ping the client.
    Ping,
    /// Silent past the client timeout: drop it.
    TimedOut,
}

/// A connection's heartbeat: when it was last heard, when it was last busy, whether a ping
/// is unanswered.
#[derive(Debug)]
pub struct Heartbeat {
    heartbeat: Duration,
    timeout: Duration,
    granule: Duration,
    /// The last frame of any kind, pongs included: the timeout counts from it.
    last_heard: Instant,
    /// The last frame the client sent of itself, or our last ping: the next ping is due a
    /// `heartbeat` after it. A pong must not count, or an idle client that answers at once
    /// would be pinged every other period only.
    last_busy: Instant,
    /// A ping went out and no frame came since.
    pinged: bool,
}

impl Heartbeat {
    pub fn new(heartbeat: Duration, timeout: Duration, now: Instant) -> Heartbeat {
        let to_answer = timeout.saturating_sub(heartbeat);
        let granule = (heartbeat.min(to_answer) / GRANULES_PER_PERIOD)
            .clamp(Duration::from_millis(1), MAX_GRANULE);
        Heartbeat {
            heartbeat,
            timeout,
            granule,
            last_heard: now,
            last_busy: now,
            pinged: false,
        }
    }

    /// A frame came from the client at `now`. Returns whether the session should move its
    /// timer: after a ping it was set for the timeout, and the first frame since (the pong,
    /// mostly) means the next thing due is the next ping. Other frames only push deadlines
    /// later; the timer finds that out when it fires (`Due::Nothing`), which costs a busy
    /// connection one wake-up per period rather than a timer update per frame.
    pub fn heard(&mut self, now: Instant, pong: bool) -> bool {
        self.last_heard = now;
        if !pong {
            self.last_busy = now;
        }
        std::mem::take(&mut self.pinged)
    }

    /// When the session should look again. It may look earlier than needed (the client spoke
    /// meanwhile): `on_timer` then says `Nothing` and gives a later deadline.
    pub fn deadline(&self) -> Instant {
        self.ping_due().min(self.drop_due())
    }

    /// What is due at `now`, the timer having fired; a ping counts as sent.
    pub fn on_timer(&mut self, now: Instant) -> Due {
        if now >= self.drop_due() {
            return Due::TimedOut;
        }
        if now >= self.ping_due() {
            self.last_busy = now;
            self.pinged = true;
            return Due::Ping;
        }
        Due::Nothing
    }

    /// Rounded up: a ping never goes out before the client has been silent a whole period.
    fn ping_due(&self) -> Instant {
        let at = self.last_busy + self.heartbeat;
        let down = self.round_down(at);
        if down == at {
            at
        } else {
            down + self.granule
        }
    }

    /// Rounded down: a silent client is never kept past the timeout (but at most a granule
    /// short of it).
    fn drop_due(&self) -> Instant {
        self.round_down(self.last_heard + self.timeout)
    }

    fn round_down(&self, at: Instant) -> Instant {
        let epoch = epoch();
        let since = at.saturating_duration_since(epoch);
        let granule = self.granule.as_nanos().max(1);
        let steps = since.as_nanos() / granule;
        // Far below u64 nanoseconds for any uptime a process reaches (584 years).
        epoch + Duration::from_nanos((steps * granule) as u64)
    }
}

/// The start of the coarse clock, the same for every session of the process.
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn beat(heartbeat: u32, timeout: u32) -> (Heartbeat, Instant) {
        let now = epoch();
        (Heartbeat::new(heartbeat * S, timeout * S, now), now)
    }

    #[test]
    fn an_idle_client_that_answers_is_pinged_once_a_period_and_never_dropped() {
        let (mut b, start) = beat(20, 30);
        for round in 1..=10u32 {
            let now = b.deadline();
            assert_eq!(now, start + 20 * S * round, "round {round}");
            assert_eq!(b.on_timer(now), Due::Ping);
            // Until the pong, the session sleeps towards the timeout.
            assert!(b.deadline() > now);
            let pong = now + Duration::from_millis(30);
            assert!(
                b.heard(pong, true),
                "a pong answering a ping moves the deadline"
            );
        }
    }

    #[test]
    fn a_client_that_stops_answering_is_dropped_at_the_timeout_not_later() {
        let (mut b, start) = beat(20, 30);
        assert_eq!(b.on_timer(b.deadline()), Due::Ping);
        // No pong: the next deadline is the timeout, counted from the last frame heard.
        let next = b.deadline();
        assert_eq!(next, start + 30 * S);
        assert_eq!(b.on_timer(next - Duration::from_millis(1)), Due::Nothing);
        assert_eq!(b.on_timer(next), Due::TimedOut);
    }

    #[test]
    fn a_busy_client_is_never_pinged() {
        let (mut b, start) = beat(10, 30);
        // The session's timer is set at a deadline and not moved by ordinary frames.
        let mut armed = b.deadline();
        let mut now = start;
        for _ in 0..100 {
            now += 3 * S;
            if armed <= now {
                assert_eq!(b.on_timer(armed), Due::Nothing, "woken, nothing is due");
                armed = b.deadline();
            }
            assert!(!b.heard(now, false), "no ping is outstanding");
        }
        assert_eq!(b.deadline(), now + 10 * S);
    }

    #[test]
    fn a_pong_keeps_a_client_alive_but_does_not_delay_the_next_ping() {
        let (mut b, start) = beat(10, 30);
        assert_eq!(b.on_timer(start + 10 * S), Due::Ping);
        b.heard(start + 15 * S, true);
        assert_eq!(
            b.deadline(),
            start + 20 * S,
            "a period after the ping, not the pong"
        );
        // A frame the client sends of itself restarts the wait for the next ping.
        assert!(!b.heard(start + 17 * S, false));
        assert_eq!(b.deadline(), start + 27 * S);
    }

    #[test]
    fn deadlines_fall_on_the_shared_coarse_clock() {
        let granule = MAX_GRANULE;
        let (mut b, start) = beat(20, 30);
        b.heard(start + Duration::from_millis(1_234), false);
        let ping = b.deadline();
        assert_eq!(ping, start + Duration::from_millis(21_250), "rounded up");
        assert_eq!(b.on_timer(ping), Due::Ping);
        let drop = b.deadline();
        assert_eq!(drop, start + Duration::from_millis(31_000), "rounded down");
        assert!(drop <= start + Duration::from_millis(1_234) + 30 * S);
        assert!(drop + granule > start + Duration::from_millis(1_234) + 30 * S);
    }

    #[test]
    fn a_short_time_to_answer_still_gets_its_ping_before_the_timeout() {
        let (heartbeat, timeout) = (Duration::from_millis(900), Duration::from_millis(1_000));
        // Wherever the connection starts on the coarse clock.
        for offset_ms in 0..100 {
            let start = epoch() + Duration::from_millis(offset_ms);
            let mut b = Heartbeat::new(heartbeat, timeout, start);
            assert_eq!(b.on_timer(b.deadline()), Due::Ping, "at {offset_ms} ms");
            let drop = b.deadline();
            assert_eq!(b.on_timer(drop), Due::TimedOut);
            assert!(drop <= start + timeout && drop + b.granule > start + timeout);
        }
    }

    #[test]
    fn short_periods_get_a_fine_clock() {
        let b = Heartbeat::new(
            Duration::from_millis(100),
            Duration::from_millis(500),
            epoch(),
        );
        assert!(b.granule <= Duration::from_millis(7), "{:?}", b.granule);
    }
}
