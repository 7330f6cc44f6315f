//! HTTP routes: thin handlers over the chat and the database, plus the static assets; and the
//! metrics listener's one route (`metrics`), which `configure` leaves out.

pub mod admin;
pub mod assets;
pub mod client;
mod health;
mod i18n;
pub mod metrics;
mod online;
mod page;
pub mod report;
pub mod security;
mod ws;

use actix_web::web;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/ws", web::get().to(ws::upgrade))
        .route("/healthz", web::get().to(health::healthz))
        .route("/online", web::get().to(online::online))
        .service(
            web::resource("/report")
                .app_data(web::PayloadConfig::new(report::MAX_BODY_BYTES))
                .route(web::post().to(report::report)),
        )
        .route("/", web::get().to(page::index))
        .route("/widget", web::get().to(page::widget))
        .route("/embed.js", web::get().to(assets::embed_js))
        .route("/i18n/{file}", web::get().to(i18n::messages));
}
