//! `--log-format json`, through the real binary: one JSON object per line, for log shippers,
//! and (at every level of pairchat's own events) nothing a visitor wrote, nor where they
//! connect from, nor the token their browser names them by. `cli.rs` checks the text format
//! at the default level.

use serde_json::Value;

use crate::hardening::forwarded;
use crate::helpers::{Client, TestDb, PATIENCE};
use crate::process::{free_address, pairchat, Server};

/// What the two visitors give away: addresses (as a trusted proxy forwards them), tokens, and
/// what they say. Each must stay out of the log.
const ADDRESSES: [&str; 2] = ["203.0.113.77", "2001:db8:77::1"];
const TOKENS: [&str; 2] = ["alice-token-4711", "bob-token-4712"];
const SAID: &str = "the words only the two of them know";
/// What would show of the addresses in any form (an IPv6 address is kept by its /64).
const ADDRESS_PREFIXES: [&str; 2] = ["203.0.113.", "2001:db8"];

/// One visitor arriving through the proxy.
async fn arrive(url: &str, which: usize, first_answer: &str) -> Client {
    let url = format!("{url}?visitor={}", TOKENS[which]);
    let mut client = forwarded(&url, ADDRESSES[which]).await.expect("let in");
    client.request().await;
    client.expect_type(first_answer).await;
    client
}

/// Starts a server logging JSON (every level of pairchat's own events, the default for the
/// rest), has two visitors meet, talk and part, stops it, and returns its whole log.
async fn a_chat_logged_as_json() -> String {
    let db = TestDb::new();
    let address = free_address();
    let mut cmd = pairchat();
    cmd.args(["serve", "--log-format", "json", "--trust-forwarded-for"])
        .args(["--bind", &address, "--database-url", &db.url])
        .env(
            "RUST_LOG",
            format!("{},pairchat=trace", pairchat::telemetry::DEFAULT_FILTER),
        );
    let mut server = Server::spawn(cmd, address);
    let url = server.ws_url();
    let mut a = arrive(&url, 0, "waiting").await;
    let mut b = arrive(&url, 1, "response").await;
    a.expect_type("response").await;
    a.say(SAID).await;
    assert_eq!(b.recv().await["message"], SAID);
    assert_eq!(a.recv().await["from"], "me");
    a.leave().await;
    assert_eq!(b.expect_close().await.reason, "partner left");

    server.terminate();
    let (ok, log) = tokio::task::spawn_blocking(move || server.wait(PATIENCE))
        .await
        .expect("log");
    assert!(ok, "exit status 0: {log}");
    log
}

#[actix_rt::test]
async fn json_logs_are_one_object_per_line_and_keep_visitors_out() {
    let log = a_chat_logged_as_json().await;
    let events: Vec<Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect();
    for event in &events {
        for key in ["timestamp", "level", "target"] {
            assert!(event[key].is_string(), "no {key}: {event}");
        }
        assert!(
            event["fields"]["message"].is_string(),
            "no message: {event}"
        );
    }
    let logged = |message: &str| events.iter().any(|e| e["fields"]["message"] == message);
    for message in ["pairchat is serving", "shutting down"] {
        assert!(logged(message), "no {message:?} in\n{log}");
    }
    // pairchat's debug events were on: the connections are there, by number only.
    assert!(logged("connected") && logged("disconnected"), "{log}");
    let serving = events
        .iter()
        .find(|e| e["fields"]["message"] == "pairchat is serving")
        .expect("checked above");
    assert_eq!(serving["level"], "INFO");
    assert!(serving["fields"]["address"].is_string(), "{serving}");
    for secret in [SAID].iter().chain(&TOKENS).chain(&ADDRESS_PREFIXES) {
        assert!(!log.contains(secret), "{secret:?} in the log:\n{log}");
    }
}
