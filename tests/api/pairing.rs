//! Strangers meet, talk and part.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use serde_json::json;
use tokio_tungstenite::MaybeTlsStream;

use crate::helpers::{spawn_app, spawn_app_with, wait_for, without_flood_limits, Client};

#[actix_rt::test]
async fn a_lone_visitor_waits_and_the_next_one_pairs_with_them() {
    let app = spawn_app().await;
    let mut a = app.client().await;
    assert_eq!(a.recv_any().await, json!({"type": "online", "count": 1}));
    a.request().await;
    a.expect_type("waiting").await;

    let mut b = app.client().await;
    b.request().await;
    b.expect_type("response").await;
    a.expect_type("response").await;
}

#[actix_rt::test]
async fn every_message_goes_to_both_as_me_and_guest() {
    let app = spawn_app().await;
    let (mut a, mut b) = app.pair().await;

    a.say("hello <b>there</b>\nsecond line").await;
    let text = "hello <b>there</b>\nsecond line";
    assert_eq!(
        a.recv().await,
        json!({"type": "message", "message": text, "from": "me"})
    );
    assert_eq!(
        b.recv().await,
        json!({"type": "message", "message": text, "from": "guest"})
    );

    b.say("hi ☺").await;
    assert_eq!(b.recv().await["from"], "me");
    assert_eq!(
        a.recv().await,
        json!({"type": "message", "message": "hi ☺", "from": "guest"})
    );
}

#[actix_rt::test]
async fn typing_goes_to_the_partner_only() {
    let app = spawn_app().await;
    let (mut a, mut b) = app.pair().await;
    a.send_json(json!({"type": "typing", "typing": true})).await;
    assert_eq!(b.recv().await, json!({"type": "typing", "typing": true}));
    a.send_json(json!({"type": "typing", "typing": false}))
        .await;
    assert_eq!(b.recv().await, json!({"type": "typing", "typing": false}));
    // The sender got nothing for its typing: its next frame is its own message receipt.
    a.say("done").await;
    assert_eq!(a.recv().await["from"], "me");
}

#[actix_rt::test]
async fn when_one_leaves_the_partner_is_closed_with_partner_left() {
    let app = spawn_app().await;
    let (mut a, mut b) = app.pair().await;
    // The one who closes gets a close back: 1000.
    a.ws.close(None).await.expect("close");
    assert_eq!(a.expect_close().await.code, 1000);
    let closed = b.expect_close().await;
    assert_eq!(
        (closed.code, closed.reason.as_str()),
        (1000, "partner left")
    );
    app.wait_until_empty().await;
}

#[actix_rt::test]
async fn after_a_partner_leaves_a_new_connection_pairs_again() {
    let app = spawn_app().await;
    let (a, mut b) = app.pair().await;
    a.leave().await;
    b.expect_close().await;
    let (mut c, mut d) = app.pair().await;
    c.say("again").await;
    assert_eq!(d.recv().await["message"], "again");
    assert_eq!(c.recv().await["from"], "me");
}

#[actix_rt::test]
async fn a_waiting_visitor_who_leaves_leaves_the_queue() {
    let app = spawn_app().await;
    let mut a = app.client().await;
    a.request().await;
    a.expect_type("waiting").await;
    a.leave().await;
    app.wait_until_empty().await;
    // The next visitor waits instead of pairing with a ghost.
    let mut b = app.client().await;
    b.request().await;
    b.expect_type("waiting").await;
}

#[actix_rt::test]
async fn online_count_follows_arrivals_and_departures() {
    let app = spawn_app().await;
    let mut a = app.client().await;
    assert_eq!(a.recv_any().await["count"], 1);
    let b = app.client().await;
    wait_for_online(&mut a, 2).await;
    b.leave().await;
    wait_for_online(&mut a, 1).await;
}

async fn wait_for_online(client: &mut Client, count: u64) {
    loop {
        let frame = client.recv_any().await;
        if frame["type"] == "online" && frame["count"] == count {
            return;
        }
    }
}

