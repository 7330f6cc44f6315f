//! `/admin`: the admin view. Sign-in at `/admin/login`; every other route needs a live
//! session (`session::guard`) and every POST a CSRF token (`session::Checked`). Pages are
//! askama templates in templates/admin/; what they show comes from `crate::admin`.

mod challenges;
mod login;
mod moderation;
mod pages;
pub mod session;

use actix_session::config::{BrowserSession, CookieContentSecurity};
use actix_session::storage::CookieSessionStore;
use actix_session::SessionMiddleware;
use actix_web::body::MessageBody;
use actix_web::cookie::{Cookie, SameSite};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::middleware::{from_fn, Next};
use actix_web::{web, HttpResponse};
use askama::Template;

use crate::state::AppState;

pub const LOGIN_PATH: &str = "/admin/login";
/// What the figures page's script polls.
pub const FIGURES_PATH: &str = "/admin/figures";
const COOKIE_NAME: &str = "pairchat_admin";
const COOKIE_PATH: &str = "/admin";

/// What the admin routes say outside their templates, in one place.
pub struct Texts {
    pub signed_out: &'static str,
    pub bad_csrf: &'static str,
    pub bad_form: &'static str,
    pub database_unavailable: &'static str,
    pub wrong_password: &'static str,
    pub throttled: &'static str,
}

pub const TEXT: Texts = Texts {
    signed_out: "Not signed in, or the session has ended: sign in at /admin/login.",
    bad_csrf:
        "This form is stale or did not come from this admin page: reload the page and try again.",
    bad_form: "This form is incomplete or malformed.",
    database_unavailable: "The database does not answer: try again in a moment.",
    wrong_password: "Wrong name or password.",
    throttled: "Too many failed sign-ins: try again later.",
};

/// Whether `path` is one of the admin view's (its own headers apply).
pub fn is_admin_path(path: &str) -> bool {
    path == "/admin" || path.starts_with("/admin/")
}

pub fn configure(cfg: &mut web::ServiceConfig, state: &web::Data<AppState>) {
    let sessions =
        SessionMiddleware::builder(CookieSessionStore::default(), state.cookie_key.clone())
            .cookie_name(COOKIE_NAME.to_owned())
            .cookie_path(COOKIE_PATH.to_owned())
            .cookie_http_only(true)
            .cookie_same_site(SameSite::Strict)
            .cookie_secure(state.origins.public_is_https())
            .cookie_content_security(CookieContentSecurity::Private)
            // Ends with the browser; the session's own times (checked by the guard) end it sooner.
            .session_lifecycle(BrowserSession::default())
            .build();
    cfg.service(
        web::scope("/admin")
            .wrap(from_fn(session::guard))
            .wrap(sessions)
            .wrap(from_fn(secure_cookies_behind_tls))
            .route("", web::get().to(pages::dashboard))
            .route("/", web::get().to(pages::dashboard))
            .route("/figures", web::get().to(pages::figures))
            .route("/audit", web::get().to(pages::audit))
            .route("/reports", web::get().to(moderation::reports))
            .route("/reports/{id}/dismiss", web::post().to(moderation::dismiss))
            .route(
                "/reports/{id}/ban",
                web::post().to(moderation::ban_reported),
            )
            .route(
                "/reports/{id}/challenge",
                web::post().to(challenges::from_report),
            )
            .route("/challenges", web::get().to(challenges::list))
            .route("/challenges", web::post().to(challenges::add))
            .route(
                "/challenges/{address}/lift",
                web::post().to(challenges::lift),
            )
            .route("/bans", web::get().to(moderation::bans))
            .route("/bans", web::post().to(moderation::add_ban))
            .route("/bans/{id}/lift", web::post().to(moderation::lift))
            .route("/login", web::get().to(login::form))
            .route("/login", web::post().to(login::submit))
            .route("/logout", web::post().to(login::logout)),
    );
}

/// Behind a trusted proxy that says the visitor came over TLS (`X-Forwarded-Proto: https`),
/// the session cookie is marked Secure even without an https `--public-origin`.
async fn secure_cookies_behind_tls(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> actix_web::Result<ServiceResponse<impl MessageBody>> {
    let https = req.app_data::<web::Data<AppState>>().is_some_and(|state| {
        let peer = req.peer_addr().map(|a| a.ip());
        state.forwarding.forwarded_https(peer, req.headers())
    });
    let mut response = next.call(req).await?;
    if https {
        let headers = response.headers_mut();
        let cookies: Vec<Cookie<'static>> = headers
            .get_all(header::SET_COOKIE)
            .filter_map(|v| v.to_str().ok())
            .filter_map(|v| Cookie::parse(v.to_owned()).ok())
            .collect();
        headers.remove(header::SET_COOKIE);
        for mut cookie in cookies {
            cookie.set_secure(true);
            if let Ok(value) = HeaderValue::from_str(&cookie.to_string()) {
                headers.append(header::SET_COOKIE, value);
            }
        }
    }
    Ok(response)
}

/// A rendered admin page with `status`.
fn page(status: StatusCode, template: &impl Template) -> actix_web::Result<HttpResponse> {
    let body = template
        .render()
        .map_err(actix_web::error::ErrorInternalServerError)?;
    Ok(HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .body(body))
}

/// Runs blocking database work for an admin page on the admin pool; a failure is logged and
/// answered 503.
async fn with_db<T: Send + 'static>(
    state: &AppState,
    work: impl FnOnce(&mut crate::db::DbConn) -> anyhow::Result<T> + Send + 'static,
) -> actix_web::Result<T> {
    let pool = state.admin_pool.clone();
    web::block(move || work(&mut *crate::db::get(&pool)?))
        .await?
        .map_err(|e| {
            tracing::warn!(error = format!("{e:#}"), "admin page: database error");
            actix_web::error::ErrorServiceUnavailable(TEXT.database_unavailable)
        })
}

/// 303 to `path` (after a form, so that a reload does not post it again).
fn see_other(path: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, path))
        .finish()
}
