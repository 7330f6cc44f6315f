//! `/admin/reports` (the queue: evidence, reason, note; dismiss; ban for a chosen time) and
//! `/admin/bans` (add, list, lift). Every action goes through `admin::moderate`, which writes
//! the audit log; a refused one is answered 400 with the reason.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::session::{Checked, CsrfForm, SignedIn, TokenOnly};
use super::{page, see_other, with_db};
use crate::admin::moderate::{self, BanOrder, Refusal, BAN_DURATIONS};
use crate::admin::rfc3339;
use crate::db::DbConn;
use crate::moderation::bans::Ban;
use crate::moderation::reports::{Report, Side};
use crate::moderation::Moderation;
use crate::state::AppState;

/// Reports shown at once (the oldest wait for these to be handled).
const REPORTS_SHOWN: i64 = 200;

/// A report as the queue shows it.
struct ReportView {
    report: Report,
    at: String,
    /// `(who, message)`, oldest first.
    evidence: Vec<(&'static str, String)>,
}

#[derive(Template)]
#[template(path = "admin/reports.html")]
struct ReportsPage<'a> {
    admin: &'a SignedIn,
    reports: Vec<ReportView>,
    durations: &'a [(i64, &'static str)],
    /// `--challenge-after` above 0: otherwise "Require a challenge" changes nothing.
    gate_on: bool,
}

/// A ban as the list shows it.
struct BanView {
    ban: Ban,
    created: String,
    expires: String,
}

#[derive(Template)]
#[template(path = "admin/bans.html")]
struct BansPage<'a> {
    admin: &'a SignedIn,
    bans: Vec<BanView>,
    durations: &'a [(i64, &'static str)],
}

#[derive(Debug, Deserialize)]
pub struct BanForm {
    #[serde(default)]
    csrf: String,
    kind: String,
    /// A key, or an address (address bans); absent when banning from a report.
    #[serde(default)]
    target: String,
    seconds: i64,
    #[serde(default)]
    reason: String,
}

impl CsrfForm for BanForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

impl BanForm {
    fn order(self) -> BanOrder {
        BanOrder {
            kind: self.kind,
            target: self.target,
            seconds: self.seconds,
            reason: self.reason,
        }
    }
}

/// Runs `action` (dismiss, lift) as `admin` on the report or ban `id`; whether it was there.
async fn on_one(
    state: &AppState,
    admin: SignedIn,
    id: i64,
    action: fn(&Moderation, &mut DbConn, &str, i64) -> anyhow::Result<bool>,
) -> actix_web::Result<bool> {
    let moderation = state.moderation.clone();
    with_db(state, move |conn| {
        action(&moderation, conn, &admin.name, id)
    })
    .await
}

/// Back to `page` when it was done; 400 with the reason when it was refused.
pub(super) fn answer<T>(done: Result<T, Refusal>, page: &str) -> HttpResponse {
    match done {
        Ok(_) => see_other(page),
        Err(why) => refused(&why),
    }
}

fn refused(why: &Refusal) -> HttpResponse {
    HttpResponse::BadRequest()
        .content_type("text/plain; charset=utf-8")
        .body(why.to_string())
}

pub async fn reports(
    state: web::Data<AppState>,
    admin: SignedIn,
) -> actix_web::Result<HttpResponse> {
    let moderation = state.moderation.clone();
    let open = with_db(&state, move |_| moderation.open_reports(REPORTS_SHOWN)).await?;
    let reports = open
        .into_iter()
        .map(|report| ReportView {
            at: rfc3339(report.created_ms),
            evidence: report
                .evidence
                .iter()
                .map(|line| {
                    let who = match line.from {
                        Side::Reporter => "Reporter",
                        Side::Reported => "Reported",
                    };
                    (who, line.message.clone())
                })
                .collect(),
            report,
        })
        .collect();
    page(
        StatusCode::OK,
        &ReportsPage {
            admin: &admin,
            reports,
            durations: &BAN_DURATIONS,
            gate_on: state.challenges.is_on(),
        },
    )
}

pub async fn dismiss(
    state: web::Data<AppState>,
    admin: SignedIn,
    id: web::Path<i64>,
    Checked(_): Checked<TokenOnly>,
) -> actix_web::Result<HttpResponse> {
    let found = on_one(&state, admin, id.into_inner(), moderate::dismiss).await?;
    Ok(answer(
        found.then_some(()).ok_or(Refusal::NoReport),
        "/admin/reports",
    ))
}

pub async fn ban_reported(
    state: web::Data<AppState>,
    admin: SignedIn,
    id: web::Path<i64>,
    Checked(form): Checked<BanForm>,
) -> actix_web::Result<HttpResponse> {
    let (moderation, id, order) = (state.moderation.clone(), id.into_inner(), form.order());
    let banned = with_db(&state, move |conn| {
        moderate::ban_reported(&moderation, conn, &admin.name, id, &order)
    })
    .await?;
    Ok(answer(banned, "/admin/reports"))
}

pub async fn bans(state: web::Data<AppState>, admin: SignedIn) -> actix_web::Result<HttpResponse> {
    let moderation = state.moderation.clone();
    let active = with_db(&state, move |_| moderation.active_bans()).await?;
    let bans = active
        .into_iter()
        .map(|ban| BanView {
            created: rfc3339(ban.created_ms),
            expires: rfc3339(ban.expires_ms),
            ban,
        })
        .collect();
    page(
        StatusCode::OK,
        &BansPage {
            admin: &admin,
            bans,
            durations: &BAN_DURATIONS,
        },
    )
}

pub async fn add_ban(
    state: web::Data<AppState>,
    admin: SignedIn,
    Checked(form): Checked<BanForm>,
) -> actix_web::Result<HttpResponse> {
    let (moderation, secret, order) =
        (state.moderation.clone(), state.secret.clone(), form.order());
    let banned = with_db(&state, move |conn| {
        moderate::ban_typed(&moderation, conn, &admin.name, &secret, &order)
    })
    .await?;
    Ok(answer(banned, "/admin/bans"))
}

pub async fn lift(
    state: web::Data<AppState>,
    admin: SignedIn,
    id: web::Path<i64>,
    Checked(_): Checked<TokenOnly>,
) -> actix_web::Result<HttpResponse> {
    on_one(&state, admin, id.into_inner(), moderate::lift).await?;
    // Lifted now or already ended: either way it is not in force.
    Ok(see_other("/admin/bans"))
}
