//! The admin view (`/admin`) over HTTP against the real server, and its accounts through the
//! real binary: sign-in, sessions that expire, CSRF tokens, the cap on failed sign-ins, and
//! the audit log of every action. Real SQLite file, or MariaDB with `TEST_MYSQL_URL`.

use std::io::Write;
use std::net::SocketAddr;
use std::process::{Output, Stdio};
use std::time::Duration;

use pairchat::config::Settings;
use pairchat::db;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{spawn_app_on, spawn_app_with, wait_for, TestApp, TestDb, PATIENCE};
use crate::process::pairchat;

const ADMIN: &str = "alice";
const PASSWORD: &str = "correct horse battery staple";

/// One HTTP response, its head lower-cased.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl Response {
    /// The `Location` a redirect points to.
    pub fn location(&self) -> Option<&str> {
        self.head
            .lines()
            .find_map(|l| l.strip_prefix("location: "))
            .map(str::trim)
    }

    /// The value of the form field `csrf` on this page.
    pub fn csrf(&self) -> String {
        let at = self
            .body
            .find(r#"name="csrf" value=""#)
            .expect("a CSRF field");
        let rest = &self.body[at + r#"name="csrf" value=""#.len()..];
        rest[..rest.find('"').expect("end of value")].to_owned()
    }
}

/// A browser of the admin pages, as far as the server can tell: real HTTP/1.1 over a socket,
/// keeping the session cookie the server sets.
#[derive(Clone)]
pub struct AdminClient {
    pub address: SocketAddr,
    /// `pairchat_admin=…`, as the last Set-Cookie left it.
    pub cookie: Option<String>,
    /// Extra header lines sent with every request.
    pub extra: String,
}

/// `application/x-www-form-urlencoded` of `fields`.
pub fn form(fields: &[(&str, &str)]) -> String {
    let encode = |text: &str| {
        text.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    char::from(b).to_string()
                }
                b' ' => "+".to_owned(),
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

impl AdminClient {
    pub fn new(address: SocketAddr) -> AdminClient {
        AdminClient {
            address,
            cookie: None,
            extra: String::new(),
        }
    }

    pub async fn send(&mut self, method: &str, path: &str, body: Option<&str>) -> Response {
        let mut stream = tokio::net::TcpStream::connect(self.address)
            .await
            .expect("connect");
        let mut request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n{}",
            self.address, self.extra
        );
        if let Some(cookie) = &self.cookie {
            request.push_str(&format!("Cookie: {cookie}\r\n"));
        }
        if let Some(body) = body {
            request.push_str(&format!(
                "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
                body.len()
            ));
        }
        request.push_str("\r\n");
        request.push_str(body.unwrap_or_default());
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut raw = Vec::new();
        tokio::time::timeout(PATIENCE, stream.read_to_end(&mut raw))
            .await
            .expect("response in time")
            .expect("read");
        let end = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a head");
        let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
        let body = String::from_utf8_lossy(&raw[end + 4..]).into_owned();
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("status line");
        // Keep the session cookie as a browser would (the head is lower-cased; so is the
        // cookie's name, and its value is case-sensitive: read it from the raw head).
        let raw_head = String::from_utf8_lossy(&raw[..end]).into_owned();
        for line in raw_head.lines() {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            if !name.eq_ignore_ascii_case("set-cookie") {
                continue;
            }
            let pair = value
                .trim()
                .split(';')
                .next()
                .unwrap_or_default()
                .to_owned();
            if let Some(v) = pair.strip_prefix("pairchat_admin=") {
                let removed = v.is_empty() || value.to_ascii_lowercase().contains("max-age=0");
                self.cookie = (!removed).then_some(pair.clone());
            }
        }
        Response { status, head, body }
    }

    pub async fn get(&mut self, path: &str) -> Response {
        self.send("GET", path, None).await
    }

    pub async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Response {
        self.send("POST", path, Some(&form(fields))).await
    }

    /// Opens the sign-in page and signs in; the response to the form.
    pub async fn sign_in(&mut self, name: &str, password: &str) -> Response {
        let page = self.get("/admin/login").await;
        assert_eq!(page.status, 200, "{page:?}");
        let csrf = page.csrf();
        self.post(
            "/admin/login",
            &[("csrf", &csrf), ("name", name), ("password", password)],
        )
        .await
    }

    /// Posts a ban form to `action` (`/admin/bans`, or a report's ban action).
    pub async fn ban(
        &mut self,
        action: &str,
        csrf: &str,
        kind: &str,
        target: &str,
        seconds: &str,
        reason: &str,
    ) -> Response {
        let fields = [
            ("csrf", csrf),
            ("kind", kind),
            ("target", target),
            ("seconds", seconds),
            ("reason", reason),
        ];
        self.post(action, &fields).await
    }

    /// Lifts the first ban `/admin/bans` lists; returns the list as it was.
    pub async fn lift_first_ban(&mut self, csrf: &str) -> String {
        let list = self.get("/admin/bans").await;
        let id = list
            .body
            .split("data-ban=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .expect("a ban row")
            .to_owned();
        let lifted = self
            .post(&format!("/admin/bans/{id}/lift"), &[("csrf", csrf)])
            .await;
        assert_eq!(lifted.status, 303, "{lifted:?}");
        list.body
    }

    /// Signs in as the test's admin and returns the session's CSRF token.
    pub async fn signed_in(&mut self) -> String {
        let answer = self.sign_in(ADMIN, PASSWORD).await;
        assert_eq!(answer.status, 303, "{answer:?}");
        assert_eq!(answer.location(), Some("/admin"));
        let page = self.get("/admin").await;
        assert_eq!(page.status, 200, "{page:?}");
        page.csrf()
    }
}

/// Adds the account `name` with `password` to the app's database, as `admin add` does.
pub async fn add_admin(app: &TestApp, name: &str, password: &str) {
    let pool = app.pool.clone();
    let (name, password) = (name.to_owned(), password.to_owned());
    tokio::task::spawn_blocking(move || {
        let mut conn = db::get(&pool).expect("connection");
        pairchat::admin::accounts::add(&mut conn, &name, &password).expect("account added");
    })
    .await
    .expect("blocking task");
}

/// The audit log as `(admin, action, detail)`, oldest first.
pub async fn audit_log(app: &TestApp) -> Vec<(String, String, String)> {
    let pool = app.pool.clone();
    tokio::task::spawn_blocking(move || {
        let mut conn = db::get(&pool).expect("connection");
        let mut rows = pairchat::admin::audit::latest(&mut conn, 1_000).expect("audit");
        rows.reverse();
        rows.into_iter()
            .map(|r| (r.admin, r.action, r.detail))
            .collect()
    })
    .await
    .expect("blocking task")
}

/// A server with the admin `alice` and a client for it.
async fn admin_app(configure: impl FnOnce(&mut Settings)) -> (TestApp, AdminClient) {
    let app = spawn_app_with(configure).await;
    add_admin(&app, ADMIN, PASSWORD).await;
    let client = AdminClient::new(app.address);
    (app, client)
}

/// Runs `pairchat admin ARGS` on `db`, with `stdin` as its standard input (`None`: empty).
fn admin_cli(db: &TestDb, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = pairchat()
        .arg("admin")
        .args(args)
        .env("DATABASE_URL", &db.url)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("pairchat runs");
    let mut input = child.stdin.take().expect("stdin");
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).expect("write stdin");
    }
    drop(input);
    child.wait_with_output().expect("pairchat ends")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn admin_accounts_are_added_listed_and_removed_through_the_binary() {
    let db = TestDb::new();
    let added = admin_cli(&db, &["add", "alice"], Some("a long enough password\n"));
    assert!(added.status.success(), "{}", text(&added.stderr));
    assert!(
        !text(&added.stdout).contains("a long enough password"),
        "a given password is never printed"
    );

    // No password given: one is generated and printed once.
    let generated = admin_cli(&db, &["add", "bob"], None);
    assert!(generated.status.success(), "{}", text(&generated.stderr));
    let out = text(&generated.stdout);
    let password = out.trim().rsplit(' ').next().expect("a password");
    assert!(password.len() >= 16, "{out}");

    let refused = admin_cli(&db, &["add", "alice"], Some("another long password\n"));
    assert!(!refused.status.success(), "a taken name is refused");
    let short = admin_cli(&db, &["add", "carol"], Some("short\n"));
    assert!(!short.status.success(), "a short password is refused");
    assert!(
        text(&short.stderr).contains("at least"),
        "{}",
        text(&short.stderr)
    );

    let list = admin_cli(&db, &["list"], None);
    assert!(list.status.success());
    let names: Vec<String> = text(&list.stdout)
        .lines()
        .map(|l| l.split('\t').next().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(names, ["alice", "bob"]);
    assert!(
        !text(&list.stdout).contains("argon2"),
        "hashes stay in the database"
    );

    let removed = admin_cli(&db, &["remove", "bob"], None);
    assert!(removed.status.success(), "{}", text(&removed.stderr));
    let again = admin_cli(&db, &["remove", "bob"], None);
    assert!(!again.status.success(), "removing a missing account fails");
    let list = admin_cli(&db, &["list"], None);
    assert_eq!(
        text(&list.stdout).lines().count(),
        1,
        "{}",
        text(&list.stdout)
    );
}

#[actix_rt::test]
async fn only_the_right_password_signs_in_and_a_refusal_does_not_say_which_was_wrong() {
    let (app, mut browser) = admin_app(|_| {}).await;

    let wrong = browser.sign_in(ADMIN, "not the password").await;
    assert_eq!(wrong.status, 401, "{wrong:?}");
    assert!(
        wrong.body.contains("Wrong name or password."),
        "{}",
        wrong.body
    );
    let nobody = browser.sign_in("mallory", "not the password").await;
    assert_eq!(nobody.status, 401);
    let strip = |body: &str| body.replace("mallory", "").replace(ADMIN, "");
    let (a, b) = (strip(&wrong.body), strip(&nobody.body));
    let no_csrf = |body: &str| {
        let at = body.find(r#"name="csrf""#).unwrap_or(0);
        body[..at].to_owned()
    };
    assert_eq!(
        no_csrf(&a),
        no_csrf(&b),
        "the same refusal for a name that does not exist"
    );
    assert_eq!(
        browser.get("/admin").await.status,
        303,
        "refused: not signed in"
    );

    let signed = browser.sign_in(ADMIN, PASSWORD).await;
    assert_eq!(signed.status, 303, "{signed:?}");
    assert_eq!(signed.location(), Some("/admin"));
    let cookie = signed
        .head
        .lines()
        .find(|l| l.starts_with("set-cookie: pairchat_admin="))
        .expect("a session cookie")
        .to_owned();
    for attribute in ["httponly", "samesite=strict", "path=/admin"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    assert!(
        !cookie.contains("secure"),
        "plain http: not Secure ({cookie})"
    );
    let page = browser.get("/admin").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Live figures"), "{}", page.body);
    assert!(page.body.contains("Signed in as alice"));
    let csp = page
        .head
        .lines()
        .find_map(|l| l.strip_prefix("content-security-policy: "))
        .expect("a CSP")
        .to_owned();
    for directive in [
        "script-src 'self'",
        "style-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(directive), "{csp}");
    }
    assert!(!page.body.contains("<script>"), "no inline script");
    assert!(page.head.contains("cache-control: no-store"));

    let figures: serde_json::Value =
        serde_json::from_str(&browser.get("/admin/figures").await.body).expect("JSON");
    assert_eq!(
        figures["processes"].as_array().map(Vec::len),
        Some(1),
        "{figures}"
    );

    let log = audit_log(&app).await;
    let logins: Vec<_> = log
        .iter()
        .filter(|(_, action, _)| action == "login")
        .collect();
    assert_eq!(logins.len(), 1, "{log:?}");
    assert_eq!(logins[0].0, ADMIN);
}

#[actix_rt::test]
async fn no_admin_route_answers_without_a_session() {
    let (_app, mut browser) = admin_app(|_| {}).await;
    for page in [
        "/admin",
        "/admin/",
        "/admin/figures",
        "/admin/audit",
        "/admin/reports",
        "/admin/bans",
        "/admin/challenges",
        "/admin/nothing",
    ] {
        let answer = browser.get(page).await;
        assert_eq!(answer.status, 303, "GET {page}: {answer:?}");
        assert_eq!(answer.location(), Some("/admin/login"), "GET {page}");
    }
    for action in [
        "/admin/logout",
        "/admin/bans",
        "/admin/bans/1/lift",
        "/admin/reports/1/dismiss",
        "/admin/reports/1/ban",
        "/admin/reports/1/challenge",
        "/admin/challenges",
        "/admin/challenges/1/lift",
    ] {
        let answer = browser.post(action, &[("csrf", "x")]).await;
        assert_eq!(answer.status, 401, "POST {action}: {answer:?}");
    }
    // A cookie the server did not make (or made with another key) is no session.
    browser.cookie = Some("pairchat_admin=forged".into());
    assert_eq!(browser.get("/admin").await.status, 303);
    // A session from another deployment (another secret key) is not one here either.
    let (_other_app, mut other) = admin_app(|_| {}).await;
    other.signed_in().await;
    browser.cookie = other.cookie.clone();
    assert_eq!(browser.get("/admin").await.status, 303);
}

#[actix_rt::test]
async fn a_missing_wrong_or_stale_csrf_token_is_refused() {
    let (app, mut browser) = admin_app(|_| {}).await;
    // The sign-in form needs the token of its page too.
    let no_token = browser
        .post("/admin/login", &[("name", ADMIN), ("password", PASSWORD)])
        .await;
    assert_eq!(no_token.status, 403, "{no_token:?}");

    let csrf = browser.signed_in().await;
    let missing = browser.post("/admin/logout", &[]).await;
    assert_eq!(missing.status, 403, "{missing:?}");
    let wrong = browser
        .post("/admin/logout", &[("csrf", &"0".repeat(64))])
        .await;
    assert_eq!(wrong.status, 403);
    assert_eq!(browser.get("/admin").await.status, 200, "still signed in");

    // A token of an earlier session is stale in the next one.
    let out = browser.post("/admin/logout", &[("csrf", &csrf)]).await;
    assert_eq!(out.status, 303, "{out:?}");
    assert_eq!(out.location(), Some("/admin/login"));
    let fresh = browser.signed_in().await;
    assert_ne!(fresh, csrf);
    let stale = browser.post("/admin/logout", &[("csrf", &csrf)]).await;
    assert_eq!(stale.status, 403, "{stale:?}");
    assert_eq!(browser.get("/admin").await.status, 200, "still signed in");
    let actions: Vec<String> = audit_log(&app)
        .await
        .into_iter()
        .map(|(_, a, _)| a)
        .collect();
    assert_eq!(
        actions.iter().filter(|a| *a == "logout").count(),
        1,
        "{actions:?}"
    );
}

#[actix_rt::test]
async fn a_session_ends_on_time_when_idle_and_at_sign_out_even_replayed() {
    let (_app, mut browser) = admin_app(|s| {
        s.admin.session_ttl = Duration::from_secs(2);
    })
    .await;
    let csrf = browser.signed_in().await;
    // Expiry is an event to wait for: the page answers until the session's time is up.
    wait_for("the session to expire", || {
        let mut b = browser.clone();
        async move { b.get("/admin/audit").await.status == 303 }
    })
    .await;
    let late = browser.post("/admin/logout", &[("csrf", &csrf)]).await;
    assert_eq!(late.status, 401, "{late:?}");

    let (_app, mut idle) = admin_app(|s| {
        s.admin.idle_ttl = Duration::from_secs(2);
    })
    .await;
    idle.signed_in().await;
    // The figures page's script polls on its own, keeping each cookie it is given: that is
    // no activity, and the session still ends.
    let polling = std::sync::Arc::new(tokio::sync::Mutex::new(idle));
    wait_for("the idle session to end", || {
        let polling = polling.clone();
        async move { polling.lock().await.get("/admin/figures").await.status == 303 }
    })
    .await;

    // Signed out, the same cookie sent again (a copy kept by anyone) is refused.
    let (_app, mut replayer) = admin_app(|_| {}).await;
    let csrf = replayer.signed_in().await;
    let copy = replayer.cookie.clone();
    assert_eq!(
        replayer
            .post("/admin/logout", &[("csrf", &csrf)])
            .await
            .status,
        303
    );
    replayer.cookie = copy;
    assert_eq!(replayer.get("/admin").await.status, 303);
}

#[actix_rt::test]
async fn failed_sign_ins_are_capped_per_account_and_per_address() {
    let (app, mut browser) = admin_app(|s| {
        s.admin.login.per_account = 3;
        s.admin.login.per_address = 5;
    })
    .await;
    add_admin(&app, "bob", PASSWORD).await;
    for _ in 0..3 {
        assert_eq!(browser.sign_in(ADMIN, "wrong password!").await.status, 401);
    }
    // Past the cap, even the right password is not checked.
    let capped = browser.sign_in(ADMIN, PASSWORD).await;
    assert_eq!(capped.status, 429, "{capped:?}");
    assert!(capped.body.contains("Too many failed sign-ins"));
    // Another account from the same address may still sign in...
    let bob = browser.sign_in("bob", PASSWORD).await;
    assert_eq!(bob.status, 303, "{bob:?}");
    // ...until the address itself has failed too often, whatever the names.
    let mut other = AdminClient::new(app.address);
    for name in ["carol", "dave"] {
        assert_eq!(other.sign_in(name, "wrong password!").await.status, 401);
    }
    assert_eq!(other.sign_in("bob", PASSWORD).await.status, 429);
}

#[actix_rt::test]
async fn the_session_cookie_is_secure_behind_tls() {
    let (_app, mut proxied) = admin_app(|s| s.trust_forwarded_for = true).await;
    proxied.extra = "X-Forwarded-Proto: https\r\nX-Forwarded-For: 203.0.113.9\r\n".into();
    let page = proxied.get("/admin/login").await;
    let cookie = page
        .head
        .lines()
        .find(|l| l.starts_with("set-cookie: pairchat_admin="))
        .expect("a session cookie");
    assert!(cookie.contains("; secure"), "{cookie}");

    let (_app, mut public) =
        admin_app(|s| s.public_origin = Some("https://chat.example".into())).await;
    let page = public.get("/admin/login").await;
    assert!(page.head.contains("; secure"), "{}", page.head);
}

/// Files a report on the visitor `token` (as a visitor of another process would), with
/// `evidence` as `(from the reported visitor?, message)`; returns the report's id.
async fn file_report(
    app: &TestApp,
    key_file: &std::path::Path,
    token: &str,
    evidence: &[(bool, &str)],
) -> i64 {
    use pairchat::moderation::reports::{Line, NewReport, Reason, Side};
    use pairchat::moderation::{Moderation, ModerationConfig};
    let moderation = Moderation::new(app.pool.clone(), 0, ModerationConfig::default());
    let reported = crate::bans::keys_of(key_file, token);
    let reporter = crate::bans::keys_of(key_file, "reporter").0;
    let evidence = evidence
        .iter()
        .map(|(theirs, message)| Line {
            from: if *theirs {
                Side::Reported
            } else {
                Side::Reporter
            },
            message: (*message).to_owned(),
        })
        .collect();
    let report = NewReport::new(
        (Reason::Spam, format!("note about {token}")),
        reported,
        reporter,
        evidence,
    );
    tokio::task::spawn_blocking(move || {
        moderation.file_report(&report).expect("report stored");
        let open = moderation.open_reports(100).expect("reports");
        open.iter()
            .find(|r| r.reported == reported.0.as_i64())
            .expect("the report")
            .id
    })
    .await
    .expect("blocking task")
}

#[actix_rt::test]
async fn an_admin_bans_from_a_report_dismisses_and_lifts_and_the_audit_log_says_so() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let key_file = dir.path().join("pairchat.key");
    let key = key_file.clone();
    let (app, mut browser) = admin_app(move |s| s.secret_key_file = Some(key)).await;
    let spam = file_report(
        &app,
        &key_file,
        "spammer",
        &[(true, "buy <b>now</b>"), (false, "no")],
    )
    .await;
    let other = file_report(&app, &key_file, "grumpy", &[]).await;
    let csrf = browser.signed_in().await;

    let queue = browser.get("/admin/reports").await;
    assert_eq!(queue.status, 200);
    for shown in [
        "Reported:</span> buy &#60;b&#62;now&#60;/b&#62;",
        "Reporter:</span> no",
        "note about spammer",
        "note about grumpy",
    ] {
        assert!(queue.body.contains(shown), "{shown} in {}", queue.body);
    }
    assert_eq!(
        crate::bans::request_as(&app, "spammer").await["type"],
        "waiting"
    );

    // Refused: a duration not offered, a kind that is not one.
    let from_report = format!("/admin/reports/{spam}/ban");
    let odd = browser
        .ban(&from_report, &csrf, "visitor", "", "42", "x")
        .await;
    assert_eq!(odd.status, 400, "{odd:?}");
    let odd = browser
        .ban(&from_report, &csrf, "planet", "", "3600", "x")
        .await;
    assert_eq!(odd.status, 400, "{odd:?}");

    let banned = browser
        .ban(&from_report, &csrf, "visitor", "", "3600", "Spamming links")
        .await;
    assert_eq!(banned.status, 303, "{banned:?}");
    let frame = crate::bans::request_as(&app, "spammer").await;
    assert_eq!(frame["error"], "banned", "{frame}");
    let bystander = crate::bans::request_as(&app, "bystander").await;
    assert_eq!(bystander["type"], "waiting");

    let dismiss = format!("/admin/reports/{other}/dismiss");
    assert_eq!(browser.post(&dismiss, &[("csrf", &csrf)]).await.status, 303);
    let queue = browser.get("/admin/reports").await;
    assert!(queue.body.contains("No open reports."), "{}", queue.body);

    assert!(browser
        .lift_first_ban(&csrf)
        .await
        .contains("Spamming links"));
    let spammer = crate::bans::request_as(&app, "spammer").await;
    assert_eq!(spammer["type"], "waiting");

    // A ban by address, typed as an address: everyone from there is refused.
    let by_address = browser
        .ban(
            "/admin/bans",
            &csrf,
            "address",
            "127.0.0.1",
            "86400",
            "Flooding",
        )
        .await;
    assert_eq!(by_address.status, 303, "{by_address:?}");
    let bystander = crate::bans::request_as(&app, "bystander").await;
    assert_eq!(bystander["error"], "banned");
    browser.lift_first_ban(&csrf).await;
    let list = browser.get("/admin/bans").await;
    assert!(list.body.contains("No bans in force."), "{}", list.body);

    let log = audit_log(&app).await;
    let actions: Vec<(&str, &str)> = log
        .iter()
        .map(|(who, what, _)| (who.as_str(), what.as_str()))
        .collect();
    assert_eq!(
        actions,
        [
            ("(command line)", "account added"),
            (ADMIN, "login"),
            (ADMIN, "ban"),
            (ADMIN, "dismiss"),
            (ADMIN, "lift"),
            (ADMIN, "ban"),
            (ADMIN, "lift")
        ],
        "{log:?}"
    );
    assert!(log[2].2.contains(&format!("report {spam}")), "{log:?}");
    assert!(log[3].2.contains(&format!("report {other}")), "{log:?}");
    let page = browser.get("/admin/audit").await;
    assert!(
        page.body.contains("dismiss") && page.body.contains("Flooding"),
        "{}",
        page.body
    );
}

#[actix_rt::test]
async fn in_a_cluster_the_figures_cover_every_process_and_a_session_holds_on_each() {
    let test = "in_a_cluster_the_figures_cover_every_process_and_a_session_holds_on_each";
    let Some(nodes) = crate::cluster::Nodes::start_or_skip(test, 2, &[]).await else {
        return;
    };
    let added = admin_cli(&nodes.db, &["add", ADMIN], Some(&format!("{PASSWORD}\n")));
    assert!(added.status.success(), "{}", text(&added.stderr));
    let address = |i: usize| {
        nodes.servers[i]
            .address
            .parse::<SocketAddr>()
            .expect("address")
    };
    let (mut a, mut b) = crate::cluster::pair_across(&nodes.url(0), &nodes.url(1)).await;

    let mut first = AdminClient::new(address(0));
    let csrf = first.signed_in().await;
    // Messages flow until the figures show both processes, the one chat between them once,
    // and the messages going through.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        a.say("hello").await;
        b.expect_type("message").await;
        let figures: serde_json::Value =
            serde_json::from_str(&first.get("/admin/figures").await.body).expect("JSON");
        let both = figures["processes"].as_array().map(Vec::len) == Some(2)
            && figures["connections"] == 2
            && figures["chats"] == 1
            && figures["messages_per_sec"].as_f64() > Some(0.0)
            && figures["processes"][0]["chats"] == 1
            && figures["processes"][1]["chats"] == 1;
        if both {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "figures: {figures}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Any process takes the session; signing out on one ends it on the others too.
    let mut second = AdminClient {
        address: address(1),
        ..first.clone()
    };
    assert_eq!(second.get("/admin").await.status, 200);
    assert_eq!(
        second
            .post("/admin/logout", &[("csrf", &csrf)])
            .await
            .status,
        303
    );
    assert_eq!(first.get("/admin").await.status, 303);
}

/// Whether the next chat request from the tests' address (loopback) to `app` must carry a
/// solved challenge; a request let through counts as not.
async fn challenged(app: &TestApp) -> bool {
    let (_client, answer) = crate::challenge::ask(&app.ws_url(), None).await;
    if answer["error"] == "challenge_required" {
        return true;
    }
    assert!(
        answer["type"] == "waiting" || answer["type"] == "response",
        "{answer}"
    );
    false
}

#[actix_rt::test]
async fn an_admin_requires_a_challenge_of_a_reported_address_here_and_elsewhere_and_lifts_it() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let key_file = dir.path().join("pairchat.key");
    let db = TestDb::new();
    let other_db = db.alias();
    let settings = |key: std::path::PathBuf, another: bool| {
        move |s: &mut Settings| {
            s.secret_key_file = Some(key);
            // A rate no test client reaches: only a flag challenges it.
            s.challenge.after = 100_000;
            // Another process on the same database (its chat rows are its own to clear).
            s.force = another;
        }
    };
    let app = spawn_app_on(db, settings(key_file.clone(), false)).await;
    let other = spawn_app_on(other_db, settings(key_file.clone(), true)).await;
    add_admin(&app, ADMIN, PASSWORD).await;
    let mut browser = AdminClient::new(app.address);
    let report = file_report(&app, &key_file, "flooder", &[(true, "spam")]).await;
    let loopback = crate::bans::keys_of(&key_file, "flooder").1.as_i64();
    let csrf = browser.signed_in().await;
    assert!(!challenged(&app).await);

    let queue = browser.get("/admin/reports").await;
    let action = format!("/admin/reports/{report}/challenge");
    assert!(
        queue.body.contains(&format!(r#"action="{action}""#)),
        "{}",
        queue.body
    );
    let no_token = browser.post(&action, &[("seconds", "3600")]).await;
    assert_eq!(no_token.status, 403, "{no_token:?}");
    assert!(!challenged(&app).await, "a refused form flags nothing");
    let odd = browser
        .post(&action, &[("csrf", &csrf), ("seconds", "42")])
        .await;
    assert_eq!(odd.status, 400, "{odd:?}");

    let flagged = browser
        .post(&action, &[("csrf", &csrf), ("seconds", "3600")])
        .await;
    assert_eq!(flagged.status, 303, "{flagged:?}");
    assert_eq!(flagged.location(), Some("/admin/reports"));
    // At once in this process; within the gate's refresh in the other.
    assert!(challenged(&app).await, "flagged here");
    wait_for("the other process to read the flag", || async {
        challenged(&other).await
    })
    .await;
    let list = browser.get("/admin/challenges").await;
    assert_eq!(list.status, 200);
    assert!(
        list.body.contains(&format!(r#"data-flag="{loopback}""#)),
        "{}",
        list.body
    );
    assert!(!list.body.contains("challenges-off"), "{}", list.body);
    assert!(!queue.body.contains("challenges-off"), "{}", queue.body);

    let lift = format!("/admin/challenges/{loopback}/lift");
    let no_token = browser.post(&lift, &[]).await;
    assert_eq!(no_token.status, 403, "{no_token:?}");
    assert!(challenged(&app).await, "a refused lift lifts nothing");
    let lifted = browser.post(&lift, &[("csrf", &csrf)]).await;
    assert_eq!(lifted.status, 303, "{lifted:?}");
    assert!(!challenged(&app).await, "lifted here");
    // Lifting what is not flagged (a second click) changes nothing and is not logged.
    assert_eq!(browser.post(&lift, &[("csrf", &csrf)]).await.status, 303);
    wait_for("the other process to read the lift", || async {
        !challenged(&other).await
    })
    .await;
    let list = browser.get("/admin/challenges").await;
    assert!(
        list.body.contains("No address is flagged."),
        "{}",
        list.body
    );

    // Typed: an address (loopback again) or its key; anything else is refused.
    for target in ["not an address", "10.0.0.0/8"] {
        let fields = [
            ("csrf", csrf.as_str()),
            ("target", target),
            ("seconds", "3600"),
        ];
        let refused = browser.post("/admin/challenges", &fields).await;
        assert_eq!(refused.status, 400, "{target}: {refused:?}");
        assert!(refused.body.contains("IPv4 or IPv6"), "{refused:?}");
    }
    let by_address = browser
        .post(
            "/admin/challenges",
            &[
                ("csrf", &csrf),
                ("target", " 127.0.0.1 "),
                ("seconds", "86400"),
            ],
        )
        .await;
    assert_eq!(by_address.status, 303, "{by_address:?}");
    assert!(challenged(&app).await, "flagged by typed address");
    assert_eq!(browser.post(&lift, &[("csrf", &csrf)]).await.status, 303);
    assert!(!challenged(&app).await);

    let log = audit_log(&app).await;
    let flags: Vec<(&str, &str)> = log
        .iter()
        .filter(|(_, what, _)| what.starts_with("challenge"))
        .map(|(_, what, detail)| (what.as_str(), detail.as_str()))
        .collect();
    let address = format!("address {loopback}");
    assert_eq!(
        flags,
        [
            (
                "challenge required",
                format!("{address} for 1 hour (report {report})").as_str()
            ),
            ("challenge lifted", address.as_str()),
            (
                "challenge required",
                format!("{address} for 1 day").as_str()
            ),
            ("challenge lifted", address.as_str()),
        ],
        "{log:?}"
    );
    let page = browser.get("/admin/audit").await;
    assert!(page.body.contains("challenge required"), "{}", page.body);
}

#[actix_rt::test]
async fn the_challenges_page_says_flags_do_nothing_while_challenges_are_off() {
    // The tests' servers run with --challenge-after 0 unless they turn challenges on.
    let dir = tempfile::tempdir().expect("temporary folder");
    let key_file = dir.path().join("pairchat.key");
    let key = key_file.clone();
    let (app, mut browser) = admin_app(move |s| s.secret_key_file = Some(key)).await;
    file_report(&app, &key_file, "flooder", &[]).await;
    browser.signed_in().await;
    for path in ["/admin/challenges", "/admin/reports"] {
        let page = browser.get(path).await;
        assert_eq!(page.status, 200, "{page:?}");
        assert!(
            page.body.contains(r#"data-test="challenges-off""#) && page.body.contains("no effect"),
            "{path}: {}",
            page.body
        );
    }
}
