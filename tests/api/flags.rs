//! Every `serve` flag and its environment variable, through the real binary: each setting is
//! given three ways (`serve --flag V`, `--flag V` with no subcommand, `VAR=V`) and checked by
//! what a client or an operator can observe. The README's configuration table is checked
//! against `--help`, and `--help` against the table here, so a new flag without a row fails.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use futures_util::StreamExt;
use pairchat::db::{self, queries};
use serde_json::json;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

use crate::challenge::{ask, early_in_a_minute};
use crate::cli::{a_stuck_connection, BIG_MESSAGES, STUCK_CONNECTION_FLAGS};
use crate::health::http_get;
use crate::helpers::{wait_for, Client, PATIENCE};
use crate::process::{free_address, pairchat, Server};

type Check = for<'a> fn(&'a mut Running) -> Pin<Box<dyn Future<Output = ()> + 'a>>;

/// One row per `serve` flag: a new flag is one more line here.
struct Setting {
    flag: &'static str,
    env: &'static str,
    /// The value given; `{bind}`, `{db}` and `{dir}` stand for the server's address, its
    /// database URL and a fresh folder of its own, `{metrics}` for another free address,
    /// `{workers}` for one more than the cores.
    /// Empty for a switch (`--flag` alone, `VAR=true`).
    value: &'static str,
    /// Other flags the check needs, in groups, given as flags in every variant.
    with: &'static [&'static [&'static str]],
    /// Whether a live server holds the database before this one starts.
    on_a_live_database: bool,
    expect: Expect,
}

/// What a setting comes to.
#[derive(Clone, Copy)]
enum Expect {
    /// The server starts, and this check sees the setting's effect.
    Serves(Check),
    /// The server refuses to start, saying this. For a setting with no effect a client could
    /// see: the refusal of a value out of range shows that the flag reaches the settings.
    Refused(&'static str),
}

const SETTINGS: &[Setting] = &[
    row(
        "--bind",
        "PAIRCHAT_BIND",
        "{bind}",
        &[],
        serves_on_its_address,
    ),
    row(
        "--metrics-bind",
        "PAIRCHAT_METRICS_BIND",
        "{metrics}",
        &[],
        serves_metrics_there_and_only_there,
    ),
    row(
        "--database-url",
        "DATABASE_URL",
        "{db}",
        &[],
        keeps_its_rows_in_that_database,
    ),
    row(
        "--workers",
        "PAIRCHAT_WORKERS",
        "{workers}",
        &[],
        runs_that_many_workers,
    ),
    // Only the matchmaker (one thread) draws on the pool since /healthz has a connection of its
    // own: no size shows from outside.
    // Nothing answers on port 1: refused on MariaDB (Redis unreachable) and on SQLite (a
    // cluster needs MariaDB), each saying why with the flag's name.
    refused(
        "--redis-url",
        "PAIRCHAT_REDIS_URL",
        "redis://127.0.0.1:1/",
        "--redis-url",
    ),
    refused(
        "--node-heartbeat-ms",
        "PAIRCHAT_NODE_HEARTBEAT_MS",
        "0",
        "node-heartbeat-ms",
    ),
    refused(
        "--node-timeout-ms",
        "PAIRCHAT_NODE_TIMEOUT_MS",
        "0",
        "node-timeout-ms",
    ),
    refused(
        "--relay-timeout-ms",
        "PAIRCHAT_RELAY_TIMEOUT_MS",
        "0",
        "relay-timeout-ms",
    ),
    refused(
        "--db-pool-size",
        "PAIRCHAT_DB_POOL_SIZE",
        "0",
        "db-pool-size",
    ),
    row(
        "--max-message-chars",
        "PAIRCHAT_MAX_MESSAGE_CHARS",
        "5",
        &[],
        refuses_six_characters,
    ),
    row(
        "--max-frame-bytes",
        "PAIRCHAT_MAX_FRAME_BYTES",
        "1024",
        &[],
        closes_a_1500_byte_frame,
    ),
    row(
        "--heartbeat-secs",
        "PAIRCHAT_HEARTBEAT_SECS",
        "1",
        &[],
        pings_a_silent_client_soon,
    ),
    row(
        "--client-timeout-secs",
        "PAIRCHAT_CLIENT_TIMEOUT_SECS",
        "3",
        &[&["--heartbeat-secs", "1", "--resume-grace-secs", "0"]],
        drops_a_client_that_does_not_answer,
    ),
    row(
        "--outbox-frames",
        "PAIRCHAT_OUTBOX_FRAMES",
        "2",
        &[BIG_MESSAGES],
        drops_a_non_reader_after_a_few_frames,
    ),
    row(
        "--rate-per-sec",
        "PAIRCHAT_RATE_PER_SEC",
        "50",
        &[&["--rate-burst", "1"]],
        allows_a_frame_every_50_ms,
    ),
    row(
        "--rate-burst",
        "PAIRCHAT_RATE_BURST",
        "3",
        &[&["--rate-per-sec", "0.001"]],
        allows_three_frames_at_once,
    ),
    row(
        "--max-conns-per-ip",
        "PAIRCHAT_MAX_CONNS_PER_IP",
        "2",
        &[],
        refuses_a_third_connection,
    ),
    row(
        "--trust-forwarded-for",
        "PAIRCHAT_TRUST_FORWARDED_FOR",
        "",
        &[&["--max-conns-per-ip", "1"]],
        counts_forwarded_addresses,
    ),
    row(
        "--rematch-cooldown-secs",
        "PAIRCHAT_REMATCH_COOLDOWN_SECS",
        "0",
        &[],
        pairs_two_who_just_talked_again_at_once,
    ),
    row(
        "--interest-fallback-secs",
        "PAIRCHAT_INTEREST_FALLBACK_SECS",
        "0",
        &[],
        pairs_two_without_a_common_interest_at_once,
    ),
    row(
        "--resume-grace-secs",
        "PAIRCHAT_RESUME_GRACE_SECS",
        "1",
        &[],
        holds_a_broken_chat_that_long,
    ),
    row(
        "--allowed-origins",
        "PAIRCHAT_ALLOWED_ORIGINS",
        "https://a.example,https://b.example",
        &[],
        allows_each_listed_origin,
    ),
    row(
        "--assets-dir",
        "PAIRCHAT_ASSETS_DIR",
        "{dir}/assets",
        &[],
        serves_assets_from_there,
    ),
    row(
        "--shutdown-timeout-secs",
        "PAIRCHAT_SHUTDOWN_TIMEOUT_SECS",
        "6",
        STUCK_CONNECTION_FLAGS,
        waits_that_long_for_a_stuck_connection,
    ),
    row(
        "--max-connections",
        "PAIRCHAT_MAX_CONNECTIONS",
        "2",
        &[],
        answers_a_third_503,
    ),
    row(
        "--connects-per-sec-per-ip",
        "PAIRCHAT_CONNECTS_PER_SEC_PER_IP",
        "1",
        &[],
        refuses_a_fourth_connect_at_once,
    ),
    row(
        "--trusted-proxies",
        "PAIRCHAT_TRUSTED_PROXIES",
        "10.9.9.9,192.0.2.0/24",
        &[&["--trust-forwarded-for", "--max-conns-per-ip", "1"]],
        ignores_forwarded_for_from_loopback,
    ),
    row(
        "--public-origin",
        "PAIRCHAT_PUBLIC_ORIGIN",
        "https://chat.example",
        &[],
        sends_hsts,
    ),
    row(
        "--secret-key-file",
        "PAIRCHAT_SECRET_KEY_FILE",
        "{dir}/my.key",
        &[],
        creates_that_key_file,
    ),
    row(
        "--log-format",
        "PAIRCHAT_LOG_FORMAT",
        "json",
        &[],
        logs_json_lines,
    ),
    row(
        "--challenge-after",
        "PAIRCHAT_CHALLENGE_AFTER",
        "1",
        &[],
        challenges_the_second_chat_a_minute,
    ),
    row(
        "--challenge-difficulty",
        "PAIRCHAT_CHALLENGE_DIFFICULTY",
        "777",
        &[&["--challenge-after", "1"]],
        challenges_up_to_777,
    ),
    row(
        "--auto-ban-reports",
        "PAIRCHAT_AUTO_BAN_REPORTS",
        "1",
        &[],
        bans_after_one_report,
    ),
    row(
        "--auto-ban-mins",
        "PAIRCHAT_AUTO_BAN_MINS",
        "2",
        &[&["--auto-ban-reports", "1"]],
        bans_for_two_minutes,
    ),
    row(
        "--ban-appeal",
        "PAIRCHAT_BAN_APPEAL",
        "Write to appeals@example.com",
        &[&["--auto-ban-reports", "1"]],
        shows_the_appeal_with_a_ban,
    ),
    refused(
        "--auto-ban-window-mins",
        "PAIRCHAT_AUTO_BAN_WINDOW_MINS",
        "0",
        "auto-ban-window-mins",
    ),
    refused(
        "--report-retention-days",
        "PAIRCHAT_REPORT_RETENTION_DAYS",
        "0",
        "report-retention-days",
    ),
    // The admin flags: tests/api/admin.rs shows their effect (through Settings); here, that
    // each reaches the settings.
    refused(
        "--admin-session-secs",
        "PAIRCHAT_ADMIN_SESSION_SECS",
        "0",
        "admin-session-secs",
    ),
    refused(
        "--admin-idle-secs",
        "PAIRCHAT_ADMIN_IDLE_SECS",
        "0",
        "admin-idle-secs",
    ),
    refused(
        "--admin-login-failures",
        "PAIRCHAT_ADMIN_LOGIN_FAILURES",
        "0",
        "admin-login-failures",
    ),
    refused(
        "--admin-login-failures-per-address",
        "PAIRCHAT_ADMIN_LOGIN_FAILURES_PER_ADDRESS",
        "0",
        "admin-login-failures-per-address",
    ),
    // No variable: given only on the command line.
    on_a_live_database(row("--force", "", "", &[], serves_on_its_address)),
];

const fn row(
    flag: &'static str,
    env: &'static str,
    value: &'static str,
    with: &'static [&'static [&'static str]],
    check: Check,
) -> Setting {
    Setting {
        flag,
        env,
        value,
        with,
        on_a_live_database: false,
        expect: Expect::Serves(check),
    }
}

/// A row whose value the server refuses, saying `why`.
const fn refused(
    flag: &'static str,
    env: &'static str,
    value: &'static str,
    why: &'static str,
) -> Setting {
    Setting {
        flag,
        env,
        value,
        with: &[],
        on_a_live_database: false,
        expect: Expect::Refused(why),
    }
}

/// A row started on a database a live server holds.
const fn on_a_live_database(setting: Setting) -> Setting {
    Setting {
        on_a_live_database: true,
        ..setting
    }
}

/// How a setting was given.
#[derive(Debug, Clone, Copy)]
enum Via {
    /// `pairchat serve --flag V`
    Serve,
    /// `pairchat --flag V`: `serve` is the default subcommand.
    NoSubcommand,
    /// `pairchat serve` with the environment variable.
    Env,
}

/// A server started with one setting, and what its check needs to know.
struct Running {
    server: Server,
    /// The address `{metrics}` stood for.
    metrics: String,
    db_url: String,
    dir: PathBuf,
    /// The live server holding the database, for `on_a_live_database` rows.
    _holder: Option<Server>,
    _dir: tempfile::TempDir,
}

/// A file the `--assets-dir` check looks for.
const ASSET_MARKER: &str = "// assets from the folder named on the command line\n";

/// The command for `setting` given `via`, in a fresh folder with its own database.
struct Prepared {
    cmd: std::process::Command,
    address: String,
    metrics: String,
    db_url: String,
    path: PathBuf,
    dir: tempfile::TempDir,
}

fn start(setting: &Setting, via: Via) -> Running {
    let Prepared {
        cmd,
        address,
        metrics,
        db_url,
        path,
        dir,
    } = prepare(setting, via);
    let holder = setting.on_a_live_database.then(|| {
        let mut cmd = pairchat();
        cmd.current_dir(&path);
        let address = free_address();
        cmd.args(["serve", "--bind", &address, "--database-url", &db_url]);
        Server::spawn(cmd, address)
    });
    Running {
        server: Server::spawn(cmd, address),
        metrics,
        db_url,
        dir: path,
        _holder: holder,
        _dir: dir,
    }
}

/// Runs `cmd`; whether it failed within `PATIENCE` (a server that starts is killed then), and
/// its stderr.
fn exits_within(mut cmd: std::process::Command) -> (bool, String) {
    use std::io::Read;
    let mut child = cmd
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("runs");
    let deadline = Instant::now() + PATIENCE;
    let failed = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break !status.success();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break false;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    if let Some(mut stderr) = child.stderr.take() {
        let _ = stderr.read_to_string(&mut err);
    }
    (failed, err)
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("folder");
    for entry in std::fs::read_dir(from).expect("assets") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}

fn prepare(setting: &Setting, via: Via) -> Prepared {
    let dir = tempfile::tempdir().expect("temporary folder");
    let path = dir.path().to_path_buf();
    // A copy of the source tree's assets (the server checks the folder has them), with a
    // chat.js of its own.
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("assets"),
        &path.join("assets"),
    );
    std::fs::write(path.join("assets/js/chat.js"), ASSET_MARKER).expect("asset");
    // The flags' own database is always a SQLite file: they are about the command line.
    let db_url = format!("sqlite://{}", path.join("flags.db").display());
    let address = free_address();
    let metrics = free_address();
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()) + 1;
    let value = setting
        .value
        .replace("{bind}", &address)
        .replace("{metrics}", &metrics)
        .replace("{db}", &db_url)
        .replace("{dir}", &path.display().to_string())
        .replace("{workers}", &workers.to_string());

