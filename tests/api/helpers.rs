//! `spawn_app()` and a WebSocket client that speaks the protocol.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use pairchat::chat::hub::{HubHandle, Stats};
use pairchat::config::Settings;
use pairchat::db::{self, queries, DbPool};
use pairchat::startup::Application;
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long a test waits for something the server should do promptly.
pub const PATIENCE: Duration = Duration::from_secs(10);

pub struct TestApp {
    pub address: SocketAddr,
    /// The metrics listener's address, when the settings asked for one.
    pub metrics: Option<SocketAddr>,
    pub hub: HubHandle,
    /// A pool of the test's own, to look at the rows.
    pub pool: DbPool,
    _db: TestDb,
}

/// A database that exists for one test: a SQLite file in a temporary folder, or a MariaDB
/// database dropped when the test ends.
pub struct TestDb {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    #[allow(dead_code)]
    mysql_drop: Option<(String, String)>,
}

/// `TEST_MYSQL_URL` (server URL without a database, e.g. `mysql://root@127.0.0.1:3306`),
/// when the suite is to run against MariaDB.
pub fn mysql_server_url() -> Option<String> {
    let url = std::env::var("TEST_MYSQL_URL")
        .ok()
        .filter(|u| !u.is_empty())?;
    if cfg!(feature = "mysql") {
        Some(url.trim_end_matches('/').to_owned())
    } else {
        panic!(
            "TEST_MYSQL_URL is set but this build has no MySQL support: run with --features mysql"
        )
    }
}

impl TestDb {
    /// A pool of `size` connections on this database, its schema migrated.
    pub fn migrated_pool(&self, size: u32) -> DbPool {
        let pool = db::build_pool(&self.url, size).expect("pool");
        db::run_migrations(&mut db::get(&pool).expect("connection")).expect("migrations");
        pool
    }

    pub fn new() -> TestDb {
        match mysql_server_url() {
            Some(server) => Self::mysql(&server),
            None => {
                let dir = tempfile::tempdir().expect("temporary folder");
                let url = format!("sqlite://{}", dir.path().join("pairchat.db").display());
                TestDb {
                    url,
                    _dir: Some(dir),
                    mysql_drop: None,
                }
            }
        }
    }

