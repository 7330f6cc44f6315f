//! The partner link: how one session's messages reach its partner's socket, without the hub or
//! the database. A session only `deliver`s to its link and `open`s its side of it; which way a
//! frame travels is this module's business, so that other kinds of partner (on another
//! process, or away and resuming) can become other kinds of link.
//!
//! A partner on another process is a `cluster::RemoteLink`: its frames go through Redis, and
//! its receipts come back later (see `cluster`). The rest of this module is the local kind.
//!
//! A local partner is reached two ways. At first a frame goes into the partner's
//! bounded outbox and the partner's session writes it. Once the partner has written its
//! `response` and nothing from us waits in its outbox, it `open`s the direct route: from then
//! on the sender writes onto the partner's socket queue itself, one task hop fewer. When that
//! queue is full the frame goes to the outbox again and the route closes until the partner has
//! caught up. The ordering rule, in one place: every send and every switch of a route holds
//! that route's lock, and a route opens only while the outbox it bypasses is empty, so no
//! frame overtakes another and each arrives once.
//!
//! A partner who is away (its connection broke; it may resume, see `chat::resume`) is a third
//! kind (`held`): the sender's session swaps its link for one that holds its messages, without
//! a receipt, until the partner is back (they go then, and are receipted as they go) or the
//! chat ends (each is reported `undelivered`).

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytestring::ByteString;
use flume::r#async::RecvStream;
use futures_util::FutureExt;

use super::ids::{ConnId, Who};
use super::resume::Token;
use crate::cluster::RemoteLink;
use crate::moderation::reports::{Line, Transcript};

mod held;
pub use held::HeldMessage;

/// How a connection ended, as its partner is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Departure {
    /// Closed its socket: the partner's socket closes with `partner left`.
    Left,
    /// Went silent, broke the connection or was dropped: `partner lost`.
    Lost,
}

/// What a session receives in its outbox, in order.
#[derive(Debug)]
pub enum Outbound {
    /// A server frame, already JSON, to write as it is.
    Frame(String),
    /// Paired: from now on messages go to this partner. Boxed, as the rarer variants are:
    /// every outbox keeps room for a few items of the largest variant for its whole life.
    Paired(Box<Paired>),
    /// The partner's connection broke: hold what goes to it until it is back or gone.
    PartnerAway,
    /// The partner is back: send what was held, over the link it had (`None`) or this one
    /// (it came back on another process).
    PartnerBack(Option<Box<PartnerLink>>),
    /// The partner is gone: close the socket (1000) saying how.
    PartnerGone(Departure),
}

/// What a session is told when it is paired.
#[derive(Debug)]
pub struct Paired {
    pub link: PartnerLink,
    /// The interests the two share (the `response` names them; empty when paired at random).
    pub common: Arc<[String]>,
    /// This visitor's token for the chat (none when the system had no randomness).
    pub resume: Option<Token>,
}

/// A session's outbox: bounded, and allocating nothing until something is queued (unlike
/// tokio's mpsc, which allocates a block of slots per channel up front).
pub type OutboxSender = flume::Sender<Outbound>;
pub type OutboxReceiver = flume::Receiver<Outbound>;
/// The outbox as its session reads it: one receiving future for the session's life.
pub type Inbox = RecvStream<'static, Outbound>;

pub fn outbox(capacity: usize) -> (OutboxSender, OutboxReceiver) {
    flume::bounded(capacity)
}

/// What became of a frame handed to `PartnerLink::deliver`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// On its way to the partner, in order.
    Delivered,
    /// The partner is not reading (its outbox is full): it should be dropped as too slow.
    Full,
    /// The partner's session has ended; its departure is on the way to us.
    Gone,
}

/// One direction of a pair: while `Queued` frames go into the receiver's outbox; `Direct`,
/// onto the receiver's socket queue.
#[derive(Default)]
enum Route {
    #[default]
    Queued,
    Direct(actix_ws::Session),
}

