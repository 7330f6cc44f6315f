//! The `pairchat` binary as an admin runs it: help, migrate, reset, start-up clearing, and a
//! graceful stop on SIGTERM.

use std::time::{Duration, Instant};

use pairchat::db::{self, queries};

use crate::helpers::{Client, TestDb, PATIENCE};
use crate::process::{pairchat, Server};

fn rows(url: &str) -> Vec<(i64, bool, Vec<i64>)> {
    let pool = db::build_pool(url, 1).expect("pool");
    queries::chats(&mut db::get(&pool).expect("connection")).expect("chats")
}

fn add_ghost_rows(url: &str) {
    let pool = db::build_pool(url, 1).expect("pool");
    let mut conn = db::get(&pool).expect("connection");
    db::run_migrations(&mut conn).expect("migrations");
    queries::write_transaction(&mut conn, |c| {
        queries::request(c, 21, 21, None)?;
        queries::request(c, 22, 22, None)
    })
    .expect("ghost rows");
}

#[test]
fn help_documents_every_flag_and_its_environment_variable() {
    let out = pairchat().args(["serve", "--help"]).output().expect("runs");
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    for needle in [
        "--bind",
        "PAIRCHAT_BIND",
        "--database-url",
        "DATABASE_URL",
        "--max-message-chars",
        "--heartbeat-secs",
        "--client-timeout-secs",
        "127.0.0.1:8080",
        "sqlite://pairchat.db",
    ] {
        assert!(help.contains(needle), "help lacks {needle}:\n{help}");
    }
    let top = pairchat().arg("--help").output().expect("runs");
    let top = String::from_utf8_lossy(&top.stdout);
    for sub in ["serve", "migrate", "reset"] {
        assert!(top.contains(sub), "top-level help lacks {sub}");
    }
}

#[test]
fn migrate_creates_the_schema_and_reset_empties_the_tables() {
    let db = TestDb::new();
    let out = pairchat()
        .args(["migrate", "--database-url", &db.url])
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(rows(&db.url).is_empty());

    add_ghost_rows(&db.url);
    assert_eq!(rows(&db.url).len(), 1);
    let out = pairchat()
        .arg("reset")
        .env("DATABASE_URL", &db.url)
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(rows(&db.url).is_empty());
}

#[test]
fn a_bad_database_url_is_refused_with_a_clear_message() {
    let out = pairchat()
        .args(["migrate", "--database-url", "postgres://x@y/z"])
        .output()
        .expect("runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unsupported database URL"));
}

#[actix_rt::test]
async fn serve_clears_stale_rows_logs_it_and_stops_gracefully_on_sigterm() {
    let db = TestDb::new();
    let url = db.url.clone();
    tokio::task::spawn_blocking(move || add_ghost_rows(&url))
        .await
        .expect("ghost rows");

    let mut server = Server::start(&db.url);
    let url = format!("ws://{}/ws", server.address);
    let mut a = Client::arrive(&url, "waiting").await;
    let mut b = Client::arrive(&url, "response").await;
    a.expect_type("response").await;
    let mut idle = Client::connect(&url).await;
    assert_eq!(idle.recv_any().await["type"], "online");

    let started = Instant::now();
    server.terminate();
    for c in [&mut a, &mut b, &mut idle] {
        let closed = c.expect_close().await;
        assert_eq!(
            (closed.code, closed.reason.as_str()),
            (1001, "server shutting down")
        );
    }
    let (success, log) = tokio::task::spawn_blocking(move || server.wait(Duration::from_secs(5)))
        .await
        .expect("wait");
    assert!(success, "exit status 0 after SIGTERM; log:\n{log}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        log.contains("cleared stale chat rows") && log.contains("removed=3"),
        "start-up logs what it removed:\n{log}"
    );
}

#[actix_rt::test]
async fn after_a_crash_and_restart_nobody_is_paired_with_a_ghost() {
    let db = TestDb::new();
    let server = Server::start(&db.url);
    let url = format!("ws://{}/ws", server.address);
    let _waiting = Client::arrive(&url, "waiting").await;
    let _a = Client::arrive(&url, "response").await;
    let _b = Client::arrive(&url, "waiting").await;

    // SIGKILL: no chance to clean up; the rows stay behind.
    drop(server);
    let db_url = db.url.clone();
    let ghosts = tokio::task::spawn_blocking(move || rows(&db_url))
        .await
        .expect("rows");
    assert_eq!(
        ghosts.len(),
        2,
        "the killed process left its rows: {ghosts:?}"
    );

    let server = Server::start(&db.url);
    let url = format!("ws://{}/ws", server.address);
    let mut x = Client::arrive(&url, "waiting").await;
    let mut y = Client::arrive(&url, "response").await;
    x.expect_type("response").await;
    x.say("we are both real").await;
    assert_eq!(y.recv().await["message"], "we are both real");
    drop(server);
}

