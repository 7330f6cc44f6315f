//! The WebSocket client side: connecting from many loopback source addresses, the server's
//! frames, and the text this tool puts in its messages.

use std::borrow::Cow;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

pub type Ws = WebSocketStream<TcpStream>;

/// One server: its address and WebSocket URL.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub addr: SocketAddr,
    pub url: String,
}

impl Endpoint {
    /// `url` is `ws://127.x.y.z:PORT/PATH`; only loopback servers are accepted.
    pub fn parse(url: &str) -> anyhow::Result<Endpoint> {
        let rest = url
            .strip_prefix("ws://")
            .context("the URL must start with ws://")?;
        let hostport = rest.split('/').next().unwrap_or(rest);
        let addr: SocketAddr = hostport
            .parse()
            .with_context(|| format!("{hostport:?} is not IP:PORT"))?;
        if !addr.ip().is_loopback() {
            bail!("refusing to load a non-loopback server ({addr}): use 127.0.0.0/8");
        }
        Ok(Endpoint {
            addr,
            url: url.to_owned(),
        })
    }
}

/// The servers to drive and the local addresses to connect from.
#[derive(Debug)]
pub struct Target {
    /// One per `--url`; `connect` goes to them in turn.
    pub endpoints: Vec<Endpoint>,
    sources: Vec<Ipv4Addr>,
    next: AtomicUsize,
    next_endpoint: AtomicUsize,
    pub connect_timeout: Duration,
    /// Prefix of the `?visitor=` tokens, random per process so runs do not share visitors.
    nonce: u64,
    /// Send `?visitor=TOKEN` (each simulated visitor its own), instead of letting the server
    /// key visitors by source address.
    pub visitor_tokens: bool,
}

impl Target {
    /// `url` is `ws://127.x.y.z:PORT/PATH`; only loopback servers are accepted. Client sockets
    /// are bound in turn to 127.0.0.(first_source) … 127.0.0.(first_source + sources - 1).
    pub fn new(url: &str, first_source: usize, sources: usize) -> anyhow::Result<Target> {
        Target::spread(&[url.to_owned()], first_source, sources)
    }