    let mut cmd = pairchat();
    // Relative paths (the default database among them) land in the test's folder.
    cmd.current_dir(&path);
    if !matches!(via, Via::NoSubcommand) {
        cmd.arg("serve");
    }
    if setting.flag != "--bind" {
        cmd.args(["--bind", &address]);
    }
    if setting.flag != "--database-url" {
        cmd.args(["--database-url", &db_url]);
    }
    for group in setting.with {
        cmd.args(*group);
    }
    match via {
        Via::Serve | Via::NoSubcommand => {
            cmd.arg(setting.flag);
            if !setting.value.is_empty() {
                cmd.arg(&value);
            }
        }
        Via::Env => {
            let value = if setting.value.is_empty() {
                "true"
            } else {
                &value
            };
            cmd.env(setting.env, value);
        }
    }
    Prepared {
        cmd,
        address,
        metrics,
        db_url,
        path,
        dir,
    }
}

#[actix_rt::test]
async fn every_serve_setting_works_as_a_flag_without_the_subcommand_and_as_a_variable() {
    // To work on one row: PAIRCHAT_TEST_ONLY_FLAG=--workers cargo test --test api flags::
    let only = std::env::var("PAIRCHAT_TEST_ONLY_FLAG").ok();
    for setting in SETTINGS {
        if only.as_deref().is_some_and(|only| only != setting.flag) {
            continue;
        }
        let mut ways = vec![Via::Serve, Via::NoSubcommand];
        if !setting.env.is_empty() {
            ways.push(Via::Env);
        }
        let variants = ways.into_iter().map(|via| async move {
            eprintln!("checking {} via {via:?}", setting.flag);
            match setting.expect {
                Expect::Serves(check) => {
                    let mut running = tokio::task::spawn_blocking(move || start(setting, via))
                        .await
                        .expect("start");
                    check(&mut running).await;
                }
                Expect::Refused(why) => {
                    let Prepared { cmd, dir, .. } = prepare(setting, via);
                    let (refused, err) = tokio::task::spawn_blocking(move || exits_within(cmd))
                        .await
                        .expect("runs");
                    assert!(refused, "{} {via:?} was accepted", setting.flag);
                    assert!(
                        err.contains(why),
                        "{} {via:?}: no {why:?} in {err}",
                        setting.flag
                    );
                    drop(dir);
                }
            }
        });
        join_all(variants).await;
    }
}

/// Only `--help` and `--version` are not settings.
fn help_flags(help: &str) -> Vec<String> {
    let mut flags: Vec<String> = parse_help(help).into_iter().map(|e| e.flag).collect();
    flags.retain(|f| f != "--help" && f != "--version");
    flags
}

#[test]
fn every_flag_in_help_has_a_row_in_the_settings_table() {
    let help = run_help(&["serve", "--help"]);
    let mut in_help = help_flags(&help);
    let mut in_table: Vec<String> = SETTINGS.iter().map(|s| s.flag.to_owned()).collect();
    in_help.sort();
    in_table.sort();
    assert_eq!(
        in_help, in_table,
        "each serve flag needs a row in flags.rs SETTINGS (and only those)"
    );
    // The same flags are accepted with no subcommand.
    let mut top = help_flags(&run_help(&["--help"]));
    top.sort();
    assert_eq!(
        top, in_help,
        "`pairchat --help` and `pairchat serve --help`"
    );
}

#[test]
fn the_readme_configuration_table_matches_help() {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README.md");
    let table = readme_table(&readme);
    let help = parse_help(&run_help(&["serve", "--help"]));
    let help: Vec<&HelpEntry> = help
        .iter()
        .filter(|e| e.flag != "--help" && e.flag != "--version")
        .collect();
    let mut readme_flags: Vec<&str> = table.iter().map(|r| r.flag.as_str()).collect();
    let mut help_flags: Vec<&str> = help.iter().map(|e| e.flag.as_str()).collect();
    readme_flags.sort();
    help_flags.sort();
    assert_eq!(readme_flags, help_flags, "README table rows against --help");
    for entry in help {
        let row = table
            .iter()
            .find(|r| r.flag == entry.flag)
            .expect("checked above");
        assert_eq!(
            row.env.as_deref(),
            entry.env.as_deref(),
            "{}: environment variable",
            entry.flag
        );
        match (&row.default, &entry.default) {
            (Some(readme), Some(help)) => assert_eq!(
                readme, help,
                "{}: README says default `{readme}`, --help says `{help}`",
                entry.flag
            ),
            (None, None) => {}
            (readme, help) => panic!(
                "{}: README default {readme:?} (a `value` or words for none), --help {help:?}",
                entry.flag
            ),
        }
    }
}

fn run_help(args: &[&str]) -> String {
    let out = pairchat().args(args).output().expect("runs");
    assert!(out.status.success(), "{args:?}");
    String::from_utf8(out.stdout).expect("UTF-8 help")
}

#[derive(Debug)]
struct HelpEntry {
    flag: String,
    env: Option<String>,
    default: Option<String>,
}

/// clap's help: an entry starts with a line `  [-x, ]--flag [<VALUE>]`; the lines after it,
/// up to the next entry, hold its text with `[env: VAR=]` and `[default: VALUE]`.
fn parse_help(help: &str) -> Vec<HelpEntry> {
    let mut entries: Vec<(String, String)> = Vec::new();
    for line in help.lines() {
        let trimmed = line.trim_start();
        let starts_entry = line.starts_with("  ")
            && (trimmed.starts_with("--")
                || (trimmed.starts_with('-') && trimmed.get(2..4) == Some(", ")));
        if starts_entry {
            let flag = trimmed
                .split([' ', '='])
                .map(|w| w.trim_end_matches(','))
                .find(|w| w.starts_with("--"))
                .unwrap_or_default()
                .to_owned();
            entries.push((flag, String::new()));
        } else if let Some((_, text)) = entries.last_mut() {
            text.push(' ');
            text.push_str(trimmed);
        }
    }
    let bracket = |text: &str, key: &str| {
        let start = text.rfind(key)? + key.len();
        text[start..].split(']').next().map(str::to_owned)
    };
    entries
        .into_iter()
        .map(|(flag, text)| HelpEntry {
            flag,
            env: bracket(&text, "[env: ").map(|e| e.split('=').next().unwrap_or("").to_owned()),
            default: bracket(&text, "[default: "),
        })
        .collect()
}

#[derive(Debug)]
struct ReadmeRow {
    flag: String,
    env: Option<String>,
    /// The first `code` in the default column; `None` when it says in words there is none.
    default: Option<String>,
}

/// The rows of the table under `### Configuration`: `| flag | environment | default | … |`.
fn readme_table(readme: &str) -> Vec<ReadmeRow> {
    let section = readme
        .split("### Configuration")
        .nth(1)
        .expect("README has a Configuration section");
    let code = |cell: &str| cell.split('`').nth(1).map(str::to_owned);
    let rows: Vec<ReadmeRow> = section
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .filter(|l| l.starts_with("| `"))
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            ReadmeRow {
                flag: code(cells[1]).unwrap_or_default(),
                env: code(cells[2]),
                default: code(cells[3]),
            }
        })
        .collect();
    assert!(!rows.is_empty(), "no rows found in the README table");
    rows
}

