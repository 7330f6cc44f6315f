//! `GET /ws`: upgrades to a WebSocket and hands it to its own session task.

use actix_web::{web, HttpRequest, HttpResponse};

use crate::chat::session;
use crate::startup::AppState;

pub async fn upgrade(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> actix_web::Result<HttpResponse> {
    let (response, ws, stream) = actix_ws::handle(&req, body)?;
    actix_web::rt::spawn(session::run(
        state.hub.clone(),
        state.session.clone(),
        ws,
        stream,
    ));
    Ok(response)
}
