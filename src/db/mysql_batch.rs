//! A batch's statements on MySQL, each one round trip. On MySQL every statement is a network
//! round trip, and they bound how fast the matchmaker goes; diesel spends more than one on
//! some: a list (`IN (…)`, a multi-row `VALUES`) makes a statement of new text, which diesel
//! prepares anew each time (two round trips), and `BEGIN`/`COMMIT` go through `batch_execute`,
//! which switches multi-statement mode on and off around them (three). So here every
//! statement has fixed text, prepared once per connection and then reused from diesel's
//! statement cache: a list travels as one JSON bind, unpacked by `JSON_TABLE` (MariaDB 10.6,
//! MySQL 8), which drives each statement through the primary key (`STRAIGHT_JOIN` from the
//! list: prepared, MariaDB 10.11 otherwise plans some of them as scans, which wait for rows
//! other matchmakers hold; tests/api/batch.rs holds rows and writes a batch past them). The
//! values are integers, but for a new chat's interests and language.

use std::marker::PhantomData;

use diesel::mysql::{Mysql, MysqlConnection};
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::{BigInt, Text};
use diesel::{QueryResult, RunQueryDsl};

use super::queries::{Member, NewChat};

/// The text of one statement, before and after its one JSON bind (if it has one).
trait Statement: 'static {
    const BEFORE: &'static str;
    const AFTER: &'static str;
    const BINDS: bool = true;
}

/// A statement of `K`'s text with `json` bound, cached by its type.
struct Fixed<K> {
    json: String,
    kind: PhantomData<K>,
}

fn fixed<K: Statement>(json: String) -> Fixed<K> {
    Fixed {
        json,
        kind: PhantomData,
    }
}

impl<K: Statement> QueryId for Fixed<K> {
    type QueryId = K;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<K: Statement> QueryFragment<Mysql> for Fixed<K> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Mysql>) -> QueryResult<()> {
        out.push_sql(K::BEFORE);
        if K::BINDS {
            out.push_bind_param::<Text, _>(&self.json)?;
        }
        out.push_sql(K::AFTER);
        Ok(())
    }
}

impl<K: Statement> Query for Fixed<K> {
    type SqlType = BigInt;
}

impl<K: Statement> RunQueryDsl<MysqlConnection> for Fixed<K> {}

/// A statement without a bind: the transaction's own.
macro_rules! bare_statement {
    ($name:ident, $sql:literal) => {
        struct $name;
        impl Statement for $name {
            const BEFORE: &'static str = $sql;
            const AFTER: &'static str = "";
            const BINDS: bool = false;
        }
    };
}

bare_statement!(Begin, "BEGIN");
bare_statement!(Commit, "COMMIT");
bare_statement!(CommitAndChain, "COMMIT AND CHAIN");
bare_statement!(Rollback, "ROLLBACK");

/// Removes the chats of the connections in the list, with everyone in them (the members by
/// the foreign key's ON DELETE CASCADE).
struct DeleteOf;
impl Statement for DeleteOf {
    const BEFORE: &'static str = "DELETE chat FROM JSON_TABLE(";
    const AFTER: &'static str = ", '$[*]' COLUMNS (id BIGINT PATH '$')) AS j \
        STRAIGHT_JOIN chat_user ON chat_user.rid = j.id \
        STRAIGHT_JOIN chat ON chat.id = chat_user.chat_id";
}

