//! Bot resistance over real WebSockets: an address that starts chats faster than
//! `--challenge-after` a minute (or that an operator flagged) is given an ALTCHA challenge,
//! and its request goes through only with a solution: solved here, used once, signed by the
//! deployment, unexpired and as hard as asked. With two processes on one MariaDB and one Redis
//! the count and the single use are the cluster's; a broken Redis connection is counted.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use altcha_lib_rs::{create_challenge, solve_challenge, ChallengeOptions};
use base64::Engine;
use pairchat::db;
use pairchat::moderation::challenge::{address_hash, flag_address, unflag_address};
use pairchat::secret::SecretKey;
use serde_json::{json, Value};

use crate::cluster::Nodes;
use crate::health::http_get;
use crate::helpers::{spawn_app_with, wait_for, Client, TestApp, PATIENCE};

/// Easy enough to solve in a test in a few milliseconds.
const DIFFICULTY: u64 = 1_000;

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// Chats are counted per clock minute: a test that counts starts early in one, so that its
/// count is not cut in two by the next.
pub(crate) async fn early_in_a_minute() {
    let into = unix_now() % 60;
    if into > 40 {
        tokio::time::sleep(Duration::from_secs(61 - into)).await;
    }
}

/// The base64 payload a solver sends for `challenge` (the challenge JSON the server gave).
fn solve(challenge: &Value) -> String {
    let text = |k: &str| challenge[k].as_str().expect("a string field").to_owned();
    let max = challenge["maxnumber"].as_u64().expect("maxnumber");
    let number = solve_challenge(&text("challenge"), &text("salt"), None, Some(max), 0)
        .expect("the challenge can be solved");
    payload(challenge, number)
}

fn payload(challenge: &Value, number: u64) -> String {
    let payload = json!({
        "algorithm": challenge["algorithm"],
        "challenge": challenge["challenge"],
        "number": number,
        "salt": challenge["salt"],
        "signature": challenge["signature"],
        "took": 12,
    });
    base64::engine::general_purpose::STANDARD.encode(payload.to_string())
}

/// Connects and sends a request (with `altcha` if given); returns the client and the first
/// answer.
pub(crate) async fn ask(url: &str, altcha: Option<&str>) -> (Client, Value) {
    let mut client = Client::connect(url).await;
    let request = match altcha {
        Some(altcha) => json!({"type": "request", "altcha": altcha}),
        None => json!({"type": "request"}),
    };
    client.send_json(request).await;
    let answer = client.recv().await;
    (client, answer)
}

/// The challenge of an error frame, checked for the shape ALTCHA's solvers read.
fn challenge_of(frame: &Value, code: &str) -> Value {
    assert_eq!(frame["type"], "error", "{frame}");
    assert_eq!(frame["error"], code, "{frame}");
    assert!(frame["detail"].as_str().is_some_and(|d| !d.is_empty()));
    let challenge = frame["challenge"].clone();
    assert_eq!(challenge["algorithm"], "SHA-256", "{frame}");
    for field in ["challenge", "salt", "signature"] {
        assert!(challenge[field].is_string(), "{field} in {frame}");
    }
    challenge
}

fn admitted(frame: &Value) -> bool {
    frame["type"] == "waiting" || frame["type"] == "response"
}

/// One series of a scrape of `/metrics`.
async fn metric(address: SocketAddr, name: &str) -> f64 {
    let (status, body) = http_get(address, "/metrics").await;
    assert_eq!(status, 200);
    body.lines()
        .find_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let bare = series.split('{').next()?;
            (bare == name).then(|| value.parse().ok())?
        })
        .unwrap_or_else(|| panic!("no {name} in the scrape"))
}

/// Challenges issued, solved and failed, as `/metrics` at `address` says.
async fn challenge_counts(address: SocketAddr) -> [f64; 3] {
    let mut counts = [0.0; 3];
    for (count, what) in counts.iter_mut().zip(["issued", "solved", "failed"]) {
        *count = metric(address, &format!("pairchat_challenges_{what}_total")).await;
    }
    counts
}

