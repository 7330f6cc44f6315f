//! The page's languages in real headless Chromium: one whole chat in Russian (one visitor by
//! their browser's language, the other by the page's switch), the widget and the embed in the
//! language they are given, and axe-core in every language, light and dark, phone and desktop.

use fantoccini::{Client as Browser, Locator};
use serde_json::{json, Value};

use crate::browser::{
    click, js, messages, system_lines, wait_js, wait_messages, wait_state, Driver, HostSite, EMBED,
    PAGE,
};
use crate::browser_ui::{axe_violations, close_all, say, turn, wait_online_shown};
use crate::helpers::spawn_app_with;

/// A browser whose language is Russian (what it sends as Accept-Language).
async fn russian_browser(driver: &Driver, width: u32, height: u32) -> Browser {
    driver
        .browser_with_options(
            width,
            height,
            &["--lang=ru-RU", "--accept-lang=ru-RU,ru"],
            json!({"prefs": {"intl.accept_languages": "ru-RU,ru"}}),
        )
        .await
}

/// Words in Latin letters the visitor can see in `root` (the chat, or the whole page), but
/// for the names that are the same in every language.
async fn latin_words(b: &Browser, root: &str, selector: &str) -> Vec<String> {
    let v = js(
        b,
        root,
        &format!(
            "const el = root.querySelector('{selector}'); \
             const allowed = new Set(['pairchat', 'Esc', 'Enter', 'Shift', 'English']); \
             return (el.innerText.match(/[A-Za-z]{{2,}}/g) || []).filter(w => !allowed.has(w));"
        ),
    )
    .await;
    serde_json::from_value(v).unwrap_or_default()
}

async fn text_of(b: &Browser, root: &str, hook: &str) -> String {
    js(
        b,
        root,
        &format!("return root.querySelector('[data-test={hook}]').textContent.trim();"),
    )
    .await
    .as_str()
    .unwrap_or_default()
    .to_owned()
}

