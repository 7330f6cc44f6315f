//! The admin tables (`admin_account`, `admin_audit`, `admin_login_failure`): plain queries for
//! both backends, returning `diesel::QueryResult`. The rules (hashing, how many failures are
//! too many) are `crate::admin`'s. All of these block.

use diesel::prelude::*;

use super::schema::{admin_account, admin_audit, admin_login_failure};
use super::DbConn;

/// An `admin_account` row.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = admin_account)]
pub struct AccountRow {
    pub id: i64,
    pub name: String,
    /// argon2id, PHC string format.
    pub password_hash: String,
    pub session_epoch: i64,
    pub created_ms: i64,
}

/// An `admin_audit` row.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = admin_audit)]
pub struct AuditRow {
    pub id: i64,
    pub at_ms: i64,
    pub admin: String,
    pub action: String,
    pub detail: String,
}

/// Adds an account; false when the name is taken (nothing changes then).
pub fn insert_account(conn: &mut DbConn, row: &AccountRow) -> QueryResult<bool> {
    let taken = account_by_name(conn, &row.name)?.is_some();
    if taken {
        return Ok(false);
    }
    diesel::insert_into(admin_account::table)
        .values(row)
        .execute(conn)?;
    Ok(true)
}

/// Removes an account; false when there was none of that name.
pub fn delete_account(conn: &mut DbConn, name: &str) -> QueryResult<bool> {
    diesel::delete(admin_account::table.filter(admin_account::name.eq(name)))
        .execute(conn)
        .map(|n| n > 0)
}

/// Every account, by name.
pub fn accounts(conn: &mut DbConn) -> QueryResult<Vec<AccountRow>> {
    admin_account::table
        .order(admin_account::name)
        .select(AccountRow::as_select())
        .load(conn)
}

pub fn account_by_name(conn: &mut DbConn, name: &str) -> QueryResult<Option<AccountRow>> {
    admin_account::table
        .filter(admin_account::name.eq(name))
        .select(AccountRow::as_select())
        .first(conn)
        .optional()
}

pub fn account_by_id(conn: &mut DbConn, id: i64) -> QueryResult<Option<AccountRow>> {
    admin_account::table
        .find(id)
        .select(AccountRow::as_select())
        .first(conn)
        .optional()
}

/// Ends every session of the account signed in before now (see `session_epoch`).
pub fn bump_session_epoch(conn: &mut DbConn, id: i64) -> QueryResult<()> {
    diesel::update(admin_account::table.find(id))
        .set(admin_account::session_epoch.eq(admin_account::session_epoch + 1))
        .execute(conn)
        .map(drop)
}

pub fn insert_audit(conn: &mut DbConn, row: &AuditRow) -> QueryResult<()> {
    diesel::insert_into(admin_audit::table)
        .values(row)
        .execute(conn)
        .map(drop)
}

/// The latest `limit` audit entries, newest first.
pub fn audit(conn: &mut DbConn, limit: i64) -> QueryResult<Vec<AuditRow>> {
    admin_audit::table
        .order((admin_audit::at_ms.desc(), admin_audit::id.desc()))
        .limit(limit)
        .select(AuditRow::as_select())
        .load(conn)
}

/// Failed sign-ins of any of `subjects` at or after `since_ms`.
pub fn failures_since(conn: &mut DbConn, subjects: &[i64], since_ms: i64) -> QueryResult<Vec<i64>> {
    admin_login_failure::table
        .filter(admin_login_failure::subject.eq_any(subjects))
        .filter(admin_login_failure::at_ms.ge(since_ms))
        .select(admin_login_failure::subject)
        .load(conn)
}

/// Records one failed sign-in for each of `subjects` (with random ids), and deletes the
/// failures older than `forget_before_ms`.
pub fn record_failure(
    conn: &mut DbConn,
    subjects: &[i64],
    at_ms: i64,
    forget_before_ms: i64,
) -> QueryResult<()> {
    for subject in subjects {
        diesel::insert_into(admin_login_failure::table)
            .values((
                admin_login_failure::id.eq(fastrand::i64(..)),
                admin_login_failure::subject.eq(subject),
                admin_login_failure::at_ms.eq(at_ms),
            ))
            .execute(conn)?;
    }
    diesel::delete(
        admin_login_failure::table.filter(admin_login_failure::at_ms.lt(forget_before_ms)),
    )
    .execute(conn)
    .map(drop)
}
