//! One task per WebSocket: frames in from the client, outbox frames out to it, a heartbeat.
//! It ends for one reason, always tells the hub it left, and closes the socket saying why.
//! Requests go to the hub, which owns the conversation's state; messages go over the partner
//! link the hub hands out on pairing, which is all a session keeps of its conversation.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use actix_ws::{AggregatedMessage, AggregatedMessageStream, MessageStream, ProtocolError, Session};
use futures_util::future::{BoxFuture, Fuse, FutureExt};
use futures_util::StreamExt;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::frame_limit::Violation;
use super::hub::{unavailable_frame, AwayParts, HubHandle, Kick, Resumed, TrySendError};
use super::ids::ConnId;
pub use super::ids::Who;
use super::limits::{IpSlot, Tokens};
use super::link::{
    self, Delivery, Departure, HeldMessage, Inbox, Outbound, OutboxSender, PartnerLink,
};
use super::protocol::{parse_client_frame, ClientFrame, ServerFrame};
use super::resume::Ask;
use super::wants::Wants;
use crate::metrics::Metrics;
use crate::moderation::bans::banned_frame;
use crate::moderation::challenge::Ticket;
use crate::moderation::reports::{self, NewReport};
use crate::moderation::Moderation;
use close::{close_label, close_reason, ended_by};
use heartbeat::{Due, Heartbeat};

mod budget;
mod close;
mod farewell;
use budget::Budget;
mod heartbeat;
mod relay;

/// Limits and timings of one connection (defaults and rules: `config`).
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Largest frame (or reassembled fragmented message) accepted; larger closes with 1009.
    pub max_frame_bytes: usize,
    /// Longest message, in characters.
    pub max_message_chars: usize,
    /// How often the server pings a client it has not heard from for as long.
    pub heartbeat: Duration,
    /// A client silent (no frame, no pong) for this long is dropped.
    pub client_timeout: Duration,
    /// Frames queued for a client before it counts as not reading and is dropped.
    pub outbox_capacity: usize,
    /// Client frames allowed per second, sustained (token bucket refill rate).
    pub rate_per_sec: f64,
    /// Client frames allowed at once (token bucket size).
    pub rate_burst: u32,
}

/// Why a session ended.
#[derive(Debug)]
enum End {
    /// The client sent a close frame.
    ClientClosed,
    /// The connection broke or the client stopped reading its socket.
    Gone,
    TimedOut,
    Protocol(ProtocolError),
    /// A frame header broke a limit (see `frame_limit`): refused before its payload was read.
    Limit(Violation),
    PartnerGone(Departure),
    Kicked(Kick),
    /// Kept sending past the rate limit after being told to slow down.
    Flooding,
    /// Sent `leave`.
    Left,
    /// Reported its partner: the report is filed, then the client told `reported`.
    Reported(Box<NewReport>),
}

