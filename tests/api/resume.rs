//! Resuming a chat after a network blip, on one process: a visitor whose connection breaks
//! without a close is away, its partner is told so and its messages are held (unreceipted),
//! and a new connection with the visitor's token takes the chat up again, receiving in order
//! what was held, each receipted to its sender as it is delivered.

use std::time::Duration;

use serde_json::Value;
use tokio_tungstenite::MaybeTlsStream;

use crate::helpers::{spawn_app_with, Client, TestApp};

/// The token a `response` (or `resumed`) frame carries: 32 hex digits.
pub fn token_of(frame: &Value) -> String {
    let token = frame["resume"].as_str().expect("a resume token").to_owned();
    assert_eq!(token.len(), 32, "{frame}");
    assert!(token.bytes().all(|b| b.is_ascii_hexdigit()), "{frame}");
    token
}

/// Two paired clients and their tokens.
async fn pair_with_tokens(app: &TestApp) -> ((Client, String), (Client, String)) {
    let mut a = app.client().await;
    a.request().await;
    a.expect_type("waiting").await;
    let mut b = app.client().await;
    b.request().await;
    let b_token = token_of(&b.expect_type("response").await);
    let a_token = token_of(&a.expect_type("response").await);
    assert_ne!(a_token, b_token, "each visitor has a token of its own");
    ((a, a_token), (b, b_token))
}

/// The connection breaks without a close frame: a FIN, or with `reset` an RST.
///
/// The FIN is a shutdown of the sending side, and the socket is kept (and read, in the
/// background) until the server lets go of it. Dropping it at once would not do: a socket
/// closed with unread data in it (an `online` frame, say) sends an RST, not a FIN, and an RST
/// may discard what the client sent last before the server has read it.
pub fn break_connection(client: Client, reset: bool) {
    let MaybeTlsStream::Plain(mut tcp) = client.ws.into_inner() else {
        unreachable!("plain TCP")
    };
    if reset {
        tcp.set_zero_linger().expect("linger");
        drop(tcp);
        return;
    }
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let _ = tcp.shutdown().await;
        let mut sink = [0u8; 4096];
        let drained = async { while let Ok(1..) = tcp.read(&mut sink).await {} };
        let _ = tokio::time::timeout(Duration::from_secs(60), drained).await;
    });
}

pub fn resume_url(base: &str, token: &str) -> String {
    format!("{base}?resume={token}")
}

/// A message frame's text and author.
fn said(frame: &Value) -> (String, String) {
    assert_eq!(frame["type"], "message", "{frame}");
    (
        frame["message"].as_str().unwrap_or_default().to_owned(),
        frame["from"].as_str().unwrap_or_default().to_owned(),
    )
}

fn grace(secs: u64) -> impl FnOnce(&mut pairchat::config::Settings) {
    move |s| s.resume_grace = Duration::from_secs(secs)
}

#[actix_rt::test]
async fn a_broken_connection_is_resumed_and_gets_what_its_partner_sent_meanwhile_in_order() {
    let app = spawn_app_with(grace(60)).await;
    for reset in [false, true] {
        let ((mut a, a_token), (mut b, _)) = pair_with_tokens(&app).await;
        a.say("before").await;
        assert_eq!(said(&a.recv().await), ("before".into(), "me".into()));
        assert_eq!(said(&b.recv().await), ("before".into(), "guest".into()));

        break_connection(a, reset);
        b.expect_type("partner_away").await;
        for n in 1..=3 {
            b.say(&format!("held {n}")).await;
        }

        let mut a = Client::connect(&resume_url(&app.ws_url(), &a_token)).await;
        let resumed = a.expect_type("resumed").await;
        let next_token = token_of(&resumed);
        assert_ne!(next_token, a_token, "the next token is a new one");
        for n in 1..=3 {
            assert_eq!(said(&a.recv().await), (format!("held {n}"), "guest".into()));
        }
        // Nothing was receipted while it was held: the partner hears `partner_back` first,
        // then each receipt as its message is delivered.
        b.expect_type("partner_back").await;
        for n in 1..=3 {
            assert_eq!(said(&b.recv().await), (format!("held {n}"), "me".into()));
        }

        // The chat goes on both ways.
        a.say("after").await;
        assert_eq!(said(&a.recv().await), ("after".into(), "me".into()));
        assert_eq!(said(&b.recv().await), ("after".into(), "guest".into()));
        b.say("and back").await;
        assert_eq!(said(&b.recv().await), ("and back".into(), "me".into()));
        assert_eq!(said(&a.recv().await), ("and back".into(), "guest".into()));

        a.leave().await;
        assert_eq!(
            b.expect_close().await.reason,
            "partner left",
            "reset: {reset}"
        );
    }
    app.wait_until_empty().await;
}

