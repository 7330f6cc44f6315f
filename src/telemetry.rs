//! Logging through `tracing`, to stderr as text or as JSON lines (`--log-format`); the level
//! comes from `RUST_LOG` (default `info`, with actix-http's per-connection complaints off).
//! Message text and client addresses are never logged, at any level.

use tracing_subscriber::EnvFilter;

/// actix-http logs a client's malformed request or unfinished WebSocket fragment as an ERROR,
/// one line per connection: any client could flood the log with them. They say nothing about
/// the server, so they are off unless `RUST_LOG` asks for them.
pub const DEFAULT_FILTER: &str = "info,actix_http::h1=off,actix_http::ws=off";

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// a line of text per event, for people
    #[default]
    Text,
    /// a JSON object per line (timestamp, level, fields, target), for log shippers
    Json,
}

pub fn init(format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let log = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second call (tests) keeps the first subscriber.
    let _ = match format {
        LogFormat::Text => log
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
        LogFormat::Json => log.json().with_ansi(false).try_init(),
    };
}

/// For tests: the same filter, written through the test harness so it is captured.
pub fn init_for_tests() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}
