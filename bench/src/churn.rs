//! `churn` and `soak`: clients pair, exchange a few messages, leave and start over, in a loop.
//! Every message carries `sender:seq:time:quota`, so at the end each conversation can be
//! checked from both ends: what a sender got a receipt for must have reached its partner,
//! exactly once and in order, unless the partner itself was the one leaving at that moment.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::{json, Value};

use crate::client::{self, Event, In, Target, Ws};
use crate::probe::Probe;
use crate::report;
use crate::Common;

#[derive(Debug, Clone, clap::Args)]
pub struct ChurnArgs {
    /// Concurrent clients (default: churn 200, soak 2000).
    #[arg(long)]
    pub clients: Option<u64>,
    /// Fewest messages a client sends per conversation (default: churn 3, soak 1).
    #[arg(long)]
    pub min_messages: Option<u64>,
    /// Most messages a client sends per conversation (default: churn 3, soak 10).
    #[arg(long)]
    pub max_messages: Option<u64>,
    /// Longest pause before each message, in ms, drawn uniformly (default: churn 0, soak 100).
    #[arg(long)]
    pub think_ms: Option<u64>,
    /// Share of clients that leave early, without waiting for their partner's last messages
    /// (default: churn 0, soak 0.1).
    #[arg(long)]
    pub abrupt: Option<f64>,
    /// A paired client that hears nothing for this many seconds counts as stalled.
    #[arg(long, default_value_t = 10.0)]
    pub stall_secs: f64,
    /// Soak: CI mode (200 clients, 3 s, unless given).
    #[arg(long)]
    pub short: bool,
    /// Soak: RSS after everyone left must be within baseline + max(this many MiB, ...
    #[arg(long, default_value_t = 16.0)]
    pub rss_tolerance_mib: f64,
    /// ... this percentage of the growth from baseline to peak).
    #[arg(long, default_value_t = 10.0)]
    pub rss_tolerance_pct: f64,
}

struct Settings {
    clients: u64,
    min_messages: u64,
    max_messages: u64,
    think_ms: u64,
    abrupt: f64,
    stall: Duration,
    duration: Duration,
}

/// One end of one conversation.
#[derive(Debug, Default, Clone)]
struct Rec {
    id: u64,
    paired: bool,
    partner: Option<u64>,
    partner_quota: Option<u64>,
    receipts: u64,
    received: u64,
    left_by_me: bool,
    stalled: bool,
    seq_errors: u64,
    self_paired: bool,
    mixed_senders: bool,
    duplicate_responses: u64,
}

#[derive(Default)]
struct Counters {
    conversations: AtomicU64,
    responses: AtomicU64,
    delivered: AtomicU64,
    sent: AtomicU64,
    connect_failures: AtomicU64,
    gave_up_unpaired: AtomicU64,
    error_frames: AtomicU64,
    active: AtomicU64,
}

struct Shared {
    target: Target,
    cfg: Settings,
    k: Counters,
    next_id: AtomicU64,
    deadline: Instant,
    recs: Mutex<Vec<Rec>>,
    ttp: Mutex<Histogram<u64>>,
    closes: Mutex<BTreeMap<String, u64>>,
    errors: Mutex<BTreeMap<String, u64>>,
}

fn bump(map: &Mutex<BTreeMap<String, u64>>, key: String) {
    *map.lock().unwrap().entry(key).or_default() += 1;
}

impl Rec {
    /// Takes in one server frame; returns true for the sender's own receipt.
    fn on_text(&mut self, s: &Shared, text: &str) -> bool {
        match client::parse(text) {
            In::Me(m) => {
                match client::parse_stamp(&m) {
                    Some(st) if st.sender == self.id && st.seq == self.receipts => {}
                    _ => self.seq_errors += 1,
                }
                self.receipts += 1;
                return true;
            }
            In::Guest(m) => {
                s.k.delivered.fetch_add(1, Relaxed);
                match client::parse_stamp(&m) {
                    Some(st) => {
                        if st.sender == self.id {
                            self.self_paired = true;
                        }
                        match self.partner {
                            None => self.partner = Some(st.sender),
                            Some(p) if p != st.sender => self.mixed_senders = true,
                            _ => {}
                        }
                        if st.seq != self.received {
                            self.seq_errors += 1;
                        }
                        self.partner_quota = Some(st.tag);
                    }
                    None => self.seq_errors += 1,
                }
                self.received += 1;
            }
            In::Response => {
                if self.paired {
                    self.duplicate_responses += 1;
                }
                self.paired = true;
            }
            In::Error(code) => {
                s.k.error_frames.fetch_add(1, Relaxed);
                bump(&s.errors, code.into_owned());
            }
            In::Waiting | In::Other => {}
        }
        false
    }
}

