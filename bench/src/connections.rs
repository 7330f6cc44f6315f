//! `connections`: open N WebSockets, pair them, hold them idle, and read the server's memory.
//! The sockets are held by child processes (`pairchat-bench hold`), each under the 20,000
//! open-files limit and each on its own source addresses, so N can pass one process's limit.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::Command;
use tokio::sync::{watch, Semaphore};

use crate::client::{self, Event, In};
use crate::probe::Probe;
use crate::report;
use crate::Common;

#[derive(Debug, Clone, clap::Args)]
pub struct ConnArgs {
    /// Connections to open.
    #[arg(short = 'n', long, default_value_t = 1000)]
    pub connections: u64,
    /// Generator processes holding them (default: one per 15,000 connections).
    #[arg(long)]
    pub procs: Option<u64>,
    /// Seconds to wait after pairing before reading the server's RSS.
    #[arg(long, default_value_t = 2.0)]
    pub settle: f64,
}

#[derive(Debug, Clone, clap::Args)]
pub struct HoldArgs {
    #[arg(long)]
    pub count: u64,
}

/// Child process: opens `count` connections, requests a partner on each, prints its counters
/// every 250 ms on stdout, and closes everything when its stdin ends.
pub async fn hold(c: &Common, a: &HoldArgs) -> anyhow::Result<()> {
    let target = Arc::new(crate::target(c, c.sources)?);
    let k: Arc<[AtomicU64; 6]> = Arc::new(Default::default()); // opened failed paired closed live attempts
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopping = Arc::new(AtomicBool::new(false));
    let sem = Arc::new(Semaphore::new(c.connect_concurrency.max(1)));
    let count = a.count;
    {
        let (target, k, stopping) = (target.clone(), k.clone(), stopping.clone());
        tokio::spawn(async move {
            for i in 0..count {
                if stopping.load(Relaxed) {
                    break;
                }
                let Ok(permit) = sem.clone().acquire_owned().await else {
                    break;
                };
                let (target, k, mut stop) = (target.clone(), k.clone(), stop_rx.clone());
                k[4].fetch_add(1, Relaxed);
                tokio::spawn(async move {
                    let ws = target.connect(i).await;
                    k[5].fetch_add(1, Relaxed);
                    let mut ws = match ws {
                        Ok(ws) => ws,
                        Err(_) => {
                            k[1].fetch_add(1, Relaxed);
                            k[4].fetch_sub(1, Relaxed);
                            return;
                        }
                    };
                    drop(permit);
                    k[0].fetch_add(1, Relaxed);
                    if client::request(&mut ws).await.is_err() {
                        k[3].fetch_add(1, Relaxed);
                        k[4].fetch_sub(1, Relaxed);
                        return;
                    }
                    loop {
                        tokio::select! {
                            ev = client::next_event(&mut ws) => match ev {
                                Event::Text(t) => {
                                    if let In::Response = client::parse(&t) {
                                        k[2].fetch_add(1, Relaxed);
                                    }
                                }
                                Event::Closed(..) | Event::Broken(_) => {
                                    if !*stop.borrow() {
                                        k[3].fetch_add(1, Relaxed);
                                    }
                                    break;
                                }
                                Event::Nothing => {}
                            },
                            _ = stop.changed() => {
                                client::close_and_drain(&mut ws, Duration::from_secs(10)).await;
                                break;
                            }
                        }
                    }
                    k[4].fetch_sub(1, Relaxed);
                });
            }
        });
    }
    let eof = Arc::new(AtomicBool::new(false));
    {
        let eof = eof.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 64];
            let mut stdin = tokio::io::stdin();
            while let Ok(n) = stdin.read(&mut buf).await {
                if n == 0 {
                    break;
                }
            }
            eof.store(true, Relaxed);
        });
    }
    let line = |tag: &str| {
        let v: Vec<u64> = k.iter().map(|x| x.load(Relaxed)).collect();
        println!(
            "{tag} {} {} {} {} {} {}",
            v[0], v[1], v[2], v[3], v[4], v[5]
        );
    };
    while !eof.load(Relaxed) {
        line("P");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    stopping.store(true, Relaxed);
    let _ = stop_tx.send(true);
    let deadline = Instant::now() + Duration::from_secs(30);
    while k[4].load(Relaxed) > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    line("D");
    Ok(())
}

#[derive(Default, Clone, Copy)]
struct ChildState {
    opened: u64,
    failed: u64,
    paired: u64,
    closed: u64,
    live: u64,
    attempted: u64,
    done: bool,
}

fn sum(states: &[std::sync::Mutex<ChildState>]) -> ChildState {
    let mut t = ChildState {
        done: true,
        ..Default::default()
    };
    for s in states {
        let s = *s.lock().unwrap();
        t.opened += s.opened;
        t.failed += s.failed;
        t.paired += s.paired;
        t.closed += s.closed;
        t.live += s.live;
        t.attempted += s.attempted;
        t.done &= s.done;
    }
    t
}

