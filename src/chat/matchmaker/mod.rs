//! Who is paired with whom, decided by database transactions over the chat rows, on one
//! dedicated thread (never an async worker). Operations arrive in order on one queue; whatever
//! has queued up is applied in a single transaction, so pairing costs one commit per batch.
//! On MySQL, `SKIP LOCKED` lets several server processes match against the same rows. What a
//! request avoids (and when it stops minding) is `preferences`; who suits whom (interests,
//! language, fallback) is `suits`.

pub mod plan;
pub mod preferences;
pub mod suits;

use std::collections::VecDeque;
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender, TryRecvError, TrySendError};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use diesel::result::{DatabaseErrorKind, Error as DieselError};

use tokio::sync::mpsc as async_mpsc;

use super::ids::{ConnId, VisitorKey};
use crate::db::queries::{Read, QUEUE_START};
use crate::db::{self, queries, DbConn, DbPool};
use crate::metrics::Metrics;
use diesel::r2d2;
use suits::Wish;

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
/// Attempts more after a deadlock or a lock wait timeout (another matchmaker held the rows).
const CONFLICT_ATTEMPTS: usize = 20;
/// How long an idle matchmaker keeps its connection before giving it back to the pool.
const IDLE_RELEASE: Duration = Duration::from_millis(100);
/// Waiting chats a re-check reads.
const PEEK: usize = 1_024;

/// Whether other matchmakers (other server processes) may write the same rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sharing {
    /// This process holds the database lease, or the database is SQLite (one writer at a
    /// time, each batch seeing every commit before it): nobody commits a waiting chat a batch
    /// could not see.
    Alone,
    /// Others may commit waiting chats a batch skipped as locked: waiting requests are
    /// re-checked after each commit (`recheck`).
    Shared,
}

/// Whether the waiting visitors of a process (by node id) may be claimed: in a cluster, only
/// those of processes alive and reachable. Without one, everyone's.
pub type Claimable = Arc<dyn Fn(u32) -> bool + Send + Sync>;

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
    /// What it asks of a partner (interests, language) and when it stops minding.
    pub wish: Wish,
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Paired {
        partner: ConnId,
        /// The interests both gave (empty when paired at random).
        common: Vec<String>,
    },
    Waiting,
    /// The database did not answer; nothing was written.
    Unavailable,
}

