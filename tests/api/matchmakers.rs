//! Several matchmakers on one database, as several server processes will run them: three
//! matchmaker threads, each with its own pool and node id, fed random requests (with avoid
//! lists, and interests and a language, minded for ever or not at all) and leaves in bursts, so that their batches run at the same time. Once every
//! operation has settled, the rows must hold every invariant. On SQLite, or on MariaDB when
//! `TEST_MYSQL_URL` is set (CI runs both; on MariaDB the races are real: `SKIP LOCKED`,
//! deadlocks, re-checks).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use pairchat::chat::ids::{ConnId, ConnIds};
use pairchat::chat::matchmaker::suits::{self, Wish, NEVER};
use pairchat::chat::matchmaker::{self, Ask, Decision, Matchmaker, Op, Outcome, Sharing};
use pairchat::chat::wants::Lang;
use pairchat::db::queries::{self, ChatRow, Member, NewChat};
use pairchat::db::{self, DbPool};
use pairchat::metrics::Metrics;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use tokio::sync::mpsc;

use crate::batch::visitor;
use crate::helpers::TestDb;
use crate::mysql::mariadb_or_skip;

const MATCHMAKERS: usize = 3;
const VISITORS: i64 = 8;

#[derive(Debug, Clone)]
enum Step {
    /// A new connection on matchmaker `on` asks for a partner.
    Request {
        on: usize,
        visitor: i64,
        avoid: Vec<i64>,
        wish: Wish,
    },
    /// The `i`-th (wrapping) connection that asked leaves.
    Leave(usize),
    /// Waits for every matchmaker to settle, and checks the rows.
    Settle,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        8 => (0..MATCHMAKERS, 0..VISITORS, prop::collection::vec(0..VISITORS, 0..3), wish())
            .prop_map(|(on, visitor, avoid, wish)| Step::Request { on, visitor, avoid, wish }),
        4 => any::<usize>().prop_map(Step::Leave),
        1 => Just(Step::Settle),
    ]
}

/// Nothing asked, or some of three tags and a language, minded for ever or not at all (so that
/// the invariants do not depend on when they are checked).
fn wish() -> impl Strategy<Value = Wish> {
    let tags = prop::sample::subsequence(vec!["go", "music", "café"], 0..3);
    let lang = prop::sample::select(vec![None, Some(Lang::En), Some(Lang::Zh)]);
    prop_oneof![
        2 => Just(Wish::default()),
        2 => (tags, lang, prop::bool::ANY).prop_map(|(tags, lang, never)| Wish {
            interests: tags.into_iter().map(String::from).collect(),
            lang,
            fallback_at: if never { NEVER } else { 1 },
        }),
    ]
}

struct Node {
    matchmaker: Matchmaker,
    decisions: mpsc::Receiver<Vec<Decision>>,
    ids: ConnIds,
}

struct World {
    nodes: Vec<Node>,
    rows: DbPool,
    /// Every connection that asked: its request and its matchmaker.
    asked: Vec<(Ask, usize)>,
    left: HashSet<ConnId>,
    answered: HashMap<ConnId, Outcome>,
    /// Who each pairing decision named as the partner.
    partners: HashMap<ConnId, ConnId>,
    next_token: u64,
}

impl World {
    fn new(url: &str) -> World {
        let nodes = (0..MATCHMAKERS)
            .map(|i| {
                let node = 11 + i as u32;
                let (tx, decisions) = mpsc::channel(1_024);
                let pool = db::build_pool(url, 2).unwrap();
                Node {
                    matchmaker: Matchmaker::spawn(
                        pool,
                        node,
                        Sharing::Shared,
                        Arc::new(Metrics::new(node)),
                        tx,
                        None,
                    ),
                    decisions,
                    ids: ConnIds::with_node(node),
                }
            })
            .collect();
        World {
            nodes,
            rows: db::build_pool(url, 1).unwrap(),
            asked: Vec::new(),
            left: HashSet::new(),
            answered: HashMap::new(),
            partners: HashMap::new(),
            next_token: 0,
        }
    }

    fn submit(&mut self, on: usize, op: Op) {
        assert_eq!(self.nodes[on].matchmaker.submit(op), None, "refused");
    }

