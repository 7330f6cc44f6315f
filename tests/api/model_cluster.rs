//! The model test of `model.rs`, on three hubs of three "processes" (each with its own
//! matchmaker, pool, database lease and cluster membership) sharing one MariaDB database and
//! one Redis: random sequences of arrive (on a chosen process), request, message, leave and
//! vanish, and after each step the invariants of one process, now across processes: pairings
//! are symmetric and match the rows, nobody is in two chats, every message reaches the partner
//! once and in order whichever process it is on, a partner hears how the other went (`left` or
//! `lost`), two who could be paired never both wait, and nothing is left in the rows once
//! everyone has gone. Channels stand in for sockets; Redis and MariaDB are the real ones.
//!
//! Cross-process work travels through Redis, which no barrier of a hub covers: after a step
//! the model waits (with a deadline) until the world is settled, that is until every request is
//! answered, every message has arrived, every departure is heard and no two waiting visitors
//! could meet. A world that never settles is a failure.
//!
//! Needs `TEST_MYSQL_URL` and `TEST_REDIS_URL` (CI sets both, with `PAIRCHAT_REQUIRE_REDIS`).
//! The rematch cooldown is off and every arrival is a new visitor, so any two waiting visitors
//! who suit each other could meet (visitors ask with interests and languages by their key, as in
//! `model.rs`, minded for longer than any case); the cooldown across processes has its own test
//! in `cluster.rs`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pairchat::chat::hub::{self, HubHandle, Kick};
use pairchat::chat::ids::{ConnId, ConnIds};
use pairchat::chat::link::{self, Delivery, Departure, Outbound, OutboxReceiver};
use pairchat::chat::matchmaker::Sharing;
use pairchat::cluster::{Cluster, ClusterConfig};
use pairchat::db::lease::ServerLease;
use pairchat::db::{self, DbPool};
use pairchat::metrics::Metrics;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use tokio::sync::oneshot;

use crate::helpers::{TestDb, PATIENCE};
use crate::model::{
    assert_fair_pairing, chats_by_member, rows_agree, suit, take_message, wants_of, who, Seen,
};

/// The processes of the model, by node id.
const NODES: [u32; 3] = [21, 22, 23];
const OUTBOX: usize = 256;

#[derive(Debug, Clone)]
enum Step {
    /// A new visitor on process `n % 3`.
    Arrive(usize),
    Request(usize),
    Say(usize),
    /// Closes its socket.
    Leave(usize),
    /// Vanishes (broken connection, no heartbeat).
    Vanish(usize),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => any::<usize>().prop_map(Step::Arrive),
        6 => any::<usize>().prop_map(Step::Request),
        6 => any::<usize>().prop_map(Step::Say),
        2 => any::<usize>().prop_map(Step::Leave),
        2 => any::<usize>().prop_map(Step::Vanish),
    ]
}

struct Visitor {
    id: ConnId,
    /// Who it is: what it asks of a partner goes by it (`wants_of`).
    key: i64,
    /// The process it is connected to (an index into `World::hubs`).
    at: usize,
    outbox: OutboxReceiver,
    _kicked: oneshot::Receiver<Kick>,
    seen: Seen,
    sent: u64,
    received: u64,
    /// How the partner went, once it has: what the partner-gone notice must say.
    partner_went: Option<Departure>,
}

/// What a run went through, to show that a case took each branch.
#[derive(Debug, Default)]
struct Covered {
    cross_pairs: usize,
    cross_messages: usize,
    left: usize,
    lost: usize,
    /// Pairings on a common interest.
    common: usize,
}

struct World {
    hubs: Vec<HubHandle>,
    ids: Vec<ConnIds>,
    /// The model's own pool, to look at the rows.
    rows: DbPool,
    visitors: Vec<Visitor>,
    next_key: i64,
    seen: Covered,
    _leases: Vec<ServerLease>,
}