async fn app(after: u32, key: &std::path::Path) -> TestApp {
    let key = key.to_owned();
    spawn_app_with(move |s| {
        s.challenge.after = after;
        s.challenge.difficulty = DIFFICULTY;
        s.secret_key_file = Some(key);
        s.metrics_bind = Some("127.0.0.1:0".into());
    })
    .await
}

#[actix_rt::test]
async fn an_address_over_the_rate_is_challenged_and_a_solved_challenge_lets_it_through() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(2, &dir.path().join("pairchat.key")).await;
    let metrics = app.metrics.unwrap();
    let url = app.ws_url();
    early_in_a_minute().await;
    // Two chats a minute are let through without a word.
    let (_a, first) = ask(&url, None).await;
    let (_b, second) = ask(&url, None).await;
    assert_eq!(
        (&first["type"], &second["type"]),
        (&json!("waiting"), &json!("response"))
    );
    // The third is asked to prove it is no bot, and stays out of the queue meanwhile.
    let (mut c, refused) = ask(&url, None).await;
    let challenge = challenge_of(&refused, "challenge_required");
    assert_eq!(challenge["maxnumber"], DIFFICULTY);
    assert_eq!(app.stats().await.waiting, 0);
    // A request with the solution goes on, on the same connection.
    let solution = solve(&challenge);
    c.send_json(json!({"type": "request", "altcha": solution}))
        .await;
    c.expect_type("waiting").await;
    // A connection starts one chat: asking again on it is the hub's business, not the gate's.
    c.request().await;
    c.expect_error("already_waiting").await;
    // And every further chat this minute is asked again.
    let (_d, again) = ask(&url, None).await;
    challenge_of(&again, "challenge_required");
    assert_eq!(challenge_counts(metrics).await, [2.0, 1.0, 0.0]);
}

/// A challenge made with the deployment's own key (as the server makes them), for `difficulty`,
/// expiring at `expires`.
fn made_with(key: &SecretKey, difficulty: u64, expires: u64) -> Value {
    let hmac_key = key.derive_hex(b"altcha");
    let challenge = create_challenge(ChallengeOptions {
        max_number: Some(difficulty),
        hmac_key: &hmac_key,
        salt: Some(format!("0123456789abcdef-{difficulty}")),
        expires: chrono::DateTime::from_timestamp(expires as i64, 0),
        ..ChallengeOptions::default()
    })
    .unwrap();
    serde_json::to_value(challenge).unwrap()
}

#[actix_rt::test]
async fn a_replayed_forged_expired_or_easier_solution_is_refused_with_a_fresh_challenge() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("pairchat.key");
    let app = app(1, &key_file).await;
    let key = SecretKey::load_or_create(&key_file).unwrap();
    let url = app.ws_url();
    early_in_a_minute().await;
    let (_first, _) = ask(&url, None).await;
    let (_c, refused) = ask(&url, None).await;
    let challenge = challenge_of(&refused, "challenge_required");
    let solution = solve(&challenge);
    let (_d, answer) = ask(&url, Some(&solution)).await;
    assert!(admitted(&answer), "{answer}");

    let in_a_minute = unix_now() + 60;
    let number = |c: &Value| {
        let text = |k: &str| c[k].as_str().unwrap().to_owned();
        solve_challenge(&text("challenge"), &text("salt"), None, Some(DIFFICULTY), 0).unwrap()
    };
    let fresh = made_with(&key, DIFFICULTY, in_a_minute);
    let mut forged_signature = fresh.clone();
    forged_signature["signature"] = json!("00".repeat(32));
    let fresh_number = number(&fresh);
    let refused = [
        ("replayed", solution),
        ("wrong number", payload(&fresh, fresh_number + 1)),
        ("forged signature", payload(&forged_signature, fresh_number)),
        (
            "another key",
            solve(&made_with(
                &SecretKey::random().unwrap(),
                DIFFICULTY,
                in_a_minute,
            )),
        ),
        (
            "expired",
            solve(&made_with(&key, DIFFICULTY, unix_now() - 1)),
        ),
        ("too easy", solve(&made_with(&key, 10, in_a_minute))),
        ("not base64", "%%%".to_owned()),
    ];
    let refused_count = refused.len();
    for (what, altcha) in refused {
        let (_e, answer) = ask(&url, Some(&altcha)).await;
        let again = challenge_of(&answer, "challenge_failed");
        assert_ne!(
            again["salt"], challenge["salt"],
            "{what}: a fresh challenge"
        );
    }
    // Made the same way, but sound: it goes through (so the refusals above are for the flaw
    // each has, not the way they were made).
    let (_f, answer) = ask(&url, Some(&payload(&fresh, fresh_number))).await;
    assert!(admitted(&answer), "{answer}");
    let issued = 1 + refused_count;
    assert_eq!(
        challenge_counts(app.metrics.unwrap()).await,
        [issued as f64, 2.0, refused_count as f64]
    );
}

