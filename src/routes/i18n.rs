//! `GET /i18n/<lang>.json`: a language's words for the chat's script, as `crate::i18n` compiles
//! them (`{"lang": "ru", "messages": {...}}`). embed.js asks for its `data-lang`, or for
//! `auto.json`, which follows the visitor's `Accept-Language`. CORS as for the assets, so an
//! embed on a listed site may read it; cached like them, with a validator.

use actix_web::http::header::{self, EntityTag, IfNoneMatch};
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};

use crate::i18n::{catalog, Lang};
use crate::routes::assets::ASSET_MAX_AGE_SECS;
use crate::state::AppState;

pub async fn messages(
    req: HttpRequest,
    file: web::Path<String>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let Some(code) = file.strip_suffix(".json") else {
        return HttpResponse::NotFound().finish();
    };
    let (lang, negotiated) = match code {
        "auto" => (Lang::negotiated(&req), true),
        code => match Lang::from_code(code).filter(|l| l.code() == code) {
            Some(lang) => (lang, false),
            None => return HttpResponse::NotFound().finish(),
        },
    };
    let t = catalog(lang);
    let etag = EntityTag::new_strong(t.etag().to_owned());
    let current = req
        .get_header::<IfNoneMatch>()
        .is_some_and(|inm| match inm {
            IfNoneMatch::Any => true,
            IfNoneMatch::Items(items) => items.iter().any(|e| e.weak_eq(&etag)),
        });
    let mut response = if current {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    response
        .insert_header(header::ETag(etag))
        .insert_header((header::CONTENT_LANGUAGE, lang.code()))
        .insert_header((
            header::CACHE_CONTROL,
            format!("public, max-age={ASSET_MAX_AGE_SECS}"),
        ));
    if negotiated {
        response.insert_header((header::VARY, "Accept-Language"));
    }
    let mut response = if current {
        response.finish()
    } else {
        response
            .content_type("application/json")
            .body(t.json().to_owned())
    };
    state
        .origins
        .add_cors_headers(req.headers(), response.headers_mut());
    response
}
