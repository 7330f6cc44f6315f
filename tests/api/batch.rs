//! The matchmaker's batch against its reference: random stored rows and random batches of
//! requests (with avoid lists), leaves, rematches and barriers, decided once as a batch
//! (`apply_batch`: a few statements for the whole batch) and once one by one
//! (`apply_one_by_one`: a few statements per operation). The decisions and the rows must be
//! the same. Waiting visitors and requests carry random wishes (interests from a small
//! vocabulary, a language, fallback times before, after or never), so that the rule of
//! `suits` is decided alike both ways. On SQLite, or on MariaDB when `TEST_MYSQL_URL` is set
//! (CI runs both). Then what the batch's statements lock on MariaDB.

use diesel::RunQueryDsl;
use pairchat::chat::ids::{ConnId, VisitorKey};
use pairchat::chat::matchmaker::plan::Writes;
use pairchat::chat::matchmaker::suits::{Wish, NEVER};
use pairchat::chat::matchmaker::{apply_batch, apply_one_by_one, Ask, Decision, Op, Outcome};
use pairchat::chat::wants::Lang;
use pairchat::db::queries::{self, Member, NewChat, Read, QUEUE_START};
use pairchat::db::{self, DbPool};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use crate::helpers::TestDb;
use crate::mysql::mariadb_or_skip;

/// The node the batch's rows name; stored rows name others.
const NODE: i64 = 7;
/// Visitors: few, so that avoid lists and a visitor's own tabs come into play.
const VISITORS: i64 = 6;

/// The test visitor `i`: odd ones known by a page token, even ones by an address (also used by
/// tests/api/matchmakers.rs).
pub fn visitor(i: i64) -> VisitorKey {
    // Odd keys are page tokens (kept apart from themselves when asked), even ones addresses.
    if i % 2 == 1 {
        VisitorKey::named(i)
    } else {
        VisitorKey::address(i * 2)
    }
}

/// Rows laid down before the batch: waiting chats `(visitor, queued, node)` with their
/// wishes, and paired ones.
#[derive(Debug, Clone)]
struct Stored {
    waiting: Vec<((i64, i64, i64), Wish)>,
    paired: Vec<(i64, i64, i64)>,
}

/// A random wish: most ask for nothing; the rest for some of three tags, or a language, with a
/// fallback time that has come, comes within the batch's range of clocks, or never comes.
fn wish() -> impl Strategy<Value = Wish> {
    let tags = prop::collection::vec(prop::sample::select(vec!["go", "music", "café"]), 0..3);
    let lang = prop::sample::select(vec![None, Some(Lang::En), Some(Lang::Ru)]);
    let fallback = prop::sample::select(vec![-100, 10, 20, NEVER]);
    prop_oneof![
        2 => Just(Wish::default()),
        3 => (tags, lang, fallback).prop_map(|(tags, lang, fallback_at)| {
            let mut interests: Vec<String> = Vec::new();
            for t in tags {
                if !interests.iter().any(|i| i == t) {
                    interests.push(t.to_owned());
                }
            }
            let choosy = !interests.is_empty() || lang.is_some();
            Wish { interests, lang, fallback_at: if choosy { fallback_at } else { 0 } }
        }),
    ]
}

fn stored() -> impl Strategy<Value = Stored> {
    let row = (0..VISITORS, 0..30i64, 1..4i64);
    (
        // Often more waiting chats than a batch reads in its first page.
        prop::collection::vec((row.clone(), wish()), 0..40),
        prop::collection::vec(row, 0..4),
    )
        .prop_map(|(waiting, paired)| Stored { waiting, paired })
}

/// An operation before its connection is chosen.
#[derive(Debug, Clone)]
enum Abstract {
    /// A request from a new connection, or (`true`) from one that left earlier in the batch.
    Request {
        again: bool,
        visitor: i64,
        avoid: Vec<i64>,
        avoid_self: bool,
        wish: Wish,
    },
    Leave(usize),
    Rematch {
        who: usize,
        avoid: Vec<i64>,
    },
    Barrier,
}

