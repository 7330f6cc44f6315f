//! Plain query functions over `DbConn`, one set for both backends. They return
//! `diesel::QueryResult`; callers add context. All of them block.

use diesel::connection::{AnsiTransactionManager, TransactionManager};
use diesel::prelude::*;

use super::schema::{chat, chat_user};
use super::DbConn;

/// Runs `f` in a transaction that takes the write lock up front. On SQLite that is
/// `BEGIN IMMEDIATE`: a deferred transaction that reads, then writes, fails with SQLITE_BUSY on
/// the lock upgrade when another writer got there first, whatever the busy timeout.
pub fn write_transaction<T>(
    conn: &mut DbConn,
    f: impl FnOnce(&mut DbConn) -> QueryResult<T>,
) -> QueryResult<T> {
    #[cfg(feature = "mysql")]
    if let DbConn::Mysql(_) = conn {
        return mysql_transaction(conn, None, f);
    }
    #[allow(irrefutable_let_patterns)] // refutable once the mysql feature adds a variant
    if let DbConn::Sqlite(c) = conn {
        AnsiTransactionManager::begin_transaction_sql(c, "BEGIN IMMEDIATE")?;
    }
    match f(conn) {
        Ok(value) => {
            <DbConn as Connection>::TransactionManager::commit_transaction(conn)?;
            Ok(value)
        }
        Err(e) => {
            // The original error is the one worth reporting; a failed rollback leaves the
            // connection broken, which r2d2 notices and replaces.
            let _ = <DbConn as Connection>::TransactionManager::rollback_transaction(conn);
            Err(e)
        }
    }
}

/// `write_transaction` for a connection that runs one transaction after another (the
/// matchmaker's). On MySQL each commit is `COMMIT AND CHAIN`, which opens the next transaction
/// at once, so that the next one costs no `BEGIN` round trip; `open` says whether one is open
/// (false for a fresh connection, and again after a failure, which rolls back).
pub fn chained_transaction<T>(
    conn: &mut DbConn,
    open: &mut bool,
    f: impl FnOnce(&mut DbConn) -> QueryResult<T>,
) -> QueryResult<T> {
    #[cfg(feature = "mysql")]
    if let DbConn::Mysql(_) = conn {
        return mysql_transaction(conn, Some(open), f);
    }
    let _ = open;
    write_transaction(conn, f)
}

/// Ends the (empty) transaction a `chained_transaction` left open.
pub fn end_chain(conn: &mut DbConn) -> QueryResult<()> {
    #[cfg(feature = "mysql")]
    if let DbConn::Mysql(c) = conn {
        return super::mysql_batch::commit(c);
    }
    let _ = conn;
    Ok(())
}

/// `write_transaction` on MySQL, with `BEGIN` and `COMMIT` as prepared statements (one round
/// trip each; diesel's transaction manager spends three, see `mysql_batch`), chained when
/// `open` is given (see `chained_transaction`). Nothing inside may open a diesel transaction
/// of its own.
#[cfg(feature = "mysql")]
fn mysql_transaction<T>(
    conn: &mut DbConn,
    open: Option<&mut bool>,
    f: impl FnOnce(&mut DbConn) -> QueryResult<T>,
) -> QueryResult<T> {
    use super::mysql_batch;
    let chained = open.as_deref().copied().unwrap_or(false);
    if let DbConn::Mysql(c) = conn {
        if !chained {
            mysql_batch::begin(c)?;
        }
    }
    let result = f(conn);
    let DbConn::Mysql(c) = conn else {
        return result;
    };
    match (result, open) {
        (Ok(value), Some(open)) => {
            *open = false; // until the chained commit has succeeded
            mysql_batch::commit_and_chain(c)?;
            *open = true;
            Ok(value)
        }
        (Ok(value), None) => mysql_batch::commit(c).map(|()| value),
        (Err(e), open) => {
            // As above: the first error is the one to report.
            let _ = mysql_batch::rollback(c);
            if let Some(open) = open {
                *open = false;
            }
            Err(e)
        }
    }
}

