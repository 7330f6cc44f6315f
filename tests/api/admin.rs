//! The admin view (`/admin`) over HTTP against the real server, and its accounts through the
//! real binary: sign-in, sessions that expire, CSRF tokens, the cap on failed sign-ins, and
//! the audit log of every action. Real SQLite file, or MariaDB with `TEST_MYSQL_URL`.

use std::io::Write;
use std::process::{Output, Stdio};

use crate::helpers::TestDb;
use crate::process::pairchat;

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
