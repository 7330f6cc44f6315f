//! `connections`: open N WebSockets, pair them, hold them idle, and read the server's memory.
//! The sockets are held by child processes (`pairchat-bench hold`), each under the 20,000
//! open-files limit and each on its own source addresses, so N can pass one process's limit.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;
use tokio::sync::{watch, Semaphore};

use crate::client::{self, Answer, Event, In};
use crate::probe::Probe;
use crate::report;
use crate::spread::{self, PairArgs, Placement};
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
    #[command(flatten)]
    pub place: PairArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct HoldArgs {
    #[arg(long)]
    pub count: u64,
    /// single, split or same-process (see `spread::Placement`).
    #[arg(long, default_value = "single")]
    pub placement: String,
    /// The index, over all hold processes, of this process's first pair (placed pairs go
    /// round-robin over the servers by this index).
    #[arg(long, default_value_t = 0)]
    pub first_pair: u64,
}

/// The counters a hold process reports, in the order of its status line.
#[derive(Default)]
struct HoldCounters {
    opened: AtomicU64,
    failed: AtomicU64,
    paired: AtomicU64,
    closed: AtomicU64,
    live: AtomicU64,
    attempted: AtomicU64,
    /// Placed pairs: requests sent and answered (or given up on) in order so far.
    answered: AtomicU64,
    /// Placed pairs: 1 once every pair of this process was made.
    ordered_done: AtomicU64,
    /// Placed pairs, after `check`: connections that heard their partner's message, the
    /// partner on another server or on the same one.
    heard_other: AtomicU64,
    heard_same: AtomicU64,
    /// Opened per server.
    opened_each: Vec<AtomicU64>,
}

impl HoldCounters {
    fn line(&self, tag: &str) -> String {
        let mut v = vec![
            &self.opened,
            &self.failed,
            &self.paired,
            &self.closed,
            &self.live,
            &self.attempted,
            &self.answered,
            &self.ordered_done,
            &self.heard_other,
            &self.heard_same,
        ];
        v.extend(self.opened_each.iter());
        let nums: Vec<String> = v.iter().map(|x| x.load(Relaxed).to_string()).collect();
        format!("{tag} {}", nums.join(" "))
    }
}

/// A placed connection: its id over all hold processes (2p and 2p + 1 for pair p) and how ids
/// map to servers, to tell where a partner's message came from.
#[derive(Debug, Clone, Copy)]
struct Placed {
    id: u64,
    placement: Placement,
    urls: usize,
}

impl Placed {
    fn endpoint_of(&self, id: u64) -> usize {
        self.placement.endpoint(self.urls, id / 2, id % 2)
    }
}

/// One held connection: requests a partner unless that was done (`answered`: whether it was
/// paired at once), then waits for the stop signal, counting its `response` and any close.
/// A placed one, once `check` turns true, sends one message stamped with its id, and counts
/// where the partner whose message it gets sits.
async fn hold_conn(
    mut ws: client::Ws,
    k: Arc<HoldCounters>,
    mut stop: watch::Receiver<bool>,
    answered: Option<bool>,
    placed: Option<(Placed, watch::Receiver<bool>)>,
) {
    let mut paired = answered == Some(true);
    let (placed, mut check) = match placed {
        Some((p, c)) => (Some(p), Some(c)),
        None => (None, None),
    };
    let mut checked = check.is_none();
    match answered {
        Some(true) => {
            k.paired.fetch_add(1, Relaxed);
        }
        Some(false) => {}
        None => {
            if client::request(&mut ws).await.is_err() {
                k.closed.fetch_add(1, Relaxed);
                k.live.fetch_sub(1, Relaxed);
                return;
            }
        }
    }
    loop {
        tokio::select! {
            ev = client::next_event(&mut ws) => match ev {
                Event::Text(t) => match client::parse(&t) {
                    In::Response => {
                        paired = true;
                        k.paired.fetch_add(1, Relaxed);
                    }
                    In::Guest(m) => {
                        if let (Some(p), Some(st)) = (placed, client::parse_stamp(&m)) {
                            let theirs = p.endpoint_of(st.sender);
                            let n = if theirs == p.endpoint_of(p.id) { &k.heard_same } else { &k.heard_other };
                            n.fetch_add(1, Relaxed);
                        }
                    }
                    _ => {}
                },
                Event::Closed(..) | Event::Broken(_) => {
                    if !*stop.borrow() {
                        k.closed.fetch_add(1, Relaxed);
                    }
                    break;
                }
                Event::Nothing => {}
            },
            _ = stop.changed() => {
                client::close_and_drain(&mut ws, Duration::from_secs(10)).await;
                break;
            }
            r = async { check.as_mut()?.wait_for(|c| *c).await.ok().map(|_| ()) }, if !checked => {
                checked = true;
                if let (Some(()), Some(p), true) = (r, placed, paired) {
                    let _ = client::send_text(&mut ws, client::message_frame(p.id, 0, 0, "")).await;
                }
            }
        }
    }
    k.live.fetch_sub(1, Relaxed);
}