/// How long the close frame may take to go out before the connection is just dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// What `Client::write` sends.
enum Write {
    Text(String),
    Ping,
    Pong(actix_web::web::Bytes),
    /// Several text frames in order (the partner is back: `partner_back`, then the receipts
    /// of what was held for it).
    Batch(Vec<String>),
    /// A request waiting for the challenge gate (see `Ticket::admit`), then what it says
    /// to write, if anything. Awaited as a write is, so a kick or a silent client still ends
    /// it, and the session task does not grow.
    Admit(BoxFuture<'static, Option<String>>),
}

/// Frames refused in a row for a rate limit before the client is closed with 1008: the 21st
/// refused frame closes.
const FLOOD_STRIKES: u32 = 20;
/// Typing frames allowed per chat frame of the budget: a page sends typing on and off around
/// each message.
const TYPING_PER_MESSAGE: f64 = 2.0;
/// Pings and pongs a client may send per second, sustained, and at once. A browser answers
/// our pings (one per heartbeat at most) and never pings itself.
const CONTROL_PER_SEC: f64 = 2.0;
const CONTROL_BURST: u32 = 10;

fn typing_burst(config: &SessionConfig) -> u32 {
    config.rate_burst.saturating_mul(TYPING_PER_MESSAGE as u32)
}

/// What a session keeps of its client.
struct Client {
    id: ConnId,
    who: Who,
    ws: Session,
    hub: HubHandle,
    config: Arc<SessionConfig>,
    moderation: Arc<Moderation>,
    /// Set once paired: where messages go.
    partner: Option<PartnerLink>,
    /// The hub's order to end; fused so it may be awaited again after firing.
    kicked: Fuse<oneshot::Receiver<Kick>>,
    /// When the connection began: the rate budgets count from it.
    born: std::time::Instant,
    /// Chat frames (messages, requests, anything not typing).
    chat_tokens: Tokens,
    /// Typing frames, apart: a visitor's typing on/off must never use up the budget of its
    /// messages. Over it, typing frames are dropped without a word.
    typing_tokens: Tokens,
    /// Pings and pongs from the client: each ping costs a write. Over it, they are dropped.
    control_tokens: Tokens,
    /// Frames refused in a row for a rate limit.
    strikes: u32,
    /// This connection's way through the challenge gate; `None` with challenges off.
    ticket: Option<Arc<Ticket>>,
}

/// A connection ready to run: everything its task keeps. It is built before the task is
/// spawned and the task works on it in place: an async fn that took these as arguments and
/// moved them into locals would keep room for both copies for as long as it runs, in every
/// connection's task.
pub struct Live {
    client: Client,
    stream: AggregatedMessageStream,
    /// The outbox, read through one receiving future for the session's life: a fresh
    /// `recv_async` in every turn of the loop would register (allocate) and remove a wait hook
    /// in the channel each time.
    inbox: Inbox,
    /// Handed to the hub when the session starts: who the visitor is, where to write to it and
    /// how to end it.
    hello: Option<(OutboxSender, oneshot::Sender<Kick>)>,
    /// Held for the session's life: its address's connection slot.
    _slot: IpSlot,
    /// The chat this connection asks to resume (`/ws?resume=`), until it starts. Boxed: one
    /// word in every connection's task rather than the token's sixteen bytes and more.
    resume: Option<Box<Ask>>,
}

impl Live {
    // One argument per thing a session is handed, rather than a struct made for this call.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        hub: HubHandle,
        config: Arc<SessionConfig>,
        moderation: Arc<Moderation>,
        who: Who,
        ws: Session,
        stream: MessageStream,
        slot: IpSlot,
        ticket: Option<Arc<Ticket>>,
    ) -> Live {
        let id = hub.next_id();
        let (outbox_tx, outbox) = link::outbox(config.outbox_capacity);
        let (kick_tx, kicked) = oneshot::channel();
        let stream = stream
            .max_frame_size(config.max_frame_bytes)
            .aggregate_continuations()
            .max_continuation_size(config.max_frame_bytes);
        let chat_tokens = Tokens::full(config.rate_burst);
        let typing_tokens = Tokens::full(typing_burst(&config));
        let control_tokens = Tokens::full(CONTROL_BURST);
        Live {
            client: Client {
                id,
                who,
                ws,
                hub,
                config,
                moderation,
                partner: None,
                kicked: kicked.fuse(),
                born: std::time::Instant::now(),
                chat_tokens,
                typing_tokens,
                control_tokens,
                strikes: 0,
                ticket,
            },
            stream,
            inbox: outbox.into_stream(),
            hello: Some((outbox_tx, kick_tx)),
            _slot: slot,
            resume: None,
        }
    }

    /// This connection asks to take up the chat of a connection that broke (`/ws?resume=`).
    pub fn resuming(mut self, ask: Option<Ask>) -> Live {
        self.resume = ask.map(Box::new);
        self
    }
}

