//! The hub: one task that owns every live connection and who talks to whom. Sessions talk to it
//! over a bounded command queue; it answers over each session's bounded outbox and never waits
//! on a client. Pairing is asked of the matchmaker (the database decides); once paired, the two
//! sessions get a link to each other and relay messages directly, without the hub or the
//! database: into the partner's outbox at first, then onto its socket's queue (see `Route`).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use super::ids::{self, ConnId, ConnIds};
use super::matchmaker::{Ask, Decision, Matchmaker, Op, Outcome, SubmitError};
use super::protocol::ServerFrame;
use crate::db::DbPool;
use crate::memory::{self, Trimmer};

/// Commands queued from all sessions to the hub.
const COMMAND_CAPACITY: usize = 8_192;
/// Batches of decisions queued from the matchmaker to the hub.
const DECISION_CAPACITY: usize = 64;
/// How often the online count goes out (at most once per this, per client).
pub const ONLINE_INTERVAL: Duration = Duration::from_secs(1);
/// Operations held back while the matchmaker queue is full; past this, requests are refused.
const MAX_BACKLOG: usize = 65_536;

/// How a connection ended, as its partner is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Departure {
    /// Closed its socket: the partner's socket closes with `partner left`.
    Left,
    /// Went silent, broke the connection or was dropped: `partner lost`.
    Lost,
}

/// Why the hub ends a session from its side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kick {
    /// The server is stopping: close with 1001.
    Shutdown,
    /// The client does not read what is sent to it and its outbox is full.
    TooSlow,
}

/// A session's outbox: bounded, and allocating nothing until something is queued (tokio's mpsc
/// allocates a block of 32 slots per channel up front: 1 KiB for every idle connection).
pub type OutboxSender = flume::Sender<Outbound>;
pub type OutboxReceiver = flume::Receiver<Outbound>;

pub fn outbox(capacity: usize) -> (OutboxSender, OutboxReceiver) {
    flume::bounded(capacity)
}

/// How one side's messages reach the other. While `Queued` they go into the receiver's outbox
/// and its session writes them. The receiving session opens the route (`Direct`) once its
/// `response` is written and nothing from the partner waits in its outbox; from then on the
/// sender puts messages on the receiver's socket queue itself, one task hop fewer for each. When
/// that queue is full the sender queues in the outbox again and closes the route, until the
/// receiver has caught up. Every send and every switch holds the route's lock, so no message
/// overtakes another.
#[derive(Default)]
pub enum Route {
    #[default]
    Queued,
    Direct(actix_ws::Session),
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Route::Queued => "Queued",
            Route::Direct(_) => "Direct",
        })
    }
}

/// Both routes of a pair, in one allocation: `[to the one who asked first, to the other]`.
pub type Routes = Arc<[Mutex<Route>; 2]>;

/// A paired partner: where messages to it go.
#[derive(Debug, Clone)]
pub struct PartnerLink {
    pub id: ConnId,
    pub outbox: OutboxSender,
    routes: Routes,
    /// Which of `routes` leads to this session (the other leads to the partner).
    mine: usize,
}

impl PartnerLink {
    /// Messages from this session to the partner (the partner opens it).
    pub fn to_partner(&self) -> MutexGuard<'_, Route> {
        lock(&self.routes[1 - self.mine])
    }

    /// Messages from the partner to this session (this session opens it).
    pub fn to_me(&self) -> MutexGuard<'_, Route> {
        lock(&self.routes[self.mine])
    }
}

/// A panic elsewhere while a route was locked leaves nothing half-done in it.
fn lock(route: &Mutex<Route>) -> MutexGuard<'_, Route> {
    route.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What a session receives in its outbox, in order.
#[derive(Debug)]
pub enum Outbound {
    /// A server frame, already JSON, to write as it is.
    Frame(String),
    /// Paired: from now on messages go to this partner.
    Paired(PartnerLink),
    /// The partner is gone: close the socket (1000) saying how.
    PartnerGone(Departure),
    /// The request could not be served (database unreachable): idle again, may ask again.
    Unavailable,
}