async fn leave(s: &Shared, rec: &mut Rec, ws: &mut Ws) {
    rec.left_by_me = true;
    for t in client::close_and_drain(ws, Duration::from_secs(5)).await {
        rec.on_text(s, &t);
    }
}

fn think(s: &Shared) -> Duration {
    Duration::from_millis(fastrand::u64(0..=s.cfg.think_ms))
}

/// One client's conversation from connect to close.
async fn conversation(s: &Shared, slot: u64) {
    let id = s.next_id.fetch_add(1, Relaxed) + 1;
    let quota = fastrand::u64(s.cfg.min_messages..=s.cfg.max_messages);
    let abrupt = fastrand::f64() < s.cfg.abrupt;
    let leave_after = if abrupt {
        fastrand::u64(1..=quota)
    } else {
        quota
    };
    let mut ws = match s.target.connect(slot).await {
        Ok(ws) => ws,
        Err(e) => {
            s.k.connect_failures.fetch_add(1, Relaxed);
            bump(&s.errors, format!("connect: {e:#}"));
            tokio::time::sleep(Duration::from_millis(50)).await;
            return;
        }
    };
    let mut rec = Rec {
        id,
        ..Rec::default()
    };
    let t_req = Instant::now();
    if client::request(&mut ws).await.is_err() {
        bump(&s.closes, "send failed before pairing".into());
        return;
    }
    let give_up = tokio::time::Instant::from_std(s.deadline + Duration::from_secs(2));
    // Wait for a partner.
    while !rec.paired {
        tokio::select! {
            ev = client::next_event(&mut ws) => match ev {
                Event::Text(t) => { rec.on_text(s, &t); }
                Event::Closed(code, reason) => {
                    bump(&s.closes, format!("{code} {reason} (before pairing)"));
                    s.recs.lock().unwrap().push(rec);
                    return;
                }
                Event::Broken(e) => {
                    bump(&s.closes, format!("broken before pairing: {e}"));
                    s.recs.lock().unwrap().push(rec);
                    return;
                }
                Event::Nothing => {}
            },
            _ = tokio::time::sleep_until(give_up) => {
                s.k.gave_up_unpaired.fetch_add(1, Relaxed);
                leave(s, &mut rec, &mut ws).await;
                s.recs.lock().unwrap().push(rec);
                return;
            }
        }
    }
    report::record(&mut s.ttp.lock().unwrap(), t_req.elapsed());
    s.k.responses.fetch_add(1, Relaxed);
    // Chat: one message in flight at a time, a think pause before each.
    let mut sent = 0u64;
    let mut next_send = tokio::time::Instant::now();
    let mut heard = tokio::time::Instant::now();
    loop {
        let done = rec.receipts >= leave_after
            && if abrupt {
                rec.received >= 1
            } else {
                rec.partner_quota.is_some_and(|q| rec.received >= q)
            };
        if done {
            leave(s, &mut rec, &mut ws).await;
            break;
        }
        let can_send = sent < leave_after && sent == rec.receipts;
        tokio::select! {
            ev = client::next_event(&mut ws) => {
                heard = tokio::time::Instant::now();
                match ev {
                    Event::Text(t) => {
                        if rec.on_text(s, &t) {
                            next_send = tokio::time::Instant::now() + think(s);
                        }
                    }
                    Event::Closed(code, reason) => {
                        bump(&s.closes, format!("{code} {reason}"));
                        break;
                    }
                    Event::Broken(e) => {
                        bump(&s.closes, format!("broken: {e}"));
                        break;
                    }
                    Event::Nothing => {}
                }
            }
            _ = tokio::time::sleep_until(next_send), if can_send => {
                let frame = client::message_frame(id, sent, quota, "");
                sent += 1;
                s.k.sent.fetch_add(1, Relaxed);
                if client::send_text(&mut ws, frame).await.is_err() {
                    bump(&s.closes, "send failed".into());
                    break;
                }
            }
            _ = tokio::time::sleep_until(heard + s.cfg.stall) => {
                rec.stalled = true;
                leave(s, &mut rec, &mut ws).await;
                break;
            }
        }
    }
    s.k.conversations.fetch_add(1, Relaxed);
    s.recs.lock().unwrap().push(rec);
}

