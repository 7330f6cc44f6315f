//! Settings for `serve`, from flags and environment variables (see `cli`), with defaults that
//! work with no set-up at all. Every default is a constant here, and every rule a value must
//! keep is checked here: `cli` parses flags with these checks, and `Settings::validate` applies
//! them to settings built in code.

use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;

use crate::admin::AdminSettings;
use crate::chat::session::SessionConfig;
use crate::cluster::ClusterConfig;
use crate::moderation::challenge::ChallengeConfig;
use crate::moderation::ModerationConfig;
use crate::telemetry::LogFormat;

pub const DEFAULT_BIND: &str = "127.0.0.1:8080";
pub const DEFAULT_WORKERS: usize = 0;
pub const DEFAULT_DB_POOL_SIZE: u32 = 4;
pub const DEFAULT_SHUTDOWN_TIMEOUT_SECS: u64 = 3;
pub const DEFAULT_MAX_CONNECTIONS: usize = 0;
pub const DEFAULT_REMATCH_COOLDOWN_SECS: u64 = 15;
/// Seconds a visitor with interests (or a language) waits for a match before taking anyone.
pub const DEFAULT_INTEREST_FALLBACK_SECS: u64 = 10;
/// How long a chat is held for a visitor whose connection broke: long enough for a page to
/// notice and reconnect through a short outage (a Wi-Fi hand-over, a proxy restart).
pub const DEFAULT_RESUME_GRACE_SECS: u64 = 15;
pub const DEFAULT_MAX_MESSAGE_CHARS: usize = 2_000;
pub const DEFAULT_MAX_FRAME_BYTES: usize = 64 * 1024;
/// Smallest `--max-frame-bytes`: room for any chat frame the page sends.
pub const MIN_FRAME_BYTES: usize = 1_024;
/// Silence before a ping: an idle client is pinged once per 40 s and has 20 s to answer. Each
/// ping and pong costs ~15 µs of server CPU, so 19,900 idle connections cost 0.8 % of a core at
/// these defaults against 1.6 % at 20/30 (BENCHMARKS.md, 2026-12-07: the client timeout). A peer
/// gone silent is found within the minute; one that closes or resets is found at once.
pub const DEFAULT_HEARTBEAT_SECS: u64 = 40;
pub const DEFAULT_CLIENT_TIMEOUT_SECS: u64 = 60;
pub const DEFAULT_OUTBOX_FRAMES: usize = 256;
pub const DEFAULT_RATE_PER_SEC: f64 = 5.0;
pub const DEFAULT_RATE_BURST: u32 = 10;
pub const DEFAULT_DATABASE_URL: &str = "sqlite://pairchat.db";
pub const DEFAULT_LOG_FORMAT: LogFormat = LogFormat::Text;
pub const DEFAULT_SECRET_KEY_FILE: &str = "pairchat.key";
pub const DEFAULT_MAX_CONNS_PER_IP: usize = 32;
pub const DEFAULT_CONNECTS_PER_SEC_PER_IP: f64 = 10.0;
pub const DEFAULT_NODE_HEARTBEAT_MS: u64 = 1_000;
pub const DEFAULT_NODE_TIMEOUT_MS: u64 = 3_000;
pub const DEFAULT_RELAY_TIMEOUT_MS: u64 = 5_000;
pub const DEFAULT_AUTO_BAN_REPORTS: u32 = 3;
pub const DEFAULT_AUTO_BAN_WINDOW_MINS: u64 = 10;
pub const DEFAULT_AUTO_BAN_MINS: u64 = 60;
pub const DEFAULT_REPORT_RETENTION_DAYS: u64 = 30;
/// New chats an address may start in one clock minute before it must solve a challenge.
/// Ten a minute is far past a person's pace (a chat every six seconds) and well below a bot's.
pub const DEFAULT_CHALLENGE_AFTER: u32 = 10;
/// The challenge's largest number: a browser tries about half as many SHA-256 hashes, a
/// fraction of a second on a phone.
pub const DEFAULT_CHALLENGE_DIFFICULTY: u64 = 100_000;
/// New connections an address may open at once, as a multiple of its rate per second.
pub const CONNECT_BURST_SECONDS: f64 = 3.0;

