//! The hub: one task that owns every live connection and who talks to whom (idle, waiting,
//! chatting), and sends the online count. Sessions reach it through `HubHandle`'s methods over
//! a bounded queue; it answers over each session's bounded outbox and never waits on a client.
//! Pairing is asked of the matchmaker (the database decides); once paired, the two sessions
//! get a `PartnerLink` to each other and relay without the hub or the database. A partner on
//! another process (`--redis-url`) is met through a short exchange with its hub (`remote`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

mod claim;
mod handle;
mod handover;
mod online;
mod pairing;
mod remote;
mod resume;

use handle::Command;
pub use handle::{unavailable_frame, AwayParts, HubGone, HubHandle, Resumed, Stats, TrySendError};

use super::ids::{ConnId, ConnIds, VisitorKey, Who};
use super::link::{Departure, Outbound, OutboxSender};
use super::matchmaker::preferences::Preferences;
use super::matchmaker::{Decision, Matchmaker, Op, Sharing};
use super::protocol::ServerFrame;
use super::resume::Token;
use super::wants::Wants;
use crate::cluster::{self, Cluster};
use crate::db::DbPool;
use crate::metrics::Metrics;

/// Commands queued from all sessions to the hub.
const COMMAND_CAPACITY: usize = 8_192;
/// Batches of decisions queued from the matchmaker to the hub.
const DECISION_CAPACITY: usize = 64;
/// How often the online count goes out (at most once per this, per client).
pub const ONLINE_INTERVAL: Duration = Duration::from_secs(1);

/// Why the hub ends a session from its side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kick {
    /// The server is stopping: close with 1001.
    Shutdown,
    /// The client does not read what is sent to it and its outbox is full.
    TooSlow,
    /// Another connection resumed its chat (`/ws?resume=`): it hands the chat over.
    Resumed,
    /// The server is stopping and the chat can go on from another process: close with 1012.
    Restart,
}

/// Where a connection is in its conversation. Only the hub keeps this; a session keeps only
/// its partner link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Idle,
    /// Asked for a partner; the matchmaker has not answered yet.
    Requested,
    /// Told to wait.
    Waiting,
    /// Paired by the matchmaker with a visitor on another process, whose hub has not yet
    /// said it still waits.
    Pairing(ConnId),
    Chatting(ConnId),
    /// The partner left; the chat rows are gone and this socket is closing.
    Ended,
}

/// The hub's entry for one live connection.
struct Entry {
    visitor: VisitorKey,
    /// Its address key: a partner's report names it.
    address: VisitorKey,
    outbox: OutboxSender,
    kick: Option<oneshot::Sender<Kick>>,
    state: State,
    online_sent: usize,
    online_sent_at: Instant,
}

impl Entry {
    fn who(&self) -> Who {
        Who {
            visitor: self.visitor,
            address: self.address,
        }
    }
}

/// The hub's state and rules, synchronous so they are tested without sockets.
struct Hub {
    conns: HashMap<ConnId, Entry>,
    matchmaker: Matchmaker,
    preferences: Preferences,
    /// Set once shutdown begins: who to tell when the last session is gone.
    shutdown: Option<Vec<oneshot::Sender<()>>>,
    flushes: HashMap<u64, oneshot::Sender<()>>,
    next_flush: u64,
    metrics: Arc<Metrics>,
    /// When each connection that waits for a partner asked (time to pair): kept here, not in
    /// every `Entry`, so that idle and chatting connections carry nothing for it.
    asked_at: HashMap<ConnId, Instant>,
    /// The other processes, with `--redis-url`.
    cluster: Option<Cluster>,
    /// Partners on other processes, by the local connection talking to them.
    remote: HashMap<ConnId, remote::Partner>,
    /// When each `Pairing` connection's proposal went out.
    proposed: HashMap<ConnId, Instant>,
    /// The online count every connection has been sent, when they all have the same one (the
    /// tick then has nothing to look at).
    online_settled: Option<usize>,
    /// Frames from other processes handed to sessions in the batch being read: the highest
    /// sequence number per sender, acknowledged at its end.
    acks: HashMap<(i64, i64), u64>,
    /// How long a chat is held for a visitor whose connection broke (zero: not at all).
    grace: Duration,
    /// The resume token of each connection in a chat, both ways.
    tokens: HashMap<Token, ConnId>,
    token_of: HashMap<ConnId, Token>,
    /// Visitors whose connection broke, their chat held for them.
    away: HashMap<ConnId, resume::Away>,
    /// Resumes of chats whose old connection is being closed.
    pending: HashMap<ConnId, resume::Pending>,
    /// Resumes across processes (`claim`).
    claims: claim::Claims,
    /// Chats handed to this process by a stopping one (`handover`).
    adopted: handover::Adopted,
    /// This process's connection ids (for the chats it adopts).
    ids: ConnIds,
}

