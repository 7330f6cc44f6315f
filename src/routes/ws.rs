//! `GET /ws`: checks the per-address connection cap, upgrades to a WebSocket and hands it to its
//! own session task.

use std::net::IpAddr;

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use crate::chat::session;
use crate::startup::AppState;

pub async fn upgrade(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> actix_web::Result<HttpResponse> {
    let Some(ip) = client_ip(&req, state.trust_forwarded_for) else {
        return Ok(HttpResponse::BadRequest().json(json!({
            "error": "bad_request",
            "detail": "The client address could not be determined."
        })));
    };
    let Some(slot) = state.conns_per_ip.try_acquire(ip) else {
        return Ok(HttpResponse::TooManyRequests().json(json!({
            "error": "too_many_connections",
            "detail": "Too many open connections from your address; close one and try again."
        })));
    };
    let (response, ws, stream) = actix_ws::handle(&req, body)?;
    let hub = state.hub.clone();
    let config = state.session.clone();
    actix_web::rt::spawn(async move {
        session::run(hub, config, ws, stream).await;
        drop(slot);
    });
    Ok(response)
}

/// The peer's address, or behind a trusted proxy the last X-Forwarded-For entry (the one the
/// proxy itself appended; earlier entries are whatever the client claimed).
fn client_ip(req: &HttpRequest, trust_forwarded_for: bool) -> Option<IpAddr> {
    if trust_forwarded_for {
        let forwarded = req
            .headers()
            .get_all("x-forwarded-for")
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|part| part.trim().parse::<IpAddr>().ok())
            .last();
        if forwarded.is_some() {
            return forwarded;
        }
    }
    req.peer_addr().map(|a| a.ip())
}
