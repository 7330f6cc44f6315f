//! The admin view in real Chromium: two visitors chat, one reports the other from the page;
//! an admin signs in through the form, finds the report with its evidence, bans the reported
//! visitor from it, and that visitor's next chat is refused with `banned`. axe-core finds no
//! serious or critical violation on any admin page, light or dark.

use fantoccini::key::Key;
use fantoccini::{Client as Browser, Locator};
use serde_json::json;

use crate::admin::add_admin;
use crate::bans::serve;
use crate::browser::{
    browser_or_skip, click, js, type_keys, wait_js, wait_messages, wait_state, Driver,
    ONE_AT_A_TIME, PAGE,
};
use crate::browser_report::{fill_report, two_chatting};
use crate::browser_ui::axe_violations;
use crate::helpers::{wait_for, TestDb};
use crate::reports::stored_reports;

const ADMIN: &str = "moderator";
const PASSWORD: &str = "a long admin password";

/// The page's path, once it has loaded.
async fn path(b: &Browser) -> String {
    b.current_url().await.expect("url").path().to_owned()
}

/// No serious or critical axe-core violation on the page `b` shows.
async fn assert_accessible(b: &Browser, what: &str) {
    let found = axe_violations(b).await;
    assert!(found.is_empty(), "axe-core, {what}: {found:?}");
}

/// Signs in through the form on the sign-in page `b` shows, and waits for the figures page.
async fn sign_in(b: &Browser) {
    let name = b.find(Locator::Css("#name")).await.unwrap();
    name.send_keys(ADMIN).await.unwrap();
    let password = b.find(Locator::Css("#password")).await.unwrap();
    password
        .send_keys(&format!("{PASSWORD}{}", Key::Enter))
        .await
        .unwrap();
    wait_js(
        b,
        PAGE,
        "the figures page",
        "return location.pathname === '/admin' && !!document.querySelector('[data-figures-total]');",
    )
    .await;
}

#[actix_rt::test]
async fn an_admin_sees_a_report_two_visitors_just_made_and_bans_the_reported_visitor() {
    let test = "an_admin_sees_a_report_two_visitors_just_made_and_bans_the_reported_visitor";
    if !browser_or_skip(test) {
        return;
    }
    let _turn = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("pairchat.key");
    let app = serve(TestDb::new(), &key_file, |_| {}).await;
    add_admin(&app, ADMIN, PASSWORD).await;
    let driver = Driver::start();
    let site = format!("http://{}", app.address);

    // Two visitors meet; the one says something a moderator should see, the other reports.
    let (alice, bob) = two_chatting(&driver, &app, (1024, 800)).await;
    type_keys(
        &alice,
        &format!("buy cheap pills at spam.example{}", Key::Enter),
    )
    .await;
    wait_messages(&bob, PAGE, 1).await;
    click(&bob, PAGE, "report").await;
    fill_report(&bob, "spam", "keeps selling pills").await;
    wait_state(&bob, PAGE, "closed").await;
    wait_for("the report to be stored", || async {
        stored_reports(&app.pool).await.len() == 1
    })
    .await;

    // The admin: any admin page sends a stranger to the sign-in form.
    let admin = driver.browser(1280, 900).await;
    admin.goto(&format!("{site}/admin/reports")).await.unwrap();
    assert_eq!(path(&admin).await, "/admin/login");
    assert_accessible(&admin, "the sign-in page").await;
    sign_in(&admin).await;
    assert_accessible(&admin, "the figures page").await;

    admin.goto(&format!("{site}/admin/reports")).await.unwrap();
    let report = js(
        &admin,
        PAGE,
        "const r = document.querySelector('[data-report]'); return r && [r.querySelector('[data-test=evidence]').textContent, r.querySelector('[data-test=note]').textContent];",
    )
    .await;
    let text = report.to_string();
    assert!(
        text.contains("Reported:") && text.contains("buy cheap pills at spam.example"),
        "{report}"
    );
    assert!(text.contains("keeps selling pills"), "{report}");
    assert_accessible(&admin, "the report queue").await;

    // Ban the reported visitor (its visitor key) for the first offered time, one hour.
    let chosen = js(&admin, PAGE, "const r = document.querySelector('[data-report]'); return [r.querySelector('select[name=kind]').value, r.querySelector('select[name=seconds]').value];").await;
    assert_eq!(chosen, json!(["visitor", "3600"]));
    admin
        .find(Locator::Css("[data-report] [data-test=ban]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_js(&admin, PAGE, "the queue to be empty", "return location.pathname === '/admin/reports' && !!document.querySelector('[data-test=no-reports]');").await;

    admin.goto(&format!("{site}/admin/bans")).await.unwrap();
    let listed = js(
        &admin,
        PAGE,
        "return document.querySelector('[data-test=bans]').textContent;",
    )
    .await;
    assert!(listed.as_str().unwrap().contains(ADMIN), "{listed}");
    assert_accessible(&admin, "the bans page").await;
    admin
        .goto(&format!("{site}/admin/challenges"))
        .await
        .unwrap();
    assert_accessible(&admin, "the challenges page").await;
    admin.goto(&format!("{site}/admin/audit")).await.unwrap();
    let audit = js(
        &admin,
        PAGE,
        "return document.querySelector('[data-test=audit]').textContent;",
    )
    .await;
    assert!(audit.as_str().unwrap().contains("ban"), "{audit}");
    assert_accessible(&admin, "the audit log").await;

    // The reported visitor's next chat is refused: the page says banned, with the reason.
    click(&alice, PAGE, "start-over").await;
    wait_js(&alice, PAGE, "the ban to be shown",
        "const n = document.querySelector('[data-test=notice]'); return !n.hidden && n.textContent.includes('banned') && n.textContent.includes('spam');").await;
    // Bob is not banned: he waits for someone again, and the figures page, open meanwhile,
    // shows him waiting by itself (its script refreshes the figures).
    admin.goto(&format!("{site}/admin")).await.unwrap();
    click(&bob, PAGE, "start-over").await;
    wait_state(&bob, PAGE, "waiting").await;
    wait_js(
        &admin,
        PAGE,
        "the figures to show bob waiting",
        "return document.querySelector('[data-figure=waiting]').textContent === '1' \
           && document.querySelector('[data-figures-processes] tr td:nth-of-type(2)').textContent === '1';",
    )
    .await;

    // The same pages in dark mode.
    let dark = driver
        .browser_with(1024, 800, &["--blink-settings=preferredColorScheme=0"])
        .await;
    dark.goto(&format!("{site}/admin/login")).await.unwrap();
    assert_accessible(&dark, "the sign-in page, dark").await;
    sign_in(&dark).await;
    for page in ["/admin", "/admin/bans", "/admin/challenges", "/admin/audit"] {
        dark.goto(&format!("{site}{page}")).await.unwrap();
        assert_accessible(&dark, &format!("{page}, dark")).await;
    }
    // Sign out from the page: the admin pages are closed again.
    admin
        .find(Locator::Css("[data-test=logout]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_js(
        &admin,
        PAGE,
        "the sign-in page",
        "return location.pathname === '/admin/login';",
    )
    .await;
    admin.goto(&format!("{site}/admin")).await.unwrap();
    assert_eq!(path(&admin).await, "/admin/login");
    for b in [alice, bob, admin, dark] {
        b.close().await.unwrap();
    }
}