/// Opens the new chats and completes the joined ones, in one statement (with what each new
/// chat's opener asks of a partner; the values are strings there): a joined chat's row is
/// there already, and the duplicate key turns its insert into `is_completed = TRUE`. (An
/// `UPDATE` joined with `JSON_TABLE` waited for rows other transactions held, when prepared.)
struct UpsertChats;
impl Statement for UpsertChats {
    const BEFORE: &'static str = "INSERT INTO chat \
        (id, is_completed, queued, visitor, interests, lang, fallback_at) \
        SELECT id, is_completed, queued, visitor, interests, lang, fallback_at FROM JSON_TABLE(";
    const AFTER: &'static str = ", '$[*]' COLUMNS (id BIGINT PATH '$[0]', \
        is_completed BOOLEAN PATH '$[1]', queued BIGINT PATH '$[2]', \
        visitor BIGINT PATH '$[3]', \
        interests VARCHAR(200) CHARACTER SET utf8mb4 PATH '$[4]', \
        lang VARCHAR(8) CHARACTER SET utf8mb4 PATH '$[5]', \
        fallback_at BIGINT PATH '$[6]')) AS j ON DUPLICATE KEY UPDATE is_completed = TRUE";
}

struct InsertMembers;
impl Statement for InsertMembers {
    const BEFORE: &'static str = "INSERT INTO chat_user (rid, chat_id, visitor, node) \
        SELECT rid, chat_id, visitor, node FROM JSON_TABLE(";
    const AFTER: &'static str = ", '$[*]' COLUMNS (rid BIGINT PATH '$[0]', \
        chat_id BIGINT PATH '$[1]', visitor BIGINT PATH '$[2]', node BIGINT PATH '$[3]')) AS j";
}

/// The list as the one JSON value its statement binds.
fn json(list: &impl serde::Serialize) -> QueryResult<String> {
    serde_json::to_string(list).map_err(|e| diesel::result::Error::SerializationError(e.into()))
}

/// Runs a statement without a bind.
fn bare<K: Statement>(c: &mut MysqlConnection) -> QueryResult<()> {
    fixed::<K>(String::new()).execute(c).map(drop)
}

pub fn begin(c: &mut MysqlConnection) -> QueryResult<()> {
    bare::<Begin>(c)
}

pub fn commit(c: &mut MysqlConnection) -> QueryResult<()> {
    bare::<Commit>(c)
}

pub fn commit_and_chain(c: &mut MysqlConnection) -> QueryResult<()> {
    bare::<CommitAndChain>(c)
}

pub fn rollback(c: &mut MysqlConnection) -> QueryResult<()> {
    bare::<Rollback>(c)
}

/// Removes the chats the connections `rids` are in, with everyone in them.
pub fn delete_chats_of(c: &mut MysqlConnection, rids: &[i64]) -> QueryResult<usize> {
    fixed::<DeleteOf>(json(&rids)?).execute(c)
}

/// Completes the stored waiting chats `complete` and opens `chats`. Fails, so that the
/// transaction rolls back, when a chat to open was there already or one to complete was not:
/// MySQL counts an inserted row as 1 and an updated one as 2.
pub fn upsert_chats(
    c: &mut MysqlConnection,
    complete: &[i64],
    chats: &[NewChat],
) -> QueryResult<()> {
    type Row<'a> = (i64, i64, i64, i64, &'a str, &'a str, i64);
    let rows: Vec<Row<'_>> = complete
        .iter()
        .map(|&id| (id, 1, 0, 0, "", "", 0))
        .chain(chats.iter().map(|n| {
            (
                n.id,
                i64::from(n.is_completed),
                n.queued,
                n.visitor,
                n.interests.as_str(),
                n.lang.as_str(),
                n.fallback_at,
            )
        }))
        .collect();
    let affected = fixed::<UpsertChats>(json(&rows)?).execute(c)?;
    let expected = 2 * complete.len() + chats.len();
    if affected == expected {
        Ok(())
    } else {
        Err(diesel::result::Error::QueryBuilderError(
            format!("opening and completing chats touched {affected} rows, not {expected}").into(),
        ))
    }
}

pub fn insert_members(c: &mut MysqlConnection, members: &[Member]) -> QueryResult<usize> {
    let rows: Vec<[i64; 4]> = members
        .iter()
        .map(|m| [m.rid, m.chat_id, m.visitor, m.node])
        .collect();
    fixed::<InsertMembers>(json(&rows)?).execute(c)
}
