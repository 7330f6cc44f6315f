//! Several copies of the real binary on one MariaDB database and one Redis (`--redis-url`):
//! visitors on different processes meet and chat as if on one; a killed process costs its
//! visitors' partners `partner lost` (with resuming off; cluster_resume.rs has them held for
//! the grace); Redis faults lose no receipted message. Needs
//! `TEST_MYSQL_URL` and `TEST_REDIS_URL` (CI sets both, with `PAIRCHAT_REQUIRE_REDIS`).
//!
//! The tests of this file run one at a time: they fault the one Redis they share.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use pairchat::db::{self, queries};
use serde_json::Value;
use tokio::sync::{Mutex, MutexGuard};

use crate::health::http_get;
use crate::helpers::{available_or_skip, wait_for, Client, TestDb, PATIENCE};
use crate::mysql::mariadb_or_skip;
use crate::process::{free_address, pairchat, Server};

pub(crate) static ONE_AT_A_TIME: Mutex<()> = Mutex::const_new(());

/// `TEST_REDIS_URL` (e.g. redis://127.0.0.1:6379/), when Redis is there to use.
pub fn redis_or_skip(test: &str) -> Option<String> {
    let url = std::env::var("TEST_REDIS_URL")
        .ok()
        .filter(|u| !u.is_empty());
    let how = "set TEST_REDIS_URL (and TEST_MYSQL_URL, with --features mysql) to run it";
    available_or_skip(url.is_some(), "PAIRCHAT_REQUIRE_REDIS", test, how);
    url
}

/// The limits a crowd from one address would hit, lifted.
const NO_LIMITS: [&str; 10] = [
    "--max-conns-per-ip",
    "100000",
    "--connects-per-sec-per-ip",
    "100000",
    "--rate-per-sec",
    "100000",
    "--rate-burst",
    "100000",
    "--challenge-after",
    "0",
];

pub struct Nodes {
    pub db: TestDb,
    pub redis: String,
    pub servers: Vec<Server>,
    _one: MutexGuard<'static, ()>,
}

impl Nodes {
    /// `n` servers on a fresh database, with `extra` flags each; `None` (skipped) without
    /// MariaDB and Redis.
    pub async fn start_or_skip(test: &str, n: usize, extra: &[&str]) -> Option<Nodes> {
        mariadb_or_skip(test)?;
        let redis = redis_or_skip(test)?;
        let one = ONE_AT_A_TIME.lock().await;
        let db = TestDb::new();
        let mut nodes = Nodes {
            db,
            redis,
            servers: Vec::new(),
            _one: one,
        };
        for _ in 0..n {
            let server = nodes.start(extra);
            nodes.servers.push(server);
        }
        nodes.know_each_other().await;
        Some(nodes)
    }

    /// Waits until every server has heard from all the others (a heartbeat after the last
    /// one started).
    pub async fn know_each_other(&self) {
        let n = self.servers.len() as u64;
        for server in &self.servers {
            wait_for("the servers to know each other", || async {
                health(server).await.1["processes"].as_u64() == Some(n)
            })
            .await;
        }
    }

    /// One more server of the cluster.
    pub fn start(&self, extra: &[&str]) -> Server {
        let (cmd, address) = self.command(&self.redis, extra);
        Server::spawn(cmd, address)
    }

    /// One more server of the cluster, listening on `address` (a stopped one's, restarted).
    pub fn start_at(&self, address: &str, extra: &[&str]) -> Server {
        let cmd = self.command_at(&self.redis, address.to_owned(), extra);
        Server::spawn(cmd, address.to_owned())
    }

    /// The command of one more server, reaching Redis at `redis`, and its address.
    fn command(&self, redis: &str, extra: &[&str]) -> (std::process::Command, String) {
        let address = free_address();
        (self.command_at(redis, address.clone(), extra), address)
    }

    fn command_at(&self, redis: &str, address: String, extra: &[&str]) -> std::process::Command {
        let mut cmd = pairchat();
        // The limits lifted, but for those `extra` sets itself.
        let limits = NO_LIMITS
            .chunks(2)
            .filter(|pair| !extra.contains(&pair[0]))
            .flatten();
        cmd.env("RUST_LOG", "info,pairchat=debug")
            .args(["serve", "--bind", &address, "--database-url", &self.db.url])
            .args(["--redis-url", redis])
            .args(limits)
            .args(extra);
        cmd
    }

