//! nginx (Debian's package) in front of pairchat processes, run with the configuration the
//! README shows under "Running several servers", the addresses filled in: two real Chromium
//! visitors reach different processes, meet and chat; and the per-address cap counts the
//! address nginx puts in `X-Forwarded-For`. Needs MariaDB and Redis too (see `cluster`);
//! CI sets `PAIRCHAT_REQUIRE_NGINX`.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio_tungstenite::tungstenite;
use tokio_tungstenite::MaybeTlsStream;

use crate::browser::{self, browser_or_skip, click, type_keys, wait_messages, wait_state, PAGE};
use crate::cluster::Nodes;
use crate::helpers::{available_or_skip, Client, PATIENCE};
use crate::process::free_address;

const NGINX: &str = "/usr/sbin/nginx";

pub(crate) fn nginx_or_skip(test: &str) -> bool {
    available_or_skip(
        Path::new(NGINX).exists(),
        "PAIRCHAT_REQUIRE_NGINX",
        test,
        "install Debian's nginx to run it",
    )
}

/// The README's nginx configuration (the `nginx` block of "Running several servers").
fn readme_config() -> String {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README.md");
    let section = readme
        .split("### Running several servers")
        .nth(1)
        .expect("the README has a Running several servers section");
    let block = section
        .split("```nginx\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("an nginx block in it");
    block.to_owned()
}

/// nginx on a free port, in front of `upstreams` (`host:port` each), killed when dropped.
pub(crate) struct Nginx {
    child: Child,
    pub(crate) address: String,
    _dir: tempfile::TempDir,
}

impl Nginx {
    pub(crate) fn start(upstreams: &[String]) -> Nginx {
        let dir = tempfile::tempdir().expect("dir");
        let address = free_address();
        let mut servers_done = false;
        let mut config = String::new();
        for line in readme_config().lines() {
            let trimmed = line.trim_start();
            if trimmed.starts_with("server 127.0.0.1:") {
                if !servers_done {
                    for up in upstreams {
                        config.push_str(&format!("    server {up};\n"));
                    }
                    servers_done = true;
                }
            } else if trimmed.starts_with("listen ") {
                config.push_str(&format!("    listen {address};\n"));
            } else {
                config.push_str(line);
                config.push('\n');
            }
        }
        assert!(servers_done, "the README's upstream names its servers");
        let d = dir.path().display();
        let whole = format!(
            "pid {d}/nginx.pid;\nerror_log {d}/error.log;\nevents {{ worker_connections 4096; }}\n\
             http {{\n access_log off;\n client_body_temp_path {d}/body;\n proxy_temp_path {d}/proxy;\n\
             fastcgi_temp_path {d}/fastcgi;\n uwsgi_temp_path {d}/uwsgi;\n scgi_temp_path {d}/scgi;\n\
             {config}}}\n"
        );
        let conf = dir.path().join("nginx.conf");
        std::fs::write(&conf, whole).expect("write nginx.conf");
        let child = Command::new(NGINX)
            .arg("-p")
            .arg(dir.path())
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .arg("-c")
            .arg(&conf)
            .args(["-g", "daemon off; master_process off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("nginx starts");
        let mut nginx = Nginx {
            child,
            address,
            _dir: dir,
        };
        let deadline = Instant::now() + PATIENCE;
        while std::net::TcpStream::connect(&nginx.address).is_err() {
            if let Ok(Some(status)) = nginx.child.try_wait() {
                let log = std::fs::read_to_string(nginx._dir.path().join("error.log"))
                    .unwrap_or_default();
                panic!("nginx exited ({status}):\n{log}");
            }
            assert!(Instant::now() < deadline, "nginx did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        nginx
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A gauge (`pairchat_connections`, …) of a server, from its metrics listener.
pub(crate) async fn gauge(metrics: &str, name: &str) -> Option<u64> {
    let (_, body) = crate::health::http_get(metrics.parse().ok()?, "/metrics").await;
    let prefix = format!("{name}{{");
    body.lines()
        .find(|l| l.starts_with(&prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[actix_rt::test]
async fn two_chromium_visitors_through_nginx_reach_different_processes_and_chat() {
    let test = "two visitors through nginx";
    if !browser_or_skip(test) || !nginx_or_skip(test) {
        return;
    }
    let metrics = [free_address(), free_address()];
    let Some(mut nodes) = Nodes::start_or_skip(test, 0, &[]).await else {
        return;
    };
    for m in &metrics {
        let server = nodes.start(&["--trust-forwarded-for", "--metrics-bind", m]);
        nodes.servers.push(server);
    }
    nodes.know_each_other().await;
    let upstreams: Vec<String> = nodes.servers.iter().map(|s| s.address.clone()).collect();
    let nginx = Nginx::start(&upstreams);
    let _turn = browser::ONE_AT_A_TIME.lock().await;
    let driver = browser::Driver::start();
    let page = format!("http://{}/", nginx.address);
    let alice = driver.browser(1024, 800).await;
    let bob = driver.browser(1024, 800).await;
    alice.goto(&page).await.expect("page");
    wait_state(&alice, PAGE, "idle").await;
    click(&alice, PAGE, "start").await;
    wait_state(&alice, PAGE, "waiting").await;
    bob.goto(&page).await.expect("page");
    wait_state(&bob, PAGE, "idle").await;
    click(&bob, PAGE, "start").await;
    wait_state(&bob, PAGE, "chat").await;
    wait_state(&alice, PAGE, "chat").await;
    // One WebSocket on each process: nginx sent the second where fewer were. Each process
    // counts the one conversation they share.
    for m in &metrics {
        assert_eq!(
            gauge(m, "pairchat_connections").await,
            Some(1),
            "connections on {m}"
        );
        assert_eq!(gauge(m, "pairchat_chats").await, Some(1), "chats on {m}");
    }
    type_keys(&alice, "hello through nginx\n").await;
    assert_eq!(
        wait_messages(&bob, PAGE, 1).await,
        vec![("Stranger".to_owned(), "hello through nginx".to_owned())]
    );
    type_keys(&bob, "hi back\n").await;
    assert_eq!(
        wait_messages(&alice, PAGE, 2).await[1],
        ("Stranger".to_owned(), "hi back".to_owned())
    );
    drop(nginx);
}

/// Opens a WebSocket through nginx from the source address `source`; the upgrade's status.
async fn connect_from(source: &str, nginx: &str) -> Result<Client, u16> {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind(format!("{source}:0").parse().expect("source"))
        .expect("bind source");
    let stream = socket
        .connect(nginx.parse().expect("nginx address"))
        .await
        .expect("connect to nginx");
    let url = format!("ws://{nginx}/ws");
    match tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(stream)).await {
        Ok((ws, _)) => Ok(Client { ws }),
        Err(tungstenite::Error::Http(response)) => Err(response.status().as_u16()),
        Err(e) => panic!("handshake through nginx: {e}"),
    }
}

#[actix_rt::test]
async fn the_per_address_cap_counts_the_address_nginx_forwards() {
    let test = "per-address cap behind nginx";
    if !nginx_or_skip(test) {
        return;
    }
    let flags = ["--trust-forwarded-for", "--max-conns-per-ip", "1"];
    let Some(nodes) = Nodes::start_or_skip(test, 1, &flags).await else {
        return;
    };
    let nginx = Nginx::start(&[nodes.servers[0].address.clone()]);
    // Every connection reaches the server from nginx's own address; the cap counts the
    // visitor's, which nginx appends to X-Forwarded-For.
    let first = connect_from("127.0.0.2", &nginx.address).await;
    assert!(first.is_ok(), "the first from 127.0.0.2 is let in");
    assert_eq!(
        connect_from("127.0.0.2", &nginx.address).await.err(),
        Some(429),
        "a second from the same address is over the cap"
    );
    let mut other = connect_from("127.0.0.3", &nginx.address)
        .await
        .expect("another address has a cap of its own");
    assert_eq!(other.recv_any().await["type"], "online", "and is served");
    drop(first);
}
