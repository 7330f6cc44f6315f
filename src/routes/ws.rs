//! `GET /ws`: checks the origin, the connection caps and the connection rate, upgrades to a
//! WebSocket and hands it to its own session task.

use std::pin::Pin;

use actix_web::error::PayloadError;
use actix_web::web::Bytes;
use actix_web::{dev, web, FromRequest, HttpRequest, HttpResponse};
use futures_util::Stream;
use serde_json::json;

use crate::chat::frame_limit::FrameLimit;
use crate::chat::limits::Refused;
use crate::chat::session;
use crate::chat::session::Who;
use crate::routes::client::{address_of, visitor_key};
use crate::state::AppState;

pub async fn upgrade(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> actix_web::Result<HttpResponse> {
    if !state.origins.allows_upgrade(&req) {
        return Ok(refusal(
            &state,
            HttpResponse::Forbidden(),
            "origin_not_allowed",
            "This site is not allowed to use the chat.",
        ));
    }
    let Some(ip) = state
        .forwarding
        .client_ip(req.peer_addr().map(|a| a.ip()), req.headers())
    else {
        return Ok(refusal(
            &state,
            HttpResponse::BadRequest(),
            "bad_request",
            "The client address could not be determined.",
        ));
    };
    if !state.connect_rate.allow(ip, std::time::Instant::now()) {
        return Ok(refusal(
            &state,
            HttpResponse::TooManyRequests(),
            "too_many_connects",
            "Too many new connections from your address; wait a moment and try again.",
        ));
    }
    let slot = match state.conns_per_ip.try_acquire(ip) {
        Ok(slot) => slot,
        Err(Refused::AddressFull) => {
            return Ok(refusal(
                &state,
                HttpResponse::TooManyRequests(),
                "too_many_connections",
                "Too many open connections from your address; close one and try again.",
            ))
        }
        Err(Refused::ServerFull) => {
            return Ok(refusal(
                &state,
                HttpResponse::ServiceUnavailable(),
                "server_full",
                "The server is full right now; please try again shortly.",
            ))
        }
    };
    // The address key is hashed once: it is also the key of a visitor who sends no token.
    let address = address_of(ip, &state.secret);
    let who = Who {
        visitor: visitor_key(&req, address, &state.secret),
        address,
    };
    // The request body is read through `FrameLimit`, which cuts an oversized frame at its
    // header instead of letting actix-ws buffer it whole.
    let limited = FrameLimit::new(body.into_inner(), state.session.max_frame_bytes);
    let boxed: PayloadStream = Box::pin(limited);
    let mut payload = dev::Payload::from(boxed);
    let body = web::Payload::from_request(&req, &mut payload).await?;
    let (response, ws, stream) = actix_ws::handle(&req, body)?;
    let hub = state.hub.clone();
    let moderation = state.moderation.clone();
    // The gate knows an address by its key, as bans and reports do (an operator flags an
    // address from a report).
    let ticket = state
        .challenges
        .is_on()
        .then(|| state.challenges.ticket(who.address.as_i64()));
    let live = session::Live::new(
        hub,
        state.session.clone(),
        moderation,
        who,
        ws,
        stream,
        slot,
        ticket,
    )
    .resuming(crate::chat::resume::ask_of(req.query_string()));
    // Spawned as it is, not wrapped in another future: one task of one size per connection.
    actix_web::rt::spawn(session::run(live));
    Ok(response)
}

/// What `dev::Payload` wraps a stream of its own as (actix-http's `BoxedPayloadStream`).
type PayloadStream = Pin<Box<dyn Stream<Item = Result<Bytes, PayloadError>>>>;

/// An upgrade refused before it began, with a JSON body saying why (counted as an error sent).
fn refusal(
    state: &AppState,
    mut status: actix_web::HttpResponseBuilder,
    error: &'static str,
    detail: &str,
) -> HttpResponse {
    state.hub.metrics().error_sent(error);
    status.json(json!({ "error": error, "detail": detail }))
}