    pub fn url(&self, i: usize) -> String {
        self.servers[i].ws_url()
    }

    pub fn redis(&self) -> redis::Connection {
        redis::Client::open(self.redis.as_str())
            .and_then(|c| c.get_connection())
            .expect("Redis answers")
    }
}

impl Drop for Nodes {
    fn drop(&mut self) {
        // A failed test shows what the servers said.
        if std::thread::panicking() {
            for (i, server) in self.servers.iter().enumerate() {
                eprintln!(
                    "--- server {i} ({}) log:\n{}",
                    server.address,
                    server.log_so_far()
                );
            }
        }
    }
}

/// `/healthz` of a server, as JSON.
pub async fn health(server: &Server) -> (u16, Value) {
    let (status, body) = http_get(server.address.parse().expect("address"), "/healthz").await;
    (status, serde_json::from_str(&body).expect("JSON"))
}

/// Every frame until the server closes, and the close's reason.
async fn frames_until_close(c: &mut Client) -> (Vec<Value>, String) {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    let mut frames = Vec::new();
    loop {
        let next = tokio::time::timeout(PATIENCE, c.ws.next()).await;
        match next.expect("the server closes in time") {
            Some(Ok(Message::Text(t))) => frames.push(serde_json::from_str(&t).expect("JSON")),
            Some(Ok(Message::Close(Some(frame)))) => return (frames, frame.reason.to_string()),
            Some(Ok(_)) => continue,
            other => panic!("no close frame: {other:?}"),
        }
    }
}

/// A pair whose first visitor waits on `a` and whose second arrives on `b`.
pub async fn pair_across(a: &str, b: &str) -> (Client, Client) {
    let mut first = Client::arrive(a, "waiting").await;
    let second = arrive_paired(b).await;
    first.expect_type("response").await;
    (first, second)
}

/// Connects and asks; the answer is `response`, perhaps after `waiting` (with several
/// matchmakers, a chat another one holds at that moment is skipped, and the re-check after
/// the commit makes the pair).
async fn arrive_paired(url: &str) -> Client {
    let mut c = Client::connect(url).await;
    c.request().await;
    let frame = c.recv().await;
    if frame["type"] == "waiting" {
        c.expect_type("response").await;
    } else {
        assert_eq!(frame["type"], "response", "unexpected {frame}");
    }
    c
}

#[actix_rt::test]
async fn visitors_on_two_processes_meet_talk_type_and_part() {
    let Some(nodes) = Nodes::start_or_skip("cross-process chat", 2, &[]).await else {
        return;
    };
    for server in &nodes.servers {
        let (status, body) = health(server).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            (body["redis"].as_str(), body["database"].as_str()),
            (Some("ok"), Some("ok"))
        );
        assert!(body["node"].as_u64().is_some_and(|n| n > 0), "{body}");
    }
    let (mut a, mut b) = pair_across(&nodes.url(0), &nodes.url(1)).await;
    a.say("hello from one").await;
    assert_eq!(
        (
            a.expect_type("message").await["from"].clone(),
            b.expect_type("message").await
        ),
        (
            Value::from("me"),
            serde_json::json!({"type": "message", "message": "hello from one", "from": "guest"})
        )
    );
    b.say("and back from two").await;
    let got = a.expect_type("message").await;
    assert_eq!(
        (got["message"].as_str(), got["from"].as_str()),
        (Some("and back from two"), Some("guest"))
    );
    assert_eq!(b.expect_type("message").await["from"], "me");
    a.send_json(serde_json::json!({"type": "typing", "typing": true}))
        .await;
    assert_eq!(b.expect_type("typing").await["typing"], true);
    b.send_json(serde_json::json!({"type": "typing", "typing": false}))
        .await;
    assert_eq!(a.expect_type("typing").await["typing"], false);
    // The online count is the cluster's: both see two.
    let online = |server: &Server| {
        let address = server.address.parse().expect("address");
        async move {
            let (_, body) = http_get(address, "/online").await;
            serde_json::from_str::<Value>(&body).expect("JSON")["online"].as_u64()
        }
    };
    for server in &nodes.servers {
        wait_for("the cluster's online count", || async {
            online(server).await == Some(2)
        })
        .await;
    }
    a.leave().await;
    assert_eq!(b.expect_close().await.reason, "partner left");
    let pool = nodes.db.migrated_pool(1);
    wait_for("both rows gone", || async {
        queries::chats(&mut db::get(&pool).expect("conn"))
            .expect("rows")
            .is_empty()
    })
    .await;
}