/// Flags the tests' address (loopback) for an hour, as an operator would, in the database of
/// `app` (whose key is in `key_file`); returns the hash it is flagged by.
async fn flag_loopback(app: &TestApp, key_file: &std::path::Path) -> i64 {
    let key = SecretKey::load_or_create(key_file).unwrap();
    let loopback = address_hash("127.0.0.1".parse().unwrap(), &key);
    let pool = app.pool.clone();
    let until = unix_now() + 3_600;
    tokio::task::spawn_blocking(move || {
        flag_address(&mut db::get(&pool).unwrap(), loopback, until)
    })
    .await
    .unwrap()
    .unwrap();
    loopback
}

#[actix_rt::test]
async fn an_operator_flagged_address_is_challenged_from_its_first_chat() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("pairchat.key");
    // A limit no test client reaches while it waits for the flag to be read.
    let app = app(100_000, &key_file).await;
    let url = app.ws_url();
    let (_a, answer) = ask(&url, None).await;
    assert!(admitted(&answer), "{answer}");
    let loopback = flag_loopback(&app, &key_file).await;
    // Every process reads the flags every couple of seconds.
    wait_for("the flag to be read", || async {
        ask(&url, None).await.1["error"] == "challenge_required"
    })
    .await;
    let pool = app.pool.clone();
    tokio::task::spawn_blocking(move || unflag_address(&mut db::get(&pool).unwrap(), loopback))
        .await
        .unwrap()
        .unwrap();
    wait_for("the flag to be lifted", || async {
        admitted(&ask(&url, None).await.1)
    })
    .await;
}

#[actix_rt::test]
async fn challenge_after_zero_never_challenges_not_even_a_flagged_address() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("pairchat.key");
    let app = app(0, &key_file).await;
    flag_loopback(&app, &key_file).await;
    let url = app.ws_url();
    // Thirty chats started at once, and more for longer than a flag takes to be read.
    let until = tokio::time::Instant::now() + Duration::from_secs(3);
    let mut started = 0;
    while started < 30 || tokio::time::Instant::now() < until {
        let (_client, answer) = ask(&url, None).await;
        assert!(admitted(&answer), "chat {started}: {answer}");
        started += 1;
    }
}

#[actix_rt::test]
async fn the_count_is_cluster_wide_and_a_solution_is_used_once_across_processes() {
    let flags = ["--challenge-after", "3", "--challenge-difficulty", "1000"];
    let Some(nodes) = Nodes::start_or_skip("challenge::cluster", 2, &flags).await else {
        return;
    };
    let (a, b) = (nodes.url(0), nodes.url(1));
    early_in_a_minute().await;
    // Three starts between the two processes are the address's three for the minute.
    let mut clients = Vec::new();
    for url in [&a, &b, &a] {
        let (client, answer) = ask(url, None).await;
        assert!(admitted(&answer), "{answer}");
        clients.push(client);
    }
    let (_refused, answer) = ask(&b, None).await;
    let challenge = challenge_of(&answer, "challenge_required");
    // Solved for one process, accepted by the other (they share the key file), once.
    let solution = solve(&challenge);
    let (_c, answer) = ask(&a, Some(&solution)).await;
    assert!(admitted(&answer), "{answer}");
    let (_d, answer) = ask(&b, Some(&solution)).await;
    challenge_of(&answer, "challenge_failed");
    let (_e, answer) = ask(&a, Some(&solution)).await;
    challenge_of(&answer, "challenge_failed");
}

