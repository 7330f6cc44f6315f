//! Common interests and the same language, over real sockets (on SQLite, or MariaDB when
//! `TEST_MYSQL_URL` is set), and across two processes: who is paired with whom, what
//! `response` says they share, the fallback time (a timer, no new arrival needed), asking not
//! to fall back, and the rule that a visitor without interests never takes a waiting visitor's
//! chance of a common interest unless nobody else waits.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::cluster::Nodes;
use crate::helpers::{spawn_app_with, Client, TestApp};

/// Longer than any test: nobody falls back unless the test says so.
const NEVER: Duration = Duration::from_secs(3_600);

async fn app(fallback: Duration) -> TestApp {
    spawn_app_with(|s| s.interest_fallback = fallback).await
}

/// A new visitor on `url` asking with `fields` (interests, lang, fallback).
async fn ask(url: &str, fields: Value) -> Client {
    let mut c = Client::connect(url).await;
    let mut request = json!({"type": "request"});
    if let (Some(r), Some(f)) = (request.as_object_mut(), fields.as_object()) {
        r.extend(f.clone());
    }
    c.send_json(request).await;
    c
}

/// A new visitor who is told to wait.
async fn waits(url: &str, fields: Value) -> Client {
    let mut c = ask(url, fields).await;
    c.expect_type("waiting").await;
    c
}

/// The `common` of the `response` that `c` gets next.
async fn paired(c: &mut Client) -> Value {
    c.expect_type("response").await["common"].clone()
}

/// A newcomer on `url` asking with `fields` is paired with `waiter`, both told they share
/// `common`.
async fn meets(url: &str, fields: Value, waiter: &mut Client, common: Value) -> Client {
    let mut c = ask(url, fields).await;
    assert_eq!(paired(&mut c).await, common);
    assert_eq!(paired(waiter).await, common);
    c
}

/// The answer to a request that may meet a visitor on another process: with several
/// matchmakers `waiting` may come first (see `cluster`), then the `response`.
async fn answer(c: &mut Client) -> Value {
    let first = c.recv().await;
    if first["type"] == "waiting" {
        c.expect_type("response").await
    } else {
        first
    }
}

/// Sends a message from `a` and sees it reach `b`: they are partners.
async fn talk(a: &mut Client, b: &mut Client) {
    a.say("hello").await;
    assert_eq!(a.expect_type("message").await["from"], "me");
    assert_eq!(b.expect_type("message").await["message"], "hello");
}

#[actix_rt::test]
async fn a_visitor_is_paired_with_the_longest_waiting_who_shares_an_interest() {
    let app = app(NEVER).await;
    let url = app.ws_url();
    let _cats = waits(&url, json!({"interests": ["cats"]})).await;
    let mut music = waits(&url, json!({"interests": ["Music"]})).await;
    let mut go = waits(&url, json!({"interests": ["go"]})).await;
    // Shares "go" with the third and "music" with the second, who has waited longer.
    let mut both = meets(
        &url,
        json!({"interests": ["GO ", "MUSIC", "chess"]}),
        &mut music,
        json!(["music"]),
    )
    .await;
    talk(&mut both, &mut music).await;
    // The one who shares "go" still waits for its own match.
    let _go_too = meets(&url, json!({"interests": ["go"]}), &mut go, json!(["go"])).await;
    app.assert_row_invariants().await;
}

#[actix_rt::test]
async fn bad_interests_are_refused_and_nothing_is_queued() {
    let app = app(NEVER).await;
    let url = app.ws_url();
    let mut c = Client::connect(&url).await;
    for bad in [
        json!(["a", "b", "c", "d", "e", "f"]),
        json!(["x".repeat(33)]),
        json!(["  "]),
        json!([7]),
        json!("music"),
    ] {
        c.send_json(json!({"type": "request", "interests": bad}))
            .await;
        c.expect_error("bad_interests").await;
    }
    // Nothing was queued: the next visitor waits, and this one may still ask (six given, five
    // once duplicates are merged), and waits for a common interest (not `already_waiting`).
    let _next = waits(&url, json!({})).await;
    c.send_json(json!({"type": "request", "interests": ["a", "A", "b", "c", "d", "e"]}))
        .await;
    c.expect_type("waiting").await;
    let _e = meets(&url, json!({"interests": ["E"]}), &mut c, json!(["e"])).await;
}

#[actix_rt::test]
async fn one_without_interests_never_takes_a_waiting_visitors_chance_unless_nobody_else_waits() {
    let app = app(NEVER).await;
    let url = app.ws_url();
    // Alone in the queue, one waiting for a common interest is taken at once.
    let mut music = waits(&url, json!({"interests": ["music"]})).await;
    let mut plain = meets(&url, json!({}), &mut music, json!([])).await;
    talk(&mut plain, &mut music).await;

    // Two wait for a common interest: one without interests takes neither, and waits...
    let mut music = waits(&url, json!({"interests": ["music"]})).await;
    let mut go = waits(&url, json!({"interests": ["go"]})).await;
    let mut first = waits(&url, json!({})).await;
    // ...for the next one without interests, who takes it rather than their chance...
    let mut second = meets(&url, json!({}), &mut first, json!([])).await;
    talk(&mut second, &mut first).await;
    // ...which is still theirs.
    let _music_too = meets(
        &url,
        json!({"interests": ["music"]}),
        &mut music,
        json!(["music"]),
    )
    .await;
    let _go_too = meets(&url, json!({"interests": ["go"]}), &mut go, json!(["go"])).await;
}

