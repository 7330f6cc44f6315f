//! How a batch is decided: in memory, in queue order, over the waiting chats read (on MySQL
//! locked) a page at a time as the requests need them, then written in a few multi-row
//! statements. The outcome is the one of applying the operations one by one
//! (`super::apply_one_by_one`); tests/api/batch.rs compares the two on random batches.

use std::collections::{BTreeMap, HashMap, HashSet};

use diesel::QueryResult;

use super::suits::{self, Wish};
use super::{Ask, Claimable, Decision, Op, Outcome};
use crate::chat::ids::ConnId;
use crate::db::queries::{self, Member, NewChat, Read, Waiting, QUEUE_START};
use crate::db::DbConn;

/// Most waiting chats read in one page.
const MAX_PAGE: usize = 512;

/// Where the waiting chats come from.
pub trait Queue {
    /// The waiting chats strictly after `after` in queue order, oldest first, at most `limit`.
    fn after(&mut self, after: (i64, i64), limit: usize) -> QueryResult<Vec<Waiting>>;
    /// Those of `chats` that still wait.
    fn among(&mut self, chats: &[i64]) -> QueryResult<Vec<Waiting>>;
    /// Whether a request may join `chat`, waiting (its opener's process is reachable).
    fn may_join(&self, chat: i64) -> bool {
        let _ = chat;
        true
    }
}

/// The queue as the database holds it, read inside the batch's transaction; in a cluster,
/// without the chats of processes that cannot be reached.
pub struct Stored<'a> {
    pub db: &'a mut DbConn,
    pub claimable: Option<&'a Claimable>,
}

impl Queue for Stored<'_> {
    fn after(&mut self, after: (i64, i64), limit: usize) -> QueryResult<Vec<Waiting>> {
        queries::waiting_after(self.db, after, limit, Read::Lock)
    }

    fn among(&mut self, chats: &[i64]) -> QueryResult<Vec<Waiting>> {
        queries::waiting_among(self.db, chats)
    }

    fn may_join(&self, chat: i64) -> bool {
        may_claim(self.claimable, chat)
    }
}

/// Whether the waiting chat `chat` (whose id is its opener's connection id, whose high half
/// is its process) may be joined.
pub fn may_claim(claimable: Option<&Claimable>, chat: i64) -> bool {
    claimable.is_none_or(|may| may(crate::cluster::wire::node_of(chat)))
}

/// The statements a batch comes to, applied in this order by `write`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Writes {
    /// Stored chats that go, with everyone in them.
    pub delete: Vec<i64>,
    /// Connections whose stored chat goes, though the batch never read it (a paired chat).
    pub delete_of: Vec<i64>,
    /// Stored waiting chats that someone joined.
    pub complete: Vec<i64>,
    pub chats: Vec<NewChat>,
    pub members: Vec<Member>,
}

impl Writes {
    /// Four statements at most (three on MySQL, where opening and completing chats is one),
    /// none when there is nothing to write.
    pub fn write(&self, db: &mut DbConn) -> QueryResult<()> {
        #[cfg(feature = "mysql")]
        if let DbConn::Mysql(c) = db {
            return self.write_mysql(c);
        }
        queries::delete_chats(db, &self.delete, &self.delete_of)?;
        queries::complete_chats(db, &self.complete)?;
        queries::insert_chats(db, &self.chats)?;
        queries::insert_members(db, &self.members)?;
        Ok(())
    }

    /// The same statements, each one round trip (see `db::mysql_batch`).
    #[cfg(feature = "mysql")]
    fn write_mysql(&self, c: &mut diesel::MysqlConnection) -> QueryResult<()> {
        use crate::db::mysql_batch;
        // A stored chat the batch read waited for its opener, whose id is the chat's: so every
        // chat to delete is named by a member, and one statement removes them all.
        let mut members = [&self.delete[..], &self.delete_of[..]].concat();
        if !members.is_empty() {
            members.sort_unstable();
            members.dedup();
            mysql_batch::delete_chats_of(c, &members)?;
        }
        if !self.complete.is_empty() || !self.chats.is_empty() {
            mysql_batch::upsert_chats(c, &self.complete, &self.chats)?;
        }
        if !self.members.is_empty() {
            mysql_batch::insert_members(c, &self.members)?;
        }
        Ok(())
    }
}

#[derive(Debug)]
pub struct Planned {
    pub decisions: Vec<Decision>,
    pub writes: Writes,
    /// The requests of this batch still waiting at its end, oldest first.
    pub waiting: Vec<Ask>,
    /// Queue places handed out to the chats it opened.
    pub tickets_used: i64,
}