#[derive(Debug, Clone, PartialEq, Eq)]
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
    /// Starts the matchmaker thread of server process `node` (the node its rows name);
    /// decisions come back on `decisions`, in order.
    /// Failed transactions are counted in `metrics`.
    pub fn spawn(
        pool: DbPool,
        node: u32,
        sharing: Sharing,
        metrics: Arc<Metrics>,
        decisions: async_mpsc::Sender<Vec<Decision>>,
        claimable: Option<Claimable>,
    ) -> Self {
        let (tx, rx) = mpsc::sync_channel(QUEUE_CAPACITY);
        let worker = Worker {
            pool,
            node: i64::from(node),
            sharing,
            claimable,
            metrics,
            db: None,
            rx,
            decisions,
            retry: Vec::new(),
            last_ticket: 0,
            pending: Vec::new(),
            held: Vec::new(),
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
    node: i64,
    sharing: Sharing,
    claimable: Option<Claimable>,
    metrics: Arc<Metrics>,
    /// The connection batches run on, while it works, and whether it has a transaction open
    /// (see `queries::chained_transaction`).
    db: Option<(db::PooledConn, bool)>,
    rx: mpsc::Receiver<Op>,
    decisions: async_mpsc::Sender<Vec<Decision>>,
    /// Removals that failed (database down), retried until they succeed.
    retry: Vec<ConnId>,
    /// The queue place of the last chat this matchmaker opened.
    last_ticket: i64,
    /// Requests left waiting by a committed batch, to be checked against chats that other
    /// matchmakers committed meanwhile (MySQL only; see `recheck`).
    pending: Vec<Ask>,
    /// Barriers answered once `pending` is settled.
    held: Vec<Decision>,
}

impl Worker {
    fn run(mut self) {
        while let Some(batch) = self.next_batch() {
            let mut decisions = if batch.is_empty() {
                Vec::new()
            } else {
                self.apply(&batch)
            };
            if !self.pending.is_empty() {
                decisions.extend(self.recheck());
            }
            // A barrier also waits for the re-checks of what came before it.
            let (barriers, rest): (Vec<_>, Vec<_>) = decisions
                .into_iter()
                .partition(|d| matches!(d, Decision::Flushed(_)));
            self.held.extend(barriers);
            let mut decisions = rest;
            if self.pending.is_empty() {
                decisions.append(&mut self.held);
            }
            if !decisions.is_empty() && self.decisions.blocking_send(decisions).is_err() {
                break; // the hub is gone: the server is stopping
            }
        }
        tracing::debug!("matchmaker stopped");
    }

    /// Waits for work, then takes whatever else is queued, up to `MAX_BATCH`. Failed removals go
    /// first, so they are retried before any request that might meet their ghost rows. Returns
    /// an empty batch when a re-check or a retry is due before anything arrives.
    fn next_batch(&mut self) -> Option<Vec<Op>> {
        let wait = if !self.pending.is_empty() {
            Some(recheck_delay())
        } else if !self.retry.is_empty() {
            Some(RETRY_DELAY)
        } else {
            None
        };
        let first = match wait {
            None if self.db.is_some() => match self.rx.recv_timeout(IDLE_RELEASE) {
                Ok(op) => Some(op),
                Err(RecvTimeoutError::Timeout) => {
                    self.release_db();
                    Some(self.rx.recv().ok()?)
                }
                Err(RecvTimeoutError::Disconnected) => return None,
            },
            None => Some(self.rx.recv().ok()?),
            Some(wait) => match self.rx.recv_timeout(wait) {
                Ok(op) => Some(op),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => return None,
            },
        };
        let mut batch: Vec<Op> = self.retry.drain(..).map(Op::Leave).collect();
        batch.extend(first);
        while !batch.is_empty() && batch.len() < MAX_BATCH {
            match self.rx.try_recv() {
                Ok(op) => batch.push(op),
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        Some(batch)
    }

    /// The first queue place for the chats of the next batch: the time in microseconds, kept
    /// increasing when the clock is not.
    fn tickets(&self) -> i64 {
        now_micros().max(self.last_ticket + 1)
    }

    fn apply(&mut self, batch: &[Op]) -> Vec<Decision> {
        match self.attempt(batch) {
            Ok(decisions) => return decisions,
            Err(e) => {
                self.metrics.database_error();
                tracing::warn!(
                    error = format!("{e:#}"),
                    ops = batch.len(),
                    "matchmaking batch failed"
                );
            }
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

    /// Applies `batch`, again after a deadlock or lock wait timeout (another matchmaker held a
    /// row) and once more after any other failure.
    fn attempt(&mut self, batch: &[Op]) -> anyhow::Result<Vec<Decision>> {
        let mut failures = 0;
        let mut conflicts = 0;
        loop {
            let first_ticket = self.tickets();
            let (node, sharing) = (self.node, self.sharing);
            let claimable = self.claimable.clone();
            let applied = self.with_db(|db, open| {
                apply_in(
                    db,
                    Some(open),
                    claimable.as_ref(),
                    node,
                    (first_ticket, first_ticket),
                    batch,
                )
            });
            let e = match applied {
                Ok(applied) => {
                    self.last_ticket = first_ticket + applied.tickets_used;
                    if sharing == Sharing::Shared {
                        self.pending.extend(applied.waiting);
                    }
                    return Ok(applied.decisions);
                }
                Err(e) => e,
            };
            if e.downcast_ref::<r2d2::PoolError>().is_some() {
                return Err(e); // no connection to be had: the pool has waited its timeout
            }
            if is_conflict(&e) && conflicts < CONFLICT_ATTEMPTS {
                conflicts += 1;
                thread::sleep(recheck_delay());
                continue;
            }
            failures += 1;
            if failures >= ATTEMPTS {
                return Err(e);
            }
        }
    }

    /// Runs `f` on the matchmaker's connection, kept from one batch to the next: a checkout
    /// costs a round trip (r2d2 tests the connection with `SELECT 1`). After a failure the
    /// connection goes back to the pool, and the next checkout tests it; so it does after
    /// `IDLE_RELEASE` without work.
    fn with_db<T>(
        &mut self,
        f: impl FnOnce(&mut DbConn, &mut bool) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        let (db, open) = match &mut self.db {
            Some(db) => db,
            None => self.db.insert((db::get(&self.pool)?, false)),
        };
        let result = f(db, open);
        if result.is_err() {
            self.db = None;
        }
        result
    }

    /// Gives the connection back to the pool (idle, the matchmaker does not keep one), its
    /// chained transaction (empty) ended.
    fn release_db(&mut self) {
        if let Some((mut db, open)) = self.db.take() {
            if open {
                let _ = queries::end_chain(&mut db);
            }
        }
    }

    /// Re-checks the requests left waiting (see `recheck`). Those whose chat another
    /// matchmaker holds stay pending, for another look after a short random delay.
    fn recheck(&mut self) -> Vec<Decision> {
        let node = self.node;
        let mut pending = std::mem::take(&mut self.pending);
        let claimable = self.claimable.clone();
        let rechecked = self
            .with_db(|db, open| recheck_in(db, Some(open), claimable.as_ref(), node, &mut pending));
        self.pending = pending;
        match rechecked {
            Ok(decisions) => decisions,
            Err(e) if is_conflict(&e) => Vec::new(),
            Err(e) => {
                // The next request's batch sees whatever is waiting; nothing else to do now.
                self.metrics.database_error();
                tracing::warn!(error = format!("{e:#}"), "cannot re-check waiting requests");
                self.pending.clear();
                Vec::new()
            }
        }
    }
}

/// Two matchmakers that open waiting chats at the same moment each skip the other's
/// uncommitted row (`SKIP LOCKED`), and both would wait for ever. So once a batch has committed,
/// the requests it left waiting (`pending`) look, with a plain read of what is committed, for a
/// chat they could join; those that find one move to it, as a rematch does. Whoever commits
/// last sees the other, so one of the two always moves. Leaves in `pending` the requests that
/// could pair but did not move (the other chat was locked: its own matchmaker is looking too),
/// and returns the pairings made.
pub fn recheck(
    db: &mut DbConn,
    node: i64,
    pending: &mut Vec<Ask>,
) -> anyhow::Result<Vec<Decision>> {
    recheck_in(db, None, None, node, pending)
}

/// `recheck` on a connection whose transactions are chained when `open` is given.
fn recheck_in(
    db: &mut DbConn,
    mut open: Option<&mut bool>,
    claimable: Option<&Claimable>,
    node: i64,
    pending: &mut Vec<Ask>,
) -> anyhow::Result<Vec<Decision>> {
    let peek = |db: &mut DbConn| queries::waiting_after(db, QUEUE_START, PEEK, Read::Look);
    // In a chained transaction the look is committed too, so that no transaction is left
    // open holding the table's metadata lock while the matchmaker idles.
    let committed = match open.as_deref_mut() {
        Some(open) => queries::chained_transaction(db, open, peek)?,
        None => peek(db)?,
    };
    let now = now_micros();
    let wishes: Vec<Wish> = committed.iter().map(Wish::of).collect();
    pending.retain(|ask| {
        let avoid = ask.avoided();
        let rid = ask.id.rid();
        let meetable = committed.iter().zip(&wishes).filter(|(w, _)| {
            w.chat != rid && !avoid.contains(&w.visitor) && plan::may_claim(claimable, w.chat)
        });
        committed.iter().any(|w| w.chat == rid)
            && suits::choose(&ask.wish, now, meetable.map(|(_, wish)| wish)).is_some()
    });
    if pending.is_empty() {
        return Ok(Vec::new());
    }
    let ops: Vec<Op> = pending.iter().cloned().map(Op::Rematch).collect();
    // A rematch never opens a chat: no queue places are handed out.
    let decisions = apply_in(db, open, claimable, node, (0, now), &ops)?.decisions;
    pending.retain(|ask| {
        !decisions
            .iter()
            .any(|d| matches!(d, Decision::Request { conn, .. } if *conn == ask.id))
    });
    Ok(decisions)
}

/// The time in microseconds since the Unix epoch: the clock of queue places and fallback times.
pub fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// A random pause of a few milliseconds, so that two matchmakers waiting on each other's rows
/// do not retry in step.
fn recheck_delay() -> Duration {
    Duration::from_micros(fastrand::u64(1_000..=10_000))
}

/// A deadlock (MySQL error 1213) or a lock wait timeout (1205): another matchmaker held the
/// rows; the transaction was rolled back and is worth running again.
fn is_conflict(e: &anyhow::Error) -> bool {
    e.chain().any(
        |cause| match cause.downcast_ref::<diesel::result::Error>() {
            Some(DieselError::DatabaseError(DatabaseErrorKind::SerializationFailure, _)) => true,
            Some(DieselError::DatabaseError(_, info)) => {
                info.message().contains("Lock wait timeout exceeded")
                    || info.message().contains("Deadlock found")
            }
            _ => false,
        },
    )
}

/// A batch as applied.
#[derive(Debug)]
pub struct Applied {
    pub decisions: Vec<Decision>,
    /// The batch's requests still waiting at its end, oldest first.
    pub waiting: Vec<Ask>,
    pub tickets_used: i64,
}

/// Applies `batch` in one write transaction, all of it or none: reads the waiting chats it
/// needs, decides in memory (`plan`), and writes in at most four statements. The chats it opens
/// take the queue places from `first_ticket` on, which is also the time it decides at (whose
/// fallback time has come); its rows name `node` as their process.
pub fn apply_batch(
    db: &mut DbConn,
    node: i64,
    first_ticket: i64,
    batch: &[Op],
) -> anyhow::Result<Applied> {
    apply_in(db, None, None, node, (first_ticket, first_ticket), batch)
}

/// `apply_batch` in a transaction chained to the connection's last when `open` is given;
/// `(first_ticket, now)`.
fn apply_in(
    db: &mut DbConn,
    open: Option<&mut bool>,
    claimable: Option<&Claimable>,
    node: i64,
    (first_ticket, now): (i64, i64),
    batch: &[Op],
) -> anyhow::Result<Applied> {
    let run = |db: &mut DbConn| {
        let mut queue = plan::Stored { db, claimable };
        let planned = plan::plan(&mut queue, node, first_ticket, now, batch)?;
        planned.writes.write(db)?;
        Ok(planned)
    };
    let planned = match open {
        Some(open) => queries::chained_transaction(db, open, run)?,
        None => queries::write_transaction(db, run)?,
    };
    Ok(Applied {
        decisions: planned.decisions,
        waiting: planned.waiting,
        tickets_used: planned.tickets_used,
    })
}

/// What `apply_batch` must come to: each operation applied on its own, a few statements each,
/// in one transaction (deciding at `first_ticket`, as `apply_batch`). The reference the batch
/// is tested against.
pub fn apply_one_by_one(
    pool: &DbPool,
    node: i64,
    first_ticket: i64,
    batch: &[Op],
) -> anyhow::Result<Vec<Decision>> {
    let mut db = db::get(pool)?;
    let decisions = queries::write_transaction(&mut db, |db| {
        let mut decisions = Vec::new();
        let mut ticket = first_ticket;
        let now = first_ticket;
        for op in batch {
            match op {
                Op::Request(ask) => {
                    let outcome = match one_choice(db, ask, now)? {
                        Some(found) => {
                            queries::join(db, member(ask, node), found.chat)?;
                            paired(ask, &found)
                        }
                        None => {
                            let (interests, lang, fallback_at) = ask.wish.columns();
                            let chat = queries::NewChat {
                                id: ask.id.rid(),
                                is_completed: false,
                                queued: ticket,
                                visitor: ask.visitor.as_i64(),
                                interests,
                                lang,
                                fallback_at,
                            };
                            queries::open(db, member(ask, node), chat)?;
                            ticket += 1;
                            Outcome::Waiting
                        }
                    };
                    decisions.push(Decision::Request {
                        conn: ask.id,
                        outcome,
                    });
                }
                Op::Rematch(ask) => {
                    if queries::waiting_among(db, &[ask.id.rid()])?.is_empty() {
                        continue;
                    }
                    if let Some(found) = one_choice(db, ask, now)? {
                        queries::leave(db, ask.id.rid())?;
                        queries::join(db, member(ask, node), found.chat)?;
                        decisions.push(Decision::Request {
                            conn: ask.id,
                            outcome: paired(ask, &found),
                        });
                    }
                }
                Op::Leave(id) => {
                    queries::leave(db, id.rid())?;
                }
                Op::Barrier(token) => decisions.push(Decision::Flushed(*token)),
            }
        }
        Ok(decisions)
    })?;
    Ok(decisions)
}

fn member(ask: &Ask, node: i64) -> queries::Member {
    queries::Member {
        rid: ask.id.rid(),
        chat_id: ask.id.rid(),
        visitor: ask.visitor.as_i64(),
        node,
    }
}

/// The waiting chat `ask` joins at `now`, read from every waiting chat (`suits::choose`).
fn one_choice(
    db: &mut DbConn,
    ask: &Ask,
    now: i64,
) -> diesel::QueryResult<Option<queries::Waiting>> {
    let avoid = ask.avoided();
    let mut meetable = queries::all_waiting(db)?;
    meetable.retain(|w| w.chat != ask.id.rid() && !avoid.contains(&w.visitor));
    let wishes: Vec<Wish> = meetable.iter().map(Wish::of).collect();
    Ok(suits::choose(&ask.wish, now, &wishes).map(|i| meetable.swap_remove(i)))
}

fn paired(ask: &Ask, found: &queries::Waiting) -> Outcome {
    Outcome::Paired {
        partner: ConnId::from_rid(found.rid()),
        common: ask.wish.common(&Wish::of(found)),
    }
}
