//! The reference relays of BENCHMARKS.md: the least a server can do to speak pairchat's relay
//! protocol, to measure pairchat against on the same machine at the same time (a busy host slows
//! both alike, so their ratio holds where absolute figures drift).
//!
//! - `--kind actix`: actix-web + actix-ws, as pairchat; sessions written to directly under one
//!   mutex.
//! - `--kind tungstenite`: plain tokio-tungstenite on one single-threaded runtime per worker; each
//!   connection's writing half under a mutex, written to directly by whoever relays to it.
//!
//! Both: `{"type":"request"}` pairs with whoever waits (`{"type":"response"}` to both), and
//! `{"type":"message","message":M}` goes back as `from: me` and to the partner as
//! `from: guest`. No database, limits, heartbeats, visitor tokens or online counts; TCP_NODELAY as
//! pairchat; a listen backlog of 4096. Not for production: it trusts its clients.
//!
//!   pairchat-ref-relay --kind actix --bind 127.0.0.1:41030

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use clap::{Parser, ValueEnum};
use serde::Deserialize;

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Kind {
    Actix,
    Tungstenite,
}

#[derive(Debug, Parser)]
#[command(about = "Minimal relays of pairchat's protocol, for comparison")]
struct Cli {
    #[arg(long, value_enum)]
    kind: Kind,
    #[arg(long, default_value = "127.0.0.1:41030")]
    bind: SocketAddr,
    /// Worker threads (pairchat's default is 2 here: one per core).
    #[arg(long, default_value_t = 2)]
    workers: usize,
}

#[derive(Deserialize)]
struct Frame<'a> {
    #[serde(rename = "type", borrow)]
    kind: std::borrow::Cow<'a, str>,
    #[serde(borrow, default)]
    message: Option<std::borrow::Cow<'a, str>>,
}

enum Said {
    Request,
    Message(String, String),
    Other,
}

fn said(text: &str) -> Said {
    match serde_json::from_str::<Frame<'_>>(text) {
        Ok(f) if f.kind == "request" => Said::Request,
        Ok(f) if f.kind == "message" => {
            let m = serde_json::to_string(f.message.as_deref().unwrap_or("")).unwrap_or_default();
            Said::Message(
                format!(r#"{{"type":"message","message":{m},"from":"me"}}"#),
                format!(r#"{{"type":"message","message":{m},"from":"guest"}}"#),
            )
        }
        _ => Said::Other,
    }
}

const RESPONSE: &str = r#"{"type":"response"}"#;

/// Who waits and who talks to whom, over every connection's way to write.
struct Rooms<W> {
    waiting: Option<u64>,
    conns: HashMap<u64, (W, Option<u64>)>,
}

impl<W: Clone> Rooms<W> {
    fn new() -> Self {
        Rooms {
            waiting: None,
            conns: HashMap::new(),
        }
    }

    /// `id` asks for a partner: the writers of both when paired.
    fn request(&mut self, id: u64) -> Option<(W, W)> {
        match self.waiting.take() {
            Some(w) if w != id && self.conns.contains_key(&w) => {
                self.conns.get_mut(&w)?.1 = Some(id);
                self.conns.get_mut(&id)?.1 = Some(w);
                Some((self.conns[&id].0.clone(), self.conns[&w].0.clone()))
            }
            _ => {
                self.waiting = Some(id);
                None
            }
        }
    }

    fn partner(&self, id: u64) -> Option<W> {
        let p = self.conns.get(&id)?.1?;
        Some(self.conns.get(&p)?.0.clone())
    }

    /// `id` is gone: its partner's writer, to close.
    fn leave(&mut self, id: u64) -> Option<W> {
        if self.waiting == Some(id) {
            self.waiting = None;
        }
        let p = self.conns.remove(&id)?.1?;
        let (w, _) = self.conns.remove(&p)?;
        Some(w)
    }
}

static NEXT: AtomicU64 = AtomicU64::new(1);

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.kind {
        Kind::Actix => actix_relay::run(&cli),
        Kind::Tungstenite => tungstenite_relay::run(&cli),
    }
}

mod actix_relay {
    use super::*;
    use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
    use actix_ws::{AggregatedMessage, Session};

    type Shared = Arc<Mutex<Rooms<Session>>>;

    async fn ws(
        req: HttpRequest,
        body: web::Payload,
        rooms: web::Data<Shared>,
    ) -> actix_web::Result<HttpResponse> {
        let (response, mut me, stream) = actix_ws::handle(&req, body)?;
        let mut stream = stream.aggregate_continuations();
        let id = NEXT.fetch_add(1, Relaxed);
        let rooms: Shared = rooms.get_ref().clone();
        rooms.lock().unwrap().conns.insert(id, (me.clone(), None));
        actix_web::rt::spawn(async move {
            while let Some(Ok(msg)) = stream.recv().await {
                match msg {
                    AggregatedMessage::Text(text) => match said(&text) {
                        Said::Request => {
                            let pair = rooms.lock().unwrap().request(id);
                            if let Some((mut a, mut b)) = pair {
                                let _ = a.text(RESPONSE).await;
                                let _ = b.text(RESPONSE).await;
                            }
                        }
                        Said::Message(to_me, to_partner) => {
                            let partner = rooms.lock().unwrap().partner(id);
                            if let Some(mut p) = partner {
                                let _ = p.text(to_partner).await;
                                let _ = me.text(to_me).await;
                            }
                        }
                        Said::Other => {}
                    },
                    AggregatedMessage::Ping(b) => {
                        let _ = me.pong(&b).await;
                    }
                    AggregatedMessage::Close(_) => break,
                    _ => {}
                }
            }
            let partner = rooms.lock().unwrap().leave(id);
            if let Some(p) = partner {
                let why = actix_ws::CloseReason {
                    code: actix_ws::CloseCode::Normal,
                    description: Some("partner left".into()),
                };
                let _ = p.close(Some(why)).await;
            }
            let _ = me.close(None).await;
        });
        Ok(response)
    }

