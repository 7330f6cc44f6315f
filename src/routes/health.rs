//! `GET /healthz`: 200 when the database answers within a second, 503 when it does not. The
//! check has a connection of its own, so a busy matchmaker does not make it fail.

use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::db::{self, queries};
use crate::state::AppState;

pub async fn healthz(state: web::Data<AppState>) -> HttpResponse {
    let pool = state.health_pool.clone();
    let answered = web::block(move || -> anyhow::Result<()> {
        let mut conn = db::get(&pool)?;
        queries::ping(&mut conn)?;
        Ok(())
    })
    .await;
    match answered {
        Ok(Ok(())) => HttpResponse::Ok().json(json!({"status": "ok", "database": "ok"})),
        Ok(Err(e)) => {
            state.hub.metrics().database_error();
            tracing::warn!(
                error = format!("{e:#}"),
                "health check: database unreachable"
            );
            unavailable()
        }
        Err(_) => unavailable(),
    }
}

fn unavailable() -> HttpResponse {
    HttpResponse::ServiceUnavailable()
        .json(json!({"status": "unavailable", "database": "unreachable"}))
}
