//! pairchat-bench: a load generator for pairchat that speaks only its public WebSocket
//! protocol. One subcommand per scenario; a progress bar on stderr while it runs (when stderr
//! is a terminal), a summary table at the end, or JSON with `--json`.

mod churn;
mod client;
mod connections;
mod hiccup;
mod pairing;
mod probe;
mod relay;
mod report;
mod spread;
mod startup;

use clap::{Args, Parser, Subcommand};
use serde_json::Value;

#[derive(Debug, Parser)]
#[command(name = "pairchat-bench", version, about)]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Debug, Subcommand)]
enum Scenario {
    /// Open N connections, pair them, hold them idle; the server's RSS per connection.
    Connections {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        args: connections::ConnArgs,
    },
    /// Arrivals at a set rate (or flat out): pairings/s and time to pair.
    Pairing {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        args: pairing::PairingArgs,
    },
    /// P pairs sending at a set total rate (or flat out): delivered/s and latency.
    Relay {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        args: relay::RelayArgs,
    },
    /// Pair, exchange a few messages, leave, start over, continuously.
    Churn {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        args: churn::ChurnArgs,
    },
    /// 2,000 churning clients for 60 s with delivery, pairing and memory checks; exits
    /// non-zero when a check fails.
    Soak {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        args: churn::ChurnArgs,
    },
    /// Spawn the server, time to its first accepted WebSocket, idle RSS.
    Startup {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        args: startup::StartupArgs,
    },
    /// No server: how late a thread's 1 ms naps wake and the machine's steal time, to tell
    /// whether the box is quiet enough to benchmark on.
    Hiccup {
        #[command(flatten)]
        common: Common,
    },
    /// (internal) Hold connections for `connections`, driven through stdin/stdout.
    #[command(hide = true)]
    Hold {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        args: connections::HoldArgs,
    },
}

/// Flags every scenario takes.
#[derive(Debug, Clone, Args)]
pub struct Common {
    /// The server's WebSocket URL (loopback only). Repeat it, or separate URLs with commas, to
    /// drive several servers: connections go to them in turn.
    #[arg(long, value_delimiter = ',', default_value = "ws://127.0.0.1:8080/ws")]
    pub url: Vec<String>,
    /// The server's PID, for RSS and CPU from /proc (default: whoever listens on the port).
    /// With several URLs, one per URL in the same order (repeated or comma-separated): CPU and
    /// RSS are then summed over the servers and reported for each.
    #[arg(long, value_delimiter = ',')]
    pub server_pid: Vec<u32>,
    /// Another process to read CPU from, reported beside the servers and counted in the
    /// cluster's total (`cluster_cpu_*`): NAME=PID, e.g. `--extra-pid redis=$(pidof
    /// redis-server)`. Repeatable.
    #[arg(long, value_parser = spread::parse_extra_pid)]
    pub extra_pid: Vec<(String, u32)>,
    /// Seconds to run (per step for `relay`; hold time for `connections`).
    #[arg(long)]
    pub duration: Option<f64>,
    /// Source addresses to connect from: 127.0.0.(first+1) onwards.
    #[arg(long, default_value_t = 8)]
    pub sources: usize,
    /// Index of the first source address (1 = 127.0.0.2).
    #[arg(long, default_value_t = 1)]
    pub first_source: usize,
    /// Handshakes in progress at once.
    #[arg(long, default_value_t = 256)]
    pub connect_concurrency: usize,
    /// Generator threads.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Print the result as JSON on stdout (the table goes to stderr).
    #[arg(long)]
    pub json: bool,
    /// No progress bar.
    #[arg(long)]
    pub no_progress: bool,
    /// Do not send `?visitor=` tokens: the server then keys visitors by source address (and may
    /// keep the few addresses apart after they talked).
    #[arg(long)]
    pub no_visitor_tokens: bool,
    /// Free text stored in the result, e.g. the server's flags.
    #[arg(long)]
    pub note: Option<String>,
}