/// Decides `batch` over `queue` for a matchmaker of `node` at `now` (microseconds since the
/// epoch: whose fallback time has come); the chats it opens take the queue places
/// `first_ticket`, `first_ticket + 1`, … in order.
pub fn plan(
    queue: &mut impl Queue,
    node: i64,
    first_ticket: i64,
    now: i64,
    batch: &[Op],
) -> QueryResult<Planned> {
    let wanted: usize = batch
        .iter()
        .map(|op| match op {
            Op::Request(ask) | Op::Rematch(ask) => 1 + ask.avoid.len(),
            Op::Leave(_) | Op::Barrier(_) => 0,
        })
        .sum();
    let mut planner = Planner {
        queue,
        node,
        now,
        next_ticket: first_ticket,
        page: wanted.clamp(1, MAX_PAGE),
        chats: HashMap::new(),
        waiting: BTreeMap::new(),
        member_of: HashMap::new(),
        read_to: QUEUE_START,
        exhausted: false,
        deleted: HashSet::new(),
        left_unread: HashSet::new(),
        asks: HashMap::new(),
    };
    let mut decisions = Vec::new();
    for op in batch {
        match op {
            Op::Request(ask) => {
                let outcome = planner.request(ask)?;
                decisions.push(Decision::Request {
                    conn: ask.id,
                    outcome,
                });
            }
            Op::Rematch(ask) => {
                if let Some(outcome) = planner.rematch(ask)? {
                    decisions.push(Decision::Request {
                        conn: ask.id,
                        outcome,
                    });
                }
            }
            Op::Leave(id) => planner.leave(id.rid()),
            Op::Barrier(token) => decisions.push(Decision::Flushed(*token)),
        }
    }
    Ok(planner.finish(decisions, first_ticket))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    /// In the database before the batch (and read by it, so waiting then).
    Stored,
    /// Opened by this batch.
    New,
}

#[derive(Debug)]
struct Chat {
    origin: Origin,
    queued: i64,
    completed: bool,
    /// `(rid, visitor, already stored)`.
    members: Vec<(i64, i64, bool)>,
    /// What its opener asks of a partner.
    wish: Wish,
}

struct Planner<'q, Q> {
    queue: &'q mut Q,
    node: i64,
    /// The batch's clock, for fallback times.
    now: i64,
    next_ticket: i64,
    /// How many waiting chats the next read asks for.
    page: usize,
    /// Every live chat the batch knows of, by id.
    chats: HashMap<i64, Chat>,
    /// The known chats still waiting, in queue order.
    waiting: BTreeMap<(i64, i64), i64>,
    /// The chat of each known connection.
    member_of: HashMap<i64, i64>,
    /// Every stored waiting chat up to here (in queue order) has been read...
    read_to: (i64, i64),
    /// ...and past it too.
    exhausted: bool,
    /// Stored chats the batch removed.
    deleted: HashSet<i64>,
    /// Connections that left while their chat was unread.
    left_unread: HashSet<i64>,
    /// The request of each chat the batch opened.
    asks: HashMap<i64, Ask>,
}