/// A waiting chat as the matchmaker sees it: where it stands in the queue and who waits in it.
/// The one waiting is the connection that opened it, whose id is the chat's id, and its
/// visitor is kept on the chat row too: the queue is read from `chat` alone. So is what it
/// asks of a partner (see `chat::wants`): `interests` (tags joined by newlines), `lang` ('' for
/// none) and when it takes anyone (`fallback_at`).
#[derive(Debug, Clone, PartialEq, Eq, Queryable)]
pub struct Waiting {
    pub chat: i64,
    pub queued: i64,
    pub visitor: i64,
    pub interests: String,
    pub lang: String,
    pub fallback_at: i64,
}

/// The columns of `Waiting`, in its order.
type WaitingColumns = (
    chat::id,
    chat::queued,
    chat::visitor,
    chat::interests,
    chat::lang,
    chat::fallback_at,
);
const WAITING_COLUMNS: WaitingColumns = (
    chat::id,
    chat::queued,
    chat::visitor,
    chat::interests,
    chat::lang,
    chat::fallback_at,
);

impl Waiting {
    /// The connection waiting in it.
    pub fn rid(&self) -> i64 {
        self.chat
    }

    /// Its place in the queue: oldest first, the chat id breaking ties.
    pub fn key(&self) -> (i64, i64) {
        (self.queued, self.chat)
    }
}

/// The first place in the queue, before every chat.
pub const QUEUE_START: (i64, i64) = (i64::MIN, i64::MIN);

/// Whether a read of the queue locks the rows it returns (on MySQL: `FOR UPDATE SKIP LOCKED`,
/// so that concurrent matchmakers each take different chats) or only looks (a plain read of
/// what is committed). SQLite has one writer at a time and locks nothing per row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    Lock,
    Look,
}

/// The waiting chats strictly after `after` in queue order, oldest first, at most `limit`.
///
/// On MySQL the scan reads the index `chat_waiting (is_completed, queued, id)` in order and stops
/// after `limit` rows, so `SKIP LOCKED` locks only the rows it returns (tests/api/batch.rs shows
/// a second reader getting the next chats while the first holds its own). `EXPLAIN` on MariaDB
/// 10.11: `chat: type=range, key=chat_waiting, Extra=Using where`, no filesort. It reads `chat`
/// alone: joined with `chat_user`, the prepared statement (not the same query sent as text) is
/// planned as a sort over a block nested-loop join, which locks every waiting row. One statement
/// shape whatever the page, so the prepared statement is reused.
pub fn waiting_after(
    conn: &mut DbConn,
    after: (i64, i64),
    limit: usize,
    read: Read,
) -> QueryResult<Vec<Waiting>> {
    let (queued, id) = after;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let query = chat::table
        .filter(chat::is_completed.eq(false))
        .filter(chat::queued.ge(queued))
        .filter(chat::queued.gt(queued).or(chat::id.gt(id)))
        .order((chat::queued, chat::id))
        .limit(limit)
        .select(WAITING_COLUMNS);
    match (conn, read) {
        #[cfg(feature = "mysql")]
        (DbConn::Mysql(c), Read::Lock) => query.for_update().skip_locked().load(c),
        (conn, _) => query.load(conn),
    }
}

/// The chats among `chats` that still wait, locked as `waiting_after` locks them.
pub fn waiting_among(conn: &mut DbConn, chats: &[i64]) -> QueryResult<Vec<Waiting>> {
    let query = chat::table
        .filter(chat::is_completed.eq(false))
        .filter(chat::id.eq_any(chats))
        .select(WAITING_COLUMNS);
    match conn {
        #[cfg(feature = "mysql")]
        DbConn::Mysql(c) => query.for_update().skip_locked().load(c),
        conn => query.load(conn),
    }
}

