//! Who is paired with whom, decided by database transactions over the chat rows, on one
//! dedicated thread (never an async worker). Operations arrive in order on one queue; whatever
//! has queued up is applied in a single transaction, so pairing costs one commit per batch.
//! On MySQL, `SKIP LOCKED` lets several server processes match against the same rows.

use std::sync::mpsc::{self, RecvTimeoutError, SyncSender, TryRecvError, TrySendError};
use std::thread;
use std::time::Duration;

use tokio::sync::mpsc as async_mpsc;

use super::ids::ConnId;
use crate::db::{self, queries, DbPool};
use diesel::r2d2;

/// Most operations applied in one transaction.
const MAX_BATCH: usize = 512;
/// Operations the queue holds before `submit` reports it full.
const QUEUE_CAPACITY: usize = 16_384;
/// How long to wait before retrying removals that failed (database down).
const RETRY_DELAY: Duration = Duration::from_millis(500);
/// Attempts at one batch before its requests are answered `Unavailable`.
const ATTEMPTS: usize = 2;

/// A request for a partner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ask {
    pub conn: ConnId,
    /// Who the connection is (a hash of its visitor token or address).
    pub visitor: i64,
    /// A visitor not to be paired with (the one just left), if any.
    pub avoid: Option<i64>,
    /// Not to be paired with its own visitor either (another tab of the same browser).
    pub avoid_self: bool,
}

impl Ask {
    /// The visitors this request skips.
    fn avoided(&self) -> Vec<i64> {
        let me = self.avoid_self.then_some(self.visitor);
        let avoided: Vec<i64> = self.avoid.into_iter().chain(me).collect();
        if avoided.is_empty() {
            vec![queries::NO_VISITOR]
        } else {
            avoided
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Pair this connection with a waiting one, or make it wait.
    Request(Ask),
    /// Remove this connection's chat, with its partner's row.
    Leave(ConnId),
    /// A visitor waiting while avoiding someone: try again with nobody avoided. Decides only
    /// when it pairs.
    Rematch(Ask),
    /// Answers `Outcome::Flushed` once everything queued before it is applied (tests, shutdown).
    Barrier(u64),
}

/// What became of a `Request`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Paired {
        partner: ConnId,
    },
    Waiting,
    /// The database did not answer; nothing was written.
    Unavailable,
    /// Everything queued before `Op::Barrier` (whose token is the decision's `conn`) is done.
    Flushed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub conn: ConnId,
    pub outcome: Outcome,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SubmitError {
    #[error("the matchmaker queue is full")]
    Full(Op),
    #[error("the matchmaker has stopped")]
    Stopped(Op),
}

/// The hub's side of the matchmaker. Dropping every handle stops the thread.
#[derive(Debug, Clone)]
pub struct Matchmaker {
    tx: SyncSender<Op>,
}

impl Matchmaker {
    /// Starts the matchmaker thread; decisions on requests come back on `decisions`, in order.
    pub fn spawn(pool: DbPool, decisions: async_mpsc::Sender<Vec<Decision>>) -> Self {
        let (tx, rx) = mpsc::sync_channel(QUEUE_CAPACITY);
        let worker = Worker {
            pool,
            rx,
            decisions,
            retry: Vec::new(),
        };
        if let Err(e) = thread::Builder::new()
            .name("matchmaker".into())
            .spawn(move || worker.run())
        {
            // Without the thread every request is answered `Unavailable` via `Stopped`.
            tracing::error!(error = %e, "cannot start the matchmaker thread");
        }
        Matchmaker { tx }
    }

