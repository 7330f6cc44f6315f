//! The page takes its chat up again by itself after its socket is cut (a proxy between the
//! browser and the server drops the TCP connection: no close frame), and its partner's page
//! says the stranger's connection dropped, then that they are back; messages sent meanwhile
//! (several of them) show as pending until they are delivered, in order.

use std::time::Duration;

use fantoccini::Client as Browser;

use serde_json::{json, Value};

use crate::browser::{
    browser_or_skip, click, js, wait_js, wait_messages, wait_state, Driver, ONE_AT_A_TIME, PAGE,
};
use crate::browser_ui::axe_violations;
use crate::helpers::{spawn_app_with, TestApp};
use crate::proxy::Proxy;

async fn page(b: &Browser, address: &str) {
    b.goto(&format!("http://{address}/")).await.expect("page");
    wait_state(b, PAGE, "idle").await;
}

/// Two pages in a chat, the first reaching the server through a proxy that can cut its socket
/// (`Proxy::cut`), the second directly, with chats held for `grace`. The app and the driver
/// are returned to be kept alive as long as the pages.
async fn chat_through_proxy(grace: Duration) -> (TestApp, Proxy, Driver, Browser, Browser) {
    let app = spawn_app_with(|s| s.resume_grace = grace).await;
    let proxy = Proxy::start(app.address.to_string()).await;
    let driver = Driver::start();
    let (cut, direct) = (
        driver.browser(1024, 800).await,
        driver.browser(1024, 800).await,
    );
    page(&cut, &proxy.address.to_string()).await;
    page(&direct, &app.address.to_string()).await;
    click(&cut, PAGE, "start").await;
    wait_state(&cut, PAGE, "waiting").await;
    click(&direct, PAGE, "start").await;
    wait_state(&cut, PAGE, "chat").await;
    wait_state(&direct, PAGE, "chat").await;
    (app, proxy, driver, cut, direct)
}

/// Sends `text` as this visitor's `nth` message, and waits until the page shows it.
async fn send_shown(b: &Browser, text: &str, nth: usize) {
    send(b, text).await;
    wait_js(
        b,
        PAGE,
        &format!("message {nth} shown"),
        &format!(
            "return root.querySelectorAll('[data-test=message][data-from=me]').length === {nth};"
        ),
    )
    .await;
}

/// Types `text` and sends it, without waiting for the receipt.
async fn send(b: &Browser, text: &str) {
    let text = serde_json::to_string(text).expect("json");
    js(
        b,
        PAGE,
        &format!(
            "const i = root.querySelector('[data-test=input]'); i.value = {text}; \
             i.dispatchEvent(new Event('input', {{ bubbles: true }})); \
             root.querySelector('[data-test=composer]').requestSubmit(); return true;"
        ),
    )
    .await;
}

async fn wait_line(b: &Browser, kind: &str) {
    wait_js(
        b,
        PAGE,
        &format!("a {kind} line"),
        &format!(
            "return root.querySelector('[data-test=system-line][data-kind={kind}]') !== null;"
        ),
    )
    .await;
}

/// The delivery status of the last message this visitor sent.
async fn last_status(b: &Browser) -> String {
    js(
        b,
        PAGE,
        "const m = [...root.querySelectorAll('[data-test=message][data-from=me]')]; \
         return m.length ? m[m.length - 1].dataset.status : '';",
    )
    .await
    .as_str()
    .unwrap_or_default()
    .to_owned()
}

#[actix_rt::test]
async fn a_page_whose_socket_is_cut_resumes_its_chat_and_nothing_is_lost() {
    if !browser_or_skip("a_page_whose_socket_is_cut_resumes_its_chat_and_nothing_is_lost") {
        return;
    }
    let _turn = ONE_AT_A_TIME.lock().await;
    let (_app, proxy, _driver, cut_off, partner) =
        chat_through_proxy(Duration::from_secs(60)).await;

    proxy.cut();
    // The page keeps its chat and says it is reconnecting; the partner is told the stranger's
    // connection dropped, and what it sends meanwhile waits, shown as pending.
    wait_line(&cut_off, "reconnecting").await;
    wait_line(&partner, "away").await;
    send(&partner, "while you were away").await;
    wait_messages(&partner, PAGE, 1).await;
    assert_eq!(last_status(&partner).await, "pending");

    proxy.restore();
    wait_line(&cut_off, "reconnected").await;
    wait_line(&partner, "back").await;
    let shown = wait_messages(&cut_off, PAGE, 1).await;
    assert_eq!(shown[0].1, "while you were away");
    wait_js(
        &partner,
        PAGE,
        "the message delivered",
        "const m = root.querySelectorAll('[data-test=message][data-from=me]'); \
         return m.length === 1 && m[0].dataset.status === 'delivered';",
    )
    .await;
    wait_state(&cut_off, PAGE, "chat").await;

    // The chat goes on both ways.
    send(&cut_off, "and I am back").await;
    wait_messages(&partner, PAGE, 2).await;
    for b in [cut_off, partner] {
        b.close().await.expect("close");
    }
}

