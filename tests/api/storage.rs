//! The chat rows are the record: what they hold while visitors wait, talk and leave.

use pairchat::db::{self, queries};

use crate::helpers::{spawn_app, spawn_app_on, wait_for, TestDb};

#[actix_rt::test]
async fn rows_follow_waiting_pairing_and_leaving() {
    let app = spawn_app().await;
    let mut a = app.client().await;
    a.request().await;
    a.expect_type("waiting").await;
    let chats = app.chats().await;
    assert_eq!(chats.len(), 1);
    let (waiting_chat, completed, members) = chats[0].clone();
    assert!(!completed);
    assert_eq!(members.len(), 1);

    let mut b = app.client().await;
    b.request().await;
    b.expect_type("response").await;
    a.expect_type("response").await;
    let chats = app.chats().await;
    assert_eq!(chats.len(), 1);
    let (chat, completed, members) = chats[0].clone();
    assert_eq!(
        chat, waiting_chat,
        "the second visitor joined the waiting chat"
    );
    assert!(completed);
    assert_eq!(members.len(), 2);
    assert_ne!(members[0], members[1]);

    b.leave().await;
    a.expect_close().await;
    app.wait_until_empty().await;
}

#[actix_rt::test]
async fn connections_that_never_ask_leave_no_rows() {
    let app = spawn_app().await;
    let a = app.client().await;
    wait_for("the hub to see the connection", || async {
        app.stats().await.connections == 1
    })
    .await;
    assert!(app.chats().await.is_empty());
    a.leave().await;
    app.wait_until_empty().await;
}

#[actix_rt::test]
async fn start_up_clears_rows_left_by_a_crashed_process() {
    let db = TestDb::new();
    let url = db.url.clone();
    tokio::task::spawn_blocking(move || {
        let pool = db::build_pool(&url, 1).expect("pool");
        let mut conn = db::get(&pool).expect("connection");
        db::run_migrations(&mut conn).expect("migrations");
        queries::write_transaction(&mut conn, |c| {
            queries::request(c, 11, 11, None)?; // a ghost waiting
            queries::request(c, 12, 12, None)?; // a ghost pair
            queries::request(c, 13, 13, None)
        })
        .expect("ghost rows");
    })
    .await
    .expect("blocking task");

    let app = spawn_app_on(db, |_| {}).await;
    assert!(app.chats().await.is_empty(), "stale rows are gone");
    // A new visitor waits rather than pairing with a ghost.
    let mut a = app.client().await;
    a.request().await;
    a.expect_type("waiting").await;
}
