//! The way out: one task that appends what this process sends to other processes onto their
//! streams (`XADD`), in the order it was handed over, a pipeline per batch of whatever has
//! queued up. A message's receipt (the sender's `me` copy) is written only once the partner's
//! process has taken the message: its hub acknowledges what it has handed to its sessions
//! (`Ack`, one per batch it reads), and the relay then releases the receipts it holds, in
//! order. A message not acknowledged within the relay timeout (Redis did not take it, or the
//! partner's process is gone) is refused with `undelivered` instead. A batch that failed
//! part-way is sent again whole: the receiving hub drops what it already has by the sender's
//! sequence numbers, and acknowledges it again.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;

use super::wire::{Envelope, Keys};
use crate::chat::link::{Outbound, OutboxSender};
use crate::chat::protocol::ServerFrame;
use crate::metrics::Metrics;

/// Entries sent in one pipeline at most.
const MAX_BATCH: usize = 256;
/// Envelopes queued for Redis before senders are refused (`undelivered`).
pub const QUEUE_CAPACITY: usize = 65_536;
/// Entries a stream keeps at most (trimmed approximately): room for a reader minutes behind.
pub(super) const MAX_STREAM_LEN: usize = 100_000;
/// Pause before sending a failed batch again.
const RETRY_DELAY: Duration = Duration::from_millis(50);
/// How often receipts past the relay timeout are refused.
const EXPIRE_EVERY: Duration = Duration::from_millis(100);
/// How long an acknowledgement may wait for company. Alone, each batch the partner's process
/// read would cost an append here and a read there; held this long, the acknowledgements of a
/// few batches go as one entry, or ride along with the next message. It delays the sender's
/// receipt only, never the message (BENCHMARKS.md, 2026-12-07: acknowledgements held).
const ACK_LINGER: Duration = Duration::from_millis(2);

/// The sender's side of a message: its own copy, written once the message is on its way.
#[derive(Debug)]
pub struct Receipt {
    pub outbox: OutboxSender,
    pub frame: String,
    /// When the message was read (the relay latency counts from it).
    pub received: Instant,
}

#[derive(Debug)]
pub struct Queued {
    pub node: u32,
    pub envelope: Envelope,
    pub receipt: Option<Receipt>,
    pub at: Instant,
}

pub type RelaySender = flume::Sender<Queued>;
pub type RelayReceiver = flume::Receiver<Queued>;
/// Acknowledgements read from this process's stream: `(sender, up to seq)`.
pub type AckSender = flume::Sender<Vec<(i64, i64, u64)>>;
pub type AckReceiver = flume::Receiver<Vec<(i64, i64, u64)>>;

pub fn queue() -> (RelaySender, RelayReceiver) {
    flume::bounded(QUEUE_CAPACITY)
}

pub fn acks() -> (AckSender, AckReceiver) {
    flume::unbounded()
}

/// The error frame of a message that did not reach the partner's process.
pub fn undelivered_frame(metrics: &Metrics) -> String {
    metrics.error_sent("undelivered");
    ServerFrame::error(
        "undelivered",
        "This message could not be delivered: your partner's server cannot be reached.",
    )
    .to_json()
}

/// Receipts waiting for the partner's process, per sending connection, in order.
/// A sender's frames to one partner connection waiting for their acknowledgement: sequence
/// number, deadline, receipt.
type Waiting = VecDeque<(u64, Instant, Receipt)>;

#[derive(Default)]
struct Held {
    /// By `(from, to)`: a sender's frames to one partner connection.
    by_sender: HashMap<(i64, i64), Waiting>,
}

impl Held {
    fn hold(&mut self, link: (i64, i64), seq: u64, deadline: Instant, receipt: Receipt) {
        self.by_sender
            .entry(link)
            .or_default()
            .push_back((seq, deadline, receipt));
    }