#[actix_rt::test]
async fn a_spent_wrong_or_malformed_token_fails_and_leaves_an_ordinary_idle_connection() {
    let app = spawn_app_with(grace(60)).await;
    let ((a, a_token), (mut b, _)) = pair_with_tokens(&app).await;
    break_connection(a, false);
    b.expect_type("partner_away").await;
    let mut a = Client::connect(&resume_url(&app.ws_url(), &a_token)).await;
    a.expect_type("resumed").await;
    b.expect_type("partner_back").await;

    let wrong = "0123456789abcdef0123456789abcdef";
    for token in [a_token.as_str(), wrong, "not-a-token", ""] {
        let mut c = Client::connect(&resume_url(&app.ws_url(), token)).await;
        c.expect_error("resume_failed").await;
        // An ordinary idle connection: it may ask for a partner, and has none to talk to.
        c.say("hello?").await;
        c.expect_error("not_paired").await;
        c.request().await;
        c.expect_type("waiting").await;
        c.leave().await;
    }
    // The resumed chat was not disturbed.
    b.say("still here").await;
    assert_eq!(said(&a.recv().await), ("still here".into(), "guest".into()));
    a.leave().await;
    b.expect_close().await;
    app.wait_until_empty().await;
}

#[actix_rt::test]
async fn past_the_grace_the_chat_ends_partner_lost_and_held_messages_are_undelivered() {
    let app = spawn_app_with(grace(1)).await;
    let ((a, a_token), (mut b, _)) = pair_with_tokens(&app).await;
    break_connection(a, false);
    b.expect_type("partner_away").await;
    b.say("one").await;
    b.say("two").await;
    // Neither is receipted: each is reported undelivered as the chat ends.
    b.expect_error("undelivered").await;
    b.expect_error("undelivered").await;
    b.expect_type("ended").await;
    let closed = b.expect_close().await;
    assert_eq!(
        (closed.code, closed.reason.as_str()),
        (1000, "partner lost")
    );

    let mut late = Client::connect(&resume_url(&app.ws_url(), &a_token)).await;
    late.expect_error("resume_failed").await;
    late.leave().await;
    app.wait_until_empty().await;
}

#[actix_rt::test]
async fn an_end_with_a_close_frame_or_leave_ends_the_chat_at_once_and_cannot_be_resumed() {
    let app = spawn_app_with(grace(60)).await;
    // A close frame.
    let ((a, a_token), (mut b, _)) = pair_with_tokens(&app).await;
    a.leave().await;
    b.expect_type("ended").await;
    assert_eq!(b.expect_close().await.reason, "partner left");
    let mut again = Client::connect(&resume_url(&app.ws_url(), &a_token)).await;
    again.expect_error("resume_failed").await;
    again.leave().await;
    // `leave`.
    let ((mut a, a_token), (mut b, b_token)) = pair_with_tokens(&app).await;
    a.send_json(serde_json::json!({"type": "leave"})).await;
    a.expect_type("ended").await;
    b.expect_type("ended").await;
    assert_eq!(b.expect_close().await.reason, "partner left");
    for token in [a_token, b_token] {
        let mut again = Client::connect(&resume_url(&app.ws_url(), &token)).await;
        again.expect_error("resume_failed").await;
        again.leave().await;
    }
    app.wait_until_empty().await;
}

#[actix_rt::test]
async fn a_resume_while_the_old_connection_still_looks_open_takes_the_chat_over() {
    // The visitor's side saw its socket die; the server has not noticed yet.
    let app = spawn_app_with(grace(60)).await;
    let ((mut a, a_token), (mut b, _)) = pair_with_tokens(&app).await;
    let mut a2 = Client::connect(&resume_url(&app.ws_url(), &a_token)).await;
    a2.expect_type("resumed").await;
    let closed = a.expect_close().await;
    assert_eq!(
        (closed.code, closed.reason.as_str()),
        (1000, "resumed elsewhere")
    );
    b.say("to the new one").await;
    assert_eq!(
        said(&b.recv().await),
        ("to the new one".into(), "me".into())
    );
    assert_eq!(
        said(&a2.recv().await),
        ("to the new one".into(), "guest".into())
    );
    // The partner never saw it away.
    a2.say("hi").await;
    assert_eq!(said(&b.recv().await), ("hi".into(), "guest".into()));
    a2.leave().await;
    b.expect_type("ended").await;
    app.wait_until_empty().await;
}

