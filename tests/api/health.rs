//! `GET /healthz` and the placeholder page.

use crate::helpers::spawn_app;

/// A minimal HTTP/1.1 GET over a real socket: `(status, body)`.
pub async fn http_get(address: std::net::SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = Vec::new();
    tokio::time::timeout(crate::helpers::PATIENCE, stream.read_to_end(&mut response))
        .await
        .expect("response in time")
        .expect("read");
    let response = String::from_utf8_lossy(&response).into_owned();
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[actix_rt::test]
async fn healthz_says_ok_when_the_database_answers() {
    let app = spawn_app().await;
    let (status, body) = http_get(app.address, "/healthz").await;
    assert_eq!(status, 200);
    let body: serde_json::Value = serde_json::from_str(&body).expect("JSON body");
    assert_eq!(body["status"], "ok");
}

#[actix_rt::test]
async fn the_home_page_is_served() {
    let app = spawn_app().await;
    let (status, body) = http_get(app.address, "/").await;
    assert_eq!(status, 200);
    assert!(body.contains("pairchat"));
}