// The checks: what the setting changes, seen from outside.

fn serves_on_its_address(r: &mut Running) -> Pin<Box<dyn Future<Output = ()> + '_>> {
    Box::pin(async move {
        let mut c = Client::connect(&r.server.ws_url()).await;
        assert_eq!(c.recv_any().await["type"], "online");
    })
}

fn serves_metrics_there_and_only_there(r: &mut Running) -> Pin<Box<dyn Future<Output = ()> + '_>> {
    Box::pin(async move {
        let metrics = r.metrics.parse().expect("address");
        let (status, body) = http_get(metrics, "/metrics").await;
        assert_eq!(status, 200, "{body}");
        assert!(body.contains("pairchat_connections{node="), "{body}");
        let main = r.server.address.parse().expect("address");
        assert_eq!(http_get(main, "/metrics").await.0, 404);
    })
}

fn keeps_its_rows_in_that_database(r: &mut Running) -> Pin<Box<dyn Future<Output = ()> + '_>> {
    Box::pin(async move {
        let _waiting = Client::arrive(&r.server.ws_url(), "waiting").await;
        let url = r.db_url.clone();
        let rows = tokio::task::spawn_blocking(move || {
            let pool = db::build_pool(&url, 1).expect("pool");
            queries::chats(&mut db::get(&pool).expect("connection")).expect("rows")
        })
        .await
        .expect("rows");
        assert_eq!(rows.len(), 1, "the waiting visitor's row: {rows:?}");
    })
}

