//! `GET /online`: how many are connected and the longest message the server takes,
//! `{"online": N, "max_message_chars": M}`, for the idle page to show (and its character counter
//! to count against) before it opens a WebSocket. Never cached; CORS as for the assets, so an embed on a listed site can ask.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use crate::state::AppState;

pub async fn online(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let Ok(stats) = state.hub.stats().await else {
        return HttpResponse::ServiceUnavailable().finish(); // the server is stopping
    };
    let mut response = HttpResponse::Ok()
        .insert_header(("cache-control", "no-store"))
        .json(json!({
            "online": stats.online,
            "max_message_chars": state.session.max_message_chars,
        }));
    state
        .origins
        .add_cors_headers(req.headers(), response.headers_mut());
    response
}
