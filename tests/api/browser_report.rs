//! Reports and bans in real Chromium: two visitors chat, one reports the other from the chat
//! (the row is stored with the evidence), the other reports back from the closed view, and the
//! reported visitor (banned after one report here) sees the ban's reason, expiry and appeal.
//! The open Report form passes axe-core and fits a 360 px phone.

use fantoccini::key::Key;
use serde_json::json;

use crate::bans::serve;
use crate::browser::{
    browser_or_skip, click, js, system_lines, type_keys, visible, wait_js, wait_messages,
    wait_state, Driver, ONE_AT_A_TIME, PAGE,
};
use crate::browser_ui::axe_violations;
use crate::helpers::TestDb;
use crate::reports::stored_reports;

/// Picks `reason` and writes `note` in the open Report form, then sends it.
pub(crate) async fn fill_report(b: &fantoccini::Client, reason: &str, note: &str) {
    let picked = js(
        b,
        PAGE,
        &format!(
            "const r = root.querySelector('[data-test=report-reason][value={reason}]'); r.click(); \
             root.querySelector('[data-test=report-note]').value = {note}; return r.checked;",
            note = json!(note)
        ),
    )
    .await;
    assert_eq!(picked, json!(true));
    click(b, PAGE, "report-send").await;
}

/// Two browsers on the page, in a chat: alice (desktop-sized) waited, bob (`bob_size`) came.
pub(crate) async fn two_chatting(
    driver: &Driver,
    app: &crate::helpers::TestApp,
    bob_size: (u32, u32),
) -> (fantoccini::Client, fantoccini::Client) {
    let page = format!("http://{}/", app.address);
    let alice = driver.browser(1024, 800).await;
    let bob = driver.browser(bob_size.0, bob_size.1).await;
    alice.goto(&page).await.unwrap();
    bob.goto(&page).await.unwrap();
    wait_state(&alice, PAGE, "idle").await;
    click(&alice, PAGE, "start").await;
    wait_state(&alice, PAGE, "waiting").await;
    click(&bob, PAGE, "start").await;
    wait_state(&bob, PAGE, "chat").await;
    wait_state(&alice, PAGE, "chat").await;
    (alice, bob)
}