    /// Several servers: `connect` takes them in turn (round-robin), `connect_to` one of them.
    pub fn spread(urls: &[String], first_source: usize, sources: usize) -> anyhow::Result<Target> {
        if urls.is_empty() {
            bail!("no --url");
        }
        let endpoints = urls
            .iter()
            .map(|u| Endpoint::parse(u))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let sources = (0..sources.max(1))
            .map(|i| {
                let n = first_source + i;
                if n > 254 * 254 {
                    bail!("too many source addresses");
                }
                Ok(Ipv4Addr::new(127, 0, (n / 254) as u8, (n % 254) as u8 + 1))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Target {
            endpoints,
            sources,
            next: AtomicUsize::new(0),
            next_endpoint: AtomicUsize::new(0),
            connect_timeout: Duration::from_secs(15),
            nonce: fastrand::u64(..),
            visitor_tokens: true,
        })
    }

    #[cfg(test)]
    pub fn sources(&self) -> &[Ipv4Addr] {
        &self.sources
    }

    /// The first server's address.
    pub fn addr(&self) -> SocketAddr {
        self.endpoints[0].addr
    }

    /// The server the next `connect` goes to (round-robin).
    pub fn next_endpoint(&self) -> usize {
        self.next_endpoint.fetch_add(1, Ordering::Relaxed) % self.endpoints.len()
    }

    /// Opens one WebSocket for simulated visitor `visitor` to the next server in turn: TCP
    /// from the next source address, then the HTTP upgrade.
    pub async fn connect(&self, visitor: u64) -> anyhow::Result<Ws> {
        self.connect_to(self.next_endpoint(), visitor).await
    }

    /// Opens one WebSocket for visitor `visitor` to server `endpoint` (an index into the URLs).
    pub async fn connect_to(&self, endpoint: usize, visitor: u64) -> anyhow::Result<Ws> {
        tokio::time::timeout(self.connect_timeout, self.connect_inner(endpoint, visitor))
            .await
            .context("connect/handshake timed out")?
    }

    /// The URL for one visitor on server `endpoint`.
    pub fn url_for(&self, endpoint: usize, visitor: u64) -> String {
        self.url_for_endpoint(&self.endpoints[endpoint % self.endpoints.len()], visitor)
    }

    fn url_for_endpoint(&self, endpoint: &Endpoint, visitor: u64) -> String {
        if !self.visitor_tokens {
            return endpoint.url.clone();
        }
        let sep = if endpoint.url.contains('?') { '&' } else { '?' };
        format!(
            "{}{sep}visitor=pcb-{:x}-{visitor}",
            endpoint.url, self.nonce
        )
    }

    async fn connect_inner(&self, endpoint: usize, visitor: u64) -> anyhow::Result<Ws> {
        let endpoint = &self.endpoints[endpoint % self.endpoints.len()];
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.sources.len();
        let socket = TcpSocket::new_v4()?;
        // Choose the source port at connect() time, per destination, so the ports of one
        // source address are not used up by bind() and TIME_WAIT reuse applies.
        let one: libc::c_int = 1;
        // SAFETY: a valid socket descriptor and a c_int option of the right size.
        unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::IPPROTO_IP,
                libc::IP_BIND_ADDRESS_NO_PORT,
                &one as *const libc::c_int as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
        socket.bind(SocketAddr::new(IpAddr::V4(self.sources[i]), 0))?;
        let stream = socket.connect(endpoint.addr).await?;
        stream.set_nodelay(true)?;
        let config = WebSocketConfig::default()
            .read_buffer_size(4096)
            .write_buffer_size(0);
        let (ws, _) = tokio_tungstenite::client_async_with_config(
            self.url_for_endpoint(endpoint, visitor),
            stream,
            Some(config),
        )
        .await?;
        Ok(ws)
    }
}

/// A frame from the server, as far as this tool cares.
#[derive(Debug)]
pub enum In<'a> {
    Waiting,
    Response,
    Me(Cow<'a, str>),
    Guest(Cow<'a, str>),
    Error(Cow<'a, str>),
    /// typing, online, anything else
    Other,
}

#[derive(Deserialize)]
struct RawFrame<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow, default)]
    message: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    from: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    error: Option<Cow<'a, str>>,
}

pub fn parse(text: &str) -> In<'_> {
    let Ok(raw) = serde_json::from_str::<RawFrame<'_>>(text) else {
        return In::Error(Cow::Borrowed("unparsable_server_frame"));
    };
    match raw.kind.as_ref() {
        "waiting" => In::Waiting,
        "response" => In::Response,
        "message" => {
            let m = raw.message.unwrap_or_default();
            match raw.from.as_deref() {
                Some("me") => In::Me(m),
                _ => In::Guest(m),
            }
        }
        "error" => In::Error(raw.error.unwrap_or(Cow::Borrowed("?"))),
        _ => In::Other,
    }
}

/// What one read from the socket gave.
pub enum Event {
    Text(tokio_tungstenite::tungstenite::Utf8Bytes),
    /// The server's close frame: code and reason.
    Closed(u16, String),
    /// The stream ended or broke without a close frame.
    Broken(String),
    /// Ping, pong, binary: nothing to do (tungstenite answers pings itself).
    Nothing,
}

pub async fn next_event(ws: &mut Ws) -> Event {
    match ws.next().await {
        Some(Ok(Message::Text(t))) => Event::Text(t),
        Some(Ok(Message::Close(frame))) => match frame {
            Some(f) => Event::Closed(u16::from(f.code), f.reason.to_string()),
            None => Event::Closed(1005, String::new()),
        },
        Some(Ok(_)) => Event::Nothing,
        Some(Err(e)) => Event::Broken(e.to_string()),
        None => Event::Broken("end of stream".into()),
    }
}