#[actix_rt::test]
async fn info_logs_hold_no_message_text_and_no_client_address() {
    let db = TestDb::new();
    let mut server = Server::start(&db.url);
    let url = format!("ws://{}/ws", server.address);
    let mut a = Client::arrive(&url, "waiting").await;
    let mut b = Client::arrive(&url, "response").await;
    a.expect_type("response").await;
    let secret = "my phone number is 555-0199";
    a.say(secret).await;
    assert_eq!(b.recv().await["message"], secret);
    assert_eq!(a.recv().await["from"], "me");
    a.send_json(serde_json::json!({"type": secret})).await;
    a.expect_error("unknown_type").await;
    let local = a_local_port(&a);
    let own_address = server.address.clone();
    a.leave().await;
    b.expect_close().await;
    server.terminate();
    let (_, log) = tokio::task::spawn_blocking(move || server.wait(Duration::from_secs(5)))
        .await
        .expect("wait");
    assert!(!log.is_empty(), "the server logged at info");
    assert!(!log.contains("555-0199"), "message text in the log:\n{log}");
    assert!(
        !log.contains(&format!(":{local}")),
        "a client's address in the log:\n{log}"
    );
    // The server's own listening address may appear; no other address may.
    for line in log.lines() {
        let line = line.replace(&own_address, "");
        assert!(!line.contains("127.0.0.1"), "an address in the log: {line}");
    }
}

fn a_local_port(c: &Client) -> u16 {
    match c.ws.get_ref() {
        tokio_tungstenite::MaybeTlsStream::Plain(s) => {
            s.local_addr().map(|a| a.port()).unwrap_or(0)
        }
        _ => 0,
    }
}

/// A connection the server cannot finish: its client reads nothing while 128 KiB
/// messages pile up for it, until it is dropped as not reading; what is still queued for it
/// cannot be written. The server must be started with room for such messages and a small
/// outbox (`STUCK_CONNECTION_FLAGS`). Returns the stuck client, to be dropped to free it.
pub async fn a_stuck_connection(server: &Server) -> Client {
    let url = server.ws_url();
    let stuck = Client::arrive(&url, "waiting").await;
    let mut flooder = Client::arrive(&url, "response").await;
    let (_, closed) = flooder
        .say_until_closed(&"x".repeat(128 * 1024), 1_000)
        .await;
    assert_eq!(closed.reason, "partner lost");
    stuck
}

/// Room for 128 KiB messages as fast as a client can send them.
pub const BIG_MESSAGES: &[&str] = &[
    "--max-message-chars",
    "1000000",
    "--max-frame-bytes",
    "4000000",
    "--rate-per-sec",
    "1000000",
    "--rate-burst",
    "1000000",
];

/// What `a_stuck_connection` needs of the server (groups of flags).
pub const STUCK_CONNECTION_FLAGS: &[&[&str]] = &[BIG_MESSAGES, &["--outbox-frames", "2"]];

#[actix_rt::test]
async fn after_sigterm_or_sigint_new_connections_are_refused_while_shutdown_finishes() {
    let checks = ["TERM", "INT"].map(|signal| async move {
        let db = TestDb::new();
        let address = crate::process::free_address();
        let mut cmd = pairchat();
        cmd.args(["serve", "--bind", &address, "--database-url", &db.url])
            .args(["--shutdown-timeout-secs", "8"]);
        for group in STUCK_CONNECTION_FLAGS {
            cmd.args(*group);
        }
        let mut server = Server::spawn(cmd, address);
        // The stuck connection keeps the process up for its shutdown timeout (8 s): time to try.
        let _stuck = a_stuck_connection(&server).await;
        let mut watcher = Client::connect(&server.ws_url()).await;
        assert_eq!(watcher.recv_any().await["type"], "online");

        server.signal(signal);
        let closed = watcher.expect_close().await;
        assert_eq!(
            (closed.code, closed.reason.as_str()),
            (1001, "server shutting down"),
            "SIG{signal}"
        );
        // The listener closes on actix's accept thread, alongside the 1001s: within a few
        // seconds of the signal a new connection must be refused, while the process lives.
        let deadline = Instant::now() + Duration::from_secs(4);
        loop {
            let attempt = tokio::time::timeout(
                Duration::from_secs(1),
                tokio_tungstenite::connect_async(server.ws_url()),
            )
            .await;
            if !matches!(attempt, Ok(Ok(_))) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "SIG{signal}: new connections were still let in 4 s into shutdown"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            server.running(),
            "SIG{signal}: the refusal must come from the live server"
        );
        assert!(
            server
                .wait_for_exit(Duration::from_secs(9) + PATIENCE)
                .await,
            "SIG{signal}: exit status 0"
        );
    });
    futures_util::future::join_all(checks).await;
}
