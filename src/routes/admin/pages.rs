//! The admin pages that only read: the live figures (`/admin`, and `/admin/figures` as JSON
//! for the page's script to refresh them) and the audit log (`/admin/audit`).

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use askama::Template;

use super::session::SignedIn;
use super::{page, with_db};
use crate::admin::figures::Figures;
use crate::admin::{audit, rfc3339};
use crate::state::AppState;

/// Audit entries shown.
const AUDIT_SHOWN: i64 = 500;

#[derive(Template)]
#[template(path = "admin/dashboard.html")]
struct Dashboard<'a> {
    admin: &'a SignedIn,
    figures: &'a Figures,
    clustered: bool,
}

/// One audit entry as shown.
struct AuditLine {
    at: String,
    admin: String,
    action: String,
    detail: String,
}

#[derive(Template)]
#[template(path = "admin/audit.html")]
struct AuditPage<'a> {
    admin: &'a SignedIn,
    entries: Vec<AuditLine>,
}

pub async fn dashboard(
    state: web::Data<AppState>,
    admin: SignedIn,
) -> actix_web::Result<HttpResponse> {
    let figures = state.figures.gather(state.cluster.as_ref()).await;
    page(
        StatusCode::OK,
        &Dashboard {
            admin: &admin,
            figures: &figures,
            clustered: state.cluster.is_some(),
        },
    )
}

pub async fn figures(state: web::Data<AppState>, _: SignedIn) -> HttpResponse {
    HttpResponse::Ok().json(state.figures.gather(state.cluster.as_ref()).await)
}

pub async fn audit(state: web::Data<AppState>, admin: SignedIn) -> actix_web::Result<HttpResponse> {
    let rows = with_db(&state, |conn| audit::latest(conn, AUDIT_SHOWN)).await?;
    let entries = rows
        .into_iter()
        .map(|row| AuditLine {
            at: rfc3339(row.at_ms),
            admin: row.admin,
            action: row.action,
            detail: row.detail,
        })
        .collect();
    page(
        StatusCode::OK,
        &AuditPage {
            admin: &admin,
            entries,
        },
    )
}
