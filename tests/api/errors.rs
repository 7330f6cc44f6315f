//! Every refused frame gets an error frame; the connection stays open and usable.

use futures_util::SinkExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::spawn_app;

#[actix_rt::test]
async fn malformed_frames_are_refused_with_a_named_error_and_the_connection_stays_open() {
    // More frames than the default burst: the rate limit is not what this is about.
    let app = crate::helpers::spawn_app_with(crate::helpers::without_flood_limits).await;
    let mut c = app.client().await;
    c.send_raw(Message::text("{not json")).await;
    c.expect_error("bad_json").await;
    c.send_raw(Message::text("[\"request\"]")).await;
    c.expect_error("bad_json").await;
    c.send_json(json!({"type": "dance"})).await;
    let frame = c.expect_error("unknown_type").await;
    assert!(frame["detail"]
        .as_str()
        .unwrap_or_default()
        .contains("dance"));
    c.send_json(json!({"message": "no type"})).await;
    c.expect_error("bad_frame").await;
    c.send_json(json!({"type": "message"})).await;
    c.expect_error("bad_frame").await;
    // Well-formed JSON with a field of the wrong type is a bad frame, not bad JSON.
    c.send_json(json!({"type": 7})).await;
    c.expect_error("bad_frame").await;
    c.send_json(json!({"type": "message", "message": 5})).await;
    c.expect_error("bad_frame").await;
    c.send_json(json!({"type": "typing", "typing": "yes"}))
        .await;
    c.expect_error("bad_frame").await;
    c.send_raw(Message::text(r#"{"type":7,"#)).await;
    c.expect_error("bad_json").await;
    c.send_raw(Message::binary(vec![1u8, 2, 3])).await;
    c.expect_error("binary_not_supported").await;

    // Still open: it can ask for a partner, with unknown extra fields ignored.
    c.send_json(json!({"type": "request", "colour": "blue"}))
        .await;
    c.expect_type("waiting").await;
}

#[actix_rt::test]
async fn talking_without_a_partner_is_refused() {
    let app = spawn_app().await;
    let mut c = app.client().await;
    c.say("anyone?").await;
    c.expect_error("not_paired").await;
    c.send_json(json!({"type": "typing", "typing": true})).await;
    c.expect_error("not_paired").await;
    c.request().await;
    c.expect_type("waiting").await;
    c.say("still nobody?").await;
    c.expect_error("not_paired").await;
}

#[actix_rt::test]
async fn a_second_request_is_refused_while_waiting_or_chatting() {
    let app = spawn_app().await;
    let mut a = app.client().await;
    a.request().await;
    a.expect_type("waiting").await;
    a.request().await;
    a.expect_error("already_waiting").await;

    let mut b = app.client().await;
    b.request().await;
    b.expect_type("response").await;
    a.expect_type("response").await;
    b.request().await;
    b.expect_error("already_paired").await;
    // The chat is unharmed.
    b.say("still here").await;
    assert_eq!(a.recv().await["message"], "still here");
}

#[actix_rt::test]
async fn empty_and_overlong_messages_are_refused_and_not_relayed() {
    let app = spawn_app_with_limit(5).await;
    let (mut a, mut b) = app.pair().await;
    a.say("").await;
    a.expect_error("empty_message").await;
    a.say(" \n\t ").await;
    a.expect_error("empty_message").await;
    a.say("123456").await;
    a.expect_error("message_too_long").await;
    // The limit counts characters, not bytes: five 4-byte characters pass.
    a.say("😀😀😀😀😀").await;
    assert_eq!(a.recv().await["from"], "me");
    assert_eq!(b.recv().await["message"], "😀😀😀😀😀");
}

async fn spawn_app_with_limit(chars: usize) -> crate::helpers::TestApp {
    crate::helpers::spawn_app_with(|s| s.session.max_message_chars = chars).await
}

#[actix_rt::test]
async fn a_frame_over_the_size_limit_closes_with_1009_and_spares_the_partner_others() {
    let app = crate::helpers::spawn_app_with(|s| s.session.max_frame_bytes = 1024).await;
    let (mut a, mut b) = app.pair().await;
    let (mut c, mut d) = app.pair().await;
    a.say(&"x".repeat(2048)).await;
    let closed = a.expect_close().await;
    assert_eq!(closed.code, 1009);
    assert_eq!(b.expect_close().await.reason, "partner lost");
    // Another chat goes on.
    c.say("unaffected").await;
    assert_eq!(d.recv().await["message"], "unaffected");
}

#[actix_rt::test]
async fn invalid_utf8_closes_with_1007() {
    let app = spawn_app().await;
    let mut a = app.client().await;
    let frame = tokio_tungstenite::tungstenite::protocol::frame::Frame::message(
        vec![0xffu8, 0xfe, 0x22],
        tokio_tungstenite::tungstenite::protocol::frame::coding::OpCode::Data(
            tokio_tungstenite::tungstenite::protocol::frame::coding::Data::Text,
        ),
        true,
    );
    a.send_raw(Message::Frame(frame)).await;
    assert_eq!(a.expect_close().await.code, 1007);
}

#[actix_rt::test]
async fn a_fragmented_message_over_the_size_limit_closes_with_1009_and_its_partner_is_lost() {
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;
    let app = crate::helpers::spawn_app_with(|s| s.session.max_frame_bytes = 1024).await;
    let (mut a, mut b) = app.pair().await;
    // Three fragments of 600 bytes: each fits the limit, the message does not.
    let part = |opcode, fin| Message::Frame(Frame::message(vec![b' '; 600], opcode, fin));
    a.send_raw(part(OpCode::Data(Data::Text), false)).await;
    a.send_raw(part(OpCode::Data(Data::Continue), false)).await;
    // The server may already have closed; the close is what counts.
    let _ = a.ws.send(part(OpCode::Data(Data::Continue), true)).await;
    let closed = a.expect_close().await;
    assert_eq!(
        (closed.code, closed.reason.as_str()),
        (1009, "message too large")
    );
    assert_eq!(b.expect_close().await.reason, "partner lost");
}
