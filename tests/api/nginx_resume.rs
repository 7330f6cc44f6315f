//! The test: visitors behind nginx (the README's configuration) chat across three
//! processes; one process is restarted (SIGTERM, then started again) and another killed
//! (SIGKILL) mid-chat; each visitor is a real WebSocket client that follows the protocol
//! (on a 1012 close or a connection broken without a close it reconnects through nginx to
//! `/ws?resume=<token>`, with backoff), and every message whose `me` copy its sender got
//! reached the partner exactly once, in order.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

use crate::cluster::Nodes;
use crate::helpers::{wait_for, Client, PATIENCE};
use crate::nginx::{gauge, nginx_or_skip, Nginx};
use crate::resume::token_of;

/// What one visitor saw.
#[derive(Debug, Default)]
struct Side {
    /// Its own messages whose `me` copy came, in order.
    receipted: Vec<u64>,
    /// Its partner's messages, in order.
    heard: Vec<u64>,
    undelivered: usize,
    resumes: usize,
    /// `partner_away` notices.
    aways: usize,
    /// Its chat ended (partner lost, or its resume failed).
    ended: Option<String>,
}

/// Shared with the test while the visitor talks.
#[derive(Default)]
struct Shared {
    side: Mutex<Side>,
    /// Connected and in its chat now.
    talking: AtomicBool,
    done: AtomicBool,
}

