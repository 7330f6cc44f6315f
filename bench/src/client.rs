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

/// The server to drive and the local addresses to connect from.
#[derive(Debug)]
pub struct Target {
    pub addr: SocketAddr,
    pub url: String,
    sources: Vec<Ipv4Addr>,
    next: AtomicUsize,
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
            addr,
            url: url.to_owned(),
            sources,
            next: AtomicUsize::new(0),
            connect_timeout: Duration::from_secs(15),
            nonce: fastrand::u64(..),
            visitor_tokens: true,
        })
    }

    #[cfg(test)]
    pub fn sources(&self) -> &[Ipv4Addr] {
        &self.sources
    }

    /// Opens one WebSocket for simulated visitor `visitor`: TCP from the next source address,
    /// then the HTTP upgrade.
    pub async fn connect(&self, visitor: u64) -> anyhow::Result<Ws> {
        tokio::time::timeout(self.connect_timeout, self.connect_inner(visitor))
            .await
            .context("connect/handshake timed out")?
    }

    /// The URL for one visitor.
    pub fn url_for(&self, visitor: u64) -> String {
        if !self.visitor_tokens {
            return self.url.clone();
        }
        let sep = if self.url.contains('?') { '&' } else { '?' };
        format!("{}{sep}visitor=pcb-{:x}-{visitor}", self.url, self.nonce)
    }

    async fn connect_inner(&self, visitor: u64) -> anyhow::Result<Ws> {
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
        let stream = socket.connect(self.addr).await?;
        stream.set_nodelay(true)?;
        let config = WebSocketConfig::default()
            .read_buffer_size(4096)
            .write_buffer_size(0);
        let (ws, _) = tokio_tungstenite::client_async_with_config(
            self.url_for(visitor),
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
        let url = t.url_for(42);
        assert!(url.starts_with("ws://127.0.0.1:9/ws?visitor=pcb-") && url.ends_with("-42"));
    }
}