/// Each side reads one frame for every eight it sends, so frames pile up for the other: past
/// the 32 that actix-ws queues for a socket, relaying falls back from the direct route to the
/// partner's outbox and back (`chat::link`). Nothing may be lost, doubled or reordered on the
/// way, and nobody is dropped as a slow reader.
#[actix_rt::test]
async fn messages_in_both_directions_arrive_exactly_once_in_order() {
    const PAIRS: usize = 10;
    const MESSAGES: usize = 200;
    let app = spawn_app_with(without_flood_limits).await;
    let mut pairs = Vec::new();
    for _ in 0..PAIRS {
        pairs.push(app.pair().await);
    }
    let talks = pairs.into_iter().enumerate().map(|(p, (a, b))| async move {
        let (a, b) = tokio::join!(talk(a, p, "a"), talk(b, p, "b"));
        (a, b)
    });
    for (a, b) in join_all(talks).await {
        let (a_sent, a_got) = a;
        let (b_sent, b_got) = b;
        assert_eq!(a_sent, b_got, "b received exactly what a sent, in order");
        assert_eq!(b_sent, a_got, "a received exactly what b sent, in order");
    }

    /// Sends MESSAGES messages while reading; returns (what it sent, what it got as guest).
    async fn talk(mut c: Client, pair: usize, who: &str) -> (Vec<String>, Vec<String>) {
        let sent: Vec<String> = (0..MESSAGES).map(|i| format!("{pair}-{who}-{i}")).collect();
        let mut got = Vec::new();
        let mut receipts = 0;
        let mut next = 0;
        while receipts < MESSAGES || got.len() < MESSAGES {
            if next < MESSAGES {
                c.say(&sent[next]).await;
                next += 1;
            }
            if next == MESSAGES || next % 8 == 0 {
                let frame = c.recv().await;
                assert_eq!(frame["type"], "message", "{frame}");
                let text = frame["message"].as_str().unwrap_or_default().to_owned();
                if frame["from"] == "me" {
                    assert_eq!(text, sent[receipts], "receipts come back in order");
                    receipts += 1;
                } else {
                    got.push(text);
                }
            }
        }
        (sent, got)
    }
}

#[actix_rt::test]
async fn two_hundred_simultaneous_arrivals_make_one_hundred_pairs() {
    const VISITORS: usize = 200;
    let app = spawn_app_with(without_flood_limits).await;
    let mut clients = join_all((0..VISITORS).map(|_| app.client())).await;
    join_all(clients.iter_mut().map(|c| c.request())).await;

    // Everyone ends up paired (a visitor told `waiting` first is paired later).
    join_all(clients.iter_mut().map(|c| async move {
        loop {
            let frame = c.recv().await;
            match frame["type"].as_str() {
                Some("waiting") => continue,
                Some("response") => return,
                _ => panic!("unexpected {frame}"),
            }
        }
    }))
    .await;
    let chats = app.chats().await;
    assert_eq!(chats.len(), VISITORS / 2);
    assert!(chats
        .iter()
        .all(|(_, completed, m)| *completed && m.len() == 2));
    let rids: HashSet<i64> = chats.iter().flat_map(|(_, _, m)| m.clone()).collect();
    assert_eq!(rids.len(), VISITORS, "every visitor is in exactly one chat");
    app.assert_row_invariants().await;
    let stats = app.stats().await;
    assert_eq!((stats.chatting, stats.waiting), (VISITORS, 0));

    // Each pair can talk: every message reaches exactly one other visitor.
    for (i, c) in clients.iter_mut().enumerate() {
        c.say(&format!("from {i}")).await;
    }
    let mut heard = HashSet::new();
    for c in clients.iter_mut() {
        for _ in 0..2 {
            let frame = c.expect_type("message").await;
            if frame["from"] == "guest" {
                assert!(heard.insert(frame["message"].as_str().unwrap_or_default().to_owned()));
            }
        }
    }
    assert_eq!(heard.len(), VISITORS);

    join_all(clients.into_iter().map(|c| c.leave())).await;
    app.wait_until_empty().await;
}

#[actix_rt::test]
async fn random_arrivals_and_departures_keep_every_invariant() {
    const ROUNDS: usize = 6;
    const VISITORS: usize = 40;
    let app = spawn_app_with(without_flood_limits).await;
    let mut rng = fastrand::Rng::with_seed(7);
    for _ in 0..ROUNDS {
        let mut clients = Vec::new();
        for _ in 0..VISITORS {
            let mut c = app.client().await;
            c.request().await;
            clients.push(c);
        }
        // A random half leaves at once, in random order, while pairing is still going on.
        rng.shuffle(&mut clients);
        let stay = clients.split_off(VISITORS / 2);
        join_all(clients.into_iter().map(|c| c.leave())).await;
        app.assert_row_invariants().await;

        // Once things settle, no two eligible visitors both wait.
        wait_for("pairing to settle", || async {
            let stats = app.stats().await;
            let chats = app.chats().await;
            let waiting_rows = chats.iter().filter(|(_, done, _)| !done).count();
            stats.waiting <= 1 && waiting_rows == stats.waiting
        })
        .await;
        app.assert_row_invariants().await;
        join_all(stay.into_iter().map(|c| c.leave())).await;
        app.wait_until_empty().await;
    }
}

