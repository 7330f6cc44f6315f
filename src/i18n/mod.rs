//! The page's three languages: which one a request gets, and the catalogues (`catalog`) that
//! hold every word the page, the widget and the embed show, one Project Fluent file per
//! language in `locales/<lang>/pairchat.ftl`, compiled into the binary.
//!
//! A request's language: `?lang=` (the visible switch on `/`, the iframe's `/widget?lang=`),
//! else the `pairchat_lang` cookie the switch leaves, else `Accept-Language`, else English.

mod catalog;
mod compile;

pub use catalog::{catalog, Catalog};

use actix_web::http::header;
use actix_web::HttpRequest;

/// The cookie that remembers the language a visitor chose with the switch.
pub const LANG_COOKIE: &str = "pairchat_lang";

/// How long the switch's choice is remembered (a year).
pub const LANG_COOKIE_MAX_AGE_SECS: i64 = 365 * 24 * 3600;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lang {
    En,
    Ru,
    Zh,
}

impl Lang {
    /// Every language, in the order the switch lists them (English first: the reference).
    pub const ALL: [Lang; 3] = [Lang::En, Lang::Ru, Lang::Zh];

    /// The BCP 47 tag: `<html lang>`, the catalogue's folder, `?lang=`, `data-lang`.
    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Ru => "ru",
            Lang::Zh => "zh",
        }
    }

    /// Exactly one of our codes (`?lang=`, the cookie, `/i18n/<code>.json`).
    pub fn from_code(code: &str) -> Option<Lang> {
        Lang::ALL
            .into_iter()
            .find(|l| l.code().eq_ignore_ascii_case(code.trim()))
    }

    /// The language a language tag (`ru-RU`, `zh-Hans-CN`, `EN`) asks for, if it is one of
    /// ours. Chinese in the Traditional script (`zh-Hant`, or `zh-TW`/`-HK`/`-MO` without a
    /// script) is not: our Chinese is Simplified, so the visitor's next choice decides.
    pub fn of_tag(tag: &str) -> Option<Lang> {
        let lower = tag.trim().to_ascii_lowercase();
        let mut subtags = lower.split(['-', '_']);
        match subtags.next()? {
            "en" => Some(Lang::En),
            "ru" => Some(Lang::Ru),
            "zh" | "cmn" => {
                let rest: Vec<&str> = subtags.collect();
                let script = rest.iter().find(|s| s.len() == 4);
                let traditional = match script {
                    Some(script) => *script == "hant",
                    None => rest.iter().any(|s| matches!(*s, "tw" | "hk" | "mo")),
                };
                (!traditional).then_some(Lang::Zh)
            }
            _ => None,
        }
    }

    /// The first of ours in an `Accept-Language` value, by q-value (ties keep their order; q=0
    /// means "not this one"); English when none is.
    pub fn from_accept_language(value: &str) -> Lang {
        let mut ranked: Vec<(u16, usize, &str)> = value
            .split(',')
            .enumerate()
            .filter_map(|(i, item)| {
                let mut parts = item.split(';');
                let tag = parts.next()?.trim();
                let q = parts
                    .find_map(|p| {
                        let (k, v) = p.split_once('=')?;
                        (k.trim().eq_ignore_ascii_case("q")).then(|| parse_q(v.trim()))
                    })
                    .unwrap_or(Some(1000))?;
                (q > 0 && !tag.is_empty()).then_some((q, i, tag))
            })
            .collect();
        ranked.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        ranked
            .into_iter()
            .find_map(|(_, _, tag)| Lang::of_tag(tag))
            .unwrap_or(Lang::En)
    }

    /// The language of a request for a page: `?lang=`, else the cookie, else
    /// `Accept-Language`.
    pub fn of_request(req: &HttpRequest) -> Lang {
        Lang::asked(req)
            .or_else(|| {
                req.cookie(LANG_COOKIE)
                    .and_then(|c| Lang::from_code(c.value()))
            })
            .unwrap_or_else(|| Lang::negotiated(req))
    }

    /// `?lang=`, when it names one of ours.
    pub fn asked(req: &HttpRequest) -> Option<Lang> {
        actix_web::web::Query::<std::collections::HashMap<String, String>>::from_query(
            req.query_string(),
        )
        .ok()
        .and_then(|q| q.get("lang").and_then(|l| Lang::from_code(l)))
    }

    /// From `Accept-Language` alone.
    pub fn negotiated(req: &HttpRequest) -> Lang {
        req.headers()
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok())
            .map_or(Lang::En, Lang::from_accept_language)
    }
}

/// A q-value as thousandths (`0.5` → 500); `None` when it is not one.
fn parse_q(text: &str) -> Option<u16> {
    let value: f32 = text.parse().ok()?;
    (0.0..=1.0)
        .contains(&value)
        .then(|| (value * 1000.0).round() as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_language_picks_ours_by_q_value() {
        for (header, want) in [
            ("ru-RU,ru;q=0.9,en-US;q=0.8,en;q=0.7", Lang::Ru),
            ("en-US,en;q=0.9", Lang::En),
            ("zh-CN,zh;q=0.9", Lang::Zh),
            ("zh-Hans", Lang::Zh),
            ("zh", Lang::Zh),
            ("zh-Hans-HK", Lang::Zh),
            ("de-DE,de;q=0.9,ru;q=0.8,en;q=0.7", Lang::Ru),
            ("de, fr", Lang::En),
            ("", Lang::En),
            ("*", Lang::En),
            ("en;q=0.5, ru;q=0.8", Lang::Ru),
            ("ru;q=0, zh;q=0.1", Lang::Zh),
            ("ru;q=0.000", Lang::En),
            ("zh-TW, ru;q=0.5", Lang::Ru),
            ("zh-Hant-CN, en;q=0.1", Lang::En),
            ("RU", Lang::Ru),
            ("fr-CH, fr;q=0.9, en;q=0.8, de;q=0.7, *;q=0.5", Lang::En),
            ("garbage;;;q=zz, ru", Lang::Ru),
            ("ru;q=2, zh", Lang::Zh),
        ] {
            assert_eq!(Lang::from_accept_language(header), want, "{header:?}");
        }
    }

    #[test]
    fn the_query_beats_the_cookie_which_beats_the_header() {
        use actix_web::cookie::Cookie;
        use actix_web::test::TestRequest;
        let req = TestRequest::with_uri("/?lang=zh")
            .insert_header((header::ACCEPT_LANGUAGE, "ru"))
            .cookie(Cookie::new(LANG_COOKIE, "en"))
            .to_http_request();
        assert_eq!(Lang::of_request(&req), Lang::Zh);
        let req = TestRequest::with_uri("/?lang=xx")
            .insert_header((header::ACCEPT_LANGUAGE, "ru"))
            .cookie(Cookie::new(LANG_COOKIE, "en"))
            .to_http_request();
        assert_eq!(Lang::of_request(&req), Lang::En);
        let req = TestRequest::with_uri("/")
            .insert_header((header::ACCEPT_LANGUAGE, "ru"))
            .cookie(Cookie::new(LANG_COOKIE, "klingon"))
            .to_http_request();
        assert_eq!(Lang::of_request(&req), Lang::Ru);
    }
}