    #[cfg(feature = "mysql")]
    fn mysql(server: &str) -> TestDb {
        use diesel::{Connection, RunQueryDsl};
        let name = format!("pairchat_test_{:016x}", fastrand::u64(..));
        let mut conn = diesel::mysql::MysqlConnection::establish(server)
            .unwrap_or_else(|e| panic!("cannot reach MariaDB at {server}: {e}"));
        diesel::sql_query(format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .expect("create test database");
        TestDb {
            url: format!("{server}/{name}"),
            _dir: None,
            mysql_drop: Some((server.to_owned(), name)),
        }
    }

    #[cfg(not(feature = "mysql"))]
    fn mysql(_server: &str) -> TestDb {
        unreachable!("mysql_server_url() refuses builds without the feature")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        #[cfg(feature = "mysql")]
        if let Some((server, name)) = self.mysql_drop.take() {
            use diesel::{Connection, RunQueryDsl};
            if let Ok(mut conn) = diesel::mysql::MysqlConnection::establish(&server) {
                let _ =
                    diesel::sql_query(format!("DROP DATABASE IF EXISTS {name}")).execute(&mut conn);
            }
        }
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(configure: impl FnOnce(&mut Settings)) -> TestApp {
    pairchat::telemetry::init_for_tests();
    let db = TestDb::new();
    spawn_app_on(db, configure).await
}

/// For load-shaped tests: the per-connection rate limit and the per-address cap raised out of
/// the way (every test client shares one address and sends faster than a person).
pub fn without_flood_limits(settings: &mut Settings) {
    settings.max_conns_per_ip = 100_000;
    settings.session.rate_per_sec = 1e6;
    settings.session.rate_burst = 1_000_000;
}

pub async fn spawn_app_on(db: TestDb, configure: impl FnOnce(&mut Settings)) -> TestApp {
    let mut settings = Settings::new("127.0.0.1:0", db.url.clone());
    settings.workers = 2;
    // Every test client shares one address and many tests open connections faster than a
    // person would; the tests of the connect rate set their own.
    settings.connects_per_sec_per_ip = 1e6;
    // Nor would they solve challenges: the tests of the challenge turn it on themselves.
    settings.challenge.after = 0;
    configure(&mut settings);
    let app = Application::build(settings)
        .await
        .expect("application builds");
    let address = app.address();
    let metrics = app.metrics_address();
    let hub = app.hub();
    actix_web::rt::spawn(app.run_until_stopped());
    let pool = db::build_pool(&db.url, 2).expect("test pool");
    TestApp {
        address,
        metrics,
        hub,
        pool,
        _db: db,
    }
}

impl TestApp {
    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.address)
    }

    pub async fn client(&self) -> Client {
        Client::connect(&self.ws_url()).await
    }

    /// Two clients, paired: the first waits, the second finds it.
    pub async fn pair(&self) -> (Client, Client) {
        let mut a = self.client().await;
        a.request().await;
        a.expect_type("waiting").await;
        let mut b = self.client().await;
        b.request().await;
        b.expect_type("response").await;
        a.expect_type("response").await;
        (a, b)
    }

    /// The chat rows: `(chat id, is_completed, member rids)`, both tables read in one
    /// transaction (one snapshot), so a commit between the two reads cannot show a chat
    /// without its members or members without their chat.
    pub async fn chats(&self) -> Vec<(i64, bool, Vec<i64>)> {
        let pool = self.pool.clone();
        tokio::task::spawn_blocking(move || {
            use diesel::Connection;
            let mut conn = db::get(&pool).expect("test connection");
            conn.transaction(|c| queries::chats(c)).expect("read chats")
        })
        .await
        .expect("blocking task")
    }

    pub async fn stats(&self) -> Stats {
        self.hub.stats().await.expect("hub answers")
    }

    /// Waits until the rows and the hub agree that nobody is in a chat.
    pub async fn wait_until_empty(&self) {
        wait_for("chat tables to be empty", || async {
            self.chats().await.is_empty() && self.stats().await.connections == 0
        })
        .await;
    }

    /// Checks the invariants that hold at every moment: never more than two in a chat, nobody
    /// with themselves, a waiting chat has one member and a completed one two.
    pub async fn assert_row_invariants(&self) {
        for (id, completed, members) in self.chats().await {
            assert!(members.len() <= 2, "chat {id} has {members:?}");
            if members.len() == 2 {
                assert_ne!(
                    members[0], members[1],
                    "chat {id} pairs a visitor with themselves"
                );
            }
            if completed {
                assert_eq!(members.len(), 2, "completed chat {id} has {members:?}");
            } else {
                assert_eq!(members.len(), 1, "waiting chat {id} has {members:?}");
            }
        }
    }
}

/// Whether a test that needs a service or program can run. When it cannot: fails if
/// `required_by` (an environment variable CI sets) is set, else prints `test` skipped and
/// `how_to_run` straight to stderr, past the harness's capture, so the skip is seen.
pub fn available_or_skip(available: bool, required_by: &str, test: &str, how_to_run: &str) -> bool {
    if !available {
        assert!(
            std::env::var(required_by).is_err(),
            "{required_by} is set but {test} cannot run: {how_to_run}"
        );
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), "skipped {test}: {how_to_run}");
    }
    available
}

