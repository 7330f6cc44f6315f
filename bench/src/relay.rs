//! `relay`: P pairs chat at a set total rate (or flat out); every message carries its send
//! time, and the partner's copy gives the latency (send → partner receives).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::{json, Value};
use tokio::sync::{watch, Semaphore};

use crate::client::{self, Event, In, Target, Ws};
use crate::hiccup::Timeline;
use crate::probe::Probe;
use crate::report;
use crate::Common;

#[derive(Debug, Clone, clap::Args)]
pub struct RelayArgs {
    /// Pairs (2 connections each).
    #[arg(long, default_value_t = 500)]
    pub pairs: u64,
    /// Total messages per second over all connections, comma-separated for a curve (one step
    /// per value, each `--duration` long); 0 = flat out.
    #[arg(long, value_delimiter = ',', default_value = "4000")]
    pub rate: Vec<f64>,
    /// Seconds of each step run before measuring.
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,
    /// Flat out: messages each connection keeps in flight (sent, no receipt yet).
    #[arg(long, default_value_t = 1)]
    pub window: u64,
    /// Extra bytes of text in each message (the stamp itself is ~30 bytes).
    #[arg(long, default_value_t = 0)]
    pub pad: usize,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Step {
    epoch: u64,
    /// Nanoseconds between one connection's messages; 0 = flat out.
    period_ns: u64,
    active: bool,
    stop: bool,
}

#[derive(Default)]
struct Counters {
    sent: AtomicU64,
    receipts: AtomicU64,
    delivered: AtomicU64,
    error_frames: AtomicU64,
    closes: AtomicU64,
    paired: AtomicU64,
    opened: AtomicU64,
    failed: AtomicU64,
    live: AtomicU64,
}

/// Messages slower than this go in the step's timeline of slow messages (by send time): it
/// shows whether a step's tail comes from a few stalls, and when, or from scattered delays.
const SLOW_US: u64 = 2_000;

struct Shared {
    target: Target,
    k: Counters,
    hist: Mutex<(Histogram<u64>, Timeline)>,
    window: u64,
    pad: String,
    problems: Mutex<Vec<String>>,
}

fn note(s: &Shared, e: String) {
    let mut p = s.problems.lock().unwrap();
    if p.len() < 10 && !p.contains(&e) {
        p.push(e);
    }
}

async fn send(s: &Shared, ws: &mut Ws, id: u64, seq: &mut u64, epoch: u64) -> bool {
    let frame = client::message_frame(id, *seq, epoch, &s.pad);
    *seq += 1;
    s.k.sent.fetch_add(1, Relaxed);
    client::send_text(ws, frame).await.is_ok()
}

async fn conn_task(s: Arc<Shared>, id: u64, mut rx: watch::Receiver<Step>, mut ws: Ws) {
    let mut paired = false;
    let mut step = *rx.borrow();
    let mut next = tokio::time::Instant::now();
    let mut outstanding = 0u64;
    let mut seq = 0u64;
    if client::request(&mut ws).await.is_err() {
        s.k.closes.fetch_add(1, Relaxed);
        return;
    }
    loop {
        let timed = paired && step.active && step.period_ns > 0;
        tokio::select! {
            ev = client::next_event(&mut ws) => match ev {
                Event::Text(t) => match client::parse(&t) {
                    In::Response => {
                        paired = true;
                        s.k.paired.fetch_add(1, Relaxed);
                    }
                    In::Me(m) => {
                        s.k.receipts.fetch_add(1, Relaxed);
                        // Receipts of an earlier step's messages do not open this step's window.
                        if client::parse_stamp(&m).is_some_and(|st| st.tag == step.epoch) {
                            outstanding = outstanding.saturating_sub(1);
                        }
                        if paired && step.active && step.period_ns == 0 && outstanding < s.window {
                            if !send(&s, &mut ws, id, &mut seq, step.epoch).await { break; }
                            outstanding += 1;
                        }
                    }
                    In::Guest(m) => {
                        let now = client::now_ns();
                        s.k.delivered.fetch_add(1, Relaxed);
                        if let Some(st) = client::parse_stamp(&m) {
                            if st.tag == step.epoch {
                                let us = now.saturating_sub(st.sent_ns) / 1000;
                                let mut h = s.hist.lock().unwrap();
                                h.0.saturating_record(us.max(1));
                                if us > SLOW_US {
                                    h.1.record(st.sent_ns, us);
                                }
                            }
                        }
                    }
                    In::Error(code) => {
                        s.k.error_frames.fetch_add(1, Relaxed);
                        note(&s, format!("error frame {code}"));
                    }
                    _ => {}
                },
                Event::Closed(code, reason) => {
                    note(&s, format!("server closed: {code} {reason}"));
                    break;
                }
                Event::Broken(e) => {
                    note(&s, format!("connection broke: {e}"));
                    break;
                }
                Event::Nothing => {}
            },
            _ = tokio::time::sleep_until(next), if timed => {
                if !send(&s, &mut ws, id, &mut seq, step.epoch).await { break; }
                let period = Duration::from_nanos(step.period_ns);
                next += period;
                let now = tokio::time::Instant::now();
                if next + Duration::from_secs(1) < now {
                    next = now; // far behind: do not burst to catch up
                }
            }
            r = rx.changed() => {
                if r.is_err() { break; }
                step = *rx.borrow();
                if step.stop {
                    client::close_and_drain(&mut ws, Duration::from_secs(5)).await;
                    s.k.live.fetch_sub(1, Relaxed);
                    return;
                }
                outstanding = 0;
                if step.period_ns > 0 {
                    next = tokio::time::Instant::now()
                        + Duration::from_nanos(fastrand::u64(0..step.period_ns));
                } else if paired && step.active {
                    while outstanding < s.window {
                        if !send(&s, &mut ws, id, &mut seq, step.epoch).await { break; }
                        outstanding += 1;
                    }
                }
            }
        }
    }
    s.k.closes.fetch_add(1, Relaxed);
    s.k.live.fetch_sub(1, Relaxed);
}

pub async fn run(c: &Common, a: &RelayArgs, probe: &Probe) -> anyhow::Result<Value> {
    let duration = c.duration.unwrap_or(10.0);
    let n = a.pairs * 2;
    let s = Arc::new(Shared {
        target: crate::target(c, c.sources)?,
        k: Counters::default(),
        hist: Mutex::new((report::histogram(), Timeline::default())),
        window: a.window.max(1),
        pad: "x".repeat(a.pad),
        problems: Mutex::default(),
    });
    let (tx, rx) = watch::channel(Step {
        epoch: 0,
        period_ns: 0,
        active: false,
        stop: false,
    });
    let baseline = probe.mark();
    let bar = report::progress(n, !c.no_progress);
    bar.set_message("connecting");
    let sem = Arc::new(Semaphore::new(c.connect_concurrency.max(1)));
    let started = Instant::now();
    for id in 0..n {
        let permit = sem.clone().acquire_owned().await?;
        let (sc, rx) = (s.clone(), rx.clone());
        s.k.live.fetch_add(1, Relaxed);
        tokio::spawn(async move {
            let s = sc;
            match s.target.connect(id).await {
                Ok(ws) => {
                    drop(permit);
                    s.k.opened.fetch_add(1, Relaxed);
                    conn_task(s, id, rx, ws).await;
                }
                Err(e) => {
                    s.k.failed.fetch_add(1, Relaxed);
                    s.k.live.fetch_sub(1, Relaxed);
                    note(&s, format!("connect: {e:#}"));
                }
            }
        });
        bar.set_position(s.k.opened.load(Relaxed));
    }
    let wait_until = Instant::now() + Duration::from_secs(30);
    while s.k.paired.load(Relaxed) + s.k.failed.load(Relaxed) + 1 < n && Instant::now() < wait_until
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
        bar.set_position(s.k.opened.load(Relaxed));
        bar.set_message(format!("paired {}", s.k.paired.load(Relaxed)));
    }
    let setup_secs = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = probe.mark();
    let paired = s.k.paired.load(Relaxed);
    bar.finish_and_clear();