/// `[text, status, status line]` of every message this visitor sent, in the log's order.
async fn mine(b: &Browser) -> Value {
    js(
        b,
        PAGE,
        "return [...root.querySelectorAll('[data-test=message][data-from=me]')].map(m => [\
            m.querySelector('[data-test=message-text]').textContent, m.dataset.status,\
            m.querySelector('[data-test=message-status]').textContent]);",
    )
    .await
}

#[actix_rt::test]
async fn several_messages_to_an_away_partner_wait_as_pending_and_are_delivered_in_order() {
    if !browser_or_skip(
        "several_messages_to_an_away_partner_wait_as_pending_and_are_delivered_in_order",
    ) {
        return;
    }
    let _turn = ONE_AT_A_TIME.lock().await;
    let (_app, proxy, _driver, away, writer) = chat_through_proxy(Duration::from_secs(60)).await;

    // The partner's socket is cut: the writer hears it is away, and goes on writing, each
    // message shown at once as pending, none waiting for the one before.
    proxy.cut();
    wait_line(&writer, "away").await;
    let texts = ["first", "second", "third"];
    for (n, text) in texts.iter().enumerate() {
        send_shown(&writer, text, n + 1).await;
    }
    let pending: Vec<Value> = texts
        .iter()
        .map(|t| json!([t, "pending", "Sending…"]))
        .collect();
    assert_eq!(mine(&writer).await, json!(pending), "not all pending");
    let composer = js(
        &writer,
        PAGE,
        "return [root.querySelector('[data-test=send]').disabled, \
         root.querySelector('[data-test=input]').value, \
         root.querySelector('[data-test=pairchat]').dataset.sending];",
    )
    .await;
    assert_eq!(
        composer,
        json!([false, "", "true"]),
        "[Send disabled, the box, data-sending] while three wait"
    );
    let axe = axe_violations(&writer).await;
    assert!(axe.is_empty(), "axe-core, messages pending: {axe:?}");

    // The partner comes back: each turns delivered, in order, and the partner reads them in
    // the order they were written.
    proxy.restore();
    wait_line(&away, "reconnected").await;
    wait_line(&writer, "back").await;
    wait_js(
        &writer,
        PAGE,
        "the three receipts",
        "const m = [...root.querySelectorAll('[data-test=message][data-from=me]')]; \
         return m.length === 3 && m.every(x => x.dataset.status === 'delivered');",
    )
    .await;
    let delivered: Vec<Value> = texts.iter().map(|t| json!([t, "delivered", ""])).collect();
    assert_eq!(
        mine(&writer).await,
        json!(delivered),
        "shown twice or out of order"
    );
    assert!(
        js(
            &writer,
            PAGE,
            "return root.querySelector('[data-test=pairchat]').dataset.sending === undefined;"
        )
        .await
            == json!(true),
        "still sending"
    );
    let heard = wait_messages(&away, PAGE, 3).await;
    let heard: Vec<&str> = heard.iter().map(|(_, text)| text.as_str()).collect();
    assert_eq!(heard, texts, "the partner read them out of order");
    wait_state(&away, PAGE, "chat").await;
    for b in [away, writer] {
        b.close().await.expect("close");
    }
}

#[actix_rt::test]
async fn messages_to_a_partner_who_never_comes_back_each_show_not_delivered() {
    if !browser_or_skip("messages_to_a_partner_who_never_comes_back_each_show_not_delivered") {
        return;
    }
    let _turn = ONE_AT_A_TIME.lock().await;
    let (_app, proxy, _driver, gone, writer) = chat_through_proxy(Duration::from_secs(2)).await;

    // Cut for good: the grace runs out with two messages held, the server says `undelivered`
    // for each, and the chat ends.
    proxy.cut();
    wait_line(&writer, "away").await;
    for (n, text) in ["are you there?", "hello?"].iter().enumerate() {
        send_shown(&writer, text, n + 1).await;
    }
    wait_state(&writer, PAGE, "closed").await;
    assert_eq!(
        mine(&writer).await,
        json!([
            ["are you there?", "failed", "Not delivered"],
            ["hello?", "failed", "Not delivered"]
        ]),
    );
    // "Stranger left", and no error line: `undelivered` is said on the messages themselves.
    wait_line(&writer, "disconnected").await;
    assert_eq!(
        js(
            &writer,
            PAGE,
            "return root.querySelectorAll('[data-test=system-line][data-kind=error]').length;"
        )
        .await,
        json!(0)
    );
    for b in [gone, writer] {
        b.close().await.expect("close");
    }
}