/// Polls `check` until it holds or `PATIENCE` runs out.
pub async fn wait_for<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub struct Client {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// How a connection ended, as the client saw it.
#[derive(Debug, PartialEq, Eq)]
pub struct Closed {
    pub code: u16,
    pub reason: String,
}

impl From<CloseFrame> for Closed {
    fn from(frame: CloseFrame) -> Closed {
        Closed {
            code: u16::from(frame.code),
            reason: frame.reason.to_string(),
        }
    }
}

impl Client {
    pub async fn connect(url: &str) -> Client {
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("WebSocket connects");
        Client { ws }
    }

    /// Connects, asks for a partner and checks the first answer (`waiting` or `response`).
    pub async fn arrive(url: &str, first_answer: &str) -> Client {
        let mut client = Client::connect(url).await;
        client.request().await;
        client.expect_type(first_answer).await;
        client
    }

    pub async fn send_json(&mut self, value: Value) {
        self.send_raw(Message::text(value.to_string())).await;
    }

    pub async fn send_raw(&mut self, message: Message) {
        self.ws.send(message).await.expect("send frame");
    }

    /// Sends a text frame, reporting failure (the server may have closed) instead of panicking.
    pub async fn ws_send_text(&mut self, text: &str) -> Result<(), ()> {
        self.ws.send(Message::text(text)).await.map_err(|_| ())
    }

    /// The close, if the next thing to arrive is one; `None` for any other frame.
    pub async fn next_close_or_frame(&mut self) -> Option<Closed> {
        match self.ws.next().await {
            Some(Ok(Message::Close(Some(frame)))) => Some(Closed::from(frame)),
            _ => None,
        }
    }

    pub async fn request(&mut self) {
        self.send_json(json!({"type": "request"})).await;
    }

    pub async fn say(&mut self, text: &str) {
        self.send_json(json!({"type": "message", "message": text}))
            .await;
    }

    /// The next server frame other than `online` counts.
    pub async fn recv(&mut self) -> Value {
        loop {
            let frame = self.recv_any().await;
            if frame["type"] != "online" {
                return frame;
            }
        }
    }

    /// The next server frame of any type.
    pub async fn recv_any(&mut self) -> Value {
        loop {
            let message = tokio::time::timeout(PATIENCE, self.ws.next())
                .await
                .expect("a frame arrives in time")
                .expect("the connection is open")
                .expect("a valid frame");
            match message {
                Message::Text(text) => {
                    return serde_json::from_str(&text).expect("server frames are JSON")
                }
                Message::Close(frame) => panic!("closed while expecting a frame: {frame:?}"),
                _ => continue,
            }
        }
    }

    pub async fn expect_type(&mut self, kind: &str) -> Value {
        let frame = self.recv().await;
        assert_eq!(frame["type"], kind, "unexpected frame {frame}");
        frame
    }

    pub async fn expect_error(&mut self, code: &str) -> Value {
        let frame = self.expect_type("error").await;
        assert_eq!(frame["error"], code, "unexpected error {frame}");
        assert!(
            frame["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "an error explains itself: {frame}"
        );
        frame
    }

    /// Reads until the server closes; frames before the close are skipped. The close must
    /// come within `PATIENCE` in all (frames such as pings do not extend it).
    pub async fn expect_close(&mut self) -> Closed {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let message = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .expect("the server closes in time");
            match message {
                Some(Ok(Message::Close(Some(frame)))) => return Closed::from(frame),
                Some(Ok(Message::Close(None))) => {
                    return Closed {
                        code: u16::from(CloseCode::Status),
                        reason: String::new(),
                    }
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => panic!("connection broke instead of closing: {e}"),
                None => panic!("connection ended without a close frame"),
            }
        }
    }

    /// Sends `text` again and again, reading each receipt, until the server closes this
    /// connection (as when the partner, reading nothing, is dropped); returns how many messages
    /// went out, and the close. Gives up (panics) after `most` messages.
    pub async fn say_until_closed(&mut self, text: &str, most: usize) -> (usize, Closed) {
        for sent in 1..=most {
            self.say(text).await;
            loop {
                let message = tokio::time::timeout(PATIENCE, self.ws.next())
                    .await
                    .expect("a receipt or the close in time");
                match message {
                    Some(Ok(Message::Close(Some(frame)))) => return (sent, Closed::from(frame)),
                    Some(Ok(Message::Text(t))) if t.contains(r#""from":"me""#) => break,
                    Some(Ok(_)) => continue,
                    other => panic!("connection ended without a close: {other:?}"),
                }
            }
        }
        panic!("still open after {most} messages");
    }

    /// Closes from the client side, the way a visitor leaves.
    pub async fn leave(mut self) {
        let _ = self.ws.close(None).await;
        // Drain until the server's close answer so the leave is processed before we return.
        let _ = tokio::time::timeout(PATIENCE, async {
            while let Some(Ok(_)) = self.ws.next().await {}
        })
        .await;
    }
}
