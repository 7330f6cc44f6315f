//! The page takes its chat up again by itself after its socket is cut (a proxy between the
//! browser and the server drops the TCP connection: no close frame), and its partner's page
//! says the stranger's connection dropped, then that they are back; a message sent meanwhile
//! shows as pending until it is delivered.

use std::time::Duration;

use fantoccini::Client as Browser;

use crate::browser::{
    browser_or_skip, click, js, wait_js, wait_messages, wait_state, Driver, ONE_AT_A_TIME, PAGE,
};
use crate::helpers::spawn_app_with;
use crate::proxy::Proxy;

async fn page(b: &Browser, address: &str) {
    b.goto(&format!("http://{address}/")).await.expect("page");
    wait_state(b, PAGE, "idle").await;
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
    let app = spawn_app_with(|s| s.resume_grace = Duration::from_secs(60)).await;
    let proxy = Proxy::start(app.address.to_string()).await;
    let driver = Driver::start();
    let (cut_off, partner) = (
        driver.browser(1024, 800).await,
        driver.browser(1024, 800).await,
    );
    page(&cut_off, &proxy.address.to_string()).await;
    page(&partner, &app.address.to_string()).await;
    click(&cut_off, PAGE, "start").await;
    wait_state(&cut_off, PAGE, "waiting").await;
    click(&partner, PAGE, "start").await;
    wait_state(&cut_off, PAGE, "chat").await;
    wait_state(&partner, PAGE, "chat").await;

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