fn abstract_op() -> impl Strategy<Value = Abstract> {
    let avoid = prop::collection::vec(0..VISITORS, 0..3);
    prop_oneof![
        6 => (any::<bool>(), 0..VISITORS, avoid.clone(), any::<bool>(), wish()).prop_map(
            |(again, visitor, avoid, avoid_self, wish)| Abstract::Request { again, visitor, avoid, avoid_self, wish }
        ),
        3 => any::<usize>().prop_map(Abstract::Leave),
        2 => (any::<usize>(), avoid).prop_map(|(who, avoid)| Abstract::Rematch { who, avoid }),
        1 => Just(Abstract::Barrier),
    ]
}

fn ask(rid: i64, visitor_index: i64, avoid: &[i64], avoid_self: bool, wish: Wish) -> Ask {
    Ask {
        id: ConnId::from_rid(rid),
        visitor: visitor(visitor_index),
        avoid: avoid.iter().map(|&v| visitor(v)).collect(),
        avoid_self,
        wish,
    }
}

/// Lays `stored` down; returns every connection it names, with its visitor.
fn lay(pool: &DbPool, stored: &Stored) -> Vec<(i64, i64)> {
    let mut db = db::get(pool).unwrap();
    queries::clear_all(&mut db).unwrap();
    let mut chats = Vec::new();
    let mut members = Vec::new();
    let mut known = Vec::new();
    for (i, ((v, queued, node), wish)) in stored.waiting.iter().enumerate() {
        let (v, queued, node) = (*v, *queued, *node);
        // A waiting chat's id is its member's connection id, as the matchmaker opens them.
        let rid = 100 + i as i64;
        let (interests, lang, fallback_at) = wish.columns();
        chats.push(NewChat {
            id: rid,
            is_completed: false,
            queued,
            visitor: visitor(v).as_i64(),
            interests,
            lang,
            fallback_at,
        });
        members.push(Member {
            rid,
            chat_id: rid,
            visitor: visitor(v).as_i64(),
            node,
        });
        known.push((rid, v));
    }
    for (i, &(v, queued, node)) in stored.paired.iter().enumerate() {
        let (a, b) = (200 + 2 * i as i64, 201 + 2 * i as i64);
        chats.push(NewChat {
            id: a,
            is_completed: true,
            queued,
            visitor: visitor(v).as_i64(),
            interests: String::new(),
            lang: String::new(),
            fallback_at: 0,
        });
        for (rid, v) in [(a, v), (b, (v + 1) % VISITORS)] {
            members.push(Member {
                rid,
                chat_id: a,
                visitor: visitor(v).as_i64(),
                node,
            });
            known.push((rid, v));
        }
    }
    queries::write_transaction(&mut db, |db| {
        queries::insert_chats(db, &chats)?;
        queries::insert_members(db, &members)
    })
    .unwrap();
    known
}