/// What the records of both ends say; each entry is (check, passed, detail).
fn verify(recs: &[Rec]) -> (Vec<Value>, bool, Value) {
    let by_id: HashMap<u64, &Rec> = recs.iter().map(|r| (r.id, r)).collect();
    let mut heard: HashSet<u64> = HashSet::new();
    let (mut lost, mut excused, mut unreceipted, mut not_mutual, mut unknown) = (0, 0, 0, 0, 0);
    for r in recs {
        let Some(p) = r.partner else { continue };
        heard.insert(p);
        let Some(pr) = by_id.get(&p) else {
            unknown += 1;
            continue;
        };
        if pr.partner.is_some_and(|q| q != r.id) {
            not_mutual += 1;
        }
        if r.received < pr.receipts {
            if r.left_by_me {
                excused += pr.receipts - r.received;
            } else {
                lost += pr.receipts - r.received;
            }
        } else if r.received > pr.receipts {
            unreceipted += r.received - pr.receipts;
        }
    }
    let unheard: u64 = recs
        .iter()
        .filter(|r| r.paired && !heard.contains(&r.id))
        .map(|r| r.receipts)
        .sum();
    let self_paired = recs.iter().filter(|r| r.self_paired).count();
    let mixed = recs.iter().filter(|r| r.mixed_senders).count();
    let seq_errors: u64 = recs.iter().map(|r| r.seq_errors).sum();
    let stalled = recs.iter().filter(|r| r.stalled).count();
    let dup_resp: u64 = recs.iter().map(|r| r.duplicate_responses).sum();
    let receipted: u64 = recs.iter().map(|r| r.receipts).sum();
    let mut checks = Vec::new();
    let mut ok = true;
    let mut check = |name: &str, pass: bool, detail: String| {
        ok &= pass;
        checks.push(json!({"check": name, "ok": pass, "detail": detail}));
    };
    check(
        "every receipted message reached the partner",
        lost + unheard == 0,
        format!("{lost} lost, {unheard} from senders no partner heard, of {receipted} receipted"),
    );
    check(
        "exactly once and in order",
        seq_errors == 0,
        format!("{seq_errors} out-of-order, duplicate or missing sequence numbers"),
    );
    check(
        "nobody paired with themselves",
        self_paired == 0,
        format!("{self_paired} self-pairings"),
    );
    check(
        "one partner per conversation, and mutual",
        mixed + not_mutual + unknown == 0 && dup_resp == 0,
        format!("{mixed} with two senders, {not_mutual} not mutual, {unknown} unknown partner ids, {dup_resp} repeated responses"),
    );
    check(
        "no conversation stalled",
        stalled == 0,
        format!("{stalled} stalled"),
    );
    let notes = json!({
        "in_flight_when_receiver_left": excused,
        "delivered_without_receipt": unreceipted,
    });
    (checks, ok, notes)
}

