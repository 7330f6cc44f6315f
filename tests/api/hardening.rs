//! The second hardening round: frames cut at their header, close codes, rate budgets of their
//! own for typing and control frames, the forwarded address, per-/64 and global caps, the
//! connect rate, origins, the keyed visitor hash. Each test is the attack or the mistake it
//! guards against, seen from outside.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use pairchat::config::Settings;
use pairchat::startup::Application;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{spawn_app_with, Client, TestDb, PATIENCE};

/// A WebSocket opened by hand, to send what no well-behaved client library would.
pub struct RawWs {
    pub stream: TcpStream,
    buffered: Vec<u8>,
}

impl RawWs {
    pub async fn open(address: SocketAddr) -> RawWs {
        let mut stream = TcpStream::connect(address).await.expect("connects");
        let request = format!(
            "GET /ws HTTP/1.1\r\nHost: {address}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.expect("upgrade");
        let mut raw = RawWs {
            stream,
            buffered: Vec::new(),
        };
        let head = raw.read_until_headers_end().await;
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        raw
    }

    async fn read_until_headers_end(&mut self) -> String {
        loop {
            if let Some(end) = self.buffered.windows(4).position(|w| w == b"\r\n\r\n") {
                let head: Vec<u8> = self.buffered.drain(..end + 4).collect();
                return String::from_utf8_lossy(&head).into_owned();
            }
            self.fill().await.expect("the response head");
        }
    }

    /// Reads more; `None` when the server closed the connection.
    async fn fill(&mut self) -> Option<()> {
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(PATIENCE, self.stream.read(&mut chunk))
            .await
            .expect("the server answers in time")
            .ok()?;
        (n > 0).then(|| self.buffered.extend_from_slice(&chunk[..n]))
    }

    /// The next server frame: `(opcode, payload)`. Server frames are never masked.
    pub async fn next_frame(&mut self) -> Option<(u8, Vec<u8>)> {
        loop {
            if let Some((header, len)) = parse_server_header(&self.buffered) {
                if self.buffered.len() >= header + len {
                    let frame: Vec<u8> = self.buffered.drain(..header + len).collect();
                    return Some((frame[0] & 0x0F, frame[header..].to_vec()));
                }
            }
            self.fill().await?;
        }
    }

    /// Skips text frames (online counts, answers) up to the close; its code and reason.
    pub async fn expect_close(&mut self) -> (u16, String) {
        while let Some((opcode, payload)) = self.next_frame().await {
            if opcode == 0x8 {
                let code = u16::from_be_bytes([payload[0], payload[1]]);
                return (code, String::from_utf8_lossy(&payload[2..]).into_owned());
            }
        }
        panic!("the connection ended without a close frame");
    }

    /// The next text frame's JSON.
    pub async fn next_text(&mut self) -> serde_json::Value {
        loop {
            let (opcode, payload) = self.next_frame().await.expect("a frame");
            if opcode == 0x1 {
                let value: serde_json::Value = serde_json::from_slice(&payload).expect("JSON");
                if value["type"] != "online" {
                    return value;
                }
            }
        }
    }
}

fn parse_server_header(b: &[u8]) -> Option<(usize, usize)> {
    if b.len() < 2 {
        return None;
    }
    match b[1] & 0x7F {
        126 if b.len() >= 4 => Some((4, usize::from(u16::from_be_bytes([b[2], b[3]])))),
        127 if b.len() >= 10 => {
            let len = u64::from_be_bytes(b[2..10].try_into().ok()?);
            Some((10, usize::try_from(len).ok()?))
        }
        126 | 127 => None,
        n => Some((2, usize::from(n))),
    }
}

/// A client frame header (masked with a zero key, so the payload goes as it is).
pub fn client_header(first: u8, len: u64) -> Vec<u8> {
    let mut h = vec![first];
    match len {
        0..=125 => h.push(0x80 | len as u8),
        126..=0xFFFF => {
            h.push(0x80 | 126);
            h.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            h.push(0x80 | 127);
            h.extend_from_slice(&len.to_be_bytes());
        }
    }
    h.extend_from_slice(&[0; 4]);
    h
}

pub fn client_frame(first: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = client_header(first, payload.len() as u64);
    f.extend_from_slice(payload);
    f
}

const FIN_TEXT: u8 = 0x81;

#[actix_rt::test]
async fn an_oversized_frame_is_refused_from_its_header_before_any_payload() {
    let app = spawn_app_with(|_| {}).await;
    let mut raw = RawWs::open(app.address).await;
    // 1 GiB announced, and not one byte of it sent: only the header can tell.
    raw.stream
        .write_all(&client_header(FIN_TEXT, 1 << 30))
        .await
        .expect("header");
    assert_eq!(raw.expect_close().await, (1009, "frame too large".into()));
}

#[actix_rt::test]
async fn a_fragmented_message_is_refused_once_its_fragments_pass_the_limit() {
    let app = spawn_app_with(|s| s.session.max_frame_bytes = 4_096).await;
    let mut raw = RawWs::open(app.address).await;
    let fragment = vec![b' '; 3_000];
    raw.stream
        .write_all(&client_frame(0x01, &fragment))
        .await
        .expect("first fragment");
    // The second fragment's header makes 6,000 bytes: refused before its payload comes.
    raw.stream
        .write_all(&client_header(0x80, 3_000))
        .await
        .expect("second header");
    assert_eq!(raw.expect_close().await, (1009, "message too large".into()));
}

#[actix_rt::test]
async fn frames_before_an_oversized_one_in_the_same_packet_are_still_answered() {
    let app = spawn_app_with(|_| {}).await;
    let mut raw = RawWs::open(app.address).await;
    // A frame the session answers at once (nobody to talk to yet), then the oversized one.
    let mut bytes = client_frame(FIN_TEXT, br#"{"type":"message","message":"hi"}"#);
    bytes.extend(client_header(FIN_TEXT, 1 << 30));
    raw.stream.write_all(&bytes).await.expect("both at once");
    assert_eq!(raw.next_text().await["error"], "not_paired");
    assert_eq!(raw.expect_close().await.0, 1009);
}

#[actix_rt::test]
async fn a_frame_with_reserved_bits_closes_with_1002() {
    let app = spawn_app_with(|_| {}).await;
    let mut raw = RawWs::open(app.address).await;
    raw.stream
        .write_all(&client_frame(FIN_TEXT | 0x40, br#"{"type":"request"}"#))
        .await
        .expect("frame");
    assert_eq!(raw.expect_close().await, (1002, "protocol error".into()));
}

#[actix_rt::test]
async fn typing_on_and_off_around_every_message_never_gets_a_message_refused() {
    // The default budget: 10 frames at once, 5 a second.
    let app = spawn_app_with(|_| {}).await;
    let (mut a, mut b) = app.pair().await;
    for i in 0..8 {
        a.send_json(json!({"type": "typing", "typing": true})).await;
        a.send_json(json!({"type": "typing", "typing": false}))
            .await;
        a.say(&format!("quick {i}")).await;
    }
    // Eight messages and sixteen typing frames at once: every message is delivered.
    let mut receipts = 0;
    while receipts < 8 {
        let frame = a.recv().await;
        assert_ne!(frame["type"], "error", "{frame}");
        if frame["from"] == "me" {
            receipts += 1;
        }
    }
    let mut seen = Vec::new();
    while seen.len() < 8 {
        let frame = b.recv().await;
        if frame["type"] == "message" {
            seen.push(frame["message"].as_str().unwrap_or_default().to_owned());
        }
    }
    assert_eq!(seen.last().map(String::as_str), Some("quick 7"));
}

#[actix_rt::test]
async fn pings_past_their_budget_get_no_pong_and_a_ping_flood_is_closed_with_1008() {
    let app = spawn_app_with(|_| {}).await;
    let (mut a, mut b) = app.pair().await;
    for _ in 0..100 {
        if a.ws.send(Message::Ping(vec![1].into())).await.is_err() {
            break;
        }
    }
    let mut pongs = 0;
    let closed = loop {
        match tokio::time::timeout(PATIENCE, a.ws.next()).await {
            Ok(Some(Ok(Message::Pong(_)))) => pongs += 1,
            Ok(Some(Ok(Message::Close(Some(frame))))) => break u16::from(frame.code),
            Ok(Some(Ok(_))) => {}
            other => panic!("expected a close, got {other:?}"),
        }
    };
    assert_eq!(closed, 1008);
    assert!(pongs <= 12, "{pongs} pongs for a flood of 100 pings");
    assert_eq!(b.expect_close().await.reason, "partner lost");
}

/// Opens a WebSocket with extra request headers; the HTTP status when it is refused.
async fn connect_with(url: &str, headers: &[(&str, &str)]) -> Result<Client, u16> {
    let mut request = url.into_client_request().expect("request");
    for (name, value) in headers {
        request.headers_mut().insert(
            tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(name.as_bytes())
                .expect("name"),
            HeaderValue::from_str(value).expect("value"),
        );
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((ws, _)) => Ok(Client { ws }),
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => Err(r.status().as_u16()),
        Err(e) => panic!("{e}"),
    }
}

/// Opens a WebSocket as a proxy would for a client at `xff` (its X-Forwarded-For).
pub async fn forwarded(url: &str, xff: &str) -> Result<Client, u16> {
    connect_with(url, &[("x-forwarded-for", xff)]).await
}

#[actix_rt::test]
async fn only_the_last_forwarded_entry_counts_whatever_its_form() {
    let app = spawn_app_with(|s| {
        s.max_conns_per_ip = 3;
        s.trust_forwarded_for = true;
    })
    .await;
    let url = app.ws_url();
    let mut open = Vec::new();
    for xff in [
        "10.0.0.1, 1.2.3.4:5555",
        "10.0.0.2, 1.2.3.4",
        "10.0.0.3,1.2.3.4:6666",
    ] {
        open.push(forwarded(&url, xff).await.expect("within the cap"));
    }
    assert_eq!(
        forwarded(&url, "10.0.0.4, 1.2.3.4:7777").await.err(),
        Some(429)
    );
    // An unusable last entry means the peer (127.0.0.1) counts, never an earlier entry.
    for xff in ["1.2.3.9, unknown", "1.2.3.9,", "1.2.3.9, [2001:db8::1"] {
        open.push(forwarded(&url, xff).await.expect("the peer's share"));
    }
    assert_eq!(forwarded(&url, "1.2.3.10, garbage").await.err(), Some(429));
    let v6 = ["[2001:db8::1]", "[2001:db8::1]:443", "2001:db8::1"];
    for xff in v6 {
        open.push(forwarded(&url, xff).await.expect("a v6 address"));
    }
    assert_eq!(forwarded(&url, "[2001:db8::1]").await.err(), Some(429));
}

#[actix_rt::test]
async fn the_forwarded_header_counts_only_from_a_trusted_proxy() {
    let app = spawn_app_with(|s| {
        s.max_conns_per_ip = 1;
        s.trust_forwarded_for = true;
        s.trusted_proxies = vec!["10.9.0.0/16".parse().expect("cidr")];
    })
    .await;
    let url = app.ws_url();
    let _a = forwarded(&url, "1.2.3.4").await.expect("first");
    // The peer (127.0.0.1) is no listed proxy: its header is ignored, and it is one address.
    assert_eq!(forwarded(&url, "5.6.7.8").await.err(), Some(429));
}

#[actix_rt::test]
async fn an_ipv6_64_shares_one_quota_and_a_mapped_ipv4_is_that_ipv4() {
    let app = spawn_app_with(|s| {
        s.max_conns_per_ip = 3;
        s.trust_forwarded_for = true;
    })
    .await;
    let url = app.ws_url();
    let mut open = Vec::new();
    for host in 1..=3 {
        let xff = format!("2001:db8:0:7::{host}");
        open.push(forwarded(&url, &xff).await.expect("within the /64's share"));
    }
    assert_eq!(
        forwarded(&url, "2001:db8:0:7:ffff::4").await.err(),
        Some(429)
    );
    open.push(
        forwarded(&url, "2001:db8:0:8::1")
            .await
            .expect("another /64"),
    );
    for xff in ["10.0.0.9", "::ffff:10.0.0.9", "10.0.0.9"] {
        open.push(forwarded(&url, xff).await.expect("within 10.0.0.9's share"));
    }
    assert_eq!(forwarded(&url, "::ffff:10.0.0.9").await.err(), Some(429));
}

#[actix_rt::test]
async fn past_max_connections_the_upgrade_answers_503() {
    let app = spawn_app_with(|s| s.max_connections = 2).await;
    let _a = app.client().await;
    let b = app.client().await;
    assert_eq!(connect_with(&app.ws_url(), &[]).await.err(), Some(503));
    b.leave().await;
    crate::helpers::wait_for("a slot to free", || async {
        connect_with(&app.ws_url(), &[]).await.is_ok()
    })
    .await;
}

#[actix_rt::test]
async fn new_connections_from_one_address_past_the_rate_answer_429() {
    // 1 a second, 3 at once.
    let app = spawn_app_with(|s| s.connects_per_sec_per_ip = 1.0).await;
    let url = app.ws_url();
    let mut statuses = Vec::new();
    for _ in 0..6 {
        // Each connects and drops at once: only the rate can refuse them.
        statuses.push(connect_with(&url, &[]).await.err());
    }
    assert_eq!(statuses[..3], [None, None, None], "{statuses:?}");
    assert!(statuses[3..].contains(&Some(429)), "{statuses:?}");
}

#[actix_rt::test]
async fn an_origin_must_match_the_servers_scheme_host_and_port() {
    let app = spawn_app_with(|_| {}).await;
    let own = format!("http://{}", app.address);
    assert!(connect_with(&app.ws_url(), &[("origin", &own)])
        .await
        .is_ok());
    for origin in [
        format!("https://{}", app.address),
        format!("ws://{}", app.address),
        format!("foo://{}", app.address),
        format!("http://127.0.0.1:{}", app.address.port() + 1),
    ] {
        let got = connect_with(&app.ws_url(), &[("origin", &origin)]).await;
        assert_eq!(got.err(), Some(403), "{origin}");
    }
}

#[actix_rt::test]
async fn with_a_public_origin_a_rebound_host_is_refused_and_https_gets_hsts() {
    let app = spawn_app_with(|s| s.public_origin = Some("https://chat.example".into())).await;
    let port = app.address.port();
    let rebound = format!("http://evil.example:{port}");
    let host = format!("evil.example:{port}");
    let got = connect_with(&app.ws_url(), &[("origin", &rebound), ("host", &host)]).await;
    assert_eq!(got.err(), Some(403));
    let ok = connect_with(&app.ws_url(), &[("origin", "https://chat.example")]).await;
    assert!(ok.is_ok());
    let (_, head, _) = crate::health::http_request(app.address, "/", "").await;
    assert!(
        head.contains("strict-transport-security: max-age="),
        "{head}"
    );
    assert!(head.contains("permissions-policy: camera=()"), "{head}");
}

#[actix_rt::test]
async fn without_a_public_origin_the_host_is_trusted_over_plain_http() {
    let app = spawn_app_with(|_| {}).await;
    let port = app.address.port();
    // What the README warns about: a name that resolves to the server is its own origin.
    let host = format!("chat.example:{port}");
    let origin = format!("http://chat.example:{port}");
    let got = connect_with(&app.ws_url(), &[("origin", &origin), ("host", &host)]).await;
    assert!(got.is_ok());
    let (_, head, _) = crate::health::http_request(app.address, "/", "").await;
    assert!(!head.contains("strict-transport-security"));
}

#[actix_rt::test]
async fn an_allowed_origin_that_is_not_an_origin_stops_start_up_naming_it() {
    for bad in [
        "*",
        "https://a.example; report-uri https://evil.example/r",
        "https://*.example",
        "https://a.example/chat",
    ] {
        let db = TestDb::new();
        let mut settings = Settings::new("127.0.0.1:0", db.url.clone());
        settings.allowed_origins = vec!["https://fine.example".into(), bad.into()];
        let err = Application::build(settings).await.err().expect(bad);
        let message = format!("{err:#}");
        assert!(message.contains(bad), "{message}");
    }
}

#[actix_rt::test]
async fn a_missing_assets_folder_stops_start_up() {
    let db = TestDb::new();
    let mut settings = Settings::new("127.0.0.1:0", db.url.clone());
    settings.assets_dir = Some("/nonexistent/pairchat-assets".into());
    let err = Application::build(settings).await.err().expect("refused");
    assert!(
        format!("{err:#}").contains("/nonexistent/pairchat-assets"),
        "{err:#}"
    );
}

/// The visitor hash each of two servers keeps for the same address.
async fn stored_visitor(key_file: &std::path::Path) -> i64 {
    use diesel::prelude::*;
    let key_file = key_file.to_owned();
    let app = spawn_app_with(move |s| s.secret_key_file = Some(key_file)).await;
    let _waiting = Client::arrive(&app.ws_url(), "waiting").await;
    let pool = app.pool.clone();
    tokio::task::spawn_blocking(move || {
        let mut conn = pairchat::db::get(&pool).expect("conn");
        pairchat::db::schema::chat_user::table
            .select(pairchat::db::schema::chat_user::visitor)
            .first::<i64>(&mut conn)
            .expect("the waiting visitor's row")
    })
    .await
    .expect("blocking")
}

#[actix_rt::test]
async fn the_stored_visitor_hash_depends_on_the_deployments_secret() {
    let dir = tempfile::tempdir().expect("dir");
    let one = dir.path().join("one.key");
    let other = dir.path().join("other.key");
    let first = stored_visitor(&one).await;
    assert_eq!(stored_visitor(&one).await, first, "one key, one hash");
    assert_ne!(
        stored_visitor(&other).await,
        first,
        "another key, another hash"
    );
    // Not the unkeyed FNV-1a of the address the database used to hold.
    let mut fnv: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in b"ip:127.0.0.1" {
        fnv ^= u64::from(*byte);
        fnv = fnv.wrapping_mul(0x0100_0000_01b3);
    }
    assert_ne!(first, fnv as i64);
}

#[actix_rt::test]
async fn a_quiet_wait_keeps_its_ping_cadence_when_pongs_come_back_at_once() {
    const PERIOD: Duration = Duration::from_millis(300);
    let app = spawn_app_with(|s| {
        s.session.heartbeat = PERIOD;
        s.session.client_timeout = Duration::from_secs(30);
    })
    .await;
    let mut idle = app.client().await;
    let start = tokio::time::Instant::now();
    let window = PERIOD * 8;
    let mut pings = 0;
    // tungstenite answers each ping as it reads: the pongs come straight back.
    while let Ok(Some(Ok(frame))) = tokio::time::timeout_at(start + window, idle.ws.next()).await {
        pings += usize::from(matches!(frame, Message::Ping(_)));
    }
    // Eight periods hold eight ticks; one pinged every other tick would get four.
    assert!(pings >= 6, "{pings} pings in eight periods");
}

#[actix_rt::test]
async fn health_checks_answer_while_the_matchmaker_holds_the_whole_pool() {
    use diesel::connection::SimpleConnection;
    use diesel::Connection;
    let db = TestDb::new();
    let Some(path) = db.url.strip_prefix("sqlite://").map(str::to_owned) else {
        // The lock below is SQLite's; the MariaDB pass runs the same server code.
        return;
    };
    let app = crate::helpers::spawn_app_on(db, |s| s.db_pool_size = 1).await;
    // Another writer holds SQLite's write lock: the matchmaker's one pooled connection waits
    // on it (busy_timeout) as soon as someone asks for a partner.
    let mut holder = diesel::sqlite::SqliteConnection::establish(&path).expect("open");
    holder.batch_execute("BEGIN IMMEDIATE").expect("lock");
    let mut asking = app.client().await;
    asking.request().await;
    crate::helpers::wait_for("the matchmaker to be busy", || async {
        app.stats().await.waiting == 1
    })
    .await;
    let started = std::time::Instant::now();
    let (status, _, body) = crate::health::http_request(app.address, "/healthz", "").await;
    let body: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!((status, body["database"].as_str()), (200, Some("ok")));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    holder.batch_execute("ROLLBACK").expect("unlock");
}
