//! Reports: in a live chat (the row holds the chat's last 20 messages, both sides, and both
//! keys of the reported visitor; the partner sees an ordinary `partner left`), refused when
//! malformed, across two processes, and the automatic ban after three reporters.

use pairchat::moderation::reports::{Report, Side};
use pairchat::moderation::{Moderation, ModerationConfig};
use serde_json::json;

use crate::bans::{keys_of, request_as, serve};
use crate::helpers::{without_flood_limits, Client, TestApp, TestDb};

/// The reports stored, newest first, as the admin pages read them.
pub async fn stored_reports(pool: &pairchat::db::DbPool) -> Vec<Report> {
    let moderation = Moderation::new(pool.clone(), 0, ModerationConfig::default());
    tokio::task::spawn_blocking(move || moderation.open_reports(100))
        .await
        .unwrap()
        .unwrap()
}

async fn visitor(app: &TestApp, token: &str) -> Client {
    Client::connect(&format!("{}?visitor={token}", app.ws_url())).await
}

/// The report names `(reported, reporter)` (page tokens) by their keys, and holds `lines`.
fn assert_report(
    r: &Report,
    key_file: &std::path::Path,
    who: (&str, &str),
    lines: &[(Side, &str)],
) {
    let (reported, address) = keys_of(key_file, who.0);
    let (reporter, _) = keys_of(key_file, who.1);
    assert_eq!(
        (r.reported, r.reported_address, r.reporter),
        (reported.as_i64(), address.as_i64(), reporter.as_i64())
    );
    let got: Vec<(Side, &str)> = r
        .evidence
        .iter()
        .map(|l| (l.from, l.message.as_str()))
        .collect();
    assert_eq!(got, lines);
}

/// `first` waits, `second` arrives and finds it.
async fn meet(first: &mut Client, second: &mut Client) {
    first.request().await;
    first.expect_type("waiting").await;
    second.request().await;
    second.expect_type("response").await;
    first.expect_type("response").await;
}

/// `from` says `text`; its receipt and the partner's copy arrive.
async fn talk(from: &mut Client, to: &mut Client, text: &str) {
    from.say(text).await;
    assert_eq!(from.expect_type("message").await["from"], "me");
    assert_eq!(to.expect_type("message").await["message"], text);
}

/// Reports the partner: `reported`, then the close `reported`.
async fn report(c: &mut Client, reason: &str, note: &str) {
    c.send_json(json!({"type": "report", "reason": reason, "note": note}))
        .await;
    c.expect_type("reported").await;
    let closed = c.expect_close().await;
    assert_eq!((closed.code, closed.reason.as_str()), (1000, "reported"));
}

#[actix_rt::test]
async fn a_report_in_a_chat_stores_the_last_twenty_messages_and_the_partner_sees_partner_left() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("pairchat.key");
    let app = serve(TestDb::new(), &key_file, without_flood_limits).await;
    let mut alice = visitor(&app, "alice").await;
    let mut bob = visitor(&app, "bob").await;
    meet(&mut alice, &mut bob).await;
    for i in 0..25 {
        if i % 2 == 0 {
            talk(&mut alice, &mut bob, &format!("m{i}")).await;
        } else {
            talk(&mut bob, &mut alice, &format!("m{i}")).await;
        }
    }
    report(&mut bob, "harassment", "kept insulting me").await;
    let closed = alice.expect_close().await;
    assert_eq!(
        (closed.code, closed.reason.as_str()),
        (1000, "partner left")
    );

    let reports = stored_reports(&app.pool).await;
    assert_eq!(reports.len(), 1, "{reports:?}");
    let r = &reports[0];
    let (alice_key, address) = keys_of(&key_file, "alice");
    let (bob_key, _) = keys_of(&key_file, "bob");
    assert_eq!(
        (r.reason.as_str(), r.note.as_str()),
        ("harassment", "kept insulting me")
    );
    assert_eq!(r.reported, alice_key.as_i64());
    assert_eq!(r.reported_address, address.as_i64());
    assert_eq!(r.reporter, bob_key.as_i64());
    let texts: Vec<&str> = r.evidence.iter().map(|l| l.message.as_str()).collect();
    let expected: Vec<String> = (5..25).map(|i| format!("m{i}")).collect();
    assert_eq!(texts, expected, "the last 20, oldest first");
    for (i, line) in (5..25).zip(&r.evidence) {
        // Even lines are alice's (the reported), odd ones bob's (the reporter).
        let side = if i % 2 == 0 {
            Side::Reported
        } else {
            Side::Reporter
        };
        assert_eq!(line.from, side, "m{i}");
    }
    assert!((pairchat::moderation::now_ms() - r.created_ms).abs() < 60_000);
}