fn runs_that_many_workers(r: &mut Running) -> Pin<Box<dyn Future<Output = ()> + '_>> {
    Box::pin(async move {
        let want = std::thread::available_parallelism().map_or(1, |n| n.get()) + 1;
        let pid = r.server.pid();
        let workers = || worker_threads(pid);
        let deadline = Instant::now() + PATIENCE;
        while workers() != want {
            assert!(
                Instant::now() < deadline,
                "{} worker threads, not {want}",
                workers()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
}

/// The HTTP worker threads of process `pid`. Each actix worker runs on an arbiter thread,
/// "actix-rt|system:0|arbiter:N" (Linux keeps 15 characters of a thread's name); the main
/// thread keeps the binary's name.
fn worker_threads(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|tasks| {
            tasks
                .filter_map(|t| t.ok())
                .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
                .filter(|comm| comm.starts_with("actix-rt|system"))
                .count()
        })
        .unwrap_or(0)
}

fn refuses_six_characters(r: &mut Running) -> Pin<Box<dyn Future<Output = ()> + '_>> {
    Box::pin(async move {
        let url = r.server.ws_url();
        let mut a = Client::arrive(&url, "waiting").await;
        let mut b = Client::arrive(&url, "response").await;
        a.expect_type("response").await;
        a.say("123456").await;
        a.expect_error("message_too_long").await;
        a.say("12345").await;
        assert_eq!(b.recv().await["message"], "12345");
    })
}

fn closes_a_1500_byte_frame(r: &mut Running) -> Pin<Box<dyn Future<Output = ()> + '_>> {
    Box::pin(async move {
        let mut c = Client::connect(&r.server.ws_url()).await;
        c.say(&"x".repeat(900)).await;
        c.expect_error("not_paired").await;
        c.say(&"x".repeat(1_500)).await;
        assert_eq!(c.expect_close().await.code, 1009);
    })
}

