//! HTTP routes: thin handlers over the chat and the database.

mod health;
mod page;
mod ws;

use actix_web::web;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/ws", web::get().to(ws::upgrade))
        .route("/healthz", web::get().to(health::healthz))
        .route("/", web::get().to(page::index));
}