impl World {
    async fn new(url: &str, redis: &str) -> World {
        let (mut hubs, mut ids, mut leases) = (Vec::new(), Vec::new(), Vec::new());
        for node in NODES {
            let (url_, node_) = (url.to_owned(), node);
            let lease = tokio::task::spawn_blocking(move || {
                ServerLease::serve(&url_, node_, true, false).expect("lease")
            })
            .await
            .expect("blocking");
            let cluster_name = lease.cluster().expect("a cluster id").to_owned();
            let pool = db::build_pool(url, 4).expect("pool");
            let metrics = Arc::new(Metrics::new(node));
            let config = ClusterConfig {
                redis_url: redis.to_owned(),
                heartbeat: Duration::from_millis(200),
                node_timeout: Duration::from_secs(3),
                relay_timeout: Duration::from_secs(5),
            };
            let cluster = Cluster::join(config, &cluster_name, node, pool.clone(), metrics.clone())
                .await
                .expect("join");
            let node_ids = ConnIds::with_node(node);
            hubs.push(hub::spawn_with(
                pool,
                node_ids.clone(),
                Sharing::Shared,
                hub::Patience {
                    rematch_cooldown: Duration::ZERO,
                    interest_fallback: Duration::from_secs(3_600),
                },
                Duration::from_secs(15),
                metrics,
                Some(cluster),
            ));
            ids.push(node_ids);
            leases.push(lease);
        }
        World {
            hubs,
            ids,
            rows: db::build_pool(url, 2).expect("pool"),
            visitors: Vec::new(),
            next_key: 0,
            seen: Covered::default(),
            _leases: leases,
        }
    }

    /// The `i`-th (wrapping) of the visitors for whom `which` holds.
    fn pick_where(&self, i: usize, which: impl Fn(&Seen) -> bool) -> Option<usize> {
        let matching: Vec<usize> = (0..self.visitors.len())
            .filter(|&n| which(&self.visitors[n].seen))
            .collect();
        (!matching.is_empty()).then(|| matching[i % matching.len()])
    }

    async fn depart(&mut self, i: usize, how: Departure) {
        let v = self.visitors.swap_remove(i);
        if let Seen::Chatting(link) = &v.seen {
            if let Some(p) = self.visitors.iter_mut().find(|p| p.id == link.partner()) {
                p.partner_went = Some(how);
            }
        }
        self.hubs[v.at].leave(v.id, how).await.expect("hub");
    }

    async fn apply(&mut self, step: &Step) {
        match *step {
            Step::Arrive(n) => {
                let at = n % NODES.len();
                let id = self.ids[at].next();
                let (tx, outbox) = link::outbox(OUTBOX);
                let (kick, kicked) = oneshot::channel();
                // A new visitor each time.
                self.next_key += 1;
                let key = self.next_key;
                self.hubs[at]
                    .connect(id, who(key), tx, kick)
                    .await
                    .expect("hub");
                self.visitors.push(Visitor {
                    id,
                    key,
                    at,
                    outbox,
                    _kicked: kicked,
                    seen: Seen::Idle,
                    sent: 0,
                    received: 0,
                    partner_went: None,
                });
            }
            Step::Request(i) => {
                if let Some(i) = self.pick_where(i, |s| matches!(s, Seen::Idle)) {
                    let v = &mut self.visitors[i];
                    v.seen = Seen::Asked;
                    self.hubs[v.at].request(v.id, wants_of(v.key)).expect("hub");
                }
            }
            Step::Say(i) => {
                let Some(i) = self.pick_where(i, |s| matches!(s, Seen::Chatting(_))) else {
                    return;
                };
                let v = &mut self.visitors[i];
                if let Seen::Chatting(partner) = &v.seen {
                    let text = format!("{}:{}", v.id.rid(), v.sent + 1);
                    // A session relays exactly like this: over its partner link, local or
                    // remote.
                    if partner.deliver(text) == Delivery::Delivered {
                        v.sent += 1;
                        if node_of(partner.partner()) != node_of(v.id) {
                            self.seen.cross_messages += 1;
                        }
                    }
                }
            }
            Step::Leave(i) | Step::Vanish(i) => {
                let how = if matches!(step, Step::Leave(_)) {
                    Departure::Left
                } else {
                    Departure::Lost
                };
                // Mostly someone in a chat, whose partner is then told how it went.
                let chatting = |s: &Seen| matches!(s, Seen::Chatting(_));
                let pick = match self.pick_where(i / 4, chatting) {
                    Some(c) if i % 4 != 0 => Some(c),
                    _ => (!self.visitors.is_empty()).then(|| i % self.visitors.len()),
                };
                if let Some(i) = pick {
                    self.depart(i, how).await;
                }
            }
        }
    }

