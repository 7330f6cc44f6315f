//! `startup`: spawn the server command, time until the first WebSocket handshake succeeds,
//! read its idle RSS, stop it with SIGTERM. Repeated `--runs` times.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Value};

use crate::client;
use crate::probe::Probe;
use crate::report;
use crate::Common;

#[derive(Debug, Clone, clap::Args)]
pub struct StartupArgs {
    /// Runs (the first one may create or migrate the database).
    #[arg(long, default_value_t = 5)]
    pub runs: u32,
    /// Seconds to let the server idle before reading its RSS.
    #[arg(long, default_value_t = 1.0)]
    pub idle: f64,
    /// The server command line, after `--`; it must listen where `--url` points.
    #[arg(last = true, required = true)]
    pub cmd: Vec<String>,
}

pub async fn run(c: &Common, a: &StartupArgs) -> anyhow::Result<Value> {
    if c.url.len() != 1 {
        bail!("startup spawns one server: give one --url");
    }
    let target = crate::target(c, 1)?;
    if std::net::TcpStream::connect(target.addr()).is_ok() {
        bail!("something already listens on {}", target.addr());
    }
    let mut runs = Vec::new();
    let mut times = Vec::new();
    for i in 0..a.runs.max(1) {
        let t0 = Instant::now();
        let mut child = tokio::process::Command::new(&a.cmd[0])
            .args(&a.cmd[1..])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {:?}", a.cmd[0]))?;
        let pid = child.id();
        let mut attempts = 0u32;
        let first = loop {
            attempts += 1;
            if let Ok(mut ws) = target.connect(0).await {
                let t = t0.elapsed();
                client::close_and_drain(&mut ws, Duration::from_secs(2)).await;
                break Some(t);
            }
            if t0.elapsed() > Duration::from_secs(20) {
                break None;
            }
            if let Ok(Some(status)) = child.try_wait() {
                bail!("the server exited with {status} before accepting a connection");
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        tokio::time::sleep(Duration::from_secs_f64(a.idle)).await;
        let probe = Probe::new(pid);
        let rss = probe.rss_kib();
        let cpu = probe.cpu_secs();
        if let Some(pid) = pid {
            // SAFETY: signalling our own child.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
        }
        let t_stop = Instant::now();
        let stopped = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
        let stop_ms = t_stop.elapsed().as_secs_f64() * 1000.0;
        if stopped.is_err() {
            let _ = child.kill().await;
        }
        let ms = first.map(|d| d.as_secs_f64() * 1000.0);
        if let Some(ms) = ms {
            if i > 0 || a.runs == 1 {
                times.push(ms);
            }
        }
        runs.push(json!({
            "run": i + 1,
            "first_handshake_ms": ms.map(|m| report::round(m, 1)),
            "attempts": attempts,
            "idle_rss_kib": rss,
            "cpu_secs_at_idle": cpu,
            "sigterm_to_exit_ms": report::round(stop_ms, 1),
            "exit": match stopped { Ok(Ok(s)) => s.to_string(), _ => "killed".into() },
        }));
    }
    times.sort_by(f64::total_cmp);
    let median = times.get(times.len() / 2).copied();
    Ok(json!({
        "scenario": "startup",
        "command": a.cmd.join(" "),
        "runs_counted": times.len(),
        "note": "run 1 is left out of min/median/max when there are several (it may create the database)",
        "first_handshake_ms_min": times.first().map(|m| report::round(*m, 1)),
        "first_handshake_ms_median": median.map(|m| report::round(m, 1)),
        "first_handshake_ms_max": times.last().map(|m| report::round(*m, 1)),
        "runs": runs,
    }))
}
