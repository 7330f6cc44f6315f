//! What the tool reads about the server processes from /proc: resident memory and CPU time.
//! With several servers (`--url` and `--server-pid` repeated) every figure is their sum, and
//! each server's own figure is kept beside it; extra processes (`--extra-pid NAME=PID`, e.g.
//! redis-server) are read for CPU only and reported beside the servers.

use std::fs;

/// One process's /proc readings. Every reading is optional: without a PID (or once the process
/// is gone) the figures are simply absent from the report.
#[derive(Debug, Clone)]
pub struct Proc {
    pid: Option<u32>,
    ticks_per_sec: f64,
}

impl Proc {
    pub fn new(pid: Option<u32>) -> Proc {
        // SAFETY: sysconf has no preconditions.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        Proc {
            pid,
            ticks_per_sec: if ticks > 0 { ticks as f64 } else { 100.0 },
        }
    }

    /// VmRSS in KiB.
    pub fn rss_kib(&self) -> Option<u64> {
        self.status_field("VmRSS:")
    }

    /// Threads of the process.
    pub fn threads(&self) -> Option<u64> {
        self.status_field("Threads:")
    }

    fn status_field(&self, name: &str) -> Option<u64> {
        let text = fs::read_to_string(format!("/proc/{}/status", self.pid?)).ok()?;
        let line = text.lines().find(|l| l.starts_with(name))?;
        line[name.len()..].split_whitespace().next()?.parse().ok()
    }

    /// utime + stime of the process, in seconds.
    pub fn cpu_secs(&self) -> Option<f64> {
        let text = fs::read_to_string(format!("/proc/{}/stat", self.pid?)).ok()?;
        // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
        let rest = &text[text.rfind(')')? + 1..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // fields[0] is field 3 (state); utime and stime are fields 14 and 15.
        let utime: u64 = fields.get(11)?.parse().ok()?;
        let stime: u64 = fields.get(12)?.parse().ok()?;
        Some((utime + stime) as f64 / self.ticks_per_sec)
    }

    /// Context switches (voluntary and not) of all the process's threads: each time one went
    /// to sleep or was put off the CPU. Mostly a count of wake-ups; unlike CPU time it does not
    /// drift with the host's load.
    pub fn context_switches(&self) -> Option<u64> {
        let tasks = fs::read_dir(format!("/proc/{}/task", self.pid?)).ok()?;
        let mut total = 0;
        for task in tasks.flatten() {
            let Ok(text) = fs::read_to_string(task.path().join("status")) else {
                continue; // a thread that ended meanwhile
            };
            for line in text.lines() {
                if let Some(n) = line
                    .strip_prefix("voluntary_ctxt_switches:")
                    .or_else(|| line.strip_prefix("nonvoluntary_ctxt_switches:"))
                {
                    total += n.trim().parse::<u64>().unwrap_or(0);
                }
            }
        }
        Some(total)
    }

    fn mark(&self) -> One {
        One {
            cpu: self.cpu_secs(),
            rss_kib: self.rss_kib(),
            switches: self.context_switches(),
        }
    }
}

/// The servers a scenario drives (one per `--url`), and the extra processes to read beside
/// them. The scenario-facing figures (`rss_kib`, `cpu_since`, ...) are sums over the servers,
/// known only when known for every server, so a single server reads exactly as before.
#[derive(Debug, Clone)]
pub struct Probe {
    servers: Vec<Proc>,
    extra: Vec<(String, Proc)>,
}

/// Sum of per-server readings; None when any server's is unknown.
fn sum<T: std::iter::Sum<T>>(xs: impl Iterator<Item = Option<T>>) -> Option<T> {
    xs.collect::<Option<Vec<T>>>().map(|v| v.into_iter().sum())
}

impl Probe {
    pub fn new(pid: Option<u32>) -> Probe {
        Probe::cluster(vec![pid], Vec::new())
    }

    /// One entry of `servers` per server (None: unknown), and named extra processes.
    pub fn cluster(servers: Vec<Option<u32>>, extra: Vec<(String, u32)>) -> Probe {
        Probe {
            servers: servers.into_iter().map(Proc::new).collect(),
            extra: extra
                .into_iter()
                .map(|(name, pid)| (name, Proc::new(Some(pid))))
                .collect(),
        }
    }

    /// More than one server, or extra processes: the per-server and cluster figures are worth
    /// reporting.
    pub fn is_cluster(&self) -> bool {
        self.servers.len() > 1 || !self.extra.is_empty()
    }

    pub fn server_count(&self) -> usize {
        self.servers.len()
    }

    /// VmRSS in KiB, summed over the servers.
    pub fn rss_kib(&self) -> Option<u64> {
        sum(self.servers.iter().map(Proc::rss_kib))
    }

    /// Each server's VmRSS in KiB.
    pub fn rss_each(&self) -> Vec<Option<u64>> {
        self.servers.iter().map(Proc::rss_kib).collect()
    }

    /// Threads of the server processes.
    pub fn threads(&self) -> Option<u64> {
        sum(self.servers.iter().map(Proc::threads))
    }

    /// utime + stime of the servers, in seconds.
    pub fn cpu_secs(&self) -> Option<f64> {
        sum(self.servers.iter().map(Proc::cpu_secs))
    }

    /// Context switches of all the servers' threads.
    pub fn context_switches(&self) -> Option<u64> {
        sum(self.servers.iter().map(Proc::context_switches))
    }
}