impl Shared {
    fn side(&self) -> std::sync::MutexGuard<'_, Side> {
        self.side.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Resumes through nginx with backoff, as the page does: the new connection and token, or
/// `None` when the chat cannot be resumed (or nothing answers in time).
async fn resume_through(nginx: &str, token: &str, wait: Duration) -> Option<(Client, String)> {
    tokio::time::sleep(wait).await;
    let deadline = Instant::now() + Duration::from_secs(12);
    let mut backoff = Duration::from_millis(100);
    while Instant::now() < deadline {
        let url = format!("ws://{nginx}/ws?resume={token}");
        if let Ok((ws, _)) = tokio_tungstenite::connect_async(url).await {
            let mut c = Client { ws };
            loop {
                let Ok(Some(Ok(message))) = tokio::time::timeout(PATIENCE, c.ws.next()).await
                else {
                    break;
                };
                let Message::Text(text) = message else {
                    continue;
                };
                let frame: Value = serde_json::from_str(&text).expect("JSON");
                match frame["type"].as_str() {
                    Some("online") => continue,
                    Some("resumed") => return Some((c, token_of(&frame))),
                    _ => {
                        assert_eq!(frame["error"], "resume_failed", "{frame}");
                        return None;
                    }
                }
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(1));
    }
    None
}

/// One visitor: says a number every `every` until `stop`, then "end"; resumes when its
/// connection is cut (at once after 1012; after `blip` when it broke without a close, like a
/// laptop whose lid was shut: long enough for the others to find its process dead, so that
/// its partner's messages are held meanwhile); stops when it hears its partner's "end" or its
/// chat ends.
async fn visitor(
    mut c: Client,
    mut token: String,
    nginx: String,
    every: Duration,
    blip: Duration,
    stop: Arc<AtomicBool>,
    shared: Arc<Shared>,
) {
    let mut next = 0u64;
    let mut said_end = false;
    let mut tick = tokio::time::interval(every);
    shared.talking.store(true, Ordering::SeqCst);
    loop {
        // What ends this connection: a reason to resume (Ok: how long to wait first) or to
        // stop (Err).
        let broke: Result<Duration, String> = tokio::select! {
            _ = tick.tick(), if !said_end => {
                let text = if stop.load(Ordering::SeqCst) {
                    said_end = true;
                    "end".to_owned()
                } else {
                    next += 1;
                    next.to_string()
                };
                let frame = serde_json::json!({"type": "message", "message": text});
                if c.ws.send(Message::text(frame.to_string())).await.is_ok() {
                    continue;
                }
                Ok(blip)
            }
            message = c.ws.next() => match message {
                Some(Ok(Message::Text(text))) => {
                    let frame: Value = serde_json::from_str(&text).expect("JSON");
                    let said = frame["message"].as_str().unwrap_or("");
                    match (frame["type"].as_str(), frame["from"].as_str()) {
                        (Some("message"), Some(from)) if said == "end" => {
                            if from == "guest" {
                                break;
                            }
                        }
                        (Some("message"), Some("me")) => {
                            shared.side().receipted.push(said.parse().expect("number"));
                        }
                        (Some("message"), Some("guest")) => {
                            shared.side().heard.push(said.parse().expect("number"));
                        }
                        (Some("error"), _) if frame["error"] == "undelivered" => {
                            shared.side().undelivered += 1;
                        }
                        (Some("partner_away"), _) => shared.side().aways += 1,
                        (Some("online" | "typing" | "partner_back"), _) => {}
                        _ => panic!("unexpected {frame}"),
                    }
                    continue;
                }
                Some(Ok(Message::Close(Some(close)))) if u16::from(close.code) == 1012 => {
                    Ok(Duration::ZERO)
                }
                Some(Ok(Message::Close(close))) => Err(format!("closed: {close:?}")),
                Some(Ok(_)) => continue,
                // Broken without a close: nginx lost its upstream, or the socket went.
                Some(Err(_)) | None => Ok(blip),
            }
        };
        let wait = match broke {
            Ok(wait) => wait,
            Err(why) => {
                shared.side().ended = Some(why);
                break;
            }
        };
        shared.talking.store(false, Ordering::SeqCst);
        match resume_through(&nginx, &token, wait).await {
            Some((resumed, next_token)) => {
                c = resumed;
                token = next_token;
                shared.side().resumes += 1;
                shared.talking.store(true, Ordering::SeqCst);
                // An "end" lost with the old connection is said again.
                said_end = false;
            }
            None => {
                shared.side().ended = Some("resume failed".into());
                break;
            }
        }
    }
    shared.talking.store(false, Ordering::SeqCst);
    shared.done.store(true, Ordering::SeqCst);
}

/// Which server (by index) took the connection just made: the one whose connection gauge
/// went up.
async fn landed(metrics: &[String], before: &[u64]) -> usize {
    let deadline = Instant::now() + PATIENCE;
    while Instant::now() < deadline {
        for (i, m) in metrics.iter().enumerate() {
            if gauge(m, "pairchat_connections").await.unwrap_or(0) > before[i] {
                return i;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the new connection was not counted anywhere")
}

async fn gauges(metrics: &[String]) -> Vec<u64> {
    let mut all = Vec::new();
    for m in metrics {
        all.push(gauge(m, "pairchat_connections").await.unwrap_or(0));
    }
    all
}

/// A connection through nginx, and the server it landed on.
async fn connect_landed(nginx: &str, metrics: &[String]) -> (Client, usize) {
    let before = gauges(metrics).await;
    let mut c = Client::connect(&format!("ws://{nginx}/ws")).await;
    assert_eq!(c.recv_any().await["type"], "online");
    let server = landed(metrics, &before).await;
    (c, server)
}

#[actix_rt::test]
async fn visitors_behind_nginx_lose_no_receipted_message_when_processes_restart_and_die() {
    let test = "resume behind nginx";
    if !nginx_or_skip(test) {
        return;
    }
    let Some(mut nodes) = Nodes::start_or_skip(test, 0, &[]).await else {
        return;
    };
    let metrics: Vec<String> = (0..3).map(|_| crate::process::free_address()).collect();
    let flags = |m: &str| -> Vec<String> {
        vec![
            "--trust-forwarded-for".into(),
            "--metrics-bind".into(),
            m.into(),
        ]
    };
    for m in &metrics {
        let f = flags(m);
        let f: Vec<&str> = f.iter().map(String::as_str).collect();
        let server = nodes.start(&f);
        nodes.servers.push(server);
    }
    nodes.know_each_other().await;
    let upstreams: Vec<String> = nodes.servers.iter().map(|s| s.address.clone()).collect();
    let nginx = Nginx::start(&upstreams);

    // Four pairs, each with one side on the process that is left alone (2) and the other on
    // the one restarted (0) or the one killed (1); nginx's least_conn spreads the connections.
    let mut landed_on: [Vec<Client>; 3] = Default::default();
    while landed_on[0].len() < 2 || landed_on[1].len() < 2 || landed_on[2].len() < 4 {
        let (c, at) = connect_landed(&nginx.address, &metrics).await;
        landed_on[at].push(c);
    }
    let mut pairs = Vec::new();
    for n in 0..4 {
        let mut first = landed_on[n / 2].remove(0);
        first.request().await;
        first.expect_type("waiting").await;
        let mut second = landed_on[2].remove(0);
        second.request().await;
        // With several matchmakers the answer may be `waiting` first (see `cluster`).
        let mut answer = second.recv().await;
        if answer["type"] == "waiting" {
            answer = second.expect_type("response").await;
        }
        let second_token = token_of(&answer);
        let first_token = token_of(&first.expect_type("response").await);
        pairs.push([(first, first_token, n / 2), (second, second_token, 2)]);
    }
    // The rest stay idle.
    let _idle = landed_on;
    let placed: Vec<[usize; 2]> = pairs.iter().map(|p| [p[0].2, p[1].2]).collect();
    eprintln!("pairs on processes {placed:?}");

    let stop = Arc::new(AtomicBool::new(false));
    let mut sides = Vec::new();
    let mut tasks = Vec::new();
    for pair in pairs {
        for (c, token, _) in pair {
            let shared = Arc::new(Shared::default());
            sides.push(shared.clone());
            tasks.push(tokio::spawn(visitor(
                c,
                token,
                nginx.address.clone(),
                Duration::from_millis(60),
                Duration::from_secs(6),
                stop.clone(),
                shared,
            )));
        }
    }
    let receipted =
        |sides: &[Arc<Shared>]| -> usize { sides.iter().map(|s| s.side().receipted.len()).sum() };
    let all_talking = |sides: &[Arc<Shared>]| {
        sides
            .iter()
            .all(|s| s.talking.load(Ordering::SeqCst) || s.done.load(Ordering::SeqCst))
    };
    let flowing = |sides: Vec<Arc<Shared>>, more: usize| async move {
        let from = receipted(&sides);
        wait_for("messages flowing", || {
            let sides = sides.clone();
            async move { receipted(&sides) >= from + more }
        })
        .await;
    };
    flowing(sides.clone(), 30).await;

    // Restart one.
    let restarted = 0;
    nodes.servers[restarted].terminate();
    assert!(nodes.servers[restarted].wait_for_exit(PATIENCE).await);
    wait_for("its visitors resumed elsewhere", || {
        let sides = sides.clone();
        async move { all_talking(&sides) }
    })
    .await;
    let address = nodes.servers[restarted].address.clone();
    let f = flags(&metrics[restarted]);
    let f: Vec<&str> = f.iter().map(String::as_str).collect();
    nodes.servers[restarted] = nodes.start_at(&address, &f);
    nodes.know_each_other().await;
    flowing(sides.clone(), 30).await;

    // Kill another.
    let killed = 1;
    nodes.servers[killed].child.kill().expect("SIGKILL");
    let _ = nodes.servers[killed].child.wait();
    wait_for("its visitors resumed elsewhere", || {
        let sides = sides.clone();
        async move { all_talking(&sides) }
    })
    .await;
    flowing(sides.clone(), 30).await;

    stop.store(true, Ordering::SeqCst);
    for task in tasks {
        tokio::time::timeout(PATIENCE * 3, task)
            .await
            .expect("the visitors finish")
            .expect("visitor task");
    }
    let sides: Vec<Side> = sides
        .iter()
        .map(|s| std::mem::take(&mut *s.side()))
        .collect();
    let mut survived = 0;
    let mut total = 0;
    for (i, pair) in sides.chunks(2).enumerate() {
        eprintln!(
            "pair {i} on {:?}: resumes {:?}, aways {:?}, receipted {:?}, heard {:?}, undelivered {:?}, ended {:?}",
            placed[i],
            [pair[0].resumes, pair[1].resumes],
            [pair[0].aways, pair[1].aways],
            [pair[0].receipted.len(), pair[1].receipted.len()],
            [pair[0].heard.len(), pair[1].heard.len()],
            [pair[0].undelivered, pair[1].undelivered],
            [&pair[0].ended, &pair[1].ended],
        );
        for (me, other) in [(&pair[0], &pair[1]), (&pair[1], &pair[0])] {
            let heard = &other.heard;
            assert!(
                heard.windows(2).all(|w| w[0] < w[1]),
                "pair {i}: heard once, in order: {heard:?}"
            );
            for n in &me.receipted {
                assert!(
                    heard.contains(n),
                    "pair {i}: receipted {n} never arrived: {heard:?}"
                );
            }
            total += me.receipted.len();
        }
        if pair.iter().all(|s| s.ended.is_none()) {
            survived += 1;
        }
    }
    // The partners of the killed process's visitors were told they were away (and what they
    // said meanwhile was held, then delivered: checked above).
    for (i, pair) in sides.chunks(2).enumerate().skip(2) {
        assert!(pair[1].aways >= 1, "pair {i}: its partner was never away");
    }
    // Every pair had a side on a process that went, and every chat went on.
    assert_eq!(survived, 4, "every chat survived");
    assert!(
        sides.iter().filter(|s| s.resumes > 0).count() >= 2,
        "visitors resumed"
    );
    assert!(total > 100, "messages went through: {total}");
    drop(nginx);
}
