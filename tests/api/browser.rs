//! End-to-end tests in real headless Chromium (through chromedriver): the page, the widget on
//! another site, and what a visitor sees. They skip with a printed reason when Chromium or
//! chromedriver is missing; CI sets `PAIRCHAT_REQUIRE_BROWSER=1` to make them mandatory.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpResponse, HttpServer};
use fantoccini::key::Key;
use fantoccini::{Client as Browser, ClientBuilder, Locator};
use serde_json::{json, Value};

use crate::helpers::{available_or_skip, spawn_app_with, TestApp, PATIENCE};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// One browser test at a time: Chromium is heavy on two cores.
pub(crate) static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Whether the browser tests can run; prints why not, or fails when they are required.
pub(crate) fn browser_or_skip(test: &str) -> bool {
    let present =
        std::path::Path::new(CHROMIUM).exists() && std::path::Path::new(CHROMEDRIVER).exists();
    available_or_skip(
        present,
        "PAIRCHAT_REQUIRE_BROWSER",
        test,
        "install Debian's chromium and chromium-driver to run it",
    )
}

pub(crate) struct Driver {
    child: Child,
    url: String,
    _profiles: tempfile::TempDir,
}

impl Driver {
    pub(crate) fn start() -> Driver {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let child = Command::new(CHROMEDRIVER)
            .args([format!("--port={port}"), "--allowed-ips=127.0.0.1".into()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let deadline = Instant::now() + PATIENCE;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
            _profiles: tempfile::tempdir().expect("profiles folder"),
        }
    }

    /// A fresh browser with a profile of its own: a separate visitor.
    pub(crate) async fn browser(&self, width: u32, height: u32) -> Browser {
        self.browser_with(width, height, &[]).await
    }

    pub(crate) async fn browser_with(&self, width: u32, height: u32, extra: &[&str]) -> Browser {
        self.browser_with_options(width, height, extra, json!({}))
            .await
    }

    /// A phone: a touch screen (no hover, coarse pointer) of this size.
    pub(crate) async fn phone(&self, width: u32, height: u32) -> Browser {
        let emulation = json!({"mobileEmulation": {"deviceMetrics": {
            "width": width, "height": height, "pixelRatio": 3.0, "touch": true, "mobile": true
        }}});
        self.browser_with_options(width, height, &[], emulation)
            .await
    }

    /// `options` are merged into `goog:chromeOptions`.
    pub(crate) async fn browser_with_options(
        &self,
        width: u32,
        height: u32,
        extra: &[&str],
        options: Value,
    ) -> Browser {
        let profile = tempfile::Builder::new()
            .tempdir_in(self._profiles.path())
            .expect("profile")
            .keep();
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                    format!("--window-size={width},{height}"),
                    format!("--user-data-dir={}", profile.display()),
                ]
            }
        });
        let mut caps = caps;
        if let Some(args) = caps["goog:chromeOptions"]["args"].as_array_mut() {
            args.extend(extra.iter().map(|a| json!(a)));
        }
        if let (Some(chrome), Value::Object(more)) =
            (caps["goog:chromeOptions"].as_object_mut(), options)
        {
            chrome.extend(more);
        }
        let caps = match caps {
            Value::Object(map) => map,
            _ => unreachable!(),
        };
        ClientBuilder::native()
            .capabilities(caps)
            .connect(&self.url)
            .await
            .expect("browser session")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `script` (a function body) with `root` bound to the chat's root node: the document on
/// the page, the widget's shadow root in an embed.
pub(crate) async fn js(b: &Browser, root: &str, script: &str) -> Value {
    let body = format!("const root = {root}; {script}");
    b.execute(&body, vec![]).await.expect("script runs")
}

pub(crate) const PAGE: &str = "document";
pub(crate) const EMBED: &str = "document.querySelector('#pairchat').shadowRoot";

pub(crate) async fn state(b: &Browser, root: &str) -> String {
    js(
        b,
        root,
        "const el = root && root.querySelector('[data-test=pairchat]'); return el ? el.dataset.state : null;",
    )
    .await
    .as_str()
    .unwrap_or_default()
    .to_owned()
}

