//! Resuming across processes (MariaDB + Redis, real binaries): a visitor whose connection broke
//! takes its chat up again on any process (its partner's, its old one's or a third); a stopped
//! process (SIGTERM) closes its paired visitors with 1012 and their chats go on elsewhere; a
//! killed one (SIGKILL) leaves them away, not lost, until the grace runs out.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::cluster::{health, Nodes};
use crate::helpers::{Client, PATIENCE};
use crate::resume::{break_connection, resume_url, token_of};

/// A pair whose first visitor waits on `a` and whose second arrives on `b`, with their tokens.
pub async fn pair_across_with_tokens(a: &str, b: &str) -> ((Client, String), (Client, String)) {
    let mut first = Client::arrive(a, "waiting").await;
    let mut second = Client::connect(b).await;
    second.request().await;
    let mut frame = second.recv().await;
    if frame["type"] == "waiting" {
        frame = second.expect_type("response").await;
    }
    assert_eq!(frame["type"], "response", "{frame}");
    let second_token = token_of(&frame);
    let first_token = token_of(&first.expect_type("response").await);
    ((first, first_token), (second, second_token))
}

/// Resumes with `token` at `url`: the client, and its next token.
pub async fn resume_at(url: &str, token: &str) -> (Client, String) {
    let mut c = Client::connect(&resume_url(url, token)).await;
    let resumed = c.expect_type("resumed").await;
    let next = token_of(&resumed);
    (c, next)
}

fn said(frame: &Value) -> (String, String) {
    assert_eq!(frame["type"], "message", "{frame}");
    (
        frame["message"].as_str().unwrap_or_default().to_owned(),
        frame["from"].as_str().unwrap_or_default().to_owned(),
    )
}

fn mine(text: &str) -> (String, String) {
    (text.to_owned(), "me".to_owned())
}

fn theirs(text: &str) -> (String, String) {
    (text.to_owned(), "guest".to_owned())
}

/// `from` says `text` and `to` hears it, both as they should.
async fn talk(from: &mut Client, to: &mut Client, text: &str) {
    from.say(text).await;
    assert_eq!(said(&from.recv().await), mine(text));
    assert_eq!(said(&to.recv().await), theirs(text));
}

/// `away` broke; `partner` is told, says `held` (held, no receipt yet); `away` resumes at
/// `url`, hears what was held in order, and `partner` hears `partner_back`, then the receipts;
/// then each says something. Returns the resumed client and its next token.
async fn blip_and_resume(
    away: Client,
    token: &str,
    partner: &mut Client,
    url: &str,
    held: &[&str],
) -> (Client, String) {
    break_connection(away, false);
    partner.expect_type("partner_away").await;
    for text in held {
        partner.say(text).await;
    }
    let (mut back, next) = resume_at(url, token).await;
    for text in held {
        assert_eq!(said(&back.recv().await), theirs(text));
    }
    // Said at once: it must reach the partner after `partner_back`.
    back.say("I am back").await;
    assert_eq!(
        partner.expect_type("partner_back").await["type"],
        "partner_back"
    );
    // The receipts of what was held, in order; the message from the other process may come
    // between them (a receipt from another process comes once that process has taken it).
    let mut heard = Vec::new();
    for _ in 0..=held.len() {
        heard.push(said(&partner.recv().await));
    }
    let receipts: Vec<_> = heard.iter().filter(|m| m.1 == "me").cloned().collect();
    let expected: Vec<_> = held.iter().map(|t| mine(t)).collect();
    assert_eq!(receipts, expected, "{heard:?}");
    assert!(heard.contains(&theirs("I am back")), "{heard:?}");
    assert_eq!(said(&back.recv().await), mine("I am back"));
    talk(partner, &mut back, "welcome back").await;
    (back, next)
}

