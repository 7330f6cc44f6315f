//! Settings for `serve`, from flags and environment variables (see `cli`), with defaults that
//! work with no set-up at all.

use std::path::PathBuf;
use std::time::Duration;

use crate::chat::session::SessionConfig;

pub const DEFAULT_BIND: &str = "127.0.0.1:8080";
pub const DEFAULT_DATABASE_URL: &str = "sqlite://pairchat.db";
/// The assets of the source tree this binary was built from.
pub const DEFAULT_ASSETS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/assets");

#[derive(Debug, Clone)]
pub struct Settings {
    /// Address to listen on; port 0 picks a free one (tests).
    pub bind: String,
    pub database_url: String,
    /// HTTP worker threads; 0 means one per core.
    pub workers: usize,
    /// Pooled database connections (health checks and the matchmaker).
    pub db_pool_size: u32,
    /// How long shutdown waits for sessions to close before exiting anyway.
    pub shutdown_timeout: Duration,
    /// Concurrent connections allowed from one client address.
    pub max_conns_per_ip: usize,
    /// Whether the client address comes from X-Forwarded-For (behind a trusted proxy).
    pub trust_forwarded_for: bool,
    /// Other sites (scheme://host[:port]) allowed to embed the chat.
    pub allowed_origins: Vec<String>,
    /// Where the static assets are.
    pub assets_dir: PathBuf,
    /// How long two visitors who just talked are kept apart while others wait.
    pub rematch_cooldown: Duration,
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
            max_conns_per_ip: 32,
            trust_forwarded_for: false,
            rematch_cooldown: Duration::from_secs(15),
            allowed_origins: Vec::new(),
            assets_dir: PathBuf::from(DEFAULT_ASSETS_DIR),
            session: SessionConfig::default(),
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings::new(DEFAULT_BIND, DEFAULT_DATABASE_URL)
    }
}