/// Connects `n` visitors spread over `urls`, all asking at once; returns them paired, each
/// with the index of the server it is on.
async fn crowd(urls: &[String], n: usize) -> Vec<(usize, Client)> {
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let url = urls[i % urls.len()].clone();
            tokio::spawn(async move {
                let mut c = Client::connect(&url).await;
                c.request().await;
                loop {
                    let frame = c.recv().await;
                    match frame["type"].as_str() {
                        Some("waiting") => continue,
                        Some("response") => return (i % 3, c),
                        _ => panic!("unexpected {frame}"),
                    }
                }
            })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.expect("visitor task"));
    }
    out
}

#[actix_rt::test]
async fn six_hundred_arrivals_over_three_processes_make_three_hundred_pairs() {
    let Some(nodes) = Nodes::start_or_skip("600 arrivals", 3, &[]).await else {
        return;
    };
    let urls: Vec<String> = (0..3).map(|i| nodes.url(i)).collect();
    let clients = crowd(&urls, 600).await;
    // Each says who it is, then "end"; each hears its partner's name exactly once.
    let tasks: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(i, (server, mut c))| {
            tokio::spawn(async move {
                c.say(&format!("{i}")).await;
                c.say("end").await;
                let (mut heard, mut receipts) = (Vec::new(), 0);
                while receipts < 2 || heard.last().map(String::as_str) != Some("end") {
                    let frame = c.recv().await;
                    match (frame["type"].as_str(), frame["from"].as_str()) {
                        (Some("message"), Some("me")) => receipts += 1,
                        (Some("message"), Some("guest")) => {
                            heard.push(frame["message"].as_str().unwrap_or("").to_owned())
                        }
                        _ => panic!("unexpected {frame}"),
                    }
                }
                (i, server, heard, c)
            })
        })
        .collect();
    let mut partner = HashMap::new();
    let mut server_of = HashMap::new();
    let mut keep = Vec::new();
    for t in tasks {
        let (i, server, heard, c) = t.await.expect("talk task");
        assert_eq!(heard.len(), 2, "visitor {i} heard {heard:?}");
        let p: usize = heard[0].parse().expect("a name");
        partner.insert(i, p);
        server_of.insert(i, server);
        keep.push(c);
    }
    let mut across = 0;
    for (&i, &p) in &partner {
        assert_ne!(i, p, "nobody is paired with themselves");
        assert_eq!(
            partner[&p], i,
            "{i} talks to {p}, who talks to {}",
            partner[&p]
        );
        if server_of[&i] != server_of[&p] {
            across += 1;
        }
    }
    assert_eq!(partner.len(), 600);
    assert!(across > 0, "some pairs span processes");
    for server in &nodes.servers {
        let (status, _) = health(server).await;
        assert_eq!(status, 200);
    }
}

#[actix_rt::test]
async fn without_resume_a_killed_process_costs_its_visitors_partners_partner_lost_and_its_rows() {
    // Default liveness timings: the bound is for them. Resuming off: the partners
    // are not held for the grace (cluster_resume.rs has that).
    let resume_off = ["--resume-grace-secs", "0"];
    let Some(mut nodes) = Nodes::start_or_skip("killed process", 3, &resume_off).await else {
        return;
    };
    let (dead_node, _) = health(&nodes.servers[0]).await;
    assert_eq!(dead_node, 200);
    let dead = health(&nodes.servers[0]).await.1["node"]
        .as_i64()
        .expect("node");
    let (_a, mut b) = pair_across(&nodes.url(0), &nodes.url(1)).await;
    let (mut c, _d) = pair_across(&nodes.url(2), &nodes.url(0)).await;
    // And one who waits on the process that dies.
    let _waits = Client::arrive(&nodes.url(0), "waiting").await;

    nodes.servers[0].child.kill().expect("SIGKILL");
    let killed = Instant::now();
    // Said to a visitor whose process is gone: never receipted (no `me`), whatever Redis took.
    b.say("into the void").await;
    let (frames, closed) = frames_until_close(&mut b).await;
    assert_eq!(closed, "partner lost");
    assert!(
        !frames.iter().any(|f| f["from"] == "me"),
        "a message to a dead process was receipted: {frames:?}"
    );
    assert_eq!(c.expect_close().await.reason, "partner lost");
    let took = killed.elapsed();
    eprintln!("partners of a killed process told after {took:?}");
    assert!(
        took < Duration::from_secs(5),
        "partners told after {took:?}"
    );

    // Nobody is paired with the dead process's waiting visitor: a newcomer waits, and the
    // next one is paired with it.
    let mut e = Client::arrive(&nodes.url(1), "waiting").await;
    let _f = arrive_paired(&nodes.url(2)).await;
    e.expect_type("response").await;

    let pool = nodes.db.migrated_pool(1);
    wait_for("the dead process's rows swept", || async {
        let rows = queries::chat_rows(&mut db::get(&pool).expect("conn")).expect("rows");
        rows.iter().all(|r| r.members.iter().all(|m| m.2 != dead))
    })
    .await;
}

