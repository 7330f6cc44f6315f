//! The record of the chats whose two visitors are both on this process, kept in Redis (a hash
//! per process: chat key → the two sides as `Envelope::Adopt` carries them, without frames).
//! If this process dies, the one that sweeps it adopts them (`liveness`), and the visitors
//! resume there or anywhere, as after a stop (`chat::hub::handover`). Written in order by one
//! task, a pipeline per batch. Best effort: a record lost while Redis is away only means that
//! this chat ends with the process, as it would without the record.

use std::sync::Arc;

use redis::aio::ConnectionManager;
use tokio::sync::mpsc;

use crate::metrics::Metrics;

/// Records queued before the oldest is written (a record is a few hundred bytes).
pub(super) const CAPACITY: usize = 4_096;
/// Records written in one pipeline at most.
const BATCH: usize = 256;
/// How long a process's hash outlives its last write: one left behind by a process that
/// stopped while records were still queued goes by itself.
const KEEP_SECS: u64 = 24 * 60 * 60;

/// One change to the record.
#[derive(Debug)]
pub(super) enum Op {
    /// The chat `key` is here, with these two sides (JSON).
    Set(i64, String),
    /// The chat `key` is not (any more).
    Del(i64),
}

pub(super) async fn run(
    mut ops: mpsc::Receiver<Op>,
    mut redis: ConnectionManager,
    key: String,
    metrics: Arc<Metrics>,
) {
    let mut batch = Vec::with_capacity(BATCH);
    while ops.recv_many(&mut batch, BATCH).await > 0 {
        let mut pipe = redis::pipe();
        let mut set = false;
        for op in batch.drain(..) {
            match op {
                Op::Set(chat, sides) => {
                    set = true;
                    pipe.cmd("HSET").arg(&key).arg(chat).arg(sides).ignore();
                }
                Op::Del(chat) => {
                    pipe.cmd("HDEL").arg(&key).arg(chat).ignore();
                }
            }
        }
        if set {
            pipe.cmd("EXPIRE").arg(&key).arg(KEEP_SECS).ignore();
        }
        if pipe.query_async::<()>(&mut redis).await.is_err() {
            metrics.redis_error();
        }
    }
}
