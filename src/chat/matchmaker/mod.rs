//! Who is paired with whom, decided by database transactions over the chat rows, on one
//! dedicated thread (never an async worker). Operations arrive in order on one queue; whatever
//! has queued up is applied in a single transaction, so pairing costs one commit per batch.
//! On MySQL, `SKIP LOCKED` lets several server processes match against the same rows. What a
//! request avoids (and when it stops minding) is `preferences`.

pub mod preferences;

use std::collections::VecDeque;
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender, TryRecvError, TrySendError};
use std::thread;
use std::time::Duration;

use tokio::sync::mpsc as async_mpsc;

use super::ids::{ConnId, VisitorKey};
use crate::db::{self, queries, DbConn, DbPool};
use diesel::r2d2;

/// Most operations applied in one transaction.
const MAX_BATCH: usize = 512;
/// Operations the queue holds before `submit` holds them back.
const QUEUE_CAPACITY: usize = 16_384;
/// Operations held back while the queue is full; past this, requests are refused.
const MAX_BACKLOG: usize = 65_536;
/// How long to wait before retrying removals that failed (database down).
const RETRY_DELAY: Duration = Duration::from_millis(500);
/// Attempts at one batch before its requests are answered `Unavailable`.
const ATTEMPTS: usize = 2;

/// A request for a partner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ask {
    pub id: ConnId,
    /// Who the connection is.
    pub visitor: VisitorKey,
    /// Visitors not to be paired with: everyone it talked to within the cooldown.
    pub avoid: Vec<VisitorKey>,
    /// Not to be paired with its own visitor either (another tab of the same browser).
    pub avoid_self: bool,
}

impl Ask {
    /// The visitors this request skips, as the database keeps them.
    fn avoided(&self) -> Vec<i64> {
        let me = self.avoid_self.then_some(self.visitor);
        self.avoid
            .iter()
            .copied()
            .chain(me)
            .map(VisitorKey::as_i64)
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Pair this connection with a waiting one, or make it wait.
    Request(Ask),
    /// Remove this connection's chat, with its partner's row.
    Leave(ConnId),
    /// A visitor waiting while avoiding someone: try again with nobody avoided. Decides only
    /// when it pairs.
    Rematch(Ask),
    /// Answers `Decision::Flushed` once everything queued before it is applied (tests, shutdown).
    Barrier(u64),
}

impl Op {
    /// The answer to an operation that will never be applied: a request is `Unavailable`, a
    /// barrier passes; the rest promised nothing.
    fn unanswered(&self) -> Option<Decision> {
        match *self {
            Op::Request(Ask { id, .. }) => Some(Decision::Request {
                conn: id,
                outcome: Outcome::Unavailable,
            }),
            Op::Barrier(token) => Some(Decision::Flushed(token)),
            Op::Leave(_) | Op::Rematch(_) => None,
        }
    }
}

/// What became of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Paired {
        partner: ConnId,
    },
    Waiting,
    /// The database did not answer; nothing was written.
    Unavailable,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The answer to `Op::Request` (or to an `Op::Rematch` that paired).
    Request { conn: ConnId, outcome: Outcome },
    /// Everything queued before `Op::Barrier(token)` is done.
    Flushed(u64),
}

/// The hub's side of the matchmaker. Dropping it stops the thread.
#[derive(Debug)]
pub struct Matchmaker {
    tx: SyncSender<Op>,
    /// Operations held back, in order, while the queue is full.
    backlog: VecDeque<Op>,
}

impl Matchmaker {
    /// Starts the matchmaker thread; decisions come back on `decisions`, in order.
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
            // Without the thread every request is answered `Unavailable`.
            tracing::error!(error = %e, "cannot start the matchmaker thread");
        }
        Matchmaker {
            tx,
            backlog: VecDeque::new(),
        }
    }

    /// Queues an operation in order without waiting, holding it back while the queue is full.
    /// Returns the decision for one that cannot be queued at all (the backlog is full, or the
    /// thread has stopped). A removal that cannot be queued leaves rows that the next start-up
    /// (or a ghost check) removes.
    pub fn submit(&mut self, op: Op) -> Option<Decision> {
        if !self.backlog.is_empty() {
            return self.hold_back(op);
        }
        match self.tx.try_send(op) {
            Ok(()) => None,
            Err(TrySendError::Full(op)) => self.hold_back(op),
            Err(TrySendError::Disconnected(op)) => refused(op),
        }
    }

    fn hold_back(&mut self, op: Op) -> Option<Decision> {
        if self.backlog.len() >= MAX_BACKLOG {
            refused(op)
        } else {
            self.backlog.push_back(op);
            None
        }
    }

    /// Moves held-back operations onto the queue as it has room; returns the decisions for
    /// those it cannot take (the thread has stopped).
    pub fn pump(&mut self) -> Vec<Decision> {
        let mut refusals = Vec::new();
        while let Some(op) = self.backlog.pop_front() {
            match self.tx.try_send(op) {
                Ok(()) => {}
                Err(TrySendError::Full(op)) => {
                    self.backlog.push_front(op);
                    break;
                }
                Err(TrySendError::Disconnected(op)) => refusals.extend(refused(op)),
            }
        }
        refusals
    }
}

fn refused(op: Op) -> Option<Decision> {
    if let Op::Leave(id) = op {
        tracing::warn!(conn = %id, "matchmaker unavailable; rows left behind");
    }
    op.unanswered()
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
            .filter_map(|op| {
                if let Op::Leave(id) = *op {
                    self.retry.push(id);
                }
                // Rematches: still waiting as before; the hub may try again later.
                op.unanswered()
            })
            .collect()
    }
}

/// Applies `batch` in order in one write transaction: all of it or none.
pub fn apply_batch(pool: &DbPool, batch: &[Op]) -> anyhow::Result<Vec<Decision>> {
    let mut db = db::get(pool)?;
    let decisions = queries::write_transaction(&mut db, |db| {
        let mut decisions = Vec::new();
        for op in batch {
            match op {
                Op::Request(ask) => {
                    let outcome = match request(db, ask)? {
                        Some(partner) => Outcome::Paired { partner },
                        None => Outcome::Waiting,
                    };
                    decisions.push(Decision::Request {
                        conn: ask.id,
                        outcome,
                    });
                }
                Op::Leave(id) => {
                    queries::leave(db, id.rid())?;
                }
                Op::Barrier(token) => decisions.push(Decision::Flushed(*token)),
                Op::Rematch(ask) => {
                    let rematched = queries::rematch(db, ask.id.rid(), ask.visitor.as_i64())?;
                    if let Some(partner) = paired(rematched) {
                        decisions.push(Decision::Request {
                            conn: ask.id,
                            outcome: Outcome::Paired { partner },
                        });
                    }
                }
            }
        }
        Ok(decisions)
    })?;
    Ok(decisions)
}

/// The partner `ask` was paired with, or `None` when it now waits.
fn request(db: &mut DbConn, ask: &Ask) -> diesel::QueryResult<Option<ConnId>> {
    let requested =
        queries::request_avoiding(db, ask.id.rid(), ask.visitor.as_i64(), &ask.avoided())?;
    Ok(paired(requested))
}

fn paired(requested: queries::Requested) -> Option<ConnId> {
    match requested {
        queries::Requested::Paired { partner } => Some(ConnId::from_rid(partner)),
        queries::Requested::Waiting => None,
    }
}