#[actix_rt::test]
async fn a_whole_chat_runs_in_russian_in_real_browsers() {
    let Some(_turn) = turn("a_whole_chat_runs_in_russian_in_real_browsers").await else {
        return;
    };
    let app = spawn_app_with(|_| {}).await;
    let driver = Driver::start();
    let ivan = russian_browser(&driver, 1024, 800).await;
    let olga = driver.browser(1024, 800).await;
    let home = format!("http://{}/", app.address);

    // Ivan's browser asks for Russian.
    ivan.goto(&home).await.expect("page");
    wait_state(&ivan, PAGE, "idle").await;
    // Olga's asks for English; she switches, and the page remembers it.
    olga.goto(&home).await.expect("page");
    wait_state(&olga, PAGE, "idle").await;
    assert_eq!(text_of(&olga, PAGE, "start").await, "Start a chat");
    olga.find(Locator::Css("[data-test=languages] a[data-lang=ru]"))
        .await
        .expect("the switch")
        .click()
        .await
        .expect("click");
    wait_js(
        &olga,
        PAGE,
        "the Russian page",
        "return document.documentElement.lang === 'ru' && \
           root.querySelector('[data-test=pairchat]')?.dataset.state === 'idle';",
    )
    .await;
    olga.goto(&home).await.expect("page again");
    wait_state(&olga, PAGE, "idle").await;
    for b in [&ivan, &olga] {
        let langs = js(
            b,
            PAGE,
            "return [document.documentElement.lang, root.querySelector('[data-test=pairchat]').lang, \
                     document.title];",
        )
        .await;
        assert_eq!(
            langs,
            json!(["ru", "ru", "pairchat — поговорите со случайным незнакомцем"])
        );
        assert_eq!(text_of(b, PAGE, "start").await, "Начать чат");
    }

    click(&ivan, PAGE, "start").await;
    wait_state(&ivan, PAGE, "waiting").await;
    assert!(
        text_of(&ivan, PAGE, "waiting-text")
            .await
            .starts_with("Ищем собеседника…"),
        "{}",
        text_of(&ivan, PAGE, "waiting-text").await
    );
    click(&olga, PAGE, "start").await;
    wait_state(&ivan, PAGE, "chat").await;
    wait_state(&olga, PAGE, "chat").await;
    for b in [&ivan, &olga] {
        assert!(
            system_lines(b, PAGE)
                .await
                .contains(&"Собеседник найден — поздоровайтесь!".to_owned()),
            "{:?}",
            system_lines(b, PAGE).await
        );
        // Two connected: the Russian plural of the count ("2 человека", not "2 человек").
        wait_js(
            b,
            PAGE,
            "the online count in Russian",
            "return root.querySelector('[data-test=online]').textContent.trim() === '2 человека в сети';",
        )
        .await;
    }
    say(&ivan, PAGE, "Привет!").await;
    say(&olga, PAGE, "Здравствуйте").await;
    assert_eq!(
        wait_messages(&olga, PAGE, 2).await,
        [
            ("Собеседник".to_owned(), "Привет!".to_owned()),
            ("Вы".to_owned(), "Здравствуйте".to_owned())
        ]
    );
    assert_eq!(
        messages(&ivan, PAGE).await,
        [
            ("Вы".to_owned(), "Привет!".to_owned()),
            ("Собеседник".to_owned(), "Здравствуйте".to_owned())
        ]
    );
    assert_eq!(text_of(&olga, PAGE, "send").await, "Отправить");
    let words = latin_words(&olga, PAGE, "[data-test=pairchat]").await;
    assert!(words.is_empty(), "English in the Russian chat: {words:?}");

    // Olga ends it: End asks "Точно?", the second press ends.
    assert_eq!(text_of(&olga, PAGE, "end").await, "Завершить");
    click(&olga, PAGE, "end").await;
    assert_eq!(text_of(&olga, PAGE, "end").await, "Точно?");
    click(&olga, PAGE, "end").await;
    wait_state(&olga, PAGE, "closed").await;
    wait_state(&ivan, PAGE, "closed").await;
    assert!(system_lines(&olga, PAGE)
        .await
        .contains(&"Вы вышли из чата.".to_owned()));
    assert!(system_lines(&ivan, PAGE)
        .await
        .contains(&"Собеседник отключился.".to_owned()));
    for b in [&ivan, &olga] {
        assert_eq!(
            text_of(b, PAGE, "closed-text").await,
            "Этот разговор окончен."
        );
        assert_eq!(text_of(b, PAGE, "start-over").await, "Новый чат");
        let words = latin_words(b, PAGE, "body").await;
        assert!(words.is_empty(), "English on the Russian page: {words:?}");
    }
    close_all([ivan, olga]).await;
}

#[actix_rt::test]
async fn the_widget_and_the_embed_speak_the_language_they_are_given() {
    let Some(_turn) = turn("the_widget_and_the_embed_speak_the_language_they_are_given").await
    else {
        return;
    };
    let host = HostSite::start();
    let origin = host.origin.clone();
    let app = spawn_app_with(move |s| s.allowed_origins = vec![origin]).await;
    let driver = Driver::start();
    // An English browser on a site that embeds the chat in Russian and frames it in Chinese.
    host.serve(format!(
        r##"<!doctype html><html lang="ru"><head><title>Блог</title></head><body>
          <div id="pairchat" style="height: 480px"></div>
          <iframe src="http://{a}/widget?lang=zh" title="pairchat" width="400" height="500"></iframe>
          <script src="http://{a}/embed.js" data-target="#pairchat" data-lang="ru"></script>
        </body></html>"##,
        a = app.address
    ));
    let b = driver.browser(1280, 800).await;
    b.goto(&format!("{}/", host.origin))
        .await
        .expect("host page");
    wait_state(&b, EMBED, "idle").await;
    let embed = js(
        &b,
        EMBED,
        "return [root.querySelector('[data-test=pairchat]').lang, \
                 root.querySelector('[data-test=start]').textContent];",
    )
    .await;
    assert_eq!(embed, json!(["ru", "Начать чат"]));
    let frame = b.find(Locator::Css("iframe")).await.expect("iframe");
    frame.enter_frame().await.expect("enter frame");
    wait_state(&b, PAGE, "idle").await;
    let framed = js(
        &b,
        PAGE,
        "return [document.documentElement.lang, root.querySelector('[data-test=pairchat]').lang, \
                 root.querySelector('[data-test=start]').textContent];",
    )
    .await;
    assert_eq!(framed, json!(["zh", "zh", "开始聊天"]));
    b.enter_parent_frame().await.expect("back");
    b.close().await.expect("close");

    // Without data-lang the embed follows the visitor's browser.
    host.serve(format!(
        r##"<!doctype html><html><head><title>A blog</title></head><body>
          <div id="pairchat" style="height: 480px"></div>
          <script src="http://{}/embed.js" data-target="#pairchat"></script>
        </body></html>"##,
        app.address
    ));
    let ru = russian_browser(&driver, 1024, 800).await;
    ru.goto(&format!("{}/", host.origin))
        .await
        .expect("host page");
    wait_state(&ru, EMBED, "idle").await;
    assert_eq!(text_of(&ru, EMBED, "start").await, "Начать чат");
    let words = latin_words(&ru, EMBED, "[data-test=pairchat]").await;
    assert!(words.is_empty(), "English in the Russian embed: {words:?}");
    ru.close().await.expect("close");
}

