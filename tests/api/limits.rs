//! Holding up against floods, silent and slow clients, and too many connections.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::hardening::forwarded;
use crate::helpers::{spawn_app, spawn_app_with, wait_for, PATIENCE};

#[actix_rt::test]
async fn frames_past_the_burst_are_refused_as_rate_limited_and_the_rest_relayed() {
    let app = spawn_app_with(|s| {
        // No refill within the test, however slowly it runs (the flag test checks the rate).
        s.session.rate_per_sec = 0.001;
        s.session.rate_burst = 10;
    })
    .await;
    let (mut a, mut b) = app.pair().await; // one request each: 9 tokens left
    for i in 0..12 {
        a.say(&format!("m{i}")).await;
    }
    let mut receipts = 0;
    let mut limited = 0;
    for _ in 0..12 {
        let frame = a.recv().await;
        match frame["type"].as_str() {
            Some("message") => receipts += 1,
            Some("error") => {
                assert_eq!(frame["error"], "rate_limited", "{frame}");
                limited += 1;
            }
            _ => panic!("unexpected {frame}"),
        }
    }
    assert_eq!((receipts, limited), (9, 3));
    for i in 0..9 {
        assert_eq!(b.recv().await["message"], format!("m{i}"));
    }
}

#[actix_rt::test]
async fn a_client_that_keeps_flooding_is_closed_with_1008_and_its_partner_told() {
    let app = spawn_app_with(|s| {
        s.session.rate_per_sec = 1.0;
        s.session.rate_burst = 5;
    })
    .await;
    let (mut a, mut b) = app.pair().await;
    let (mut c, mut d) = app.pair().await;
    for _ in 0..100 {
        if a.ws_send_text(r#"{"type":"message","message":"spam"}"#)
            .await
            .is_err()
        {
            break;
        }
    }
    let closed = a.expect_close().await;
    assert_eq!(
        (closed.code, closed.reason.as_str()),
        (1008, "rate limit exceeded")
    );
    assert_eq!(b.expect_close().await.reason, "partner lost");
    // Nobody else noticed.
    c.say("calm").await;
    assert_eq!(d.recv().await["message"], "calm");
}

#[actix_rt::test]
async fn connections_past_the_per_address_cap_get_429_until_one_closes() {
    let app = spawn_app_with(|s| s.max_conns_per_ip = 3).await;
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(app.client().await);
    }
    let refused = tokio_tungstenite::connect_async(app.ws_url()).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status().as_u16(), 429)
        }
        other => panic!("expected 429, got {:?}", other.map(|_| ())),
    }
    open.pop().expect("one").leave().await;
    wait_for("the slot to free", || async {
        tokio_tungstenite::connect_async(app.ws_url()).await.is_ok()
    })
    .await;
}

#[actix_rt::test]
async fn behind_a_trusted_proxy_the_cap_counts_forwarded_addresses() {
    let app = spawn_app_with(|s| {
        s.max_conns_per_ip = 1;
        s.trust_forwarded_for = true;
    })
    .await;
    let url = app.ws_url();
    let _a = forwarded(&url, "10.0.0.1").await.expect("first address");
    // The last entry is the one the proxy appended; earlier ones are the client's claims.
    let _b = forwarded(&url, "10.0.0.1, 10.0.0.2")
        .await
        .expect("second address");
    assert_eq!(forwarded(&url, "10.0.0.2").await.err(), Some(429));
}

#[actix_rt::test]
async fn without_trust_the_forwarded_header_is_ignored() {
    let app = spawn_app_with(|s| s.max_conns_per_ip = 1).await;
    let url = app.ws_url();
    let _a = forwarded(&url, "10.0.0.1").await.expect("first");
    assert_eq!(forwarded(&url, "10.0.0.2").await.err(), Some(429));
}

#[actix_rt::test]
async fn a_silent_client_is_dropped_its_partner_told_partner_away_then_partner_lost() {
    // The partner must answer its own pings in time on a loaded machine: not too tight.
    let app = spawn_app_with(|s| {
        s.session.heartbeat = Duration::from_millis(200);
        s.session.client_timeout = Duration::from_millis(1_000);
        s.resume_grace = Duration::from_secs(1);
    })
    .await;
    let (silent, mut b) = app.pair().await;
    // `silent` is never read again, so it never answers a ping; b keeps reading (and ponging).
    // Dropped for silence, it may still come back: its chat is held for the grace.
    b.expect_type("partner_away").await;
    let closed = b.expect_close().await;
    assert_eq!(
        (closed.code, closed.reason.as_str()),
        (1000, "partner lost")
    );
    drop(silent);
    app.wait_until_empty().await;
}

