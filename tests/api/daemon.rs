//! The binary run as an operator runs it: one database shared by a live server and a second
//! server or `reset`, passwords and client junk kept out of the log, and the memory a client
//! streaming an oversized frame can cost.

use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;

use crate::hardening::{client_header, RawWs};
use crate::helpers::{Client, TestDb, PATIENCE};
use crate::process::{free_address, pairchat, Server};

/// A running `pairchat serve`, killed when dropped.
/// Resident memory of process `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// Runs the binary to its end: `(success, stderr)`.
async fn run(args: &[&str]) -> (bool, String) {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let out = pairchat().args(&args).output().expect("runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    })
    .await
    .expect("blocking")
}

#[actix_rt::test]
async fn a_second_server_on_a_live_database_clears_nothing_and_is_refused() {
    let db = TestDb::new();
    let live = Server::start(&db.url);
    let mut waiting = Client::arrive(&live.ws_url(), "waiting").await;

    // Same port: it cannot listen, and fails before touching the rows.
    let (ok, log) = run(&["serve", "--bind", &live.address, "--database-url", &db.url]).await;
    assert!(!ok, "a second server on a taken port fails");
    assert!(!log.contains("cleared stale chat rows"), "{log}");
    // Another port: the database is in use.
    let (ok, log) = run(&[
        "serve",
        "--bind",
        &free_address(),
        "--database-url",
        &db.url,
    ])
    .await;
    assert!(!ok);
    assert!(
        log.contains("another pairchat server is using this database"),
        "{log}"
    );
    assert!(log.contains("--force"), "{log}");
    // `reset` too.
    let (ok, log) = run(&["reset", "--database-url", &db.url]).await;
    assert!(!ok);
    assert!(
        log.contains("another pairchat server is using this database"),
        "{log}"
    );

    // The live server's waiting visitor was never stranded: the next arrival finds them.
    let _b = Client::arrive(&live.ws_url(), "response").await;
    waiting.expect_type("response").await;

    // With --force an operator may clear anyway.
    let (ok, log) = run(&["reset", "--force", "--database-url", &db.url]).await;
    assert!(ok, "{log}");
    assert!(log.contains("chat tables emptied"), "{log}");
}

#[actix_rt::test]
async fn after_the_live_server_dies_its_database_is_free_at_once() {
    let db = TestDb::new();
    let live = Server::start(&db.url);
    drop(live); // SIGKILL: the lease goes with the process
    let (ok, log) = run(&["reset", "--database-url", &db.url]).await;
    assert!(ok, "{log}");
}

#[actix_rt::test]
async fn a_database_password_never_reaches_the_log() {
    // Refused for want of MySQL support, or unreachable (port 1): either way it is said.
    for args in [
        [
            "migrate",
            "--database-url",
            "mysql://app:S3cretPass@127.0.0.1:1/chat",
        ],
        [
            "reset",
            "--database-url",
            "mysql://app:S3cretPass@127.0.0.1:1/chat",
        ],
    ] {
        let (ok, log) = run(&args).await;
        assert!(!ok);
        assert!(
            log.contains("app"),
            "the message still names the URL: {log}"
        );
        assert!(!log.contains("S3cretPass"), "{log}");
    }
}

#[actix_rt::test]
async fn client_junk_writes_no_error_lines_at_the_default_level() {
    let db = TestDb::new();
    let address = free_address();
    let mut cmd = pairchat();
    cmd.args(["serve", "--bind", &address, "--database-url", &db.url])
        .env("RUST_LOG", pairchat::telemetry::DEFAULT_FILTER);
    let mut server = Server::spawn(cmd, address);
    let address: std::net::SocketAddr = server.address.parse().expect("address");
    // A request line with a character no URI may hold.
    let mut s = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    s.write_all(b"GET /\x7f\x01 HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let mut sink = Vec::new();
    let _ = tokio::time::timeout(
        PATIENCE,
        tokio::io::AsyncReadExt::read_to_end(&mut s, &mut sink),
    )
    .await;
    // A fragment left unfinished: a data frame before the last one's end.
    let mut raw = RawWs::open(address).await;
    let mut bytes = client_header(0x01, 2);
    bytes.extend_from_slice(b"ab");
    bytes.extend(client_header(0x81, 2));
    bytes.extend_from_slice(b"cd");
    raw.stream.write_all(&bytes).await.expect("fragments");
    let _ = raw.expect_close().await;
    server.terminate();
    let (_, log) = tokio::task::spawn_blocking(move || server.wait(PATIENCE))
        .await
        .expect("log");
    assert!(log.contains("pairchat is serving"), "{log}");
    assert!(!log.contains("ERROR"), "{log}");
}

#[actix_rt::test]
async fn streaming_an_oversized_frame_costs_the_server_no_memory() {
    let db = TestDb::new();
    let server = Server::start(&db.url);
    let address: std::net::SocketAddr = server.address.parse().expect("address");
    let before = rss_kib(server.pid());
    let mut raw = RawWs::open(address).await;
    raw.stream
        .write_all(&client_header(0x81, 1 << 30))
        .await
        .expect("header");
    // The close comes from the header alone, before any of the payload.
    assert_eq!(raw.expect_close().await.0, 1009);
    // Whatever the client streams after it is read and dropped, never kept: 64 MiB.
    let chunk = vec![b'x'; 1 << 20];
    let streaming = async {
        for _ in 0..64 {
            if raw.stream.write_all(&chunk).await.is_err() {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(PATIENCE, streaming).await;
    let after = rss_kib(server.pid());
    assert!(
        after < before + 16 * 1024,
        "RSS grew from {before} KiB to {after} KiB"
    );
}

#[actix_rt::test]
async fn an_sqlite_file_that_cannot_be_opened_stops_start_up_at_once_saying_so() {
    let started = Instant::now();
    let (ok, log) = run(&[
        "serve",
        "--bind",
        &free_address(),
        "--database-url",
        "sqlite:///nonexistent-folder/pairchat.db",
    ])
    .await;
    assert!(!ok);
    assert!(log.contains("cannot open the SQLite database"), "{log}");
    // Not the pool's 3 s wait for a connection that will never come.
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[actix_rt::test]
async fn a_heartbeat_no_shorter_than_the_client_timeout_is_refused() {
    // Pinged no earlier than it is dropped, a quiet client would be dropped unpinged.
    let (ok, log) = run(&[
        "serve",
        "--heartbeat-secs",
        "30",
        "--client-timeout-secs",
        "30",
    ])
    .await;
    assert!(!ok, "accepted");
    assert!(
        log.contains("--heartbeat-secs") && log.contains("--client-timeout-secs"),
        "{log}"
    );
}

#[actix_rt::test]
async fn a_zero_where_a_positive_number_belongs_is_refused_not_changed() {
    for flag in [
        "--db-pool-size",
        "--max-conns-per-ip",
        "--max-frame-bytes",
        "--heartbeat-secs",
        "--client-timeout-secs",
        "--outbox-frames",
        "--rate-per-sec",
        "--rate-burst",
        "--max-message-chars",
        "--connects-per-sec-per-ip",
        "--shutdown-timeout-secs",
        "--challenge-difficulty",
    ] {
        let (ok, log) = run(&["serve", flag, "0"]).await;
        assert!(!ok, "{flag} 0 was accepted");
        assert!(log.contains(flag), "{flag}: {log}");
    }
}