    /// Writes the receipts of everything acknowledged.
    fn release(&mut self, acks: Vec<(i64, i64, u64)>, metrics: &Metrics) {
        for (from, to, upto) in acks {
            let Some(held) = self.by_sender.get_mut(&(from, to)) else {
                continue;
            };
            while held.front().is_some_and(|(seq, _, _)| *seq <= upto) {
                if let Some((_, _, receipt)) = held.pop_front() {
                    metrics.relayed(receipt.received);
                    // A sender whose outbox is full is not reading; the hub drops it soon.
                    let _ = receipt.outbox.try_send(Outbound::Frame(receipt.frame));
                }
            }
            if held.is_empty() {
                self.by_sender.remove(&(from, to));
            }
        }
    }

    /// Refuses what has waited past its deadline.
    fn expire(&mut self, now: Instant, metrics: &Metrics) {
        self.by_sender.retain(|_, held| {
            while held
                .front()
                .is_some_and(|(_, deadline, _)| *deadline <= now)
            {
                if let Some((_, _, receipt)) = held.pop_front() {
                    refuse(receipt, metrics);
                }
            }
            !held.is_empty()
        });
    }
}

fn refuse(receipt: Receipt, metrics: &Metrics) {
    let _ = receipt
        .outbox
        .try_send(Outbound::Frame(undelivered_frame(metrics)));
}