    /// Queues an operation without waiting.
    pub fn submit(&self, op: Op) -> Result<(), SubmitError> {
        self.tx.try_send(op).map_err(|e| match e {
            TrySendError::Full(op) => SubmitError::Full(op),
            TrySendError::Disconnected(op) => SubmitError::Stopped(op),
        })
    }
}

struct Worker {
    pool: DbPool,
    rx: mpsc::Receiver<Op>,
    decisions: async_mpsc::Sender<Vec<Decision>>,
    /// Removals that failed (database down), retried until they succeed.
    retry: Vec<ConnId>,
}

impl Worker {
    fn run(mut self) {
        while let Some(batch) = self.next_batch() {
            let decisions = self.apply(&batch);
            if !decisions.is_empty() && self.decisions.blocking_send(decisions).is_err() {
                break; // the hub is gone: the server is stopping
            }
        }
        tracing::debug!("matchmaker stopped");
    }

    /// Waits for work, then takes whatever else is queued, up to `MAX_BATCH`. Failed removals go
    /// first, so they are retried before any request that might meet their ghost rows.
    fn next_batch(&mut self) -> Option<Vec<Op>> {
        let first = if self.retry.is_empty() {
            Some(self.rx.recv().ok()?)
        } else {
            match self.rx.recv_timeout(RETRY_DELAY) {
                Ok(op) => Some(op),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => return None,
            }
        };
        let mut batch: Vec<Op> = self.retry.drain(..).map(Op::Leave).collect();
        batch.extend(first);
        while batch.len() < MAX_BATCH {
            match self.rx.try_recv() {
                Ok(op) => batch.push(op),
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        Some(batch)
    }

    fn apply(&mut self, batch: &[Op]) -> Vec<Decision> {
        let mut last_error = None;
        for _ in 0..ATTEMPTS {
            match apply_batch(&self.pool, batch) {
                Ok(decisions) => return decisions,
                // No connection to be had: the pool has already waited its timeout.
                Err(e) if e.downcast_ref::<r2d2::PoolError>().is_some() => {
                    last_error = Some(e);
                    break;
                }
                Err(e) => last_error = Some(e),
            }
        }
        if let Some(e) = last_error {
            tracing::warn!(
                error = format!("{e:#}"),
                ops = batch.len(),
                "matchmaking batch failed"
            );
        }
        batch
            .iter()
            .filter_map(|op| match *op {
                Op::Request(Ask { conn, .. }) => Some(Decision {
                    conn,
                    outcome: Outcome::Unavailable,
                }),
                Op::Leave(conn) => {
                    self.retry.push(conn);
                    None
                }
                // Still waiting as before; the hub may try again later.
                Op::Rematch(_) => None,
                Op::Barrier(token) => Some(flushed(token)),
            })
            .collect()
    }
}

fn flushed(token: u64) -> Decision {
    Decision {
        conn: ConnId(token as i64),
        outcome: Outcome::Flushed,
    }
}

/// Applies `batch` in order in one write transaction: all of it or none.
pub fn apply_batch(pool: &DbPool, batch: &[Op]) -> anyhow::Result<Vec<Decision>> {
    let mut conn = db::get(pool)?;
    let decisions = queries::write_transaction(&mut conn, |conn| {
        let mut decisions = Vec::new();
        for op in batch {
            match *op {
                Op::Request(ask) => {
                    let rid = ask.conn;
                    let avoided = ask.avoided();
                    let outcome =
                        match queries::request_avoiding(conn, rid.0, ask.visitor, &avoided)? {
                            queries::Requested::Paired { partner } => Outcome::Paired {
                                partner: ConnId(partner),
                            },
                            queries::Requested::Waiting => Outcome::Waiting,
                        };
                    decisions.push(Decision { conn: rid, outcome });
                }
                Op::Leave(rid) => {
                    queries::leave(conn, rid.0)?;
                }
                Op::Barrier(token) => decisions.push(flushed(token)),
                Op::Rematch(ask) => {
                    if let queries::Requested::Paired { partner } =
                        queries::rematch(conn, ask.conn.0, ask.visitor)?
                    {
                        decisions.push(Decision {
                            conn: ask.conn,
                            outcome: Outcome::Paired {
                                partner: ConnId(partner),
                            },
                        });
                    }
                }
            }
        }
        Ok(decisions)
    })?;
    Ok(decisions)
}