    fn apply(&mut self, step: &Step) {
        match step {
            Step::Request {
                on,
                visitor: v,
                avoid,
                wish,
            } => {
                let ask = Ask {
                    id: self.nodes[*on].ids.next(),
                    visitor: visitor(*v),
                    avoid: avoid.iter().map(|&a| visitor(a)).collect(),
                    avoid_self: visitor(*v).is_named(),
                    wish: wish.clone(),
                };
                self.asked.push((ask.clone(), *on));
                self.submit(*on, Op::Request(ask));
            }
            Step::Leave(i) => {
                if self.asked.is_empty() {
                    return;
                }
                let (ask, on) = self.asked[i % self.asked.len()].clone();
                if self.left.insert(ask.id) {
                    self.submit(on, Op::Leave(ask.id));
                }
            }
            Step::Settle => self.settle(),
        }
    }

    /// A barrier on every matchmaker, and every decision up to it. A barrier is answered once
    /// what came before it, re-checks included, is done.
    fn settle(&mut self) {
        self.next_token += 1;
        let token = self.next_token;
        for on in 0..MATCHMAKERS {
            self.submit(on, Op::Barrier(token));
        }
        for on in 0..MATCHMAKERS {
            loop {
                let batch = self.nodes[on]
                    .decisions
                    .blocking_recv()
                    .expect("matchmaker");
                let mut flushed = false;
                for decision in batch {
                    match decision {
                        Decision::Flushed(t) => flushed |= t == token,
                        Decision::Request { conn, outcome } => {
                            assert_ne!(outcome, Outcome::Unavailable, "{conn} refused");
                            if let Outcome::Paired { partner, .. } = &outcome {
                                self.partners.insert(conn, *partner);
                            }
                            self.answered.insert(conn, outcome);
                        }
                    }
                }
                if flushed {
                    break;
                }
            }
        }
        for node in &mut self.nodes {
            assert!(node.matchmaker.pump().is_empty());
        }
        self.check();
    }

    fn check(&self) {
        let rows = queries::chat_rows(&mut db::get(&self.rows).unwrap()).unwrap();
        let asks: HashMap<i64, (&Ask, usize)> = self
            .asked
            .iter()
            .map(|(ask, on)| (ask.id.rid(), (ask, *on)))
            .collect();
        let mut seen = HashSet::new();
        for chat in &rows {
            let members = chat.members.len();
            if chat.is_completed {
                assert_eq!(members, 2, "a completed chat of {members}: {chat:?}");
            } else {
                assert_eq!(members, 1, "a waiting chat of {members}: {chat:?}");
                assert_eq!(chat.members[0].0, chat.id, "waiting in another's chat");
            }
            for &(rid, v, node) in &chat.members {
                assert!(seen.insert(rid), "{rid} is in two chats");
                let (ask, on) = asks[&rid];
                assert!(!self.left.contains(&ask.id), "{rid} left but has a row");
                assert_eq!(v, ask.visitor.as_i64());
                assert_eq!(node, 11 + on as i64, "the row names another process");
            }
            if chat.is_completed {
                let (a, b) = (chat.members[0].0, chat.members[1].0);
                // (Two connections of one address may pair: nothing tells them apart.)
                let (va, vb) = (chat.members[0].1, chat.members[1].1);
                assert!(
                    va != vb || va & 1 == 0,
                    "a visitor's two tabs paired: {chat:?}"
                );
                // A pairing decision names the partner the rows hold.
                for (me, other) in [(a, b), (b, a)] {
                    if let Some(partner) = self.partners.get(&ConnId::from_rid(me)) {
                        assert_eq!(partner.rid(), other, "decided one partner, stored another");
                    }
                }
            }
        }
        // Every request was answered, and every connection that asked and did not leave is in
        // a chat, unless its partner left.
        for (ask, _) in &self.asked {
            assert!(self.answered.contains_key(&ask.id), "{} unanswered", ask.id);
            let partner_left = self.partners.iter().any(|(a, b)| {
                (*a == ask.id && self.left.contains(b)) || (*b == ask.id && self.left.contains(a))
            });
            if !self.left.contains(&ask.id) && !partner_left {
                assert!(seen.contains(&ask.id.rid()), "{} lost its rows", ask.id);
            }
        }
        assert_no_two_could_pair(&rows, &asks);
    }
}

