//! Tests only MariaDB can run: a database server that goes away and comes back. They print
//! that they skipped without `TEST_MYSQL_URL`; CI sets `PAIRCHAT_REQUIRE_MYSQL=1` and the URL.

use serde_json::{json, Value};

use crate::health::http_get;
use crate::helpers::{available_or_skip, mysql_server_url, spawn_app_on, wait_for, TestDb};
use crate::proxy::Proxy;

/// The MariaDB server URL, or `None` after printing why the test skips.
pub fn mariadb_or_skip(test: &str) -> Option<String> {
    let url = mysql_server_url();
    let how = "set TEST_MYSQL_URL (and build with --features mysql) to run it";
    available_or_skip(url.is_some(), "PAIRCHAT_REQUIRE_MYSQL", test, how);
    url
}

#[actix_rt::test]
async fn the_suite_runs_on_mariadb_when_asked() {
    let Some(_) = mariadb_or_skip("the_suite_runs_on_mariadb_when_asked") else {
        return;
    };
    let db = TestDb::new();
    assert!(db.url.starts_with("mysql://"), "{}", db.url);
}

#[actix_rt::test]
async fn while_the_database_is_down_chats_go_on_and_new_requests_are_refused_until_it_returns() {
    let Some(server) = mariadb_or_skip("database outage") else {
        return;
    };
    let target = server
        .rsplit('@')
        .next()
        .unwrap_or("127.0.0.1:3306")
        .to_owned();
    let proxy = Proxy::start(target).await;
    let mut db = TestDb::new();
    let name = db.url.rsplit('/').next().unwrap_or_default().to_owned();
    db.url = format!("mysql://root@{}/{name}", proxy.address);
    let app = spawn_app_on(db, |_| {}).await;

    let (mut a, mut b) = app.pair().await;
    let (status, body) = http_get(app.address, "/healthz").await;
    let node = app.hub.next_id().rid() >> 32;
    assert_eq!(
        (status, health_body(&body)),
        (
            200,
            json!({"status": "ok", "database": "ok", "node": node, "redis": "off"})
        )
    );

    proxy.cut();
    // Existing chats relay from memory.
    a.say("still talking").await;
    assert_eq!(b.recv().await["message"], "still talking");
    // New pairing is refused, clearly, and the health check says so.
    let mut c = app.client().await;
    c.request().await;
    c.expect_error("unavailable").await;
    let (status, body) = http_get(app.address, "/healthz").await;
    assert_eq!(
        (status, health_body(&body)),
        (
            503,
            json!({"status": "unavailable", "database": "unreachable", "node": node, "redis": "off"})
        )
    );
    // A chat that ends during the outage is cleaned up once the database is back.
    a.leave().await;
    assert_eq!(b.expect_close().await.reason, "partner left");

    proxy.restore();
    wait_for("health to recover", || async {
        http_get(app.address, "/healthz").await.0 == 200
    })
    .await;
    c.request().await;
    c.expect_type("waiting").await;
    let mut d = app.client().await;
    d.request().await;
    d.expect_type("response").await;
    c.expect_type("response").await;
    wait_for(
        "rows of the chat that ended in the outage to go",
        || async { app.chats().await.len() == 1 },
    )
    .await;
}

fn health_body(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("/healthz body {body:?} is not JSON: {e}"))
}
