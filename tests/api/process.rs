//! The `pairchat` binary as a child process, as an operator runs it: a command with a clean
//! environment, a server started on a free port, signals, and its exit and log.

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::helpers::PATIENCE;

/// The binary, with none of the test's own settings (`PAIRCHAT_*`, `DATABASE_URL`,
/// `RUST_LOG`) leaking into what it is told, and its key file out of the source tree.
pub fn pairchat() -> Command {
    pairchat_at(Path::new(env!("CARGO_BIN_EXE_pairchat")))
}

/// `pairchat()` for the binary at `program` (a copy of it, or a wrapper that runs it).
pub fn pairchat_at(program: &Path) -> Command {
    let mut cmd = Command::new(program);
    for (var, _) in std::env::vars_os() {
        let name = var.to_string_lossy();
        if name.starts_with("PAIRCHAT_") || name == "DATABASE_URL" || name == "RUST_LOG" {
            cmd.env_remove(&var);
        }
    }
    // Not the default ./pairchat.key: that would land in the source tree.
    let key = concat!(env!("CARGO_TARGET_TMPDIR"), "/cli-tests.key");
    cmd.env("PAIRCHAT_SECRET_KEY_FILE", key);
    cmd
}

/// A free loopback address (`127.0.0.1:PORT`) for a server to bind.
pub fn free_address() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    format!("127.0.0.1:{port}")
}

/// A running `pairchat` process, killed when dropped.
pub struct Server {
    pub child: Child,
    pub address: String,
    /// Its stderr, read as it comes (a full pipe would block the server's logging).
    log: Arc<Mutex<String>>,
    reader: Option<JoinHandle<()>>,
}

impl Server {
    /// Starts `pairchat serve` on a free port and waits until it accepts connections.
    pub fn start(url: &str) -> Server {
        let address = free_address();
        let mut cmd = pairchat();
        cmd.args(["serve", "--bind", &address, "--database-url", url]);
        Server::spawn(cmd, address)
    }

    /// Starts `cmd` (which must make the server listen on `address`) with the log at info
    /// (unless `cmd` sets `RUST_LOG` itself), and waits until it accepts connections.
    pub fn spawn(mut cmd: Command, address: String) -> Server {
        if !cmd.get_envs().any(|(name, _)| name == "RUST_LOG") {
            cmd.env("RUST_LOG", "info");
        }
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("server starts");
        let log = Arc::new(Mutex::new(String::new()));
        let mut stderr = child.stderr.take().expect("stderr is piped");
        let sink = log.clone();
        let reader = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stderr.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                sink.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push_str(&text);
            }
        });
        let mut server = Server {
            child,
            address,
            log,
            reader: Some(reader),
        };
        let deadline = Instant::now() + PATIENCE;
        // Its own log line, not just a listener on the port: between `free_address` and the
        // bind another process may take the port, and a connect would then reach that one.
        // As text or as JSON (`--log-format json`).
        let serving = [
            format!("address={}", server.address),
            format!("\"address\":\"{}\"", server.address),
        ];
        while !serving.iter().any(|s| server.log_so_far().contains(s))
            || std::net::TcpStream::connect(&server.address).is_err()
        {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!(
                    "server exited ({status}) before listening on {}:\n{}",
                    server.address,
                    server.log_so_far()
                );
            }
            assert!(Instant::now() < deadline, "server did not start listening");
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    /// What the server has logged so far.
    pub fn log_so_far(&self) -> String {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.address)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal by name (`TERM`, `INT`).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    pub fn terminate(&mut self) {
        self.signal("TERM");
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits (without blocking the runtime) for the process to exit; returns whether it exited
    /// with success. Panics past `within`.
    pub async fn wait_for_exit(&mut self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status.success();
            }
            assert!(
                Instant::now() < deadline,
                "server did not exit within {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits for exit; returns (success, stderr).
    pub fn wait(mut self, within: Duration) -> (bool, String) {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                if let Some(reader) = self.reader.take() {
                    let _ = reader.join();
                }
                return (status.success(), self.log_so_far());
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("server did not exit within {within:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