/// Never two chats waiting whose visitors could pair: neither avoids the other, and they suit
/// each other.
fn assert_no_two_could_pair(rows: &[ChatRow], asks: &HashMap<i64, (&Ask, usize)>) {
    let waiting: Vec<&Ask> = rows
        .iter()
        .filter(|c| !c.is_completed)
        .map(|c| asks[&c.id].0)
        .collect();
    let avoids =
        |a: &Ask, b: &Ask| a.avoid.contains(&b.visitor) || (a.visitor == b.visitor && a.avoid_self);
    for (i, a) in waiting.iter().enumerate() {
        for b in &waiting[i + 1..] {
            let now = matchmaker::now_micros();
            assert!(
                avoids(a, b) || avoids(b, a) || !suits::suit(&a.wish, &b.wish, now),
                "{} and {} both wait and could pair",
                a.id,
                b.id
            );
        }
    }
}

fn run_case(url: &str, steps: &[Step]) {
    let mut db = db::get(&db::build_pool(url, 1).unwrap()).unwrap();
    queries::clear_all(&mut db).unwrap();
    let mut world = World::new(url);
    for step in steps {
        world.apply(step);
    }
    world.settle();
}

#[test]
fn three_matchmakers_on_one_database_keep_every_invariant() {
    let db = TestDb::new();
    db.migrated_pool(1);
    let cases = if crate::helpers::mysql_server_url().is_some() {
        32
    } else {
        48
    };
    let mut runner = TestRunner::new(Config {
        cases,
        ..Config::default()
    });
    runner
        .run(&prop::collection::vec(step(), 1..120), |steps| {
            run_case(&db.url, &steps);
            Ok(())
        })
        .unwrap();
}

/// The race `SKIP LOCKED` leaves: a request on one matchmaker opens a waiting chat, and before
/// it commits, a request on another skips that locked row and waits too. The one that commits
/// last re-checks and joins the other.
#[test]
fn two_who_wait_at_the_same_moment_on_two_matchmakers_are_paired_by_the_re_check() {
    if mariadb_or_skip("the SKIP LOCKED race").is_none() {
        return;
    }
    let db = TestDb::new();
    let pool = db.migrated_pool(2);
    let ask = |rid, v| Ask {
        id: ConnId::from_rid(rid),
        visitor: visitor(v),
        avoid: Vec::new(),
        avoid_self: false,
        wish: Wish::default(),
    };
    let (early, late) = (ask(1, 1), ask(2, 2));
    let mut first = db::get(&pool).unwrap();
    let mut pending = vec![late.clone()];
    queries::write_transaction(&mut first, |first| {
        // Matchmaker 21 opens a waiting chat for `late`, and has not committed yet...
        queries::insert_chats(
            first,
            &[NewChat {
                id: 2,
                is_completed: false,
                queued: 20,
                visitor: late.visitor.as_i64(),
                interests: String::new(),
                lang: String::new(),
                fallback_at: 0,
            }],
        )?;
        queries::insert_members(
            first,
            &[Member {
                rid: 2,
                chat_id: 2,
                visitor: late.visitor.as_i64(),
                node: 21,
            }],
        )?;
        // ...when matchmaker 22 asks for `early`: it skips the locked row and waits.
        let applied = matchmaker::apply_batch(
            &mut db::get(&pool).unwrap(),
            22,
            10,
            &[Op::Request(early.clone())],
        );
        let decisions = applied.map_err(|e| panic!("{e:#}")).unwrap().decisions;
        assert_eq!(
            decisions,
            [Decision::Request {
                conn: early.id,
                outcome: Outcome::Waiting
            }]
        );
        Ok(())
    })
    .unwrap();
    let waiting = |pool: &DbPool| {
        let rows = queries::chat_rows(&mut db::get(pool).unwrap()).unwrap();
        rows.iter().filter(|c| !c.is_completed).count()
    };
    assert_eq!(waiting(&pool), 2, "both wait once both have committed");
    // Matchmaker 21 committed last: its re-check finds `early` and joins it.
    let decisions = matchmaker::recheck(&mut db::get(&pool).unwrap(), 21, &mut pending).unwrap();
    assert_eq!(
        decisions,
        [Decision::Request {
            conn: late.id,
            outcome: Outcome::Paired {
                partner: early.id,
                common: Vec::new()
            }
        }]
    );
    assert!(pending.is_empty());
    assert_eq!(waiting(&pool), 0);
    // Matchmaker 22's own re-check now finds its request no longer waiting.
    let mut theirs = vec![early];
    assert!(
        matchmaker::recheck(&mut db::get(&pool).unwrap(), 22, &mut theirs)
            .unwrap()
            .is_empty()
    );
    assert!(theirs.is_empty());
}