pub async fn send_text(ws: &mut Ws, text: String) -> anyhow::Result<()> {
    ws.send(Message::text(text)).await?;
    Ok(())
}

pub const REQUEST: &str = r#"{"type":"request"}"#;

pub async fn request(ws: &mut Ws) -> anyhow::Result<()> {
    send_text(ws, REQUEST.to_owned()).await
}

/// How the server answered a `request`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// `waiting`: nobody to join, this connection now waits.
    Waiting,
    /// `response`: paired at once.
    Paired,
    /// An error frame, or the connection closed or broke.
    Failed(String),
    /// No answer in time.
    TimedOut,
}

/// Sends `request` and reads until the server answers it (`waiting` or `response`), at most
/// `wait`. Other frames (online counts, typing) are skipped.
pub async fn request_and_answer(ws: &mut Ws, wait: Duration) -> Answer {
    if let Err(e) = request(ws).await {
        return Answer::Failed(format!("request: {e:#}"));
    }
    let answer = tokio::time::timeout(wait, async {
        loop {
            match next_event(ws).await {
                Event::Text(t) => match parse(&t) {
                    In::Waiting => return Answer::Waiting,
                    In::Response => return Answer::Paired,
                    In::Error(code) => return Answer::Failed(format!("error frame {code}")),
                    _ => {}
                },
                Event::Closed(code, reason) => {
                    return Answer::Failed(format!("server closed: {code} {reason}"))
                }
                Event::Broken(e) => return Answer::Failed(format!("connection broke: {e}")),
                Event::Nothing => {}
            }
        }
    })
    .await;
    answer.unwrap_or(Answer::TimedOut)
}

/// The driver's end of one connection's turn to request: see `turn`.
pub struct Turn {
    go: tokio::sync::oneshot::Sender<()>,
    answer: tokio::sync::oneshot::Receiver<Answer>,
}

/// The connection's end of its turn.
pub struct TurnSide {
    go: tokio::sync::oneshot::Receiver<()>,
    answer: tokio::sync::oneshot::Sender<Answer>,
}

/// A turn to request, for pairs made in a fixed order: the connection's task waits with
/// `TurnSide::take`, reading its socket meanwhile (so the server's pings are answered however
/// long the wait), and the driver gives the turns one by one with `Turn::give`.
pub fn turn() -> (Turn, TurnSide) {
    let (go_tx, go_rx) = tokio::sync::oneshot::channel();
    let (answer_tx, answer_rx) = tokio::sync::oneshot::channel();
    (
        Turn {
            go: go_tx,
            answer: answer_rx,
        },
        TurnSide {
            go: go_rx,
            answer: answer_tx,
        },
    )
}

impl Turn {
    /// Lets the connection request and waits for the server's answer. None: the connection is
    /// gone (it did not open, or closed while it waited).
    pub async fn give(self) -> Option<Answer> {
        self.go.send(()).ok()?;
        self.answer.await.ok()
    }
}

impl TurnSide {
    /// Reads `ws` until the turn comes, then requests and waits up to `wait` for the answer,
    /// which goes to the driver too. None: the driver dropped the turn (the pair's other side
    /// is gone), or the connection ended while it waited.
    pub async fn take(self, ws: &mut Ws, wait: Duration) -> Option<Answer> {
        let mut go = self.go;
        loop {
            tokio::select! {
                r = &mut go => {
                    if r.is_err() {
                        return None;
                    }
                    break;
                }
                ev = next_event(ws) => {
                    if let Event::Closed(..) | Event::Broken(_) = ev {
                        return None;
                    }
                }
            }
        }
        let answer = request_and_answer(ws, wait).await;
        let _ = self.answer.send(answer.clone());
        Some(answer)
    }
}