#[derive(Debug, Clone)]
pub struct Settings {
    /// Address to listen on; port 0 picks a free one (tests).
    pub bind: String,
    /// Address of the metrics listener (`GET /metrics`, Prometheus text); `None`: no listener.
    pub metrics_bind: Option<String>,
    pub database_url: String,
    /// With `--redis-url`: this process is one of several on the database.
    pub cluster: Option<ClusterConfig>,
    /// HTTP worker threads; 0 means one per core.
    pub workers: usize,
    /// Pooled database connections (the matchmaker; health checks have one of their own).
    pub db_pool_size: u32,
    /// How long shutdown waits for sessions to close before exiting anyway.
    pub shutdown_timeout: Duration,
    /// Concurrent connections allowed from one client address (an IPv6 /64).
    pub max_conns_per_ip: usize,
    /// Concurrent connections in all; 0: as many as the open-files limit leaves room for.
    pub max_connections: usize,
    /// New WebSocket connections per second from one address (bursts of 3× that).
    pub connects_per_sec_per_ip: f64,
    /// Whether the client address comes from X-Forwarded-For (behind a trusted proxy).
    pub trust_forwarded_for: bool,
    /// The proxies whose X-Forwarded-For counts; empty: loopback.
    pub trusted_proxies: Vec<IpNet>,
    /// Other sites (scheme://host[:port]) allowed to embed the chat.
    pub allowed_origins: Vec<String>,
    /// The origin visitors use (https://chat.example.com behind a TLS proxy); without it the
    /// server's own origin is `http://` and the request's `Host`.
    pub public_origin: Option<String>,
    /// A folder of static assets to serve instead of the copy built into the binary.
    pub assets_dir: Option<PathBuf>,
    /// How long two visitors who just talked are kept apart.
    pub rematch_cooldown: Duration,
    /// How long a visitor with interests or a language waits for a match before taking anyone.
    pub interest_fallback: Duration,
    /// How long a chat is held for a visitor whose connection broke without a close, for it
    /// to resume (`/ws?resume=`); zero: not at all (the partner is told `partner lost`).
    pub resume_grace: Duration,
    /// The key file of the visitor hash; `None`: a random key for this process only.
    pub secret_key_file: Option<PathBuf>,
    /// Serve even though another live server uses the database (its rows are cleared).
    pub force: bool,
    /// When an address must solve a proof-of-work challenge to start a chat.
    pub challenge: ChallengeConfig,
    pub session: SessionConfig,
    /// Admin sessions and sign-ins.
    pub admin: AdminSettings,
    /// Reports, bans and automatic bans.
    pub moderation: ModerationConfig,
}

impl Settings {
    pub fn new(bind: impl Into<String>, database_url: impl Into<String>) -> Self {
        Settings {
            bind: bind.into(),
            metrics_bind: None,
            database_url: database_url.into(),
            cluster: None,
            workers: DEFAULT_WORKERS,
            db_pool_size: DEFAULT_DB_POOL_SIZE,
            shutdown_timeout: Duration::from_secs(DEFAULT_SHUTDOWN_TIMEOUT_SECS),
            max_conns_per_ip: DEFAULT_MAX_CONNS_PER_IP,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            connects_per_sec_per_ip: DEFAULT_CONNECTS_PER_SEC_PER_IP,
            trust_forwarded_for: false,
            trusted_proxies: Vec::new(),
            allowed_origins: Vec::new(),
            public_origin: None,
            assets_dir: None,
            rematch_cooldown: Duration::from_secs(DEFAULT_REMATCH_COOLDOWN_SECS),
            interest_fallback: Duration::from_secs(DEFAULT_INTEREST_FALLBACK_SECS),
            resume_grace: Duration::from_secs(DEFAULT_RESUME_GRACE_SECS),
            secret_key_file: None,
            force: false,
            challenge: ChallengeConfig {
                after: DEFAULT_CHALLENGE_AFTER,
                difficulty: DEFAULT_CHALLENGE_DIFFICULTY,
            },
            session: SessionConfig::default(),
            admin: AdminSettings::default(),
            moderation: ModerationConfig::default(),
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings::new(DEFAULT_BIND, DEFAULT_DATABASE_URL)
    }
}

impl Default for ModerationConfig {
    fn default() -> Self {
        ModerationConfig {
            auto_ban_reports: DEFAULT_AUTO_BAN_REPORTS,
            auto_ban_window: Duration::from_secs(DEFAULT_AUTO_BAN_WINDOW_MINS * 60),
            auto_ban_duration: Duration::from_secs(DEFAULT_AUTO_BAN_MINS * 60),
            report_retention: Duration::from_secs(DEFAULT_REPORT_RETENTION_DAYS * 86_400),
            ban_appeal: None,
        }
    }
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            max_message_chars: DEFAULT_MAX_MESSAGE_CHARS,
            heartbeat: Duration::from_secs(DEFAULT_HEARTBEAT_SECS),
            client_timeout: Duration::from_secs(DEFAULT_CLIENT_TIMEOUT_SECS),
            outbox_capacity: DEFAULT_OUTBOX_FRAMES,
            rate_per_sec: DEFAULT_RATE_PER_SEC,
            rate_burst: DEFAULT_RATE_BURST,
        }
    }
}