/// Chooses connections: a request is only ever made by a connection in no chat (a new one, or
/// one that left), as the hub makes them; leaves and rematches pick any connection, known or
/// not (a rematch with the wish its connection waits with, as the hub asks again).
fn concrete(mut known: Vec<(i64, i64)>, stored: &Stored, ops: &[Abstract]) -> Vec<Op> {
    let mut wishes: std::collections::HashMap<i64, Wish> = stored
        .waiting
        .iter()
        .enumerate()
        .map(|(i, (_, wish))| (100 + i as i64, wish.clone()))
        .collect();
    let mut next_rid = 300;
    let mut left: Vec<(i64, i64)> = Vec::new();
    let mut token = 0;
    ops.iter()
        .map(|op| match op {
            Abstract::Request {
                again,
                visitor,
                avoid,
                avoid_self,
                wish,
            } => {
                let (rid, v) = match left.pop() {
                    Some(back) if *again => back,
                    _ => {
                        next_rid += 1;
                        (next_rid, *visitor)
                    }
                };
                known.push((rid, v));
                wishes.insert(rid, wish.clone());
                Op::Request(ask(rid, v, avoid, *avoid_self, wish.clone()))
            }
            Abstract::Leave(i) => {
                // Now and then a connection no row names.
                let (rid, v) = known
                    .get(i % (known.len() + 1))
                    .copied()
                    .unwrap_or((999, 0));
                left.retain(|(r, _)| *r != rid);
                left.push((rid, v));
                Op::Leave(ConnId::from_rid(rid))
            }
            Abstract::Rematch { who, avoid } => {
                let (rid, v) = known
                    .get(who % (known.len() + 1))
                    .copied()
                    .unwrap_or((998, 1));
                let wish = wishes.get(&rid).cloned().unwrap_or_default();
                Op::Rematch(ask(rid, v, avoid, false, wish))
            }
            Abstract::Barrier => {
                token += 1;
                Op::Barrier(token)
            }
        })
        .collect()
}

#[test]
fn a_batch_comes_to_what_its_operations_come_to_one_by_one() {
    let (db_batch, db_single) = (TestDb::new(), TestDb::new());
    let (batch_pool, single_pool) = (db_batch.migrated_pool(2), db_single.migrated_pool(2));
    let cases = if crate::helpers::mysql_server_url().is_some() {
        96
    } else {
        256
    };
    let mut runner = TestRunner::new(Config {
        cases,
        ..Config::default()
    });
    let case = (
        stored(),
        // Short batches too, which read only the first few waiting chats.
        prop_oneof![
            prop::collection::vec(abstract_op(), 1..4),
            prop::collection::vec(abstract_op(), 1..30)
        ],
        -4..32i64,
    );
    let paired = std::cell::Cell::new(0usize);
    let common = std::cell::Cell::new(0usize);
    runner
        .run(&case, |(stored, ops, first_ticket)| {
            let known = lay(&batch_pool, &stored);
            lay(&single_pool, &stored);
            let ops = concrete(known, &stored, &ops);
            let batch =
                apply_batch(&mut db::get(&batch_pool).unwrap(), NODE, first_ticket, &ops).unwrap();
            let single = apply_one_by_one(&single_pool, NODE, first_ticket, &ops).unwrap();
            prop_assert_eq!(&batch.decisions, &single, "decisions of {:?}", ops);
            let rows = |pool: &DbPool| queries::chat_rows(&mut db::get(pool).unwrap()).unwrap();
            prop_assert_eq!(
                rows(&batch_pool),
                rows(&single_pool),
                "rows after {:?}",
                ops
            );
            let pairings = batch.decisions.iter().filter(|d| {
                matches!(
                    d,
                    Decision::Request {
                        outcome: Outcome::Paired { .. },
                        ..
                    }
                )
            });
            paired.set(paired.get() + pairings.count());
            let shared = batch.decisions.iter().filter(|d| {
                matches!(
                    d,
                    Decision::Request {
                        outcome: Outcome::Paired { common, .. },
                        ..
                    } if !common.is_empty()
                )
            });
            common.set(common.get() + shared.count());
            Ok(())
        })
        .unwrap();
    // The cases paired often, not only waited.
    assert!(
        paired.get() > cases as usize,
        "only {} pairings",
        paired.get()
    );
    assert!(
        common.get() > cases as usize / 4,
        "only {} pairings on a common interest",
        common.get()
    );
}

/// `n` chats waiting (ids 100, 101, …, queued in that order) and one paired (200 and 201).
fn waiting_chats(pool: &DbPool, n: i64) -> Vec<i64> {
    let stored = Stored {
        waiting: (0..n)
            .map(|i| ((i % VISITORS, i, 1), Wish::default()))
            .collect(),
        paired: vec![(0, 100, 1)],
    };
    lay(pool, &stored).iter().map(|(rid, _)| *rid).collect()
}