#[actix_rt::test]
async fn many_clients_see_their_own_frames_only() {
    let app = spawn_app().await;
    let (mut a, mut b) = app.pair().await;
    let (mut c, mut d) = app.pair().await;
    a.say("for b").await;
    c.say("for d").await;
    assert_eq!(b.recv().await["message"], "for b");
    assert_eq!(d.recv().await["message"], "for d");
    assert_eq!(a.recv().await["message"], "for b");
    assert_eq!(c.recv().await["message"], "for d");
    wait_for("both chats recorded", || async {
        app.chats().await.len() == 2
    })
    .await;
}

/// A visitor's next connection, carrying the page's visitor token, asking for a partner.
async fn visitor(app: &crate::helpers::TestApp, token: &str, first_answer: &str) -> Client {
    Client::arrive(&format!("{}?visitor={token}", app.ws_url()), first_answer).await
}

#[actix_rt::test]
async fn starting_over_does_not_pair_you_again_with_the_stranger_you_just_left() {
    let app = spawn_app().await;
    let a = visitor(&app, "alice", "waiting").await;
    let mut b = visitor(&app, "bob", "response").await;
    a.leave().await;
    b.expect_close().await;

    // Both start over: bob first, then alice, who must not get bob back.
    let mut b2 = visitor(&app, "bob", "waiting").await;
    let mut a2 = visitor(&app, "alice", "waiting").await;

    // Someone else arrives and is paired; the next one gets the other.
    let mut carol = visitor(&app, "carol", "response").await;
    let mut dave = visitor(&app, "dave", "response").await;
    a2.expect_type("response").await;
    b2.expect_type("response").await;
    a2.say("hi, who are you?").await;
    b2.say("hello stranger").await;
    let heard_by_carol = carol.recv().await["message"].clone();
    let heard_by_dave = dave.recv().await["message"].clone();
    let mut heard = [heard_by_carol, heard_by_dave];
    heard.sort_by_key(|v| v.to_string());
    assert_eq!(heard, [json!("hello stranger"), json!("hi, who are you?")]);
}

#[actix_rt::test]
async fn two_who_are_alone_together_meet_again_after_the_cooldown() {
    const COOLDOWN: Duration = Duration::from_secs(3);
    let app = spawn_app_with(|s| s.rematch_cooldown = COOLDOWN).await;
    let (a, mut b) = {
        let mut a = visitor(&app, "alice", "waiting").await;
        let b = visitor(&app, "bob", "response").await;
        a.expect_type("response").await;
        (a, b)
    };
    // The cooldown starts when the server handles the leave, after this instant: a pairing
    // that arrives before `apart_until` was made during the cooldown.
    let apart_until = Instant::now() + COOLDOWN;
    a.leave().await;
    b.expect_close().await;
    // Nobody else comes: once the cooldown is over they are paired rather than left waiting
    // (each may be told `waiting` first, unless the machine is slow enough that it is over).
    let mut b2 = Client::connect(&format!("{}?visitor=bob", app.ws_url())).await;
    b2.request().await;
    let mut a2 = Client::connect(&format!("{}?visitor=alice", app.ws_url())).await;
    a2.request().await;
    for c in [&mut a2, &mut b2] {
        let mut frame = c.recv().await;
        if frame["type"] == "waiting" {
            frame = c.recv().await;
        }
        assert_eq!(frame["type"], "response", "{frame}");
        let early = apart_until.saturating_duration_since(Instant::now());
        assert!(
            early.is_zero(),
            "paired again {early:?} before the cooldown ended"
        );
    }
    app.assert_row_invariants().await;
}