/// A paired partner: where messages to it go, who it is, and the chat's last messages.
#[derive(Clone)]
pub struct PartnerLink {
    partner: ConnId,
    kind: Kind,
    /// The partner's keys, for a report.
    who: Who,
    /// The evidence a report sends: one for both sides of a pair within this process, one
    /// per side when the partner is on another process.
    transcript: Arc<Mutex<Transcript>>,
}

#[derive(Clone)]
enum Kind {
    Local {
        outbox: OutboxSender,
        /// Both routes of the pair, in one allocation: `[to the one who asked first, to the
        /// other]`.
        routes: Arc<[Mutex<Route>; 2]>,
        /// Which of `routes` leads to this session (the other leads to the partner).
        mine: usize,
    },
    Remote(Arc<RemoteLink>),
    /// The partner is away: messages wait here (see `held`).
    Away(Arc<held::Held>),
}

impl std::fmt::Debug for PartnerLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartnerLink")
            .field("partner", &self.partner)
            .field("remote", &self.remote().is_some())
            .finish_non_exhaustive()
    }
}

/// One side of a new pair: its id, its outbox, and who it is.
pub type Side = (ConnId, OutboxSender, Who);

/// The two links of a new pair: `(a's link to b, b's to a)`.
pub fn pair(a: Side, b: Side) -> (PartnerLink, PartnerLink) {
    let routes: Arc<[Mutex<Route>; 2]> = Arc::default();
    let transcript = Arc::default();
    let to_b = PartnerLink {
        partner: b.0,
        kind: Kind::Local {
            outbox: b.1,
            routes: routes.clone(),
            mine: 0,
        },
        who: b.2,
        transcript: Arc::clone(&transcript),
    };
    let to_a = PartnerLink {
        partner: a.0,
        kind: Kind::Local {
            outbox: a.1,
            routes,
            mine: 1,
        },
        who: a.2,
        transcript,
    };
    (to_b, to_a)
}

/// The link to a partner on another process, who is `who`.
pub fn remote(link: RemoteLink, partner: ConnId, who: Who) -> PartnerLink {
    PartnerLink {
        partner,
        kind: Kind::Remote(Arc::new(link)),
        who,
        transcript: Arc::default(),
    }
}

impl PartnerLink {
    /// Who this link leads to.
    pub fn partner(&self) -> ConnId {
        self.partner
    }

    /// Who the partner is.
    pub fn who(&self) -> Who {
        self.who
    }

    /// Keeps a chat message for the evidence (`from`: its sender). Called by the sender for
    /// what it sends, and by the receiver for what comes from another process.
    pub fn record(&self, from: ConnId, message: &str) {
        lock_transcript(&self.transcript).record(from, message);
    }

    /// The chat's last messages, labelled for `reporter`.
    pub fn evidence_for(&self, reporter: ConnId) -> Vec<Line> {
        lock_transcript(&self.transcript).evidence_for(reporter)
    }

    /// The partner on another process, if it is there.
    pub fn remote(&self) -> Option<&RemoteLink> {
        match &self.kind {
            Kind::Remote(link) => Some(link),
            Kind::Local { .. } | Kind::Away(_) => None,
        }
    }

    /// The receiving side, as its connection breaks: the route from the partner straight to
    /// its socket closes, so what the partner sends from now on waits in the outbox (which
    /// outlives the socket while the chat is held for a resume).
    pub fn close_route(&self) {
        match &self.kind {
            Kind::Local { routes, mine, .. } => *lock(&routes[*mine]) = Route::Queued,
            Kind::Away(held) => held.behind().close_route(),
            Kind::Remote(_) => {}
        }
    }

    /// The sending side, as a resumed connection takes the link up: what it sends goes into
    /// the partner's outbox, behind what the hub queued there (`partner_back`), until the
    /// partner opens its route again.
    pub fn close_partner_route(&self) {
        match &self.kind {
            Kind::Local { routes, mine, .. } => *lock(&routes[1 - *mine]) = Route::Queued,
            Kind::Away(held) => held.behind().close_partner_route(),
            Kind::Remote(_) => {}
        }
    }