#[actix_rt::test]
async fn malformed_reports_are_refused_and_the_chat_goes_on() {
    let app = crate::helpers::spawn_app_with(without_flood_limits).await;
    let mut idle = app.client().await;
    idle.send_json(json!({"type": "report", "reason": "spam"}))
        .await;
    idle.expect_error("not_paired").await;
    let (mut a, mut b) = app.pair().await;
    a.send_json(json!({"type": "report", "reason": "rude"}))
        .await;
    a.expect_error("bad_report").await;
    a.send_json(json!({"type": "report"})).await;
    a.expect_error("bad_report").await;
    let long = "x".repeat(501);
    a.send_json(json!({"type": "report", "reason": "spam", "note": long}))
        .await;
    let refused = a.expect_error("bad_report").await;
    assert!(
        refused["detail"].as_str().unwrap().contains("500"),
        "{refused}"
    );
    // 500 characters of 2 bytes each are fine (the limit is characters).
    talk(&mut a, &mut b, "still here").await;
    a.send_json(json!({"type": "report", "reason": "other", "note": "é".repeat(500)}))
        .await;
    a.expect_type("reported").await;
    assert_eq!(b.expect_close().await.reason, "partner left");
    assert_eq!(stored_reports(&app.pool).await.len(), 1);
}

/// `target` meets a fresh reporter `reporter` on `app` and is reported by it.
async fn reported_by(app: &TestApp, target: &str, reporter: &str) {
    let mut t = visitor(app, target).await;
    let mut r = visitor(app, reporter).await;
    meet(&mut t, &mut r).await;
    talk(&mut t, &mut r, "buy my stuff").await;
    report(&mut r, "spam", "").await;
    assert_eq!(t.expect_close().await.reason, "partner left");
}

#[actix_rt::test]
async fn three_reporters_ban_a_visitor_on_every_process_for_an_hour() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("pairchat.key");
    let db = TestDb::new();
    let same_db = db.alias();
    let app = serve(db, &key_file, |s| {
        without_flood_limits(s);
        // r2 meets the spammer twice in a row.
        s.rematch_cooldown = std::time::Duration::ZERO;
    })
    .await;
    reported_by(&app, "spammer", "r1").await;
    reported_by(&app, "spammer", "r2").await;
    // Two reports from one reporter count once.
    reported_by(&app, "spammer", "r2").await;
    assert_eq!(request_as(&app, "spammer").await["type"], "waiting");
    reported_by(&app, "spammer", "r3").await;

    // Banned at once on this process: told on connecting, and for each request.
    let frame = request_as(&app, "spammer").await;
    assert_eq!(frame["error"], "banned", "{frame}");
    let until = frame["until_ms"].as_i64().unwrap();
    let hour = until - pairchat::moderation::now_ms();
    assert!((3_500_000..=3_600_000).contains(&hour), "{hour} ms");
    assert!(frame["reason"].as_str().unwrap().contains('3'), "{frame}");
    // The reporters are not.
    assert_eq!(request_as(&app, "r1").await["type"], "waiting");

    // Another process on the database (or a restart) holds it too.
    let other = serve(same_db, &key_file, |s| s.force = true).await;
    assert_eq!(request_as(&other, "spammer").await["error"], "banned");
    let (spammer, _) = keys_of(&key_file, "spammer");
    let reports = stored_reports(&app.pool).await;
    assert_eq!(reports.len(), 4);
    assert!(reports.iter().all(|r| r.reported == spammer.as_i64()));
}

#[actix_rt::test]
async fn automatic_bans_are_off_with_zero() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("pairchat.key");
    let app = serve(TestDb::new(), &key_file, |s| {
        without_flood_limits(s);
        s.moderation.auto_ban_reports = 0;
    })
    .await;
    for reporter in ["r1", "r2", "r3"] {
        reported_by(&app, "spammer", reporter).await;
    }
    assert_eq!(request_as(&app, "spammer").await["type"], "waiting");
}

#[actix_rt::test]
async fn a_report_across_two_processes_names_the_remote_partner() {
    let test = "report across processes";
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("pairchat.key");
    let key_flag = key_file.to_str().unwrap().to_owned();
    let extra = ["--secret-key-file", key_flag.as_str()];
    let Some(nodes) = crate::cluster::Nodes::start_or_skip(test, 2, &extra).await else {
        return;
    };
    let token = |url: String, t: &str| format!("{url}?visitor={t}");
    let (mut waiter, mut reporter) = crate::cluster::pair_across(
        &token(nodes.url(0), "far-away"),
        &token(nodes.url(1), "reporter"),
    )
    .await;
    talk(&mut waiter, &mut reporter, "hello from 0").await;
    talk(&mut reporter, &mut waiter, "hello from 1").await;
    talk(&mut waiter, &mut reporter, "rude words").await;
    report(&mut reporter, "harassment", "").await;
    assert_eq!(waiter.expect_close().await.reason, "partner left");

    let pool = nodes.db.migrated_pool(1);
    let reports = stored_reports(&pool).await;
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert_report(
        &reports[0],
        &key_file,
        ("far-away", "reporter"),
        &[
            (Side::Reported, "hello from 0"),
            (Side::Reporter, "hello from 1"),
            (Side::Reported, "rude words"),
        ],
    );
}