/// The servers to drive, as the common flags describe them.
pub fn target(c: &Common, sources: usize) -> anyhow::Result<client::Target> {
    let mut t = client::Target::spread(&c.url, c.first_source, sources)?;
    t.visitor_tokens = !c.no_visitor_tokens;
    Ok(t)
}

/// The servers' processes (given, or found listening on each URL's port) and the extra ones.
fn probe(c: &Common) -> anyhow::Result<probe::Probe> {
    let pids = spread::server_pids(c.url.len(), &c.server_pid)?
        .into_iter()
        .zip(&c.url)
        .map(|(pid, url)| {
            pid.or_else(|| {
                client::Endpoint::parse(url)
                    .ok()
                    .and_then(|e| probe::find_listener(e.addr.port()))
            })
        })
        .collect();
    Ok(probe::Probe::cluster(pids, c.extra_pid.clone()))
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let (common, scenario) = match &cli.scenario {
        Scenario::Connections { common, .. }
        | Scenario::Pairing { common, .. }
        | Scenario::Relay { common, .. }
        | Scenario::Churn { common, .. }
        | Scenario::Soak { common, .. }
        | Scenario::Startup { common, .. }
        | Scenario::Hiccup { common }
        | Scenario::Hold { common, .. } => (common.clone(), &cli.scenario),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(common.threads.max(1))
        .enable_all()
        .build()?;
    client::now_ns();
    let steal = hiccup::Steal::now();
    let c = &common;
    let result: anyhow::Result<Option<Value>> = runtime.block_on(async {
        let probe = || probe(c);
        Ok(Some(match scenario {
            Scenario::Hold { args, .. } => {
                connections::hold(c, args).await?;
                return Ok(None);
            }
            Scenario::Connections { args, .. } => connections::run(c, args, &probe()?).await?,
            Scenario::Pairing { args, .. } => pairing::run(c, args, &probe()?).await?,
            Scenario::Relay { args, .. } => relay::run(c, args, &probe()?).await?,
            Scenario::Churn { args, .. } => churn::run(c, args, &probe()?, false).await?,
            Scenario::Soak { args, .. } => churn::run(c, args, &probe()?, true).await?,
            Scenario::Startup { args, .. } => startup::run(c, args).await?,
            Scenario::Hiccup { .. } => hiccup::run(c).await,
        }))
    });
    let Some(mut result) = result? else {
        runtime.shutdown_timeout(std::time::Duration::from_secs(1));
        return Ok(());
    };
    if let Value::Object(m) = &mut result {
        m.insert("url".into(), Value::String(c.url.join(",")));
        if c.url.len() > 1 {
            m.insert("urls".into(), serde_json::json!(c.url));
        }
        // The generator shares the machine's cores with the server: say how much it used.
        m.insert(
            "generator_cpu_secs".into(),
            serde_json::json!(report::round(generator_cpu_secs(), 2)),
        );
        // Time the hypervisor gave another guest while this run wanted the CPU: a run with
        // much of it measured a busy host, not the server.
        m.insert(
            "machine_steal_pct".into(),
            serde_json::json!(steal.pct_since()),
        );
        if let Some(note) = &c.note {
            m.insert("note".into(), Value::String(note.clone()));
        }
    }
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    report::emit(&result, c.json);
    if result.get("passed") == Some(&Value::Bool(false))
        && result.get("scenario") == Some(&Value::String("soak".into()))
    {
        std::process::exit(1);
    }
    Ok(())
}

/// CPU seconds (user + system) of this process and of the hold processes it waited for.
fn generator_cpu_secs() -> f64 {
    let mut total = 0.0;
    for who in [libc::RUSAGE_SELF, libc::RUSAGE_CHILDREN] {
        // SAFETY: getrusage fills the struct we pass.
        let mut u: libc::rusage = unsafe { std::mem::zeroed() };
        if unsafe { libc::getrusage(who, &mut u) } == 0 {
            for t in [u.ru_utime, u.ru_stime] {
                total += t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
            }
        }
    }
    total
}
