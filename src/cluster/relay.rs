//! The way out: one task that appends what this process sends to other processes onto their
//! streams (`XADD`), in the order it was handed over, a pipeline per batch of whatever has
//! queued up. A message's receipt (the sender's `me` copy) is written only once its entry is
//! in the partner process's stream, which that process reads in order from its last id; a
//! batch Redis does not take within the relay timeout is refused with `undelivered` instead.
//! A batch that failed part-way is sent again whole: the receiving hub drops what it already
//! has by the sender's sequence numbers.

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
const MAX_STREAM_LEN: usize = 100_000;
/// Pause before sending a failed batch again.
const RETRY_DELAY: Duration = Duration::from_millis(50);

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

pub fn queue() -> (RelaySender, RelayReceiver) {
    flume::bounded(QUEUE_CAPACITY)
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

/// Runs until every sender is gone.
pub async fn run(
    rx: RelayReceiver,
    mut redis: ConnectionManager,
    keys: Keys,
    timeout: Duration,
    metrics: Arc<Metrics>,
) {
    let mut batch: Vec<Queued> = Vec::with_capacity(MAX_BATCH);
    while let Ok(first) = rx.recv_async().await {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
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
        let sent = send(&pipe, &mut redis, deadline).await;
        for q in batch.drain(..) {
            let Some(receipt) = q.receipt else { continue };
            let frame = if sent {
                metrics.relayed(receipt.received);
                receipt.frame
            } else {
                undelivered_frame(&metrics)
            };
            // A sender whose outbox is full is not reading; the hub drops it at its next frame.
            let _ = receipt.outbox.try_send(Outbound::Frame(frame));
        }
    }
}

/// Sends `pipe` until Redis takes it or `deadline` passes.
async fn send(pipe: &redis::Pipeline, redis: &mut ConnectionManager, deadline: Instant) -> bool {
    let mut warned = false;
    loop {
        let attempt = tokio::time::timeout_at(deadline.into(), pipe.query_async::<()>(redis));
        match attempt.await {
            Ok(Ok(())) => return true,
            Ok(Err(e)) => {
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
                tracing::warn!("Redis did not take a relay batch in time: refused");
                return false;
            }
        }
    }
}
