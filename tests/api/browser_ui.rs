//! The visitor's experience in real headless Chromium (issue 10): focus and scroll on a host
//! page, drafts across chats, End, a server that is killed and comes back, slow links, scrolling,
//! links and right-to-left text, phones, themes, an unavailable database, two tabs, and axe-core.
//! Each test is the scenario of one item; helpers come from `browser.rs`.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fantoccini::key::Key;
use fantoccini::{Client as Browser, Locator};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::browser::{
    browser_or_skip, click, js, messages, record_sent, sent_frames, state, system_lines,
    timed_sent_frames, type_keys, visible, wait_js, wait_messages, wait_state, wait_state_within,
    Driver, HostSite, EMBED, ONE_AT_A_TIME, PAGE,
};
use crate::helpers::{spawn_app_with, TestApp, PATIENCE};

/// The start of every test here: skipped (or failed, when required) without Chromium, then
/// one at a time.
pub(crate) async fn turn(test: &str) -> Option<tokio::sync::MutexGuard<'static, ()>> {
    if !browser_or_skip(test) {
        return None;
    }
    Some(ONE_AT_A_TIME.lock().await)
}

pub(crate) async fn close_all(browsers: impl IntoIterator<Item = Browser>) {
    for b in browsers {
        b.close().await.expect("close");
    }
}

/// Waits until the online count is shown.
pub(crate) async fn wait_online_shown(b: &Browser, root: &str) {
    wait_js(
        b,
        root,
        "the online count",
        "return !root.querySelector('[data-test=online]').hidden;",
    )
    .await;
}

/// For what takes a server restart or a retry back-off (at most 10 s between attempts).
const LONG_PATIENCE: Duration = Duration::from_secs(40);

async fn page(b: &Browser, address: &str) {
    b.goto(&format!("http://{address}/")).await.expect("page");
    wait_state(b, PAGE, "idle").await;
}

/// Two visitors on the chat's own page, paired: `a` waited, `b` found it.
async fn paired(driver: &Driver, app: &TestApp) -> (Browser, Browser) {
    let a = driver.browser(1024, 800).await;
    let b = driver.browser(1024, 800).await;
    pair_on(&a, &b, &app.address.to_string()).await;
    (a, b)
}

async fn pair_on(a: &Browser, b: &Browser, address: &str) {
    page(a, address).await;
    page(b, address).await;
    click(a, PAGE, "start").await;
    wait_state(a, PAGE, "waiting").await;
    click(b, PAGE, "start").await;
    wait_state(a, PAGE, "chat").await;
    wait_state(b, PAGE, "chat").await;
}

/// Sends `text` as the visitor would (the box, then Send) and waits for the server's receipt.
pub(crate) async fn say(b: &Browser, root: &str, text: &str) {
    let text = serde_json::to_string(text).expect("json");
    js(
        b,
        root,
        &format!(
            "const i = root.querySelector('[data-test=input]'); i.value = {text}; \
             i.dispatchEvent(new Event('input', {{ bubbles: true }})); \
             root.querySelector('[data-test=composer]').requestSubmit(); return true;"
        ),
    )
    .await;
    wait_js(
        b,
        root,
        "the receipt",
        "return !root.querySelector('[data-test=pairchat]').dataset.sending;",
    )
    .await;
}

