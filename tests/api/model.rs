//! A model test of the hub and matchmaker on a real SQLite file: random sequences of arrive,
//! request, message, leave, vanish, crash (with restart) and ghost rows from another process,
//! with every invariant of the core checked after each step. Channels stand in for sockets.

use std::collections::HashMap;
use std::time::Duration;

use pairchat::chat::hub::{self, HubHandle, Kick};
use pairchat::chat::ids::{ConnId, ConnIds, VisitorKey};
use pairchat::chat::link::{self, Delivery, Departure, Outbound, OutboxReceiver, PartnerLink};
use pairchat::db::{self, queries, DbPool};
use proptest::prelude::*;
use tokio::sync::oneshot;

#[derive(Debug, Clone)]
enum Step {
    Arrive,
    Request(usize),
    Say(usize),
    /// Closes its socket.
    Leave(usize),
    /// Vanishes (broken connection, no heartbeat).
    Vanish(usize),
    /// The process dies and restarts on the same database.
    Crash,
    /// Another (crashed) process's visitor waiting in the rows.
    Ghost,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => Just(Step::Arrive),
        4 => any::<usize>().prop_map(Step::Request),
        4 => any::<usize>().prop_map(Step::Say),
        2 => any::<usize>().prop_map(Step::Leave),
        1 => any::<usize>().prop_map(Step::Vanish),
        1 => Just(Step::Crash),
        1 => Just(Step::Ghost),
    ]
}

#[derive(Debug)]
enum Seen {
    Idle,
    Asked,
    Waiting,
    Chatting(PartnerLink),
}

struct Visitor {
    id: ConnId,
    outbox: OutboxReceiver,
    _kicked: oneshot::Receiver<Kick>,
    seen: Seen,
    /// Messages sent to the current partner, and received from it.
    sent: u64,
    received: u64,
}

struct World {
    hub: HubHandle,
    pool: DbPool,
    ids: ConnIds,
    visitors: Vec<Visitor>,
    ghosts: Vec<i64>,
    next_ghost: i64,
}

const OUTBOX: usize = 64;

impl World {
    async fn new(pool: DbPool) -> World {
        let ids = ConnIds::with_node(9);
        World {
            hub: hub::spawn(pool.clone(), ids.clone(), Duration::ZERO),
            pool,
            ids,
            visitors: Vec::new(),
            ghosts: Vec::new(),
            next_ghost: 1,
        }
    }

    fn pick(&self, i: usize) -> Option<usize> {
        (!self.visitors.is_empty()).then(|| i % self.visitors.len())
    }

    async fn apply(&mut self, step: &Step) {
        match *step {
            Step::Arrive => {
                let id = self.ids.next();
                let (tx, outbox) = link::outbox(OUTBOX);
                let (kick, kicked) = oneshot::channel();
                // Each its own visitor; every other one known by a page token.
                let visitor = if id.rid() & 1 == 1 {
                    VisitorKey::named(id.rid())
                } else {
                    VisitorKey::address(id.rid())
                };
                self.hub.connect(id, visitor, tx, kick).await.expect("hub");
                self.visitors.push(Visitor {
                    id,
                    outbox,
                    _kicked: kicked,
                    seen: Seen::Idle,
                    sent: 0,
                    received: 0,
                });
            }
            Step::Request(i) => {
                let Some(i) = self.pick(i) else { return };
                if matches!(self.visitors[i].seen, Seen::Idle) {
                    self.visitors[i].seen = Seen::Asked;
                    let id = self.visitors[i].id;
                    self.hub.request(id).expect("hub");
                }
            }
            Step::Say(i) => {
                let Some(i) = self.pick(i) else { return };
                let v = &mut self.visitors[i];
                if let Seen::Chatting(partner) = &v.seen {
                    let text = format!("{}:{}", v.id.rid(), v.sent + 1);
                    // A session relays exactly like this: over its partner link.
                    if partner.deliver(text) == Delivery::Delivered {
                        v.sent += 1;
                    }
                }
            }
            Step::Leave(i) | Step::Vanish(i) => {
                let Some(i) = self.pick(i) else { return };
                let how = match step {
                    Step::Leave(_) => Departure::Left,
                    _ => Departure::Lost,
                };
                let v = self.visitors.swap_remove(i);
                self.hub.leave(v.id, how).await.expect("hub");
            }
            Step::Crash => {
                // What was committed stays; every connection dies with the process.
                self.hub.flush(1).await.expect("hub");
                self.visitors.clear();
                let pool = self.pool.clone();
                tokio::task::spawn_blocking(move || {
                    queries::clear_all(&mut db::get(&pool).expect("conn")).expect("start-up clear")
                })
                .await
                .expect("blocking");
                self.ghosts.clear();
                self.hub = hub::spawn(self.pool.clone(), self.ids.clone(), Duration::ZERO);
            }
            Step::Ghost => {
                let rid = -self.next_ghost; // no live connection has a negative id
                self.next_ghost += 1;
                let pool = self.pool.clone();
                tokio::task::spawn_blocking(move || {
                    let mut conn = db::get(&pool).expect("conn");
                    queries::write_transaction(&mut conn, |c| {
                        // Only a lone ghost waits; one that would pair is not another process's
                        // waiting visitor but a pairing, which that process would relay.
                        if queries::chats(c)?.iter().any(|(_, done, _)| !done) {
                            return Ok(false);
                        }
                        queries::request(c, rid, rid, None).map(|_| true)
                    })
                    .expect("ghost")
                })
                .await
                .expect("blocking")
                .then(|| self.ghosts.push(rid));
            }
        }
    }