#[derive(Debug)]
pub enum Command {
    Connect {
        id: ConnId,
        /// Who is connecting (a hash of its visitor token or address).
        visitor: i64,
        outbox: OutboxSender,
        kick: oneshot::Sender<Kick>,
    },
    Request {
        id: ConnId,
    },
    Leave {
        id: ConnId,
        how: Departure,
    },
    /// `id`'s outbox overflowed (seen by its partner, who could not deliver to it).
    TooSlow {
        id: ConnId,
    },
    /// Close every session with 1001; `done` fires when none is left.
    Shutdown {
        done: oneshot::Sender<()>,
    },
    Stats {
        reply: oneshot::Sender<Stats>,
    },
    /// Answers once every matchmaking operation queued before it has been applied and its
    /// decision handled (what follows from those decisions may still be queued).
    Flush {
        reply: oneshot::Sender<()>,
    },
}

/// A snapshot of the hub, for tests and operators.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub connections: usize,
    /// Asked for a partner and not yet paired.
    pub waiting: usize,
    /// In a conversation.
    pub chatting: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Idle,
    /// Asked for a partner; the matchmaker has not answered yet.
    Requested,
    /// Told to wait. `rematch_at`: when to stop avoiding the stranger just left (and itself).
    Waiting {
        rematch_at: Option<Instant>,
    },
    Chatting(ConnId),
    /// The partner left; the chat rows are gone and this socket is closing.
    Ended,
}

struct Conn {
    visitor: i64,
    outbox: OutboxSender,
    kick: Option<oneshot::Sender<Kick>>,
    state: State,
    online_sent: usize,
    online_sent_at: Instant,
}

/// The hub's state and rules, synchronous so they are tested without sockets.
pub struct Hub {
    conns: HashMap<ConnId, Conn>,
    matchmaker: Matchmaker,
    backlog: VecDeque<Op>,
    /// Set once shutdown begins: who to tell when the last session is gone.
    shutdown: Option<Vec<oneshot::Sender<()>>>,
    /// Who each visitor last talked to, and until when they avoid each other.
    recent: HashMap<i64, (i64, Instant)>,
    rematch_cooldown: Duration,
    flushes: HashMap<u64, oneshot::Sender<()>>,
    next_flush: u64,
    trimmer: Trimmer,
}

/// The sessions' side of the hub. Cheap to clone.
#[derive(Debug, Clone)]
pub struct HubHandle {
    tx: mpsc::Sender<Command>,
    ids: ConnIds,
}

/// Why `HubHandle::try_send` did not queue a command.
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

impl HubHandle {
    pub fn next_id(&self) -> ConnId {
        self.ids.next()
    }

    pub async fn send(&self, cmd: Command) -> Result<(), HubGone> {
        self.tx.send(cmd).await.map_err(|_| HubGone)
    }

    /// Queues a command without waiting (the frame path: no large send future in every
    /// session task). A full queue means the hub is overloaded; the caller says so.
    pub fn try_send(&self, cmd: Command) -> Result<(), TrySendError> {
        self.tx.try_send(cmd).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => TrySendError::Busy,
            mpsc::error::TrySendError::Closed(_) => TrySendError::Gone,
        })
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

/// Starts the matchmaker thread and the hub task (on the current Tokio runtime). Two visitors
/// who just talked are not paired again for `rematch_cooldown` while anyone else is waiting.
pub fn spawn(pool: DbPool, ids: ConnIds, rematch_cooldown: Duration) -> HubHandle {
    let (decisions_tx, decisions) = mpsc::channel(DECISION_CAPACITY);
    let matchmaker = Matchmaker::spawn(pool, decisions_tx);
    let (tx, commands) = mpsc::channel(COMMAND_CAPACITY);
    tokio::spawn(Hub::new(matchmaker, rematch_cooldown).run(commands, decisions));
    HubHandle { tx, ids }
}