/// A chat the matchmaker opens.
#[derive(Debug, Clone, PartialEq, Eq, Insertable)]
#[diesel(table_name = chat)]
pub struct NewChat {
    pub id: i64,
    pub is_completed: bool,
    pub queued: i64,
    /// The visitor of the connection that opens it (whose id is `id`), and what it asks of a
    /// partner (as `Waiting` keeps it).
    pub visitor: i64,
    pub interests: String,
    pub lang: String,
    pub fallback_at: i64,
}

/// A connection's place in a chat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Insertable)]
#[diesel(table_name = chat_user)]
pub struct Member {
    pub rid: i64,
    pub chat_id: i64,
    pub visitor: i64,
    pub node: i64,
}

/// Removes the chats `chats`, and the chats of the connections `members`, with everyone in
/// them (by the foreign key's ON DELETE CASCADE). The members' chats are looked up first: MariaDB
/// 10.11 runs `DELETE … WHERE id IN (SELECT …)` as a scan of every chat, locking each row it
/// passes, where a list of ids is a primary-key lookup that locks only those rows.
pub fn delete_chats(conn: &mut DbConn, chats: &[i64], members: &[i64]) -> QueryResult<usize> {
    let mut ids = chats.to_vec();
    if !members.is_empty() {
        let theirs: Vec<i64> = chat_user::table
            .filter(chat_user::rid.eq_any(members))
            .select(chat_user::chat_id)
            .load(conn)?;
        ids.extend(theirs);
    }
    if ids.is_empty() {
        return Ok(0);
    }
    ids.sort_unstable();
    ids.dedup();
    diesel::delete(chat::table.filter(chat::id.eq_any(ids))).execute(conn)
}

/// Marks waiting chats complete (someone joined them).
pub fn complete_chats(conn: &mut DbConn, chats: &[i64]) -> QueryResult<usize> {
    if chats.is_empty() {
        return Ok(0);
    }
    diesel::update(chat::table.filter(chat::id.eq_any(chats)))
        .set(chat::is_completed.eq(true))
        .execute(conn)
}

/// Opens chats, in one statement.
pub fn insert_chats(conn: &mut DbConn, chats: &[NewChat]) -> QueryResult<usize> {
    if chats.is_empty() {
        return Ok(0);
    }
    // Multi-row inserts do not compile on the MultiConnection enum: one arm per backend.
    let insert = diesel::insert_into(chat::table).values(chats);
    match conn {
        DbConn::Sqlite(c) => insert.execute(c),
        #[cfg(feature = "mysql")]
        DbConn::Mysql(c) => insert.execute(c),
    }
}

/// Puts connections into chats, in one statement.
pub fn insert_members(conn: &mut DbConn, members: &[Member]) -> QueryResult<usize> {
    if members.is_empty() {
        return Ok(0);
    }
    let insert = diesel::insert_into(chat_user::table).values(members);
    match conn {
        DbConn::Sqlite(c) => insert.execute(c),
        #[cfg(feature = "mysql")]
        DbConn::Mysql(c) => insert.execute(c),
    }
}

/// What a request came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requested {
    /// Joined the waiting chat of `partner`: the chat is now complete.
    Paired { partner: i64 },
    /// No one was waiting: `rid` now waits in a chat of its own.
    Waiting,
}

// One operation at a time, a few statements each: what a batch must come to (the reference the
// batch is tested against, tests/api/batch.rs), and a way for tests to lay rows down.

/// The oldest waiting chat that `rid` may join: not its own, nobody in `avoid` in it.
fn first_waiting(conn: &mut DbConn, rid: i64, avoid: &[i64]) -> QueryResult<Option<Waiting>> {
    let mut after = QUEUE_START;
    loop {
        let page = waiting_after(conn, after, 64, Read::Lock)?;
        if let Some(found) = page
            .iter()
            .find(|w| w.chat != rid && !avoid.contains(&w.visitor))
        {
            return Ok(Some(found.clone()));
        }
        match page.last() {
            Some(last) if page.len() == 64 => after = last.key(),
            _ => return Ok(None),
        }
    }
}

