//! `relay`: P pairs chat at a set total rate (or flat out); every message carries its send
//! time, and the partner's copy gives the latency (send → partner receives).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::{json, Value};
use tokio::sync::{watch, Semaphore};

use crate::client::{self, Answer, Event, In, Target, Ws};
use crate::hiccup::Timeline;
use crate::probe::Probe;
use crate::report;
use crate::spread::{PairArgs, Placement};
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
    #[command(flatten)]
    pub place: PairArgs,
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
    /// Placed pairs: connections closed unused because the other side failed to open, or
    /// whose request failed.
    abandoned: AtomicU64,
    /// Placed pairs: side A paired at once (someone else was waiting), side B told to wait.
    first_side_paired: AtomicU64,
    second_side_waited: AtomicU64,
    unanswered: AtomicU64,
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
    /// The sender id of the first message each connection got from its partner (u64::MAX: none
    /// yet), to tell which pairs span two servers.
    partner: Vec<AtomicU64>,
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

/// How a connection task starts: it sends its request itself, or the request was sent and
/// answered (paired or not) already.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Start {
    Request,
    Requested { paired: bool },
}

async fn conn_task(
    s: Arc<Shared>,
    id: u64,
    mut rx: watch::Receiver<Step>,
    mut ws: Ws,
    start: Start,
) {
    let mut paired = start == Start::Requested { paired: true };
    if paired {
        s.k.paired.fetch_add(1, Relaxed);
    }
    let mut step = *rx.borrow();
    let mut next = tokio::time::Instant::now();
    let mut outstanding = 0u64;
    let mut seq = 0u64;
    if start == Start::Request && client::request(&mut ws).await.is_err() {
        s.k.closes.fetch_add(1, Relaxed);
        s.k.live.fetch_sub(1, Relaxed);
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
                            if let Some(p) = s.partner.get(id as usize) {
                                let _ = p.compare_exchange(u64::MAX, st.sender, Relaxed, Relaxed);
                            }
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

/// Opens every connection (to the server `endpoint_of` gives it) and makes the pairs one at
/// a time: side A requests and is told to wait, then side B requests and, nobody else
/// waiting, joins A. So the pairs sit where the placement puts them. Each connection's task
/// reads its socket while it waits for its turn, and carries on as `conn_task` once answered.
async fn place_pairs(
    s: &Arc<Shared>,
    rx: &watch::Receiver<Step>,
    sem: &Arc<Semaphore>,
    endpoint_of: &[usize],
    bar: &indicatif::ProgressBar,
) -> anyhow::Result<()> {
    let mut turns = Vec::with_capacity(endpoint_of.len());
    for (id, &ep) in endpoint_of.iter().enumerate() {
        let permit = sem.clone().acquire_owned().await?;
        let (turn, side) = client::turn();
        turns.push(turn);
        let (sc, rx) = (s.clone(), rx.clone());
        tokio::spawn(async move {
            let s = sc;
            let ws = s.target.connect_to(ep, id as u64).await;
            drop(permit);
            let mut ws = match ws {
                Ok(ws) => ws,
                Err(e) => {
                    s.k.failed.fetch_add(1, Relaxed);
                    note(&s, format!("connect: {e:#}"));
                    return;
                }
            };
            s.k.opened.fetch_add(1, Relaxed);
            match side.take(&mut ws, Duration::from_secs(10)).await {
                None => {
                    s.k.abandoned.fetch_add(1, Relaxed);
                }
                Some(Answer::Failed(e)) => {
                    s.k.abandoned.fetch_add(1, Relaxed);
                    note(&s, e);
                }
                Some(answer) => {
                    s.k.live.fetch_add(1, Relaxed);
                    let start = Start::Requested {
                        paired: answer == Answer::Paired,
                    };
                    conn_task(s, id as u64, rx, ws, start).await;
                }
            }
        });
        bar.set_position(s.k.opened.load(Relaxed));
    }
    bar.set_message("pairing in order");
    let mut turns = turns.into_iter();
    let mut pair = 0u64;
    while let (Some(a), Some(b)) = (turns.next(), turns.next()) {
        pair += 1;
        match a.give().await {
            // A is gone: B is closed unused (its turn dropped).
            None | Some(Answer::Failed(_)) => continue,
            Some(Answer::Paired) => {
                s.k.first_side_paired.fetch_add(1, Relaxed);
            }
            Some(Answer::TimedOut) => {
                s.k.unanswered.fetch_add(1, Relaxed);
                note(s, "a request not answered in 10 s".into());
            }
            Some(Answer::Waiting) => {}
        }
        match b.give().await {
            Some(Answer::Waiting) => {
                s.k.second_side_waited.fetch_add(1, Relaxed);
            }
            Some(Answer::TimedOut) => {
                s.k.unanswered.fetch_add(1, Relaxed);
                note(s, "a request not answered in 10 s".into());
            }
            _ => {}
        }
        bar.set_message(format!("pairing in order: {pair}"));
    }
    Ok(())
}

pub async fn run(c: &Common, a: &RelayArgs, probe: &Probe) -> anyhow::Result<Value> {
    let duration = c.duration.unwrap_or(10.0);
    let n = a.pairs * 2;
    let placement = Placement::resolve(c.url.len(), &a.place)?;
    let urls = c.url.len();
    // Connection id 2p is side A of pair p, 2p + 1 its side B.
    let endpoint_of: Vec<usize> = (0..n)
        .map(|id| placement.endpoint(urls, id / 2, id % 2))
        .collect();
    let s = Arc::new(Shared {
        target: crate::target(c, c.sources)?,
        k: Counters::default(),
        hist: Mutex::new((report::histogram(), Timeline::default())),
        window: a.window.max(1),
        pad: "x".repeat(a.pad),
        problems: Mutex::default(),
        partner: (0..n).map(|_| AtomicU64::new(u64::MAX)).collect(),
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
    if placement.ordered() {
        place_pairs(&s, &rx, &sem, &endpoint_of, &bar).await?;
    } else {
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
                        conn_task(s, id, rx, ws, Start::Request).await;
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
    }
    let wait_until = Instant::now() + Duration::from_secs(30);
    let settled = |k: &Counters| {
        k.paired.load(Relaxed) + k.failed.load(Relaxed) + k.abandoned.load(Relaxed) + 1 >= n
    };
    while !settled(&s.k) && Instant::now() < wait_until {
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
        let cluster = probe.cluster_cpu(&mark, delivered, "msg");
        let mut step = json!({
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
        });
        report::merge(&mut step, cluster);
        steps.push(step);
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
    let mut result = json!({
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
    });
    if placement.ordered() || probe.is_cluster() {
        report::merge(
            &mut result,
            placed_report(&s, placement, &endpoint_of, &baseline, &idle),
        );
    }
    Ok(result)
}

/// Where the pairs ended up, from the first message each connection got from its partner, and
/// each server's memory.
fn placed_report(
    s: &Shared,
    placement: Placement,
    endpoint_of: &[usize],
    baseline: &crate::probe::Mark,
    idle: &crate::probe::Mark,
) -> serde_json::Map<String, Value> {
    let (mut cross, mut same, mut unknown) = (0u64, 0u64, 0u64);
    for (id, p) in s.partner.iter().enumerate() {
        match endpoint_of.get(p.load(Relaxed) as usize) {
            Some(&theirs) if theirs != endpoint_of[id] => cross += 1,
            Some(_) => same += 1,
            None => unknown += 1,
        }
    }
    let servers = baseline.each.len();
    let mut conns = vec![0u64; servers];
    for &ep in endpoint_of {
        if let Some(c) = conns.get_mut(ep) {
            *c += 1;
        }
    }
    let rss = |m: &crate::probe::Mark| m.each.iter().map(|o| o.rss_kib).collect::<Vec<_>>();
    let per_conn: Vec<Value> = (0..servers)
        .map(|i| match (baseline.each[i].rss_kib, idle.each[i].rss_kib) {
            (Some(b), Some(x)) if conns[i] > 0 => {
                json!(report::round((x as f64 - b as f64) / conns[i] as f64, 2))
            }
            _ => Value::Null,
        })
        .collect();
    let k = &s.k;
    let mut m = serde_json::Map::new();
    m.insert("placement".into(), json!(placement.name()));
    // Per connection: where the partner it heard from sits (none: it got no message).
    m.insert(
        "connections_by_partner".into(),
        json!({"other_server": cross, "same_server": same, "none_heard": unknown}),
    );
    m.insert(
        "ordered_pairing".into(),
        json!({
            "first_side_paired_at_once": k.first_side_paired.load(Relaxed),
            "second_side_told_to_wait": k.second_side_waited.load(Relaxed),
            "requests_unanswered": k.unanswered.load(Relaxed),
            "connections_abandoned": k.abandoned.load(Relaxed),
        }),
    );
    m.insert("connections_each".into(), json!(conns));
    m.insert(
        "rss_kib_each".into(),
        json!({"baseline": rss(baseline), "idle_paired": rss(idle)}),
    );
    m.insert(
        "rss_kib_per_idle_paired_connection_each".into(),
        json!(per_conn),
    );
    m
}
