//! The command line: `serve` (the default), `migrate`, `reset`. Every flag also reads an
//! environment variable, shown in `--help`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use crate::chat::session::SessionConfig;
use crate::config::{Settings, DEFAULT_ASSETS_DIR, DEFAULT_BIND, DEFAULT_DATABASE_URL};
use crate::db::{self, queries};
use crate::startup::Application;

#[derive(Debug, Parser)]
#[command(
    name = "pairchat",
    version,
    about = "Anonymous random-pairing chat server",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Flags for `serve`, which runs when no subcommand is given.
    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the chat (the default).
    Serve(ServeArgs),
    /// Create or update the database schema, then exit.
    Migrate(DbArgs),
    /// Empty the chat tables (ends nothing live: stop the server first), then exit.
    Reset(DbArgs),
}

#[derive(Debug, Clone, Args)]
pub struct DbArgs {
    /// Database: sqlite://FILE (created on first start) or mysql://USER[:PASS]@HOST[:PORT]/DB
    /// (needs a build with `--features mysql`).
    #[arg(long, env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL)]
    pub database_url: String,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address and port to listen on.
    #[arg(long, env = "PAIRCHAT_BIND", default_value = DEFAULT_BIND)]
    pub bind: String,
    #[command(flatten)]
    pub db: DbArgs,
    /// HTTP worker threads (0: one per CPU core).
    #[arg(long, env = "PAIRCHAT_WORKERS", default_value_t = 0)]
    pub workers: usize,
    /// Database connections in the pool.
    #[arg(long, env = "PAIRCHAT_DB_POOL_SIZE", default_value_t = 4)]
    pub db_pool_size: u32,
    /// Longest chat message, in characters (not bytes).
    #[arg(long, env = "PAIRCHAT_MAX_MESSAGE_CHARS", default_value_t = 2_000)]
    pub max_message_chars: usize,
    /// Largest WebSocket frame or fragmented message, in bytes; larger closes with 1009.
    #[arg(long, env = "PAIRCHAT_MAX_FRAME_BYTES", default_value_t = 64 * 1024)]
    pub max_frame_bytes: usize,
    /// Seconds of silence after which the server pings a client (one that sends frames is not
    /// pinged).
    #[arg(long, env = "PAIRCHAT_HEARTBEAT_SECS", default_value_t = 10)]
    pub heartbeat_secs: u64,
    /// Seconds of silence (no frame, no pong) after which a client is dropped.
    #[arg(long, env = "PAIRCHAT_CLIENT_TIMEOUT_SECS", default_value_t = 30)]
    pub client_timeout_secs: u64,
    /// Frames queued for one client before it counts as not reading and is dropped.
    #[arg(long, env = "PAIRCHAT_OUTBOX_FRAMES", default_value_t = 256)]
    pub outbox_frames: usize,
    /// Client frames allowed per second per connection, sustained; past it: error `rate_limited`.
    #[arg(long, env = "PAIRCHAT_RATE_PER_SEC", default_value_t = 5.0)]
    pub rate_per_sec: f64,
    /// Client frames allowed at once per connection (the token bucket's size).
    #[arg(long, env = "PAIRCHAT_RATE_BURST", default_value_t = 10)]
    pub rate_burst: u32,
    /// Concurrent WebSocket connections per client address; past it the upgrade answers 429.
    #[arg(long, env = "PAIRCHAT_MAX_CONNS_PER_IP", default_value_t = 32)]
    pub max_conns_per_ip: usize,
    /// Take the client address from the last X-Forwarded-For entry (only behind a proxy you
    /// trust to set it).
    #[arg(long, env = "PAIRCHAT_TRUST_FORWARDED_FOR")]
    pub trust_forwarded_for: bool,
    /// Other sites allowed to embed the chat, comma-separated origins
    /// (e.g. https://example.com,https://blog.example.com). The server's own origin is always
    /// allowed; browsers on any other origin are refused (403).
    #[arg(long, env = "PAIRCHAT_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,
    /// Folder of the static assets (JS, CSS) served under /assets.
    #[arg(long, env = "PAIRCHAT_ASSETS_DIR", default_value = DEFAULT_ASSETS_DIR)]
    pub assets_dir: PathBuf,
    /// Seconds during which two visitors who just talked are not paired again while someone
    /// else could be (after it, two who are alone together may meet again).
    #[arg(long, env = "PAIRCHAT_REMATCH_COOLDOWN_SECS", default_value_t = 15)]
    pub rematch_cooldown_secs: u64,
    /// Seconds shutdown waits for connections to close before exiting anyway.
    #[arg(long, env = "PAIRCHAT_SHUTDOWN_TIMEOUT_SECS", default_value_t = 3)]
    pub shutdown_timeout_secs: u64,
}

impl ServeArgs {
    pub fn settings(&self) -> Settings {
        Settings {
            bind: self.bind.clone(),
            database_url: self.db.database_url.clone(),
            workers: self.workers,
            db_pool_size: self.db_pool_size.max(1),
            shutdown_timeout: Duration::from_secs(self.shutdown_timeout_secs),
            max_conns_per_ip: self.max_conns_per_ip.max(1),
            trust_forwarded_for: self.trust_forwarded_for,
            rematch_cooldown: Duration::from_secs(self.rematch_cooldown_secs),
            allowed_origins: self.allowed_origins.clone(),
            assets_dir: self.assets_dir.clone(),
            session: SessionConfig {
                max_frame_bytes: self.max_frame_bytes,
                max_message_chars: self.max_message_chars,
                heartbeat: Duration::from_secs(self.heartbeat_secs.max(1)),
                client_timeout: Duration::from_secs(self.client_timeout_secs.max(1)),
                outbox_capacity: self.outbox_frames.max(1),
                rate_per_sec: self.rate_per_sec.max(0.0),
                rate_burst: self.rate_burst.max(1),
            },
        }
    }
}

/// Runs the parsed command to completion.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        None => serve(cli.serve.settings()),
        Some(Command::Serve(args)) => serve(args.settings()),
        Some(Command::Migrate(args)) => {
            let pool = db::build_pool(&args.database_url, 1)?;
            let applied = db::run_migrations(&mut *db::get(&pool)?)?;
            tracing::info!(applied, "database schema is up to date");
            Ok(())
        }
        Some(Command::Reset(args)) => {
            let pool = db::build_pool(&args.database_url, 1)?;
            let mut conn = db::get(&pool)?;
            db::run_migrations(&mut conn)?;
            let removed = queries::clear_all(&mut conn).context("cannot empty the chat tables")?;
            tracing::info!(removed, "chat tables emptied");
            Ok(())
        }
    }
}

fn serve(settings: Settings) -> anyhow::Result<()> {
    actix_web::rt::System::new().block_on(async move {
        let app = Application::build(settings).await?;
        tracing::info!(address = %app.address(), "pairchat is serving");
        app.run_until_stopped().await
    })
}