#[actix_rt::test]
async fn a_broken_redis_connection_is_counted_as_a_redis_error() {
    let Some(nodes) = Nodes::start_or_skip("challenge::redis_errors", 0, &[]).await else {
        return;
    };
    let metrics = crate::process::free_address();
    let server = nodes.start(&["--metrics-bind", &metrics]);
    let metrics: SocketAddr = metrics.parse().unwrap();
    wait_for("the metrics listener", || async {
        tokio::net::TcpStream::connect(metrics).await.is_ok()
    })
    .await;
    let before = metric(metrics, "pairchat_redis_errors_total").await;
    // Every connection to this test's Redis (the tests of this file and cluster.rs take turns).
    let _: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("normal")
        .query(&mut nodes.redis())
        .unwrap();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while metric(metrics, "pairchat_redis_errors_total").await <= before {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no Redis error counted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // And the process carries on.
    let (_a, answer) = ask(&server.ws_url(), None).await;
    assert!(admitted(&answer), "{answer}");
}

// ---- in a real browser -----------------------------------------------------------------------

mod browser {
    use std::time::Instant;

    use base64::Engine;
    use fantoccini::Client as Browser;
    use serde_json::Value;

    use crate::browser::{
        browser_or_skip, click, embedding_page, js, record_sent, sent_frames, visible, wait_js,
        wait_state, Driver, HostSite, EMBED, ONE_AT_A_TIME, PAGE,
    };
    use crate::browser_ui::axe_violations;
    use crate::helpers::{spawn_app_with, TestApp, PATIENCE};

    async fn app(difficulty: u64) -> TestApp {
        app_for(difficulty, Vec::new()).await
    }

    async fn app_for(difficulty: u64, allowed_origins: Vec<String>) -> TestApp {
        spawn_app_with(move |s| {
            s.challenge.after = 1;
            s.challenge.difficulty = difficulty;
            s.allowed_origins = allowed_origins;
        })
        .await
    }

    async fn open(b: &Browser, app: &TestApp) {
        b.goto(&format!("http://{}/", app.address)).await.unwrap();
        wait_state(b, PAGE, "idle").await;
    }

    async fn check_shown(b: &Browser) -> bool {
        visible(b, PAGE, "check").await && visible(b, PAGE, "check-progress").await
    }

    #[actix_rt::test]
    async fn a_busy_address_solves_the_check_in_the_background_and_is_paired() {
        if !browser_or_skip("challenge::browser::solves_and_is_paired") {
            return;
        }
        let _turn = ONE_AT_A_TIME.lock().await;
        super::early_in_a_minute().await;
        let app = app(20_000).await;
        let driver = Driver::start();
        let (first, second) = (
            driver.browser(1024, 800).await,
            driver.browser(360, 740).await,
        );
        open(&first, &app).await;
        open(&second, &app).await;
        // The address's first chat this minute: an ordinary visitor sees no check.
        click(&first, PAGE, "start").await;
        wait_state(&first, PAGE, "waiting").await;
        assert!(!check_shown(&first).await);
        // The second is asked for one: it is solved without a word from the visitor, in a
        // worker (each one the page starts is noted, and whether it failed to run).
        record_sent(&second).await;
        js(
            &second,
            PAGE,
            "const W = window.Worker; window.__workers = []; \
             window.Worker = function (url, options) { const w = new W(url, options); \
               const seen = { url: String(url), failed: false }; window.__workers.push(seen); \
               w.addEventListener('error', () => { seen.failed = true; }); return w; }; \
             return true;",
        )
        .await;
        click(&second, PAGE, "start").await;
        wait_state(&second, PAGE, "waiting").await;
        wait_state(&second, PAGE, "chat").await;
        wait_state(&first, PAGE, "chat").await;
        assert!(!check_shown(&second).await, "the check is gone once paired");
        let workers = js(&second, PAGE, "return window.__workers;").await;
        assert_eq!(workers.as_array().map(Vec::len), Some(1), "{workers}");
        assert_eq!(workers[0]["failed"], false, "{workers}");
        assert!(workers[0]["url"]
            .as_str()
            .unwrap()
            .ends_with("/assets/js/altcha-worker.js"));
        let sent = sent_frames(&second).await;
        let requests: Vec<&Value> = sent.iter().filter(|f| f["type"] == "request").collect();
        assert_eq!(
            requests.len(),
            2,
            "asked, then asked with the solution: {sent:?}"
        );
        let altcha = requests[1]["altcha"].as_str().expect("a solution");
        let payload: Value = serde_json::from_slice(
            &base64::engine::general_purpose::STANDARD
                .decode(altcha)
                .unwrap(),
        )
        .unwrap();
        eprintln!(
            "the page solved a challenge of 20,000 at {} in {} ms",
            payload["number"], payload["took"]
        );
        first.close().await.unwrap();
        second.close().await.unwrap();
    }

    #[actix_rt::test]
    async fn the_check_shows_its_progress_and_axe_core_finds_no_serious_violation() {
        if !browser_or_skip("challenge::browser::axe") {
            return;
        }
        let _turn = ONE_AT_A_TIME.lock().await;
        // Hard enough that the check is still going while it is looked at (a billion: the
        // page would take minutes; should it find the number early, another page is asked).
        let app = app(1_000_000_000).await;
        let driver = Driver::start();
        let first = driver.browser(1024, 800).await;
        open(&first, &app).await;
        click(&first, PAGE, "start").await;
        wait_state(&first, PAGE, "waiting").await;
        let deadline = Instant::now() + PATIENCE * 3;
        loop {
            assert!(Instant::now() < deadline, "the check never stayed up");
            let b = driver.browser(1024, 800).await;
            open(&b, &app).await;
            click(&b, PAGE, "start").await;
            wait_js(
                &b,
                PAGE,
                "the check",
                "return !root.querySelector('[data-test=check]').hidden;",
            )
            .await;
            // Said to screen readers, and the progress moves as the browser works.
            let status = js(
                &b,
                PAGE,
                "return root.querySelector('[data-test=status]').textContent;",
            )
            .await;
            assert!(status.as_str().unwrap().contains("quick check"), "{status}");
            wait_js(
                &b,
                PAGE,
                "the progress to move",
                "return root.querySelector('[data-test=check-progress]').position > 0;",
            )
            .await;
            let axe = axe_violations(&b).await;
            let still = check_shown(&b).await;
            if still {
                assert!(axe.is_empty(), "axe-core, the check: {axe:?}");
                // Cancel stops the work and goes back to idle.
                click(&b, PAGE, "cancel").await;
                wait_state(&b, PAGE, "idle").await;
                assert!(!check_shown(&b).await);
                b.close().await.unwrap();
                break;
            }
            b.close().await.unwrap();
        }
        first.close().await.unwrap();
    }

    #[actix_rt::test]
    async fn the_chat_embedded_on_another_site_solves_the_check_on_the_page_and_is_paired() {
        if !browser_or_skip("challenge::browser::embedded") {
            return;
        }
        let _turn = ONE_AT_A_TIME.lock().await;
        super::early_in_a_minute().await;
        // No worker from the chat's origin may start on the host site's page: the page solves.
        let site = HostSite::start();
        let app = app_for(20_000, vec![site.origin.clone()]).await;
        site.serve(embedding_page(&app));
        let driver = Driver::start();
        let (direct, embedded) = (
            driver.browser(1024, 800).await,
            driver.browser(1024, 800).await,
        );
        open(&direct, &app).await;
        click(&direct, PAGE, "start").await;
        wait_state(&direct, PAGE, "waiting").await;
        embedded.goto(&format!("{}/", site.origin)).await.unwrap();
        wait_state(&embedded, EMBED, "idle").await;
        record_sent(&embedded).await;
        click(&embedded, EMBED, "start").await;
        wait_state(&embedded, EMBED, "chat").await;
        wait_state(&direct, PAGE, "chat").await;
        let sent = sent_frames(&embedded).await;
        assert!(
            sent.iter()
                .any(|f| f["type"] == "request" && f["altcha"].is_string()),
            "the embed asked again with a solution: {sent:?}"
        );
        direct.close().await.unwrap();
        embedded.close().await.unwrap();
    }
}