impl Hub {
    pub fn new(matchmaker: Matchmaker, rematch_cooldown: Duration) -> Self {
        Hub {
            conns: HashMap::new(),
            matchmaker,
            backlog: VecDeque::new(),
            shutdown: None,
            recent: HashMap::new(),
            rematch_cooldown,
            flushes: HashMap::new(),
            next_flush: 0,
            trimmer: Trimmer::new(),
        }
    }

    pub async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut decisions: mpsc::Receiver<Vec<Decision>>,
    ) {
        let mut tick = tokio::time::interval(ONLINE_INTERVAL / 4);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                cmd = commands.recv() => match cmd {
                    Some(cmd) => self.handle(cmd),
                    None => break,
                },
                Some(batch) = decisions.recv() => {
                    for decision in batch {
                        self.decide(decision);
                    }
                }
                _ = tick.tick() => self.tick(Instant::now()),
            }
            self.flush_backlog();
        }
    }

    pub fn handle(&mut self, cmd: Command) {
        match cmd {
            Command::Connect {
                id,
                visitor,
                outbox,
                kick,
            } => self.connect(id, visitor, outbox, kick),
            Command::Request { id } => self.request(id),
            Command::Leave { id, how } => self.leave(id, how),
            Command::TooSlow { id } => self.drop_slow(id),
            Command::Shutdown { done } => self.begin_shutdown(done),
            Command::Stats { reply } => {
                let _ = reply.send(self.stats());
            }
            Command::Flush { reply } => {
                self.next_flush += 1;
                self.flushes.insert(self.next_flush, reply);
                self.submit(Op::Barrier(self.next_flush));
            }
        }
    }

    pub fn stats(&self) -> Stats {
        let mut stats = Stats {
            connections: self.conns.len(),
            ..Stats::default()
        };
        for conn in self.conns.values() {
            match conn.state {
                State::Requested | State::Waiting { .. } => stats.waiting += 1,
                State::Chatting(_) => stats.chatting += 1,
                State::Idle | State::Ended => {}
            }
        }
        stats
    }

    fn connect(
        &mut self,
        id: ConnId,
        visitor: i64,
        outbox: OutboxSender,
        kick: oneshot::Sender<Kick>,
    ) {
        if self.shutdown.is_some() {
            let _ = kick.send(Kick::Shutdown);
            return;
        }
        let count = self.conns.len() + 1;
        let _ = outbox.try_send(Outbound::Frame(ServerFrame::Online { count }.to_json()));
        self.conns.insert(
            id,
            Conn {
                visitor,
                outbox,
                kick: Some(kick),
                state: State::Idle,
                online_sent: count,
                online_sent_at: Instant::now(),
            },
        );
    }

    fn request(&mut self, id: ConnId) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        // The session refuses a second request itself; this guards the hub's own invariant.
        if conn.state == State::Idle {
            self.ask(id);
        }
    }

    /// The visitor `id` is still keeping apart from, and until when (the cooldown after a chat).
    fn avoiding(&self, id: ConnId) -> Option<(i64, Instant)> {
        let conn = self.conns.get(&id)?;
        self.recent
            .get(&conn.visitor)
            .copied()
            .filter(|(_, until)| *until > Instant::now())
    }

    /// Asks the matchmaker for a partner for `id` (again, for a visitor whose rows were taken
    /// away: from its side it still waits), avoiding the visitor it just talked to.
    fn ask(&mut self, id: ConnId) {
        let avoid = self.avoiding(id).map(|(other, _)| other);
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        conn.state = State::Requested;
        let ask = Ask {
            conn: id,
            visitor: conn.visitor,
            avoid,
            avoid_self: ids::is_named_visitor(conn.visitor),
        };
        self.submit(Op::Request(ask));
    }

    fn leave(&mut self, id: ConnId, how: Departure) {
        let Some(conn) = self.conns.remove(&id) else {
            return;
        };
        match conn.state {
            State::Idle | State::Ended => {}
            State::Requested | State::Waiting { .. } => self.submit(Op::Leave(id)),
            State::Chatting(partner) => {
                // Two connections that look like one visitor (one address, no tokens) cannot
                // be told apart, so they are not kept apart either.
                let other = self.conns.get(&partner).map(|p| p.visitor);
                if let Some(other) = other.filter(|other| *other != conn.visitor) {
                    let until = Instant::now() + self.rematch_cooldown;
                    self.recent.insert(conn.visitor, (other, until));
                    self.recent.insert(other, (conn.visitor, until));
                }
                // One removal takes both rows; the partner's own leave then has nothing to do.
                self.submit(Op::Leave(id));
                if let Some(p) = self.conns.get_mut(&partner) {
                    p.state = State::Ended;
                }
                // While shutting down every session is being closed with 1001 already.
                if self.shutdown.is_none() {
                    self.send(partner, Outbound::PartnerGone(how));
                }
            }
        }
        if self.conns.is_empty() {
            if let Some(waiters) = self.shutdown.take() {
                for done in waiters {
                    let _ = done.send(());
                }
                self.shutdown = Some(Vec::new());
            }
        }
    }

    /// Applies the matchmaker's answer to a request. The rows are the record; when they name a
    /// connection this process no longer has (it left meanwhile, or is a ghost of a crashed
    /// process), the rows are removed and whoever is still here asks again.
    pub fn decide(&mut self, Decision { conn: id, outcome }: Decision) {
        let requested = |hub: &Self, c: ConnId| {
            hub.conns
                .get(&c)
                .is_some_and(|c| matches!(c.state, State::Requested | State::Waiting { .. }))
        };
        match outcome {
            Outcome::Waiting => {
                // A named visitor (the page's token) also waits apart from its own other tabs,
                // for as long as it would keep apart from a stranger just left.
                let named = self
                    .conns
                    .get(&id)
                    .map(|c| ids::is_named_visitor(c.visitor));
                let rematch_at = self.avoiding(id).map(|(_, until)| until).or_else(|| {
                    named
                        .filter(|named| *named)
                        .map(|_| Instant::now() + self.rematch_cooldown)
                });
                if let Some(conn) = self.conns.get_mut(&id) {
                    if conn.state == State::Requested {
                        conn.state = State::Waiting { rematch_at };
                        self.send(id, Outbound::Frame(ServerFrame::Waiting.to_json()));
                    }
                }
            }
            Outcome::Flushed => {
                if let Some(reply) = self.flushes.remove(&(id.0 as u64)) {
                    let _ = reply.send(());
                }
            }
            Outcome::Unavailable => {
                if let Some(conn) = self.conns.get_mut(&id) {
                    if matches!(conn.state, State::Requested | State::Waiting { .. }) {
                        conn.state = State::Idle;
                        self.send(id, Outbound::Unavailable);
                    }
                }
            }
            Outcome::Paired { partner } => match (requested(self, id), requested(self, partner)) {
                (true, true) => {
                    let routes = Routes::default();
                    for (me, other, mine) in [(id, partner, 0), (partner, id, 1)] {
                        let Some(other_outbox) = self.conns.get(&other).map(|c| c.outbox.clone())
                        else {
                            continue;
                        };
                        if let Some(conn) = self.conns.get_mut(&me) {
                            conn.state = State::Chatting(other);
                        }
                        self.send(
                            me,
                            Outbound::Paired(PartnerLink {
                                id: other,
                                outbox: other_outbox,
                                routes: routes.clone(),
                                mine,
                            }),
                        );
                    }
                }
                (true, false) => {
                    // The partner's removal (queued already, or now for a ghost) takes our row.
                    self.submit(Op::Leave(partner));
                    self.ask(id);
                }
                (false, true) => {
                    // Our own removal is queued already and takes the partner's row with it.
                    self.ask(partner);
                }
                (false, false) => {}
            },
        }
    }

    fn kick(&mut self, id: ConnId, why: Kick) {
        if let Some(kick) = self.conns.get_mut(&id).and_then(|c| c.kick.take()) {
            let _ = kick.send(why);
        }
    }

    /// A client that does not read is dropped at once: its partner hears `partner lost` now,
    /// not when (if ever) its session gets round to leaving.
    fn drop_slow(&mut self, id: ConnId) {
        self.kick(id, Kick::TooSlow);
        self.leave(id, Departure::Lost);
    }

    fn begin_shutdown(&mut self, done: oneshot::Sender<()>) {
        if self.conns.is_empty() {
            let _ = done.send(());
            self.shutdown.get_or_insert_with(Vec::new);
            return;
        }
        self.shutdown.get_or_insert_with(Vec::new).push(done);
        let ids: Vec<ConnId> = self.conns.keys().copied().collect();
        for id in ids {
            self.kick(id, Kick::Shutdown);
        }
    }

    /// Sends the online count to every client whose copy is stale, at most once per interval;
    /// ends the cooldowns that have run out.
    pub fn tick(&mut self, now: Instant) {
        if self.trimmer.observe(self.conns.len(), now) {
            memory::trim_in_background();
        }
        self.recent.retain(|_, (_, until)| *until > now);
        let due: Vec<Ask> = self
            .conns
            .iter_mut()
            .filter_map(|(id, conn)| match conn.state {
                State::Waiting {
                    rematch_at: Some(at),
                } if at <= now => {
                    conn.state = State::Waiting { rematch_at: None };
                    Some(Ask {
                        conn: *id,
                        visitor: conn.visitor,
                        avoid: None,
                        avoid_self: false,
                    })
                }
                _ => None,
            })
            .collect();
        for ask in due {
            self.submit(Op::Rematch(ask));
        }

        let count = self.conns.len();
        let mut frame: Option<String> = None;
        let mut too_slow = Vec::new();
        for (id, conn) in self.conns.iter_mut() {
            if conn.online_sent == count
                || now.duration_since(conn.online_sent_at) < ONLINE_INTERVAL
            {
                continue;
            }
            let text = frame
                .get_or_insert_with(|| ServerFrame::Online { count }.to_json())
                .clone();
            match conn.outbox.try_send(Outbound::Frame(text)) {
                Ok(()) => {
                    conn.online_sent = count;
                    conn.online_sent_at = now;
                }
                Err(flume::TrySendError::Full(_)) => too_slow.push(*id),
                Err(flume::TrySendError::Disconnected(_)) => {}
            }
        }
        for id in too_slow {
            self.drop_slow(id);
        }
    }

    /// Never waits: a client whose outbox is full is dropped; a closed one is already leaving.
    fn send(&mut self, id: ConnId, out: Outbound) {
        let Some(conn) = self.conns.get(&id) else {
            return;
        };
        if let Err(flume::TrySendError::Full(_)) = conn.outbox.try_send(out) {
            self.drop_slow(id);
        }
    }

    /// Queues work for the matchmaker in order; holds it back while the queue is full.
    fn submit(&mut self, op: Op) {
        if !self.backlog.is_empty() {
            self.hold_back(op);
            return;
        }
        match self.matchmaker.submit(op) {
            Ok(()) => {}
            Err(SubmitError::Full(op)) => self.hold_back(op),
            Err(SubmitError::Stopped(op)) => self.refuse(op),
        }
    }

    fn hold_back(&mut self, op: Op) {
        if self.backlog.len() >= MAX_BACKLOG {
            self.refuse(op);
        } else {
            self.backlog.push_back(op);
        }
    }

    /// A request that cannot be queued is answered `unavailable`; a removal that cannot be
    /// queued leaves rows that the next start-up (or a ghost check) removes.
    fn refuse(&mut self, op: Op) {
        match op {
            Op::Request(Ask { conn: id, .. }) => self.decide(Decision {
                conn: id,
                outcome: Outcome::Unavailable,
            }),
            Op::Leave(id) => tracing::warn!(conn = %id, "matchmaker unavailable; rows left behind"),
            Op::Rematch(_) => {} // still waiting; nothing was promised
            Op::Barrier(token) => self.decide(Decision {
                conn: ConnId(token as i64),
                outcome: Outcome::Flushed,
            }),
        }
    }

    fn flush_backlog(&mut self) {
        while let Some(op) = self.backlog.pop_front() {
            match self.matchmaker.submit(op) {
                Ok(()) => {}
                Err(SubmitError::Full(op)) => {
                    self.backlog.push_front(op);
                    return;
                }
                Err(SubmitError::Stopped(op)) => self.refuse(op),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! The hub and matchmaker together on a real SQLite file, with channels standing in for
    //! sockets.

    use super::*;
    use crate::db::{self, queries};

    struct FakeSession {
        id: ConnId,
        outbox: OutboxReceiver,
        kicked: oneshot::Receiver<Kick>,
    }

    struct Setup {
        hub: HubHandle,
        pool: DbPool,
        _dir: tempfile::TempDir,
    }

    fn setup() -> Setup {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let pool = db::build_pool(&url, 2).expect("pool");
        db::run_migrations(&mut db::get(&pool).expect("conn")).expect("migrations");
        let hub = spawn(pool.clone(), ConnIds::with_node(1), Duration::from_secs(60));
        Setup {
            hub,
            pool,
            _dir: dir,
        }
    }

    impl Setup {
        async fn connect(&self, capacity: usize) -> FakeSession {
            let s = arrive(&self.hub, capacity).await;
            // The first thing every connection hears is the online count.
            assert!(matches!(next(&s.outbox).await, Outbound::Frame(f) if f.contains("online")));
            s
        }

        async fn request(&self, s: &FakeSession) {
            self.hub
                .send(Command::Request { id: s.id })
                .await
                .expect("hub");
        }

        /// The session vanished (as a broken connection reports it).
        async fn leave(&self, id: ConnId) {
            let how = Departure::Lost;
            self.hub
                .send(Command::Leave { id, how })
                .await
                .expect("hub");
        }

        fn rows(&self) -> Vec<(i64, bool, Vec<i64>)> {
            queries::chats(&mut db::get(&self.pool).expect("conn")).expect("rows")
        }
    }

    /// What a session does first: tells the hub it is here (each its own visitor).
    async fn arrive(hub: &HubHandle, capacity: usize) -> FakeSession {
        let id = hub.next_id();
        let (tx, outbox) = outbox(capacity);
        let (kick, kicked) = oneshot::channel();
        let connect = Command::Connect {
            id,
            visitor: id.0,
            outbox: tx,
            kick,
        };
        hub.send(connect).await.expect("hub");
        FakeSession { id, outbox, kicked }
    }

    async fn next(outbox: &OutboxReceiver) -> Outbound {
        tokio::time::timeout(Duration::from_secs(5), outbox.recv_async())
            .await
            .expect("in time")
            .expect("open")
    }

    async fn next_non_online(outbox: &OutboxReceiver) -> Outbound {
        loop {
            match next(outbox).await {
                Outbound::Frame(f) if f.contains(r#""online""#) => continue,
                other => return other,
            }
        }
    }

    async fn expect_paired(s: &mut FakeSession) -> PartnerLink {
        match next_non_online(&s.outbox).await {
            Outbound::Paired(link) => link,
            other => panic!("expected Paired, got {other:?}"),
        }
    }

    async fn expect_frame(s: &mut FakeSession, needle: &str) {
        match next_non_online(&s.outbox).await {
            Outbound::Frame(f) => assert!(f.contains(needle), "{f} lacks {needle}"),
            other => panic!("expected a frame with {needle}, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn the_second_request_pairs_both_and_each_gets_the_others_outbox() {
        let t = setup();
        let mut a = t.connect(8).await;
        let mut b = t.connect(8).await;
        t.request(&a).await;
        expect_frame(&mut a, r#""waiting""#).await;
        t.request(&b).await;
        let a_link = expect_paired(&mut a).await;
        let b_link = expect_paired(&mut b).await;
        assert_eq!((a_link.id, b_link.id), (b.id, a.id));

        // Relaying is a send into the partner's outbox: no hub, no database.
        a_link
            .outbox
            .try_send(Outbound::Frame("hello".into()))
            .expect("room");
        assert!(matches!(next_non_online(&b.outbox).await, Outbound::Frame(f) if f == "hello"));
        let stats = t.hub.stats().await.expect("stats");
        assert_eq!((stats.chatting, stats.waiting), (2, 0));
        assert_eq!(t.rows().len(), 1);
    }

    #[tokio::test]
    async fn leaving_tells_the_partner_how_and_removes_both_rows() {
        let t = setup();
        let a = t.connect(8).await;
        let mut b = t.connect(8).await;
        t.request(&a).await;
        t.request(&b).await;
        expect_paired(&mut b).await;
        t.leave(a.id).await;
        assert!(matches!(
            next_non_online(&b.outbox).await,
            Outbound::PartnerGone(Departure::Lost)
        ));
        let deadline = Instant::now() + Duration::from_secs(5);
        while !t.rows().is_empty() {
            assert!(Instant::now() < deadline, "rows remain: {:?}", t.rows());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn a_ghost_in_the_rows_is_removed_and_the_visitor_waits_instead() {
        let t = setup();
        // A row of a connection this process does not have (a crashed process's visitor).
        let ghost = 77;
        queries::write_transaction(&mut db::get(&t.pool).expect("conn"), |c| {
            queries::request(c, ghost, ghost, None)
        })
        .expect("ghost");
        let mut a = t.connect(8).await;
        t.request(&a).await;
        expect_frame(&mut a, r#""waiting""#).await;
        let rows = t.rows();
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert_eq!(rows[0].2, vec![a.id.0], "only the live visitor waits");
    }

    #[tokio::test]
    async fn a_client_whose_outbox_is_full_is_kicked_as_too_slow() {
        let t = setup();
        let a = t.connect(1).await; // its one slot is free again after the online frame
        let mut b = t.connect(8).await;
        t.request(&b).await;
        expect_frame(&mut b, r#""waiting""#).await;
        // a never reads: the online update fills its outbox, and `Paired` finds it full.
        t.request(&a).await;
        let why = tokio::time::timeout(Duration::from_secs(5), a.kicked)
            .await
            .expect("in time");
        assert_eq!(why.ok(), Some(Kick::TooSlow));
    }

    #[tokio::test]
    async fn shutdown_kicks_everyone_and_completes_when_they_have_left() {
        let t = setup();
        let a = t.connect(8).await;
        let b = t.connect(8).await;
        let (done, mut finished) = oneshot::channel();
        t.hub.send(Command::Shutdown { done }).await.expect("hub");
        for s in [a, b] {
            assert_eq!(s.kicked.await.ok(), Some(Kick::Shutdown));
            assert!(
                finished.try_recv().is_err(),
                "not done while sessions remain"
            );
            t.leave(s.id).await;
        }
        tokio::time::timeout(Duration::from_secs(5), finished)
            .await
            .expect("in time")
            .expect("done fires");
        // Late arrivals are turned away.
        let late = arrive(&t.hub, 1).await;
        assert_eq!(late.kicked.await.ok(), Some(Kick::Shutdown));
    }

    #[tokio::test]
    async fn requests_are_answered_unavailable_when_the_database_is_unreachable() {
        let pool = db::build_pool("sqlite:///nonexistent-dir/for/pairchat.db", 1).expect("pool");
        let hub = spawn(pool, ConnIds::with_node(2), Duration::from_secs(60));
        let s = arrive(&hub, 8).await;
        hub.send(Command::Request { id: s.id }).await.expect("hub");
        assert!(matches!(
            next_non_online(&s.outbox).await,
            Outbound::Unavailable
        ));
        // The connection is idle again and may ask once more.
        assert_eq!(hub.stats().await.expect("stats").waiting, 0);
    }
}