#[actix_rt::test]
async fn a_broken_connection_resumes_on_a_third_process_on_its_partners_and_on_its_old_one() {
    let Some(nodes) = Nodes::start_or_skip("resume across processes", 3, &[]).await else {
        return;
    };
    let urls: Vec<String> = (0..3).map(|i| nodes.url(i)).collect();
    let ((a, a_token), (mut b, b_token)) = pair_across_with_tokens(&urls[0], &urls[1]).await;
    // a (on 0, partner on 1) resumes on 2: a third process.
    let (a, a_token) = blip_and_resume(a, &a_token, &mut b, &urls[2], &["one", "two"]).await;
    // Again, on its partner's process (1).
    let (a, a_token) = blip_and_resume(a, &a_token, &mut b, &urls[1], &["three"]).await;
    // Both on 1 now; a resumes on 0 (its partner's process is its old one).
    let (mut a, _) = blip_and_resume(a, &a_token, &mut b, &urls[0], &["four"]).await;
    // b (on 1, partner on 0) resumes on 0: its partner's process, the claim granted there.
    let (mut b, _) = blip_and_resume(b, &b_token, &mut a, &urls[0], &["five"]).await;
    // A spent token is refused, wherever it is used.
    let mut late = Client::connect(&resume_url(&urls[2], &a_token)).await;
    late.expect_error("resume_failed").await;
    talk(&mut a, &mut b, "still here").await;
    // The chat ends as chats do, and its rows go.
    a.leave().await;
    assert_eq!(b.expect_close().await.reason, "partner left");
    let pool = nodes.db.migrated_pool(1);
    crate::helpers::wait_for("the chat's rows removed", || async {
        let rows = pairchat::db::queries::chat_rows(&mut pairchat::db::get(&pool).expect("conn"))
            .expect("rows");
        rows.is_empty()
    })
    .await;
}

#[actix_rt::test]
async fn a_stopped_process_closes_its_paired_visitors_with_1012_and_their_chats_go_on() {
    let Some(mut nodes) = Nodes::start_or_skip("stopped process resumes", 3, &[]).await else {
        return;
    };
    let urls: Vec<String> = (0..3).map(|i| nodes.url(i)).collect();
    let ((mut a, a_token), (mut b, _)) = pair_across_with_tokens(&urls[0], &urls[1]).await;
    talk(&mut a, &mut b, "before").await;
    nodes.servers[0].terminate();
    let closed = a.expect_close().await;
    assert_eq!(
        (closed.code, closed.reason.as_str()),
        (1012, "service restart")
    );
    b.expect_type("partner_away").await;
    b.say("while it restarts").await;
    let (mut a, _) = resume_at(&urls[2], &a_token).await;
    assert_eq!(said(&a.recv().await), theirs("while it restarts"));
    b.expect_type("partner_back").await;
    assert_eq!(said(&b.recv().await), mine("while it restarts"));
    talk(&mut a, &mut b, "after").await;
    talk(&mut b, &mut a, "and back").await;
    assert!(nodes.servers[0].wait_for_exit(PATIENCE).await);
}

#[actix_rt::test]
async fn a_killed_processs_visitors_are_away_for_the_grace_then_lost() {
    let Some(mut nodes) =
        Nodes::start_or_skip("killed process resumes", 3, &["--resume-grace-secs", "6"]).await
    else {
        return;
    };
    let urls: Vec<String> = (0..3).map(|i| nodes.url(i)).collect();
    let ((_a, a_token), (mut b, _)) = pair_across_with_tokens(&urls[0], &urls[1]).await;
    let ((_c, _), (mut d, _)) = pair_across_with_tokens(&urls[0], &urls[2]).await;
    nodes.servers[0].child.kill().expect("SIGKILL");
    let killed = Instant::now();
    b.expect_type("partner_away").await;
    d.expect_type("partner_away").await;
    let took = killed.elapsed();
    eprintln!("partners of a killed process told away after {took:?}");
    assert!(took < Duration::from_secs(6), "told after {took:?}");
    // Held on the sender's process, unreceipted.
    b.say("held for a").await;
    d.say("held for c").await;
    let (mut a, _) = resume_at(&urls[2], &a_token).await;
    assert_eq!(said(&a.recv().await), theirs("held for a"));
    b.expect_type("partner_back").await;
    assert_eq!(said(&b.recv().await), mine("held for a"));
    talk(&mut a, &mut b, "made it").await;
    // c never comes back: at the grace's end d's chat is lost, and its message undelivered.
    let undelivered = d.expect_error("undelivered").await;
    assert!(undelivered["detail"].is_string());
    assert_eq!(d.expect_close().await.reason, "partner lost");
    let waited = killed.elapsed();
    assert!(
        waited >= Duration::from_secs(6),
        "lost after only {waited:?}"
    );
    // Told of nothing more: the resumed chat goes on.
    talk(&mut b, &mut a, "still talking").await;
    let _ = health(&nodes.servers[1]).await;
}

