//! `GET /metrics` on the metrics listener: what visitors do moves the figures, every series
//! carries the node, the main listener has no such route, `promtool` accepts a scrape, and the
//! listener stops with the server.

use std::net::SocketAddr;
use std::time::Duration;

use pairchat::config::Settings;
use pairchat::startup::Application;
use tokio_tungstenite::tungstenite::Message;

use crate::health::{http_get, http_request};
use crate::helpers::{available_or_skip, spawn_app_with, TestApp, TestDb, PATIENCE};

/// One sample line of a scrape.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
}

/// A scrape, parsed.
struct Scrape {
    text: String,
    samples: Vec<Sample>,
}

impl Scrape {
    fn parse(text: String) -> Scrape {
        let samples = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .map(|line| {
                let (series, value) = line.rsplit_once(' ').expect("series and value");
                let (name, labels) = match series.split_once('{') {
                    Some((name, labels)) => (name, labels.trim_end_matches('}')),
                    None => (series, ""),
                };
                // No label value of ours holds `",`.
                let labels = labels
                    .split("\",")
                    .filter(|l| !l.is_empty())
                    .map(|l| {
                        let (k, v) = l.split_once("=\"").expect("label=\"value\"");
                        (k.to_owned(), v.trim_end_matches('"').to_owned())
                    })
                    .collect();
                Sample {
                    name: name.to_owned(),
                    labels,
                    value: value.parse().expect("a number"),
                }
            })
            .collect();
        Scrape { text, samples }
    }

    /// The value of the one series named `name` that has these labels (and maybe others).
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let found: Vec<&Sample> = self
            .samples
            .iter()
            .filter(|s| {
                s.name == name
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.iter().any(|(sk, sv)| sk == k && sv == v))
            })
            .collect();
        match found.as_slice() {
            [one] => one.value,
            _ => panic!("{} series {name}{labels:?} in:\n{}", found.len(), self.text),
        }
    }
}

