//! `pairing`: clients arrive at a set rate (or as fast as `--concurrency` loops allow), each
//! opens a WebSocket, requests a partner, waits for `response`, and leaves. With `--interests
//! N` every request carries N tags drawn from a vocabulary of `--vocabulary` (the server then
//! prefers a partner who shares one).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::{json, Value};

use crate::client::{self, Event, In, Target};
use crate::probe::Probe;
use crate::report;
use crate::Common;

#[derive(Debug, Clone, clap::Args)]
pub struct PairingArgs {
    /// Arrivals per second; 0 = as fast as possible with `--concurrency` clients in a loop.
    #[arg(long, default_value_t = 1000.0)]
    pub rate: f64,
    /// Client loops for `--rate 0`.
    #[arg(long, default_value_t = 64)]
    pub concurrency: u64,
    /// Seconds a client waits for a partner before giving up.
    #[arg(long, default_value_t = 10.0)]
    pub pair_timeout: f64,
    /// Interests each request carries (0: a plain request), drawn at random without repeats
    /// from `--vocabulary` tags.
    #[arg(long, default_value_t = 0)]
    pub interests: usize,
    /// How many different tags the interests are drawn from.
    #[arg(long, default_value_t = 50)]
    pub vocabulary: usize,
}

/// A request frame: plain, or with `n` distinct tags out of `vocabulary` (`tag0`, `tag1`, …).
pub fn request_frame(n: usize, vocabulary: usize) -> String {
    if n == 0 || vocabulary == 0 {
        return client::REQUEST.to_owned();
    }
    let mut tags: Vec<usize> = Vec::with_capacity(n);
    while tags.len() < n.min(vocabulary) {
        let t = fastrand::usize(..vocabulary);
        if !tags.contains(&t) {
            tags.push(t);
        }
    }
    let tags: Vec<String> = tags.iter().map(|t| format!("tag{t}")).collect();
    json!({"type": "request", "interests": tags}).to_string()
}

#[derive(Default)]
struct Counters {
    arrivals: AtomicU64,
    connect_failures: AtomicU64,
    paired: AtomicU64,
    /// Of those paired, how many were told a common interest.
    paired_on_common: AtomicU64,
    gave_up: AtomicU64,
    error_frames: AtomicU64,
    unexpected_closes: AtomicU64,
    in_flight: AtomicU64,
}

struct Shared {
    target: Target,
    k: Counters,
    ttp: Mutex<Histogram<u64>>,
    handshake: Mutex<Histogram<u64>>,
    pair_timeout: Duration,
    /// `(interests, vocabulary)` of every request.
    interests: (usize, usize),
    /// Clients still waiting for a partner give up at this moment (the run is over).
    hard_stop: Mutex<Option<Instant>>,
    errors: Mutex<Vec<String>>,
}

/// One arrival: connect, request, wait for the partner, leave.
async fn arrival(s: &Shared) {
    let visitor = s.k.arrivals.fetch_add(1, Relaxed);
    let t0 = Instant::now();
    let mut ws = match s.target.connect(visitor).await {
        Ok(ws) => ws,
        Err(e) => {
            s.k.connect_failures.fetch_add(1, Relaxed);
            note(s, format!("connect: {e:#}"));
            return;
        }
    };
    report::record(&mut s.handshake.lock().unwrap(), t0.elapsed());
    let t_req = Instant::now();
    let request = request_frame(s.interests.0, s.interests.1);
    if client::send_text(&mut ws, request).await.is_err() {
        s.k.unexpected_closes.fetch_add(1, Relaxed);
        return;
    }
    let mut wait = s.pair_timeout;
    if let Some(stop) = *s.hard_stop.lock().unwrap() {
        wait = wait.min(stop.saturating_duration_since(Instant::now()));
    }
    let waited = tokio::time::timeout(wait, async {
        loop {
            match client::next_event(&mut ws).await {
                Event::Text(t) => match client::parse(&t) {
                    In::Response => {
                        if t.contains(r#""common":[""#) {
                            s.k.paired_on_common.fetch_add(1, Relaxed);
                        }
                        return true;
                    }
                    In::Error(code) => {
                        s.k.error_frames.fetch_add(1, Relaxed);
                        note(s, format!("error frame {code}"));
                    }
                    _ => {}
                },
                Event::Closed(code, reason) => {
                    s.k.unexpected_closes.fetch_add(1, Relaxed);
                    note(s, format!("closed before pairing: {code} {reason}"));
                    return false;
                }
                Event::Broken(e) => {
                    s.k.unexpected_closes.fetch_add(1, Relaxed);
                    note(s, format!("broken before pairing: {e}"));
                    return false;
                }
                Event::Nothing => {}
            }
        }
    })
    .await;
    match waited {
        Ok(true) => {
            report::record(&mut s.ttp.lock().unwrap(), t_req.elapsed());
            s.k.paired.fetch_add(1, Relaxed);
        }
        Ok(false) => return,
        Err(_) => {
            s.k.gave_up.fetch_add(1, Relaxed);
        }
    }
    client::close_and_drain(&mut ws, Duration::from_secs(5)).await;
}

fn note(s: &Shared, e: String) {
    let mut errors = s.errors.lock().unwrap();
    if errors.len() < 10 && !errors.contains(&e) {
        errors.push(e);
    }
}

