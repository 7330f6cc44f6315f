//! Who is signed in. The session is an actix-session cookie (signed and encrypted with a key
//! derived from the deployment's secret, so any process of a cluster reads it) holding the
//! account's id, its session epoch, when it signed in and was last seen, and the CSRF token.
//! `guard` lets no `/admin` request but the sign-in page through without a live session; the
//! account is read back on every request, so a removed account or a sign-out (which raises
//! the epoch) ends its sessions on every process at once.

use std::future::{ready, Ready};

use actix_session::{Session, SessionExt};
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::{header, Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest, HttpResponse};
use futures_util::future::LocalBoxFuture;
use serde::de::DeserializeOwned;
use subtle::ConstantTimeEq;

use super::{FIGURES_PATH, LOGIN_PATH, TEXT};
use crate::admin::now_ms;
use crate::db::{self, admin::AccountRow};
use crate::state::AppState;

const ACCOUNT: &str = "account";
const EPOCH: &str = "epoch";
const SIGNED_IN_MS: &str = "signed_in_ms";
const SEEN_MS: &str = "seen_ms";
const CSRF: &str = "csrf";
/// Bytes of randomness in a CSRF token.
const CSRF_BYTES: usize = 32;

/// The admin a request comes from (the guard put it there).
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub id: i64,
    pub name: String,
    /// The session's CSRF token, for the forms of the page.
    pub csrf: String,
}

/// The session's CSRF token, made now if it has none.
pub fn csrf_token(session: &Session) -> actix_web::Result<String> {
    if let Ok(Some(token)) = session.get::<String>(CSRF) {
        return Ok(token);
    }
    let mut bytes = [0u8; CSRF_BYTES];
    getrandom::fill(&mut bytes).map_err(|e| {
        actix_web::error::ErrorInternalServerError(format!("no system randomness: {e}"))
    })?;
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    session.insert(CSRF, &token)?;
    Ok(token)
}

/// Starts a session for `account`: a new cookie and a new CSRF token (nothing of the
/// signed-out session carries over).
pub fn sign_in(session: &Session, account: &AccountRow) -> actix_web::Result<()> {
    // clear, not purge: a purged session takes no new values.
    session.clear();
    session.renew();
    let now = now_ms();
    session.insert(ACCOUNT, account.id)?;
    session.insert(EPOCH, account.session_epoch)?;
    session.insert(SIGNED_IN_MS, now)?;
    session.insert(SEEN_MS, now)?;
    csrf_token(session).map(drop)
}

/// The signed-in admin of this session, if it is live: within its absolute and idle times,
/// its account still there and not signed out since. Marks it seen when `active`.
async fn live_session(
    state: &AppState,
    session: &Session,
    active: bool,
) -> actix_web::Result<Option<SignedIn>> {
    let get = |key: &str| session.get::<i64>(key).ok().flatten();
    let (Some(id), Some(epoch), Some(signed_in), Some(seen)) =
        (get(ACCOUNT), get(EPOCH), get(SIGNED_IN_MS), get(SEEN_MS))
    else {
        return Ok(None);
    };
    let now = now_ms();
    let ms = |d: std::time::Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    if now.saturating_sub(signed_in) >= ms(state.admin.session_ttl)
        || now.saturating_sub(seen) >= ms(state.admin.idle_ttl)
    {
        return Ok(None);
    }
    let pool = state.admin_pool.clone();
    let account = web::block(move || -> anyhow::Result<Option<AccountRow>> {
        Ok(db::admin::account_by_id(&mut *db::get(&pool)?, id)?)
    })
    .await?
    .map_err(|e| {
        tracing::warn!(
            error = format!("{e:#}"),
            "admin session: cannot read the account"
        );
        actix_web::error::ErrorServiceUnavailable(TEXT.database_unavailable)
    })?;
    let Some(account) = account.filter(|a| a.session_epoch == epoch) else {
        return Ok(None);
    };
    if active {
        session.insert(SEEN_MS, now)?;
    }
    Ok(Some(SignedIn {
        id: account.id,
        name: account.name,
        csrf: csrf_token(session)?,
    }))
}

/// Lets through the sign-in page, and anything else only with a live session: without one, a
/// page (GET) is sent to the sign-in page and anything else is refused with 401.
pub async fn guard(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> actix_web::Result<ServiceResponse<BoxBody>> {
    if req.path() == LOGIN_PATH {
        return Ok(next.call(req).await?.map_into_boxed_body());
    }
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return Err(actix_web::error::ErrorInternalServerError("no state"));
    };
    let session = req.get_session();
    // The figures page's own refresh is not the admin at work: an open page left alone must
    // still time out.
    let active = req.path() != FIGURES_PATH;
    match live_session(&state, &session, active).await? {
        Some(admin) => {
            req.extensions_mut().insert(admin);
            Ok(next.call(req).await?.map_into_boxed_body())
        }
        None => {
            session.purge();
            let response = if req.method() == Method::GET || req.method() == Method::HEAD {
                HttpResponse::SeeOther()
                    .insert_header((header::LOCATION, LOGIN_PATH))
                    .finish()
            } else {
                HttpResponse::Unauthorized()
                    .content_type("text/plain; charset=utf-8")
                    .body(TEXT.signed_out)
            };
            Ok(req.into_response(response))
        }
    }
}

impl FromRequest for SignedIn {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        // The guard runs before every handler that asks for this; without it, refuse.
        ready(
            req.extensions()
                .get::<SignedIn>()
                .cloned()
                .ok_or_else(|| actix_web::error::ErrorUnauthorized(TEXT.signed_out)),
        )
    }
}

/// A form that carries the session's CSRF token in its `csrf` field.
pub trait CsrfForm: DeserializeOwned + 'static {
    fn csrf(&self) -> &str;
}

/// A form whose CSRF token matched the session's (compared in constant time); a missing,
/// wrong or stale one (from a session since ended) is refused with 403 before the handler.
pub struct Checked<T>(pub T);

impl<T: CsrfForm> FromRequest for Checked<T> {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let form = web::Form::<T>::from_request(req, payload);
        let session = req.get_session();
        Box::pin(async move {
            let refused = || {
                actix_web::error::InternalError::from_response(
                    TEXT.bad_csrf,
                    HttpResponse::build(StatusCode::FORBIDDEN)
                        .content_type("text/plain; charset=utf-8")
                        .body(TEXT.bad_csrf),
                )
                .into()
            };
            let Ok(form) = form.await else {
                return Err(actix_web::error::ErrorBadRequest(TEXT.bad_form));
            };
            let expected = session.get::<String>(CSRF).ok().flatten();
            let given = form.csrf().as_bytes();
            match expected {
                Some(expected) if bool::from(expected.as_bytes().ct_eq(given)) => {
                    Ok(Checked(form.into_inner()))
                }
                _ => Err(refused()),
            }
        })
    }
}

/// A form of nothing but its CSRF token (sign-out).
#[derive(Debug, serde::Deserialize)]
pub struct TokenOnly {
    #[serde(default)]
    pub csrf: String,
}

impl CsrfForm for TokenOnly {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}
