//! `GET /metrics`, on a listener of its own (`--metrics-bind`), the only thing it answers: the
//! main listener has no such route, so visitors never see it. The gauges are the hub's counts
//! at the moment of the scrape; everything else is counted as it happens (`crate::metrics`).

use std::net::TcpListener;

use actix_web::dev::Server;
use actix_web::{web, App, HttpResponse, HttpServer};

use crate::chat::hub::HubHandle;
use crate::metrics::CONTENT_TYPE;

/// How long the metrics listener's own shutdown waits for a scrape to finish.
const SHUTDOWN_TIMEOUT_SECS: u64 = 1;

pub async fn metrics(hub: web::Data<HubHandle>) -> HttpResponse {
    let Ok(stats) = hub.stats().await else {
        return HttpResponse::ServiceUnavailable().finish(); // the server is stopping
    };
    match hub
        .metrics()
        .render(stats.connections, stats.waiting, stats.chats)
    {
        Ok(text) => HttpResponse::Ok()
            .content_type(CONTENT_TYPE)
            .insert_header(("cache-control", "no-store"))
            .body(text),
        Err(_) => HttpResponse::InternalServerError().finish(),
    }
}

/// The metrics listener's server: one worker (a scrape is rare and cheap), no signals of its
/// own (the application stops it with the main server).
pub fn server(listener: TcpListener, hub: HubHandle) -> std::io::Result<Server> {
    let hub = web::Data::new(hub);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(hub.clone())
            .route("/metrics", web::get().to(metrics))
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(SHUTDOWN_TIMEOUT_SECS)
    .listen(listener)?
    .run();
    Ok(server)
}