/// Runs one connection to its end.
// Not an async fn: that would move `live` into a local beside the argument's own slot, making
// every connection's task larger (BENCHMARKS.md has the sizes, by -Zprint-type-sizes).
#[allow(clippy::manual_async_fn)]
pub fn run(mut live: Live) -> impl std::future::Future<Output = ()> {
    // `live` is captured as it is and used in place, never moved into locals (see `Live`).
    async move {
        let Some((outbox, kick)) = live.hello.take() else {
            return;
        };
        let hub = live.client.hub.clone();
        // The awaits of the start and the end are boxed: inline, the largest of them would
        // set the size of every connection's task (the task is as large as its largest
        // state), though each lasts a moment of the connection's life. The start is one box
        // with all its locals (a resumed chat's parts among them), none kept beside the
        // conversation.
        let Some(first) = Box::pin(live.start(outbox, kick)).await else {
            let end = End::Kicked(Kick::Shutdown);
            live.client.hub.metrics().closed(close_label(&end));
            let why = close_reason(&end);
            let _ = Box::pin(live.client.ws.clone().close(why)).await;
            return;
        };
        let id = live.client.id;
        tracing::debug!(conn = %id, "connected");
        // A banned visitor is told at once (and again for every request).
        let end = match (first, live.client.banned()) {
            (Err(end), _) => end,
            (Ok(()), Some(Ok(Some(frame)))) => match live.client.write(frame).await {
                Ok(()) => live.converse().await,
                Err(end) => end,
            },
            _ => live.converse().await,
        };
        tracing::debug!(conn = %id, reason = ?end, "disconnected");
        let how = match end {
            End::ClientClosed | End::Left | End::Reported(_) => Departure::Left,
            _ => Departure::Lost,
        };
        live.client.hub.metrics().closed(close_label(&end));
        // Broken without a close (or taken over by a resume): the chat may be held for the
        // visitor, its outbox and link kept for the connection that takes it up again.
        let away = matches!(
            end,
            End::Gone | End::TimedOut | End::Kicked(Kick::Resumed | Kick::Restart)
        );
        if away {
            if live.client.partner.is_none() {
                // Paired just before the break, and not yet told: the link waits in the
                // outbox, behind nothing the resumed connection needs (online counts).
                while let Some(Some(out)) = live.inbox.next().now_or_never() {
                    if let Outbound::Paired(paired) = out {
                        live.client.partner = Some(paired.link);
                        break;
                    }
                }
            }
            let link = live.client.partner.take();
            if let Some(link) = &link {
                link.close_route();
            }
            let (_, spare) = link::outbox(1);
            let inbox = std::mem::replace(&mut live.inbox, spare.into_stream());
            let _ = Box::pin(hub.away(id, AwayParts { inbox, link })).await;
        } else {
            // If the hub is gone the server is stopping and the rows are cleared at the next
            // start.
            let _ = Box::pin(hub.leave(id, how)).await;
        }
        let client = &mut live.client;
        // What was held for a partner who never came back is reported, each in turn.
        let held = client.partner.as_ref().map(PartnerLink::take_held);
        for _ in held.into_iter().flatten() {
            let text = Box::pin(client.ws.text(relay::not_back_frame(client.hub.metrics())));
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, text).await;
        }
        if let Some(last) = Box::pin(farewell::last_frame(client, &end)).await {
            // Before the close, so that the page has it when the socket closes.
            let text = Box::pin(client.ws.text(last));
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, text).await;
        }
        if !matches!(end, End::Gone) {
            // A client that does not read may never take the close frame either.
            let close = client.ws.clone().close(close_reason(&end));
            let _ = Box::pin(tokio::time::timeout(CLOSE_TIMEOUT, close)).await;
        }
    }
}

impl Live {
    /// Joins the hub: as a new connection, or as the one whose chat it resumes (then the
    /// client hears `resumed`). `None` when the hub is gone (the server is stopping).
    async fn start(
        &mut self,
        outbox: OutboxSender,
        kick: oneshot::Sender<Kick>,
    ) -> Option<Result<(), End>> {
        let hub = &self.client.hub;
        let (id, who) = (self.client.id, self.client.who);
        let resumed = match self.resume.take() {
            Some(ask) => Box::pin(hub.resume(*ask, id, who, outbox, kick))
                .await
                .ok()?,
            None => {
                Box::pin(hub.connect(id, who, outbox, kick)).await.ok()?;
                None
            }
        };
        Some(match resumed {
            Some(resumed) => Box::pin(self.take_over(resumed)).await,
            None => Ok(()),
        })
    }