fn pings_a_silent_client_soon(r: &mut Running) -> Pin<Box<dyn Future<Output = ()> + '_>> {
    Box::pin(async move {
        let mut c = Client::connect(&r.server.ws_url()).await;
        // The default (10 s) would send nothing in this time.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(6);
        loop {
            match tokio::time::timeout_at(deadline, c.ws.next()).await {
                Ok(Some(Ok(Message::Ping(_)))) => return,
                Ok(Some(Ok(_))) => continue,
                other => panic!("no ping within 6 s: {other:?}"),
            }
        }
    })
}

fn drops_a_client_that_does_not_answer(r: &mut Running) -> Pin<Box<dyn Future<Output = ()> + '_>> {
    Box::pin(async move {
        let url = r.server.ws_url();
        // `silent` is never read again, so it never answers a ping: dropped after 3 s, at the
        // next tick; the default (30 s) would keep it past PATIENCE. `b` reads, and has 3 s
        // to answer each ping even on a loaded machine.
        let mut silent = Client::arrive(&url, "waiting").await;
        let mut b = Client::arrive(&url, "response").await;
        silent.expect_type("response").await;
        let closed = b.expect_close().await;
        assert_eq!(
            (closed.code, closed.reason.as_str()),
            (1000, "partner lost")
        );
    })
}

/// Messages of 128 KiB to a partner that reads nothing: the kernel's socket buffers
/// and actix-ws's 32-frame queue take a few dozen; then two in the outbox and it is dropped.
/// The default outbox of 256 would take 256 more.
fn drops_a_non_reader_after_a_few_frames(
    r: &mut Running,
) -> Pin<Box<dyn Future<Output = ()> + '_>> {
    Box::pin(async move {
        let url = r.server.ws_url();
        let _non_reader = Client::arrive(&url, "waiting").await;
        let mut flooder = Client::arrive(&url, "response").await;
        let (sent, closed) = flooder.say_until_closed(&"x".repeat(128 * 1024), 250).await;
        eprintln!("outbox: dropped after {sent}");
        assert_eq!(closed.reason, "partner lost", "after {sent} messages");
        assert!(sent < 200, "the non-reader took {sent} messages");
    })
}

// The rate checks send messages with no partner (answered `not_paired`): messages are what the
// limit is for whatever other frames later get budgets of their own.
fn allows_a_frame_every_50_ms(r: &mut Running) -> Pin<Box<dyn Future<Output = ()> + '_>> {
    Box::pin(async move {
        let mut c = Client::connect(&r.server.ws_url()).await;
        // Each frame goes once the last one is answered and 50 ms have passed, so the server
        // sees them at least 50 ms apart: 2.5 tokens at 50/s, a quarter at the default 5/s.
        for _ in 0..6 {
            c.say("x").await;
            c.expect_error("not_paired").await;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
}

fn allows_three_frames_at_once(r: &mut Running) -> Pin<Box<dyn Future<Output = ()> + '_>> {
    Box::pin(async move {
        let mut c = Client::connect(&r.server.ws_url()).await;
        for _ in 0..4 {
            c.say("x").await;
        }
        for _ in 0..3 {
            c.expect_error("not_paired").await;
        }
        c.expect_error("rate_limited").await;
    })
}

fn refuses_a_third_connection(r: &mut Running) -> Pin<Box<dyn Future<Output = ()> + '_>> {
    Box::pin(async move {
        let url = r.server.ws_url();
        let _a = Client::connect(&url).await;
        let _b = Client::connect(&url).await;
        match tokio_tungstenite::connect_async(url.as_str()).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(r)) => {
                assert_eq!(r.status().as_u16(), 429)
            }
            other => panic!("expected 429, got {:?}", other.map(|_| ())),
        }
    })
}

