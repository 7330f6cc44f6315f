//! `/assets/…` (plain JS modules, CSS, icons; no build step) and `/embed.js`: by default from the
//! copy of `assets/` compiled into the binary, so an installed binary needs no source tree; from
//! `--assets-dir` when one is given, so a site owner can change the files without a build.
//! Either way with validators (ETag, Last-Modified); `startup` adds the max-age and CORS.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_files::{Files, NamedFile};
use actix_web::http::header::{self, EntityTag, HttpDate, IfModifiedSince, IfNoneMatch};
use actix_web::http::StatusCode;
use actix_web::web::{self, Bytes};
use actix_web::{HttpMessage, HttpRequest, HttpResponse};
use rust_embed::Embed;

use crate::state::AppState;

/// How long browsers may use an asset before revalidating it (names carry no version).
pub const ASSET_MAX_AGE_SECS: u32 = 300;

/// Files the assets must hold for the page and the widget to work.
const REQUIRED_ASSETS: [&str; 2] = ["embed.js", "js/chat.js"];

/// The source tree's `assets/`, compiled in. With the feature `debug-embed` debug builds (the
/// tests) embed it too, rather than read the source tree at run time as rust-embed otherwise
/// does in debug builds: what is tested is what is installed.
#[derive(Embed)]
#[folder = "assets/"]
struct Embedded;

/// Where `/assets` and `/embed.js` come from.
#[derive(Debug, Clone)]
pub enum Assets {
    /// The copy compiled into the binary (no `--assets-dir`).
    Embedded,
    /// `--assets-dir`, served by actix-files.
    Folder(PathBuf),
}

impl Assets {
    /// The folder given, or else the embedded copy. Refuses a folder without the page's
    /// script: every page would load without its chat.
    pub fn new(folder: Option<&Path>) -> anyhow::Result<Assets> {
        let Some(dir) = folder else {
            for file in REQUIRED_ASSETS {
                anyhow::ensure!(
                    Embedded::get(file).is_some(),
                    "this binary was built without assets/{file}: give --assets-dir"
                );
            }
            return Ok(Assets::Embedded);
        };
        for file in REQUIRED_ASSETS {
            anyhow::ensure!(
                dir.join(file).is_file(),
                "the assets folder {} has no {file}: point --assets-dir at a folder holding \
                 the files of the source tree's assets/, or leave it out to serve the copy \
                 built into the binary",
                dir.display()
            );
        }
        Ok(Assets::Folder(dir.to_owned()))
    }

    /// Registers `/assets/…`.
    pub fn configure(&self, cfg: &mut web::ServiceConfig) {
        match self {
            Assets::Folder(dir) => {
                cfg.service(
                    Files::new("/assets", dir)
                        .use_etag(true)
                        .use_last_modified(true),
                );
            }
            Assets::Embedded => {
                cfg.service(
                    web::resource("/assets/{path:.*}")
                        .route(web::get().to(embedded_asset))
                        .route(web::head().to(embedded_asset)),
                );
            }
        }
    }
}

pub async fn embed_js(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    match &state.assets {
        Assets::Embedded => embedded(&req, "embed.js"),
        Assets::Folder(dir) => {
            let path = dir.join("embed.js");
            match web::block(move || NamedFile::open(path)).await {
                Ok(Ok(file)) => file.into_response(&req),
                _ => HttpResponse::NotFound().finish(),
            }
        }
    }
}

async fn embedded_asset(req: HttpRequest, path: web::Path<String>) -> HttpResponse {
    embedded(&req, &path)
}