    /// This connection goes on as the one whose chat it resumes: its id, its outbox and its
    /// link. The client hears `resumed` first (and again that its partner is away, if it is),
    /// then whatever waits in the outbox.
    async fn take_over(&mut self, resumed: Resumed) -> Result<(), End> {
        let Resumed {
            id,
            inbox,
            link,
            token,
        } = resumed;
        self.client.id = id;
        if let Some(inbox) = inbox {
            self.inbox = inbox;
        }
        let away = link.is_away();
        // What we send from now on goes behind the `partner_back` queued for the partner.
        link.close_partner_route();
        self.client.partner = Some(link);
        let mut frames = vec![ServerFrame::Resumed {
            resume: token.to_hex().into(),
        }
        .to_json()];
        if away {
            frames.push(ServerFrame::PartnerAway.to_json());
        }
        self.client.write(Write::Batch(frames)).await?;
        if let Some(partner) = &self.client.partner {
            partner.open(&self.client.ws, &self.inbox);
        }
        Ok(())
    }

    /// Frames in from the client, outbox items out to it, the heartbeat, until one of them
    /// ends the session.
    async fn converse(&mut self) -> End {
        let Live {
            client,
            stream,
            inbox,
            ..
        } = self;
        let config = &client.config;
        let mut beat = Heartbeat::new(config.heartbeat, config.client_timeout, Instant::now());
        // One timer, moved only when the heartbeat says so: an idle connection wakes for its
        // pings and nothing else. Boxed, as tokio's `Interval` boxes its own: inline it would
        // grow every connection's task by its size.
        let mut timer = Box::pin(tokio::time::sleep_until(beat.deadline()));
        loop {
            // The arms decide synchronously and the one write a turn calls for is awaited
            // after the select, so nothing the arms held (frames, the select's own output)
            // is kept across that await: none of it takes room in every connection's task
            // for its whole life.
            let from_outbox = {
                let (reply, from_outbox) = tokio::select! {
                    frame = stream.recv() => {
                        let Some(frame) = frame else { return End::Gone };
                        let received = Instant::now();
                        match frame {
                            Ok(frame) => {
                                let pong = matches!(frame, AggregatedMessage::Pong(_));
                                if beat.heard(received, pong) {
                                    // A new timer rather than `reset`: tokio keeps a timer
                                    // moved later in its old slot and re-files it when that
                                    // comes due, which would handle every idle
                                    // connection's timer twice per ping.
                                    timer.set(tokio::time::sleep_until(beat.deadline()));
                                }
                                (client.on_client_frame(frame, received), false)
                            }
                            Err(e) => return ended_by(e),
                        }
                    }
                    out = inbox.next() => {
                        // The hub holds a sender for as long as we are connected.
                        let Some(out) = out else { return End::Kicked(Kick::Shutdown) };
                        (client.on_outbound(out), true)
                    }
                    why = &mut client.kicked => {
                        return End::Kicked(why.unwrap_or(Kick::Shutdown))
                    }
                    () = &mut timer => {
                        let due = beat.on_timer(Instant::now());
                        timer.as_mut().reset(beat.deadline());
                        match due {
                            Due::Nothing => (Ok(None), false),
                            Due::TimedOut => return End::TimedOut,
                            Due::Ping => (Ok(Some(Write::Ping)), false),
                        }
                    }
                };
                match reply {
                    Ok(Some(frame)) => {
                        if let Err(end) = client.write(frame).await {
                            return end;
                        }
                    }
                    Ok(None) => {}
                    Err(end) => return end,
                }
                from_outbox
            };
            // After our `response` is written, never before: the partner's frames may then
            // go straight onto our socket queue.
            if from_outbox {
                if let Some(partner) = &client.partner {
                    partner.open(&client.ws, inbox);
                }
            }
        }
    }
}

/// What a frame or an outbox item calls for: at most one write. Deciding is synchronous and
/// the one write is awaited in the main loop, so no nest of async calls, each holding a write
/// future, inflates every session task (it is allocated once per connection and lives as long).
type Reply = Result<Option<Write>, End>;

fn say(frame: String) -> Reply {
    Ok(Some(Write::Text(frame)))
}