    /// Hands a frame to the partner without waiting: onto its socket queue while the route is
    /// open, into its outbox otherwise (and when the socket queue is full, closing the route).
    #[inline]
    pub fn deliver(&self, frame: String) -> Delivery {
        let (outbox, routes, mine) = match &self.kind {
            Kind::Local {
                outbox,
                routes,
                mine,
            } => (outbox, routes, *mine),
            Kind::Remote(link) => return link.deliver(frame),
            // Only messages are held (`hold_message`); a typing notice to an away partner
            // is dropped.
            Kind::Away(_) => return Delivery::Delivered,
        };
        let mut route = lock(&routes[1 - mine]);
        let frame = match &mut *route {
            Route::Direct(ws) => {
                let frame = ByteString::from(frame);
                match ws.text(frame.clone()).now_or_never() {
                    Some(Ok(())) => return Delivery::Delivered,
                    // The partner's session is closing; its departure is on the way to us.
                    Some(Err(_)) => return Delivery::Gone,
                    None => {
                        *route = Route::Queued;
                        String::from(&*frame)
                    }
                }
            }
            Route::Queued => frame,
        };
        let queued = outbox.try_send(Outbound::Frame(frame));
        drop(route);
        match queued {
            Ok(()) => Delivery::Delivered,
            Err(flume::TrySendError::Full(_)) => Delivery::Full,
            Err(flume::TrySendError::Disconnected(_)) => Delivery::Gone,
        }
    }

    /// The receiving side: opens the route from the partner straight to `socket` once nothing
    /// the partner sent waits in `inbox` any more (all of it is written, so nothing the partner
    /// writes directly from now on can overtake it). Call after each outbox item is written.
    #[inline]
    pub fn open(&self, socket: &actix_ws::Session, inbox: &Inbox) {
        let (routes, mine) = match &self.kind {
            Kind::Local { routes, mine, .. } => (routes, mine),
            Kind::Away(held) => return held.behind().open(socket, inbox),
            // Frames from another process come through the hub, in order.
            Kind::Remote(_) => return,
        };
        let mut route = lock(&routes[*mine]);
        if matches!(*route, Route::Queued) && inbox.is_empty() {
            *route = Route::Direct(socket.clone());
        }
    }
}

/// A panic elsewhere while the transcript was locked leaves at worst a line missing.
fn lock_transcript(t: &Mutex<Transcript>) -> MutexGuard<'_, Transcript> {
    t.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A panic elsewhere while a route was locked leaves nothing half-done in it.
fn lock(route: &Mutex<Route>) -> MutexGuard<'_, Route> {
    route.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_side_delivers_into_the_others_outbox_until_the_route_opens() {
        let ids = super::super::ids::ConnIds::with_node(3);
        let (a, b) = (ids.next(), ids.next());
        let (a_tx, a_rx) = outbox(1);
        let (b_tx, b_rx) = outbox(1);
        let who = Who {
            visitor: super::super::ids::VisitorKey::named(1),
            address: super::super::ids::VisitorKey::address(2),
        };
        let (to_b, to_a) = pair((a, a_tx, who), (b, b_tx, who));
        assert_eq!((to_b.partner(), to_a.partner()), (b, a));
        assert_eq!(to_b.deliver("hi b".into()), Delivery::Delivered);
        assert_eq!(to_a.deliver("hi a".into()), Delivery::Delivered);
        assert!(matches!(b_rx.try_recv(), Ok(Outbound::Frame(f)) if f == "hi b"));
        assert!(matches!(a_rx.try_recv(), Ok(Outbound::Frame(f)) if f == "hi a"));
        // A partner that does not read fills its outbox; one that has gone is gone.
        assert_eq!(to_b.deliver("1".into()), Delivery::Delivered);
        assert_eq!(to_b.deliver("2".into()), Delivery::Full);
        drop(b_rx);
        assert_eq!(to_b.deliver("3".into()), Delivery::Gone);
    }
}
