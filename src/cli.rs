//! The command line: `serve` (the default), `migrate`, `reset`. Every flag also reads an
//! environment variable, shown in `--help`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use clap::builder::BoolishValueParser;
use ipnet::IpNet;

use crate::admin::login::LoginLimits;
use crate::admin::AdminSettings;
use crate::chat::session::SessionConfig;
use crate::cluster::ClusterConfig;
use crate::config::*;
use crate::db::{self, lease::ServerLease, queries};
use crate::moderation::challenge::ChallengeConfig;
use crate::moderation::ModerationConfig;
use crate::startup::Application;
use crate::telemetry::LogFormat;

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
    /// How log lines are written to stderr. Every subcommand takes it, after its name.
    #[arg(long, global = true, env = "PAIRCHAT_LOG_FORMAT", value_enum, default_value_t = DEFAULT_LOG_FORMAT)]
    pub log_format: LogFormat,
    /// Flags for `serve`, which runs when no subcommand is given.
    #[command(flatten)]
    pub serve: ServeArgs,
}

// Parsed once at start: the size of the largest variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the chat (the default).
    Serve(ServeArgs),
    /// Create or update the database schema, then exit.
    Migrate(DbArgs),
    /// Empty the chat tables, then exit. Refused while a server uses the database.
    Reset(ResetArgs),
    /// Manage the accounts of the admin view (/admin).
    Admin(AdminArgs),
}

#[derive(Debug, Clone, Args)]
pub struct AdminArgs {
    #[command(subcommand)]
    pub command: AdminCommand,
}