async fn connect_as(url: &str, forwarded_for: &str) -> Result<Client, u16> {
    connect_with(url, "x-forwarded-for", forwarded_for).await
}

async fn connect_with(url: &str, header: &'static str, value: &str) -> Result<Client, u16> {
    let mut request = url.into_client_request().expect("request");
    request
        .headers_mut()
        .insert(header, HeaderValue::from_str(value).expect("header"));
    match tokio_tungstenite::connect_async(request).await {
        Ok((ws, _)) => Ok(Client { ws }),
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => Err(r.status().as_u16()),
        Err(e) => panic!("{e}"),
    }
}

fn counts_forwarded_addresses(r: &mut Running) -> Pin<Box<dyn Future<Output = ()> + '_>> {
    Box::pin(async move {
        let url = r.server.ws_url();
        let _a = connect_as(&url, "10.0.0.1").await.expect("first address");
        let _b = connect_as(&url, "10.0.0.2").await.expect("second address");
        assert_eq!(connect_as(&url, "10.0.0.2").await.err(), Some(429));
    })
}

fn pairs_two_who_just_talked_again_at_once(
    r: &mut Running,
) -> Pin<Box<dyn Future<Output = ()> + '_>> {
    Box::pin(async move {
        let url = |who: &str| format!("{}?visitor={who}", r.server.ws_url());
        let a = Client::arrive(&url("alice"), "waiting").await;
        let mut b = Client::arrive(&url("bob"), "response").await;
        a.leave().await;
        b.expect_close().await;
        let _b2 = Client::arrive(&url("bob"), "waiting").await;
        // With the default cooldown alice would wait too.
        let _a2 = Client::arrive(&url("alice"), "response").await;
    })
}

fn pairs_two_without_a_common_interest_at_once(
    r: &mut Running,
) -> Pin<Box<dyn Future<Output = ()> + '_>> {
    Box::pin(async move {
        let url = r.server.ws_url();
        let ask = |tag: &'static str| serde_json::json!({"type": "request", "interests": [tag]});
        let mut a = Client::connect(&url).await;
        a.send_json(ask("music")).await;
        a.expect_type("waiting").await;
        let mut b = Client::connect(&url).await;
        b.send_json(ask("go")).await;
        // With the default fallback (10 s) b would wait too.
        assert_eq!(
            b.expect_type("response").await["common"],
            serde_json::json!([])
        );
        a.expect_type("response").await;
    })
}

fn holds_a_broken_chat_that_long(r: &mut Running) -> Pin<Box<dyn Future<Output = ()> + '_>> {
    Box::pin(async move {
        let url = r.server.ws_url();
        let mut a = Client::arrive(&url, "waiting").await;
        let mut b = Client::arrive(&url, "response").await;
        // A chat both sides were told of: a break in the moment of pairing is another story
        // (this flag's is how long a chat is held).
        a.expect_type("response").await;
        crate::resume::break_connection(a, false);
        b.expect_type("partner_away").await;
        // Not resumed: lost after a second (the default, 15 s, would outlast PATIENCE).
        let closed = b.expect_close().await;
        assert_eq!(
            (closed.code, closed.reason.as_str()),
            (1000, "partner lost")
        );
    })
}

/// Alice is reported once by bob; what her next connection is told.
async fn banned_after_one_report(r: &Running) -> serde_json::Value {
    let url = |who: &str| format!("{}?visitor={who}", r.server.ws_url());
    let mut alice = Client::arrive(&url("alice"), "waiting").await;
    let mut bob = Client::arrive(&url("bob"), "response").await;
    alice.expect_type("response").await;
    bob.send_json(serde_json::json!({"type": "report", "reason": "spam"}))
        .await;
    bob.expect_type("reported").await;
    alice.expect_close().await;
    let mut again = Client::connect(&url("alice")).await;
    again.expect_error("banned").await
}

fn bans_after_one_report(r: &mut Running) -> Pin<Box<dyn Future<Output = ()> + '_>> {
    Box::pin(async move {
        // With the default (three reporters) one report bans nobody.
        banned_after_one_report(r).await;
    })
}

fn bans_for_two_minutes(r: &mut Running) -> Pin<Box<dyn Future<Output = ()> + '_>> {
    Box::pin(async move {
        let banned = banned_after_one_report(r).await;
        let left = banned["until_ms"].as_i64().expect("until_ms") - pairchat::moderation::now_ms();
        assert!((100_000..=120_000).contains(&left), "{left} ms: {banned}");
    })
}

fn shows_the_appeal_with_a_ban(r: &mut Running) -> Pin<Box<dyn Future<Output = ()> + '_>> {
    Box::pin(async move {
        let banned = banned_after_one_report(r).await;
        assert_eq!(banned["appeal"], "Write to appeals@example.com", "{banned}");
    })
}

fn allows_each_listed_origin(r: &mut Running) -> Pin<Box<dyn Future<Output = ()> + '_>> {
    Box::pin(async move {
        let url = r.server.ws_url();
        for listed in ["https://a.example", "https://b.example"] {
            assert!(
                connect_with(&url, "origin", listed).await.is_ok(),
                "{listed} is listed"
            );
        }
        let unlisted = connect_with(&url, "origin", "https://c.example").await;
        assert_eq!(unlisted.err(), Some(403));
    })
}