/// A `POST /report` with `body` (sent as text/plain, as the page does) and extra header lines:
/// `(status, body as JSON)`.
pub async fn post_report(
    address: std::net::SocketAddr,
    body: &serde_json::Value,
    extra: &str,
) -> (u16, serde_json::Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let body = body.to_string();
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let request = format!(
        "POST /report HTTP/1.1\r\nHost: {address}\r\n{extra}Content-Type: text/plain\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(crate::helpers::PATIENCE, stream.read_to_end(&mut response))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&response);
    let status = text[9..12].parse().unwrap();
    let json = text
        .split_once("\r\n\r\n")
        .and_then(|(_, b)| serde_json::from_str(b).ok())
        .unwrap_or_default();
    (status, json)
}

/// Ends the chat with `leave`: `ended` (with its sealed report) then the close `bye`.
async fn leave(c: &mut Client) -> String {
    c.send_json(json!({"type": "leave"})).await;
    let ended = c.expect_type("ended").await;
    let closed = c.expect_close().await;
    assert_eq!((closed.code, closed.reason.as_str()), (1000, "bye"));
    ended["report"]
        .as_str()
        .expect("a sealed report")
        .to_owned()
}

#[actix_rt::test]
async fn after_a_chat_either_side_may_still_report_once_on_any_process() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("pairchat.key");
    let db = TestDb::new();
    let same_db = db.alias();
    let first = serve(db, &key_file, without_flood_limits).await;
    let second = serve(same_db, &key_file, |s| s.force = true).await;
    let mut alice = visitor(&first, "alice").await;
    let mut bob = visitor(&first, "bob").await;
    meet(&mut alice, &mut bob).await;
    talk(&mut alice, &mut bob, "nice to meet you").await;
    talk(&mut bob, &mut alice, "send pictures").await;
    // Bob leaves: he gets his own sealed report, and alice gets hers before `partner left`.
    let bobs = leave(&mut bob).await;
    let ended = alice.expect_type("ended").await;
    assert_eq!(alice.expect_close().await.reason, "partner left");
    let alices = ended["report"].as_str().unwrap().to_owned();
    assert!(!alices.contains("send pictures"), "sealed, not readable");

    // Alice reports from the closed view, on the other process.
    let origin = format!("Origin: http://{}\r\n", second.address);
    let body = json!({"report": alices, "reason": "sexual", "note": "asked for pictures"});
    let (status, answer) = post_report(second.address, &body, &origin).await;
    assert_eq!(
        (status, answer["type"].as_str()),
        (200, Some("reported")),
        "{answer}"
    );
    let reports = stored_reports(&first.pool).await;
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].reason, "sexual");
    assert_report(
        &reports[0],
        &key_file,
        ("bob", "alice"),
        &[
            (Side::Reporter, "nice to meet you"),
            (Side::Reported, "send pictures"),
        ],
    );
    let (alice_key, _) = keys_of(&key_file, "alice");

    // Once per chat and side; bob's own report of alice is his to make.
    let (status, answer) = post_report(first.address, &body, "").await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (409, Some("already_reported"))
    );
    let (status, _) = post_report(
        first.address,
        &json!({"report": bobs, "reason": "spam"}),
        "",
    )
    .await;
    assert_eq!(status, 200);
    let reports = stored_reports(&first.pool).await;
    assert_eq!(reports.len(), 2);
    assert!(reports.iter().any(|r| r.reported == alice_key.as_i64()));
}

