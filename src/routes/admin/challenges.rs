//! `/admin/challenges`: the addresses an operator flagged (each must solve a challenge before
//! a chat), with a lift button each and a form to flag an address; and the report queue's
//! "Require a challenge" action. Every action goes through `admin::flags` (audit log).

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::moderation::answer;
use super::session::{Checked, CsrfForm, SignedIn, TokenOnly};
use super::{page, see_other, with_db};
use crate::admin::flags::{self, FlagTarget};
use crate::admin::moderate::BAN_DURATIONS;
use crate::admin::rfc3339;
use crate::moderation::challenge::flagged;
use crate::state::AppState;

const PAGE: &str = "/admin/challenges";

/// A flag in force as the list shows it.
struct FlagView {
    address: i64,
    until: String,
}

#[derive(Template)]
#[template(path = "admin/challenges.html")]
struct ChallengesPage<'a> {
    admin: &'a SignedIn,
    flags: Vec<FlagView>,
    durations: &'a [(i64, &'static str)],
    /// `--challenge-after` above 0: otherwise flags change nothing, and the page says so.
    gate_on: bool,
}

#[derive(Debug, Deserialize)]
pub struct FlagForm {
    #[serde(default)]
    csrf: String,
    /// An address or an address key; absent when flagging from a report.
    #[serde(default)]
    target: String,
    seconds: i64,
}

impl CsrfForm for FlagForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

pub async fn list(state: web::Data<AppState>, admin: SignedIn) -> actix_web::Result<HttpResponse> {
    let now = u64::try_from(crate::admin::now_ms() / 1000).unwrap_or(0);
    let rows = with_db(&state, move |conn| Ok(flagged(conn, now)?)).await?;
    let flags = rows
        .into_iter()
        .map(|(address, until)| FlagView {
            address,
            until: rfc3339(until.saturating_mul(1000)),
        })
        .collect();
    page(
        StatusCode::OK,
        &ChallengesPage {
            admin: &admin,
            flags,
            durations: &BAN_DURATIONS,
            gate_on: state.challenges.is_on(),
        },
    )
}

/// Flags `target` for the form's duration; back to `back` when done.
async fn flag(
    state: &AppState,
    admin: SignedIn,
    target: FlagTarget,
    seconds: i64,
    back: &str,
) -> actix_web::Result<HttpResponse> {
    let (gate, moderation, secret) = (
        state.challenges.clone(),
        state.moderation.clone(),
        state.secret.clone(),
    );
    let done = with_db(state, move |conn| {
        flags::flag(
            (&gate, &moderation, &secret),
            conn,
            &admin.name,
            &target,
            seconds,
        )
    })
    .await?;
    Ok(answer(done, back))
}

pub async fn add(
    state: web::Data<AppState>,
    admin: SignedIn,
    Checked(form): Checked<FlagForm>,
) -> actix_web::Result<HttpResponse> {
    let target = FlagTarget::Typed(form.target);
    flag(&state, admin, target, form.seconds, PAGE).await
}

pub async fn from_report(
    state: web::Data<AppState>,
    admin: SignedIn,
    id: web::Path<i64>,
    Checked(form): Checked<FlagForm>,
) -> actix_web::Result<HttpResponse> {
    let target = FlagTarget::Report(id.into_inner());
    flag(&state, admin, target, form.seconds, "/admin/reports").await
}

pub async fn lift(
    state: web::Data<AppState>,
    admin: SignedIn,
    address: web::Path<i64>,
    Checked(_): Checked<TokenOnly>,
) -> actix_web::Result<HttpResponse> {
    let (gate, address) = (state.challenges.clone(), address.into_inner());
    with_db(&state, move |conn| {
        flags::unflag(&gate, conn, &admin.name, address)
    })
    .await?;
    // Lifted now, or expired or lifted already: either way it is not in force.
    Ok(see_other(PAGE))
}