/// How long visitors mind whom they meet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Patience {
    /// Two visitors who just talked are not paired again for this long while anyone else is
    /// waiting.
    pub rematch_cooldown: Duration,
    /// A visitor with interests or a language takes anyone after waiting this long (unless it
    /// asked not to).
    pub interest_fallback: Duration,
}

impl Patience {
    /// The rematch cooldown given, the default fallback.
    pub fn cooldown(rematch_cooldown: Duration) -> Self {
        Patience {
            rematch_cooldown,
            interest_fallback: Duration::from_secs(crate::config::DEFAULT_INTEREST_FALLBACK_SECS),
        }
    }
}

/// Starts the matchmaker thread and the hub task (on the current Tokio runtime). Two visitors
/// who just talked are not paired again for `rematch_cooldown` while anyone else is waiting.
/// Chats are held for the default resume grace.
pub fn spawn(
    pool: DbPool,
    ids: ConnIds,
    sharing: Sharing,
    rematch_cooldown: Duration,
) -> HubHandle {
    let metrics = Arc::new(Metrics::new(ids.node()));
    let patience = Patience::cooldown(rematch_cooldown);
    let grace = Duration::from_secs(crate::config::DEFAULT_RESUME_GRACE_SECS);
    spawn_with(pool, ids, sharing, patience, grace, metrics, None)
}

/// `spawn` for a process of a cluster: the matchmaker claims only reachable processes'
/// waiting visitors, and the hub hears the cluster's `events`.
pub fn spawn_with(
    pool: DbPool,
    ids: ConnIds,
    sharing: Sharing,
    patience: Patience,
    resume_grace: Duration,
    metrics: Arc<Metrics>,
    cluster: Option<(Cluster, mpsc::Receiver<cluster::Event>)>,
) -> HubHandle {
    let (decisions_tx, decisions) = mpsc::channel(DECISION_CAPACITY);
    let claimable = cluster
        .as_ref()
        .map(|(c, _)| -> super::matchmaker::Claimable { Arc::new(c.claimable()) });
    let matchmaker = Matchmaker::spawn(
        pool,
        ids.node(),
        sharing,
        metrics.clone(),
        decisions_tx,
        claimable,
    );
    let (tx, commands) = mpsc::channel(COMMAND_CAPACITY);
    let (cluster, events) = cluster.unzip();
    let mut hub = Hub::new(matchmaker, patience, metrics.clone(), cluster, ids.clone());
    hub.grace = resume_grace;
    tokio::spawn(hub.run(commands, decisions, events));
    HubHandle { tx, ids, metrics }
}

/// The next cluster event, or never without a cluster.
async fn next_event(events: &mut Option<mpsc::Receiver<cluster::Event>>) -> Option<cluster::Event> {
    match events {
        Some(events) => events.recv().await,
        None => std::future::pending().await,
    }
}

/// An error frame, counted as sent.
fn error_frame(metrics: &Metrics, code: &'static str, detail: &'static str) -> Outbound {
    metrics.error_sent(code);
    Outbound::Frame(ServerFrame::error(code, detail).to_json())
}

impl Hub {
    fn new(
        matchmaker: Matchmaker,
        patience: Patience,
        metrics: Arc<Metrics>,
        cluster: Option<Cluster>,
        ids: ConnIds,
    ) -> Self {
        Hub {
            conns: HashMap::new(),
            matchmaker,
            preferences: Preferences::new(patience.rematch_cooldown, patience.interest_fallback),
            shutdown: None,
            flushes: HashMap::new(),
            next_flush: 0,
            metrics,
            asked_at: HashMap::new(),
            cluster,
            remote: HashMap::new(),
            proposed: HashMap::new(),
            acks: HashMap::new(),
            online_settled: None,
            grace: Duration::ZERO,
            tokens: HashMap::new(),
            token_of: HashMap::new(),
            away: HashMap::new(),
            pending: HashMap::new(),
            claims: claim::Claims::default(),
            adopted: handover::Adopted::default(),
            ids,
        }
    }