/// Pairs `member` with the longest-waiting visitor not in `avoid`, or makes it wait in a chat
/// of its own, placed `queued` in the queue. Call inside `write_transaction`; `member.rid` must
/// not already be in a chat (its `chat_id` is ignored).
pub fn request_one(
    conn: &mut DbConn,
    member: Member,
    queued: i64,
    avoid: &[i64],
) -> QueryResult<Requested> {
    if let Some(found) = first_waiting(conn, member.rid, avoid)? {
        return join(conn, member, found.chat).map(|()| Requested::Paired {
            partner: found.rid(),
        });
    }
    // The connection id is unique, so it serves as the new chat's id.
    open(
        conn,
        member,
        NewChat {
            id: member.rid,
            is_completed: false,
            queued,
            visitor: member.visitor,
            interests: String::new(),
            lang: String::new(),
            fallback_at: 0,
        },
    )?;
    Ok(Requested::Waiting)
}

/// `member` joins the waiting chat `chat`, completing it.
pub fn join(conn: &mut DbConn, member: Member, chat: i64) -> QueryResult<()> {
    insert_members(
        conn,
        &[Member {
            chat_id: chat,
            ..member
        }],
    )?;
    complete_chats(conn, &[chat])?;
    Ok(())
}

/// `member` waits in `chat`, a chat of its own (its id is `member.rid`).
pub fn open(conn: &mut DbConn, member: Member, chat: NewChat) -> QueryResult<()> {
    let id = chat.id;
    insert_chats(conn, &[chat])?;
    insert_members(
        conn,
        &[Member {
            chat_id: id,
            ..member
        }],
    )?;
    Ok(())
}

/// Every waiting chat, oldest first, read (and on MySQL locked) a page at a time.
pub fn all_waiting(conn: &mut DbConn) -> QueryResult<Vec<Waiting>> {
    const PAGE: usize = 64;
    let mut all = Vec::new();
    let mut after = QUEUE_START;
    loop {
        let page = waiting_after(conn, after, PAGE, Read::Lock)?;
        let full = page.len() == PAGE;
        if let Some(last) = page.last() {
            after = last.key();
        }
        all.extend(page);
        if !full {
            return Ok(all);
        }
    }
}

/// `request_one` for a connection of no process (node 0), placed first in the queue: the
/// waiting (or paired) rows of a process that crashed, as tests lay them down.
pub fn request(
    conn: &mut DbConn,
    rid: i64,
    visitor: i64,
    avoid: Option<i64>,
) -> QueryResult<Requested> {
    let member = Member {
        rid,
        chat_id: rid,
        visitor,
        node: 0,
    };
    request_one(conn, member, 0, avoid.as_slice())
}

/// Removes `rid`'s chat with everyone in it (its partner's row too). Returns how many chats it
/// removed (0 or 1).
pub fn leave(conn: &mut DbConn, rid: i64) -> QueryResult<usize> {
    delete_chats(conn, &[], &[rid])
}

/// Empties both chat tables; returns how many rows were removed.
pub fn clear_all(conn: &mut DbConn) -> QueryResult<usize> {
    write_transaction(conn, |conn| {
        let users = diesel::delete(chat_user::table).execute(conn)?;
        let chats = diesel::delete(chat::table).execute(conn)?;
        Ok(users + chats)
    })
}

/// Removes every chat with a member of one of `nodes` (dead processes), with everyone in it;
/// returns how many rows were removed. Chats whose other member is alive go too: that member's
/// process ends its side (`partner lost`).
pub fn sweep_nodes(conn: &mut DbConn, nodes: &[i64]) -> QueryResult<usize> {
    write_transaction(conn, |conn| {
        let chats: Vec<i64> = chat_user::table
            .filter(chat_user::node.eq_any(nodes))
            .select(chat_user::chat_id)
            .load(conn)?;
        remove_chats(conn, chats)
    })
}

