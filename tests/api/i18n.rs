//! The page's language over plain HTTP: `Accept-Language`, the switch's `?lang=` and its cookie,
//! `<html lang>`, and `/i18n/<lang>.json` (what embed.js reads). The browser side is in
//! `browser_i18n.rs`.

use serde_json::Value;

use crate::health::http_request;
use crate::helpers::spawn_app_with;

fn html_lang(body: &str) -> &str {
    let start = body.find("<html lang=\"").map_or(0, |i| i + 12);
    &body[start..start + body[start..].find('"').unwrap_or(0)]
}

/// The catalogue written into a page, parsed.
fn page_catalogue(body: &str) -> Value {
    let open = r#"<script type="application/json" id="pairchat-i18n">"#;
    let start = body.find(open).expect("catalogue in the page") + open.len();
    let end = start + body[start..].find("</script>").expect("end");
    serde_json::from_str(&body[start..end]).expect("JSON")
}

#[actix_rt::test]
async fn accept_language_picks_the_pages_language_and_the_switch_is_remembered() {
    let app = spawn_app_with(|_| {}).await;
    let a = app.address;

    for (accept, want) in [
        ("ru-RU,ru;q=0.9,en;q=0.8\r\n", "ru"),
        ("de-DE, zh-CN;q=0.7, en;q=0.5\r\n", "zh"),
        ("zh-Hans\r\n", "zh"),
        ("en-GB;q=0.2, ru;q=0.3\r\n", "ru"),
        ("fr-FR, de;q=0.9\r\n", "en"),
        ("", "en"),
    ] {
        let header = if accept.is_empty() {
            String::new()
        } else {
            format!("Accept-Language: {accept}")
        };
        let (status, head, body) = http_request(a, "/", &header).await;
        assert_eq!(status, 200);
        assert_eq!(html_lang(&body), want, "{accept:?}");
        assert!(
            head.contains(&format!("content-language: {want}")),
            "{head}"
        );
        assert!(head.contains("vary: accept-language, cookie"), "{head}");
        assert_eq!(page_catalogue(&body)["lang"], want);
    }
    let (_, _, russian) = http_request(a, "/", "Accept-Language: ru\r\n").await;
    assert!(russian.contains("Анонимный чат один на один"), "{russian}");
    assert!(
        russian.contains("<title>pairchat — поговорите"),
        "{russian}"
    );
    assert_eq!(
        page_catalogue(&russian)["messages"]["send-button"],
        "Отправить"
    );

    // The switch: "/?lang=zh" over a Russian browser, remembered in a cookie for a year.
    let (_, head, body) = http_request(a, "/?lang=zh", "Accept-Language: ru\r\n").await;
    assert_eq!(html_lang(&body), "zh");
    let cookie = head
        .lines()
        .find(|l| l.starts_with("set-cookie: pairchat_lang=zh"))
        .unwrap_or_else(|| panic!("no cookie: {head}"));
    assert!(cookie.contains("max-age=31536000"), "{cookie}");
    assert!(cookie.contains("path=/"), "{cookie}");
    let (_, head, body) = http_request(
        a,
        "/",
        "Accept-Language: ru\r\nCookie: pairchat_lang=zh\r\n",
    )
    .await;
    assert_eq!(html_lang(&body), "zh", "the choice is remembered");
    assert!(!head.contains("set-cookie"), "{head}");
    // The switch names each language in itself; the current one is not a link.
    assert!(
        body.contains(r#"<a href="/?lang=ru" lang="ru" hreflang="ru""#),
        "{body}"
    );
    assert!(body.contains(">Русский</a>") && body.contains(">English</a>"));
    assert!(
        body.contains(r#"aria-current="page" data-lang="zh">中文</a>"#),
        "{body}"
    );
    // An unknown language changes nothing.
    let (_, head, body) = http_request(a, "/?lang=xx", "Cookie: pairchat_lang=ru\r\n").await;
    assert_eq!(html_lang(&body), "ru");
    assert!(!head.contains("set-cookie"), "{head}");

    // The iframe: ?lang= decides, and is not remembered (it is the framing site's choice).
    let (_, head, body) = http_request(a, "/widget?lang=ru", "Accept-Language: zh\r\n").await;
    assert_eq!(html_lang(&body), "ru");
    assert!(!head.contains("set-cookie"), "{head}");
    assert!(body.contains("pairchat нужен JavaScript."), "{body}");
    let (_, _, body) = http_request(a, "/widget", "Accept-Language: zh-CN\r\n").await;
    assert_eq!(html_lang(&body), "zh");
}

#[actix_rt::test]
async fn the_catalogues_are_served_for_embeds_cacheable_and_to_listed_sites() {
    let app = spawn_app_with(|s| s.allowed_origins = vec!["https://blog.example".into()]).await;
    let (status, head, body) = http_request(
        app.address,
        "/i18n/ru.json",
        "Origin: https://blog.example\r\n",
    )
    .await;
    assert_eq!(status, 200);
    let catalogue: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(catalogue["lang"], "ru");
    assert_eq!(
        catalogue["messages"]["found"],
        "Собеседник найден — поздоровайтесь!"
    );
    // A plural, compiled for the page's script to choose from.
    assert_eq!(
        catalogue["messages"]["online-count"][0]["c"]["few"],
        serde_json::json!([{"v": "count"}, " человека в сети"])
    );
    assert!(
        head.contains("access-control-allow-origin: https://blog.example"),
        "{head}"
    );
    assert!(
        head.contains("cache-control: public, max-age=300"),
        "{head}"
    );
    assert!(head.contains("content-type: application/json"), "{head}");
    let etag = head
        .lines()
        .find_map(|l| l.strip_prefix("etag: "))
        .expect("an ETag")
        .to_owned();
    let (status, _, body) = http_request(
        app.address,
        "/i18n/ru.json",
        &format!("If-None-Match: {etag}\r\n"),
    )
    .await;
    assert_eq!((status, body.as_str()), (304, ""));

    let (_, head, _) = http_request(
        app.address,
        "/i18n/en.json",
        "Origin: https://evil.example\r\n",
    )
    .await;
    assert!(!head.contains("access-control-allow-origin"), "{head}");

    // auto: the visitor's Accept-Language, and caches are told so.
    let (status, head, body) =
        http_request(app.address, "/i18n/auto.json", "Accept-Language: zh-CN\r\n").await;
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&body).expect("JSON")["lang"],
        "zh"
    );
    assert!(head.contains("vary: accept-language"), "{head}");

    for path in [
        "/i18n/xx.json",
        "/i18n/ru",
        "/i18n/RU.json",
        "/i18n/..%2Fru.json",
    ] {
        let (status, _, _) = http_request(app.address, path, "").await;
        assert_eq!(status, 404, "{path}");
    }
}
