//! Interests on the page, in real headless Chromium: tags typed and removed with the keyboard,
//! kept across a reload (the browser session) and across New chat, sent with the request (with
//! the fallback choice and the page's language), and the first line of a chat saying what both
//! like.

use fantoccini::key::Key;
use fantoccini::{Client as Browser, Locator};
use serde_json::{json, Value};

use crate::browser::{
    browser_or_skip, click, js, record_sent, sent_frames, system_lines, visible, wait_js,
    wait_state, Driver, ONE_AT_A_TIME, PAGE,
};
use crate::helpers::spawn_app_with;

/// The tags the idle view shows.
async fn tags(b: &Browser) -> Value {
    js(
        b,
        PAGE,
        "return [...root.querySelectorAll('[data-test=interest]')].map(t => t.dataset.tag);",
    )
    .await
}

/// Types `text` into the interest box with real key events.
async fn type_interest(b: &Browser, text: &str) {
    let input = b
        .find(Locator::Css("[data-test=interest-input]"))
        .await
        .expect("the interest box");
    input.send_keys(text).await.expect("typing");
}

/// The requests the page sent.
async fn requests(b: &Browser) -> Vec<Value> {
    sent_frames(b)
        .await
        .into_iter()
        .filter(|f| f["type"] == "request")
        .collect()
}

#[actix_rt::test]
async fn visitors_add_interests_with_the_keyboard_and_see_what_they_both_like() {
    if !browser_or_skip("visitors_add_interests_with_the_keyboard_and_see_what_they_both_like") {
        return;
    }
    let _turn = ONE_AT_A_TIME.lock().await;
    let app = spawn_app_with(|s| {
        s.rematch_cooldown = std::time::Duration::ZERO;
        s.interest_fallback = std::time::Duration::from_secs(3_600);
    })
    .await;
    let driver = Driver::start();
    let page = format!("http://{}/", app.address);
    let alice = driver.browser(1024, 800).await;
    let bob = driver.browser(360, 740).await;
    alice.goto(&page).await.expect("page");
    bob.goto(&page).await.expect("page");
    wait_state(&alice, PAGE, "idle").await;

    // The box is labelled; the fallback choice shows once there is a tag to fall back from.
    let label = js(
        &alice,
        PAGE,
        "return root.querySelector('[data-test=interest-input]').getAttribute('aria-label');",
    )
    .await;
    assert_eq!(label, json!("Add an interest"));
    assert!(!visible(&alice, PAGE, "interest-fallback").await);

    // Enter adds one, a comma another; they are normalised as the server does; a duplicate is
    // merged.
    type_interest(&alice, "  Music ").await;
    type_interest(&alice, &format!("{}", Key::Enter)).await;
    type_interest(&alice, "GO,chess,music,").await;
    assert_eq!(tags(&alice).await, json!(["music", "go", "chess"]));
    assert!(visible(&alice, PAGE, "interest-fallback").await);
    // Each has a Remove button named after it, reachable by keyboard; Backspace in the empty
    // box takes the last one.
    let remove = js(
        &alice,
        PAGE,
        "const b = root.querySelector('[data-tag=chess] [data-test=interest-remove]'); \
         b.focus(); return [b.getAttribute('aria-label'), document.activeElement === b];",
    )
    .await;
    assert_eq!(remove, json!(["Remove chess", true]));
    alice
        .active_element()
        .await
        .expect("focused")
        .send_keys(&format!("{}", Key::Enter))
        .await
        .expect("Enter on Remove");
    assert_eq!(tags(&alice).await, json!(["music", "go"]));
    type_interest(&alice, "x").await;
    type_interest(&alice, &format!("{}", Key::Enter)).await;
    type_interest(&alice, &format!("{}", Key::Backspace)).await;
    assert_eq!(tags(&alice).await, json!(["music", "go"]));
    // Five at most: the box is disabled at five.
    type_interest(&alice, "a,b,c,").await;
    assert_eq!(tags(&alice).await, json!(["music", "go", "a", "b", "c"]));
    let disabled = js(
        &alice,
        PAGE,
        "return root.querySelector('[data-test=interest-input]').disabled;",
    )
    .await;
    assert_eq!(disabled, json!(true));
    for tag in ["a", "b", "c"] {
        click(
            &alice,
            PAGE,
            &format!("interest][data-tag={tag}] [data-test=interest-remove"),
        )
        .await;
    }
    // Kept for the browser session: a reload shows them again.
    alice.refresh().await.expect("reload");
    wait_state(&alice, PAGE, "idle").await;
    assert_eq!(tags(&alice).await, json!(["music", "go"]));

    // Alice waits; Bob, who likes go too, finds her; both are told what they both like.
    record_sent(&alice).await;
    click(&alice, PAGE, "start").await;
    wait_state(&alice, PAGE, "waiting").await;
    type_interest(&bob, "Go").await;
    type_interest(&bob, &format!("{}", Key::Enter)).await;
    click(&bob, PAGE, "start").await;
    wait_state(&bob, PAGE, "chat").await;
    wait_state(&alice, PAGE, "chat").await;
    for b in [&alice, &bob] {
        let lines = system_lines(b, PAGE).await;
        assert_eq!(
            lines.first().map(String::as_str),
            Some("Stranger found — say hi! You both like: go"),
            "{lines:?}"
        );
    }
    let sent = requests(&alice).await;
    assert_eq!(
        sent,
        [json!({"type": "request", "lang": "en", "interests": ["music", "go"], "fallback": true})]
    );

    // After the chat, New chat asks again with the same interests.
    click(&bob, PAGE, "end").await;
    click(&bob, PAGE, "end").await;
    wait_state(&alice, PAGE, "closed").await;
    click(&alice, PAGE, "start-over").await;
    wait_js(
        &alice,
        PAGE,
        "the second request",
        "return (window.__sent || []).filter(s => s.data.includes('\"request\"')).length === 2;",
    )
    .await;
    let sent = requests(&alice).await;
    assert_eq!(
        sent[1],
        json!({"type": "request", "lang": "en", "interests": ["music", "go"], "fallback": true})
    );
}