fn serves_assets_from_there(r: &mut Running) -> Pin<Box<dyn Future<Output = ()> + '_>> {
    Box::pin(async move {
        let address = r.server.address.parse().expect("address");
        let (status, body) = http_get(address, "/assets/js/chat.js").await;
        assert_eq!((status, body.as_str()), (200, ASSET_MARKER));
    })
}

/// A connection the server cannot finish keeps shutdown waiting as long as it is told to
/// (the default is 3 s).
fn waits_that_long_for_a_stuck_connection(
    r: &mut Running,
) -> Pin<Box<dyn Future<Output = ()> + '_>> {
    Box::pin(async move {
        let _stuck = a_stuck_connection(&r.server).await;
        let started = Instant::now();
        r.server.terminate();
        let exited = r
            .server
            .wait_for_exit(Duration::from_secs(7) + PATIENCE)
            .await;
        let took = started.elapsed();
        eprintln!("shutdown took {took:?}");
        assert!(exited, "exit status 0");
        assert!(
            took >= Duration::from_secs(5),
            "shutdown took only {took:?}"
        );
    })
}

fn answers_a_third_503(r: &mut Running) -> Pin<Box<dyn Future<Output = ()> + '_>> {
    Box::pin(async move {
        let url = r.server.ws_url();
        let _a = Client::connect(&url).await;
        let _b = Client::connect(&url).await;
        assert_eq!(upgrade_status(&url).await, Some(503));
    })
}

/// The status a refused upgrade is answered with; `None` when it is let in.
async fn upgrade_status(url: &str) -> Option<u16> {
    match tokio_tungstenite::connect_async(url).await {
        Ok(_) => None,
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => Some(r.status().as_u16()),
        Err(e) => panic!("{e}"),
    }
}

/// One a second, in bursts of three: a fourth at once is refused (the default, 10 a second,
/// takes 30 at once).
fn refuses_a_fourth_connect_at_once(r: &mut Running) -> Pin<Box<dyn Future<Output = ()> + '_>> {
    Box::pin(async move {
        let url = r.server.ws_url();
        let mut open = Vec::new();
        for _ in 0..3 {
            open.push(Client::connect(&url).await);
        }
        assert_eq!(upgrade_status(&url).await, Some(429));
    })
}

/// Loopback is not in the list, so the test's own X-Forwarded-For is not believed: both
/// connections count as 127.0.0.1, and the second is over the cap of one.
fn ignores_forwarded_for_from_loopback(r: &mut Running) -> Pin<Box<dyn Future<Output = ()> + '_>> {
    Box::pin(async move {
        let url = r.server.ws_url();
        let _a = connect_as(&url, "10.0.0.1").await.expect("first");
        assert_eq!(connect_as(&url, "10.0.0.2").await.err(), Some(429));
    })
}

fn sends_hsts(r: &mut Running) -> Pin<Box<dyn Future<Output = ()> + '_>> {
    Box::pin(async move {
        let address = r.server.address.parse().expect("address");
        let (status, head) = crate::health::http_head(address, "/", "").await;
        assert_eq!(status, 200);
        assert!(head.contains("strict-transport-security:"), "{head}");
    })
}

fn logs_json_lines(r: &mut Running) -> Pin<Box<dyn Future<Output = ()> + '_>> {
    Box::pin(async move {
        let log = r.server.log_so_far();
        for line in log.lines() {
            let event: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
            assert!(event["fields"]["message"].is_string(), "{line}");
        }
        assert!(log.contains("pairchat is serving"), "{log}");
    })
}

fn creates_that_key_file(r: &mut Running) -> Pin<Box<dyn Future<Output = ()> + '_>> {
    Box::pin(async move {
        let key = std::fs::read_to_string(r.dir.join("my.key")).expect("the key file");
        assert_eq!(key.trim().len(), 32, "32 hex digits: {key:?}");
    })
}

/// Connects, waiting out refusals for the connect rate; a refusal for anything else is
/// returned as its error code.
async fn connect_paced(
    url: &str,
) -> Result<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    String,
> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        match tokio_tungstenite::connect_async(url).await {
            Ok((ws, _)) => return Ok(ws),
            Err(tokio_tungstenite::tungstenite::Error::Http(r)) => {
                let body = String::from_utf8_lossy(r.body().as_deref().unwrap_or_default());
                let code: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
                let code = code["error"].as_str().unwrap_or_default().to_owned();
                if code != "too_many_connects" || Instant::now() > deadline {
                    return Err(code);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("{e}"),
        }
    }
}

/// Starts chats until one is asked for a challenge (at most three: with one allowed a minute,
/// the second or, across the turn of a minute, the third is), and returns that challenge.
async fn challenge_within_three_chats(url: &str) -> serde_json::Value {
    let (_first, answer) = ask(url, None).await;
    assert_eq!(answer["type"], "waiting", "{answer}");
    for _ in 0..2 {
        let (_client, answer) = ask(url, None).await;
        if answer["error"] == "challenge_required" {
            return answer["challenge"].clone();
        }
    }
    panic!("no challenge after three chats");
}

fn challenges_the_second_chat_a_minute(r: &mut Running) -> Pin<Box<dyn Future<Output = ()> + '_>> {
    Box::pin(async move {
        challenge_within_three_chats(&r.server.ws_url()).await;
    })
}

fn challenges_up_to_777(r: &mut Running) -> Pin<Box<dyn Future<Output = ()> + '_>> {
    Box::pin(async move {
        let challenge = challenge_within_three_chats(&r.server.ws_url()).await;
        assert_eq!(challenge["maxnumber"], 777, "{challenge}");
    })
}