    let mut steps = Vec::new();
    let mut timelines = serde_json::Map::new();
    let mut hiccup_timelines = serde_json::Map::new();
    let meter = crate::hiccup::Meter::start();
    let total_secs = (a.warmup + duration) * a.rate.len() as f64;
    let bar = report::progress((total_secs * 1000.0) as u64, !c.no_progress);
    let run_start = Instant::now();
    for (i, &rate) in a.rate.iter().enumerate() {
        let period_ns = if rate > 0.0 {
            ((paired.max(1) as f64 * 1e9 / rate) as u64).max(1)
        } else {
            0 // flat out
        };
        let label = if rate > 0.0 {
            format!("{rate}/s")
        } else {
            "flat out".into()
        };
        let _ = tx.send(Step {
            epoch: i as u64 + 1,
            period_ns,
            active: true,
            stop: false,
        });
        let tick = |bar: &indicatif::ProgressBar, msg: &str| {
            bar.set_position(run_start.elapsed().as_millis() as u64);
            bar.set_message(format!(
                "{label} {msg} delivered {}",
                s.k.delivered.load(Relaxed)
            ));
        };
        let until = Instant::now() + Duration::from_secs_f64(a.warmup);
        while Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(100)).await;
            tick(&bar, "warm-up");
        }
        {
            let mut h = s.hist.lock().unwrap();
            h.0.reset();
            h.1.reset();
        }
        meter.reset();
        let d0 = s.k.delivered.load(Relaxed);
        let s0 = s.k.sent.load(Relaxed);
        let e0 = s.k.error_frames.load(Relaxed);
        let c0 = s.k.closes.load(Relaxed);
        let mark = probe.mark();
        let t0 = Instant::now();
        let until = t0 + Duration::from_secs_f64(duration);
        while Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(100)).await;
            tick(&bar, "");
        }
        let secs = t0.elapsed().as_secs_f64();
        let cpu = probe.cpu_since(&mark);
        let switches = probe.switches_since(&mark);
        let (hiccups, hiccup_timeline) = meter.report();
        let delivered = s.k.delivered.load(Relaxed) - d0;
        let sent = s.k.sent.load(Relaxed) - s0;
        let (hist, slow, slow_count) = {
            let h = s.hist.lock().unwrap();
            (h.0.clone(), h.1.to_json(), h.1.count())
        };
        let (us_per, secs_per_1k) = report::cpu_per(cpu, delivered);
        steps.push(json!({
            "target": label,
            "sent_per_sec": report::round(sent as f64 / secs, 0),
            "delivered_per_sec": report::round(delivered as f64 / secs, 0),
            "latency": report::latency(&hist),
            "server_cpu_pct": cpu.map(|c| report::round(c * 100.0 / secs, 1)),
            "cpu_us_per_msg": us_per,
            "cpu_s_per_1k_msgs": secs_per_1k,
            "ctx_switches_per_msg": switches
                .filter(|_| delivered > 0)
                .map(|n| report::round(n as f64 / delivered as f64, 3)),
            "errors": s.k.error_frames.load(Relaxed) - e0,
            "closes": s.k.closes.load(Relaxed) - c0,
            "slow_over_2ms": slow_count,
            "machine": hiccups,
        }));
        timelines.insert(format!("{}: {label}", i + 1), slow);
        hiccup_timelines.insert(format!("{}: {label}", i + 1), hiccup_timeline);
    }
    let closes_while_running = s.k.closes.load(Relaxed);
    let _ = tx.send(Step {
        epoch: u64::MAX,
        period_ns: 0,
        active: false,
        stop: true,
    });
    let until = Instant::now() + Duration::from_secs(15);
    while s.k.live.load(Relaxed) > 0 && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bar.finish_and_clear();
    let per_conn = match (baseline.rss_kib, idle.rss_kib) {
        (Some(b), Some(i)) if paired > 0 => {
            json!(report::round((i as f64 - b as f64) / paired as f64, 2))
        }
        _ => Value::Null,
    };
    let k = &s.k;
    Ok(json!({
        "scenario": "relay",
        "pairs": a.pairs,
        "connections_opened": k.opened.load(Relaxed),
        "connections_paired": paired,
        "connect_failures": k.failed.load(Relaxed),
        "setup_secs": report::round(setup_secs, 2),
        "step_secs": duration,
        "warmup_secs": a.warmup,
        "message_bytes": client::message_frame(u64::MAX / 2, 1_000_000, 1, &s.pad).len(),
        "rss_kib": {"baseline": baseline.rss_kib, "idle_paired": idle.rss_kib, "end": probe.rss_kib()},
        "rss_kib_per_idle_paired_connection": per_conn,
        "unexpected_closes": closes_while_running,
        "problems_seen": s.problems.lock().unwrap().clone(),
        "steps": steps,
        "slow_over_2ms_by_100ms": timelines,
        "generator_hiccups_over_2ms_by_100ms": hiccup_timelines,
    }))
}