/// Finds the process listening on a local TCP port (IPv4), through /proc/net/tcp and each
/// process's open sockets. Only processes this user may inspect are seen.
pub fn find_listener(port: u16) -> Option<u32> {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 10 || f[3] != "0A" {
                continue;
            }
            let local_port = f[1]
                .rsplit(':')
                .next()
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            if local_port == Some(port) {
                inodes.push(format!("socket:[{}]", f[9]));
            }
        }
    }
    if inodes.is_empty() {
        return None;
    }
    let me = std::process::id();
    for entry in fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(fds) = fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(target) = fs::read_link(fd.path()) {
                if inodes.iter().any(|i| target.as_os_str() == i.as_str()) {
                    return Some(pid);
                }
            }
        }
    }
    None
}

/// One process's readings at one moment.
#[derive(Debug, Clone, Copy, Default)]
pub struct One {
    pub cpu: Option<f64>,
    pub rss_kib: Option<u64>,
    pub switches: Option<u64>,
}

/// A reading of the servers' CPU and memory taken at one moment, to difference later: the sums
/// over the servers, and each server's and each extra process's own.
#[derive(Debug, Clone)]
pub struct Mark {
    pub cpu: Option<f64>,
    pub rss_kib: Option<u64>,
    pub switches: Option<u64>,
    pub each: Vec<One>,
    pub extra: Vec<One>,
}

impl Probe {
    pub fn mark(&self) -> Mark {
        let each: Vec<One> = self.servers.iter().map(Proc::mark).collect();
        Mark {
            cpu: sum(each.iter().map(|o| o.cpu)),
            rss_kib: sum(each.iter().map(|o| o.rss_kib)),
            switches: sum(each.iter().map(|o| o.switches)),
            each,
            extra: self.extra.iter().map(|(_, p)| p.mark()).collect(),
        }
    }

    /// The servers' context switches since `since`.
    pub fn switches_since(&self, since: &Mark) -> Option<u64> {
        Some(self.context_switches()?.saturating_sub(since.switches?))
    }

    /// Server CPU seconds (summed) since `since`.
    pub fn cpu_since(&self, since: &Mark) -> Option<f64> {
        Some(self.cpu_secs()? - since.cpu?)
    }

    /// Each server's CPU seconds since `since`.
    pub fn cpu_each_since(&self, since: &Mark) -> Vec<Option<f64>> {
        self.servers
            .iter()
            .zip(&since.each)
            .map(|(p, m)| Some(p.cpu_secs()? - m.cpu?))
            .collect()
    }

    /// Each extra process's name and CPU seconds since `since`.
    pub fn extra_cpu_since(&self, since: &Mark) -> Vec<(String, Option<f64>)> {
        self.extra
            .iter()
            .zip(&since.extra)
            .map(|((name, p), m)| (name.clone(), p.cpu_secs().zip(m.cpu).map(|(a, b)| a - b)))
            .collect()
    }

    /// The CPU figures of a cluster between `since` and now, for `units` (messages, pairings)
    /// named `unit` (`msg`, `pairing`): each server's CPU seconds and µs per unit, each extra
    /// process's, and the cluster's (servers + extras). An empty map for one server without
    /// extras, so a single server's report keeps its keys.
    pub fn cluster_cpu(
        &self,
        since: &Mark,
        units: u64,
        unit: &str,
    ) -> serde_json::Map<String, serde_json::Value> {
        use crate::report;
        use serde_json::json;
        let mut m = serde_json::Map::new();
        if !self.is_cluster() {
            return m;
        }
        let each = self.cpu_each_since(since);
        let per = |c: Option<f64>| report::cpu_per(c, units).0;
        m.insert(
            "server_cpu_secs_each".into(),
            json!(each
                .iter()
                .map(|c| c.map(|x| report::round(x, 3)))
                .collect::<Vec<_>>()),
        );
        m.insert(
            format!("server_cpu_us_per_{unit}_each"),
            json!(each.iter().map(|c| per(*c)).collect::<Vec<_>>()),
        );
        let extra = self.extra_cpu_since(since);
        let mut ex = serde_json::Map::new();
        for (name, c) in &extra {
            ex.insert(
                name.clone(),
                json!({"cpu_secs": c.map(|x| report::round(x, 3)), format!("cpu_us_per_{unit}"): per(*c)}),
            );
        }
        if !ex.is_empty() {
            m.insert("extra".into(), serde_json::Value::Object(ex));
        }
        let total = sum(each.into_iter().chain(extra.into_iter().map(|(_, c)| c)));
        m.insert(
            "cluster_cpu_secs".into(),
            json!(total.map(|x| report::round(x, 3))),
        );
        m.insert(format!("cluster_cpu_us_per_{unit}"), per(total));
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_are_known_only_when_every_server_is() {
        assert_eq!(sum([Some(1u64), Some(2)].into_iter()), Some(3));
        assert_eq!(sum([Some(1u64), None].into_iter()), None);
        let me = Some(std::process::id());
        let one = Probe::new(me);
        let two = Probe::cluster(vec![me, me], Vec::new());
        assert!(!one.is_cluster() && two.is_cluster());
        let (a, b) = (one.rss_kib().unwrap(), two.rss_kib().unwrap());
        assert!(b >= a && b <= 3 * a, "{a} {b}");
        assert_eq!(Probe::cluster(vec![me, None], Vec::new()).rss_kib(), None);
        let m = two.mark();
        assert_eq!(m.each.len(), 2);
        assert!(one.cluster_cpu(&one.mark(), 10, "msg").is_empty());
        let with_extra = Probe::cluster(vec![me], vec![("redis".into(), std::process::id())]);
        let c = with_extra.cluster_cpu(&with_extra.mark(), 10, "msg");
        assert!(c.contains_key("cluster_cpu_us_per_msg") && c["extra"]["redis"].is_object());
    }
}
