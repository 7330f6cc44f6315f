//! The sessions' side of the hub: `HubHandle`'s methods, each one command queued for the hub
//! task (bounded), and what the hub answers with.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::Kick;
use crate::chat::ids::{ConnId, ConnIds, Who};
use crate::chat::link::{Departure, Inbox, OutboxSender, PartnerLink};
use crate::chat::protocol::ServerFrame;
use crate::chat::resume::{Ask, Token};
use crate::chat::wants::Wants;
use crate::metrics::Metrics;

/// What `HubHandle`'s methods queue for the hub task.
#[derive(Debug)]
pub(super) enum Command {
    Connect {
        id: ConnId,
        who: Who,
        outbox: OutboxSender,
        kick: oneshot::Sender<Kick>,
    },
    Request {
        id: ConnId,
        wants: Wants,
    },
    Leave {
        id: ConnId,
        how: Departure,
    },
    /// `id`'s connection broke without a close: its chat may be held for it.
    Away {
        id: ConnId,
        parts: Box<AwayParts>,
    },
    /// A new connection (`id`, not yet connected) asks to resume a chat.
    Resume {
        ask: Ask,
        id: ConnId,
        who: Who,
        outbox: OutboxSender,
        kick: oneshot::Sender<Kick>,
        reply: oneshot::Sender<Option<Resumed>>,
    },
    /// `id`'s outbox overflowed (seen by its partner, who could not deliver to it).
    TooSlow {
        id: ConnId,
    },
    Shutdown {
        done: oneshot::Sender<()>,
    },
    Stats {
        reply: oneshot::Sender<Stats>,
    },
    Flush {
        reply: oneshot::Sender<()>,
    },
}

/// What a session whose connection broke leaves for the one that may resume its chat: its
/// outbox (which its partner's frames still reach) and its link to the partner.
pub struct AwayParts {
    pub inbox: Inbox,
    pub link: Option<PartnerLink>,
}

impl std::fmt::Debug for AwayParts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwayParts")
            .field("link", &self.link)
            .finish_non_exhaustive()
    }
}

/// A chat taken up again: the connection id the new connection goes on as, what the old one
/// left, and the next token.
pub struct Resumed {
    pub id: ConnId,
    /// The old connection's outbox, to read from now on (`None`: the new connection's own).
    pub inbox: Option<Inbox>,
    pub link: PartnerLink,
    pub token: Token,
}

impl std::fmt::Debug for Resumed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resumed")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// A snapshot of the hub, for tests and operators.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// This process's connections.
    pub connections: usize,
    /// Everyone's, on every process of the cluster (this process's alone without one).
    pub online: usize,
    /// Asked for a partner and not yet paired.
    pub waiting: usize,
    /// In a conversation.
    pub chatting: usize,
    /// Conversations with someone here: both partners here, or one (the other on another
    /// process).
    pub chats: usize,
    /// Of those in a conversation, how many are away (their connection broke; the chat is
    /// held for them to resume). Their connections count as `connections` until the grace
    /// ends.
    pub away: usize,
}

/// The sessions' side of the hub. Cheap to clone.
#[derive(Debug, Clone)]
pub struct HubHandle {
    pub(super) tx: mpsc::Sender<Command>,
    pub(super) ids: ConnIds,
    pub(super) metrics: Arc<Metrics>,
}

/// Why `HubHandle::request` did not queue the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrySendError {
    /// The hub's queue is full: it is overloaded.
    Busy,
    /// The hub has stopped: the server is shutting down.
    Gone,
}

/// Error for a hub that has stopped (only while the server shuts down).
#[derive(Debug, thiserror::Error)]
#[error("the chat hub has stopped")]
pub struct HubGone;

/// The error frame for a request that cannot be served now, counted as sent.
pub fn unavailable_frame(metrics: &Metrics) -> String {
    metrics.error_sent("unavailable");
    ServerFrame::error(
        "unavailable",
        "Pairing is unavailable right now; please try again shortly.",
    )
    .to_json()
}