/// A number above 0 (for counts: at least 1).
pub fn positive<T>(text: &str) -> Result<T, String>
where
    T: std::str::FromStr + PartialOrd + Default,
    T::Err: std::fmt::Display,
{
    let value: T = text.trim().parse().map_err(|e: T::Err| e.to_string())?;
    check_positive(value)
}

fn check_positive<T: PartialOrd + Default>(value: T) -> Result<T, String> {
    if value > T::default() {
        Ok(value)
    } else {
        Err("must be above 0".into())
    }
}

/// A `--max-frame-bytes` of at least `MIN_FRAME_BYTES`.
pub fn frame_bytes(text: &str) -> Result<usize, String> {
    let value: usize = text.trim().parse().map_err(|e| format!("{e}"))?;
    check_frame_bytes(value)
}

fn check_frame_bytes(value: usize) -> Result<usize, String> {
    if value >= MIN_FRAME_BYTES {
        Ok(value)
    } else {
        Err(format!("must be at least {MIN_FRAME_BYTES}"))
    }
}

impl Settings {
    /// Checks the rules `cli` applies to flags, for settings built in code (tests, embedders):
    /// the rate buckets, caps and timers below rely on them and clamp nothing themselves.
    pub fn validate(&self) -> anyhow::Result<()> {
        let s = &self.session;
        let checks = [
            ("db_pool_size", check_positive(self.db_pool_size).err()),
            (
                "shutdown_timeout",
                check_positive(self.shutdown_timeout).err(),
            ),
            (
                "max_conns_per_ip",
                check_positive(self.max_conns_per_ip).err(),
            ),
            (
                "connects_per_sec_per_ip",
                check_positive(self.connects_per_sec_per_ip).err(),
            ),
            (
                "max_message_chars",
                check_positive(s.max_message_chars).err(),
            ),
            (
                "max_frame_bytes",
                check_frame_bytes(s.max_frame_bytes).err(),
            ),
            ("heartbeat", check_positive(s.heartbeat).err()),
            ("client_timeout", check_positive(s.client_timeout).err()),
            ("outbox_capacity", check_positive(s.outbox_capacity).err()),
            ("rate_per_sec", check_positive(s.rate_per_sec).err()),
            ("rate_burst", check_positive(s.rate_burst).err()),
            (
                "admin.session_ttl",
                check_positive(self.admin.session_ttl).err(),
            ),
            ("admin.idle_ttl", check_positive(self.admin.idle_ttl).err()),
            (
                "admin.login.per_account",
                check_positive(self.admin.login.per_account).err(),
            ),
            (
                "admin.login.per_address",
                check_positive(self.admin.login.per_address).err(),
            ),
            (
                "challenge.difficulty",
                check_positive(self.challenge.difficulty).err(),
            ),
        ];
        if let Some((name, e)) = checks
            .into_iter()
            .find_map(|(name, e)| e.map(|e| (name, e)))
        {
            anyhow::bail!("setting {name} {e}");
        }
        // A client is pinged after `heartbeat` of silence and dropped after `client_timeout`:
        // the other way round, a quiet client would be dropped without ever being pinged.
        if s.heartbeat >= s.client_timeout {
            anyhow::bail!(
                "--heartbeat-secs ({:?}) must be shorter than --client-timeout-secs ({:?})",
                s.heartbeat,
                s.client_timeout
            );
        }
        if let Some(cluster) = &self.cluster {
            if !self.database_url.starts_with("mysql://") {
                anyhow::bail!(
                    "--redis-url needs a MySQL/MariaDB --database-url (mysql://...): several \
                     servers cannot share a SQLite file"
                );
            }
            let timings = [
                ("node_heartbeat", cluster.heartbeat),
                ("node_timeout", cluster.node_timeout),
                ("relay_timeout", cluster.relay_timeout),
            ];
            for (name, value) in timings {
                if let Some(e) = check_positive(value).err() {
                    anyhow::bail!("setting {name} {e}");
                }
            }
            if cluster.node_timeout <= cluster.heartbeat {
                anyhow::bail!("--node-timeout-ms must be longer than --node-heartbeat-ms");
            }
        }
        Ok(())
    }
}