    pub fn run(cli: &Cli) -> anyhow::Result<()> {
        let rooms: Shared = Arc::new(Mutex::new(Rooms::new()));
        let (bind, workers) = (cli.bind, cli.workers);
        actix_web::rt::System::new().block_on(async move {
            HttpServer::new(move || {
                App::new()
                    .app_data(web::Data::new(rooms.clone()))
                    .route("/ws", web::get().to(ws))
            })
            .workers(workers)
            .tcp_nodelay(true)
            .backlog(4096)
            .bind(bind)?
            .run()
            .await
        })?;
        Ok(())
    }
}

mod tungstenite_relay {
    use super::*;
    use futures_util::stream::SplitSink;
    use futures_util::{SinkExt, StreamExt};
    use tokio::net::{TcpListener, TcpStream};
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
    use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::WebSocketStream;

    /// A connection's writing half: whoever relays to it writes to its socket directly.
    type Sink = Arc<tokio::sync::Mutex<SplitSink<WebSocketStream<TcpStream>, Message>>>;
    type Shared = Arc<Mutex<Rooms<Sink>>>;

    async fn send(sink: &Sink, text: &str) -> bool {
        sink.lock().await.send(Message::text(text)).await.is_ok()
    }

    async fn conn(tcp: TcpStream, rooms: Shared) {
        let _ = tcp.set_nodelay(true);
        // The defaults keep a 128 KiB read buffer per connection; 4 KiB is plenty for chat
        // frames (as pairchat-bench's own clients use).
        let config = WebSocketConfig::default()
            .read_buffer_size(4096)
            .write_buffer_size(0);
        let Ok(ws) = tokio_tungstenite::accept_async_with_config(tcp, Some(config)).await else {
            return;
        };
        let (sink, mut stream) = ws.split();
        let me: Sink = Arc::new(tokio::sync::Mutex::new(sink));
        let id = NEXT.fetch_add(1, Relaxed);
        rooms.lock().unwrap().conns.insert(id, (me.clone(), None));
        while let Some(Ok(msg)) = stream.next().await {
            match msg {
                Message::Text(text) => match said(&text) {
                    Said::Request => {
                        let pair = rooms.lock().unwrap().request(id);
                        if let Some((a, b)) = pair {
                            send(&a, RESPONSE).await;
                            send(&b, RESPONSE).await;
                        }
                    }
                    Said::Message(to_me, to_partner) => {
                        let partner = rooms.lock().unwrap().partner(id);
                        if let Some(p) = partner {
                            send(&p, &to_partner).await;
                            if !send(&me, &to_me).await {
                                break;
                            }
                        }
                    }
                    Said::Other => {}
                },
                Message::Ping(payload) => {
                    let _ = me.lock().await.send(Message::Pong(payload)).await;
                }
                Message::Close(_) => break,
                _ => {}
            }
        }
        let partner = rooms.lock().unwrap().leave(id);
        if let Some(p) = partner {
            let why = CloseFrame {
                code: CloseCode::Normal,
                reason: "partner left".into(),
            };
            let _ = p.lock().await.send(Message::Close(Some(why))).await;
        }
        let _ = me.lock().await.close().await;
    }

    /// One single-threaded runtime per worker, each accepting on its own SO_REUSEPORT listener
    /// (as actix runs one single-threaded runtime per worker): no work-stealing wake-ups.
    pub fn run(cli: &Cli) -> anyhow::Result<()> {
        let rooms: Shared = Arc::new(Mutex::new(Rooms::new()));
        let workers: Vec<_> = (0..cli.workers.max(1))
            .map(|_| {
                let (rooms, bind) = (rooms.clone(), cli.bind);
                std::thread::spawn(move || -> anyhow::Result<()> {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()?;
                    rt.block_on(async {
                        let socket = tokio::net::TcpSocket::new_v4()?;
                        socket.set_reuseport(true)?;
                        socket.set_reuseaddr(true)?;
                        socket.bind(bind)?;
                        let listener: TcpListener = socket.listen(4096)?;
                        loop {
                            let (tcp, _) = listener.accept().await?;
                            tokio::spawn(conn(tcp, rooms.clone()));
                        }
                    })
                })
            })
            .collect();
        for w in workers {
            w.join().map_err(|_| anyhow::anyhow!("worker panicked"))??;
        }
        Ok(())
    }
}