/// The value of `expr` once `done(value)` holds (both JavaScript; `v` is the value in `done`).
async fn wait_value(b: &Browser, root: &str, what: &str, expr: &str, done: &str) -> Value {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let v = js(b, root, &format!("const v = {expr}; return [({done}), v];")).await;
        if v[0] == json!(true) {
            return v[1].clone();
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {}",
            v[1]
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---- 1. focus and scroll on the host page ------------------------------------------------------

#[actix_rt::test]
async fn the_embed_leaves_focus_and_scroll_on_the_host_page_when_a_stranger_is_found() {
    let Some(_turn) =
        turn("the_embed_leaves_focus_and_scroll_on_the_host_page_when_a_stranger_is_found").await
    else {
        return;
    };
    let host = HostSite::start();
    let origin = host.origin.clone();
    let app = spawn_app_with(move |s| s.allowed_origins = vec![origin]).await;
    host.serve(format!(
        r##"<!doctype html><html><head><title>A blog</title></head><body>
          <div id="pairchat" style="height: 480px"></div>
          <div style="height: 1800px">A long article.</div>
          <label>Search the blog <input id="search"></label>
          <div style="height: 1200px"></div>
          <script src="http://{}/embed.js" data-target="#pairchat"></script>
        </body></html>"##,
        app.address
    ));
    let driver = Driver::start();
    let embedded = driver.browser(1280, 800).await;
    embedded
        .goto(&format!("{}/", host.origin))
        .await
        .expect("host page");
    wait_state(&embedded, EMBED, "idle").await;
    // The visitor presses Start (focus in the widget), then scrolls down and types elsewhere.
    js(
        &embedded,
        EMBED,
        "const b = root.querySelector('[data-test=start]'); b.focus(); b.click(); return true;",
    )
    .await;
    wait_state(&embedded, EMBED, "waiting").await;
    let search = embedded
        .find(Locator::Css("#search"))
        .await
        .expect("search box");
    js(
        &embedded,
        PAGE,
        "document.getElementById('search').scrollIntoView(); return true;",
    )
    .await;
    search.click().await.expect("click the search box");
    search.send_keys("cats").await.expect("typing");
    let scrolled = js(&embedded, PAGE, "return Math.round(window.scrollY);").await;
    assert!(scrolled.as_i64().unwrap_or(0) > 1000, "scrolled {scrolled}");

    let direct = driver.browser(1024, 800).await;
    page(&direct, &app.address.to_string()).await;
    click(&direct, PAGE, "start").await;
    wait_state(&embedded, EMBED, "chat").await;

    let after = js(
        &embedded,
        PAGE,
        "return [document.activeElement && document.activeElement.id, Math.round(window.scrollY)];",
    )
    .await;
    assert_eq!(
        after,
        json!(["search", scrolled]),
        "focus or scroll was taken"
    );
    // The widget says so instead, and the visitor's next keys stay in the search box.
    assert!(visible(&embedded, EMBED, "badge").await, "no badge");
    let flagged = js(
        &embedded,
        EMBED,
        "return root.querySelector('[data-test=pairchat]').dataset.attention;",
    )
    .await;
    assert_eq!(flagged, json!("true"));
    embedded
        .active_element()
        .await
        .expect("focused element")
        .send_keys(" and dogs")
        .await
        .expect("typing");
    let values = js(
        &embedded,
        EMBED,
        "return [document.getElementById('search').value, root.querySelector('[data-test=input]').value];",
    )
    .await;
    assert_eq!(values, json!(["cats and dogs", ""]));
    // Coming back to the widget clears the badge.
    js(
        &embedded,
        EMBED,
        "root.querySelector('[data-test=input]').focus(); return true;",
    )
    .await;
    assert!(!visible(&embedded, EMBED, "badge").await, "badge stayed");
    close_all([embedded, direct]).await;
}

// ---- 2. a draft across chats -----------------------------------------------------------------

#[actix_rt::test]
async fn a_half_typed_message_does_not_carry_over_to_the_next_stranger() {
    let Some(_turn) = turn("a_half_typed_message_does_not_carry_over_to_the_next_stranger").await
    else {
        return;
    };
    let app = spawn_app_with(|s| s.rematch_cooldown = Duration::ZERO).await;
    let driver = Driver::start();
    let (alice, bob) = paired(&driver, &app).await;
    say(&alice, PAGE, "hello").await;
    type_keys(&alice, "I was about to say").await;
    click(&bob, PAGE, "end").await;
    click(&bob, PAGE, "end").await;
    wait_state(&alice, PAGE, "closed").await;

    click(&alice, PAGE, "start-over").await;
    wait_state(&alice, PAGE, "waiting").await;
    click(&bob, PAGE, "start-over").await;
    wait_state(&alice, PAGE, "chat").await;
    let (draft, shown) = (
        js(
            &alice,
            PAGE,
            "return root.querySelector('[data-test=input]').value;",
        )
        .await,
        messages(&alice, PAGE).await,
    );
    assert_eq!(draft, json!(""), "the last chat's draft is in the box");
    assert!(shown.is_empty(), "the last chat is shown: {shown:?}");
    close_all([alice, bob]).await;
}

// ---- 3. End by click or tap ------------------------------------------------------------------

#[actix_rt::test]
async fn end_asks_really_on_a_tap_and_sits_away_from_send_on_a_phone() {
    let Some(_turn) = turn("end_asks_really_on_a_tap_and_sits_away_from_send_on_a_phone").await
    else {
        return;
    };
    let app = spawn_app_with(|_| {}).await;
    let driver = Driver::start();
    let phone = driver.phone(390, 844).await;
    let desk = driver.browser(1024, 800).await;
    pair_on(&phone, &desk, &app.address.to_string()).await;

    // End is not beside Send, nor as big: the message box is between them.
    let layout = js(
        &phone,
        PAGE,
        "const r = (t) => root.querySelector(`[data-test=${t}]`).getBoundingClientRect(); \
         const [e, i, s] = [r('end'), r('input'), r('send')]; \
         return [s.left - e.right, e.right <= i.left && i.right <= s.left, e.width < s.width];",
    )
    .await;
    assert!(
        layout[0].as_f64().unwrap_or(0.0) > 150.0,
        "End is next to Send: {layout}"
    );
    assert_eq!(layout[1], json!(true), "End | box | Send: {layout}");
    assert_eq!(layout[2], json!(true), "End is as big as Send: {layout}");

    // A real tap (WebDriver click) asks first; the second ends; then "New chat".
    let end = phone
        .find(Locator::Css("[data-test=end]"))
        .await
        .expect("End");
    end.click().await.expect("tap");
    assert_eq!(state(&phone, PAGE).await, "chat", "one tap ended the chat");
    let label = js(
        &phone,
        PAGE,
        "const e = root.querySelector('[data-test=end]'); return [e.textContent, e.dataset.confirm];",
    )
    .await;
    assert_eq!(label, json!(["Really?", "true"]));
    end.click().await.expect("tap");
    wait_state(&phone, PAGE, "closed").await;
    wait_state(&desk, PAGE, "closed").await;
    let next = js(
        &phone,
        PAGE,
        "return root.querySelector('[data-test=start-over]').textContent;",
    )
    .await;
    assert_eq!(next, json!("New chat"));
    close_all([phone, desk]).await;
}

// ---- 4. the server killed and back -----------------------------------------------------------

/// `pairchat serve` as a process of its own, on a port and database that outlive it.
struct ServerProcess {
    child: Child,
}

impl ServerProcess {
    fn start(address: &str, database_url: &str) -> ServerProcess {
        let child = Command::new(env!("CARGO_BIN_EXE_pairchat"))
            .args([
                "serve",
                "--bind",
                address,
                "--database-url",
                database_url,
                "--rematch-cooldown-secs",
                "0",
            ])
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("server starts");
        let deadline = Instant::now() + PATIENCE;
        while std::net::TcpStream::connect(address).is_err() {
            assert!(Instant::now() < deadline, "server did not start listening");
            std::thread::sleep(Duration::from_millis(20));
        }
        ServerProcess { child }
    }

    /// SIGKILL: no close frames, no goodbye.
    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[actix_rt::test]
async fn the_page_recovers_by_itself_when_the_server_is_killed_and_comes_back() {
    let Some(_turn) =
        turn("the_page_recovers_by_itself_when_the_server_is_killed_and_comes_back").await
    else {
        return;
    };
    let dir = tempfile::tempdir().expect("temporary folder");
    let url = format!("sqlite://{}", dir.path().join("pairchat.db").display());
    let address = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .to_string();
    let server = ServerProcess::start(&address, &url);
    let driver = Driver::start();
    let (talker, partner, waiter) = (
        driver.browser(1024, 800).await,
        driver.browser(1024, 800).await,
        driver.browser(1024, 800).await,
    );
    pair_on(&talker, &partner, &address).await;
    say(&talker, PAGE, "before the crash").await;
    page(&waiter, &address).await;
    click(&waiter, PAGE, "start").await;
    wait_state(&waiter, PAGE, "waiting").await;
    wait_online_shown(&waiter, PAGE).await;

    server.kill();

    // The page first tries to take the chat up again (the server may be one of several, or
    // back within the grace), saying so, and stays in the chat meanwhile.
    wait_js(
        &talker,
        PAGE,
        "the reconnecting line",
        "return root.querySelector('[data-test=system-line][data-kind=reconnecting]') !== null;",
    )
    .await;
    assert_eq!(state(&talker, PAGE).await, "chat");
    // With no server to resume on, it gives up: the chat ends with a line that stands out
    // from a stranger's leaving, and says what next.
    wait_state_within(&talker, PAGE, "closed", LONG_PATIENCE).await;
    let lost = js(
        &talker,
        PAGE,
        "const lost = root.querySelector('[data-test=system-line][data-kind=lost]'); \
         const found = root.querySelector('[data-test=system-line][data-kind=found]'); \
         return lost && [lost.textContent, getComputedStyle(lost).color !== getComputedStyle(found).color];",
    )
    .await;
    assert!(
        lost[0].as_str().unwrap_or_default().contains("New chat"),
        "{lost}"
    );
    assert_eq!(lost[1], json!(true), "the lost line looks like a leaving");
    // The waiting visitor is not thrown back to the welcome: it says it is reconnecting.
    wait_state(&waiter, PAGE, "retrying").await;
    let countdown = wait_value(
        &waiter,
        PAGE,
        "the countdown",
        "root.querySelector('[data-test=retry-countdown]').textContent",
        "/Reconnecting… \\(retrying in \\d+ s\\)/.test(v)",
    )
    .await;
    assert!(
        visible(&waiter, PAGE, "retry-countdown").await,
        "{countdown}"
    );
    let axe = axe_violations(&waiter).await;
    assert!(axe.is_empty(), "axe-core, reconnecting: {axe:?}");
    // No stale counts while offline.
    for b in [&talker, &waiter] {
        wait_js(
            b,
            PAGE,
            "the count to hide",
            "return root.querySelector('[data-test=online]').hidden;",
        )
        .await;
    }
    // New chat while the server is down keeps the transcript, and keeps trying.
    click(&talker, PAGE, "start-over").await;
    wait_state(&talker, PAGE, "retrying").await;
    assert_eq!(
        messages(&talker, PAGE).await,
        vec![("You".to_owned(), "before the crash".to_owned())]
    );
    assert!(
        visible(&talker, PAGE, "transcript").await,
        "transcript hidden"
    );

    // The server comes back: both are back in the queue by themselves, and meet.
    // (On a database of its own: what the page sees is the same, and a server's guard against
    // a second one on a database in use cannot take the killed one for alive.)
    let fresh = format!("sqlite://{}", dir.path().join("after.db").display());
    let _server = ServerProcess::start(&address, &fresh);
    wait_state_within(&talker, PAGE, "chat", LONG_PATIENCE).await;
    wait_state_within(&waiter, PAGE, "chat", LONG_PATIENCE).await;
    assert!(
        messages(&talker, PAGE).await.is_empty(),
        "the old chat is shown in the new one"
    );
    wait_online_shown(&talker, PAGE).await;
    close_all([talker, partner, waiter]).await;
}

// ---- 5. waiting alone; the title blink on "Stranger found" -----------------------------------

#[actix_rt::test]
async fn a_visitor_waiting_alone_sees_for_how_long_and_that_nobody_else_is_here() {
    let Some(_turn) =
        turn("a_visitor_waiting_alone_sees_for_how_long_and_that_nobody_else_is_here").await
    else {
        return;
    };
    let app = spawn_app_with(|_| {}).await;
    let driver = Driver::start();
    let alone = driver.browser(1024, 800).await;
    page(&alone, &app.address.to_string()).await;
    click(&alone, PAGE, "start").await;
    wait_state(&alone, PAGE, "waiting").await;
    wait_js(
        &alone,
        PAGE,
        "the only-one note",
        "const a = root.querySelector('[data-test=alone]'); \
         return !a.hidden && a.textContent.includes(\"You're the only one here right now\");",
    )
    .await;
    wait_value(
        &alone,
        PAGE,
        "the waiting time to count up",
        "root.querySelector('[data-test=waited]').textContent",
        "/^0:0[2-9]$/.test(v)",
    )
    .await;

    // In the background, the title blinks when a stranger is found.
    let title = js(
        &alone,
        PAGE,
        "const t = document.title; document.hasFocus = () => false; return t;",
    )
    .await;
    let other = driver.browser(1024, 800).await;
    page(&other, &app.address.to_string()).await;
    click(&other, PAGE, "start").await;
    wait_state(&alone, PAGE, "chat").await;
    wait_js(
        &alone,
        PAGE,
        "the title to blink",
        "return document.title === '*** New message ***';",
    )
    .await;
    assert!(system_lines(&alone, PAGE)
        .await
        .iter()
        .any(|l| l.contains("Stranger found")));
    js(
        &alone,
        PAGE,
        "document.hasFocus = () => true; window.dispatchEvent(new Event('focus')); return true;",
    )
    .await;
    let back = serde_json::to_string(&title).expect("json");
    wait_js(
        &alone,
        PAGE,
        "the title back",
        &format!("return document.title === {back};"),
    )
    .await;
    close_all([alone, other]).await;
}

// ---- 6. the online count before connecting ---------------------------------------------------

#[actix_rt::test]
async fn the_idle_page_shows_a_fresh_online_count_before_connecting() {
    let Some(_turn) = turn("the_idle_page_shows_a_fresh_online_count_before_connecting").await
    else {
        return;
    };
    let app = spawn_app_with(|_| {}).await;
    let driver = Driver::start();
    let first = driver.browser(1024, 800).await;
    page(&first, &app.address.to_string()).await;
    let count = |n: &str| {
        format!(
            "return !root.querySelector('[data-test=online]').hidden && \
             root.querySelector('[data-test=online-count]').textContent === '{n}';"
        )
    };
    wait_js(&first, PAGE, "a count of 0", &count("0")).await;
    // Somebody else starts a chat: the idle page's count follows, with no socket of its own.
    let other = driver.browser(1024, 800).await;
    page(&other, &app.address.to_string()).await;
    click(&other, PAGE, "start").await;
    wait_js(&first, PAGE, "a count of 1", &count("1")).await;
    assert_eq!(state(&first, PAGE).await, "idle");
    assert_eq!(app.stats().await.connections, 1, "the idle page connected");
    let headers = js(
        &first,
        PAGE,
        "return fetch('/online').then(r => r.json().then(b => [r.headers.get('cache-control'), b]));",
    )
    .await;
    assert_eq!(
        headers,
        json!(["no-store", {"online": 1, "max_message_chars": 2000}])
    );
    close_all([first, other]).await;
}

// ---- 7. a slow link --------------------------------------------------------------------------

/// A TCP proxy in front of the server that holds everything the server sends for `delay`.
struct SlowLink {
    address: String,
    delay_ms: Arc<AtomicU64>,
}

impl SlowLink {
    async fn start(target: String) -> SlowLink {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address").to_string();
        let delay_ms = Arc::new(AtomicU64::new(0));
        let delay = delay_ms.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(&target).await else {
                    continue;
                };
                let delay = delay.clone();
                tokio::spawn(async move {
                    let (mut from_client, mut to_client) = client.into_split();
                    let (mut from_server, mut to_server) = server.into_split();
                    let up = tokio::spawn(async move {
                        let _ = tokio::io::copy(&mut from_client, &mut to_server).await;
                    });
                    // Chunks go out in order, each `delay` after it arrived.
                    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
                    let writer = tokio::spawn(async move {
                        while let Some((due, chunk)) = rx.recv().await {
                            tokio::time::sleep_until(due.into()).await;
                            if to_client.write_all(&chunk).await.is_err() {
                                break;
                            }
                        }
                    });
                    let mut buf = vec![0u8; 16 * 1024];
                    while let Ok(n) = from_server.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        let due =
                            Instant::now() + Duration::from_millis(delay.load(Ordering::SeqCst));
                        if tx.send((due, buf[..n].to_vec())).is_err() {
                            break;
                        }
                    }
                    drop(tx);
                    let _ = writer.await;
                    up.abort();
                });
            }
        });
        SlowLink { address, delay_ms }
    }

    fn delay(&self, delay: Duration) {
        self.delay_ms
            .store(delay.as_millis() as u64, Ordering::SeqCst);
    }
}