    async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut decisions: mpsc::Receiver<Vec<Decision>>,
        mut events: Option<mpsc::Receiver<cluster::Event>>,
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
                Some(event) = next_event(&mut events) => self.on_cluster(event),
                _ = tick.tick() => self.tick(Instant::now()),
            }
            for refused in self.matchmaker.pump() {
                self.decide(refused);
            }
        }
    }

    fn handle(&mut self, cmd: Command) {
        match cmd {
            Command::Connect {
                id,
                who,
                outbox,
                kick,
            } => self.connect(id, who, outbox, kick),
            Command::Request { id, wants } => self.request(id, &wants),
            Command::Leave { id, how } => self.leave(id, how),
            Command::Away { id, parts } => self.away(id, *parts),
            Command::Resume {
                ask,
                id,
                who,
                outbox,
                kick,
                reply,
            } => self.resume(ask, resume::Fresh { id, who, outbox }, kick, reply),
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

    fn stats(&self) -> Stats {
        let mut stats = Stats {
            connections: self.conns.len(),
            online: self.online(),
            ..Stats::default()
        };
        for conn in self.conns.values() {
            match conn.state {
                State::Requested | State::Waiting | State::Pairing(_) => stats.waiting += 1,
                State::Chatting(_) => stats.chatting += 1,
                State::Idle | State::Ended => {}
            }
        }
        // Each local conversation counts two connections; a cross-process one, one here.
        let remote = self.remote.len();
        stats.chats = stats.chatting.saturating_sub(remote) / 2 + remote;
        stats.away = self.away.len();
        stats
    }

    fn connect(&mut self, id: ConnId, who: Who, outbox: OutboxSender, kick: oneshot::Sender<Kick>) {
        if self.shutdown.is_some() {
            let _ = kick.send(Kick::Shutdown);
            return;
        }
        let count = self.online_of(self.conns.len() + 1);
        let _ = outbox.try_send(Outbound::Frame(ServerFrame::Online { count }.to_json()));
        self.conns.insert(
            id,
            Entry {
                visitor: who.visitor,
                address: who.address,
                outbox,
                kick: Some(kick),
                state: State::Idle,
                online_sent: count,
                online_sent_at: Instant::now(),
            },
        );
    }

    /// One request at a time: a connection that waits or talks already is told so.
    fn request(&mut self, id: ConnId, wants: &Wants) {
        let Some(conn) = self.conns.get(&id) else {
            return;
        };
        match conn.state {
            State::Idle => {
                self.preferences.want(id, wants, Instant::now());
                self.ask(id);
            }
            State::Requested | State::Waiting | State::Pairing(_) => self.send(
                id,
                error_frame(
                    &self.metrics,
                    "already_waiting",
                    "You are already waiting for a partner.",
                ),
            ),
            State::Chatting(_) | State::Ended => self.send(
                id,
                error_frame(
                    &self.metrics,
                    "already_paired",
                    "You are already in a conversation; close it to start another.",
                ),
            ),
        }
    }

    fn leave(&mut self, id: ConnId, how: Departure) {
        let Some(conn) = self.conns.remove(&id) else {
            return;
        };
        self.preferences.forget(id);
        self.asked_at.remove(&id);
        self.forget_resume(id);
        self.forget_claims(id);
        match conn.state {
            State::Idle | State::Ended => {}
            State::Requested | State::Waiting => self.submit(Op::Leave(id)),
            State::Pairing(partner) => {
                // Our row is in the partner's chat already: one removal takes both.
                self.proposed.remove(&id);
                self.submit(Op::Leave(id));
                self.tell_gone(partner, id, how);
            }
            State::Chatting(partner) => {
                self.drop_digest(partner);
                let remote = self.remote.remove(&id);
                if remote.is_none() {
                    self.unrecord_chat(id, partner);
                }
                let other = match &remote {
                    Some(remote) => Some(remote.visitor),
                    None => self.conns.get(&partner).map(|p| p.visitor),
                };
                if let Some(other) = other {
                    self.part(conn.visitor, other);
                }
                // One removal takes both rows; the partner's own leave then has nothing to do.
                self.submit(Op::Leave(id));
                if remote.is_some() {
                    self.tell_gone(partner, id, how);
                } else {
                    if let Some(p) = self.conns.get_mut(&partner) {
                        p.state = State::Ended;
                    }
                    // Parked to be handed over with this one: it goes too.
                    if self.shutdown.is_some() && self.away.contains_key(&partner) {
                        self.leave(partner, Departure::Lost);
                    }
                    // While shutting down every session is being closed with 1001 already.
                    if self.shutdown.is_none() {
                        self.send(partner, Outbound::PartnerGone(how));
                    }
                }
            }
        }
        self.check_shutdown_done();
    }

    /// Once shutting down and the last connection is gone: tells who waits for it.
    fn check_shutdown_done(&mut self) {
        if self.conns.is_empty() {
            if let Some(waiters) = self.shutdown.take() {
                for done in waiters {
                    let _ = done.send(());
                }
                self.shutdown = Some(Vec::new());
            }
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
        self.shutdown.get_or_insert_with(Vec::new).push(done);
        self.drop_away();
        let ids: Vec<ConnId> = self.conns.keys().copied().collect();
        for id in ids {
            // One whose partner is on another process may take the chat up there; one whose
            // partner is here too, on the process the chat is handed to (`handover`).
            let resumable = (self.remote.contains_key(&id) && self.token_of.contains_key(&id))
                || self.heir_partner(id).is_some();
            let why = if resumable {
                Kick::Restart
            } else {
                Kick::Shutdown
            };
            self.kick(id, why);
        }
        self.check_shutdown_done();
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

    /// Queues work for the matchmaker in order; what it cannot take is answered at once.
    fn submit(&mut self, op: Op) {
        if let Some(refused) = self.matchmaker.submit(op) {
            self.decide(refused);
        }
    }
}

#[cfg(test)]
mod tests;