#[actix_rt::test]
async fn reports_after_a_chat_are_refused_when_forged_malformed_or_from_another_site() {
    let app = crate::helpers::spawn_app().await;
    let (mut a, mut b) = app.pair().await;
    let token = leave(&mut a).await;
    let ended = b.expect_type("ended").await;
    assert!(ended["report"].is_string());
    let mut forged = token.clone().into_bytes();
    let i = forged.len() / 2;
    forged[i] = if forged[i] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    let cases = [
        (
            json!({"report": forged, "reason": "spam"}),
            "",
            400,
            "bad_token",
        ),
        (
            json!({"report": "", "reason": "spam"}),
            "",
            400,
            "bad_token",
        ),
        (
            json!({"report": token, "reason": "rude"}),
            "",
            400,
            "bad_report",
        ),
        (
            json!({"report": token, "reason": "spam", "note": "x".repeat(501)}),
            "",
            400,
            "bad_report",
        ),
        (json!({"nothing": 1}), "", 400, "bad_frame"),
        (
            json!({"report": token, "reason": "spam"}),
            "Origin: https://elsewhere.example\r\n",
            403,
            "origin_not_allowed",
        ),
    ];
    for (body, extra, status, code) in cases {
        let (got, answer) = post_report(app.address, &body, extra).await;
        assert_eq!(
            (got, answer["error"].as_str()),
            (status, Some(code)),
            "{body}"
        );
    }
    assert!(stored_reports(&app.pool).await.is_empty());
    // Five from one address at once, then one every 10 s: the sixth waits.
    let body = json!({"report": token, "reason": "spam"});
    let (got, answer) = post_report(app.address, &body, "").await;
    assert_eq!((got, answer["error"].as_str()), (429, Some("rate_limited")));
}

#[actix_rt::test]
async fn reports_older_than_the_retention_and_long_ended_bans_are_swept() {
    use pairchat::db::moderation::{insert_ban, insert_report, BanRow, ReportRow};
    const DAY: i64 = 86_400_000;
    let db = TestDb::new();
    let pool = db.migrated_pool(1);
    let now = pairchat::moderation::now_ms();
    let report = |id: i64, age: i64| ReportRow {
        id,
        created_ms: now - age,
        node: 1,
        reason: "spam".into(),
        note: String::new(),
        reported: 1,
        reported_address: 2,
        reporter: 3,
        evidence: "[]".into(),
        dismissed: false,
    };
    let ban = |id: i64, expired: i64| BanRow {
        id,
        kind: "visitor".into(),
        target: 1,
        reason: "spam".into(),
        created_ms: now - expired - DAY,
        expires_ms: now - expired,
        created_by: "auto".into(),
        lifted: false,
    };
    {
        let mut conn = pairchat::db::get(&pool).unwrap();
        insert_report(&mut conn, &report(1, 2 * DAY)).unwrap();
        insert_report(&mut conn, &report(2, DAY / 2)).unwrap();
        insert_ban(&mut conn, &ban(3, 2 * DAY)).unwrap();
        insert_ban(&mut conn, &ban(4, DAY / 2)).unwrap();
    }
    let app = crate::helpers::spawn_app_on(db, |s| {
        s.moderation.report_retention = std::time::Duration::from_secs(86_400);
    })
    .await;
    crate::helpers::wait_for("the sweep", || async {
        stored_reports(&app.pool).await.len() == 1
    })
    .await;
    assert_eq!(stored_reports(&app.pool).await[0].id, 2);
    let pool = app.pool.clone();
    let bans = tokio::task::spawn_blocking(move || {
        use diesel::prelude::*;
        use pairchat::db::schema::ban;
        let mut conn = pairchat::db::get(&pool).unwrap();
        ban::table.select(ban::id).load::<i64>(&mut conn).unwrap()
    })
    .await
    .unwrap();
    assert_eq!(
        bans,
        [4],
        "the ban that ended 2 days ago is gone, the one of 12 hours ago kept"
    );
}

#[actix_rt::test]
async fn a_sealed_report_past_its_ten_minutes_is_refused() {
    use pairchat::moderation::seal::{Sealed, Sealer};
    use pairchat::moderation::SealedRefused;
    let db = TestDb::new();
    let pool = db.migrated_pool(1);
    let key = pairchat::secret::SecretKey::random().unwrap();
    let metrics = std::sync::Arc::new(pairchat::metrics::Metrics::new(0));
    let moderation = Moderation::for_server(pool, 0, ModerationConfig::default(), &key, metrics);
    let sealed = |until_ms| Sealed {
        reported: 1,
        reported_address: 2,
        reporter: 3,
        evidence: vec![],
        until_ms,
    };
    let now = pairchat::moderation::now_ms();
    let stale = Sealer::new(&key).seal(&sealed(now - 1)).unwrap();
    let fresh = Sealer::new(&key).seal(&sealed(now + 60_000)).unwrap();
    let outcome = tokio::task::spawn_blocking(move || {
        (
            moderation.file_sealed(&stale, "spam", None),
            moderation.file_sealed(&fresh, "spam", None),
        )
    })
    .await
    .unwrap();
    assert!(
        matches!(outcome.0, Err(SealedRefused::BadToken)),
        "{:?}",
        outcome.0
    );
    assert!(matches!(outcome.1, Ok(None)), "{:?}", outcome.1);
}