/// Sends our close frame and reads until the server's close (or EOF), at most `wait`.
/// Returns the text frames that arrived meanwhile.
pub async fn close_and_drain(
    ws: &mut Ws,
    wait: Duration,
) -> Vec<tokio_tungstenite::tungstenite::Utf8Bytes> {
    let mut late = Vec::new();
    let _ = ws.close(None).await;
    let _ = tokio::time::timeout(wait, async {
        loop {
            match next_event(ws).await {
                Event::Text(t) => late.push(t),
                Event::Closed(..) | Event::Broken(_) => break,
                Event::Nothing => {}
            }
        }
    })
    .await;
    late
}

static START: OnceLock<Instant> = OnceLock::new();

/// Nanoseconds on one monotonic clock shared by all tasks of this process.
pub fn now_ns() -> u64 {
    START.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// The text of a benchmark message: `sender:seq:sent_ns:tag[:padding]`. `tag` is the relay's
/// step number or the churn sender's message quota.
pub fn message_frame(sender: u64, seq: u64, tag: u64, pad: &str) -> String {
    let sent = now_ns();
    if pad.is_empty() {
        format!(r#"{{"type":"message","message":"{sender}:{seq}:{sent}:{tag}"}}"#)
    } else {
        format!(r#"{{"type":"message","message":"{sender}:{seq}:{sent}:{tag}:{pad}"}}"#)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub sender: u64,
    pub seq: u64,
    pub sent_ns: u64,
    pub tag: u64,
}

pub fn parse_stamp(text: &str) -> Option<Stamp> {
    let mut it = text.split(':');
    Some(Stamp {
        sender: it.next()?.parse().ok()?,
        seq: it.next()?.parse().ok()?,
        sent_ns: it.next()?.parse().ok()?,
        tag: it.next()?.parse().ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_round_trip_through_the_server_frame() {
        let frame = message_frame(7, 3, 2, "xx");
        let v: serde_json::Value = serde_json::from_str(&frame).unwrap();
        let text = v["message"].as_str().unwrap();
        let s = parse_stamp(text).unwrap();
        assert_eq!((s.sender, s.seq, s.tag), (7, 3, 2));
        let echoed = format!(r#"{{"type":"message","message":"{text}","from":"guest"}}"#);
        match parse(&echoed) {
            In::Guest(m) => assert_eq!(parse_stamp(&m), Some(s)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn source_addresses_stay_in_loopback() {
        let t = Target::new("ws://127.0.0.1:9/ws", 1, 300).unwrap();
        assert_eq!(t.sources()[0], Ipv4Addr::new(127, 0, 0, 2));
        assert!(t.sources().iter().all(|a| a.is_loopback()));
        assert!(Target::new("ws://10.0.0.1:9/ws", 1, 1).is_err());
        let url = t.url_for(0, 42);
        assert!(url.starts_with("ws://127.0.0.1:9/ws?visitor=pcb-") && url.ends_with("-42"));
    }

    #[test]
    fn connections_go_round_robin_over_the_urls() {
        let urls = [
            "ws://127.0.0.1:9/ws",
            "ws://127.0.0.1:10/ws?x=1",
            "ws://127.0.0.3:11/ws",
        ]
        .map(String::from);
        let t = Target::spread(&urls, 1, 8).unwrap();
        assert_eq!(t.endpoints.len(), 3);
        let turns: Vec<usize> = (0..7).map(|_| t.next_endpoint()).collect();
        assert_eq!(turns, vec![0, 1, 2, 0, 1, 2, 0]);
        assert_eq!(t.addr().port(), 9);
        assert!(t
            .url_for(1, 5)
            .starts_with("ws://127.0.0.1:10/ws?x=1&visitor=pcb-"));
        assert!(t
            .url_for(4, 5)
            .starts_with("ws://127.0.0.1:10/ws?x=1&visitor=pcb-"));
        assert!(Target::spread(&[], 1, 1).is_err());
        let bad = ["ws://127.0.0.1:9/ws".into(), "ws://10.0.0.1:9/ws".into()];
        assert!(
            Target::spread(&bad, 1, 1).is_err(),
            "every URL must be loopback"
        );
    }
}
