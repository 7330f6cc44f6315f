//! `GET /healthz` and the placeholder page.

use crate::helpers::spawn_app;

/// A minimal HTTP/1.1 GET over a real socket: `(status, body)`.
pub async fn http_get(address: std::net::SocketAddr, path: &str) -> (u16, String) {
    let (status, _, body) = http_request(address, path, "").await;
    (status, body)
}

/// A GET with extra header lines: `(status, lower-cased head, body)`.
pub async fn http_request(
    address: std::net::SocketAddr,
    path: &str,
    extra: &str,
) -> (u16, String, String) {
    let (status, head, body) = http_bytes(address, path, extra).await;
    (status, head, String::from_utf8_lossy(&body).into_owned())
}

/// `http_request` with the body as it came, byte for byte.
pub async fn http_bytes(
    address: std::net::SocketAddr,
    path: &str,
    extra: &str,
) -> (u16, String, Vec<u8>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: {address}\r\n{extra}Connection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = Vec::new();
    tokio::time::timeout(crate::helpers::PATIENCE, stream.read_to_end(&mut response))
        .await
        .expect("response in time")
        .expect("read");
    let end = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(response.len());
    let head = String::from_utf8_lossy(&response[..end]).to_ascii_lowercase();
    let body = response.get(end + 4..).unwrap_or_default().to_vec();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status line");
    (status, head, body)
}

#[actix_rt::test]
async fn healthz_says_ok_when_the_database_answers() {
    let app = spawn_app().await;
    let (status, body) = http_get(app.address, "/healthz").await;
    assert_eq!(status, 200);
    let body: serde_json::Value = serde_json::from_str(&body).expect("JSON body");
    // One process alone: no Redis; its node id is the high half of its connection ids.
    let node = app.hub.next_id().rid() >> 32;
    assert_eq!(
        body,
        serde_json::json!({"status": "ok", "database": "ok", "node": node, "redis": "off"})
    );
}

#[actix_rt::test]
async fn the_home_page_is_served() {
    let app = spawn_app().await;
    let (status, body) = http_get(app.address, "/").await;
    assert_eq!(status, 200);
    assert!(body.contains("pairchat"));
}

pub async fn http_head(address: std::net::SocketAddr, path: &str, extra: &str) -> (u16, String) {
    let (status, head, _) = http_request(address, path, extra).await;
    (status, head)
}

#[actix_rt::test]
async fn every_page_carries_the_security_headers_and_frame_ancestors_follow_the_list() {
    let app = crate::helpers::spawn_app_with(|s| {
        s.allowed_origins = vec!["https://friend.example".into()]
    })
    .await;
    for (path, expected) in [
        ("/", 200),
        ("/widget", 200),
        ("/healthz", 200),
        ("/embed.js", 200),
        ("/assets/js/chat.js", 200),
        ("/nope", 404),
    ] {
        let (status, head) = http_head(app.address, path, "").await;
        assert_eq!(status, expected, "{path}: {head}");
        assert!(
            head.contains("x-content-type-options: nosniff"),
            "{path}: {head}"
        );
        assert!(
            head.contains("referrer-policy: no-referrer"),
            "{path}: {head}"
        );
        let csp = head
            .lines()
            .find(|l| l.starts_with("content-security-policy:"))
            .unwrap_or_else(|| panic!("{path} has no CSP"));
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
            "{csp}"
        );
        assert!(
            csp.contains("frame-ancestors 'self' https://friend.example"),
            "{csp}"
        );
    }
}

#[actix_rt::test]
async fn assets_are_cacheable_and_shared_only_with_listed_sites() {
    let app = crate::helpers::spawn_app_with(|s| {
        s.allowed_origins = vec!["https://friend.example".into()]
    })
    .await;
    let (status, head) = http_head(
        app.address,
        "/assets/js/chat.js",
        "Origin: https://friend.example\r\n",
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        head.contains("access-control-allow-origin: https://friend.example"),
        "{head}"
    );
    assert!(head.contains("cache-control: public, max-age="), "{head}");
    assert!(head.contains("etag:"), "{head}");
    assert!(head.contains("content-type: text/javascript"), "{head}");
    let (_, head) = http_head(
        app.address,
        "/embed.js",
        "Origin: https://stranger.example\r\n",
    )
    .await;
    assert!(!head.contains("access-control-allow-origin"), "{head}");
}

#[actix_rt::test]
async fn the_websocket_refuses_unlisted_browser_origins_and_accepts_listed_own_and_none() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let app = crate::helpers::spawn_app_with(|s| {
        s.allowed_origins = vec!["https://friend.example".into()]
    })
    .await;
    let own = format!("http://{}", app.address);
    for (origin, allowed) in [
        (Some("https://friend.example"), true),
        (Some(own.as_str()), true),
        (None, true),
        (Some("https://evil.example"), false),
    ] {
        let mut request = app.ws_url().into_client_request().expect("request");
        if let Some(origin) = origin {
            request
                .headers_mut()
                .insert("origin", origin.parse().expect("header"));
        }
        match tokio_tungstenite::connect_async(request).await {
            Ok(_) => assert!(allowed, "{origin:?} was let in"),
            Err(tokio_tungstenite::tungstenite::Error::Http(r)) => {
                assert!(!allowed, "{origin:?} was refused");
                assert_eq!(r.status().as_u16(), 403);
            }
            Err(e) => panic!("{e}"),
        }
    }
}
