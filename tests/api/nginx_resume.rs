//! The test: visitors behind nginx (the README's configuration) chat across three
//! processes; one process is restarted (SIGTERM, then started again) and another killed
//! (SIGKILL) mid-chat; each visitor is a real WebSocket client that follows the protocol
//! (on a 1012 close or a connection broken without a close it reconnects through nginx to
//! `/ws?resume=<token>`, with backoff), and every message whose `me` copy its sender got
//! reached the partner exactly once, in order.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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
    /// Connections that broke without a close (their process went).
    broken: usize,
    /// `partner_away` notices.
    aways: usize,
    /// Its chat ended (partner lost, or its resume failed).
    ended: Option<String>,
}

/// Shared with the test while the visitor talks.
#[derive(Default)]
struct Shared {
    side: Mutex<Side>,
    /// The last number it said (receipted or not).
    said: AtomicU64,
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

/// A chat message saying `text`.
fn message_frame(text: &str) -> Message {
    Message::text(serde_json::json!({"type": "message", "message": text}).to_string())
}

/// One visitor: says a number every `every` until `stop`, then "end"; resumes when its
/// connection is cut (at once after 1012; after `blip` when it broke without a close, like a
/// laptop whose lid was shut: long enough for the others to find its process dead, so that
/// its partner's messages are held meanwhile); stops when it hears its partner's "end" (having
/// said its own) or its chat ends.
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
                    shared.said.store(next, Ordering::SeqCst);
                    next.to_string()
                };
                if c.ws.send(message_frame(&text)).await.is_ok() {
                    continue;
                }
                shared.side().broken += 1;
                Ok(blip)
            }
            message = c.ws.next() => match message {
                Some(Ok(Message::Text(text))) => {
                    let frame: Value = serde_json::from_str(&text).expect("JSON");
                    let said = frame["message"].as_str().unwrap_or("");
                    match (frame["type"].as_str(), frame["from"].as_str()) {
                        (Some("message"), Some(from)) if said == "end" => {
                            if from == "guest" {
                                // Ours first if not yet said (a visitor that has just resumed
                                // catches up on its ticks, so its "end" may come before ours):
                                // the partner leaves once it hears it.
                                if !said_end {
                                    let _ = c.ws.send(message_frame("end")).await;
                                }
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
                Some(Err(_)) | None => {
                    shared.side().broken += 1;
                    Ok(blip)
                }
            }
        };
        let wait = match broke {
            Ok(wait) => wait,
            Err(why) => {
                shared.side().ended = Some(why);
                break;
            }
        };
        match resume_through(&nginx, &token, wait).await {
            Some((resumed, next_token)) => {
                c = resumed;
                token = next_token;
                shared.side().resumes += 1;
                // An "end" lost with the old connection is said again.
                said_end = false;
            }
            None => {
                shared.side().ended = Some("resume failed".into());
                break;
            }
        }
    }
}

/// What each visitor had said when something happened to its process.
fn said_by(sides: &[Arc<Shared>]) -> Vec<u64> {
    sides
        .iter()
        .map(|s| s.said.load(Ordering::SeqCst))
        .collect()
}

/// Whether every chat is whole again since `said` (`said_by` at that moment): each side has
/// heard something its partner said since then, or the chat has ended. A visitor cut off
/// (closed with 1012, or its connection broken) hears nothing new from its partner, and says
/// nothing its partner hears, until it has resumed; what a visitor saw of its own connection
/// cannot tell this, since the test may look before the visitor has read its socket.
fn whole_again(sides: &[Arc<Shared>], said: &[u64]) -> bool {
    sides.chunks(2).zip(said.chunks(2)).all(|(pair, said)| {
        let (first, second) = (pair[0].side(), pair[1].side());
        let heard_since = |side: &Side, partner_said: u64| side.heard.last() > Some(&partner_said);
        first.ended.is_some()
            || second.ended.is_some()
            || (heard_since(&first, said[1]) && heard_since(&second, said[0]))
    })
}

/// Waits until every chat is whole again since `said` (see `whole_again`), for as long as
/// `within`.
async fn wait_whole(sides: &[Arc<Shared>], said: &[u64], within: Duration) {
    let deadline = Instant::now() + within;
    while !whole_again(sides, said) {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for every chat to be whole again"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
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
    // the one restarted (0) or the one killed (1), and a fifth with both sides on the one
    // restarted (its chat is handed to another process); nginx's least_conn spreads the
    // connections.
    let mut landed_on: [Vec<Client>; 3] = Default::default();
    while landed_on[0].len() < 4 || landed_on[1].len() < 2 || landed_on[2].len() < 4 {
        let (c, at) = connect_landed(&nginx.address, &metrics).await;
        landed_on[at].push(c);
    }
    let mut pairs = Vec::new();
    for n in 0..5 {
        let (on, other) = if n < 4 { (n / 2, 2) } else { (0, 0) };
        let mut first = landed_on[on].remove(0);
        first.request().await;
        first.expect_type("waiting").await;
        let mut second = landed_on[other].remove(0);
        second.request().await;
        // With several matchmakers the answer may be `waiting` first (see `cluster`).
        let mut answer = second.recv().await;
        if answer["type"] == "waiting" {
            answer = second.expect_type("response").await;
        }
        let second_token = token_of(&answer);
        let first_token = token_of(&first.expect_type("response").await);
        pairs.push([(first, first_token, on), (second, second_token, other)]);
    }
    // The rest stay idle.
    let _idle = landed_on;
    let placed: Vec<[usize; 2]> = pairs.iter().map(|p| [p[0].2, p[1].2]).collect();
    eprintln!("pairs on processes {placed:?}");

    let stop = Arc::new(AtomicBool::new(false));
    let blip = Duration::from_secs(6);
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
                blip,
                stop.clone(),
                shared,
            )));
        }
    }
    let receipted =
        |sides: &[Arc<Shared>]| -> usize { sides.iter().map(|s| s.side().receipted.len()).sum() };
    // A visitor whose connection broke waits `blip` before it resumes; a resume nobody can
    // grant is refused after the claim timeout (4 s).
    let settle = blip + PATIENCE;
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
    // Its visitors resume elsewhere; the chat of the fifth pair goes on on another process.
    wait_whole(&sides, &said_by(&sides), settle).await;
    for (i, side) in sides.iter().enumerate() {
        let ended = side.side().ended.clone();
        assert_eq!(ended, None, "side {i}: its chat went on after the restart");
    }
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
    let broken_before: Vec<usize> = sides.iter().map(|s| s.side().broken).collect();
    // Its visitors resume elsewhere once they find their connection broken (after `blip`).
    // Not before they are back may the visitors stop: until their partners' processes know
    // the killed one is dead, what the partners say to them is refused `undelivered`, and an
    // `end` refused is not said again, so each side of the chat would wait for the other's.
    wait_whole(&sides, &said_by(&sides), settle).await;
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
    let mut adopted = Vec::new();
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
        // Both visitors on the killed process when it died: the process that swept it
        // adopted their chat (recorded in Redis while it lasted), and they resumed it.
        let killed_with_it = pair
            .iter()
            .zip(&broken_before[2 * i..])
            .all(|(side, before)| side.broken > *before);
        if killed_with_it {
            adopted.push(i);
        }
        assert!(
            pair.iter().all(|s| s.ended.is_none()),
            "pair {i}: its chat went on: {:?}",
            [&pair[0].ended, &pair[1].ended]
        );
        survived += 1;
    }
    eprintln!("pairs wholly on the killed process (adopted): {adopted:?}");
    // The partners of the killed process's visitors were told they were away (and what they
    // said meanwhile was held, then delivered: checked above).
    for (i, pair) in sides.chunks(2).enumerate().skip(2).take(2) {
        assert!(pair[1].aways >= 1, "pair {i}: its partner was never away");
    }
    // Both sides of the fifth pair were closed with 1012 and resumed.
    let both = &sides[8..10];
    assert!(
        both.iter().all(|s| s.resumes >= 1),
        "the chat on the restarted process resumed: {:?}",
        both.iter().map(|s| s.resumes).collect::<Vec<_>>()
    );
    // Every pair had a side on a process that went, and every chat went on: even one whose
    // two visitors were both on the killed process (only the fifth pair can be: its two
    // resumes after the restart go where nginx sends them, in some runs both to the process
    // killed next).
    assert!(
        adopted.iter().all(|&i| i == 4),
        "pairs wholly killed: {adopted:?}"
    );
    assert_eq!(survived, 5, "every chat survived");
    assert!(
        sides.iter().filter(|s| s.resumes > 0).count() >= 2,
        "visitors resumed"
    );
    assert!(total > 100, "messages went through: {total}");
    drop(nginx);
}
