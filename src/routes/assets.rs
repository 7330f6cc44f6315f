//! `/assets/…` (plain JS modules, CSS, icons; no build step) and `/embed.js`, from the assets
//! folder, with validators (ETag, Last-Modified) and a short max-age.

use std::path::PathBuf;

use actix_files::{Files, NamedFile};
use actix_web::{web, HttpRequest, HttpResponse};

use crate::startup::AppState;

/// How long browsers may use an asset before revalidating it (names carry no version).
pub const ASSET_MAX_AGE_SECS: u32 = 300;

pub fn assets_service(dir: PathBuf) -> Files {
    Files::new("/assets", dir)
        .use_etag(true)
        .use_last_modified(true)
}

pub async fn embed_js(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let path = state.assets_dir.join("embed.js");
    match web::block(move || NamedFile::open(path)).await {
        Ok(Ok(file)) => file.into_response(&req),
        _ => HttpResponse::NotFound().finish(),
    }
}