/// Runs until every sender is gone.
pub async fn run(
    rx: RelayReceiver,
    acks: AckReceiver,
    mut redis: ConnectionManager,
    keys: Keys,
    timeout: Duration,
    metrics: Arc<Metrics>,
) {
    let mut batch: Vec<Queued> = Vec::with_capacity(MAX_BATCH);
    let mut held = Held::default();
    // Acknowledgements waiting for company, and when they go alone.
    let mut lingering: Vec<Queued> = Vec::new();
    let mut linger_until: Option<Instant> = None;
    let mut expiry = tokio::time::interval(EXPIRE_EVERY);
    expiry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        let linger = async {
            match linger_until {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        let first = tokio::select! {
            first = rx.recv_async() => match first {
                Ok(first) => Some(first),
                Err(_) => return,
            },
            Ok(acked) = acks.recv_async() => {
                held.release(acked, &metrics);
                while let Ok(acked) = acks.try_recv() {
                    held.release(acked, &metrics);
                }
                continue;
            }
            _ = expiry.tick() => {
                held.expire(Instant::now(), &metrics);
                continue;
            }
            () = linger => None,
        };
        batch.extend(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let only_acks = batch
            .iter()
            .all(|q| matches!(q.envelope, Envelope::Ack { .. }));
        if only_acks && !batch.is_empty() {
            // Acknowledgements alone wait a little for others, or for a message to ride with.
            lingering.append(&mut batch);
            linger_until.get_or_insert_with(|| Instant::now() + ACK_LINGER);
            continue;
        }
        batch.append(&mut lingering);
        linger_until = None;
        if batch.is_empty() {
            continue;
        }
        merge_acks(&mut batch);
        let mut pipe = redis::pipe();
        for q in &batch {
            pipe.cmd("XADD")
                .arg(keys.inbox(q.node))
                .arg("MAXLEN")
                .arg("~")
                .arg(MAX_STREAM_LEN)
                .arg("*")
                .arg("e")
                .arg(q.envelope.to_json())
                .ignore();
        }
        let deadline = batch[0].at + timeout;
        let sent = send(&pipe, &mut redis, deadline, &metrics).await;
        for q in batch.drain(..) {
            let Some(receipt) = q.receipt else { continue };
            match (&q.envelope, sent) {
                (Envelope::Frame { from, to, seq, .. }, true) => {
                    held.hold((*from, *to), *seq, q.at + timeout, receipt)
                }
                _ => refuse(receipt, &metrics),
            }
        }
    }
}

/// The acknowledgements of a batch for one process go as one entry (after the batch's other
/// entries for it: an acknowledgement only releases receipts, so it may come later).
fn merge_acks(batch: &mut Vec<Queued>) {
    if batch
        .iter()
        .filter(|q| matches!(q.envelope, Envelope::Ack { .. }))
        .count()
        < 2
    {
        return;
    }
    let mut merged: Vec<Queued> = Vec::new();
    batch.retain_mut(|q| {
        let Envelope::Ack { acks } = &mut q.envelope else {
            return true;
        };
        match merged.iter_mut().find(|m| m.node == q.node) {
            Some(Queued {
                envelope: Envelope::Ack { acks: into },
                ..
            }) => into.append(acks),
            _ => merged.push(Queued {
                node: q.node,
                envelope: Envelope::Ack {
                    acks: std::mem::take(acks),
                },
                receipt: None,
                at: q.at,
            }),
        }
        false
    });
    batch.append(&mut merged);
}

/// Sends `pipe` until Redis takes it or `deadline` passes; each failed attempt is counted.
async fn send(
    pipe: &redis::Pipeline,
    redis: &mut ConnectionManager,
    deadline: Instant,
    metrics: &Metrics,
) -> bool {
    let mut warned = false;
    loop {
        let attempt = tokio::time::timeout_at(deadline.into(), pipe.query_async::<()>(redis));
        match attempt.await {
            Ok(Ok(())) => return true,
            Ok(Err(e)) => {
                metrics.redis_error();
                if !warned {
                    tracing::warn!(error = %e, "cannot relay to Redis; retrying");
                    warned = true;
                }
                if Instant::now() + RETRY_DELAY >= deadline {
                    return false;
                }
                tokio::time::sleep(RETRY_DELAY).await;
            }
            Err(_) => {
                metrics.redis_error();
                tracing::warn!("Redis did not take a relay batch in time: refused");
                return false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_acknowledgement_releases_the_receipts_of_its_own_pair_only() {
        // A sender whose partner resumed elsewhere: what it sent the old connection (to 2,
        // never taken) is not receipted by the new one's (to 5) acknowledgements.
        let metrics = Metrics::new(1);
        let (outbox, receipts) = crate::chat::link::outbox(8);
        let receipt = |text: &str| Receipt {
            outbox: outbox.clone(),
            frame: text.into(),
            received: Instant::now(),
        };
        let later = Instant::now() + Duration::from_secs(60);
        let mut held = Held::default();
        held.hold((1, 2), 1, later, receipt("to the old one"));
        held.hold((1, 5), 1, later, receipt("to the new one"));
        held.release(vec![(1, 5, 7)], &metrics);
        let written: Vec<String> = receipts
            .try_iter()
            .map(|out| match out {
                Outbound::Frame(f) => f,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(written, ["to the new one"]);
    }

    fn ack(node: u32, acks: Vec<(i64, i64, u64)>) -> Queued {
        Queued {
            node,
            envelope: Envelope::Ack { acks },
            receipt: None,
            at: Instant::now(),
        }
    }

    #[test]
    fn a_batchs_acknowledgements_go_as_one_entry_per_process() {
        let frame = |node| Queued {
            node,
            envelope: Envelope::Refuse { to: 1, from: 2 },
            receipt: None,
            at: Instant::now(),
        };
        let mut batch = vec![
            ack(1, vec![(10, 9, 1)]),
            frame(1),
            ack(2, vec![(20, 9, 5)]),
            ack(1, vec![(11, 9, 3)]),
        ];
        merge_acks(&mut batch);
        let kinds: Vec<(u32, Envelope)> = batch.into_iter().map(|q| (q.node, q.envelope)).collect();
        assert_eq!(
            kinds,
            vec![
                (1, Envelope::Refuse { to: 1, from: 2 }),
                (
                    1,
                    Envelope::Ack {
                        acks: vec![(10, 9, 1), (11, 9, 3)]
                    }
                ),
                (
                    2,
                    Envelope::Ack {
                        acks: vec![(20, 9, 5)]
                    }
                ),
            ]
        );
    }
}
