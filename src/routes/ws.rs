//! `GET /ws`: checks the per-address connection cap, upgrades to a WebSocket and hands it to its
//! own session task.

use std::net::IpAddr;

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use crate::chat::{ids, session};
use crate::startup::AppState;

pub async fn upgrade(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> actix_web::Result<HttpResponse> {
    if !state.origins.allows_upgrade(&req) {
        return Ok(HttpResponse::Forbidden().json(json!({
            "error": "origin_not_allowed",
            "detail": "This site is not allowed to use the chat."
        })));
    }
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
    let visitor = visitor_key(&req, ip);
    let (response, ws, stream) = actix_ws::handle(&req, body)?;
    let hub = state.hub.clone();
    let live = session::Live::new(hub, state.session.clone(), visitor, ws, stream, slot);
    // Spawned as it is, not wrapped in another future: one task of one size per connection.
    actix_web::rt::spawn(session::run(live));
    Ok(response)
}

/// Longest visitor token accepted in `?visitor=`.
const MAX_VISITOR_TOKEN: usize = 64;

/// Who the visitor is, across its connections: the page's own random token (`?visitor=`, kept
/// in the browser's session storage) when it sends one, else its address. Only a hash is kept.
fn visitor_key(req: &HttpRequest, ip: IpAddr) -> i64 {
    let token = req.query_string().split('&').find_map(|pair| {
        let value = pair.strip_prefix("visitor=")?;
        let valid = !value.is_empty()
            && value.len() <= MAX_VISITOR_TOKEN
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        valid.then_some(value)
    });
    match token {
        Some(token) => ids::named_visitor(stable_hash(b"token:", token.as_bytes())),
        None => ids::address_visitor(stable_hash(b"ip:", ip.to_string().as_bytes())),
    }
}

/// FNV-1a: the same in every server process, so processes sharing a database agree.
fn stable_hash(prefix: &[u8], value: &[u8]) -> i64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in prefix.iter().chain(value) {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    // i64::MIN means "nobody" to the matchmaker.
    (hash as i64).max(i64::MIN + 1)
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
