//! What the tool reads about the server process from /proc: resident memory and CPU time.

use std::fs;

/// Reads /proc/PID/status and /proc/PID/stat of the server. Every reading is optional: without
/// a PID (or once the process is gone) the figures are simply absent from the report.
#[derive(Debug, Clone)]
pub struct Probe {
    pid: Option<u32>,
    ticks_per_sec: f64,
}

impl Probe {
    pub fn new(pid: Option<u32>) -> Probe {
        // SAFETY: sysconf has no preconditions.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        Probe {
            pid,
            ticks_per_sec: if ticks > 0 { ticks as f64 } else { 100.0 },
        }
    }

    /// VmRSS in KiB.
    pub fn rss_kib(&self) -> Option<u64> {
        self.status_field("VmRSS:")
    }

    /// Threads of the server process.
    pub fn threads(&self) -> Option<u64> {
        self.status_field("Threads:")
    }

    fn status_field(&self, name: &str) -> Option<u64> {
        let text = fs::read_to_string(format!("/proc/{}/status", self.pid?)).ok()?;
        let line = text.lines().find(|l| l.starts_with(name))?;
        line[name.len()..].split_whitespace().next()?.parse().ok()
    }

    /// utime + stime of the server, in seconds.
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

/// A reading of the server's CPU and memory taken at one moment, to difference later.
#[derive(Debug, Clone, Copy)]
pub struct Mark {
    pub cpu: Option<f64>,
    pub rss_kib: Option<u64>,
    pub switches: Option<u64>,
}

impl Probe {
    pub fn mark(&self) -> Mark {
        Mark {
            cpu: self.cpu_secs(),
            rss_kib: self.rss_kib(),
            switches: self.context_switches(),
        }
    }

    /// Context switches (voluntary and not) of all the server's threads: each time one went to
    /// sleep or was put off the CPU. Mostly a count of wake-ups; unlike CPU time it does not
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

    /// The server's context switches since `since`.
    pub fn switches_since(&self, since: &Mark) -> Option<u64> {
        Some(self.context_switches()?.saturating_sub(since.switches?))
    }

    /// Server CPU seconds since `since`.
    pub fn cpu_since(&self, since: &Mark) -> Option<f64> {
        Some(self.cpu_secs()? - since.cpu?)
    }
}
