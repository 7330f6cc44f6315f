//! `GET /healthz`: 200 when the database answers within a second, 503 when it does not. The
//! check has a connection of its own, so a busy matchmaker does not make it fail. Beside the
//! database it names this process (`node`) and says whether Redis answers (`ok`,
//! `unreachable`; `off` without `--redis-url`): a process cut off from Redis still serves the
//! chats within it, so that alone does not make it unhealthy. In a cluster, `processes` is how
//! many live processes it knows of, itself included.

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
    let node = state.node;
    let redis = match &state.cluster {
        None => "off",
        Some(cluster) if cluster.redis_ok() => "ok",
        Some(_) => "unreachable",
    };
    let ok = match answered {
        Ok(Ok(())) => true,
        Ok(Err(e)) => {
            state.hub.metrics().database_error();
            tracing::warn!(
                error = format!("{e:#}"),
                "health check: database unreachable"
            );
            false
        }
        Err(_) => false,
    };
    let (status, database) = if ok {
        ("ok", "ok")
    } else {
        ("unavailable", "unreachable")
    };
    let mut body = json!({"status": status, "database": database, "node": node, "redis": redis});
    if let Some(cluster) = &state.cluster {
        body["processes"] = json!(cluster.processes());
    }
    if ok {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}