/// Child process: opens `count` connections and requests a partner on each, prints its
/// counters every 250 ms on stdout, and closes everything when its stdin ends. With placed
/// pairs (several servers) it opens them all first and makes the pairs in order (side A
/// requests and is told to wait, then side B joins it) only when a line `pair` comes on stdin,
/// so the parent lets one process pair at a time.
pub async fn hold(c: &Common, a: &HoldArgs) -> anyhow::Result<()> {
    let placement = Placement::parse(&a.placement).context("unknown --placement")?;
    let target = Arc::new(crate::target(c, c.sources)?);
    let urls = target.endpoints.len();
    let k = Arc::new(HoldCounters {
        opened_each: (0..urls).map(|_| AtomicU64::new(0)).collect(),
        ..Default::default()
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let (pair_tx, mut pair_rx) = watch::channel(false);
    let (check_tx, check_rx) = watch::channel(false);
    let stopping = Arc::new(AtomicBool::new(false));
    let sem = Arc::new(Semaphore::new(c.connect_concurrency.max(1)));
    let count = a.count;
    let first_pair = a.first_pair;
    {
        let (target, k, stopping) = (target.clone(), k.clone(), stopping.clone());
        tokio::spawn(async move {
            let mut turns = Vec::new();
            for i in 0..count {
                if stopping.load(Relaxed) {
                    break;
                }
                let Ok(permit) = sem.clone().acquire_owned().await else {
                    break;
                };
                let (target, k, stop) = (target.clone(), k.clone(), stop_rx.clone());
                let ep = if placement.ordered() {
                    placement.endpoint(urls, first_pair + i / 2, i % 2)
                } else {
                    target.next_endpoint()
                };
                // Placed pairs: the connection waits (reading) for its turn to request.
                let side = placement.ordered().then(|| {
                    let (turn, side) = client::turn();
                    turns.push(turn);
                    let placed = Placed {
                        id: 2 * first_pair + i,
                        placement,
                        urls,
                    };
                    (side, placed, check_rx.clone())
                });
                k.live.fetch_add(1, Relaxed);
                tokio::spawn(async move {
                    let ws = target.connect_to(ep, i).await;
                    k.attempted.fetch_add(1, Relaxed);
                    let mut ws = match ws {
                        Ok(ws) => ws,
                        Err(_) => {
                            k.failed.fetch_add(1, Relaxed);
                            k.live.fetch_sub(1, Relaxed);
                            return;
                        }
                    };
                    drop(permit);
                    k.opened.fetch_add(1, Relaxed);
                    k.opened_each[ep].fetch_add(1, Relaxed);
                    let Some((side, placed, check)) = side else {
                        hold_conn(ws, k, stop, None, None).await;
                        return;
                    };
                    match side.take(&mut ws, Duration::from_secs(10)).await {
                        Some(Answer::Paired) => {
                            hold_conn(ws, k, stop, Some(true), Some((placed, check))).await
                        }
                        Some(Answer::Waiting | Answer::TimedOut) => {
                            hold_conn(ws, k, stop, Some(false), Some((placed, check))).await
                        }
                        // Closed while waiting, or its pair given up: counted as closed.
                        None | Some(Answer::Failed(_)) => {
                            k.closed.fetch_add(1, Relaxed);
                            k.live.fetch_sub(1, Relaxed);
                        }
                    }
                });
            }
            if !placement.ordered() {
                return;
            }
            // Wait for our turn to pair (or for the end: the turns dropped close them all).
            while !*pair_rx.borrow() {
                if pair_rx.changed().await.is_err() {
                    return;
                }
            }
            let mut turns = turns.into_iter();
            while let (Some(a), Some(b)) = (turns.next(), turns.next()) {
                if stopping.load(Relaxed) {
                    break;
                }
                let first = a.give().await;
                k.answered.fetch_add(1, Relaxed);
                if let None | Some(Answer::Failed(_)) = first {
                    // A is gone: B is closed unused (its turn dropped).
                    k.answered.fetch_add(1, Relaxed);
                    continue;
                }
                b.give().await;
                k.answered.fetch_add(1, Relaxed);
            }
            k.ordered_done.store(1, Relaxed);
        });
    }
    let eof = Arc::new(AtomicBool::new(false));
    {
        let eof = eof.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(tokio::io::stdin()).lines();
            while let Ok(Some(l)) = lines.next_line().await {
                match l.trim() {
                    "pair" => {
                        let _ = pair_tx.send(true);
                    }
                    "check" => {
                        let _ = check_tx.send(true);
                    }
                    _ => {}
                }
            }
            eof.store(true, Relaxed);
            drop(pair_tx);
        });
    }
    while !eof.load(Relaxed) {
        println!("{}", k.line("P"));
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    stopping.store(true, Relaxed);
    let _ = stop_tx.send(true);
    let deadline = Instant::now() + Duration::from_secs(30);
    while k.live.load(Relaxed) > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!("{}", k.line("D"));
    Ok(())
}

#[derive(Default, Clone)]
struct ChildState {
    opened: u64,
    failed: u64,
    paired: u64,
    closed: u64,
    live: u64,
    attempted: u64,
    answered: u64,
    ordered_done: bool,
    heard_other: u64,
    heard_same: u64,
    opened_each: Vec<u64>,
    done: bool,
}

impl ChildState {
    /// A status line of a hold process: `P|D` and its counters (`HoldCounters::line`).
    fn parse(line: &str) -> Option<ChildState> {
        let mut f = line.split_whitespace();
        let tag = f.next()?;
        let v: Vec<u64> = f.map(|x| x.parse().ok()).collect::<Option<_>>()?;
        if v.len() < 10 {
            return None;
        }
        Some(ChildState {
            opened: v[0],
            failed: v[1],
            paired: v[2],
            closed: v[3],
            live: v[4],
            attempted: v[5],
            answered: v[6],
            ordered_done: v[7] == 1,
            heard_other: v[8],
            heard_same: v[9],
            opened_each: v[10..].to_vec(),
            done: tag == "D",
        })
    }
}

fn sum(states: &[std::sync::Mutex<ChildState>]) -> ChildState {
    let mut t = ChildState {
        done: true,
        ordered_done: true,
        ..Default::default()
    };
    for s in states {
        let s = s.lock().unwrap().clone();
        t.opened += s.opened;
        t.failed += s.failed;
        t.paired += s.paired;
        t.closed += s.closed;
        t.live += s.live;
        t.attempted += s.attempted;
        t.answered += s.answered;
        t.heard_other += s.heard_other;
        t.heard_same += s.heard_same;
        t.done &= s.done;
        t.ordered_done &= s.ordered_done;
        if t.opened_each.len() < s.opened_each.len() {
            t.opened_each.resize(s.opened_each.len(), 0);
        }
        for (a, b) in t.opened_each.iter_mut().zip(&s.opened_each) {
            *a += b;
        }
    }
    t
}

pub async fn run(c: &Common, a: &ConnArgs, probe: &Probe) -> anyhow::Result<Value> {
    let n = a.connections;
    let placement = Placement::resolve(c.url.len(), &a.place)?;
    if placement.ordered() && n % 2 == 1 {
        anyhow::bail!("placed pairs (several --url) need an even -n");
    }
    let procs = a.procs.unwrap_or(n.div_ceil(15_000)).clamp(1, n.max(1));
    // Each process's connections: (first pair, connections). Placed pairs are shared out by
    // pair, so no pair straddles two processes.
    let shares: Vec<(u64, u64)> = if placement.ordered() {
        spread::share(n / 2, procs)
            .into_iter()
            .map(|(first, pairs)| (first, 2 * pairs))
            .collect()
    } else {
        spread::share(n, procs)
    };
    let hold_secs = c.duration.unwrap_or(5.0);
    let exe = std::env::current_exe().context("cannot find this executable")?;
    let baseline = probe.mark();
    let started = Instant::now();
    let states: Arc<Vec<std::sync::Mutex<ChildState>>> =
        Arc::new((0..procs).map(|_| Default::default()).collect());
    let mut children = Vec::new();
    for (p, &(first, count)) in shares.iter().enumerate() {
        let mut cmd = Command::new(&exe);
        cmd.arg("hold");
        if c.no_visitor_tokens {
            cmd.arg("--no-visitor-tokens");
        }
        let mut child = cmd
            .args(["--count", &count.to_string()])
            .args(["--placement", placement.name()])
            .args(["--first-pair", &first.to_string()])
            .args(["--url", &c.url.join(",")])
            .args(["--sources", &c.sources.to_string()])
            .args([
                "--first-source",
                &(c.first_source + p * c.sources).to_string(),
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
                if let Some(st) = ChildState::parse(&l) {
                    *states[p].lock().unwrap() = st;
                }
            }
        });
        children.push(child);
    }

    let bar = report::progress(n, !c.no_progress);
    bar.set_message("opening");
    // Phase 1: every connection attempted (handshake done or timed out), then pairing settles.
    // Placed pairs are made by one process at a time, each told `pair` once the one before
    // is done, so no two processes' requests interleave.
    let mut open_deadline = started + Duration::from_secs(60 + n / 200);
    if placement.ordered() {
        open_deadline += Duration::from_millis(5 * n);
    }
    let mut all_attempted_at = None;
    let mut pairing = 0usize; // the process told to pair last, +1
    let mut pairing_started = None;
    let mut pairing_secs = None;
    loop {
        let t = sum(&states);
        bar.set_position(t.opened);
        bar.set_message(format!(
            "paired {} failed {} closed {}",
            t.paired, t.failed, t.closed
        ));
        let now = Instant::now();
        if placement.ordered() {
            let ready = |i: usize| {
                let st = states[i].lock().unwrap().clone();
                st.attempted >= shares[i].1
            };
            let previous_done = pairing == 0 || states[pairing - 1].lock().unwrap().ordered_done;
            if pairing < children.len() && previous_done && ready(pairing) {
                if let Some(stdin) = children[pairing].stdin.as_mut() {
                    let _ = stdin.write_all(b"pair\n").await;
                    let _ = stdin.flush().await;
                }
                pairing_started.get_or_insert(now);
                pairing += 1;
            }
            if t.ordered_done && pairing == children.len() && all_attempted_at.is_none() {
                all_attempted_at = Some(now);
                pairing_secs = pairing_started.map(|s| now.duration_since(s).as_secs_f64());
            }
        } else if t.attempted >= n && all_attempted_at.is_none() {
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
    let cluster_open = probe.cluster_cpu(&baseline, sum(&states).opened, "connection_opened");
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
    let cluster_hold = probe.cluster_cpu(&full, 1, "hold");
    let end_hold = probe.mark();
    let at_end = sum(&states);
    // Placed pairs: every paired connection sends one message (after the memory readings),
    // and its partner tells from the sender's id which server the sender is on.
    if placement.ordered() {
        bar.set_message("checking where the pairs are");
        for ch in &mut children {
            if let Some(stdin) = ch.stdin.as_mut() {
                let _ = stdin.write_all(b"check\n").await;
                let _ = stdin.flush().await;
            }
        }
        let until = Instant::now() + Duration::from_secs(10);
        let heard = |t: &ChildState| t.heard_other + t.heard_same;
        while heard(&sum(&states)) < at_end.paired && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let checked = sum(&states);
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
    let mut result = json!({
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
    });
    if placement.ordered() || probe.is_cluster() {
        let each = |m: &crate::probe::Mark| m.each.iter().map(|o| o.rss_kib).collect::<Vec<_>>();
        let per_conn_each: Vec<Value> = (0..probe.server_count())
            .map(|i| {
                let conns = at_full.opened_each.get(i).copied().unwrap_or(0);
                match (baseline.each[i].rss_kib, full.each[i].rss_kib) {
                    (Some(b), Some(f)) if conns > 0 => {
                        json!(report::round((f as f64 - b as f64) / conns as f64, 2))
                    }
                    _ => Value::Null,
                }
            })
            .collect();
        let mut m = serde_json::Map::new();
        m.insert("placement".into(), json!(placement.name()));
        if placement.ordered() {
            let heard = checked.heard_other + checked.heard_same;
            m.insert(
                "connections_by_partner".into(),
                json!({
                    "other_server": checked.heard_other,
                    "same_server": checked.heard_same,
                    "none_heard": at_end.paired.saturating_sub(heard),
                }),
            );
        }
        let mut planned = vec![0u64; probe.server_count()];
        if placement.ordered() {
            for &(first, count) in &shares {
                let each = placement.connections_each(c.url.len(), first, count / 2);
                for (p, x) in planned.iter_mut().zip(each) {
                    *p += x;
                }
            }
        } else if let Some(p) = planned.first_mut() {
            *p = n;
        }
        m.insert("planned_each".into(), json!(planned));
        m.insert("opened_each".into(), json!(at_full.opened_each));
        m.insert(
            "ordered_pairing_secs".into(),
            json!(pairing_secs.map(|x| report::round(x, 2))),
        );
        m.insert(
            "rss_kib_each".into(),
            json!({
                "baseline": each(&baseline),
                "all_paired": each(&full),
                "end_of_hold": each(&end_hold),
                "after_close": each(&after),
            }),
        );
        m.insert("rss_kib_per_connection_each".into(), json!(per_conn_each));
        for (key, v) in cluster_open {
            m.insert(format!("open_{key}"), v);
        }
        for (key, v) in cluster_hold {
            match (key.as_str(), v) {
                ("extra", Value::Object(ex)) => {
                    let secs: serde_json::Map<String, Value> = ex
                        .into_iter()
                        .map(|(name, e)| (name, e["cpu_secs"].clone()))
                        .collect();
                    m.insert("idle_extra_cpu_secs".into(), Value::Object(secs));
                }
                (k, v) if !k.contains("_per_") => {
                    m.insert(format!("idle_{key}"), v);
                }
                _ => {}
            }
        }
        report::merge(&mut result, m);
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines_round_trip() {
        let k = HoldCounters {
            opened_each: (0..3).map(|i| AtomicU64::new(10 + i)).collect(),
            ..Default::default()
        };
        k.opened.store(33, Relaxed);
        k.ordered_done.store(1, Relaxed);
        k.heard_same.store(4, Relaxed);
        let st = ChildState::parse(&k.line("D")).unwrap();
        assert_eq!((st.opened, st.done, st.ordered_done), (33, true, true));
        assert_eq!(st.opened_each, vec![10, 11, 12]);
        assert_eq!((st.heard_other, st.heard_same), (0, 4));
        assert!(ChildState::parse("P 1 2 3").is_none());
        assert!(ChildState::parse("P 1 2 3 4 5 6 7 8 9 x").is_none());
        assert!(ChildState::parse("P 1 2 3 4 5 6 7 8 9").is_none());
        let a = std::sync::Mutex::new(st.clone());
        let b = std::sync::Mutex::new(ChildState {
            opened_each: vec![1, 1],
            ..st
        });
        let t = sum(&[a, b]);
        assert_eq!(t.opened, 66);
        assert_eq!(t.opened_each, vec![11, 12, 12]);
    }
}