impl<Q: Queue> Planner<'_, Q> {
    fn learn(&mut self, rows: Vec<Waiting>) {
        for w in rows {
            if self.chats.contains_key(&w.chat)
                || self.deleted.contains(&w.chat)
                || self.left_unread.contains(&w.rid())
            {
                continue; // known already, or gone in this batch
            }
            self.waiting.insert(w.key(), w.chat);
            self.member_of.insert(w.rid(), w.chat);
            let wish = Wish::of(&w);
            self.chats.insert(
                w.chat,
                Chat {
                    origin: Origin::Stored,
                    queued: w.queued,
                    completed: false,
                    members: vec![(w.rid(), w.visitor, true)],
                    wish,
                },
            );
        }
    }

    fn read_more(&mut self) -> QueryResult<()> {
        let rows = self.queue.after(self.read_to, self.page)?;
        self.exhausted = rows.len() < self.page;
        if let Some(last) = rows.last() {
            self.read_to = last.key();
        }
        self.page = (self.page * 2).min(MAX_PAGE);
        self.learn(rows);
        Ok(())
    }

    /// The waiting chat `rid` (who wants `wish`) joins, by the rule of `suits`: the oldest it
    /// may meet (not its own, nobody in `avoid` in it) that suits it, or the lone one.
    fn first(&mut self, rid: i64, avoid: &[i64], wish: &Wish) -> QueryResult<Option<i64>> {
        loop {
            let mut count = 0;
            let mut lone = None;
            for (&key, &chat) in &self.waiting {
                if !self.exhausted && key > self.read_to {
                    break; // stored chats older than this one may be unread
                }
                let Some(c) = self.chats.get(&chat) else {
                    continue;
                };
                if chat == rid || avoid.contains(&c.members[0].1) || !self.queue.may_join(chat) {
                    continue;
                }
                if suits::suit(wish, &c.wish, self.now) {
                    return Ok(Some(chat));
                }
                count += 1;
                lone.get_or_insert((chat, &c.wish));
            }
            if self.exhausted {
                let only = lone.map(|(_, w)| w);
                let takes = suits::takes_the_lone(wish, count, only, self.now);
                return Ok(lone.filter(|_| takes).map(|(chat, _)| chat));
            }
            self.read_more()?;
        }
    }

    /// `rid` (who wants `wish`) joins the waiting chat `chat`; returns who waited in it and the
    /// interests they share.
    fn join(&mut self, chat: i64, rid: i64, visitor: i64, wish: &Wish) -> Option<Outcome> {
        let c = self.chats.get_mut(&chat)?;
        self.waiting.remove(&(c.queued, chat));
        c.completed = true;
        let partner = c.members[0].0;
        c.members.push((rid, visitor, false));
        let common = wish.common(&c.wish);
        self.member_of.insert(rid, chat);
        Some(Outcome::Paired {
            partner: ConnId::from_rid(partner),
            common,
        })
    }

    fn request(&mut self, ask: &Ask) -> QueryResult<Outcome> {
        let (rid, visitor) = (ask.id.rid(), ask.visitor.as_i64());
        if let Some(chat) = self.first(rid, &ask.avoided(), &ask.wish)? {
            if let Some(paired) = self.join(chat, rid, visitor, &ask.wish) {
                return Ok(paired);
            }
        }
        let queued = self.next_ticket;
        self.next_ticket += 1;
        self.waiting.insert((queued, rid), rid);
        self.member_of.insert(rid, rid);
        self.asks.insert(rid, ask.clone());
        self.chats.insert(
            rid,
            Chat {
                origin: Origin::New,
                queued,
                completed: false,
                members: vec![(rid, visitor, false)],
                wish: ask.wish.clone(),
            },
        );
        Ok(Outcome::Waiting)
    }

    /// Moves `ask`, waiting alone in its own chat, to the chat it would join now (`first`).
    fn rematch(&mut self, ask: &Ask) -> QueryResult<Option<Outcome>> {
        let (rid, visitor) = (ask.id.rid(), ask.visitor.as_i64());
        if !self.member_of.contains_key(&rid) && !self.exhausted {
            let own = self.queue.among(&[rid])?;
            self.learn(own);
        }
        let waits_alone = self.member_of.get(&rid) == Some(&rid)
            && self.chats.get(&rid).is_some_and(|c| !c.completed);
        if !waits_alone {
            return Ok(None);
        }
        let avoid = ask.avoided();
        let Some(chat) = self.first(rid, &avoid, &ask.wish)? else {
            return Ok(None);
        };
        self.leave(rid);
        Ok(self.join(chat, rid, visitor, &ask.wish))
    }

    /// `rid`'s chat goes, with everyone in it.
    fn leave(&mut self, rid: i64) {
        let Some(chat_id) = self.member_of.remove(&rid) else {
            self.left_unread.insert(rid);
            return;
        };
        let Some(chat) = self.chats.remove(&chat_id) else {
            return;
        };
        for (member, _, _) in &chat.members {
            self.member_of.remove(member);
        }
        if !chat.completed {
            self.waiting.remove(&(chat.queued, chat_id));
        }
        if chat.origin == Origin::Stored {
            self.deleted.insert(chat_id);
        }
        self.asks.remove(&chat_id);
    }

    fn finish(self, decisions: Vec<Decision>, first_ticket: i64) -> Planned {
        let mut writes = Writes {
            delete: self.deleted.into_iter().collect(),
            delete_of: self.left_unread.into_iter().collect(),
            ..Writes::default()
        };
        let mut waiting = Vec::new();
        for (&id, chat) in &self.chats {
            match chat.origin {
                Origin::Stored if chat.completed => writes.complete.push(id),
                Origin::Stored => {}
                Origin::New => {
                    let (interests, lang, fallback_at) = chat.wish.columns();
                    writes.chats.push(NewChat {
                        id,
                        is_completed: chat.completed,
                        queued: chat.queued,
                        visitor: chat.members[0].1,
                        interests,
                        lang,
                        fallback_at,
                    });
                }
            }
            let fresh = chat.members.iter().filter(|(_, _, stored)| !stored);
            writes
                .members
                .extend(fresh.map(|&(rid, visitor, _)| Member {
                    rid,
                    chat_id: id,
                    visitor,
                    node: self.node,
                }));
            if !chat.completed {
                if let Some(ask) = self.asks.get(&id) {
                    waiting.push((chat.queued, ask.clone()));
                }
            }
        }
        // One order for every batch: fewer lock waits between matchmakers, and a plan that
        // reads the same whatever the hash maps did.
        writes.delete.sort_unstable();
        writes.delete_of.sort_unstable();
        writes.complete.sort_unstable();
        writes.chats.sort_unstable_by_key(|c| c.id);
        writes.members.sort_unstable_by_key(|m| m.rid);
        waiting.sort_unstable_by_key(|(queued, _)| *queued);
        Planned {
            decisions,
            writes,
            waiting: waiting.into_iter().map(|(_, ask)| ask).collect(),
            tickets_used: self.next_ticket - first_ticket,
        }
    }
}