/// An error frame, counted as sent.
fn refuse(metrics: &Metrics, code: &'static str, detail: impl Into<String>) -> Reply {
    metrics.error_sent(code);
    say(ServerFrame::error(code, detail).to_json())
}

impl Client {
    /// `received`: when the frame was read (the relay latency counts from it).
    fn on_client_frame(&mut self, frame: AggregatedMessage, received: Instant) -> Reply {
        match frame {
            AggregatedMessage::Text(text) => self.on_text(&text, received),
            AggregatedMessage::Binary(_) => self.over_rate().unwrap_or_else(|| {
                refuse(
                    self.hub.metrics(),
                    "binary_not_supported",
                    "Only JSON text frames are accepted.",
                )
            }),
            AggregatedMessage::Ping(payload) => match self.over_budget(Budget::Control) {
                Some(end) => end,
                None => Ok(Some(Write::Pong(payload))),
            },
            AggregatedMessage::Pong(_) => self.over_budget(Budget::Control).unwrap_or(Ok(None)),
            AggregatedMessage::Close(_) => Err(End::ClientClosed),
        }
    }

    fn on_text(&mut self, text: &str, received: Instant) -> Reply {
        let frame = parse_client_frame(text);
        // Typing frames are counted apart, so they never crowd out a message; anything else
        // (a broken frame too) is counted as a chat frame.
        if let Ok(ClientFrame::Typing(_)) = frame {
            if let Some(dropped) = self.over_budget(Budget::Typing) {
                return dropped;
            }
        } else if let Some(refused) = self.over_rate() {
            return refused;
        }
        let frame = match frame {
            Ok(frame) => frame,
            Err(e) => return refuse(self.hub.metrics(), e.code(), e.to_string()),
        };
        match frame {
            // A banned visitor may not ask; until one has passed, a request goes through the
            // challenge gate first; the hub knows whether this connection waits or talks already,
            // and says so.
            ClientFrame::Request { altcha, wants } => match (self.banned(), &self.ticket) {
                (Some(refused), _) => refused,
                (None, Some(ticket)) if !ticket.passed() => {
                    let (hub, id) = (self.hub.clone(), self.id);
                    let then = move || match hub.request(id, wants) {
                        Ok(()) | Err(TrySendError::Gone) => None,
                        Err(TrySendError::Busy) => Some(unavailable_frame(hub.metrics())),
                    };
                    let altcha = altcha.map(String::from);
                    Ok(Some(Write::Admit(ticket.admit(altcha, then))))
                }
                (None, _) => self.request(wants),
            },
            ClientFrame::Message(message) => match &self.partner {
                Some(_) => self.relay_message(&message, received),
                None => not_paired(self.hub.metrics()),
            },
            ClientFrame::Typing(typing) => match &self.partner {
                Some(partner) => {
                    deliver(&self.hub, partner, ServerFrame::Typing { typing }.to_json());
                    Ok(None)
                }
                None => not_paired(self.hub.metrics()),
            },
            ClientFrame::Report { reason, note } => match &self.partner {
                Some(partner) => self.report(partner, &reason, note.as_deref()),
                None => not_paired(self.hub.metrics()),
            },
            ClientFrame::Leave => Err(End::Left),
        }
    }

    /// A report of the partner: checked here, filed as the session ends (see `farewell`).
    fn report(&self, partner: &PartnerLink, reason: &str, note: Option<&str>) -> Reply {
        match reports::check(reason, note) {
            Ok(checked) => Err(End::Reported(Box::new(NewReport::new(
                checked,
                (partner.who().visitor, partner.who().address),
                self.who.visitor,
                partner.evidence_for(self.id),
            )))),
            Err(bad) => refuse(self.hub.metrics(), "bad_report", bad.to_string()),
        }
    }

    fn request(&mut self, wants: Wants) -> Reply {
        match self.hub.request(self.id, wants) {
            Ok(()) => Ok(None),
            Err(TrySendError::Busy) => say(unavailable_frame(self.hub.metrics())),
            Err(TrySendError::Gone) => Err(End::Kicked(Kick::Shutdown)),
        }
    }

