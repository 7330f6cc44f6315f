//! A hiccup meter (after jHiccup): a thread of the load generator that asks to sleep 1 ms over
//! and over and records how late it wakes. A stall that delays it too was the machine's (the
//! scheduler, another process, the hypervisor taking the vCPU), not the server's work; so a
//! step's latency tail can be read against it. It also reads the machine's steal time.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::{json, Value};

use crate::client::now_ns;
use crate::report;

const NAP: Duration = Duration::from_millis(1);
/// Wake-ups later than this count as hiccups in the timeline.
pub const HICCUP_US: u64 = 2_000;
pub const BUCKET_NS: u64 = 100_000_000;

/// Events (a slow message, a late nap) by when they happened: per 100 ms since `reset`, how
/// many and the longest.
#[derive(Debug, Default)]
pub struct Timeline {
    /// `now_ns` at the start of the window.
    t0_ns: u64,
    /// 100 ms bucket since `t0_ns` → (events, longest µs).
    buckets: BTreeMap<u64, (u64, u64)>,
}

impl Timeline {
    pub fn reset(&mut self) {
        self.t0_ns = now_ns();
        self.buckets.clear();
    }

    /// An event at `at_ns` (on `now_ns`'s clock) that took `us`.
    pub fn record(&mut self, at_ns: u64, us: u64) {
        let e = self
            .buckets
            .entry(at_ns.saturating_sub(self.t0_ns) / BUCKET_NS)
            .or_default();
        e.0 += 1;
        e.1 = e.1.max(us);
    }

    pub fn count(&self) -> u64 {
        self.buckets.values().map(|b| b.0).sum()
    }

    /// The buckets that hold events, in time order: `[at_ms, count, longest_ms]`.
    pub fn to_json(&self) -> Value {
        let rows: Vec<Value> = self
            .buckets
            .iter()
            .map(|(b, (n, max))| {
                json!([
                    b * BUCKET_NS / 1_000_000,
                    n,
                    report::round(*max as f64 / 1000.0, 1)
                ])
            })
            .collect();
        json!(rows)
    }
}

#[derive(Default)]
struct State {
    hist: Option<Histogram<u64>>,
    late: Timeline,
    steal0: Steal,
}

pub struct Meter {
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
}

impl Meter {
    pub fn start() -> Meter {
        let state = Arc::new(Mutex::new(State {
            hist: Some(report::histogram()),
            ..State::default()
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp) = (state.clone(), stop.clone());
        let _ = std::thread::Builder::new()
            .name("hiccup".into())
            .spawn(move || {
                while !sp.load(Relaxed) {
                    let before = now_ns();
                    std::thread::sleep(NAP);
                    let late_us = now_ns().saturating_sub(before + NAP.as_nanos() as u64) / 1000;
                    let mut s = st.lock().unwrap();
                    if let Some(h) = s.hist.as_mut() {
                        h.saturating_record(late_us.max(1));
                    }
                    if late_us > HICCUP_US {
                        s.late.record(before, late_us);
                    }
                }
            });
        Meter { state, stop }
    }

    /// Starts a new measuring window.
    pub fn reset(&self) {
        let mut s = self.state.lock().unwrap();
        if let Some(h) = s.hist.as_mut() {
            h.reset();
        }
        s.late.reset();
        s.steal0 = Steal::now();
    }

    /// The window's figures (how late the 1 ms naps woke, p99 and max, and the machine's
    /// steal time), and the timeline of hiccups over `HICCUP_US`.
    pub fn report(&self) -> (Value, Value) {
        let s = self.state.lock().unwrap();
        let ms = |q: Option<u64>| q.map(|us| report::round(us as f64 / 1000.0, 3));
        let h = s.hist.as_ref().filter(|h| !h.is_empty());
        let figures = json!({
            "steal_pct": s.steal0.pct_since(),
            "nap_late_p99_ms": ms(h.map(|h| h.value_at_quantile(0.99))),
            "nap_late_max_ms": ms(h.map(|h| h.max())),
            "naps": h.map(|h| h.len()).unwrap_or(0),
        });
        (figures, s.late.to_json())
    }
}

impl Drop for Meter {
    fn drop(&mut self) {
        self.stop.store(true, Relaxed);
    }
}

/// The `hiccup` scenario: the meter alone for `--duration` seconds (default 10).
pub async fn run(c: &crate::Common) -> Value {
    let meter = Meter::start();
    meter.reset();
    tokio::time::sleep(Duration::from_secs_f64(c.duration.unwrap_or(10.0))).await;
    let (figures, timeline) = meter.report();
    json!({
        "scenario": "hiccup",
        "nap_ms": NAP.as_secs_f64() * 1000.0,
        "figures": figures,
        "hiccups_over_2ms_by_100ms": timeline,
    })
}

/// A reading of the whole machine's steal time (/proc/stat), to difference later.
#[derive(Debug, Clone, Copy, Default)]
pub struct Steal(Option<(u64, u64)>);

impl Steal {
    pub fn now() -> Steal {
        Steal(steal_and_total())
    }

    /// Percent of all CPU time since this reading that the hypervisor gave to someone else.
    pub fn pct_since(&self) -> Value {
        match (self.0, steal_and_total()) {
            (Some((s0, t0)), Some((s1, t1))) if t1 > t0 => {
                json!(report::round(
                    (s1 - s0) as f64 * 100.0 / (t1 - t0) as f64,
                    2
                ))
            }
            _ => Value::Null,
        }
    }
}

/// Steal ticks and all ticks of the whole machine, from the first line of /proc/stat.
fn steal_and_total() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let line = text.lines().next()?;
    let nums: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    Some((*nums.get(7)?, nums.iter().sum()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_steal_from_proc_stat() {
        let (steal, total) = steal_and_total().expect("/proc/stat on Linux");
        assert!(steal <= total && total > 0);
        let pct = Steal::now().pct_since();
        assert!(pct.is_null() || (0.0..=100.0).contains(&pct.as_f64().unwrap()));
    }

    #[test]
    fn timeline_buckets_events_by_time() {
        let mut t = Timeline {
            t0_ns: 1_000_000_000,
            ..Timeline::default()
        };
        t.record(1_050_000_000, 2_500);
        t.record(1_250_000_000, 9_000);
        t.record(1_260_000_000, 3_000);
        assert_eq!(t.count(), 3);
        assert_eq!(t.to_json(), json!([[0, 1, 2.5], [200, 2, 9.0]]));
    }

    #[test]
    fn meter_counts_naps_in_its_window() {
        let meter = Meter::start();
        meter.reset();
        std::thread::sleep(Duration::from_millis(50));
        let (figures, timeline) = meter.report();
        assert!(figures["naps"].as_u64().unwrap() > 5, "{figures}");
        assert!(figures["nap_late_max_ms"].as_f64().unwrap() >= 0.0);
        assert!(timeline.is_array());
    }
}