/// The README's default for `flag`, as a number.
fn readme_default(flag: &str) -> usize {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README.md");
    readme_table(&readme)
        .into_iter()
        .find(|r| r.flag == flag)
        .and_then(|r| r.default)
        .and_then(|d| d.parse().ok())
        .unwrap_or_else(|| panic!("README gives {flag} a number as its default"))
}

/// With nothing but an address to listen on, the server behaves as the README's defaults say.
#[actix_rt::test]
async fn with_no_settings_the_server_keeps_the_readme_defaults() {
    use futures_util::SinkExt;
    let dir = tempfile::tempdir().expect("temporary folder");
    let address = free_address();
    let mut cmd = pairchat();
    cmd.current_dir(dir.path()).args(["--bind", &address]);
    let server = Server::spawn(cmd, address);
    let url = server.ws_url();

    // sqlite://pairchat.db: a file in the working directory.
    assert!(dir.path().join("pairchat.db").exists(), "no ./pairchat.db");

    // No --metrics-bind: no metrics listener, and none on the main one.
    assert!(
        !server.log_so_far().contains("/metrics"),
        "{}",
        server.log_so_far()
    );
    let main = server.address.parse().expect("address");
    assert_eq!(http_get(main, "/metrics").await.0, 404);

    // --workers 0: one per core.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert_eq!(readme_default("--workers"), 0);
    let pid = server.pid();
    wait_for("one worker per core", || async {
        worker_threads(pid) == cores
    })
    .await;

    // --max-message-chars and --max-frame-bytes.
    let chars = readme_default("--max-message-chars");
    let bytes = readme_default("--max-frame-bytes");
    let mut a = Client::arrive(&url, "waiting").await;
    let mut b = Client::arrive(&url, "response").await;
    a.expect_type("response").await;
    a.say(&"x".repeat(chars)).await;
    assert_eq!(
        b.recv().await["message"].as_str().map(str::len),
        Some(chars)
    );
    assert_eq!(a.recv().await["from"], "me");
    a.say(&"x".repeat(chars + 1)).await;
    a.expect_error("message_too_long").await;
    // A frame just under the byte limit is read (and refused for its length)...
    a.say(&"x".repeat(bytes - 100)).await;
    a.expect_error("message_too_long").await;
    // ...one over it closes.
    b.say(&"x".repeat(bytes)).await;
    assert_eq!(b.expect_close().await.code, 1009);

    // --rate-burst: that many frames at once are answered, then rate_limited (a token
    // comes back every 1/5 s, so a slow run may let one or two more through).
    let burst = readme_default("--rate-burst");
    let rate = readme_default("--rate-per-sec") as f64;
    let mut c = Client::connect(&url).await;
    let started = Instant::now();
    for _ in 0..burst + 5 {
        let frame = Message::text(json!({"type": "message", "message": "x"}).to_string());
        c.ws.feed(frame).await.expect("queue");
    }
    c.ws.flush().await.expect("send");
    let mut answered = 0;
    for _ in 0..burst + 5 {
        let frame = c.expect_type("error").await;
        answered += usize::from(frame["error"] == "not_paired");
    }
    let refills = (started.elapsed().as_secs_f64() * rate).ceil() as usize;
    assert!(
        (burst..=burst + refills).contains(&answered),
        "{answered} of {} frames answered with a burst of {burst}",
        burst + 5
    );
    drop(c);

    // --max-conns-per-ip: that many at once, not one more. Connections are opened no faster
    // than --connects-per-sec-per-ip lets them (a refusal for the rate is tried again).
    let cap = readme_default("--max-conns-per-ip");
    drop(a);
    drop(b);
    // The closed ones may take a moment to give their slots back.
    wait_for("exactly the cap to be let in", || async {
        let mut open = Vec::new();
        for _ in 0..cap {
            match connect_paced(&url).await {
                Ok(ws) => open.push(ws),
                Err(_) => return false,
            }
        }
        connect_paced(&url).await.err().as_deref() == Some("too_many_connections")
    })
    .await;

    // --allowed-origins none: another site's page is refused.
    assert_eq!(
        connect_with(&url, "origin", "https://elsewhere.example")
            .await
            .err(),
        Some(403)
    );

    // --assets-dir none: the copy of assets/ built into the binary.
    let (status, body) = http_get(
        server.address.parse().expect("address"),
        "/assets/js/chat.js",
    )
    .await;
    let source =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/js/chat.js"))
            .expect("chat.js");
    assert_eq!((status, body == source), (200, true));

    // --challenge-after and --challenge-difficulty: after that many chats from one address in
    // a minute, the next is asked to solve a challenge that hard (on a server of its own: the
    // chats above count).
    let after = readme_default("--challenge-after");
    let difficulty = readme_default("--challenge-difficulty");
    let address = free_address();
    let mut cmd = pairchat();
    cmd.current_dir(dir.path()).args([
        "--bind",
        &address,
        "--database-url",
        "sqlite://challenge.db",
    ]);
    let fresh = Server::spawn(cmd, address);
    early_in_a_minute().await;
    let mut chats = Vec::new();
    for i in 0..after {
        let (client, answer) = ask(&fresh.ws_url(), None).await;
        assert!(
            ["waiting", "response"].contains(&answer["type"].as_str().unwrap_or("")),
            "chat {i}: {answer}"
        );
        chats.push(client);
    }
    let (_over, answer) = ask(&fresh.ws_url(), None).await;
    assert_eq!(answer["error"], "challenge_required", "{answer}");
    assert_eq!(answer["challenge"]["maxnumber"], difficulty as u64);
}