    /// Lets the hub and matchmaker finish, reading every outbox like sessions would, until
    /// nothing more happens.
    async fn settle(&mut self) {
        for _ in 0..20 {
            self.hub.flush(2).await.expect("hub");
            if !self.drain().await {
                return;
            }
        }
        panic!("the hub never settled");
    }

    /// Reads every outbox; returns whether anything arrived.
    async fn drain(&mut self) -> bool {
        let mut any = false;
        let mut ended = Vec::new();
        for (i, v) in self.visitors.iter_mut().enumerate() {
            while let Ok(out) = v.outbox.try_recv() {
                any = true;
                match out {
                    Outbound::Frame(f) if f.contains(r#""online""#) => {}
                    // The request could not be served (database unreachable): idle again.
                    Outbound::Frame(f) if f.contains(r#""unavailable""#) => v.seen = Seen::Idle,
                    Outbound::Frame(f) if f.contains(r#""waiting""#) => {
                        assert!(matches!(v.seen, Seen::Asked), "waiting while {:?}", v.seen);
                        v.seen = Seen::Waiting;
                    }
                    Outbound::Frame(f) => {
                        let Seen::Chatting(partner) = &v.seen else {
                            panic!("a message {f} outside a chat");
                        };
                        let (from, n) = f.split_once(':').expect("model message");
                        let partner = partner.partner().rid();
                        assert_eq!(from, partner.to_string(), "a message from a stranger");
                        assert_eq!(n, (v.received + 1).to_string(), "out of order or twice");
                        v.received += 1;
                    }
                    Outbound::Paired(link) => {
                        assert!(
                            matches!(v.seen, Seen::Asked | Seen::Waiting),
                            "paired while {:?}",
                            v.seen
                        );
                        assert_ne!(link.partner(), v.id, "paired with themselves");
                        v.seen = Seen::Chatting(link);
                        v.sent = 0;
                        v.received = 0;
                    }
                    Outbound::PartnerGone(_) => {
                        ended.push(i);
                        break;
                    }
                }
            }
        }
        // A session whose partner left closes its socket, and so leaves too.
        for i in ended.into_iter().rev() {
            let v = self.visitors.swap_remove(i);
            self.hub.leave(v.id, Departure::Left).await.expect("hub");
        }
        any
    }

    async fn check(&self) {
        let pool = self.pool.clone();
        let rows = tokio::task::spawn_blocking(move || {
            queries::chats(&mut db::get(&pool).expect("conn")).expect("rows")
        })
        .await
        .expect("blocking");
        let mut chat_of: HashMap<i64, (bool, Vec<i64>)> = HashMap::new();
        for (id, completed, members) in &rows {
            assert!(members.len() <= 2, "chat {id}: {members:?}");
            assert_eq!(members.len(), if *completed { 2 } else { 1 }, "chat {id}");
            if members.len() == 2 {
                assert_ne!(
                    members[0], members[1],
                    "chat {id} pairs someone with themselves"
                );
            }
            for m in members {
                assert!(chat_of.insert(*m, (*completed, members.clone())).is_none());
            }
        }
        let mut waiting = 0;
        for v in &self.visitors {
            match &v.seen {
                Seen::Idle => assert!(!chat_of.contains_key(&v.id.rid()), "idle but in a chat"),
                Seen::Asked => panic!("a request never answered"),
                Seen::Waiting => {
                    waiting += 1;
                    assert_eq!(
                        chat_of.get(&v.id.rid()).map(|c| c.0),
                        Some(false),
                        "waits without a row"
                    );
                }
                Seen::Chatting(partner) => {
                    let (completed, members) =
                        chat_of.get(&v.id.rid()).expect("chatting without rows");
                    assert!(
                        *completed && members.contains(&partner.partner().rid()),
                        "rows disagree"
                    );
                    let p = self
                        .visitors
                        .iter()
                        .find(|p| p.id == partner.partner())
                        .expect("partner is connected");
                    assert!(matches!(&p.seen, Seen::Chatting(back) if back.partner() == v.id));
                    assert_eq!(p.received, v.sent, "every message reached the partner once");
                }
            }
        }
        assert!(waiting <= 1, "{waiting} eligible visitors wait at once");
        let live_rows = chat_of
            .keys()
            .filter(|rid| !self.ghosts.contains(rid))
            .count();
        let in_chats = self
            .visitors
            .iter()
            .filter(|v| matches!(v.seen, Seen::Waiting | Seen::Chatting(_)))
            .count();
        assert_eq!(live_rows, in_chats, "rows for connections that are gone");
        let stats = self.hub.stats().await.expect("stats");
        assert_eq!(stats.connections, self.visitors.len());
    }
}

fn run_case(steps: Vec<Step>) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let dir = tempfile::tempdir().expect("dir");
        let url = format!("sqlite://{}", dir.path().join("model.db").display());
        let pool = db::build_pool(&url, 2).expect("pool");
        db::run_migrations(&mut db::get(&pool).expect("conn")).expect("migrate");
        let mut world = World::new(pool).await;
        for step in &steps {
            world.apply(step).await;
            world.settle().await;
            world.check().await;
        }
        // Everyone leaves: nothing of theirs is left in the rows.
        while !world.visitors.is_empty() {
            world.apply(&Step::Leave(0)).await;
        }
        world.settle().await;
        world.check().await;
        let pool = world.pool.clone();
        let rows = tokio::task::spawn_blocking(move || {
            queries::chats(&mut db::get(&pool).expect("conn")).expect("rows")
        })
        .await
        .expect("blocking");
        assert!(
            rows.iter()
                .all(|(_, _, m)| m.iter().all(|r| world.ghosts.contains(r))),
            "rows remain after everyone left: {rows:?}"
        );
    });
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn every_invariant_holds_after_every_step(steps in prop::collection::vec(step(), 1..40)) {
        run_case(steps);
    }
}
