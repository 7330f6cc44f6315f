//! Settings for `serve`, from flags and environment variables (see `cli`), with defaults that
//! work with no set-up at all.

use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;

use crate::chat::session::SessionConfig;

pub const DEFAULT_BIND: &str = "127.0.0.1:8080";
pub const DEFAULT_DATABASE_URL: &str = "sqlite://pairchat.db";
/// The assets of the source tree this binary was built from.
pub const DEFAULT_ASSETS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/assets");
pub const DEFAULT_SECRET_KEY_FILE: &str = "pairchat.key";
pub const DEFAULT_MAX_CONNS_PER_IP: usize = 32;
pub const DEFAULT_CONNECTS_PER_SEC_PER_IP: f64 = 10.0;
/// New connections an address may open at once, as a multiple of its rate per second.
pub const CONNECT_BURST_SECONDS: f64 = 3.0;

#[derive(Debug, Clone)]
pub struct Settings {
    /// Address to listen on; port 0 picks a free one (tests).
    pub bind: String,
    pub database_url: String,
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
    /// Where the static assets are.
    pub assets_dir: PathBuf,
    /// How long two visitors who just talked are kept apart.
    pub rematch_cooldown: Duration,
    /// The key file of the visitor hash; `None`: a random key for this process only.
    pub secret_key_file: Option<PathBuf>,
    /// Serve even though another live server uses the database (its rows are cleared).
    pub force: bool,
    pub session: SessionConfig,
}

impl Settings {
    pub fn new(bind: impl Into<String>, database_url: impl Into<String>) -> Self {
        Settings {
            bind: bind.into(),
            database_url: database_url.into(),
            workers: 0,
            db_pool_size: 4,
            shutdown_timeout: Duration::from_secs(3),
            max_conns_per_ip: DEFAULT_MAX_CONNS_PER_IP,
            max_connections: 0,
            connects_per_sec_per_ip: DEFAULT_CONNECTS_PER_SEC_PER_IP,
            trust_forwarded_for: false,
            trusted_proxies: Vec::new(),
            allowed_origins: Vec::new(),
            public_origin: None,
            assets_dir: PathBuf::from(DEFAULT_ASSETS_DIR),
            rematch_cooldown: Duration::from_secs(15),
            secret_key_file: None,
            force: false,
            session: SessionConfig::default(),
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings::new(DEFAULT_BIND, DEFAULT_DATABASE_URL)
    }
}