#[actix_rt::test]
async fn visitors_report_from_the_chat_and_from_the_closed_view_and_a_ban_is_shown() {
    let test = "visitors_report_from_the_chat_and_from_the_closed_view_and_a_ban_is_shown";
    if !browser_or_skip(test) {
        return;
    }
    let _turn = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("pairchat.key");
    let app = serve(TestDb::new(), &key_file, |s| {
        s.moderation.auto_ban_reports = 1
    })
    .await;
    let driver = Driver::start();
    // Bob on a phone.
    let (alice, bob) = two_chatting(&driver, &app, (360, 740)).await;
    type_keys(&alice, &format!("buy cheap pills{}", Key::Enter)).await;
    wait_messages(&bob, PAGE, 1).await;

    // Bob opens the form: the reasons, and what goes to the moderators, said before sending.
    click(&bob, PAGE, "report").await;
    assert!(visible(&bob, PAGE, "report-dialog").await);
    let said = js(
        &bob,
        PAGE,
        "return root.querySelector('[data-test=report-evidence]').textContent;",
    )
    .await;
    assert!(
        said.as_str().unwrap().contains("go to the moderators"),
        "{said}"
    );
    let focused = js(&bob, PAGE, "return document.activeElement.dataset.test;").await;
    assert_eq!(focused, json!("report-reason"), "the form takes the focus");
    let fits = js(
        &bob,
        PAGE,
        "return document.documentElement.scrollWidth <= window.innerWidth;",
    )
    .await;
    assert_eq!(fits, json!(true), "no sideways scrolling at 360 px");
    let axe = axe_violations(&bob).await;
    assert!(axe.is_empty(), "axe-core, the Report form: {axe:?}");
    // Sending without a reason is refused in the form.
    click(&bob, PAGE, "report-send").await;
    assert!(visible(&bob, PAGE, "report-error").await);
    fill_report(&bob, "spam", "sells things").await;

    // The chat ends for both: bob reported, alice sees an ordinary disconnection.
    wait_state(&bob, PAGE, "closed").await;
    wait_state(&alice, PAGE, "closed").await;
    assert!(system_lines(&bob, PAGE)
        .await
        .iter()
        .any(|l| l.contains("You reported")));
    assert!(system_lines(&alice, PAGE)
        .await
        .iter()
        .any(|l| l.contains("Stranger has disconnected")));
    let reports = stored_reports(&app.pool).await;
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert_eq!(
        (reports[0].reason.as_str(), reports[0].note.as_str()),
        ("spam", "sells things")
    );
    assert_eq!(reports[0].evidence[0].message, "buy cheap pills");
    assert!(
        !visible(&bob, PAGE, "report-later").await,
        "reported already"
    );

    // Alice may still report bob from the closed view (sent to POST /report).
    wait_js(
        &alice,
        PAGE,
        "the Report button on the closed view",
        "return !root.querySelector('[data-test=report-later]').hidden;",
    )
    .await;
    click(&alice, PAGE, "report-later").await;
    assert!(visible(&alice, PAGE, "report-dialog").await);
    fill_report(&alice, "harassment", "").await;
    wait_js(
        &alice,
        PAGE,
        "the report to be sent",
        "return !root.querySelector('[data-test=report-done]').hidden;",
    )
    .await;
    assert!(!visible(&alice, PAGE, "report-later").await);
    let reports = stored_reports(&app.pool).await;
    assert_eq!(reports.len(), 2);
    assert!(reports.iter().any(|r| r.reason == "harassment"));

    // One report bans here: alice's next chat is refused, and the page says why and until when.
    click(&alice, PAGE, "start-over").await;
    wait_js(&alice, PAGE, "the ban to be shown",
        "const n = root.querySelector('[data-test=notice]'); return !n.hidden && n.textContent.includes('banned');").await;
    wait_state(&alice, PAGE, "idle").await;
    let notice = js(
        &alice,
        PAGE,
        "return root.querySelector('[data-test=notice]').textContent;",
    )
    .await;
    let notice = notice.as_str().unwrap();
    assert!(
        notice.contains("Reason: reported by 1 visitors"),
        "{notice}"
    );
    assert!(notice.contains("Write to appeals@example.com"), "{notice}");
    let axe = axe_violations(&alice).await;
    assert!(axe.is_empty(), "axe-core, banned: {axe:?}");
    alice.close().await.unwrap();
    bob.close().await.unwrap();
}

#[actix_rt::test]
async fn a_visitor_who_ends_the_chat_may_still_report_from_the_closed_view() {
    let test = "a_visitor_who_ends_the_chat_may_still_report_from_the_closed_view";
    if !browser_or_skip(test) {
        return;
    }
    let _turn = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let app = serve(TestDb::new(), &dir.path().join("pairchat.key"), |_| {}).await;
    let driver = Driver::start();
    let (alice, bob) = two_chatting(&driver, &app, (1024, 800)).await;
    type_keys(&bob, &format!("rude words{}", Key::Enter)).await;
    wait_messages(&alice, PAGE, 1).await;
    // Alice ends it herself (End, then "Really?"): the page asks the server, which answers
    // `ended` (the sealed report) before closing, so the frame is not lost to close().
    click(&alice, PAGE, "end").await;
    click(&alice, PAGE, "end").await;
    wait_state(&alice, PAGE, "closed").await;
    assert!(system_lines(&alice, PAGE)
        .await
        .iter()
        .any(|l| l.contains("You left")));
    wait_js(
        &alice,
        PAGE,
        "the Report button on the closed view",
        "return !root.querySelector('[data-test=report-later]').hidden;",
    )
    .await;
    click(&alice, PAGE, "report-later").await;
    let said = js(
        &alice,
        PAGE,
        "return root.querySelector('[data-test=report-evidence]').textContent;",
    )
    .await;
    assert!(!said.as_str().unwrap().contains("ends this chat"), "{said}");
    fill_report(&alice, "harassment", "").await;
    wait_js(
        &alice,
        PAGE,
        "the report to be sent",
        "return !root.querySelector('[data-test=report-done]').hidden;",
    )
    .await;
    let reports = stored_reports(&app.pool).await;
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].evidence[0].message, "rude words");
    // A new chat forgets it.
    click(&alice, PAGE, "start-over").await;
    wait_state(&alice, PAGE, "waiting").await;
    assert!(!visible(&alice, PAGE, "report-done").await);
    alice.close().await.unwrap();
    bob.close().await.unwrap();
}