/// One embedded file, or 304 when the browser's copy is current, or 404.
fn embedded(req: &HttpRequest, path: &str) -> HttpResponse {
    let Some(file) = Embedded::get(path) else {
        return HttpResponse::NotFound().finish();
    };
    let etag = EntityTag::new_strong(hex(&file.metadata.sha256_hash()[..ETAG_BYTES]));
    // The file's time when the binary was built.
    let modified = file
        .metadata
        .last_modified()
        .map(|secs| HttpDate::from(UNIX_EPOCH + Duration::from_secs(secs)));
    let mut response = HttpResponse::Ok();
    response.insert_header(header::ETag(etag.clone()));
    if let Some(modified) = modified {
        response.insert_header(header::LastModified(modified));
    }
    if is_current(req, &etag, modified) {
        return response.status(StatusCode::NOT_MODIFIED).finish();
    }
    let body = match file.data {
        Cow::Borrowed(bytes) => Bytes::from_static(bytes),
        Cow::Owned(bytes) => Bytes::from(bytes),
    };
    response
        .content_type(content_type(file.metadata.mimetype()))
        .body(body)
}

/// Bytes of the file's SHA-256 in its ETag: plenty to tell versions apart.
const ETAG_BYTES: usize = 16;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether the browser already has this version: `If-None-Match` when it sends one, else
/// `If-Modified-Since` (the order RFC 9110 §13.2.2 gives them).
fn is_current(req: &HttpRequest, etag: &EntityTag, modified: Option<HttpDate>) -> bool {
    if req.headers().contains_key(header::IF_NONE_MATCH) {
        return match req.get_header::<IfNoneMatch>() {
            Some(IfNoneMatch::Any) => true,
            Some(IfNoneMatch::Items(tags)) => tags.iter().any(|tag| tag.weak_eq(etag)),
            None => false,
        };
    }
    match (modified, req.get_header::<IfModifiedSince>()) {
        (Some(modified), Some(IfModifiedSince(since))) => {
            SystemTime::from(modified) <= SystemTime::from(since)
        }
        _ => false,
    }
}

/// The type actix-files gives the same file (its `prefer_utf8` adds the charset to these), so
/// the embedded copy and `--assets-dir` answer alike.
fn content_type(mime: &str) -> String {
    match mime {
        "text/css" | "text/html" | "text/plain" | "text/csv" | "application/javascript" => {
            format!("{mime}; charset=utf-8")
        }
        other => other.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::{call_service, init_service, TestRequest};
    use actix_web::App;

    #[actix_web::test]
    async fn an_embedded_asset_is_revalidated_by_etag_or_date() {
        let app = init_service(App::new().configure(|cfg| Assets::Embedded.configure(cfg))).await;
        let get = || TestRequest::get().uri("/assets/js/chat.js");
        let response = call_service(&app, get().to_request()).await;
        assert_eq!(response.status(), StatusCode::OK);
        let headers = response.headers().clone();
        let etag = headers.get(header::ETAG).expect("an ETag").clone();
        let modified = headers
            .get(header::LAST_MODIFIED)
            .expect("a Last-Modified")
            .clone();
        assert_eq!(
            headers.get(header::CONTENT_TYPE).expect("a type"),
            "text/javascript"
        );

        for (name, value) in [
            (header::IF_NONE_MATCH, etag.clone()),
            (header::IF_MODIFIED_SINCE, modified.clone()),
        ] {
            let request = get().insert_header((name.clone(), value)).to_request();
            let response = call_service(&app, request).await;
            assert_eq!(response.status(), StatusCode::NOT_MODIFIED, "{name}");
        }
        // Another version's tag wins over a date that would match.
        let request = get()
            .insert_header((header::IF_NONE_MATCH, "\"another\""))
            .insert_header((header::IF_MODIFIED_SINCE, modified))
            .to_request();
        assert_eq!(call_service(&app, request).await.status(), StatusCode::OK);

        let head = TestRequest::default()
            .method(actix_web::http::Method::HEAD)
            .uri("/assets/css/chat.css")
            .to_request();
        let response = call_service(&app, head).await;
        assert_eq!(response.status(), StatusCode::OK);
        let css = response.headers().get(header::CONTENT_TYPE);
        assert_eq!(css.expect("a type"), "text/css; charset=utf-8");
        for missing in ["/assets/nope.js", "/assets/../Cargo.toml", "/assets/"] {
            let request = TestRequest::get().uri(missing).to_request();
            let response = call_service(&app, request).await;
            assert_eq!(response.status(), StatusCode::NOT_FOUND, "{missing}");
        }
    }
}
