//! `POST /report`: a report made after the chat closed, from the sealed evidence the chat's
//! `ended` frame gave the page: `{"report": SEALED, "reason": REASON, "note": TEXT}`. Any
//! process of the cluster takes it. Checked for origin like `/ws`, limited per address, and
//! sent as `text/plain` by the page, so an embed on a listed site needs no preflight.

use std::time::Instant;

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use crate::moderation::SealedRefused;
use crate::state::AppState;

/// Reports after a chat, per address: one every 10 s sustained, 5 at once.
pub const REPORTS_PER_SEC: f64 = 0.1;
pub const REPORT_BURST: u32 = 5;
/// Largest body: 20 messages of 2,000 characters, escaped, sealed and in base64, fit.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

#[derive(Deserialize)]
struct Body {
    report: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    note: Option<String>,
}

pub async fn report(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> HttpResponse {
    let mut response = answer(&req, &body, &state).await;
    state
        .origins
        .add_cors_headers(req.headers(), response.headers_mut());
    response
}

async fn answer(req: &HttpRequest, body: &[u8], state: &AppState) -> HttpResponse {
    if !state.origins.allows_upgrade(req) {
        return refusal(
            state,
            403,
            "origin_not_allowed",
            "This site may not report.",
        );
    }
    let ip = state
        .forwarding
        .client_ip(req.peer_addr().map(|a| a.ip()), req.headers());
    if !ip.is_some_and(|ip| state.report_rate.allow(ip, Instant::now())) {
        let detail = "Too many reports from your address; wait a moment and try again.";
        return refusal(state, 429, "rate_limited", detail);
    }
    let Ok(body) = serde_json::from_slice::<Body>(body) else {
        let detail = "Expected {\"report\": ..., \"reason\": ..., \"note\": ...}.";
        return refusal(state, 400, "bad_frame", detail);
    };
    let moderation = state.moderation.clone();
    let filed = web::block(move || {
        moderation.file_sealed(&body.report, &body.reason, body.note.as_deref())
    })
    .await;
    match filed {
        Ok(Ok(_)) => HttpResponse::Ok().json(json!({"type": "reported"})),
        Ok(Err(SealedRefused::BadToken)) => refusal(
            state,
            400,
            "bad_token",
            &SealedRefused::BadToken.to_string(),
        ),
        Ok(Err(SealedRefused::BadReport(bad))) => {
            refusal(state, 400, "bad_report", &bad.to_string())
        }
        Ok(Err(SealedRefused::AlreadyReported)) => {
            let detail = SealedRefused::AlreadyReported.to_string();
            refusal(state, 409, "already_reported", &detail)
        }
        Ok(Err(SealedRefused::Database(e))) => {
            tracing::warn!(error = %format!("{e:#}"), "cannot store a report");
            let detail = "The report could not be stored right now; please try again later.";
            refusal(state, 503, "unavailable", detail)
        }
        Err(_) => refusal(state, 503, "unavailable", "The server is stopping."),
    }
}

/// A refused report, counted as an error sent.
fn refusal(state: &AppState, status: u16, error: &'static str, detail: &str) -> HttpResponse {
    state.hub.metrics().error_sent(error);
    let status = actix_web::http::StatusCode::from_u16(status)
        .unwrap_or(actix_web::http::StatusCode::BAD_REQUEST);
    HttpResponse::build(status).json(json!({ "error": error, "detail": detail }))
}