impl HubHandle {
    pub fn next_id(&self) -> ConnId {
        self.ids.next()
    }

    /// The process's metrics (made with the hub, labelled with its node id).
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    async fn send(&self, cmd: Command) -> Result<(), HubGone> {
        self.tx.send(cmd).await.map_err(|_| HubGone)
    }

    /// Queues without waiting (the frame path: no large send future in every session task).
    fn try_send(&self, cmd: Command) -> Result<(), TrySendError> {
        self.tx.try_send(cmd).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => TrySendError::Busy,
            mpsc::error::TrySendError::Closed(_) => TrySendError::Gone,
        })
    }

    /// A new connection: who it is, where to write to it, and how to end it. Its first outbox
    /// item is the online count.
    pub async fn connect(
        &self,
        id: ConnId,
        who: Who,
        outbox: OutboxSender,
        kick: oneshot::Sender<Kick>,
    ) -> Result<(), HubGone> {
        self.send(Command::Connect {
            id,
            who,
            outbox,
            kick,
        })
        .await
    }

    /// `id` asks for a partner, wanting `wants`. The answer comes in its outbox: `waiting`,
    /// `Paired`, or an error (`already_waiting`, `already_paired`, `unavailable`). A full queue
    /// means the hub is overloaded; the caller says so.
    pub fn request(&self, id: ConnId, wants: Wants) -> Result<(), TrySendError> {
        self.try_send(Command::Request { id, wants })
    }

    /// `id` is gone; its partner is told `how`.
    pub async fn leave(&self, id: ConnId, how: Departure) -> Result<(), HubGone> {
        self.send(Command::Leave { id, how }).await
    }

    /// `id`'s connection broke without a close frame (or another connection resumed its
    /// chat): the hub holds the chat for a resume, or, when it cannot, `id` leaves as lost.
    pub async fn away(&self, id: ConnId, parts: AwayParts) -> Result<(), HubGone> {
        self.send(Command::Away {
            id,
            parts: Box::new(parts),
        })
        .await
    }

    /// A new connection, `id`, asks to take up the chat `ask` names. `Some`: it goes on as
    /// the connection it names (`Resumed::id`). `None`: it is connected as `id`, an ordinary
    /// idle connection, and its outbox says `resume_failed`.
    pub async fn resume(
        &self,
        ask: Ask,
        id: ConnId,
        who: Who,
        outbox: OutboxSender,
        kick: oneshot::Sender<Kick>,
    ) -> Result<Option<Resumed>, HubGone> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Resume {
            ask,
            id,
            who,
            outbox,
            kick,
            reply,
        })
        .await?;
        rx.await.map_err(|_| HubGone)
    }

    /// `id` does not read (its partner found its outbox full): it is dropped. If the hub is
    /// too busy to hear it now, the next frame that finds the outbox full tells it again.
    pub fn report_slow(&self, id: ConnId) {
        let _ = self.try_send(Command::TooSlow { id });
    }

    /// Closes every session with 1001 and waits until they are gone, or `within` has passed.
    pub async fn shutdown(&self, within: Duration) {
        let (done, wait) = oneshot::channel();
        if self.send(Command::Shutdown { done }).await.is_ok() {
            let _ = tokio::time::timeout(within, wait).await;
        }
    }

    /// Waits until the matchmaker has applied everything queued so far, and what followed
    /// from it, `rounds` deep.
    pub async fn flush(&self, rounds: usize) -> Result<(), HubGone> {
        for _ in 0..rounds {
            let (reply, rx) = oneshot::channel();
            self.send(Command::Flush { reply }).await?;
            rx.await.map_err(|_| HubGone)?;
        }
        Ok(())
    }

    pub async fn stats(&self) -> Result<Stats, HubGone> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Stats { reply }).await?;
        rx.await.map_err(|_| HubGone)
    }
}