#[actix_rt::test]
async fn on_a_slow_link_your_message_shows_at_once_as_pending_then_delivered() {
    let Some(_turn) =
        turn("on_a_slow_link_your_message_shows_at_once_as_pending_then_delivered").await
    else {
        return;
    };
    let app = spawn_app_with(|_| {}).await;
    let link = SlowLink::start(app.address.to_string()).await;
    let driver = Driver::start();
    let slow = driver.browser(1024, 800).await;
    let other = driver.browser(1024, 800).await;
    page(&slow, &link.address).await;
    click(&slow, PAGE, "start").await;
    wait_state(&slow, PAGE, "waiting").await;
    page(&other, &app.address.to_string()).await;
    click(&other, PAGE, "start").await;
    wait_state(&slow, PAGE, "chat").await;

    link.delay(Duration::from_secs(4));
    type_keys(&slow, &format!("over a slow link{}", Key::Enter)).await;
    let at_once = js(
        &slow,
        PAGE,
        "const m = [...root.querySelectorAll('[data-test=message]')].map(m => [\
            m.querySelector('[data-test=message-text]').textContent, m.dataset.status,\
            m.querySelector('[data-test=message-status]').textContent]); \
         const send = root.querySelector('[data-test=send]'); \
         return [m, send.disabled, Number(getComputedStyle(send).opacity) < 1];",
    )
    .await;
    // Send stays ready: more may wait for their receipts (up to pending.js's MAX_PENDING).
    assert_eq!(
        at_once,
        json!([[["over a slow link", "pending", "Sending…"]], false, false]),
        "not shown at once as pending (with a Send ready for the next)"
    );
    wait_messages(&other, PAGE, 1).await;
    wait_js(
        &slow,
        PAGE,
        "the receipt over the slow link",
        "const m = root.querySelector('[data-test=message]'); return m.dataset.status === 'delivered' \
         && m.querySelector('[data-test=message-status]').textContent === '';",
    )
    .await;
    assert_eq!(messages(&slow, PAGE).await.len(), 1, "shown twice");
    close_all([slow, other]).await;
}