async fn scrape(address: SocketAddr) -> Scrape {
    let (status, head, body) = http_request(address, "/metrics", "").await;
    assert_eq!(status, 200, "{head}");
    assert!(
        head.contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    Scrape::parse(body)
}

async fn spawn_app_with_metrics() -> (TestApp, SocketAddr) {
    let app = spawn_app_with(|s| s.metrics_bind = Some("127.0.0.1:0".into())).await;
    let metrics = app.metrics.expect("a metrics listener");
    (app, metrics)
}

#[actix_rt::test]
async fn what_visitors_do_moves_the_figures_and_every_series_names_the_node() {
    let (app, metrics) = spawn_app_with_metrics().await;
    let node = (app.hub.next_id().rid() >> 32).to_string();
    let before = scrape(metrics).await;
    assert!(!before.samples.is_empty());
    for sample in &before.samples {
        let labelled = sample.labels.iter().any(|(k, v)| k == "node" && *v == node);
        assert!(labelled, "{sample:?} lacks node=\"{node}\"");
    }
    let gauges = |s: &Scrape| {
        ["connections", "waiting", "chats"].map(|g| s.value(&format!("pairchat_{g}"), &[]))
    };
    assert_eq!(gauges(&before), [0.0, 0.0, 0.0]);

    let mut a = app.client().await;
    a.request().await;
    a.expect_type("waiting").await;
    assert_eq!(gauges(&scrape(metrics).await), [1.0, 1.0, 0.0]);
    let mut b = app.client().await;
    b.request().await;
    b.expect_type("response").await;
    a.expect_type("response").await;
    let paired = scrape(metrics).await;
    assert_eq!(gauges(&paired), [2.0, 0.0, 1.0]);
    let moved = |now: &Scrape, name: &str, labels: &[(&str, &str)]| {
        now.value(name, labels) - before.value(name, labels)
    };
    assert_eq!(moved(&paired, "pairchat_pairings_total", &[]), 1.0);
    // Each of the two waited from its own request.
    let waits = moved(&paired, "pairchat_time_to_pair_seconds_count", &[]);
    assert_eq!(waits, 2.0);

    a.say("hello").await;
    assert_eq!(b.expect_type("message").await["message"], "hello");
    a.expect_type("message").await;
    a.send_raw(Message::text("not json")).await;
    a.expect_error("bad_json").await;
    a.leave().await;
    assert_eq!(b.expect_close().await.reason, "partner left");

    // Each session counts its close before it sends it, and left the hub before that.
    let after = scrape(metrics).await;
    assert_eq!(gauges(&after), [0.0, 0.0, 0.0]);
    assert_eq!(moved(&after, "pairchat_messages_relayed_total", &[]), 1.0);
    // The first message relayed is always timed (one in 16 is).
    let timed = moved(&after, "pairchat_relay_latency_seconds_count", &[]);
    assert_eq!(timed, 1.0);
    let code = [("code", "bad_json")];
    assert_eq!(moved(&after, "pairchat_errors_sent_total", &code), 1.0);
    for reason in ["client closed", "partner left"] {
        let closes = moved(&after, "pairchat_closes_total", &[("reason", reason)]);
        assert_eq!(closes, 1.0, "{reason}");
    }
    assert_eq!(after.value("pairchat_database_errors_total", &[]), 0.0);
}

#[actix_rt::test]
async fn refused_upgrades_count_as_errors_sent_by_their_code() {
    let app = spawn_app_with(|s| {
        s.metrics_bind = Some("127.0.0.1:0".into());
        s.max_conns_per_ip = 1;
    })
    .await;
    let metrics = app.metrics.expect("a metrics listener");
    let _one = app.client().await;
    let refused = tokio_tungstenite::connect_async(app.ws_url()).await;
    assert!(refused.is_err(), "a second connection is over the cap");
    let code = [("code", "too_many_connections")];
    let after = scrape(metrics).await;
    assert_eq!(after.value("pairchat_errors_sent_total", &code), 1.0);
}

#[actix_rt::test]
async fn the_main_listener_has_no_metrics_and_none_are_served_unless_asked_for() {
    let (app, _) = spawn_app_with_metrics().await;
    assert_eq!(http_get(app.address, "/metrics").await.0, 404);
    let plain = crate::helpers::spawn_app().await;
    assert_eq!(plain.metrics, None);
    assert_eq!(http_get(plain.address, "/metrics").await.0, 404);
}

#[actix_rt::test]
async fn a_scrape_passes_promtool_check_metrics() {
    use std::io::Write;
    let found = std::process::Command::new("promtool")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let required_by = ["PAIRCHAT_REQUIRE_PROMTOOL", "CI"]
        .into_iter()
        .find(|v| std::env::var(v).is_ok())
        .unwrap_or("PAIRCHAT_REQUIRE_PROMTOOL");
    let how = "install promtool (Debian package prometheus)";
    if !available_or_skip(
        found,
        required_by,
        "a_scrape_passes_promtool_check_metrics",
        how,
    ) {
        return;
    }
    let (app, metrics) = spawn_app_with_metrics().await;
    // Something in every family: a pairing, a message, an error, a close.
    let (mut a, mut b) = app.pair().await;
    a.say("hi").await;
    b.expect_type("message").await;
    b.say("").await;
    b.expect_error("empty_message").await;
    a.leave().await;
    b.expect_close().await;
    let text = scrape(metrics).await.text;

    let mut promtool = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool runs");
    let mut stdin = promtool.stdin.take().expect("stdin");
    stdin.write_all(text.as_bytes()).expect("write the scrape");
    drop(stdin);
    let out = promtool.wait_with_output().expect("promtool ends");
    assert!(
        out.status.success(),
        "promtool check metrics: {}\n{}{}\nof:\n{text}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[actix_rt::test]
async fn the_metrics_listener_stops_with_the_server() {
    pairchat::telemetry::init_for_tests();
    let db = TestDb::new();
    let mut settings = Settings::new("127.0.0.1:0", db.url.clone());
    settings.metrics_bind = Some("127.0.0.1:0".into());
    settings.shutdown_timeout = Duration::from_secs(1);
    let app = Application::build(settings).await.expect("builds");
    let metrics = app.metrics_address().expect("a metrics listener");
    let stopper = app.stopper();
    let running = actix_web::rt::spawn(app.run_until_stopped());
    scrape(metrics).await;

    stopper.stop().await;
    tokio::time::timeout(PATIENCE, running)
        .await
        .expect("run_until_stopped returns")
        .expect("task")
        .expect("stopped cleanly");
    let refused = tokio::net::TcpStream::connect(metrics).await;
    assert!(refused.is_err(), "the metrics listener still accepts");
}

#[actix_rt::test]
async fn reports_bans_and_refusals_of_banned_visitors_are_counted() {
    let app = spawn_app_with(|s| {
        s.metrics_bind = Some("127.0.0.1:0".into());
        s.moderation.auto_ban_reports = 1;
    })
    .await;
    let metrics = app.metrics.expect("a metrics listener");
    let before = scrape(metrics).await;
    let auto = [("kind", "visitor"), ("by", "auto")];
    assert_eq!(
        before.value("pairchat_reports_total", &[("reason", "sexual")]),
        0.0
    );
    assert_eq!(before.value("pairchat_bans_total", &auto), 0.0);
    let url = |who: &str| format!("{}?visitor={who}", app.ws_url());
    let mut a = crate::helpers::Client::arrive(&url("a"), "waiting").await;
    let mut b = crate::helpers::Client::arrive(&url("b"), "response").await;
    a.expect_type("response").await;
    b.send_json(serde_json::json!({"type": "report", "reason": "sexual"}))
        .await;
    b.expect_type("reported").await;
    a.expect_close().await;
    let mut again = crate::helpers::Client::connect(&url("a")).await;
    again.expect_error("banned").await;
    let after = scrape(metrics).await;
    assert_eq!(
        after.value("pairchat_reports_total", &[("reason", "sexual")]),
        1.0
    );
    assert_eq!(after.value("pairchat_bans_total", &auto), 1.0);
    let admin = [("kind", "address"), ("by", "admin")];
    assert_eq!(after.value("pairchat_bans_total", &admin), 0.0);
    assert_eq!(
        after.value("pairchat_errors_sent_total", &[("code", "banned")]),
        1.0
    );
    assert_eq!(
        after.value("pairchat_closes_total", &[("reason", "reported")]),
        1.0
    );
}