/// `pairs` pairs across the two servers, each side saying numbered messages at about `rate`
/// a second until `stop`; returns, per side, (receipted numbers, refused numbers, numbers the
/// partner heard, in order).
async fn talk_through(
    urls: [String; 2],
    pairs: usize,
    every: Duration,
    fault: impl std::future::Future<Output = ()>,
) -> Vec<(Vec<u64>, Vec<u64>, Vec<u64>)> {
    let mut clients = Vec::new();
    for _ in 0..pairs {
        let (a, b) = pair_across(&urls[0], &urls[1]).await;
        clients.push(a);
        clients.push(b);
    }
    let stop = std::sync::Arc::new(tokio::sync::Notify::new());
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|mut c| {
            let stop = stop.clone();
            tokio::spawn(async move {
                let (mut receipted, mut refused, mut heard) = (Vec::new(), Vec::new(), Vec::new());
                let mut sent: Vec<u64> = Vec::new();
                let mut next = 0u64;
                let mut tick = tokio::time::interval(every);
                let stopped = stop.notified();
                tokio::pin!(stopped);
                let mut stopping = false;
                loop {
                    tokio::select! {
                        _ = &mut stopped, if !stopping => {
                            stopping = true;
                            c.say("end").await;
                        }
                        _ = tick.tick(), if !stopping => {
                            next += 1;
                            c.say(&next.to_string()).await;
                            sent.push(next);
                        }
                        frame = c.recv() => {
                            match (frame["type"].as_str(), frame["from"].as_str()) {
                                (Some("message"), Some("me")) => {
                                    let n = frame["message"].as_str().unwrap_or("");
                                    if n == "end" { continue; }
                                    receipted.push(n.parse::<u64>().expect("number"));
                                }
                                (Some("message"), Some("guest")) => {
                                    let n = frame["message"].as_str().unwrap_or("");
                                    if n == "end" { break; }
                                    heard.push(n.parse::<u64>().expect("number"));
                                }
                                (Some("error"), _) if frame["error"] == "undelivered" => {
                                    // The oldest message not yet answered is the one refused.
                                    let done = receipted.len() + refused.len();
                                    refused.push(sent[done]);
                                }
                                (Some("typing"), _) => {}
                                _ => panic!("unexpected {frame}"),
                            }
                        }
                    }
                }
                (receipted, refused, heard)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    fault.await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.notify_waiters();
    let mut out = Vec::new();
    for t in tasks {
        out.push(
            tokio::time::timeout(PATIENCE * 3, t)
                .await
                .expect("talk ends")
                .expect("task"),
        );
    }
    out
}

/// Every receipted message reached the partner once, in order; nothing was heard twice or
/// out of order; refused ones may or may not have arrived.
fn check_no_receipted_loss(sides: &[(Vec<u64>, Vec<u64>, Vec<u64>)]) {
    let mut receipted_total = 0;
    for pair in sides.chunks(2) {
        for (me, other) in [(&pair[0], &pair[1]), (&pair[1], &pair[0])] {
            let (receipted, _refused, _) = me;
            let heard = &other.2;
            assert!(
                heard.windows(2).all(|w| w[0] < w[1]),
                "heard in order, once: {heard:?}"
            );
            for n in receipted {
                assert!(
                    heard.contains(n),
                    "receipted {n} never arrived: heard {heard:?}"
                );
            }
            receipted_total += receipted.len();
        }
    }
    assert!(receipted_total > 0, "messages went through");
}

/// Ten pairs across two servers talk while `fault` is done to Redis; no receipted message may
/// be lost, duplicated or reordered, and no chat may end (`talk_through` panics on a close).
async fn traffic_survives<F>(test: &str, fault: impl FnOnce(redis::Connection) -> F)
where
    F: std::future::Future<Output = ()>,
{
    let Some(nodes) = Nodes::start_or_skip(test, 2, &[]).await else {
        return;
    };
    let fault = fault(nodes.redis());
    let every = Duration::from_millis(50);
    let sides = talk_through([nodes.url(0), nodes.url(1)], 10, every, fault).await;
    check_no_receipted_loss(&sides);
}

#[actix_rt::test]
async fn redis_connections_killed_mid_traffic_lose_no_receipted_message() {
    traffic_survives("Redis connections killed", |mut redis| async move {
        for _ in 0..3 {
            // Every client connection but this one: the servers' streams ride on them (and
            // pub/sub, which pairchat does not use, for good measure).
            let killed: i64 = redis::cmd("CLIENT")
                .arg(&["KILL", "TYPE", "normal", "SKIPME", "yes"][..])
                .query(&mut redis)
                .expect("CLIENT KILL");
            assert!(
                killed >= 2,
                "the servers' connections were killed ({killed})"
            );
            let _: i64 = redis::cmd("CLIENT")
                .arg(&["KILL", "TYPE", "pubsub"][..])
                .query(&mut redis)
                .expect("CLIENT KILL");
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    })
    .await;
}

#[actix_rt::test]
async fn redis_paused_mid_traffic_loses_no_receipted_message_and_declares_nobody_dead() {
    traffic_survives("Redis paused", |mut redis| async move {
        let _: () = redis::cmd("CLIENT")
            .arg(&["PAUSE", "2000", "ALL"][..])
            .query(&mut redis)
            .expect("CLIENT PAUSE");
        tokio::time::sleep(Duration::from_millis(2_500)).await;
    })
    .await;
}

#[actix_rt::test]
async fn a_server_without_redis_refuses_a_database_that_live_servers_share() {
    let Some(nodes) = Nodes::start_or_skip("refuse without Redis", 1, &[]).await else {
        return;
    };
    let address = free_address();
    let out = pairchat()
        .args(["serve", "--bind", &address, "--database-url", &nodes.db.url])
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--redis-url"), "{stderr}");
    // Nor may the tables be emptied under it.
    let out = pairchat()
        .args(["reset", "--database-url", &nodes.db.url])
        .output()
        .expect("runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--force"));
    // A second clustered server joins, and keeps the first one's waiting visitor.
    let mut waits = Client::arrive(&nodes.url(0), "waiting").await;
    let second = nodes.start(&[]);
    let _partner = arrive_paired(&second.ws_url()).await;
    let (_, health) = health(&second).await;
    assert_eq!(health["processes"], 2, "{health}");
    waits.expect_type("response").await;
}

#[test]
fn redis_with_a_sqlite_database_is_refused() {
    let dir = tempfile::tempdir().expect("dir");
    let url = format!("sqlite://{}", dir.path().join("p.db").display());
    let out = pairchat()
        .args(["serve", "--bind", &free_address(), "--database-url", &url])
        .args(["--redis-url", "redis://127.0.0.1:6379/"])
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--redis-url needs a MySQL/MariaDB"),
        "{stderr}"
    );
}

#[actix_rt::test]
async fn a_process_cut_off_from_redis_is_taken_for_dead_by_the_others_and_rejoins() {
    // Resuming off: the partner of a visitor on a process taken for dead is lost at once
    // (with it, away for the grace first, as cluster_resume.rs shows for a killed process).
    let resume_off = ["--resume-grace-secs", "0"];
    let Some(mut nodes) = Nodes::start_or_skip("cut off from Redis", 1, &resume_off).await else {
        return;
    };
    // The second process reaches Redis through a proxy the test can cut.
    let target = nodes
        .redis
        .trim_start_matches("redis://")
        .trim_end_matches('/')
        .to_owned();
    let proxy = crate::proxy::Proxy::start(target).await;
    let (cmd, address) = nodes.command(&format!("redis://{}/", proxy.address), &resume_off);
    // Started off this thread: the proxy runs on it.
    let cut_off = tokio::task::spawn_blocking(move || Server::spawn(cmd, address))
        .await
        .expect("start");
    nodes.servers.push(cut_off);
    nodes.know_each_other().await;

    let (mut x, mut y) = pair_across(&nodes.url(0), &nodes.url(1)).await;
    let (mut l1, mut l2) = pair_across(&nodes.url(1), &nodes.url(1)).await;
    x.say("before").await;
    assert_eq!(y.expect_type("message").await["message"], "before");
    x.expect_type("message").await;

    proxy.cut();
    // The others take it for dead: its visitor's partner is lost.
    assert_eq!(x.expect_close().await.reason, "partner lost");
    // It takes nobody for dead: its own chats go on, and newcomers pair within it.
    l1.say("still here").await;
    assert_eq!(l2.expect_type("message").await["message"], "still here");
    l1.expect_type("message").await;
    let (mut n1, mut n2) = pair_across(&nodes.url(1), &nodes.url(1)).await;
    n1.say("new here").await;
    assert_eq!(n2.expect_type("message").await["message"], "new here");

    proxy.restore();
    // Back, it learns it was taken for dead: its side of the cross-process chat ends too...
    assert_eq!(y.expect_close().await.reason, "partner lost");
    // ...and it pairs across processes again.
    let (mut p, mut q) = pair_across(&nodes.url(1), &nodes.url(0)).await;
    p.say("again").await;
    assert_eq!(q.expect_type("message").await["message"], "again");
    l2.say("and on").await;
    assert_eq!(l1.expect_type("message").await["message"], "and on");
}

/// A visitor known by its page token, on the server at `url`, asking for a partner.
async fn visitor(url: &str, token: &str) -> Client {
    let mut c = Client::connect(&format!("{url}?visitor={token}")).await;
    c.request().await;
    c
}

#[actix_rt::test]
async fn the_rematch_cooldown_holds_on_every_process() {
    let Some(nodes) = Nodes::start_or_skip("cooldown across processes", 3, &[]).await else {
        return;
    };
    let mut alice = visitor(&nodes.url(0), "alice").await;
    alice.expect_type("waiting").await;
    let mut bob = visitor(&nodes.url(1), "bob").await;
    let first = bob.recv().await;
    if first["type"] == "waiting" {
        bob.expect_type("response").await;
    }
    alice.expect_type("response").await;
    alice.leave().await;
    assert_eq!(bob.expect_close().await.reason, "partner left");

    // Both start over on the third process, which had no part in their chat.
    let mut bob2 = visitor(&nodes.url(2), "bob").await;
    bob2.expect_type("waiting").await;
    let mut alice2 = visitor(&nodes.url(2), "alice").await;
    alice2.expect_type("waiting").await;
    // Others arrive and are paired with them instead.
    let mut carol = visitor(&nodes.url(0), "carol").await;
    let mut dave = visitor(&nodes.url(1), "dave").await;
    for c in [&mut carol, &mut dave] {
        let frame = c.recv().await;
        if frame["type"] == "waiting" {
            c.expect_type("response").await;
        } else {
            assert_eq!(frame["type"], "response", "{frame}");
        }
    }
    alice2.expect_type("response").await;
    bob2.expect_type("response").await;
    alice2.say("alice here").await;
    bob2.say("bob here").await;
    let mut heard = [
        carol.expect_type("message").await["message"].clone(),
        dave.expect_type("message").await["message"].clone(),
    ];
    heard.sort_by_key(|v| v.to_string());
    assert_eq!(heard, [Value::from("alice here"), Value::from("bob here")]);
}

#[actix_rt::test]
async fn without_resume_a_stopped_process_tells_its_visitors_partners_at_once() {
    let resume_off = ["--resume-grace-secs", "0"];
    let Some(mut nodes) = Nodes::start_or_skip("stopped process", 2, &resume_off).await else {
        return;
    };
    let (_a, mut b) = pair_across(&nodes.url(0), &nodes.url(1)).await;
    nodes.servers[0].terminate();
    let stopped = Instant::now();
    assert_eq!(b.expect_close().await.reason, "partner lost");
    // Well before the node timeout (3 s) could have told.
    let took = stopped.elapsed();
    assert!(took < Duration::from_millis(2_500), "told after {took:?}");
    assert!(nodes.servers[0].wait_for_exit(PATIENCE).await);
    // The survivor pairs on.
    let _c = Client::arrive(&nodes.url(1), "waiting").await;
    let _d = arrive_paired(&nodes.url(1)).await;
}
