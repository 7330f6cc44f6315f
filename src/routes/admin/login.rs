//! `/admin/login` (GET: the form, POST: sign in) and `/admin/logout` (POST). The sign-in form
//! carries a CSRF token of the signed-out session too, so that no other site can sign a
//! browser in; a refusal says the same whether or not the name exists.

use std::net::{IpAddr, Ipv4Addr};

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::session::{self, Checked, CsrfForm, SignedIn, TokenOnly};
use super::{page, see_other, with_db, LOGIN_PATH, TEXT};
use crate::admin::audit::{self, Action};
use crate::admin::login::{self, Outcome};
use crate::db::admin as rows;
use crate::state::AppState;

#[derive(Template)]
#[template(path = "admin/login.html")]
struct LoginPage<'a> {
    csrf: &'a str,
    error: Option<&'a str>,
    name: &'a str,
}

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    password: String,
}

impl CsrfForm for LoginForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

pub async fn form(session: Session) -> actix_web::Result<HttpResponse> {
    let csrf = session::csrf_token(&session)?;
    page(
        StatusCode::OK,
        &LoginPage {
            csrf: &csrf,
            error: None,
            name: "",
        },
    )
}

pub async fn submit(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: Session,
    Checked(form): Checked<LoginForm>,
) -> actix_web::Result<HttpResponse> {
    let peer = req.peer_addr().map(|a| a.ip());
    let ip = state
        .forwarding
        .client_ip(peer, req.headers())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let (secret, limits) = (state.secret.clone(), state.admin.login.clone());
    let (name, password) = (form.name.clone(), form.password);
    let outcome = with_db(&state, move |conn| {
        login::sign_in(conn, &secret, &limits, &name, &password, ip)
    })
    .await?;
    let (status, error) = match outcome {
        Outcome::SignedIn(account) => {
            session::sign_in(&session, &account)?;
            tracing::info!(admin = %account.name, "admin signed in");
            return Ok(see_other("/admin"));
        }
        Outcome::Refused => (StatusCode::UNAUTHORIZED, TEXT.wrong_password),
        Outcome::Throttled => (StatusCode::TOO_MANY_REQUESTS, TEXT.throttled),
    };
    let csrf = session::csrf_token(&session)?;
    page(
        status,
        &LoginPage {
            csrf: &csrf,
            error: Some(error),
            name: &form.name,
        },
    )
}

/// Ends this session and every other of the account (the epoch goes up), then shows the form.
pub async fn logout(
    state: web::Data<AppState>,
    session: Session,
    admin: SignedIn,
    Checked(_): Checked<TokenOnly>,
) -> actix_web::Result<HttpResponse> {
    let name = admin.name.clone();
    with_db(&state, move |conn| {
        rows::bump_session_epoch(conn, admin.id)?;
        audit::record(conn, &admin.name, Action::Logout, "")
    })
    .await?;
    session.purge();
    tracing::info!(admin = %name, "admin signed out");
    Ok(see_other(LOGIN_PATH))
}