// ---- 8. scrolling ----------------------------------------------------------------------------

/// `[scrollTop, scrollHeight - clientHeight, clientHeight]` of the transcript.
async fn scroll_of(b: &Browser) -> (f64, f64, f64) {
    let v = js(
        b,
        PAGE,
        "const t = root.querySelector('[data-test=transcript]'); \
         return [t.scrollTop, t.scrollHeight - t.clientHeight, t.clientHeight];",
    )
    .await;
    (
        v[0].as_f64().unwrap_or(-1.0),
        v[1].as_f64().unwrap_or(-1.0),
        v[2].as_f64().unwrap_or(-1.0),
    )
}

fn lines(n: usize, word: &str) -> String {
    (1..=n)
        .map(|i| format!("{word} {i}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[actix_rt::test]
async fn scrolling_up_keeps_your_place_and_new_messages_show_a_pill() {
    let Some(_turn) = turn("scrolling_up_keeps_your_place_and_new_messages_show_a_pill").await
    else {
        return;
    };
    let app = spawn_app_with(|_| {}).await;
    let driver = Driver::start();
    let (reader, writer) = paired(&driver, &app).await;
    for i in 0..3 {
        say(&writer, PAGE, &lines(12, &format!("filler {i}"))).await;
    }
    wait_messages(&reader, PAGE, 3).await;
    let (top, bottom, _) = scroll_of(&reader).await;
    assert!(
        bottom > 100.0 && top >= bottom - 2.0,
        "not following: {top} of {bottom}"
    );

    // Scrolled up: a new message leaves the view alone and shows the pill.
    js(
        &reader,
        PAGE,
        "root.querySelector('[data-test=transcript]').scrollTop = 0; return true;",
    )
    .await;
    say(&writer, PAGE, "while you were reading").await;
    wait_messages(&reader, PAGE, 4).await;
    assert!(visible(&reader, PAGE, "new-below").await, "no pill");
    assert_eq!(scroll_of(&reader).await.0, 0.0, "the view moved");
    click(&reader, PAGE, "new-below").await;
    let (top, bottom, _) = scroll_of(&reader).await;
    assert!(
        top >= bottom - 2.0,
        "the pill did not scroll down: {top} of {bottom}"
    );
    assert!(
        !visible(&reader, PAGE, "new-below").await,
        "the pill stayed"
    );

    // Sending while scrolled up goes to the bottom.
    js(
        &reader,
        PAGE,
        "root.querySelector('[data-test=transcript]').scrollTop = 0; return true;",
    )
    .await;
    say(&reader, PAGE, "my answer").await;
    let (top, bottom, height) = scroll_of(&reader).await;
    assert!(
        top >= bottom - 2.0,
        "sending did not go to the bottom: {top} of {bottom}"
    );

    // "Stranger is typing…" neither shrinks the transcript nor covers the last message.
    type_keys(&writer, "typing").await;
    wait_js(
        &reader,
        PAGE,
        "the typing line",
        "return !root.querySelector('[data-test=typing]').hidden;",
    )
    .await;
    let (_, _, height_typing) = scroll_of(&reader).await;
    assert_eq!(height_typing, height, "the transcript shrank");
    let last_seen = js(
        &reader,
        PAGE,
        "const t = root.querySelector('[data-test=transcript]').getBoundingClientRect(); \
         const ms = root.querySelectorAll('[data-test=message]'); \
         return ms[ms.length - 1].getBoundingClientRect().bottom <= t.bottom + 1;",
    )
    .await;
    assert_eq!(last_seen, json!(true), "the last message is covered");

    // A long message is shown from its start: its sender label is in view.
    js(
        &writer,
        PAGE,
        "root.querySelector('[data-test=input]').value = ''; return true;",
    )
    .await;
    say(&writer, PAGE, &lines(80, "long")).await;
    wait_messages(&reader, PAGE, 6).await;
    let label_seen = js(
        &reader,
        PAGE,
        "const t = root.querySelector('[data-test=transcript]').getBoundingClientRect(); \
         const ms = root.querySelectorAll('[data-test=message]'); \
         const l = ms[ms.length - 1].querySelector('[data-test=message-label]').getBoundingClientRect(); \
         return [l.top >= t.top - 1 && l.bottom <= t.bottom + 1, l.top - t.top];",
    )
    .await;
    assert_eq!(
        label_seen[0],
        json!(true),
        "the long message's start is off screen: {label_seen}"
    );
    close_all([reader, writer]).await;
}

// ---- 9. the keyboard -------------------------------------------------------------------------

async fn focused_hook(b: &Browser) -> Value {
    js(
        b,
        PAGE,
        "const a = document.activeElement; return a && (a.dataset.test || a.tagName);",
    )
    .await
}

async fn press(b: &Browser, key: Key) {
    b.active_element()
        .await
        .expect("focused element")
        .send_keys(&format!("{key}"))
        .await
        .expect("key");
}

#[actix_rt::test]
async fn the_keyboard_never_dead_ends_and_a_second_enter_does_not_cancel() {
    let Some(_turn) = turn("the_keyboard_never_dead_ends_and_a_second_enter_does_not_cancel").await
    else {
        return;
    };
    let app = spawn_app_with(|s| s.rematch_cooldown = Duration::ZERO).await;
    let driver = Driver::start();
    let keys = driver.browser(1024, 800).await;
    let other = driver.browser(1024, 800).await;
    page(&keys, &app.address.to_string()).await;
    page(&other, &app.address.to_string()).await;

    keys.find(Locator::Css("[data-test=start]"))
        .await
        .expect("start")
        .send_keys(&format!("{}", Key::Enter))
        .await
        .expect("Enter");
    wait_state(&keys, PAGE, "waiting").await;
    assert_ne!(
        focused_hook(&keys).await,
        json!("cancel"),
        "Cancel has the focus"
    );
    press(&keys, Key::Enter).await;
    assert_eq!(
        state(&keys, PAGE).await,
        "waiting",
        "a second Enter cancelled"
    );

    click(&other, PAGE, "start").await;
    wait_state(&keys, PAGE, "chat").await;
    press(&keys, Key::Escape).await;
    press(&keys, Key::Escape).await;
    wait_state(&keys, PAGE, "closed").await;
    assert_eq!(focused_hook(&keys).await, json!("start-over"));
    let label = js(&keys, PAGE, "return document.activeElement.textContent;").await;
    assert_eq!(label, json!("New chat"));
    press(&keys, Key::Enter).await;
    wait_state(&keys, PAGE, "waiting").await;
    close_all([keys, other]).await;
}

// ---- 10. links and right-to-left text --------------------------------------------------------

#[actix_rt::test]
async fn links_are_clickable_and_right_to_left_text_runs_right_to_left() {
    let Some(_turn) = turn("links_are_clickable_and_right_to_left_text_runs_right_to_left").await
    else {
        return;
    };
    let app = spawn_app_with(|_| {}).await;
    let driver = Driver::start();
    let (alice, bob) = paired(&driver, &app).await;
    let text = "שלום! ראו https://example.com/a?b=1&c=2. ולא javascript:alert(1) <a href=\"https://evil.example\">x</a>";
    say(&alice, PAGE, text).await;
    wait_messages(&bob, PAGE, 1).await;
    let shown = js(
        &bob,
        PAGE,
        "const t = root.querySelector('[data-test=message][data-from=guest] [data-test=message-text]'); \
         return [t.textContent, t.getAttribute('dir'), getComputedStyle(t).direction, \
                 [...t.querySelectorAll('a')].map(a => [a.href, a.rel, a.target, a.textContent]), \
                 t.querySelectorAll('*').length];",
    )
    .await;
    assert_eq!(
        shown,
        json!([
            text,
            "auto",
            "rtl",
            [
                [
                    "https://example.com/a?b=1&c=2",
                    "noopener noreferrer nofollow ugc",
                    "_blank",
                    "https://example.com/a?b=1&c=2"
                ],
                [
                    "https://evil.example/",
                    "noopener noreferrer nofollow ugc",
                    "_blank",
                    "https://evil.example"
                ]
            ],
            2
        ])
    );
    close_all([alice, bob]).await;
}

// ---- 11. a phone -----------------------------------------------------------------------------

#[actix_rt::test]
async fn on_a_phone_the_composer_is_small_grows_with_the_text_and_counts_characters() {
    let Some(_turn) =
        turn("on_a_phone_the_composer_is_small_grows_with_the_text_and_counts_characters").await
    else {
        return;
    };
    // Not the default limit: the page learns the server's own from GET /online.
    let app = spawn_app_with(|s| s.session.max_message_chars = 1_500).await;
    let driver = Driver::start();
    let phone = driver.phone(390, 844).await;
    let desk = driver.browser(1024, 800).await;
    page(&phone, &app.address.to_string()).await;
    let touch = js(
        &phone,
        PAGE,
        "return matchMedia('(hover: none) and (pointer: coarse)').matches;",
    )
    .await;
    assert_eq!(touch, json!(true), "the phone is not a touch screen");
    let said = js(&phone, PAGE, "return document.body.innerText;").await;
    let said = said.as_str().unwrap_or_default();
    assert!(
        !said.contains("Esc") && !said.contains("Shift+Enter"),
        "keyboard talk on a phone: {said}"
    );
    pair_on(&phone, &desk, &app.address.to_string()).await;
    let fit = js(
        &phone,
        PAGE,
        "const i = root.querySelector('[data-test=input]'); const s = getComputedStyle(i); \
         const c = document.createElement('canvas').getContext('2d'); c.font = s.font; \
         const room = i.clientWidth - parseFloat(s.paddingLeft) - parseFloat(s.paddingRight); \
         return [c.measureText(i.placeholder).width <= room, \
                 root.querySelector('[data-test=view-chat]').getBoundingClientRect().height, \
                 root.querySelector('[data-test=transcript]').getBoundingClientRect().height, \
                 i.offsetHeight];",
    )
    .await;
    assert_eq!(fit[0], json!(true), "the placeholder wraps: {fit}");
    let composer = fit[1].as_f64().unwrap_or(999.0);
    assert!(composer <= 110.0, "the composer takes {composer} px");
    let transcript = fit[2].as_f64().unwrap_or(0.0);
    assert!(transcript >= 500.0, "the transcript has {transcript} px");

    // The box grows as you type.
    type_keys(&phone, "one").await;
    for word in ["two", "three"] {
        type_keys(&phone, &format!("{}{}{word}", Key::Shift, Key::Enter)).await;
    }
    let grown = js(
        &phone,
        PAGE,
        "return root.querySelector('[data-test=input]').offsetHeight;",
    )
    .await;
    assert!(
        grown.as_f64().unwrap_or(0.0) > fit[3].as_f64().unwrap_or(0.0) + 20.0,
        "the box did not grow: {grown} from {}",
        fit[3]
    );

    // Too long: the counter says so before sending, and nothing is sent.
    record_sent(&phone).await;
    js(
        &phone,
        PAGE,
        "const i = root.querySelector('[data-test=input]'); i.value = 'x'.repeat(1600); \
         i.dispatchEvent(new Event('input', { bubbles: true })); return true;",
    )
    .await;
    let counter = js(
        &phone,
        PAGE,
        "const c = root.querySelector('[data-test=counter]'); \
         return [!c.hidden, c.textContent, c.hasAttribute('data-over'), \
                 root.querySelector('[data-test=input]').getAttribute('aria-invalid')];",
    )
    .await;
    assert_eq!(counter, json!([true, "1,600 / 1,500", true, "true"]));
    type_keys(&phone, &format!("{}", Key::Enter)).await;
    click(&phone, PAGE, "send").await;
    assert!(
        !sent_frames(&phone)
            .await
            .iter()
            .any(|f| f["type"] == "message"),
        "a message over the limit was sent"
    );
    assert!(messages(&phone, PAGE).await.is_empty());
    close_all([phone, desk]).await;
}

// ---- 12. the embed's layout and theme ---------------------------------------------------------

/// Relative luminance of the chat's background, 0 (black) to 1 (white).
async fn chat_luminance(b: &Browser, root: &str) -> f64 {
    let v = js(
        b,
        root,
        "const m = getComputedStyle(root.querySelector('[data-test=pairchat]')).backgroundColor.match(/\\d+/g).map(Number); \
         return (0.2126 * m[0] + 0.7152 * m[1] + 0.0722 * m[2]) / 255;",
    )
    .await;
    v.as_f64().unwrap_or(-1.0)
}

fn embed_with_theme(app: &TestApp, theme: &str) -> String {
    format!(
        r##"<!doctype html><html lang="en"><head><title>A site</title></head><body>
          <div id="pairchat" style="height: 480px"></div>
          <script src="http://{}/embed.js" data-target="#pairchat" data-theme="{theme}"></script>
        </body></html>"##,
        app.address
    )
}

#[actix_rt::test]
async fn site_owners_choose_the_theme_and_a_short_embed_on_a_phone_shows_start() {
    let Some(_turn) =
        turn("site_owners_choose_the_theme_and_a_short_embed_on_a_phone_shows_start").await
    else {
        return;
    };
    let host = HostSite::start();
    let origin = host.origin.clone();
    let app = spawn_app_with(move |s| s.allowed_origins = vec![origin]).await;
    let site = format!("{}/", host.origin);
    let driver = Driver::start();
    let light = driver.browser(1024, 800).await;
    let dark = driver
        .browser_with(1024, 800, &["--blink-settings=preferredColorScheme=0"])
        .await;

    host.serve(embed_with_theme(&app, "dark"));
    light.goto(&site).await.expect("host page");
    wait_state(&light, EMBED, "idle").await;
    assert!(
        chat_luminance(&light, EMBED).await < 0.2,
        "data-theme=dark is not dark"
    );
    let axe = axe_violations(&light).await;
    assert!(axe.is_empty(), "axe-core, a dark embed: {axe:?}");
    // The embed's count comes from /online, across origins.
    wait_online_shown(&light, EMBED).await;
    host.serve(embed_with_theme(&app, "light"));
    dark.goto(&site).await.expect("host page");
    wait_state(&dark, EMBED, "idle").await;
    assert!(
        chat_luminance(&dark, EMBED).await > 0.8,
        "data-theme=light is not light"
    );
    host.serve(embed_with_theme(&app, "auto"));
    dark.goto(&site).await.expect("host page");
    wait_state(&dark, EMBED, "idle").await;
    assert!(
        chat_luminance(&dark, EMBED).await < 0.2,
        "auto does not follow the device"
    );

    // The iframe takes ?theme=.
    light
        .goto(&format!("http://{}/widget?theme=dark", app.address))
        .await
        .expect("widget");
    wait_state(&light, PAGE, "idle").await;
    assert!(
        chat_luminance(&light, PAGE).await < 0.2,
        "?theme=dark is not dark"
    );

    // A 480 px embed on a phone: Start is in sight without scrolling.
    let phone = driver.phone(390, 844).await;
    host.serve(embed_with_theme(&app, "auto"));
    phone.goto(&site).await.expect("host page");
    wait_state(&phone, EMBED, "idle").await;
    let placed = js(
        &phone,
        EMBED,
        "const t = document.getElementById('pairchat').getBoundingClientRect(); \
         const s = root.querySelector('[data-test=start]').getBoundingClientRect(); \
         return [s.top >= t.top, s.bottom <= t.bottom, s.bottom <= window.innerHeight, s.height > 0];",
    )
    .await;
    assert_eq!(
        placed,
        json!([true, true, true, true]),
        "Start is below the fold"
    );
    close_all([light, dark, phone]).await;
}

// ---- 13. the database unavailable -------------------------------------------------------------

#[actix_rt::test]
async fn when_pairing_is_unavailable_the_visitor_is_told_and_the_page_retries() {
    let Some(_turn) =
        turn("when_pairing_is_unavailable_the_visitor_is_told_and_the_page_retries").await
    else {
        return;
    };
    if crate::helpers::mysql_server_url().is_some() {
        eprintln!("skipped the unavailable-database browser test on MariaDB: it locks SQLite");
        return;
    }
    let app = spawn_app_with(|_| {}).await;
    let driver = Driver::start();
    let first = driver.browser(1024, 800).await;
    let second = driver.browser(1024, 800).await;
    page(&first, &app.address.to_string()).await;
    page(&second, &app.address.to_string()).await;
    click(&first, PAGE, "start").await;
    wait_state(&first, PAGE, "waiting").await;
    app.hub.flush(1).await.expect("hub answers");

    // The database stops answering: a write lock held by someone else.
    let (release, released) = std::sync::mpsc::channel::<()>();
    let (locked_tx, locked) = tokio::sync::oneshot::channel();
    let pool = app.pool.clone();
    let holder = std::thread::spawn(move || {
        use diesel::RunQueryDsl;
        let mut conn = pairchat::db::get(&pool).expect("test connection");
        #[allow(irrefutable_let_patterns)] // refutable with the mysql feature
        let pairchat::db::DbConn::Sqlite(c) = &mut *conn
        else {
            panic!("SQLite expected");
        };
        diesel::sql_query("BEGIN EXCLUSIVE")
            .execute(c)
            .expect("lock");
        let _ = locked_tx.send(());
        let _ = released.recv();
        diesel::sql_query("COMMIT").execute(c).expect("unlock");
    });
    locked.await.expect("locked");

    click(&second, PAGE, "start").await;
    wait_state_within(&second, PAGE, "retrying", LONG_PATIENCE).await;
    let said = js(
        &second,
        PAGE,
        "return root.querySelector('[data-test=retry-text]').textContent;",
    )
    .await;
    assert!(
        said.as_str().unwrap_or_default().contains("unavailable"),
        "{said}"
    );
    assert!(visible(&second, PAGE, "retry-reason").await);
    assert!(visible(&second, PAGE, "cancel-retrying").await);

    let _ = release.send(());
    holder.join().expect("lock holder");
    wait_state_within(&second, PAGE, "chat", LONG_PATIENCE).await;
    wait_state(&first, PAGE, "chat").await;
    close_all([first, second]).await;
}

// ---- 14. two tabs of one browser --------------------------------------------------------------

/// Opens a second tab of `b` on `address` with the first tab's visitor token (what a
/// duplicated tab has), and returns both tabs' handles.
async fn second_tab(
    b: &Browser,
    address: &str,
) -> (fantoccini::wd::WindowHandle, fantoccini::wd::WindowHandle) {
    let first = b.window().await.expect("window");
    let token = js(
        b,
        PAGE,
        "return sessionStorage.getItem('pairchat.visitor');",
    )
    .await;
    assert!(token.is_string(), "no visitor token yet");
    let tab = b.new_window(true).await.expect("new tab");
    b.switch_to_window(tab.handle.clone())
        .await
        .expect("switch");
    page(b, address).await;
    js(
        b,
        PAGE,
        &format!("sessionStorage.setItem('pairchat.visitor', {token}); return true;"),
    )
    .await;
    (first, tab.handle)
}

#[actix_rt::test]
async fn two_tabs_of_one_browser_are_not_paired_with_each_other_while_anyone_else_comes() {
    let Some(_turn) =
        turn("two_tabs_of_one_browser_are_not_paired_with_each_other_while_anyone_else_comes")
            .await
    else {
        return;
    };
    let app = spawn_app_with(|s| s.rematch_cooldown = Duration::from_secs(600)).await;
    let address = app.address.to_string();
    let driver = Driver::start();
    let tabs = driver.browser(1024, 800).await;
    page(&tabs, &address).await;
    click(&tabs, PAGE, "start").await;
    wait_state(&tabs, PAGE, "waiting").await;
    let (first, second) = second_tab(&tabs, &address).await;
    click(&tabs, PAGE, "start").await;
    wait_state(&tabs, PAGE, "waiting").await;
    app.hub.flush(2).await.expect("hub answers");
    let stats = app.stats().await;
    assert_eq!(
        (stats.waiting, stats.chatting),
        (2, 0),
        "two tabs were paired"
    );

    // Someone else comes: paired with the tab that waited longest; the other keeps waiting.
    let stranger = driver.browser(1024, 800).await;
    page(&stranger, &address).await;
    click(&stranger, PAGE, "start").await;
    wait_state(&stranger, PAGE, "chat").await;
    assert_eq!(state(&tabs, PAGE).await, "waiting");
    tabs.switch_to_window(first.clone()).await.expect("switch");
    wait_state(&tabs, PAGE, "chat").await;
    close_all([stranger, tabs]).await;
    let _ = second;
}

#[actix_rt::test]
async fn two_tabs_of_one_browser_meet_when_nobody_else_comes_for_a_while() {
    let Some(_turn) = turn("two_tabs_of_one_browser_meet_when_nobody_else_comes_for_a_while").await
    else {
        return;
    };
    let app = spawn_app_with(|s| s.rematch_cooldown = Duration::from_secs(2)).await;
    let address = app.address.to_string();
    let driver = Driver::start();
    let tabs = driver.browser(1024, 800).await;
    page(&tabs, &address).await;
    click(&tabs, PAGE, "start").await;
    wait_state(&tabs, PAGE, "waiting").await;
    let (first, _) = second_tab(&tabs, &address).await;
    click(&tabs, PAGE, "start").await;
    wait_state(&tabs, PAGE, "chat").await;
    tabs.switch_to_window(first).await.expect("switch");
    wait_state(&tabs, PAGE, "chat").await;
    tabs.close().await.expect("close");
}

// ---- axe-core --------------------------------------------------------------------------------

const AXE: &str = include_str!("../vendor/axe.min.js");

/// Serious and critical axe-core violations in `root`'s document, as `[rule, [targets]]`.
pub(crate) async fn axe_violations(b: &Browser) -> Vec<Value> {
    // WebDriver runs the source as a function body, outside the page's CSP (no eval needed).
    if js(b, PAGE, "return typeof window.axe;").await != json!("object") {
        b.execute(&format!("{AXE}\n;return typeof window.axe;"), vec![])
            .await
            .expect("axe loads");
    }
    let found = js(
        b,
        PAGE,
        "return axe.run(document, { resultTypes: ['violations'] }).then(r => r.violations\
           .filter(v => v.impact === 'serious' || v.impact === 'critical')\
           .map(v => [v.id, v.nodes.slice(0, 3).map(n => n.target.join(' '))]));",
    )
    .await;
    serde_json::from_value(found).unwrap_or_else(|_| vec![json!("axe did not run")])
}

#[actix_rt::test]
async fn axe_core_finds_no_serious_violation_in_any_state_light_or_dark() {
    let Some(_turn) = turn("axe_core_finds_no_serious_violation_in_any_state_light_or_dark").await
    else {
        return;
    };
    let app = spawn_app_with(|_| {}).await;
    let driver = Driver::start();
    let light = driver.browser(1024, 800).await;
    let dark = driver
        .browser_with(1024, 800, &["--blink-settings=preferredColorScheme=0"])
        .await;
    let mut seen = Vec::new();
    page(&light, &app.address.to_string()).await;
    page(&dark, &app.address.to_string()).await;
    // Still no inline script or handler anywhere: the CSP (script-src 'self') allows none (the
    // catalogue's JSON data block is never run).
    let inline = js(
        &light,
        PAGE,
        "return [...document.querySelectorAll('*')].filter(e => \
           (e.tagName === 'SCRIPT' && !e.src && e.type !== 'application/json') || [...e.attributes].some(a => a.name.startsWith('on'))).length;",
    )
    .await;
    assert_eq!(inline, json!(0), "inline script on the page");
    for b in [&light, &dark] {
        wait_online_shown(b, PAGE).await;
        seen.push(("idle", axe_violations(b).await));
    }
    click(&light, PAGE, "start").await;
    wait_state(&light, PAGE, "waiting").await;
    seen.push(("waiting", axe_violations(&light).await));
    click(&dark, PAGE, "start").await;
    wait_state(&dark, PAGE, "chat").await;
    say(&light, PAGE, "hi, see https://example.com/ ok?").await;
    say(&dark, PAGE, "a reply").await;
    js(
        &dark,
        PAGE,
        "const i = root.querySelector('[data-test=input]'); i.value = 'x'.repeat(1900); \
         i.dispatchEvent(new Event('input', { bubbles: true })); return true;",
    )
    .await;
    for b in [&light, &dark] {
        seen.push(("chat", axe_violations(b).await));
    }
    click(&light, PAGE, "end").await;
    seen.push(("really", axe_violations(&light).await));
    click(&light, PAGE, "end").await;
    wait_state(&dark, PAGE, "closed").await;
    for b in [&light, &dark] {
        seen.push(("closed", axe_violations(b).await));
    }
    let failing: Vec<_> = seen.iter().filter(|(_, v)| !v.is_empty()).collect();
    assert!(failing.is_empty(), "axe-core: {failing:?}");
    close_all([light, dark]).await;
}

// ---- issue 9: typing frames, framing, Vary ----------------------------------------------------

#[actix_rt::test]
async fn quick_short_messages_cost_few_typing_frames_and_are_never_refused() {
    let Some(_turn) =
        turn("quick_short_messages_cost_few_typing_frames_and_are_never_refused").await
    else {
        return;
    };
    let app = spawn_app_with(|_| {}).await;
    let driver = Driver::start();
    let (quick, other) = paired(&driver, &app).await;
    record_sent(&quick).await;
    const MESSAGES: usize = 8;
    for i in 0..MESSAGES {
        type_keys(&quick, &format!("m{i}{}", Key::Enter)).await;
        wait_js(
            &quick,
            PAGE,
            "the receipt",
            "return !root.querySelector('[data-test=pairchat]').dataset.sending;",
        )
        .await;
    }
    let heard = wait_messages(&other, PAGE, MESSAGES).await;
    assert_eq!(heard.len(), MESSAGES, "{heard:?}");
    let errors: Vec<String> = system_lines(&quick, PAGE)
        .await
        .into_iter()
        .filter(|l| !l.contains("Stranger found"))
        .collect();
    assert!(errors.is_empty(), "refused: {errors:?}");
    let sent = timed_sent_frames(&quick).await;
    let typing: Vec<i64> = sent
        .iter()
        .filter(|(_, f)| f["type"] == "typing")
        .map(|(at, _)| *at)
        .collect();
    assert!(
        typing.windows(2).all(|w| w[1] - w[0] >= 950),
        "typing frames less than a second apart: {sent:?}"
    );
    // The partner's page clears "typing" when a message arrives: "typing off" just before a
    // message is a wasted frame.
    for pair in sent.windows(2) {
        assert!(
            !(pair[0].1 == json!({"type": "typing", "typing": false})
                && pair[1].1["type"] == "message"),
            "a typing-off frame just before a message: {sent:?}"
        );
    }
    let span_ms = sent.last().map_or(0, |l| l.0) - sent.first().map_or(0, |f| f.0);
    assert!(
        typing.len() as i64 <= 1 + span_ms / 950,
        "{} typing frames in {span_ms} ms: {sent:?}",
        typing.len()
    );
    close_all([quick, other]).await;
}

#[actix_rt::test]
async fn an_unlisted_site_cannot_frame_the_widget_and_assets_vary_by_origin() {
    let Some(_turn) =
        turn("an_unlisted_site_cannot_frame_the_widget_and_assets_vary_by_origin").await
    else {
        return;
    };
    let host = HostSite::start();
    let app = spawn_app_with(|_| {}).await;
    host.serve(format!(
        r#"<!doctype html><html><body><h1>Not listed</h1>
           <iframe src="http://{}/widget" title="pairchat"></iframe></body></html>"#,
        app.address
    ));
    let driver = Driver::start();
    let b = driver.browser(1024, 800).await;
    b.goto(&format!("{}/", host.origin))
        .await
        .expect("host page");
    let frame = b.find(Locator::Css("iframe")).await.expect("iframe");
    frame.enter_frame().await.expect("enter frame");
    // Chromium replaces a frame refused by frame-ancestors with its own error page.
    wait_value(
        &b,
        PAGE,
        "the frame to be refused",
        "location.href",
        "v.startsWith('chrome-error:')",
    )
    .await;
    assert_eq!(state(&b, PAGE).await, "", "the chat ran in a refused frame");
    b.enter_parent_frame().await.expect("back to the page");

    page(&b, &app.address.to_string()).await;
    let vary = js(
        &b,
        PAGE,
        "return Promise.all(['/assets/js/chat.js', '/embed.js', '/online'].map(u => \
           fetch(u, { cache: 'no-store' }).then(r => (r.headers.get('vary') || '').toLowerCase())));",
    )
    .await;
    let vary: Vec<String> = serde_json::from_value(vary).unwrap_or_default();
    assert_eq!(vary.len(), 3);
    assert!(
        vary.iter().all(|v| v.contains("origin")),
        "Vary: Origin missing: {vary:?}"
    );
    b.close().await.expect("close");
}