    /// The `banned` error, when a ban holds this visitor (by its key or its address).
    fn banned(&self) -> Option<Reply> {
        let ban = self.moderation.banned(self.who.visitor, self.who.address)?;
        self.hub.metrics().error_sent("banned");
        Some(say(banned_frame(&ban, self.moderation.appeal())))
    }

    fn on_outbound(&mut self, out: Outbound) -> Reply {
        match out {
            Outbound::Frame(text) => {
                // A message from another process: kept here for the evidence (one on this
                // process was kept by its sender).
                if let Some(partner) = self.partner.as_ref().filter(|p| p.remote().is_some()) {
                    farewell::record_incoming(partner, &text);
                }
                say(text)
            }
            Outbound::Paired(paired) => {
                let link::Paired {
                    link,
                    common,
                    resume,
                } = *paired;
                let common = common.iter().map(|t| t.as_str().into()).collect();
                let resume = resume.map(|token| token.to_hex().into());
                let response = ServerFrame::Response { common, resume }.to_json();
                self.partner = Some(link);
                say(response)
            }
            Outbound::PartnerAway => {
                let capacity = self.config.outbox_capacity;
                self.partner = self.partner.take().map(|p| p.hold(capacity));
                say(ServerFrame::PartnerAway.to_json())
            }
            Outbound::PartnerBack(new) => {
                let mut frames = vec![ServerFrame::PartnerBack.to_json()];
                if let Some(partner) = self.partner.take() {
                    let (link, held) = partner.back(new.map(|link| *link));
                    self.partner = Some(link);
                    let now = Instant::now();
                    for HeldMessage { to_partner, to_me } in held {
                        frames.extend(self.relay(to_partner, to_me, now, None));
                    }
                }
                Ok(Some(Write::Batch(frames)))
            }
            Outbound::PartnerGone(how) => Err(End::PartnerGone(how)),
        }
    }
    /// Writes a frame. A client that does not read for `client_timeout` blocks the write and
    /// is dropped; so is one the hub kicks meanwhile. Every write goes through here, pings and
    /// pongs too, so no write can hold the session forever.
    ///
    /// Boxed: a write's future (the frame, actix-ws's send and the timeout, ~460 bytes)
    /// exists only while a write is under way, instead of taking room in every session task,
    /// idle or not, for its whole life (BENCHMARKS.md, per-connection memory).
    fn write(&mut self, frame: Write) -> Pin<Box<impl Future<Output = Result<(), End>> + '_>> {
        Box::pin(self.write_unboxed(frame))
    }

    async fn write_unboxed(&mut self, frame: Write) -> Result<(), End> {
        let limit = self.config.client_timeout;
        let ws = &mut self.ws;
        let write = async move {
            match frame {
                Write::Text(text) => ws.text(text).await,
                Write::Ping => ws.ping(b"").await,
                Write::Pong(payload) => ws.pong(&payload).await,
                Write::Batch(frames) => {
                    for frame in frames {
                        ws.text(frame).await?;
                    }
                    Ok(())
                }
                Write::Admit(admitted) => match admitted.await {
                    Some(text) => ws.text(text).await,
                    None => Ok(()),
                },
            }
        };
        let write = tokio::time::timeout(limit, write);
        tokio::select! {
            written = write => match written {
                Ok(Ok(())) => Ok(()),
                Ok(Err(_)) => Err(End::Gone),
                Err(_) => Err(End::Kicked(Kick::TooSlow)),
            },
            why = &mut self.kicked => Err(End::Kicked(why.unwrap_or(Kick::Shutdown))),
        }
    }
}

fn not_paired(metrics: &Metrics) -> Reply {
    refuse(metrics, "not_paired", "You have no partner to talk to yet.")
}

/// Hands a frame to the partner without waiting; returns whether it went in. A partner whose
/// outbox is full is not reading: the hub drops it and we hear `partner lost`.
fn deliver(hub: &HubHandle, partner: &PartnerLink, frame: String) -> bool {
    match partner.deliver(frame) {
        Delivery::Delivered => true,
        Delivery::Full => {
            hub.report_slow(partner.partner());
            false
        }
        Delivery::Gone => false,
    }
}