/// Removes every chat with a member of a process not in `alive`, with everyone in it (start-up
/// with other processes running); returns how many rows were removed.
pub fn clear_all_but(conn: &mut DbConn, alive: &[i64]) -> QueryResult<usize> {
    write_transaction(conn, |conn| {
        let chats: Vec<i64> = chat_user::table
            .filter(chat_user::node.ne_all(alive))
            .select(chat_user::chat_id)
            .load(conn)?;
        let removed = remove_chats(conn, chats)?;
        // A chat without members (its opener's row went some other way) waits for no one.
        let orphans = diesel::delete(chat::table.filter(diesel::dsl::not(diesel::dsl::exists(
            chat_user::table.filter(chat_user::chat_id.eq(chat::id)),
        ))))
        .execute(conn)?;
        Ok(removed + orphans)
    })
}

fn remove_chats(conn: &mut DbConn, mut chats: Vec<i64>) -> QueryResult<usize> {
    chats.sort_unstable();
    chats.dedup();
    let mut removed = 0;
    for some in chats.chunks(1_000) {
        removed += diesel::delete(chat_user::table.filter(chat_user::chat_id.eq_any(some)))
            .execute(conn)?;
        removed += diesel::delete(chat::table.filter(chat::id.eq_any(some))).execute(conn)?;
    }
    Ok(removed)
}

/// Row counts `(chats, chat_users)`, for health and tests.
pub fn counts(conn: &mut DbConn) -> QueryResult<(i64, i64)> {
    let chats = chat::table.count().get_result(conn)?;
    let users = chat_user::table.count().get_result(conn)?;
    Ok((chats, users))
}

/// A chat as stored: `(chat id, is_completed, member rids)`, for tests and diagnostics.
pub fn chats(conn: &mut DbConn) -> QueryResult<Vec<(i64, bool, Vec<i64>)>> {
    let rows: Vec<(i64, bool)> = chat::table
        .order(chat::id)
        .select((chat::id, chat::is_completed))
        .load(conn)?;
    let members: Vec<(i64, i64)> = chat_user::table
        .order(chat_user::rid)
        .select((chat_user::chat_id, chat_user::rid))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(id, done)| {
            let rids = members
                .iter()
                .filter(|(c, _)| *c == id)
                .map(|(_, r)| *r)
                .collect();
            (id, done, rids)
        })
        .collect())
}

/// A chat as stored, in full: for tests that compare two ways of reaching the same rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatRow {
    pub id: i64,
    pub is_completed: bool,
    pub queued: i64,
    pub visitor: i64,
    /// What its opener asks of a partner: `(interests, lang, fallback_at)` as `Waiting` has them.
    pub wish: (String, String, i64),
    /// `(rid, visitor, node)` of each member, by rid.
    pub members: Vec<(i64, i64, i64)>,
}

/// Every chat with its members, by chat id.
pub fn chat_rows(conn: &mut DbConn) -> QueryResult<Vec<ChatRow>> {
    type Row = (i64, bool, i64, i64, String, String, i64);
    let chats: Vec<Row> = chat::table
        .order(chat::id)
        .select((
            chat::id,
            chat::is_completed,
            chat::queued,
            chat::visitor,
            chat::interests,
            chat::lang,
            chat::fallback_at,
        ))
        .load(conn)?;
    let members: Vec<(i64, i64, i64, i64)> = chat_user::table
        .order(chat_user::rid)
        .select((
            chat_user::chat_id,
            chat_user::rid,
            chat_user::visitor,
            chat_user::node,
        ))
        .load(conn)?;
    Ok(chats
        .into_iter()
        .map(
            |(id, is_completed, queued, visitor, interests, lang, fallback_at)| ChatRow {
                id,
                is_completed,
                queued,
                visitor,
                wish: (interests, lang, fallback_at),
                members: members
                    .iter()
                    .filter(|m| m.0 == id)
                    .map(|&(_, rid, visitor, node)| (rid, visitor, node))
                    .collect(),
            },
        )
        .collect())
}

/// Cheapest round trip that proves the database answers.
pub fn ping(conn: &mut DbConn) -> QueryResult<()> {
    diesel::select(diesel::dsl::sql::<diesel::sql_types::Integer>("1"))
        .execute(conn)
        .map(|_| ())
}
