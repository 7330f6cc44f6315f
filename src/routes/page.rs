//! `GET /` (the chat page) and `GET /widget` (the chat alone, for an iframe). Both are chrome
//! around the same chat, which `/assets/js/chat.js` builds, in the request's language
//! (`crate::i18n`): `/?lang=<code>` (the page's language switch) is remembered in a cookie.

use actix_web::cookie::{time::Duration, Cookie, SameSite};
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse};
use askama::Template;

use crate::i18n::{catalog, Catalog, Lang, LANG_COOKIE, LANG_COOKIE_MAX_AGE_SECS};

/// One entry of the language switch.
struct Choice {
    code: &'static str,
    name: String,
    current: bool,
}

#[derive(Template)]
#[template(path = "index.html")]
struct Index {
    t: &'static Catalog,
    switch: Vec<Choice>,
}

#[derive(Template)]
#[template(path = "widget.html")]
struct Widget {
    t: &'static Catalog,
}

pub async fn index(req: HttpRequest) -> actix_web::Result<HttpResponse> {
    let t = catalog(Lang::of_request(&req));
    let switch = t
        .switch()
        .into_iter()
        .map(|(code, name, current)| Choice {
            code,
            name,
            current,
        })
        .collect();
    let mut response = html(t, Index { t, switch }.render())?;
    // The switch's choice, remembered for the next visit without `?lang=`.
    if let Some(lang) = Lang::asked(&req) {
        let cookie = Cookie::build(LANG_COOKIE, lang.code())
            .path("/")
            .max_age(Duration::seconds(LANG_COOKIE_MAX_AGE_SECS))
            .same_site(SameSite::Lax)
            .http_only(true)
            .finish();
        response.add_cookie(&cookie)?;
    }
    Ok(response)
}

pub async fn widget(req: HttpRequest) -> actix_web::Result<HttpResponse> {
    let t = catalog(Lang::of_request(&req));
    html(t, Widget { t }.render())
}

fn html(t: &Catalog, rendered: askama::Result<String>) -> actix_web::Result<HttpResponse> {
    let body = rendered.map_err(actix_web::error::ErrorInternalServerError)?;
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header(("cache-control", "no-cache"))
        .insert_header((header::CONTENT_LANGUAGE, t.code()))
        .insert_header((header::VARY, "Accept-Language, Cookie"))
        .body(body))
}