pub async fn run(c: &Common, a: &ConnArgs, probe: &Probe) -> anyhow::Result<Value> {
    let n = a.connections;
    let procs = a.procs.unwrap_or(n.div_ceil(15_000)).clamp(1, n.max(1));
    let hold_secs = c.duration.unwrap_or(5.0);
    let exe = std::env::current_exe().context("cannot find this executable")?;
    let baseline = probe.mark();
    let started = Instant::now();
    let states: Arc<Vec<std::sync::Mutex<ChildState>>> =
        Arc::new((0..procs).map(|_| Default::default()).collect());
    let mut children = Vec::new();
    for p in 0..procs {
        let count = n / procs + u64::from(p < n % procs);
        let mut cmd = Command::new(&exe);
        cmd.arg("hold");
        if c.no_visitor_tokens {
            cmd.arg("--no-visitor-tokens");
        }
        let mut child = cmd
            .args(["--count", &count.to_string()])
            .args(["--url", &c.url])
            .args(["--sources", &c.sources.to_string()])
            .args([
                "--first-source",
                &(c.first_source + p as usize * c.sources).to_string(),
            ])
            .args(["--connect-concurrency", &c.connect_concurrency.to_string()])
            .args(["--threads", "1"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("cannot start a hold process")?;
        let stdout = child.stdout.take().context("no stdout")?;
        let states = states.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(l)) = lines.next_line().await {
                let f: Vec<&str> = l.split_whitespace().collect();
                let v: Vec<u64> = f[1..].iter().filter_map(|x| x.parse().ok()).collect();
                if v.len() == 6 {
                    let mut s = states[p as usize].lock().unwrap();
                    *s = ChildState {
                        opened: v[0],
                        failed: v[1],
                        paired: v[2],
                        closed: v[3],
                        live: v[4],
                        attempted: v[5],
                        done: f[0] == "D",
                    };
                }
            }
        });
        children.push(child);
    }

    let bar = report::progress(n, !c.no_progress);
    bar.set_message("opening");
    // Phase 1: every connection attempted (handshake done or timed out), then pairing settles.
    let open_deadline = started + Duration::from_secs(60 + n / 200);
    let mut all_attempted_at = None;
    loop {
        let t = sum(&states);
        bar.set_position(t.opened);
        bar.set_message(format!(
            "paired {} failed {} closed {}",
            t.paired, t.failed, t.closed
        ));
        let now = Instant::now();
        if t.attempted >= n && all_attempted_at.is_none() {
            all_attempted_at = Some(now);
        }
        let pairing_done = t.paired + 1 >= t.opened.saturating_sub(t.closed);
        if let Some(at) = all_attempted_at {
            if pairing_done || now > at + Duration::from_secs(15) {
                break;
            }
        }
        if now > open_deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let open_secs = started.elapsed().as_secs_f64();
    let cpu_open = probe.cpu_since(&baseline);
    tokio::time::sleep(Duration::from_secs_f64(a.settle)).await;
    let full = probe.mark();
    let at_full = sum(&states);
    bar.set_message(format!("holding {hold_secs}s"));
    // Phase 2: hold them idle (heartbeats only) and watch for drops.
    let hold_start = Instant::now();
    let mut peak_rss = full.rss_kib;
    while hold_start.elapsed().as_secs_f64() < hold_secs {
        tokio::time::sleep(Duration::from_millis(250)).await;
        peak_rss = peak_rss.max(probe.rss_kib());
    }
    let cpu_hold = probe.cpu_since(&full);
    let end_hold = probe.mark();
    let at_end = sum(&states);
    // Phase 3: close everything and see the memory come back.
    bar.set_message("closing");
    for ch in &mut children {
        drop(ch.stdin.take());
    }
    for ch in &mut children {
        if tokio::time::timeout(Duration::from_secs(60), ch.wait())
            .await
            .is_err()
        {
            let _ = ch.kill().await;
        }
    }
    bar.finish_and_clear();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = probe.mark();

    let opened = at_full.opened;
    let per_conn = match (baseline.rss_kib, full.rss_kib) {
        (Some(b), Some(f)) if opened > 0 => {
            json!(report::round((f as f64 - b as f64) / opened as f64, 2))
        }
        _ => Value::Null,
    };
    let (us_per_conn, _) = report::cpu_per(cpu_open, opened);
    let (_, secs_per_1k_pairings) = report::cpu_per(cpu_open, at_full.paired / 2);
    Ok(json!({
        "scenario": "connections",
        "requested": n,
        "generator_processes": procs,
        "source_addresses": procs as usize * c.sources,
        "opened": opened,
        "handshake_failures": at_full.failed,
        "paired": at_full.paired,
        "unpaired": opened.saturating_sub(at_full.paired),
        "open_and_pair_secs": report::round(open_secs, 2),
        "server_cpu_us_per_connection_opened": us_per_conn,
        "server_cpu_secs_per_1000_pairings": secs_per_1k_pairings,
        "hold_secs": hold_secs,
        "server_cpu_secs_while_idle": cpu_hold.map(|x| report::round(x, 3)),
        "dropped_while_held": at_end.closed,
        "still_open_at_end_of_hold": at_end.live,
        "rss_kib": {
            "baseline": baseline.rss_kib,
            "all_paired": full.rss_kib,
            "end_of_hold": end_hold.rss_kib,
            "peak": peak_rss,
            "after_close": after.rss_kib,
        },
        "rss_kib_per_connection": per_conn,
        "server_threads": probe.threads(),
    }))
}