pub async fn run(c: &Common, a: &ChurnArgs, probe: &Probe, soak: bool) -> anyhow::Result<Value> {
    let short = soak && a.short;
    let cfg = Settings {
        clients: a.clients.unwrap_or(if short {
            200
        } else if soak {
            2000
        } else {
            200
        }),
        min_messages: a.min_messages.unwrap_or(if soak { 1 } else { 3 }).max(1),
        max_messages: a.max_messages.unwrap_or(if soak { 10 } else { 3 }),
        think_ms: a.think_ms.unwrap_or(if soak { 100 } else { 0 }),
        abrupt: a.abrupt.unwrap_or(if soak { 0.1 } else { 0.0 }),
        stall: Duration::from_secs_f64(a.stall_secs),
        duration: Duration::from_secs_f64(c.duration.unwrap_or(if short {
            3.0
        } else if soak {
            60.0
        } else {
            10.0
        })),
    };
    let max_messages = cfg.max_messages.max(cfg.min_messages);
    let cfg = Settings {
        max_messages,
        ..cfg
    };
    let baseline = probe.mark();
    let start = Instant::now();
    let s = Arc::new(Shared {
        target: crate::target(c, c.sources)?,
        k: Counters::default(),
        next_id: AtomicU64::new(0),
        deadline: start + cfg.duration,
        recs: Mutex::default(),
        ttp: Mutex::new(report::histogram()),
        closes: Mutex::default(),
        errors: Mutex::default(),
        cfg,
    });
    let bar = report::progress(s.cfg.duration.as_millis() as u64, !c.no_progress);
    // Clients start spread over the first second (or the run, if shorter).
    let spread = s.cfg.duration.min(Duration::from_secs(1));
    for i in 0..s.cfg.clients {
        let s = s.clone();
        let delay = spread.mul_f64(i as f64 / s.cfg.clients as f64);
        s.k.active.fetch_add(1, Relaxed);
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            while Instant::now() < s.deadline {
                conversation(&s, i).await;
            }
            s.k.active.fetch_sub(1, Relaxed);
        });
    }
    let mut peak = baseline.rss_kib;
    let mut measured = None;
    let mut cluster = serde_json::Map::new();
    let hard_stop = s.deadline + Duration::from_secs(2) + s.cfg.stall + Duration::from_secs(10);
    while s.k.active.load(Relaxed) > 0 && Instant::now() < hard_stop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        peak = peak.max(probe.rss_kib());
        let now = Instant::now();
        if measured.is_none() && now >= s.deadline {
            let delivered = s.k.delivered.load(Relaxed);
            measured = Some((
                now.duration_since(start).as_secs_f64(),
                probe.cpu_since(&baseline),
                delivered,
                s.k.responses.load(Relaxed),
            ));
            cluster = probe.cluster_cpu(&baseline, delivered, "msg");
        }
        bar.set_position(now.duration_since(start).as_millis() as u64);
        bar.set_message(format!(
            "conversations {} delivered {} active {}",
            s.k.conversations.load(Relaxed),
            s.k.delivered.load(Relaxed),
            s.k.active.load(Relaxed)
        ));
    }
    let (secs, cpu, delivered_in_window, responses_in_window) = measured.unwrap_or((
        start.elapsed().as_secs_f64(),
        probe.cpu_since(&baseline),
        s.k.delivered.load(Relaxed),
        s.k.responses.load(Relaxed),
    ));
    let still_active = s.k.active.load(Relaxed);
    // Memory after everyone left: wait for it to come back near the baseline (up to 15 s).
    let threshold = match (baseline.rss_kib, peak) {
        (Some(b), Some(p)) => Some(
            b + ((a.rss_tolerance_mib * 1024.0) as u64)
                .max(((p - b) as f64 * a.rss_tolerance_pct / 100.0) as u64),
        ),
        _ => None,
    };
    bar.set_message("waiting for the server's memory to settle");
    let mut after = probe.rss_kib();
    let settle_until = Instant::now() + Duration::from_secs(15);
    while let (Some(t), Some(r)) = (threshold, after) {
        if r <= t || Instant::now() > settle_until {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        after = probe.rss_kib();
    }
    bar.finish_and_clear();
    let recs = std::mem::take(&mut *s.recs.lock().unwrap());
    let (mut checks, mut passed, notes) = verify(&recs);
    if soak {
        let rss_ok = match (after, threshold) {
            (Some(a), Some(t)) => a <= t,
            _ => false,
        };
        checks.push(json!({
            "check": "server RSS back near baseline",
            "ok": rss_ok,
            "detail": match (baseline.rss_kib, peak, after, threshold) {
                (Some(b), Some(p), Some(a), Some(t)) => format!("baseline {b} KiB, peak {p} KiB, after {a} KiB, limit {t} KiB"),
                _ => "no server PID: cannot read RSS".into(),
            },
        }));
        passed &= rss_ok;
        let some = s.k.conversations.load(Relaxed) > 0;
        checks.push(json!({"check": "conversations took place", "ok": some,
            "detail": format!("{} conversation ends", s.k.conversations.load(Relaxed))}));
        passed &= some;
        let stopped = still_active == 0;
        checks.push(json!({"check": "every client stopped", "ok": stopped,
            "detail": format!("{still_active} still running at the hard stop")}));
        passed &= stopped;
    }
    let pairings = responses_in_window / 2;
    let (us_msg, s_1k_msg) = report::cpu_per(cpu, delivered_in_window);
    let (us_pair, s_1k_pair) = report::cpu_per(cpu, pairings);
    let k = &s.k;
    let cfg = &s.cfg;
    let mut result = json!({
        "scenario": if soak { "soak" } else { "churn" },
        "clients": cfg.clients,
        "messages_per_client": format!("{}..={}", cfg.min_messages, cfg.max_messages),
        "think_ms_max": cfg.think_ms,
        "abrupt_share": cfg.abrupt,
        "duration_secs": report::round(secs, 2),
        "pairings": pairings,
        "pairings_per_sec": report::round(pairings as f64 / secs, 1),
        "delivered": delivered_in_window,
        "delivered_per_sec": report::round(delivered_in_window as f64 / secs, 1),
        "time_to_pair": report::latency(&s.ttp.lock().unwrap()),
        "server_cpu_secs": cpu.map(|x| report::round(x, 3)),
        "server_cpu_us_per_msg": us_msg,
        "server_cpu_secs_per_1000_msgs": s_1k_msg,
        "server_cpu_us_per_pairing": us_pair,
        "server_cpu_secs_per_1000_pairings": s_1k_pair,
        "conversation_ends_recorded": recs.len(),
        "connect_failures": k.connect_failures.load(Relaxed),
        "gave_up_unpaired_at_end": k.gave_up_unpaired.load(Relaxed),
        "error_frames": k.error_frames.load(Relaxed),
        "errors_by_code": &*s.errors.lock().unwrap(),
        "closes_by_reason": &*s.closes.lock().unwrap(),
        "rss_kib": {"baseline": baseline.rss_kib, "peak": peak, "after": after},
        "notes": notes,
        "passed": passed,
        "checks": checks,
    });
    report::merge(&mut result, cluster);
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: u64, partner: u64, receipts: u64, received: u64, left: bool) -> Rec {
        Rec {
            id,
            paired: true,
            partner: Some(partner),
            receipts,
            received,
            left_by_me: left,
            ..Rec::default()
        }
    }

    #[test]
    fn a_loss_fails_unless_the_receiver_was_leaving() {
        let (_, ok, _) = verify(&[rec(1, 2, 3, 2, false), rec(2, 1, 2, 3, true)]);
        assert!(ok);
        let (_, ok, _) = verify(&[rec(1, 2, 3, 1, false), rec(2, 1, 2, 3, true)]);
        assert!(!ok, "2 receipted by 2, 1 reached 1 who did not leave");
        let (_, ok, notes) = verify(&[rec(1, 2, 3, 1, true), rec(2, 1, 2, 3, false)]);
        assert!(ok);
        assert_eq!(notes["in_flight_when_receiver_left"], 1);
    }

    #[test]
    fn self_pairing_and_silent_partners_fail() {
        let mut me = rec(1, 1, 1, 1, true);
        me.self_paired = true;
        assert!(!verify(&[me]).1);
        let lonely = Rec {
            id: 5,
            paired: true,
            receipts: 2,
            ..Rec::default()
        };
        assert!(!verify(&[lonely]).1);
    }
}