#[test]
fn a_second_matchmaker_takes_the_next_waiting_chats_while_the_first_holds_its_own() {
    if mariadb_or_skip("SKIP LOCKED takes only the rows it returns").is_none() {
        return;
    }
    let db = TestDb::new();
    let pool = db.migrated_pool(2);
    waiting_chats(&pool, 6);
    let (mut first, mut second) = (db::get(&pool).unwrap(), db::get(&pool).unwrap());
    // Every pooled session runs at READ COMMITTED: no gap locks, and a plain read sees what
    // others committed.
    #[derive(diesel::QueryableByName)]
    struct Isolation {
        #[diesel(sql_type = diesel::sql_types::Text)]
        level: String,
    }
    let isolation: Isolation = diesel::sql_query("SELECT @@SESSION.tx_isolation AS level")
        .get_result(&mut *first)
        .unwrap();
    assert_eq!(isolation.level, "READ-COMMITTED");
    let chats = |rows: Vec<queries::Waiting>| rows.iter().map(|w| w.chat).collect::<Vec<_>>();
    queries::write_transaction(&mut first, |first| {
        let mine = queries::waiting_after(first, QUEUE_START, 2, Read::Lock)?;
        assert_eq!(chats(mine), [100, 101]);
        // While the first holds its two, the second reads past them at once, rather than
        // waiting for them or finding nothing (as a scan that locked every row would).
        let theirs = queries::write_transaction(&mut second, |second| {
            queries::waiting_after(second, QUEUE_START, 2, Read::Lock)
        })?;
        assert_eq!(chats(theirs), [102, 103]);
        // A plain look sees every waiting chat, locked or not.
        let seen = queries::waiting_after(&mut second, QUEUE_START, 10, Read::Look)?;
        assert_eq!(chats(seen), [100, 101, 102, 103, 104, 105]);
        Ok(())
    })
    .unwrap();
}

#[test]
fn a_batch_writes_without_waiting_for_rows_another_matchmaker_holds() {
    if mariadb_or_skip("a batch's writes lock only their own rows").is_none() {
        return;
    }
    let db = TestDb::new();
    let pool = db.migrated_pool(2);
    waiting_chats(&pool, 4);
    let (mut first, mut second) = (db::get(&pool).unwrap(), db::get(&pool).unwrap());
    queries::write_transaction(&mut first, |first| {
        let held = queries::waiting_after(first, QUEUE_START, 2, Read::Lock)?;
        assert_eq!(held.len(), 2);
        // None of the rows the second batch writes is held: the third waiting chat goes, the
        // paired one goes by a member's id, the fourth is joined, a new one opens. A statement
        // that scanned a table would wait for the held rows, and fail (error 1205) after the
        // session's lock wait timeout.
        let writes = Writes {
            delete: vec![102],
            delete_of: vec![201],
            complete: vec![103],
            chats: vec![NewChat {
                id: 500,
                is_completed: false,
                queued: 50,
                visitor: 1,
                interests: "music\ngo".into(),
                lang: "ru".into(),
                fallback_at: 0,
            }],
            members: vec![
                Member {
                    rid: 501,
                    chat_id: 103,
                    visitor: 2,
                    node: NODE,
                },
                Member {
                    rid: 500,
                    chat_id: 500,
                    visitor: 1,
                    node: NODE,
                },
            ],
        };
        queries::write_transaction(&mut second, |second| writes.write(second))?;
        Ok(())
    })
    .unwrap();
    let rows = queries::chat_rows(&mut first).unwrap();
    let ids: Vec<(i64, bool, usize)> = rows
        .iter()
        .map(|c| (c.id, c.is_completed, c.members.len()))
        .collect();
    assert_eq!(
        ids,
        [
            (100, false, 1),
            (101, false, 1),
            (103, true, 2),
            (500, false, 1)
        ]
    );
}