#[actix_rt::test]
async fn only_silent_clients_are_pinged() {
    const PERIOD: Duration = Duration::from_millis(500);
    let app = spawn_app_with(|s| {
        s.session.heartbeat = PERIOD;
        s.session.client_timeout = Duration::from_secs(10);
        s.session.rate_per_sec = 1e6;
        s.session.rate_burst = 1_000_000;
    })
    .await;
    let (mut talker, mut listener) = app.pair().await;
    // Pairing may take longer than a period on a busy machine, and a ping may already be on its
    // way: the talker starts talking and reads up to its own receipt before the count starts.
    talker.say("hello").await;
    while talker.recv().await["from"] != "me" {}
    let window = PERIOD * 5;
    let start = tokio::time::Instant::now();
    // Over five heartbeat periods the talker sends every 50 ms; the listener only reads.
    let talking = async {
        let mut pings = 0;
        let mut i = 0;
        while start.elapsed() < window {
            talker.say(&format!("m{i}")).await;
            i += 1;
            let until = tokio::time::Instant::now() + Duration::from_millis(50);
            while let Ok(Some(Ok(frame))) = tokio::time::timeout_at(until, talker.ws.next()).await {
                pings += usize::from(matches!(frame, Message::Ping(_)));
            }
        }
        pings
    };
    let listening = async {
        let mut pings = 0;
        while let Ok(Some(Ok(frame))) =
            tokio::time::timeout_at(start + window, listener.ws.next()).await
        {
            // tungstenite answers each ping as it reads, so the listener stays alive.
            pings += usize::from(matches!(frame, Message::Ping(_)));
        }
        pings
    };
    let (talker_pings, listener_pings) = tokio::join!(talking, listening);
    assert_eq!(talker_pings, 0, "a client that keeps talking is not pinged");
    assert!(
        listener_pings >= 3,
        "a client that only listens is pinged every period: {listener_pings} pings"
    );
}

#[actix_rt::test]
async fn clients_that_answer_pings_are_never_dropped_however_quiet() {
    // A timeout that a client busy on a loaded machine still answers within.
    const PERIOD: Duration = Duration::from_millis(200);
    const TIMEOUT: Duration = Duration::from_millis(1_000);
    let app = spawn_app_with(|s| {
        s.session.heartbeat = PERIOD;
        s.session.client_timeout = TIMEOUT;
    })
    .await;
    let (mut a, mut b) = app.pair().await;
    // Quiet but reading (tungstenite answers pings as it reads) until each has been pinged
    // often enough to span several timeouts: pings come at most once a period.
    // Both keep reading until both have been pinged enough to span two timeouts (pings come at
    // most once a period); one that stopped reading would stop answering.
    const PINGS: usize = 2 * (TIMEOUT.as_millis() / PERIOD.as_millis()) as usize;
    let mut pings = [0usize; 2];
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while pings.iter().any(|&n| n < PINGS) {
        let (who, frame) = tokio::select! {
            f = a.ws.next() => (0, f),
            f = b.ws.next() => (1, f),
            _ = tokio::time::sleep_until(deadline) => panic!("only {pings:?} pings in time"),
        };
        match frame {
            Some(Ok(Message::Ping(_))) => pings[who] += 1,
            Some(Ok(Message::Text(t))) if t.contains("online") => {}
            other => panic!("after {pings:?} pings, instead of another: {other:?}"),
        }
    }
    a.say("still here").await;
    assert_eq!(b.recv().await["message"], "still here");
}

#[actix_rt::test]
async fn a_client_that_stops_reading_is_dropped_without_holding_its_partner() {
    let app = spawn_app_with(|s| {
        s.session.rate_per_sec = 1e6;
        s.session.rate_burst = 1_000_000;
        s.session.outbox_capacity = 16;
        s.max_conns_per_ip = 2;
    })
    .await;
    let (reader_that_stops, mut flooder) = app.pair().await;
    let text = "x".repeat(1_900);
    // The flooder reads its receipts as it goes; the other side reads nothing.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let closed = loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the non-reader was never dropped"
        );
        flooder.say(&text).await;
        match tokio::time::timeout(Duration::from_millis(50), flooder.next_close_or_frame()).await {
            Ok(Some(closed)) => break closed,
            _ => continue,
        }
    };
    assert_eq!(
        (closed.code, closed.reason.as_str()),
        (1000, "partner lost")
    );
    // Its session ended although its socket is still open and full: both connection slots
    // (the cap here is 2) are free again.
    wait_for("the non-reader's session to end", || async {
        let first = tokio_tungstenite::connect_async(app.ws_url()).await;
        let second = tokio_tungstenite::connect_async(app.ws_url()).await;
        first.is_ok() && second.is_ok()
    })
    .await;
    drop(reader_that_stops);
    app.wait_until_empty().await;
}