    /// Lets the hubs, the matchmakers and Redis finish: reads every outbox like sessions
    /// would until the world is settled, or fails at the deadline.
    async fn settle(&mut self) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            for hub in &self.hubs {
                hub.flush(2).await.expect("hub");
            }
            let any = self.drain().await;
            if !any && self.settled() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the world never settled: {}",
                self.unsettled()
            );
            if !any {
                // Cross-process work is on its way through Redis: look again shortly.
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }

    fn settled(&self) -> bool {
        self.unsettled().is_empty()
    }

    /// What the world still waits for, in words (empty when settled).
    fn unsettled(&self) -> String {
        let by_id: HashMap<ConnId, &Visitor> = self.visitors.iter().map(|v| (v.id, v)).collect();
        let mut open = Vec::new();
        let mut waiting = Vec::new();
        for v in &self.visitors {
            match &v.seen {
                Seen::Asked => open.push(format!("{} asked and has no answer", v.id)),
                Seen::Waiting => waiting.push(v.key),
                Seen::Chatting(link) => match by_id.get(&link.partner()) {
                    None => open.push(format!("{} has not heard its partner went", v.id)),
                    Some(p) => {
                        let back = matches!(&p.seen, Seen::Chatting(l) if l.partner() == v.id);
                        if !back {
                            open.push(format!("{}'s partner does not know it is paired", v.id));
                        } else if p.received != v.sent {
                            open.push(format!(
                                "{} sent {} and its partner has {}",
                                v.id, v.sent, p.received
                            ));
                        }
                    }
                },
                Seen::Idle => {}
            }
        }
        // With no cooldown and new visitors only, any two who wait and suit could meet.
        for (n, a) in waiting.iter().enumerate() {
            for b in &waiting[n + 1..] {
                if suit(&wants_of(*a), &wants_of(*b)) {
                    open.push(format!("{a} and {b} wait at once and suit each other"));
                }
            }
        }
        open.join("; ")
    }

    /// Reads every outbox; returns whether anything arrived.
    async fn drain(&mut self) -> bool {
        let mut any = false;
        let mut ended = Vec::new();
        let ids: Vec<ConnId> = self.visitors.iter().map(|v| v.id).collect();
        let keys: HashMap<ConnId, i64> = self.visitors.iter().map(|v| (v.id, v.key)).collect();
        for (i, v) in self.visitors.iter_mut().enumerate() {
            while let Ok(out) = v.outbox.try_recv() {
                any = true;
                match out {
                    Outbound::Frame(f) if f.contains(r#""online""#) => {}
                    Outbound::Frame(f) if f.contains(r#""error""#) => {
                        panic!("an error while MariaDB and Redis answer: {f}")
                    }
                    Outbound::Frame(f) if f.contains(r#""waiting""#) => {
                        assert!(matches!(v.seen, Seen::Asked), "waiting while {:?}", v.seen);
                        v.seen = Seen::Waiting;
                    }
                    Outbound::Frame(f) => take_message(&f, &v.seen, &mut v.received),
                    Outbound::Paired(paired) => {
                        let link::Paired { link, common, .. } = *paired;
                        assert!(
                            matches!(v.seen, Seen::Asked | Seen::Waiting),
                            "{} paired while {:?}",
                            v.id,
                            v.seen
                        );
                        assert_ne!(link.partner(), v.id, "paired with themselves");
                        assert!(
                            ids.contains(&link.partner()),
                            "paired with someone not connected"
                        );
                        if node_of(link.partner()) != node_of(v.id) {
                            self.seen.cross_pairs += 1;
                        }
                        let partner = wants_of(keys[&link.partner()]);
                        assert_fair_pairing(&wants_of(v.key), &partner, &common);
                        if !common.is_empty() {
                            self.seen.common += 1;
                        }
                        v.seen = Seen::Chatting(link);
                        v.sent = 0;
                        v.received = 0;
                    }
                    // Nobody's connection breaks here: the hub is driven directly.
                    Outbound::PartnerAway | Outbound::PartnerBack(_) => {
                        panic!("{} told its partner is away or back", v.id)
                    }
                    Outbound::PartnerGone(how) => {
                        assert!(
                            matches!(v.seen, Seen::Chatting(_)),
                            "partner gone while {:?}",
                            v.seen
                        );
                        assert_eq!(Some(how), v.partner_went, "how the partner went");
                        match how {
                            Departure::Left => self.seen.left += 1,
                            Departure::Lost => self.seen.lost += 1,
                        }
                        ended.push(i);
                        break;
                    }
                }
            }
        }
        // A session whose partner left closes its socket, and so leaves too.
        ended.sort_unstable();
        for i in ended.into_iter().rev() {
            let v = self.visitors.swap_remove(i);
            self.hubs[v.at]
                .leave(v.id, Departure::Left)
                .await
                .expect("hub");
        }
        any
    }

    /// The rows agree with what the visitors were told, and the hubs count who they hold.
    async fn check(&mut self) {
        let chat_of = chats_by_member(&self.rows).await;
        for v in &self.visitors {
            rows_agree(v.id, &v.seen, &chat_of);
        }
        let in_chats = self
            .visitors
            .iter()
            .filter(|v| matches!(v.seen, Seen::Waiting | Seen::Chatting(_)))
            .count();
        assert_eq!(
            chat_of.len(),
            in_chats,
            "rows for connections that are gone"
        );
        for (at, hub) in self.hubs.iter().enumerate() {
            let stats = hub.stats().await.expect("stats");
            let here = self.visitors.iter().filter(|v| v.at == at).count();
            assert_eq!(stats.connections, here, "process {at}'s connections");
        }
    }
}