#[actix_rt::test]
async fn a_chat_whose_two_visitors_were_on_a_stopped_process_goes_on_elsewhere() {
    let Some(mut nodes) = Nodes::start_or_skip(
        "stopped process hands its chats over",
        3,
        &["--resume-grace-secs", "6"],
    )
    .await
    else {
        return;
    };
    let urls: Vec<String> = (0..3).map(|i| nodes.url(i)).collect();
    // Two chats with both visitors on process 0.
    let ((mut a, a_token), (mut b, b_token)) = pair_across_with_tokens(&urls[0], &urls[0]).await;
    let ((mut c, c_token), (mut d, _)) = pair_across_with_tokens(&urls[0], &urls[0]).await;
    talk(&mut a, &mut b, "before").await;
    talk(&mut d, &mut c, "before").await;
    nodes.servers[0].terminate();
    for client in [&mut a, &mut b, &mut c, &mut d] {
        let closed = client.expect_close().await;
        assert_eq!(
            (closed.code, closed.reason.as_str()),
            (1012, "service restart")
        );
    }
    // a comes back on 1 and b on 2: one of them on the process the chat was handed to, the
    // other elsewhere. Whoever is back first hears that the other is not, yet.
    let (mut a, _) = resume_at(&urls[1], &a_token).await;
    a.expect_type("partner_away").await;
    a.say("while you were away").await;
    let (mut b, _) = resume_at(&urls[2], &b_token).await;
    assert_eq!(said(&b.recv().await), theirs("while you were away"));
    a.expect_type("partner_back").await;
    assert_eq!(said(&a.recv().await), mine("while you were away"));
    talk(&mut a, &mut b, "after").await;
    talk(&mut b, &mut a, "and back").await;
    // c comes back, d never does: at the grace's end c's chat is lost, and what it said while
    // waiting is undelivered.
    let (mut c, _) = resume_at(&urls[2], &c_token).await;
    c.expect_type("partner_away").await;
    c.say("anyone?").await;
    c.expect_error("undelivered").await;
    assert_eq!(c.expect_close().await.reason, "partner lost");
    // Told of nothing more: the other chat goes on.
    talk(&mut a, &mut b, "still talking").await;
    assert!(nodes.servers[0].wait_for_exit(PATIENCE).await);
}

#[actix_rt::test]
async fn a_chat_whose_two_visitors_were_on_a_killed_process_is_adopted_and_goes_on() {
    let Some(mut nodes) = Nodes::start_or_skip(
        "killed process's chats adopted",
        3,
        &["--resume-grace-secs", "30"],
    )
    .await
    else {
        return;
    };
    let urls: Vec<String> = (0..3).map(|i| nodes.url(i)).collect();
    let ((mut a, a_token), (mut b, b_token)) = pair_across_with_tokens(&urls[0], &urls[0]).await;
    talk(&mut a, &mut b, "before").await;
    nodes.servers[0].child.kill().expect("SIGKILL");
    let _ = nodes.servers[0].child.wait();
    drop((a, b));
    // The pages reconnect at once; their resumes wait until a survivor has found the dead
    // process and adopted its chat (recorded in Redis while it lasted).
    let (mut a, _) = resume_at(&urls[1], &a_token).await;
    a.expect_type("partner_away").await;
    a.say("after the crash").await;
    let (mut b, _) = resume_at(&urls[2], &b_token).await;
    assert_eq!(said(&b.recv().await), theirs("after the crash"));
    a.expect_type("partner_back").await;
    assert_eq!(said(&a.recv().await), mine("after the crash"));
    talk(&mut b, &mut a, "still us").await;
    let _ = health(&nodes.servers[1]).await;
}