#[actix_rt::test]
async fn both_away_at_once_both_resume_and_nothing_is_lost() {
    let app = spawn_app_with(grace(60)).await;
    let ((mut a, a_token), (b, b_token)) = pair_with_tokens(&app).await;
    break_connection(b, false);
    a.expect_type("partner_away").await;
    a.say("while b was away").await;
    // Held, so no receipt says the server has it: a frame with an answer, after it, does (so
    // that the server has read it before the break below).
    a.send_json(serde_json::json!({"type": "request"})).await;
    assert_eq!(a.expect_type("error").await["error"], "already_paired");
    break_connection(a, false);
    // The server notices a's break before b comes back (otherwise b's return would reach
    // a's old connection, which is another test's story).
    crate::helpers::wait_for("both away", || async { app.stats().await.away == 2 }).await;
    // b comes back first: a is away now (what a said is held on a's side).
    let mut b = Client::connect(&resume_url(&app.ws_url(), &b_token)).await;
    b.expect_type("resumed").await;
    b.expect_type("partner_away").await;
    b.say("while a was away").await;
    // a comes back holding what it said; b's return is in the outbox a takes over.
    let mut a = Client::connect(&resume_url(&app.ws_url(), &a_token)).await;
    a.expect_type("resumed").await;
    a.expect_type("partner_away").await;
    // Each side hears the other is back, gets its receipt after that, and the other's message
    // (which may overtake `partner_back`: the two directions interleave).
    for (side, mine, theirs) in [
        (&mut a, "while b was away", "while a was away"),
        (&mut b, "while a was away", "while b was away"),
    ] {
        let frames = [side.recv().await, side.recv().await, side.recv().await];
        let at = |pred: &dyn Fn(&Value) -> bool| {
            frames
                .iter()
                .position(pred)
                .unwrap_or_else(|| panic!("missing in {frames:?}"))
        };
        let back = at(&|f| f["type"] == "partner_back");
        let receipt = at(&|f| f["type"] == "message" && said(f) == (mine.into(), "me".into()));
        at(&|f| f["type"] == "message" && said(f) == (theirs.into(), "guest".into()));
        assert!(
            back < receipt,
            "receipted before the partner was back: {frames:?}"
        );
    }
    a.leave().await;
    b.expect_close().await;
    app.wait_until_empty().await;
}

#[actix_rt::test]
async fn with_no_grace_a_broken_connection_ends_the_chat_at_once() {
    let app = spawn_app_with(grace(0)).await;
    let (a, mut b) = app.pair().await;
    break_connection(a, false);
    b.expect_type("ended").await;
    assert_eq!(b.expect_close().await.reason, "partner lost");
    app.wait_until_empty().await;
}

#[actix_rt::test]
async fn the_partner_hears_partner_back_before_anything_the_resumed_visitor_says() {
    let app = spawn_app_with(grace(60)).await;
    // Several rounds: the race is between the hub's notice and the resumed visitor's first
    // message, which it sends the moment its socket is open.
    for round in 0..10 {
        let ((mut a, a_token), (mut b, _)) = pair_with_tokens(&app).await;
        // Both ways once, so that each side's direct route is open.
        a.say("warm").await;
        a.recv().await;
        b.recv().await;
        b.say("up").await;
        b.recv().await;
        a.recv().await;
        break_connection(a, round % 2 == 1);
        b.expect_type("partner_away").await;
        let mut a = Client::connect(&resume_url(&app.ws_url(), &a_token)).await;
        a.say("first").await;
        assert_eq!(b.recv().await["type"], "partner_back", "round {round}");
        assert_eq!(said(&b.recv().await), ("first".into(), "guest".into()));
        a.expect_type("resumed").await;
        a.leave().await;
        b.expect_close().await;
    }
    app.wait_until_empty().await;
}

#[actix_rt::test]
async fn a_message_the_connection_breaks_right_behind_still_reaches_the_partner() {
    // Short: the away visitors are kept for it after their partners left.
    let app = spawn_app_with(grace(2)).await;
    for round in 0..5 {
        let ((mut a, _), (mut b, _)) = pair_with_tokens(&app).await;
        let text = format!("last words {round}");
        // The message, then at once the end of the connection (no close frame): the server
        // reads both together.
        a.say(&text).await;
        break_connection(a, false);
        assert_eq!(said(&b.recv().await), (text, "guest".into()));
        b.expect_type("partner_away").await;
        b.leave().await;
    }
    app.wait_until_empty().await;
}