fn node_of(id: ConnId) -> u32 {
    (id.rid() >> 32) as u32
}

fn run_case(redis: &str, steps: &[Step]) -> Covered {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let db = TestDb::new();
        drop(db.migrated_pool(1));
        let mut world = World::new(&db.url, redis).await;
        for step in steps {
            world.apply(step).await;
            world.settle().await;
            world.check().await;
        }
        // Everyone leaves: nothing of theirs is left in the rows.
        while !world.visitors.is_empty() {
            world.apply(&Step::Leave(0)).await;
            world.settle().await;
        }
        world.check().await;
        world.seen
    })
}

/// Takes the cluster tests' turn on the shared Redis (they pause and kill its clients).
fn cluster_turn(test: &str) -> Option<(String, tokio::sync::MutexGuard<'static, ()>)> {
    crate::mysql::mariadb_or_skip(test)?;
    let redis = crate::cluster::redis_or_skip(test)?;
    Some((redis, crate::cluster::ONE_AT_A_TIME.blocking_lock()))
}

#[test]
fn every_invariant_holds_after_every_step_on_three_processes() {
    let Some((redis, _turn)) =
        cluster_turn("every_invariant_holds_after_every_step_on_three_processes")
    else {
        return;
    };
    let mut runner = TestRunner::new(Config {
        cases: 40,
        failure_persistence: None,
        ..Config::default()
    });
    let steps = prop::collection::vec(step(), 1..60);
    let total = std::sync::Mutex::new(Covered::default());
    if let Err(e) = runner.run(&steps, |steps| {
        let seen = run_case(&redis, &steps);
        let mut t = total.lock().expect("total");
        t.cross_pairs += seen.cross_pairs;
        t.cross_messages += seen.cross_messages;
        t.left += seen.left;
        t.lost += seen.lost;
        Ok(())
    }) {
        panic!("{e}");
    }
    // The random cases went where this test is about: across processes.
    let total = total.into_inner().expect("total");
    eprintln!("three processes, over all cases: {total:?}");
    assert!(
        total.cross_pairs >= 10 && total.cross_messages >= 5 && total.lost >= 2,
        "{total:?}"
    );
}

/// One fixed sequence through the cross-process branches random cases may miss: a pair that
/// spans two processes talks both ways, one side leaves (`partner left` on the other process),
/// another spanning pair ends with a vanished visitor (`partner lost`).
#[test]
fn the_model_covers_pairs_that_span_processes() {
    let Some((redis, _turn)) = cluster_turn("the_model_covers_pairs_that_span_processes") else {
        return;
    };
    use Step::*;
    let seen = run_case(
        &redis,
        &[
            Arrive(0),
            Arrive(1),
            Request(0), // waits on process 0
            Request(0), // the one on process 1 joins it
            Say(0),
            Say(1),
            Say(0),
            Leave(1), // one of them closes; the other hears `partner left` and leaves
            Arrive(2),
            Arrive(1),
            Request(0),
            Request(0),
            Say(0),
            Vanish(1), // `partner lost` across processes
        ],
    );
    assert!(seen.cross_pairs >= 4, "{seen:?}");
    assert!(seen.cross_messages >= 3, "{seen:?}");
    assert!(seen.left >= 1 && seen.lost >= 1, "{seen:?}");
}