#[derive(Debug, Clone, Subcommand)]
pub enum AdminCommand {
    /// Add an account. Its password is read from stdin when stdin is not a terminal (the first
    /// line); otherwise, or when that line is empty, one is generated and printed once.
    Add {
        /// 1 to 64 of A-Z a-z 0-9 . _ -
        name: String,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Remove an account; its sessions end at once.
    Remove {
        name: String,
        #[command(flatten)]
        db: DbArgs,
    },
    /// List the accounts.
    List {
        #[command(flatten)]
        db: DbArgs,
    },
}

impl AdminCommand {
    fn db(&self) -> &DbArgs {
        match self {
            AdminCommand::Add { db, .. }
            | AdminCommand::Remove { db, .. }
            | AdminCommand::List { db } => db,
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct ResetArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// Empty the tables even though a live server uses them (its visitors are stranded).
    #[arg(long)]
    pub force: bool,
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
    /// Address and port of a second listener that answers only GET /metrics (Prometheus text
    /// format); without it there is none. Keep it private: it is not for visitors.
    #[arg(long, env = "PAIRCHAT_METRICS_BIND")]
    pub metrics_bind: Option<String>,
    /// Join the other servers on this database through Redis (e.g. redis://127.0.0.1:6379/):
    /// visitors on different servers meet and chat. Needs a MySQL/MariaDB database. Without
    /// it this server must be the only one on its database.
    #[arg(long, env = "PAIRCHAT_REDIS_URL")]
    pub redis_url: Option<String>,
    /// With --redis-url: how often this server tells the others it is alive, in milliseconds.
    #[arg(long, env = "PAIRCHAT_NODE_HEARTBEAT_MS", default_value_t = DEFAULT_NODE_HEARTBEAT_MS, value_parser = positive::<u64>)]
    pub node_heartbeat_ms: u64,
    /// With --redis-url: a server silent this long (milliseconds) is taken for dead: its
    /// visitors' partners are told `partner_away` (held for the resume grace; `partner lost`
    /// when it is 0) and its rows are swept.
    #[arg(long, env = "PAIRCHAT_NODE_TIMEOUT_MS", default_value_t = DEFAULT_NODE_TIMEOUT_MS, value_parser = positive::<u64>)]
    pub node_timeout_ms: u64,
    /// With --redis-url: how long a message to a partner on another server may wait for Redis
    /// before the sender is told `undelivered`, in milliseconds.
    #[arg(long, env = "PAIRCHAT_RELAY_TIMEOUT_MS", default_value_t = DEFAULT_RELAY_TIMEOUT_MS, value_parser = positive::<u64>)]
    pub relay_timeout_ms: u64,
    #[command(flatten)]
    pub db: DbArgs,
    /// HTTP worker threads (0: one per CPU core).
    #[arg(long, env = "PAIRCHAT_WORKERS", default_value_t = DEFAULT_WORKERS)]
    pub workers: usize,
    /// Database connections in the pool (at least 1).
    #[arg(long, env = "PAIRCHAT_DB_POOL_SIZE", default_value_t = DEFAULT_DB_POOL_SIZE, value_parser = positive::<u32>)]
    pub db_pool_size: u32,
    /// Longest chat message, in characters (not bytes; at least 1).
    #[arg(long, env = "PAIRCHAT_MAX_MESSAGE_CHARS", default_value_t = DEFAULT_MAX_MESSAGE_CHARS, value_parser = positive::<usize>)]
    pub max_message_chars: usize,
    /// Largest WebSocket frame or fragmented message, in bytes; larger closes with 1009
    /// (at least 1,024).
    #[arg(long, env = "PAIRCHAT_MAX_FRAME_BYTES", default_value_t = DEFAULT_MAX_FRAME_BYTES, value_parser = frame_bytes)]
    pub max_frame_bytes: usize,
    /// Seconds of silence after which the server pings a client (nothing from it since its
    /// last frame or our last ping; one that sends frames is not pinged). Shorter than
    /// --client-timeout-secs: the difference is the time a client has to answer.
    #[arg(long, env = "PAIRCHAT_HEARTBEAT_SECS", default_value_t = DEFAULT_HEARTBEAT_SECS, value_parser = positive::<u64>)]
    pub heartbeat_secs: u64,
    /// Seconds of silence (no frame, no pong) after which a client is dropped with 1008
    /// "no heartbeat" (at least 1).
    #[arg(long, env = "PAIRCHAT_CLIENT_TIMEOUT_SECS", default_value_t = DEFAULT_CLIENT_TIMEOUT_SECS, value_parser = positive::<u64>)]
    pub client_timeout_secs: u64,
    /// Frames queued for one client before it counts as not reading and is dropped (at least 1).
    #[arg(long, env = "PAIRCHAT_OUTBOX_FRAMES", default_value_t = DEFAULT_OUTBOX_FRAMES, value_parser = positive::<usize>)]
    pub outbox_frames: usize,
    /// Client frames allowed per second per connection, sustained; past it: error `rate_limited`.
    #[arg(long, env = "PAIRCHAT_RATE_PER_SEC", default_value_t = DEFAULT_RATE_PER_SEC, value_parser = positive::<f64>)]
    pub rate_per_sec: f64,
    /// Client frames allowed at once per connection (the token bucket's size; at least 1).
    #[arg(long, env = "PAIRCHAT_RATE_BURST", default_value_t = DEFAULT_RATE_BURST, value_parser = positive::<u32>)]
    pub rate_burst: u32,
    /// Concurrent WebSocket connections per client address (an IPv6 address counts by its
    /// /64); past it the upgrade answers 429.
    #[arg(long, env = "PAIRCHAT_MAX_CONNS_PER_IP", default_value_t = DEFAULT_MAX_CONNS_PER_IP, value_parser = positive::<usize>)]
    pub max_conns_per_ip: usize,
    /// Concurrent WebSocket connections in all; past it the upgrade answers 503 (0: what the
    /// open-files limit leaves room for).
    #[arg(long, env = "PAIRCHAT_MAX_CONNECTIONS", default_value_t = DEFAULT_MAX_CONNECTIONS)]
    pub max_connections: usize,
    /// New WebSocket connections per second from one address, in bursts of up to 3× as many;
    /// past it the upgrade answers 429.
    #[arg(long, env = "PAIRCHAT_CONNECTS_PER_SEC_PER_IP", default_value_t = DEFAULT_CONNECTS_PER_SEC_PER_IP, value_parser = positive::<f64>)]
    pub connects_per_sec_per_ip: f64,
    /// Take the client address from the last X-Forwarded-For entry, when the peer is one of
    /// --trusted-proxies (only behind a proxy you trust to set it). true/false, yes/no, 1/0.
    #[arg(long, env = "PAIRCHAT_TRUST_FORWARDED_FOR", value_parser = BoolishValueParser::new(), action = clap::ArgAction::Set, num_args = 0..=1, default_value = "false", default_missing_value = "true")]
    pub trust_forwarded_for: bool,
    /// Proxies (comma-separated CIDRs, e.g. 10.0.0.0/8,::1/128) whose X-Forwarded-For counts
    /// with --trust-forwarded-for (default: loopback, 127.0.0.0/8 and ::1).
    #[arg(long, env = "PAIRCHAT_TRUSTED_PROXIES", value_delimiter = ',', value_parser = cidr)]
    pub trusted_proxies: Vec<IpNet>,
    /// Other sites allowed to embed the chat, comma-separated origins
    /// (e.g. https://example.com,https://blog.example.com). The server's own origin is always
    /// allowed; browsers on any other origin are refused (403).
    #[arg(long, env = "PAIRCHAT_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,
    /// The origin visitors reach the chat at (e.g. https://chat.example.com): required behind
    /// a TLS proxy. Without it the server's own origin is http:// and the request's Host.
    #[arg(long, env = "PAIRCHAT_PUBLIC_ORIGIN")]
    pub public_origin: Option<String>,
    /// Folder of static assets (JS, CSS) to serve under /assets and /embed.js instead of the
    /// copy built into the binary; it must hold embed.js and js/chat.js.
    #[arg(long, env = "PAIRCHAT_ASSETS_DIR")]
    pub assets_dir: Option<PathBuf>,
    /// New chats one address (an IPv6 address by its /64) may start in a clock minute; past
    /// it each further request must carry a solved proof-of-work challenge (0: never ask).
    #[arg(long, env = "PAIRCHAT_CHALLENGE_AFTER", default_value_t = DEFAULT_CHALLENGE_AFTER)]
    pub challenge_after: u32,
    /// The challenge's largest number (at least 1): solving takes on average half as many
    /// SHA-256 hashes (100,000: well under a second in a browser).
    #[arg(long, env = "PAIRCHAT_CHALLENGE_DIFFICULTY", default_value_t = DEFAULT_CHALLENGE_DIFFICULTY, value_parser = positive::<u64>)]
    pub challenge_difficulty: u64,
    /// Seconds during which two visitors who just talked are not paired with each other again,
    /// even when nobody else is waiting.
    #[arg(long, env = "PAIRCHAT_REMATCH_COOLDOWN_SECS", default_value_t = DEFAULT_REMATCH_COOLDOWN_SECS)]
    pub rematch_cooldown_secs: u64,
    /// Seconds a visitor who gave interests (or a language) waits for someone who shares one
    /// before it is paired with anyone, unless it asked not to be (0: at once).
    #[arg(long, env = "PAIRCHAT_INTEREST_FALLBACK_SECS", default_value_t = DEFAULT_INTEREST_FALLBACK_SECS)]
    pub interest_fallback_secs: u64,
    /// Seconds a chat is held for a visitor whose connection broke without a close (its
    /// partner is told `partner_away`), for its page to resume it on a new connection
    /// (`/ws?resume=`); 0: not held (the partner is told `partner lost` at once).
    #[arg(long, env = "PAIRCHAT_RESUME_GRACE_SECS", default_value_t = DEFAULT_RESUME_GRACE_SECS)]
    pub resume_grace_secs: u64,
    /// Seconds shutdown waits for connections to close before exiting anyway (at least 1).
    #[arg(long, env = "PAIRCHAT_SHUTDOWN_TIMEOUT_SECS", default_value_t = DEFAULT_SHUTDOWN_TIMEOUT_SECS, value_parser = positive::<u64>)]
    pub shutdown_timeout_secs: u64,
    /// The file holding the secret key of the visitor hash (32 hex digits), created on first
    /// start. Servers that share a database should share it.
    #[arg(long, env = "PAIRCHAT_SECRET_KEY_FILE", default_value = DEFAULT_SECRET_KEY_FILE)]
    pub secret_key_file: PathBuf,
    /// Seconds an admin stays signed in, however active (at least 1).
    #[arg(long, env = "PAIRCHAT_ADMIN_SESSION_SECS", default_value_t = crate::admin::DEFAULT_SESSION_SECS, value_parser = positive::<u64>)]
    pub admin_session_secs: u64,
    /// Seconds without a request after which an admin is signed out (at least 1).
    #[arg(long, env = "PAIRCHAT_ADMIN_IDLE_SECS", default_value_t = crate::admin::DEFAULT_IDLE_SECS, value_parser = positive::<u64>)]
    pub admin_idle_secs: u64,
    /// Failed admin sign-ins allowed per account name within 15 minutes, from anywhere; past
    /// it that name is refused until the oldest failure is 15 minutes old.
    #[arg(long, env = "PAIRCHAT_ADMIN_LOGIN_FAILURES", default_value_t = crate::admin::login::DEFAULT_FAILURES_PER_ACCOUNT, value_parser = positive::<u32>)]
    pub admin_login_failures: u32,
    /// Failed admin sign-ins allowed per client address (an IPv6 /64) within 15 minutes,
    /// whatever the names tried.
    #[arg(long, env = "PAIRCHAT_ADMIN_LOGIN_FAILURES_PER_ADDRESS", default_value_t = crate::admin::login::DEFAULT_FAILURES_PER_ADDRESS, value_parser = positive::<u32>)]
    pub admin_login_failures_per_address: u32,
    /// Serve even though another live server uses the database (its rows are cleared).
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub moderation: ModerationArgs,
}

/// Reports and bans.
#[derive(Debug, Clone, Args)]
pub struct ModerationArgs {
    /// A visitor reported by this many different visitors within --auto-ban-window-mins is
    /// banned for --auto-ban-mins (0: never).
    #[arg(long, env = "PAIRCHAT_AUTO_BAN_REPORTS", default_value_t = DEFAULT_AUTO_BAN_REPORTS)]
    pub auto_ban_reports: u32,
    /// The window, in minutes, in which --auto-ban-reports reports count together.
    #[arg(long, env = "PAIRCHAT_AUTO_BAN_WINDOW_MINS", default_value_t = DEFAULT_AUTO_BAN_WINDOW_MINS, value_parser = positive::<u64>)]
    pub auto_ban_window_mins: u64,
    /// How long an automatic ban lasts, in minutes (0: no automatic bans).
    #[arg(long, env = "PAIRCHAT_AUTO_BAN_MINS", default_value_t = DEFAULT_AUTO_BAN_MINS)]
    pub auto_ban_mins: u64,
    /// Days a report is kept before it is deleted (ended bans go as long after their expiry).
    #[arg(long, env = "PAIRCHAT_REPORT_RETENTION_DAYS", default_value_t = DEFAULT_REPORT_RETENTION_DAYS, value_parser = positive::<u64>)]
    pub report_retention_days: u64,
    /// How a banned visitor may appeal: a sentence, an address or a link, shown with the ban.
    #[arg(long, env = "PAIRCHAT_BAN_APPEAL")]
    pub ban_appeal: Option<String>,
}

impl ModerationArgs {
    pub fn config(&self) -> ModerationConfig {
        ModerationConfig {
            auto_ban_reports: self.auto_ban_reports,
            auto_ban_window: Duration::from_secs(self.auto_ban_window_mins.saturating_mul(60)),
            auto_ban_duration: Duration::from_secs(self.auto_ban_mins.saturating_mul(60)),
            report_retention: Duration::from_secs(
                self.report_retention_days.saturating_mul(86_400),
            ),
            ban_appeal: self.ban_appeal.clone().filter(|a| !a.trim().is_empty()),
        }
    }
}

fn cidr(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    text.parse::<IpNet>()
        .or_else(|_| text.parse::<std::net::IpAddr>().map(IpNet::from))
        .map_err(|_| format!("{text:?} is not an address or CIDR block"))
}

impl ServeArgs {
    pub fn settings(&self) -> Settings {
        Settings {
            bind: self.bind.clone(),
            metrics_bind: self.metrics_bind.clone(),
            cluster: self.redis_url.clone().map(|redis_url| ClusterConfig {
                redis_url,
                heartbeat: Duration::from_millis(self.node_heartbeat_ms),
                node_timeout: Duration::from_millis(self.node_timeout_ms),
                relay_timeout: Duration::from_millis(self.relay_timeout_ms),
            }),
            database_url: self.db.database_url.clone(),
            workers: self.workers,
            db_pool_size: self.db_pool_size,
            shutdown_timeout: Duration::from_secs(self.shutdown_timeout_secs),
            max_conns_per_ip: self.max_conns_per_ip,
            max_connections: self.max_connections,
            connects_per_sec_per_ip: self.connects_per_sec_per_ip,
            trust_forwarded_for: self.trust_forwarded_for,
            trusted_proxies: self.trusted_proxies.clone(),
            rematch_cooldown: Duration::from_secs(self.rematch_cooldown_secs),
            interest_fallback: Duration::from_secs(self.interest_fallback_secs),
            resume_grace: Duration::from_secs(self.resume_grace_secs),
            allowed_origins: self.allowed_origins.clone(),
            public_origin: self.public_origin.clone(),
            assets_dir: self.assets_dir.clone(),
            secret_key_file: Some(self.secret_key_file.clone()),
            force: self.force,
            challenge: ChallengeConfig {
                after: self.challenge_after,
                difficulty: self.challenge_difficulty,
            },
            session: SessionConfig {
                max_frame_bytes: self.max_frame_bytes,
                max_message_chars: self.max_message_chars,
                heartbeat: Duration::from_secs(self.heartbeat_secs),
                client_timeout: Duration::from_secs(self.client_timeout_secs),
                outbox_capacity: self.outbox_frames,
                rate_per_sec: self.rate_per_sec,
                rate_burst: self.rate_burst,
            },
            admin: AdminSettings {
                session_ttl: Duration::from_secs(self.admin_session_secs),
                idle_ttl: Duration::from_secs(self.admin_idle_secs),
                login: LoginLimits {
                    per_account: self.admin_login_failures,
                    per_address: self.admin_login_failures_per_address,
                    ..LoginLimits::default()
                },
            },
            moderation: self.moderation.config(),
        }
    }
}

/// Runs the parsed command to completion.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        None => serve(cli.serve.settings()),
        Some(Command::Serve(args)) => serve(args.settings()),
        Some(Command::Migrate(args)) => {
            db::check_connect(&args.database_url)?;
            let pool = db::build_pool(&args.database_url, 1)?;
            let applied = db::run_migrations(&mut *db::get(&pool)?)?;
            tracing::info!(applied, "database schema is up to date");
            Ok(())
        }
        Some(Command::Reset(args)) => {
            let url = &args.db.database_url;
            db::check_connect(url)?;
            let pool = db::build_pool(url, 1)?;
            let mut conn = db::get(&pool)?;
            db::run_migrations(&mut conn)?;
            // Held while the tables are emptied, so no server starts on them meanwhile.
            let _lease = ServerLease::reset(url, args.force)?;
            let removed = queries::clear_all(&mut conn).context("cannot empty the chat tables")?;
            tracing::info!(removed, "chat tables emptied");
            Ok(())
        }
        Some(Command::Admin(args)) => admin(args),
    }
}

/// `pairchat admin add|remove|list`: what it prints is for the operator, on stdout.
fn admin(args: AdminArgs) -> anyhow::Result<()> {
    use crate::admin::accounts;
    use std::io::{BufRead, IsTerminal};
    let url = &args.command.db().database_url;
    db::check_connect(url)?;
    let pool = db::build_pool(url, 1)?;
    let mut conn = db::get(&pool)?;
    db::run_migrations(&mut conn)?;
    match args.command {
        AdminCommand::Add { name, .. } => {
            let stdin = std::io::stdin();
            let mut given = String::new();
            if !stdin.is_terminal() {
                stdin
                    .lock()
                    .read_line(&mut given)
                    .context("cannot read the password from stdin")?;
            }
            let given = given.trim_end_matches(['\r', '\n']);
            let generated = given.is_empty();
            let password = if generated {
                accounts::generate_password()?
            } else {
                given.to_owned()
            };
            accounts::add(&mut conn, &name, &password)?;
            if generated {
                println!("added {name}; its password (shown only now): {password}");
            } else {
                println!("added {name}");
            }
        }
        AdminCommand::Remove { name, .. } => {
            accounts::remove(&mut conn, &name)?;
            println!("removed {name}");
        }
        AdminCommand::List { .. } => {
            for account in accounts::list(&mut conn)? {
                let since = crate::admin::rfc3339(account.created_ms);
                println!("{}\tadded {since}", account.name);
            }
        }
    }
    Ok(())
}

fn serve(settings: Settings) -> anyhow::Result<()> {
    actix_web::rt::System::new().block_on(async move {
        let app = Application::build(settings).await?;
        if let Some(metrics) = app.metrics_address() {
            tracing::info!(%metrics, "serving /metrics");
        }
        tracing::info!(address = %app.address(), "pairchat is serving");
        app.run_until_stopped().await
    })
}