#[actix_rt::test]
async fn the_online_count_goes_out_at_most_once_a_second_and_ends_right() {
    let app = spawn_app_with(without_flood_limits).await;
    let started = Instant::now();
    let mut watcher = app.client().await;
    assert_eq!(watcher.recv_any().await["count"], 1);
    // For two seconds visitors come and go, changing the count hundreds of times; the watcher
    // does not read meanwhile (what is sent waits in its socket).
    let mut stay = Vec::new();
    let mut i = 0;
    while started.elapsed() < Duration::from_secs(2) {
        stay.push(app.client().await);
        if i % 2 == 1 {
            // Gone at once (no close handshake to wait for).
            drop(stay.swap_remove(0));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
        i += 1;
    }
    let last = 1 + stay.len() as u64;
    let mut updates = 0u64;
    loop {
        let frame = watcher.recv_any().await;
        assert_eq!(frame["type"], "online", "{frame}");
        updates += 1;
        if frame["count"] == last {
            break;
        }
    }
    // The first count went out after `started` and each update at least a second after the
    // one before, so no more updates than whole seconds since then can have arrived by now.
    let seconds = started.elapsed().as_secs_f64();
    assert!(
        updates as f64 <= seconds,
        "{updates} online updates in {seconds:.2} s"
    );
}

#[actix_rt::test]
async fn an_invalid_visitor_token_counts_as_the_address() {
    // Every client here has one address. A visitor who just talked to `pN` is kept apart from
    // `pN`'s next connection for the cooldown: the next token-less connection, keyed by the
    // address, is kept apart too exactly when the token was refused (taken as the address).
    let app = spawn_app().await;
    let cases = [
        ("valid_token-1", false),
        ("", true),
        (&*"a".repeat(65), true),
        ("a%20b", true),
        ("%C3%A9", true),
        ("a.b", true),
    ];
    for (n, (token, refused)) in cases.into_iter().enumerate() {
        let partner = format!("p{n}");
        let p = visitor(&app, &partner, "waiting").await;
        let mut x = Client::arrive(&format!("{}?visitor={token}", app.ws_url()), "response").await;
        p.leave().await;
        x.expect_close().await;
        let p2 = visitor(&app, &partner, "waiting").await;
        eprintln!("token {token:?}: refused {refused}");
        let expected = if refused { "waiting" } else { "response" };
        let by_address = Client::arrive(&app.ws_url(), expected).await;
        by_address.leave().await;
        p2.leave().await;
        app.wait_until_empty().await;
    }
}

#[actix_rt::test]
async fn a_partner_whose_connection_breaks_without_a_close_is_away_then_lost_after_the_grace() {
    let app = spawn_app_with(|s| s.resume_grace = Duration::from_secs(1)).await;
    for reset in [false, true] {
        let (a, mut b) = app.pair().await;
        let MaybeTlsStream::Plain(tcp) = a.ws.into_inner() else {
            unreachable!("plain TCP")
        };
        if reset {
            tcp.set_zero_linger().expect("linger");
        }
        // Dropped: a FIN (or with zero linger an RST), and no close frame.
        drop(tcp);
        b.expect_type("partner_away").await;
        let closed = b.expect_close().await;
        assert_eq!(
            (closed.code, closed.reason.as_str()),
            (1000, "partner lost"),
            "reset: {reset}"
        );
    }
    app.wait_until_empty().await;
}

#[actix_rt::test]
async fn two_tabs_of_one_visitor_wait_apart_while_others_come_and_meet_after_the_cooldown() {
    let app = spawn_app_with(|s| s.rematch_cooldown = std::time::Duration::from_secs(2)).await;
    // One browser's two tabs: the same page token.
    let mut tab1 = visitor(&app, "one-browser", "waiting").await;
    let mut tab2 = visitor(&app, "one-browser", "waiting").await;
    // Someone else comes: paired with the tab that waited longest, not the two tabs together.
    let mut carol = visitor(&app, "carol", "response").await;
    tab1.expect_type("response").await;
    carol.say("hi").await;
    assert_eq!(tab1.recv().await["message"], "hi");
    // Nobody else comes for the cooldown: the other tab is then paired with a third one.
    let mut tab3 = visitor(&app, "one-browser", "waiting").await;
    tab2.expect_type("response").await;
    tab3.expect_type("response").await;
    app.assert_row_invariants().await;
    // Visitors known only by their address (many people behind one NAT) are never kept apart.
    let (_a, _b) = app.pair().await;
}
