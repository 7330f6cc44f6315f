//! Bans: a banned visitor (by its token, or by its address whatever token it sends) is told
//! `banned` with the reason, the expiry and the appeal text on connecting, and for every
//! request; a ban made by another process holds within seconds, survives a restart and ends
//! on time.

use pairchat::chat::ids::VisitorKey;
use pairchat::config::Settings;
use pairchat::moderation::bans::{Ban, BanKind, NewBan};
use pairchat::moderation::{Moderation, ModerationConfig};
use pairchat::routes::client::address_of;
use pairchat::secret::SecretKey;
use serde_json::Value;
use std::path::Path;

use crate::helpers::{spawn_app_on, wait_for, Client, TestApp, TestDb};

const APPEAL: &str = "Write to appeals@example.com";

/// The keys the server knows a visitor by: `(visitor key of ?visitor=TOKEN, address key of
/// 127.0.0.1)`, under the key in `key_file`.
pub fn keys_of(key_file: &Path, token: &str) -> (VisitorKey, VisitorKey) {
    let key = SecretKey::load_or_create(key_file).expect("key");
    let visitor = VisitorKey::named(key.hash(b"token:", token.as_bytes()));
    let address = address_of("127.0.0.1".parse().expect("ip"), &key);
    (visitor, address)
}

/// A server on `db` with the key in `key_file` and the appeal text set.
pub async fn serve(db: TestDb, key_file: &Path, more: impl FnOnce(&mut Settings)) -> TestApp {
    let key_file = key_file.to_owned();
    spawn_app_on(db, move |s| {
        s.secret_key_file = Some(key_file);
        s.moderation.ban_appeal = Some(APPEAL.into());
        more(s);
    })
    .await
}

/// Bans as an admin on another process would: straight into the shared database.
pub async fn ban(app: &TestApp, kind: BanKind, target: VisitorKey, duration_ms: i64) -> Ban {
    let moderation = Moderation::new(app.pool.clone(), 0, ModerationConfig::default());
    tokio::task::spawn_blocking(move || {
        moderation.add_ban(NewBan {
            kind,
            target: target.as_i64(),
            reason: "Spamming links".into(),
            duration_ms,
            created_by: "ann".into(),
        })
    })
    .await
    .expect("blocking task")
    .expect("ban stored")
}

/// What a request on a fresh connection as `token` gets: `banned` (the frame) or `waiting`
/// (the connection is closed again).
pub async fn request_as(app: &TestApp, token: &str) -> Value {
    let mut c = Client::connect(&format!("{}?visitor={token}", app.ws_url())).await;
    c.request().await;
    let mut frame = c.recv().await;
    if frame["error"] == "banned" {
        // Told on connecting, and again for the request.
        let again = c.expect_error("banned").await;
        assert_eq!(again["until"], frame["until"]);
        c.request().await;
        frame = c.expect_error("banned").await;
    }
    c.leave().await;
    frame
}

async fn wait_until_banned(app: &TestApp, token: &str) -> Value {
    let deadline = tokio::time::Instant::now() + crate::helpers::PATIENCE;
    loop {
        let seen = request_as(app, token).await;
        if seen["error"] == "banned" {
            return seen;
        }
        assert!(tokio::time::Instant::now() < deadline, "not banned: {seen}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[actix_rt::test]
async fn a_visitor_banned_elsewhere_is_refused_with_the_reason_expiry_and_appeal() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("pairchat.key");
    let app = serve(TestDb::new(), &key_file, |_| {}).await;
    let (visitor, _) = keys_of(&key_file, "banned-one");
    assert_eq!(request_as(&app, "banned-one").await["type"], "waiting");

    let ban = ban(&app, BanKind::Visitor, visitor, 3_600_000).await;
    let frame = wait_until_banned(&app, "banned-one").await;
    assert_eq!(frame["reason"], "Spamming links");
    assert_eq!(frame["until_ms"], ban.expires_ms);
    assert!(frame["until"].as_str().unwrap().ends_with('Z'), "{frame}");
    assert_eq!(frame["appeal"], APPEAL);
    let detail = frame["detail"].as_str().unwrap();
    assert!(
        detail.contains("Spamming links") && detail.contains(APPEAL),
        "{detail}"
    );

    // Another visitor from the same address is not held by a visitor ban.
    assert_eq!(request_as(&app, "someone-else").await["type"], "waiting");

    // Lifted elsewhere: free again within the reload.
    let moderation = Moderation::new(app.pool.clone(), 0, ModerationConfig::default());
    let lifted = tokio::task::spawn_blocking(move || moderation.lift_ban(ban.id));
    assert!(lifted.await.unwrap().unwrap());
    wait_for("the lifted ban to end", || async {
        request_as(&app, "banned-one").await["type"] == "waiting"
    })
    .await;
}

#[actix_rt::test]
async fn an_address_ban_holds_every_token_from_that_address() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("pairchat.key");
    let app = serve(TestDb::new(), &key_file, |_| {}).await;
    let (_, address) = keys_of(&key_file, "first-token");
    ban(&app, BanKind::Address, address, 3_600_000).await;
    wait_until_banned(&app, "first-token").await;
    let other = request_as(&app, "a-different-token").await;
    assert_eq!(other["error"], "banned", "{other}");
}

#[actix_rt::test]
async fn a_ban_holds_across_a_restart_and_ends_on_time() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("pairchat.key");
    let db = TestDb::new();
    let same_db = db.alias();
    let first = serve(db, &key_file, |_| {}).await;
    let (visitor, _) = keys_of(&key_file, "short-ban");
    let ban = ban(&first, BanKind::Visitor, visitor, 6_000).await;
    wait_until_banned(&first, "short-ban").await;

    // A server started afterwards (a restart, another process) holds it from the start.
    let second = serve(same_db, &key_file, |s| s.force = true).await;
    assert_eq!(request_as(&second, "short-ban").await["error"], "banned");

    // And it ends on time, on both.
    wait_for("the ban to expire", || async {
        request_as(&second, "short-ban").await["type"] == "waiting"
    })
    .await;
    let now = pairchat::moderation::now_ms();
    assert!(
        now >= ban.expires_ms,
        "lifted {} ms early",
        ban.expires_ms - now
    );
    assert_eq!(request_as(&first, "short-ban").await["type"], "waiting");
}