pub async fn run(c: &Common, a: &PairingArgs, probe: &Probe) -> anyhow::Result<Value> {
    let duration = Duration::from_secs_f64(c.duration.unwrap_or(10.0));
    let s = Arc::new(Shared {
        target: crate::target(c, c.sources)?,
        k: Counters::default(),
        ttp: Mutex::new(report::histogram()),
        handshake: Mutex::new(report::histogram()),
        pair_timeout: Duration::from_secs_f64(a.pair_timeout),
        interests: (a.interests, a.vocabulary),
        hard_stop: Mutex::new(None),
        errors: Mutex::default(),
    });
    let bar = report::progress(duration.as_millis() as u64, !c.no_progress);
    let mark = probe.mark();
    let start = Instant::now();
    let deadline = start + duration;
    *s.hard_stop.lock().unwrap() = Some(deadline + Duration::from_secs(2));
    let mut loops = Vec::new();
    if a.rate > 0.0 {
        let s2 = s.clone();
        let rate = a.rate;
        loops.push(tokio::spawn(async move {
            let mut launched = 0u64;
            while Instant::now() < deadline {
                let due = (start.elapsed().as_secs_f64() * rate) as u64;
                while launched < due {
                    launched += 1;
                    let s3 = s2.clone();
                    s3.k.in_flight.fetch_add(1, Relaxed);
                    tokio::spawn(async move {
                        arrival(&s3).await;
                        s3.k.in_flight.fetch_sub(1, Relaxed);
                    });
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }));
    } else {
        for _ in 0..a.concurrency.max(2) {
            let s2 = s.clone();
            loops.push(tokio::spawn(async move {
                while Instant::now() < deadline {
                    s2.k.in_flight.fetch_add(1, Relaxed);
                    arrival(&s2).await;
                    s2.k.in_flight.fetch_sub(1, Relaxed);
                }
            }));
        }
    }
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        bar.set_position(start.elapsed().as_millis() as u64);
        bar.set_message(format!(
            "paired {} arrivals {}",
            s.k.paired.load(Relaxed),
            s.k.arrivals.load(Relaxed)
        ));
    }
    // Pairings counted over the timed window; CPU likewise.
    let window = start.elapsed().as_secs_f64();
    let paired_in_window = s.k.paired.load(Relaxed);
    let cpu = probe.cpu_since(&mark);
    let cluster = probe.cluster_cpu(&mark, paired_in_window / 2, "pairing");
    // Let the clients still waiting finish (the last one may wait for nobody: it times out).
    let drain_deadline = Instant::now() + Duration::from_secs(10);
    while s.k.in_flight.load(Relaxed) > 0 && Instant::now() < drain_deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for l in loops {
        l.abort();
    }
    bar.finish_and_clear();
    let pairings = paired_in_window / 2;
    let (us_per, secs_per_1k) = report::cpu_per(cpu, pairings);
    let k = &s.k;
    let mut result = json!({
        "scenario": "pairing",
        "mode": if a.rate > 0.0 { format!("{} arrivals/s", a.rate) } else { format!("flat out, {} client loops", a.concurrency.max(2)) },
        "duration_secs": report::round(window, 2),
        "arrivals": k.arrivals.load(Relaxed),
        "pairings": pairings,
        "pairings_per_sec": report::round(pairings as f64 / window, 1),
        "interests": if a.interests > 0 { json!({"per_request": a.interests, "vocabulary": a.vocabulary}) } else { Value::Null },
        "paired_on_a_common_interest": k.paired_on_common.load(Relaxed),
        "time_to_pair": report::latency(&s.ttp.lock().unwrap()),
        "handshake": report::latency(&s.handshake.lock().unwrap()),
        "server_cpu_secs": cpu.map(|x| report::round(x, 3)),
        "server_cpu_us_per_pairing": us_per,
        "server_cpu_secs_per_1000_pairings": secs_per_1k,
        "connect_failures": k.connect_failures.load(Relaxed),
        "gave_up_waiting": k.gave_up.load(Relaxed),
        "error_frames": k.error_frames.load(Relaxed),
        "unexpected_closes": k.unexpected_closes.load(Relaxed),
        "still_in_flight_at_exit": k.in_flight.load(Relaxed),
        "problems_seen": s.errors.lock().unwrap().clone(),
        "server_rss_kib_after": probe.rss_kib(),
    });
    report::merge(&mut result, cluster);
    if probe.is_cluster() {
        report::merge_one(
            &mut result,
            "server_rss_kib_after_each",
            json!(probe.rss_each()),
        );
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_carries_distinct_tags_of_the_vocabulary() {
        assert_eq!(request_frame(0, 50), client::REQUEST);
        for _ in 0..100 {
            let frame: Value = serde_json::from_str(&request_frame(3, 50)).unwrap();
            let tags: Vec<&str> = frame["interests"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_str().unwrap())
                .collect();
            assert_eq!(tags.len(), 3);
            assert!(tags[0] != tags[1] && tags[1] != tags[2] && tags[0] != tags[2]);
            assert!(tags.iter().all(|t| t[3..].parse::<usize>().unwrap() < 50));
        }
        // Never more than the vocabulary holds.
        let frame: Value = serde_json::from_str(&request_frame(5, 2)).unwrap();
        assert_eq!(frame["interests"].as_array().unwrap().len(), 2);
    }
}