pub(crate) async fn wait_state(b: &Browser, root: &str, want: &str) {
    wait_state_within(b, root, want, PATIENCE).await;
}

pub(crate) async fn wait_state_within(b: &Browser, root: &str, want: &str, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let now = state(b, root).await;
        if now == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "state stayed {now:?}, wanted {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Clicks the element with this test hook (a real DOM click, inside shadow roots too).
pub(crate) async fn click(b: &Browser, root: &str, hook: &str) {
    let clicked = js(
        b,
        root,
        &format!("const el = root.querySelector('[data-test={hook}]'); if (!el) return false; el.click(); return true;"),
    )
    .await;
    assert_eq!(clicked, json!(true), "no [data-test={hook}] to click");
}

/// `(label, text)` of every message shown.
pub(crate) async fn messages(b: &Browser, root: &str) -> Vec<(String, String)> {
    let v = js(
        b,
        root,
        "return [...root.querySelectorAll('[data-test=message]')].map(m => [\
            m.querySelector('[data-test=message-label]').textContent.trim(),\
            m.querySelector('[data-test=message-text]').textContent]);",
    )
    .await;
    serde_json::from_value(v).unwrap_or_default()
}

pub(crate) async fn wait_messages(b: &Browser, root: &str, count: usize) -> Vec<(String, String)> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let shown = messages(b, root).await;
        if shown.len() >= count {
            return shown;
        }
        assert!(
            Instant::now() < deadline,
            "only {shown:?} shown, wanted {count}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub(crate) async fn system_lines(b: &Browser, root: &str) -> Vec<String> {
    let v = js(
        b,
        root,
        "return [...root.querySelectorAll('[data-test=system-line]')].map(l => l.textContent.trim());",
    )
    .await;
    serde_json::from_value(v).unwrap_or_default()
}

pub(crate) async fn visible(b: &Browser, root: &str, hook: &str) -> bool {
    js(
        b,
        root,
        &format!(
            "const el = root.querySelector('[data-test={hook}]'); \
             return !!el && !el.hidden && !el.closest('[hidden]') && el.getClientRects().length > 0;"
        ),
    )
    .await
        == json!(true)
}

/// Makes the page keep a copy of every frame it sends on its WebSockets (`sent_frames`).
pub(crate) async fn record_sent(b: &Browser) {
    js(
        b,
        PAGE,
        "if (!window.__sent) { window.__sent = []; const send = WebSocket.prototype.send; \
         WebSocket.prototype.send = function (data) { window.__sent.push({ at: Date.now(), data: String(data) }); \
         return send.call(this, data); }; } return true;",
    )
    .await;
}

/// The frames the page has sent since `record_sent`, parsed.
pub(crate) async fn sent_frames(b: &Browser) -> Vec<Value> {
    timed_sent_frames(b)
        .await
        .into_iter()
        .map(|(_, f)| f)
        .collect()
}

/// The frames the page has sent since `record_sent`, each with when (ms, the page's clock).
pub(crate) async fn timed_sent_frames(b: &Browser) -> Vec<(i64, Value)> {
    let v = js(
        b,
        PAGE,
        "return (window.__sent || []).map(s => [s.at, s.data]);",
    )
    .await;
    let sent: Vec<(i64, String)> = serde_json::from_value(v).unwrap_or_default();
    sent.into_iter()
        .filter_map(|(at, t)| Some((at, serde_json::from_str(&t).ok()?)))
        .collect()
}

/// Polls `check` (a script returning true when done) until it holds or `PATIENCE` runs out.
pub(crate) async fn wait_js(b: &Browser, root: &str, what: &str, check: &str) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if js(b, root, check).await == json!(true) {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Types into the page's textarea with real key events.
pub(crate) async fn type_keys(b: &Browser, text: &str) {
    let input = b
        .find(Locator::Css("[data-test=input]"))
        .await
        .expect("textarea");
    input.send_keys(text).await.expect("typing");
}

/// A visitor on the chat's own page starts a chat, is paired with `other` (waiting in the chat
/// at `root`) and says `text`, which `other` shows as the stranger's.
async fn page_visitor_greets(
    direct: &Browser,
    app: &TestApp,
    other: &Browser,
    root: &str,
    text: &str,
) {
    direct
        .goto(&format!("http://{}/", app.address))
        .await
        .expect("page");
    click(direct, PAGE, "start").await;
    wait_state(direct, PAGE, "chat").await;
    wait_state(other, root, "chat").await;
    type_keys(direct, &format!("{text}{}", Key::Enter)).await;
    assert_eq!(
        wait_messages(other, root, 1).await,
        vec![("Stranger".to_owned(), text.to_owned())]
    );
}

fn screenshot_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
    let _ = std::fs::create_dir_all(&dir);
    dir
}

#[actix_rt::test]
async fn two_visitors_meet_talk_safely_and_start_over_in_real_browsers() {
    if !browser_or_skip("two_visitors_meet_talk_safely_and_start_over_in_real_browsers") {
        return;
    }
    let _turn = ONE_AT_A_TIME.lock().await;
    // Each browser is its own visitor (its own session token): after a chat the two are kept
    // apart while anyone else waits, for a cooldown kept short here.
    const COOLDOWN: Duration = Duration::from_secs(8);
    let app = spawn_app_with(|s| s.rematch_cooldown = COOLDOWN).await;
    let driver = Driver::start();
    let page = format!("http://{}/", app.address);
    let alice = driver.browser(1024, 800).await;
    let bob = driver.browser(360, 740).await; // a phone-sized window
    alice.goto(&page).await.expect("page");
    bob.goto(&page).await.expect("page");

    // Idle: the welcome, the promise, a Start button.
    wait_state(&alice, PAGE, "idle").await;
    let idle = js(
        &alice,
        PAGE,
        "return root.querySelector('[data-test=view-idle]').textContent;",
    )
    .await;
    assert!(idle
        .as_str()
        .unwrap_or_default()
        .contains("Chat history is not saved"));

    click(&alice, PAGE, "start").await;
    wait_state(&alice, PAGE, "waiting").await;
    assert!(visible(&alice, PAGE, "view-waiting").await);
    click(&bob, PAGE, "start").await;
    wait_state(&bob, PAGE, "chat").await;
    wait_state(&alice, PAGE, "chat").await;
    assert!(system_lines(&bob, PAGE)
        .await
        .iter()
        .any(|l| l.contains("Stranger found")));
    let focused = js(
        &alice,
        PAGE,
        "return document.activeElement && document.activeElement.dataset.test;",
    )
    .await;
    assert_eq!(
        focused,
        json!("input"),
        "focus goes to the textarea when a chat starts"
    );
    // Both are counted online, and the phone-sized window needs no sideways scrolling.
    let deadline = Instant::now() + PATIENCE;
    loop {
        let count = js(
            &alice,
            PAGE,
            "return root.querySelector('[data-test=online-count]').textContent;",
        )
        .await;
        if count == json!("2") {
            break;
        }
        assert!(Instant::now() < deadline, "online count stayed {count}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let overflow = js(
        &bob,
        PAGE,
        "return document.documentElement.scrollWidth - window.innerWidth;",
    )
    .await;
    assert!(
        overflow.as_i64().unwrap_or(1) <= 0,
        "sideways overflow at 360 px: {overflow}"
    );

    // Enter sends; Shift+Enter is a line break inside the same message.
    type_keys(&alice, "hello").await;
    type_keys(&alice, &format!("{}{}", Key::Shift, Key::Enter)).await;
    type_keys(&alice, &format!("there{}", Key::Enter)).await;
    let expect = vec![("You".to_owned(), "hello\nthere".to_owned())];
    assert_eq!(wait_messages(&alice, PAGE, 1).await, expect);
    assert_eq!(
        wait_messages(&bob, PAGE, 1).await,
        vec![("Stranger".to_owned(), "hello\nthere".to_owned())]
    );

    // Typing shows on the other side.
    type_keys(&bob, "typing…").await;
    let deadline = Instant::now() + PATIENCE;
    while !visible(&alice, PAGE, "typing").await {
        assert!(Instant::now() < deadline, "typing indicator never showed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    type_keys(&bob, &format!("{}", Key::Enter)).await;
    wait_messages(&alice, PAGE, 2).await;

    // Markup is shown as text and runs nothing.
    let attacks = [
        "<img src=x onerror=\"window.__pwned = 1\">",
        "<script>window.__pwned = 2</script>",
    ];
    for attack in attacks {
        type_keys(&alice, &format!("{attack}{}", Key::Enter)).await;
    }
    let shown = wait_messages(&bob, PAGE, 4).await;
    assert_eq!(shown[2], ("Stranger".to_owned(), attacks[0].to_owned()));
    assert_eq!(shown[3], ("Stranger".to_owned(), attacks[1].to_owned()));
    for b in [&alice, &bob] {
        let pwned = js(b, PAGE, "return [window.__pwned === undefined, root.querySelectorAll('[data-test=messages] img, [data-test=messages] script').length];").await;
        assert_eq!(pwned, json!([true, 0]));
    }
    let shot = alice.screenshot().await.expect("screenshot");
    std::fs::write(screenshot_dir().join("chat.png"), shot).expect("save screenshot");

    // End, like Esc, asks first ("Really?"), then ends: both chats close, each with its line.
    click(&alice, PAGE, "end").await;
    assert_eq!(
        state(&alice, PAGE).await,
        "chat",
        "one click on End ended the chat"
    );
    click(&alice, PAGE, "end").await;
    let ended = Instant::now();
    wait_state(&alice, PAGE, "closed").await;
    wait_state(&bob, PAGE, "closed").await;
    assert!(system_lines(&alice, PAGE)
        .await
        .iter()
        .any(|l| l.contains("You left the chat.")));
    assert!(system_lines(&bob, PAGE)
        .await
        .iter()
        .any(|l| l.contains("Stranger has disconnected.")));
    assert!(visible(&bob, PAGE, "view-closed").await);

    // Start over pairs them again: nobody else is here, so once the cooldown is over.
    click(&alice, PAGE, "start-over").await;
    wait_state(&alice, PAGE, "waiting").await;
    click(&bob, PAGE, "start-over").await;
    // Not straight back together: both wait first (the page sent its visitor token). The
    // server's own record says so, once everything both asked for has been decided.
    wait_state(&bob, PAGE, "waiting").await;
    app.hub.flush(2).await.expect("hub answers");
    let stats = app.stats().await;
    if ended.elapsed() < COOLDOWN {
        assert_eq!(
            (stats.waiting, stats.chatting),
            (2, 0),
            "paired straight back"
        );
    } else {
        eprintln!("the machine was too slow to see the cooldown at work ({stats:?})");
    }
    wait_state(&bob, PAGE, "chat").await;
    wait_state(&alice, PAGE, "chat").await;

    // Esc: the first asks "Really?", the second ends.
    type_keys(&alice, &format!("{}", Key::Escape)).await;
    let label = js(
        &alice,
        PAGE,
        "return root.querySelector('[data-test=end]').textContent.trim();",
    )
    .await;
    assert_eq!(label, json!("Really?"));
    type_keys(&alice, &format!("{}", Key::Escape)).await;
    wait_state(&alice, PAGE, "closed").await;
    wait_state(&bob, PAGE, "closed").await;

    alice.close().await.expect("close");
    bob.close().await.expect("close");
}

/// Another site, as far as the browser knows: one HTML page at `/` on a port of its own. The
/// page is set after the site starts, since it names the chat server, whose list names the site.
pub(crate) struct HostSite {
    pub(crate) origin: String,
    page: std::sync::Arc<std::sync::Mutex<String>>,
}

impl HostSite {
    pub(crate) fn start() -> HostSite {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind host site");
        let origin = format!("http://{}", listener.local_addr().expect("addr"));
        let page = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let served = page.clone();
        let server = HttpServer::new(move || {
            let served = served.clone();
            App::new().route(
                "/",
                web::get().to(move || {
                    let html = served.lock().map(|p| p.clone()).unwrap_or_default();
                    async move { HttpResponse::Ok().content_type("text/html").body(html) }
                }),
            )
        })
        .workers(1)
        .listen(listener)
        .expect("listen")
        .run();
        actix_web::rt::spawn(server);
        HostSite { origin, page }
    }

    pub(crate) fn serve(&self, html: String) {
        if let Ok(mut page) = self.page.lock() {
            *page = html;
        }
    }
}

pub(crate) fn embedding_page(app: &TestApp) -> String {
    format!(
        r##"<!doctype html><html><head><style>
            /* A hostile host stylesheet: it must not reach into the widget. */
            button {{ display: none !important; }}
            p {{ color: rgb(1, 2, 3); }}
          </style></head><body>
          <p id="host-text">The host site's own text.</p>
          <div id="pairchat" style="height: 480px"></div>
          <script src="http://{}/embed.js" data-target="#pairchat"></script>
        </body></html>"##,
        app.address
    )
}

#[actix_rt::test]
async fn the_widget_works_on_a_listed_site_and_is_refused_on_any_other() {
    if !browser_or_skip("the_widget_works_on_a_listed_site_and_is_refused_on_any_other") {
        return;
    }
    let _turn = ONE_AT_A_TIME.lock().await;
    let listed = HostSite::start();
    let unlisted = HostSite::start();
    let origin = listed.origin.clone();
    let app = spawn_app_with(move |s| s.allowed_origins = vec![origin]).await;
    listed.serve(embedding_page(&app));
    unlisted.serve(embedding_page(&app));
    let (listed_site, unlisted_site) = (listed.origin.clone(), unlisted.origin.clone());

    let driver = Driver::start();
    let embedded = driver.browser(1024, 800).await;
    let direct = driver.browser(1024, 800).await;
    embedded
        .goto(&format!("{listed_site}/"))
        .await
        .expect("host page");
    wait_state(&embedded, EMBED, "idle").await;
    // The widget's buttons show despite the host's `button { display: none !important }`, and
    // the host's text keeps its own colour.
    assert!(
        visible(&embedded, EMBED, "start").await,
        "the host's CSS reached the widget"
    );
    let host_colour = js(
        &embedded,
        PAGE,
        "return getComputedStyle(document.getElementById('host-text')).color;",
    )
    .await;
    assert_eq!(
        host_colour,
        json!("rgb(1, 2, 3)"),
        "the widget's CSS reached the host"
    );

    click(&embedded, EMBED, "start").await;
    wait_state(&embedded, EMBED, "waiting").await;
    page_visitor_greets(&direct, &app, &embedded, EMBED, "hello, embedded one").await;
    click(&embedded, EMBED, "end").await;
    click(&embedded, EMBED, "end").await;
    wait_state(&direct, PAGE, "closed").await;

    // The same page on a site that is not listed gets no chat.
    let before = app.stats().await.connections;
    let refused = driver.browser(1024, 800).await;
    refused
        .goto(&format!("{unlisted_site}/"))
        .await
        .expect("host page");
    // What the visitor sees: the widget says it could not be loaded, and there is no chat.
    wait_js(
        &refused,
        EMBED,
        "the widget's refusal",
        "return !!root && root.textContent.includes('The chat could not be loaded');",
    )
    .await;
    let start_button = js(
        &refused,
        EMBED,
        "return !!root.querySelector('[data-test=start]');",
    )
    .await;
    assert_eq!(start_button, json!(false), "an unlisted site got a chat");
    assert_eq!(
        app.stats().await.connections,
        before,
        "the server accepted a connection from an unlisted site"
    );

    for b in [embedded, direct, refused] {
        b.close().await.expect("close");
    }
}

#[actix_rt::test]
async fn the_iframe_widget_runs_the_chat_inside_another_site() {
    if !browser_or_skip("the_iframe_widget_runs_the_chat_inside_another_site") {
        return;
    }
    let _turn = ONE_AT_A_TIME.lock().await;
    // The framing site must be listed for the chat to let itself be framed there.
    let host = HostSite::start();
    let origin = host.origin.clone();
    let app = spawn_app_with(move |s| s.allowed_origins = vec![origin]).await;
    host.serve(format!(
        r#"<!doctype html><html><body><h1>A blog</h1>
           <iframe src="http://{}/widget" title="pairchat" width="400" height="500"></iframe>
           </body></html>"#,
        app.address
    ));
    let site = host.origin.clone();
    let driver = Driver::start();
    let framed = driver.browser(800, 700).await;
    let direct = driver.browser(800, 700).await;
    framed.goto(&format!("{site}/")).await.expect("host page");
    // Into the frame: the same chat as on the page.
    let frame = framed.find(Locator::Css("iframe")).await.expect("iframe");
    frame.enter_frame().await.expect("enter frame");
    wait_state(&framed, PAGE, "idle").await;
    click(&framed, PAGE, "start").await;
    wait_state(&framed, PAGE, "waiting").await;
    page_visitor_greets(&direct, &app, &framed, PAGE, "hi from the page").await;
    framed.close().await.expect("close");
    direct.close().await.expect("close");
}

/// The WCAG contrast ratio of every piece of visible text in the chat against the background
/// it is drawn on, as `[hook or tag, ratio]`, lowest first.
const CONTRAST_SCRIPT: &str = r#"
const lum = (c) => {
  const m = c.match(/rgba?\(([^)]+)\)/); if (!m) return null;
  const [r, g, b, a = 1] = m[1].split(',').map(Number);
  return { l: [r, g, b].map(v => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; })
              .reduce((s, v, i) => s + v * [0.2126, 0.7152, 0.0722][i], 0), a };
};
const background = (el) => {
  for (let n = el; n; n = n.parentElement || (n.getRootNode() && n.getRootNode().host)) {
    const bg = lum(getComputedStyle(n).backgroundColor);
    if (bg && bg.a > 0.5) return bg.l;
  }
  return lum(getComputedStyle(document.documentElement).backgroundColor)?.l ?? 1;
};
const out = [];
const walker = document.createTreeWalker(root.querySelector('[data-test=pairchat]') || root, NodeFilter.SHOW_TEXT);
for (let t = walker.nextNode(); t; t = walker.nextNode()) {
  const el = t.parentElement;
  if (!t.textContent.trim() || !el || !el.getClientRects().length) continue;
  const s = getComputedStyle(el);
  if (s.visibility === 'hidden' || el.closest('[hidden]') || s.clip === 'rect(0px, 0px, 0px, 0px)' || el.closest('.pc-sr-only, .visually-hidden')) continue;
  const fg = lum(s.color).l, bg = background(el);
  const ratio = (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
  out.push([(el.closest('[data-test]')?.dataset.test || el.tagName) + ': ' + t.textContent.trim().slice(0, 30), Math.round(ratio * 100) / 100]);
}
return out.sort((a, b) => a[1] - b[1]);
"#;

#[actix_rt::test]
async fn text_meets_wcag_aa_contrast_in_light_and_dark_and_keys_work() {
    if !browser_or_skip("text_meets_wcag_aa_contrast_in_light_and_dark_and_keys_work") {
        return;
    }
    let _turn = ONE_AT_A_TIME.lock().await;
    let app = spawn_app_with(|s| s.rematch_cooldown = Duration::ZERO).await;
    let driver = Driver::start();
    let page = format!("http://{}/", app.address);
    let light = driver.browser(1024, 800).await;
    let dark = driver
        .browser_with(1024, 800, &["--blink-settings=preferredColorScheme=0"])
        .await;
    for b in [&light, &dark] {
        b.goto(&page).await.expect("page");
        wait_state(b, PAGE, "idle").await;
    }
    let is_dark = js(
        &dark,
        PAGE,
        "return matchMedia('(prefers-color-scheme: dark)').matches;",
    )
    .await;
    assert_eq!(is_dark, json!(true), "the dark browser prefers dark");

    // Keyboard only: Esc when idle starts a chat.
    type_body_key(&light, Key::Escape).await;
    wait_state(&light, PAGE, "waiting").await;
    click(&dark, PAGE, "start").await;
    wait_state(&dark, PAGE, "chat").await;
    wait_state(&light, PAGE, "chat").await;
    let role = js(
        &light,
        PAGE,
        "const list = root.querySelector('[data-test=messages]'); \
         return [list.tagName, list.parentElement.getAttribute('role')];",
    )
    .await;
    assert_eq!(
        role,
        json!(["OL", "log"]),
        "the message list is a list in an ARIA live region"
    );

    // An empty message is not sent (the page sends no frame for it); Ctrl+Enter sends.
    record_sent(&light).await;
    type_keys(&light, &format!("   {}", Key::Enter)).await;
    type_keys(&light, &format!("{}{}", Key::Shift, Key::Enter)).await;
    type_keys(&light, &format!("{}", Key::Enter)).await;
    assert!(
        messages(&light, PAGE).await.is_empty(),
        "a blank message was shown"
    );
    js(
        &light,
        PAGE,
        "root.querySelector('[data-test=input]').value = '';",
    )
    .await;
    type_keys(&light, &format!("ctrl{}{}", Key::Control, Key::Enter)).await;
    // In the background (focus elsewhere), a message makes the title blink until focus returns.
    let title = js(
        &light,
        PAGE,
        "const t = document.title; document.hasFocus = () => false; return t;",
    )
    .await;
    type_keys(&dark, &format!("from the dark side{}", Key::Enter)).await;
    let deadline = Instant::now() + PATIENCE;
    while js(&light, PAGE, "return document.title;").await != json!("*** New message ***") {
        assert!(Instant::now() < deadline, "the title never blinked");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    js(
        &light,
        PAGE,
        "document.hasFocus = () => true; window.dispatchEvent(new Event('focus'));",
    )
    .await;
    // Blinking stops with focus: the title is back.
    let deadline = Instant::now() + PATIENCE;
    while js(&light, PAGE, "return document.title;").await != title {
        assert!(
            Instant::now() < deadline,
            "blinking did not stop with focus"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let shown = wait_messages(&light, PAGE, 2).await;
    assert_eq!(shown[0], ("You".to_owned(), "ctrl".to_owned()), "{shown:?}");
    wait_messages(&dark, PAGE, 2).await;
    let said: Vec<Value> = sent_frames(&light)
        .await
        .into_iter()
        .filter(|f| f["type"] == "message")
        .map(|f| f["message"].clone())
        .collect();
    assert_eq!(said, vec![json!("ctrl")], "the page sent a blank message");

    for (name, b) in [("light", &light), ("dark", &dark)] {
        let ratios: Vec<(String, f64)> =
            serde_json::from_value(js(b, PAGE, CONTRAST_SCRIPT).await).unwrap_or_default();
        assert!(
            ratios.len() > 5,
            "{name}: too little text measured: {ratios:?}"
        );
        let failing: Vec<_> = ratios.iter().filter(|(_, r)| *r < 4.5).collect();
        assert!(
            failing.is_empty(),
            "{name}: text below 4.5:1 contrast: {failing:?}"
        );
    }
    let backgrounds = (
        js(
            &light,
            PAGE,
            "return getComputedStyle(document.body).backgroundColor;",
        )
        .await,
        js(
            &dark,
            PAGE,
            "return getComputedStyle(document.body).backgroundColor;",
        )
        .await,
    );
    assert_ne!(
        backgrounds.0, backgrounds.1,
        "dark mode changes the page: {backgrounds:?}"
    );

    // Esc in a chat asks first, then ends; Esc when closed starts over.
    type_keys(&light, &format!("{}", Key::Escape)).await;
    type_keys(&light, &format!("{}", Key::Escape)).await;
    wait_state(&light, PAGE, "closed").await;
    wait_state(&dark, PAGE, "closed").await;
    type_body_key(&dark, Key::Escape).await;
    wait_state(&dark, PAGE, "waiting").await;
    for b in [light, dark] {
        b.close().await.expect("close");
    }
}

/// Presses a key with the focus wherever it is (the page, not an input).
pub(crate) async fn type_body_key(b: &Browser, key: Key) {
    b.find(Locator::Css("body"))
        .await
        .expect("body")
        .send_keys(&format!("{key}"))
        .await
        .expect("key");
}