/// The sizes every view is checked at: a small phone's width, and a desktop.
const SIZES: [(u32, u32); 2] = [(360, 740), (1280, 800)];

/// axe-core's serious and critical violations in the view `b` shows, at both sizes and in both
/// themes (set as `?theme=` would: on the document and on the chat), as `(where, found)`.
async fn axe_everywhere(b: &Browser, lang: &str, view: &str, seen: &mut Vec<(String, Value)>) {
    for (width, height) in SIZES {
        b.set_window_size(width, height).await.expect("resize");
        wait_js(
            b,
            PAGE,
            &format!("a window {width} px wide"),
            &format!("return Math.abs(window.innerWidth - {width}) <= 20;"),
        )
        .await;
        for theme in ["light", "dark"] {
            js(
                b,
                PAGE,
                &format!(
                    "document.documentElement.dataset.theme = '{theme}'; \
                     root.querySelector('[data-test=pairchat]').dataset.theme = '{theme}'; return true;"
                ),
            )
            .await;
            let found = axe_violations(b).await;
            if !found.is_empty() {
                seen.push((format!("{lang} {view} {width}px {theme}"), json!(found)));
            }
        }
    }
}

#[actix_rt::test]
async fn axe_core_finds_no_serious_violation_in_any_language_view_theme_or_size() {
    let Some(_turn) =
        turn("axe_core_finds_no_serious_violation_in_any_language_view_theme_or_size").await
    else {
        return;
    };
    // The same two visitors meet once per language.
    let app = spawn_app_with(|s| s.rematch_cooldown = std::time::Duration::ZERO).await;
    let driver = Driver::start();
    let a = driver.browser(1280, 800).await;
    let b = driver.browser(1280, 800).await;
    let mut seen = Vec::new();
    for lang in ["en", "ru", "zh"] {
        for v in [&a, &b] {
            v.goto(&format!("http://{}/?lang={lang}", app.address))
                .await
                .expect("page");
            wait_state(v, PAGE, "idle").await;
        }
        wait_online_shown(&a, PAGE).await;
        axe_everywhere(&a, lang, "idle", &mut seen).await;
        click(&a, PAGE, "start").await;
        wait_state(&a, PAGE, "waiting").await;
        axe_everywhere(&a, lang, "waiting", &mut seen).await;
        click(&b, PAGE, "start").await;
        wait_state(&a, PAGE, "chat").await;
        wait_state(&b, PAGE, "chat").await;
        say(&a, PAGE, "hi, see https://example.com/ ok?").await;
        say(&b, PAGE, "a reply").await;
        wait_messages(&a, PAGE, 2).await;
        axe_everywhere(&a, lang, "chat", &mut seen).await;
        click(&a, PAGE, "end").await;
        click(&a, PAGE, "end").await;
        wait_state(&a, PAGE, "closed").await;
        wait_state(&b, PAGE, "closed").await;
        axe_everywhere(&a, lang, "closed", &mut seen).await;
    }
    assert!(seen.is_empty(), "axe-core: {seen:#?}");
    close_all([a, b]).await;
}
