//! The moderation tables (`report`, `ban`): plain queries for both backends, returning
//! `diesel::QueryResult`. The rules (who may report, when a ban is automatic) are
//! `crate::moderation`'s. All of these block.

use diesel::prelude::*;

use super::schema::{ban, report};
use super::DbConn;

/// A `report` row. No `Debug`: its note and evidence must never reach a log.
#[derive(Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = report)]
pub struct ReportRow {
    pub id: i64,
    /// Milliseconds since the Unix epoch.
    pub created_ms: i64,
    pub node: i64,
    pub reason: String,
    pub note: String,
    pub reported: i64,
    pub reported_address: i64,
    pub reporter: i64,
    /// JSON: `[{"from":"reporter"|"reported","message":"..."}]`, oldest first.
    pub evidence: String,
    pub dismissed: bool,
}

/// A `ban` row.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = ban)]
pub struct BanRow {
    pub id: i64,
    /// `visitor` or `address`.
    pub kind: String,
    pub target: i64,
    pub reason: String,
    pub created_ms: i64,
    pub expires_ms: i64,
    pub created_by: String,
    pub lifted: bool,
}

pub fn insert_report(conn: &mut DbConn, row: &ReportRow) -> QueryResult<usize> {
    diesel::insert_into(report::table).values(row).execute(conn)
}

/// Reports not dismissed, newest first, at most `limit`.
pub fn open_reports(conn: &mut DbConn, limit: i64) -> QueryResult<Vec<ReportRow>> {
    report::table
        .filter(report::dismissed.eq(false))
        .order((report::created_ms.desc(), report::id))
        .limit(limit)
        .select(ReportRow::as_select())
        .load(conn)
}

pub fn report_by_id(conn: &mut DbConn, id: i64) -> QueryResult<Option<ReportRow>> {
    report::table
        .find(id)
        .select(ReportRow::as_select())
        .first(conn)
        .optional()
}

/// Marks a report dismissed; returns whether there was such a report.
pub fn dismiss_report(conn: &mut DbConn, id: i64) -> QueryResult<bool> {
    diesel::update(report::table.find(id))
        .set(report::dismissed.eq(true))
        .execute(conn)
        .map(|n| n > 0)
}

/// How many different visitors reported `reported` at or after `since_ms`, dismissed reports
/// aside.
pub fn reporters_since(conn: &mut DbConn, reported: i64, since_ms: i64) -> QueryResult<i64> {
    report::table
        .filter(report::reported.eq(reported))
        .filter(report::created_ms.ge(since_ms))
        .filter(report::dismissed.eq(false))
        .select(diesel::dsl::count(report::reporter).aggregate_distinct())
        .first(conn)
}

/// Deletes reports made before `before_ms`; returns how many.
pub fn sweep_reports(conn: &mut DbConn, before_ms: i64) -> QueryResult<usize> {
    diesel::delete(report::table.filter(report::created_ms.lt(before_ms))).execute(conn)
}

pub fn insert_ban(conn: &mut DbConn, row: &BanRow) -> QueryResult<usize> {
    diesel::insert_into(ban::table).values(row).execute(conn)
}

/// Bans in force at `now_ms` (not lifted, not expired), the latest expiry first.
pub fn active_bans(conn: &mut DbConn, now_ms: i64) -> QueryResult<Vec<BanRow>> {
    ban::table
        .filter(ban::lifted.eq(false))
        .filter(ban::expires_ms.gt(now_ms))
        .order((ban::expires_ms.desc(), ban::id))
        .select(BanRow::as_select())
        .load(conn)
}

/// Whether a ban in force at `now_ms` holds `target` as `kind`.
pub fn is_banned(conn: &mut DbConn, kind: &str, target: i64, now_ms: i64) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        ban::table
            .filter(ban::kind.eq(kind))
            .filter(ban::target.eq(target))
            .filter(ban::lifted.eq(false))
            .filter(ban::expires_ms.gt(now_ms)),
    ))
    .get_result(conn)
}

/// Lifts a ban; returns whether a ban in force was lifted.
pub fn lift_ban(conn: &mut DbConn, id: i64) -> QueryResult<bool> {
    diesel::update(ban::table.find(id).filter(ban::lifted.eq(false)))
        .set(ban::lifted.eq(true))
        .execute(conn)
        .map(|n| n > 0)
}

/// Deletes bans that ended (expired or lifted) before `before_ms`; returns how many.
pub fn sweep_bans(conn: &mut DbConn, before_ms: i64) -> QueryResult<usize> {
    diesel::delete(ban::table.filter(ban::expires_ms.lt(before_ms))).execute(conn)
}
