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
    match conn {
        DbConn::Sqlite(c) => AnsiTransactionManager::begin_transaction_sql(c, "BEGIN IMMEDIATE")?,
        #[cfg(feature = "mysql")]
        DbConn::Mysql(c) => AnsiTransactionManager::begin_transaction(c)?,
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

/// A visitor value no connection has (see `VisitorKey`): what an empty avoid list becomes, so
/// that the query keeps one shape.
const NOBODY: i64 = i64::MIN;

/// The oldest waiting chat that `rid` may join, skipping those whose member is in `avoid`;
/// locked against other processes on MySQL (`SKIP LOCKED`, so concurrent matchmakers each take
/// a different one).
/// Returns `(chat id, the rid waiting in it)`.
fn find_waiting_chat(
    conn: &mut DbConn,
    rid: i64,
    avoid: &[i64],
) -> QueryResult<Option<(i64, i64)>> {
    let query = chat::table
        .inner_join(chat_user::table)
        .filter(chat::is_completed.eq(false))
        .filter(chat::id.ne(rid))
        .filter(chat_user::visitor.ne_all(avoid))
        .order(chat::id)
        .select((chat::id, chat_user::rid));
    match conn {
        DbConn::Sqlite(_) => query.first::<(i64, i64)>(conn).optional(),
        #[cfg(feature = "mysql")]
        DbConn::Mysql(c) => query
            .for_update()
            .skip_locked()
            .first::<(i64, i64)>(c)
            .optional(),
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

/// Pairs `rid` (visitor `visitor`) with the longest-waiting visitor other than `avoid`, or makes
/// it wait. Call inside `write_transaction`. `rid` must not already be in a chat.
pub fn request(
    conn: &mut DbConn,
    rid: i64,
    visitor: i64,
    avoid: Option<i64>,
) -> QueryResult<Requested> {
    request_avoiding(conn, rid, visitor, avoid.as_slice())
}

/// `request`, skipping every visitor in `avoid` (the one just left, the visitor itself).
pub fn request_avoiding(
    conn: &mut DbConn,
    rid: i64,
    visitor: i64,
    avoid: &[i64],
) -> QueryResult<Requested> {
    let avoid = if avoid.is_empty() {
        &[NOBODY][..]
    } else {
        avoid
    };
    // One round trip finds the chat and who waits in it: on MySQL each statement is one, and
    // they bound how fast the matchmaker goes. (A waiting chat with nobody in it cannot exist:
    // the member rows go with the chat, by the foreign key's ON DELETE CASCADE.)
    if let Some((chat_id, partner)) = find_waiting_chat(conn, rid, avoid)? {
        diesel::insert_into(chat_user::table)
            .values((
                chat_user::rid.eq(rid),
                chat_user::chat_id.eq(chat_id),
                chat_user::visitor.eq(visitor),
            ))
            .execute(conn)?;
        diesel::update(chat::table.find(chat_id))
            .set(chat::is_completed.eq(true))
            .execute(conn)?;
        return Ok(Requested::Paired { partner });
    }
    // The connection id is unique, so it serves as the new chat's id.
    diesel::insert_into(chat::table)
        .values((chat::id.eq(rid), chat::is_completed.eq(false)))
        .execute(conn)?;
    diesel::insert_into(chat_user::table)
        .values((
            chat_user::rid.eq(rid),
            chat_user::chat_id.eq(rid),
            chat_user::visitor.eq(visitor),
        ))
        .execute(conn)?;
    Ok(Requested::Waiting)
}

/// Gives a visitor who waits because it avoided someone (or itself) another chance, with nobody
/// avoided:
/// if `rid` still waits alone and another chat waits, `rid` leaves its own chat and joins that
/// one. Returns `Waiting` when nothing changed (no other chat, or `rid` is no longer waiting).
pub fn rematch(conn: &mut DbConn, rid: i64, visitor: i64) -> QueryResult<Requested> {
    let still_waiting = chat::table
        .find(rid)
        .filter(chat::is_completed.eq(false))
        .select(chat::id)
        .first::<i64>(conn)
        .optional()?
        .is_some();
    if !still_waiting {
        return Ok(Requested::Waiting);
    }
    if find_waiting_chat(conn, rid, &[NOBODY])?.is_none() {
        return Ok(Requested::Waiting);
    }
    leave(conn, rid)?;
    request(conn, rid, visitor, None)
}

/// Removes `rid`'s chat with everyone in it (its partner's row too, by the foreign key's
/// ON DELETE CASCADE), in one statement. Returns how many chats it removed (0 or 1).
pub fn leave(conn: &mut DbConn, rid: i64) -> QueryResult<usize> {
    let mine = chat_user::table
        .filter(chat_user::rid.eq(rid))
        .select(chat_user::chat_id);
    diesel::delete(chat::table.filter(chat::id.eq_any(mine))).execute(conn)
}

/// Empties both chat tables; returns how many rows were removed.
pub fn clear_all(conn: &mut DbConn) -> QueryResult<usize> {
    write_transaction(conn, |conn| {
        let users = diesel::delete(chat_user::table).execute(conn)?;
        let chats = diesel::delete(chat::table).execute(conn)?;
        Ok(users + chats)
    })
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

/// Cheapest round trip that proves the database answers.
pub fn ping(conn: &mut DbConn) -> QueryResult<()> {
    diesel::select(diesel::dsl::sql::<diesel::sql_types::Integer>("1"))
        .execute(conn)
        .map(|_| ())
}