#[actix_rt::test]
async fn one_with_interests_waits_rather_than_take_one_without() {
    let app = app(NEVER).await;
    let url = app.ws_url();
    let mut plain = waits(&url, json!({})).await;
    let mut music = waits(&url, json!({"interests": ["music"]})).await;
    // The next without interests takes the one who minds nobody, not the one who waits for
    // a common interest.
    let mut other = meets(&url, json!({}), &mut plain, json!([])).await;
    talk(&mut other, &mut plain).await;
    let _music_too = meets(
        &url,
        json!({"interests": ["music"]}),
        &mut music,
        json!(["music"]),
    )
    .await;
}

#[actix_rt::test]
async fn the_same_language_is_preferred() {
    let app = app(NEVER).await;
    let url = app.ws_url();
    let mut ru = waits(&url, json!({"lang": "ru"})).await;
    let mut en = waits(&url, json!({"lang": "en"})).await;
    let mut zh = waits(&url, json!({"lang": "zh-CN", "interests": ["go"]})).await;
    let mut en_gb = meets(&url, json!({"lang": "en-GB"}), &mut en, json!([])).await;
    talk(&mut en_gb, &mut en).await;
    let mut ru_too = ask(&url, json!({"lang": "ru", "interests": ["chess"]})).await;
    // A language and no common interest: the newcomer with interests waits for one...
    ru_too.expect_type("waiting").await;
    // ...and one of the same language without interests takes the one who has waited longest.
    let _ru_plain = meets(&url, json!({"lang": "ru"}), &mut ru, json!([])).await;
    let _zh_go = meets(
        &url,
        json!({"lang": "zh", "interests": ["go", "chess"]}),
        &mut zh,
        json!(["go"]),
    )
    .await;
    drop(ru_too);
}

#[actix_rt::test]
async fn a_waiting_visitor_takes_anyone_at_its_fallback_time_without_a_new_arrival() {
    let fallback = Duration::from_secs(1);
    let app = app(fallback).await;
    let url = app.ws_url();
    let asked = Instant::now();
    let mut music = waits(&url, json!({"interests": ["music"], "lang": "en"})).await;
    let mut go = waits(&url, json!({"interests": ["go"], "lang": "ru"})).await;
    // Nobody else comes: at the first one's fallback time it takes the other.
    assert_eq!(paired(&mut music).await, json!([]));
    assert_eq!(paired(&mut go).await, json!([]));
    let took = asked.elapsed();
    assert!(
        took >= fallback,
        "paired after {took:?}, before the fallback time"
    );
    // Within about a second of it (generous: the machine is shared).
    assert!(
        took < fallback + Duration::from_secs(4),
        "paired only after {took:?}"
    );
    talk(&mut go, &mut music).await;
}

#[actix_rt::test]
async fn a_visitor_who_asked_not_to_fall_back_waits_for_a_common_interest() {
    let fallback = Duration::from_secs(1);
    let app = app(fallback).await;
    let url = app.ws_url();
    let mut music = waits(&url, json!({"interests": ["music"], "fallback": false})).await;
    let mut go = waits(&url, json!({"interests": ["go"], "fallback": false})).await;
    // Well past the fallback time, both still wait (a plain newcomer finds two waiting for a
    // common interest, and waits too)...
    tokio::time::sleep(fallback * 3).await;
    let _plain = waits(&url, json!({})).await;
    // ...until someone shares theirs.
    let _music_too = meets(
        &url,
        json!({"interests": ["music"]}),
        &mut music,
        json!(["music"]),
    )
    .await;
    let _go_too = meets(&url, json!({"interests": ["go"]}), &mut go, json!(["go"])).await;
}

#[actix_rt::test]
async fn visitors_on_two_processes_meet_on_a_shared_interest() {
    let Some(nodes) = Nodes::start_or_skip(
        "interests across processes",
        2,
        &["--interest-fallback-secs", "3600"],
    )
    .await
    else {
        return;
    };
    let (one, two) = (nodes.url(0), nodes.url(1));
    let mut music = waits(&one, json!({"interests": ["music"], "lang": "en"})).await;
    let mut go = waits(&two, json!({"interests": ["go"], "lang": "en"})).await;
    // On the first process, sharing "go" with the one waiting on the second.
    let mut go_too = ask(&one, json!({"interests": ["chess", "go"], "lang": "en"})).await;
    let first = answer(&mut go_too).await;
    assert_eq!(
        (&first["type"], &first["common"]),
        (&json!("response"), &json!(["go"]))
    );
    assert_eq!(paired(&mut go).await, json!(["go"]));
    talk(&mut go_too, &mut go).await;
    talk(&mut go, &mut go_too).await;
    // On the second process, sharing "music" with the one waiting on the first.
    let mut music_too = ask(&two, json!({"interests": ["music"], "lang": "en"})).await;
    let first = answer(&mut music_too).await;
    assert_eq!(first["common"], json!(["music"]));
    assert_eq!(paired(&mut music).await, json!(["music"]));
    talk(&mut music, &mut music_too).await;
}