#[actix_rt::test]
async fn an_idle_visitor_is_not_disturbed_by_anothers_bad_input() {
    let app = spawn_app().await;
    let (mut a, mut b) = app.pair().await;
    let mut vandal = app.client().await;
    vandal
        .send_json(json!({"type": "message", "message": 5}))
        .await;
    vandal.expect_error("bad_frame").await;
    vandal.say(&"y".repeat(5_000)).await;
    vandal.expect_error("not_paired").await;
    a.say("fine").await;
    assert_eq!(b.recv().await["message"], "fine");
}

#[actix_rt::test]
async fn the_twenty_first_refused_frame_in_a_row_closes_with_1008() {
    let app = spawn_app_with(|s| {
        s.session.rate_per_sec = 0.001; // no refill within the test
        s.session.rate_burst = 1;
    })
    .await;
    let mut c = app.client().await;
    c.say("the one token").await;
    c.expect_error("not_paired").await;
    // One frame at a time, each answered before the next goes, so the count is exact.
    let mut refused = 0;
    let closed = loop {
        c.say("more").await;
        match c.ws.next().await {
            Some(Ok(Message::Text(t))) if t.contains("online") => {
                // An online count is not an answer; the refusal follows.
                let frame = c.expect_type("error").await;
                assert_eq!(frame["error"], "rate_limited", "{frame}");
                refused += 1;
            }
            Some(Ok(Message::Text(t))) => {
                assert!(t.contains(r#""error":"rate_limited""#), "{t}");
                refused += 1;
            }
            Some(Ok(Message::Close(Some(frame)))) => break (u16::from(frame.code), frame.reason),
            other => panic!("unexpected {other:?}"),
        }
        assert!(
            refused <= 20,
            "a 21st refusal was answered instead of closing"
        );
    };
    assert_eq!(refused, 20, "refusals answered before the close");
    assert_eq!((closed.0, closed.1.as_str()), (1008, "rate limit exceeded"));
}

#[actix_rt::test]
async fn a_client_that_answers_no_ping_is_told_no_heartbeat_with_1008() {
    let app = spawn_app_with(|s| {
        s.session.heartbeat = Duration::from_millis(100);
        s.session.client_timeout = Duration::from_millis(500);
    })
    .await;
    // By hand: tungstenite answers pings by itself as it reads.
    let mut deaf = crate::hardening::RawWs::open(app.address).await;
    let mut pings = 0;
    let (code, reason) = tokio::time::timeout(PATIENCE, async {
        loop {
            match deaf.next_frame().await.expect("a frame or the close") {
                (0x9, _) => pings += 1,
                (0x8, payload) => {
                    let code = u16::from_be_bytes([payload[0], payload[1]]);
                    break (code, String::from_utf8_lossy(&payload[2..]).into_owned());
                }
                _ => {}
            }
        }
    })
    .await
    .expect("closed in time");
    assert!(pings >= 1, "it was pinged before being dropped");
    assert_eq!((code, reason.as_str()), (1008, "no heartbeat"));
}

#[actix_rt::test]
async fn a_deaf_client_is_dropped_at_the_client_timeout_not_a_heartbeat_later() {
    // Pinged after 0.9 s of silence, dropped at 1 s: a check only at heartbeat ticks would
    // drop it at the second tick, 1.8 s.
    const HEARTBEAT: Duration = Duration::from_millis(900);
    const TIMEOUT: Duration = Duration::from_millis(1_000);
    let app = spawn_app_with(|s| {
        s.session.heartbeat = HEARTBEAT;
        s.session.client_timeout = TIMEOUT;
    })
    .await;
    // By hand: tungstenite answers pings by itself as it reads.
    let mut deaf = crate::hardening::RawWs::open(app.address).await;
    // The server's clock starts once it has sent the handshake's answer, before we read it.
    let opened = tokio::time::Instant::now();
    let mut pings = 0;
    let code = tokio::time::timeout(PATIENCE, async {
        loop {
            match deaf.next_frame().await.expect("a frame or the close") {
                (0x9, _) => pings += 1,
                (0x8, payload) => break u16::from_be_bytes([payload[0], payload[1]]),
                _ => {}
            }
        }
    })
    .await
    .expect("closed in time");
    let silent = opened.elapsed();
    assert_eq!((code, pings), (1008, 1), "one ping, then the close");
    // The deadline falls on a coarse clock, at most a sixteenth of the timeout early; late by
    // as much as a loaded machine delays a timer, well short of another heartbeat.
    assert!(silent >= TIMEOUT - TIMEOUT / 8, "dropped early: {silent:?}");
    assert!(
        silent < TIMEOUT + HEARTBEAT / 2,
        "dropped a heartbeat late: {silent:?}"
    );
}
