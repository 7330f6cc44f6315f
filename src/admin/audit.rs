//! The audit log: one row per admin action (who, what, when, and a detail such as the report
//! or ban concerned), written in the same breath as the action, read by `/admin/audit`.

use anyhow::Context;

use crate::db::admin::{self as rows, AuditRow};
use crate::db::DbConn;

/// Longest detail kept (the column's size).
const MAX_DETAIL_CHARS: usize = 500;

/// What an admin did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Login,
    Logout,
    Dismiss,
    Ban,
    Lift,
    /// A challenge required of an address.
    Flag,
    /// A challenge flag lifted.
    Unflag,
    AccountAdded,
    AccountRemoved,
}

impl Action {
    /// The name the log keeps and shows.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Login => "login",
            Action::Logout => "logout",
            Action::Dismiss => "dismiss",
            Action::Ban => "ban",
            Action::Lift => "lift",
            Action::Flag => "challenge required",
            Action::Unflag => "challenge lifted",
            Action::AccountAdded => "account added",
            Action::AccountRemoved => "account removed",
        }
    }
}

/// Writes one entry, now.
pub fn record(conn: &mut DbConn, admin: &str, action: Action, detail: &str) -> anyhow::Result<()> {
    let row = AuditRow {
        id: fastrand::i64(..),
        at_ms: super::now_ms(),
        admin: admin.to_owned(),
        action: action.as_str().to_owned(),
        detail: detail.chars().take(MAX_DETAIL_CHARS).collect(),
    };
    rows::insert_audit(conn, &row).context("cannot write the audit log")
}

/// The latest `limit` entries, newest first.
pub fn latest(conn: &mut DbConn, limit: i64) -> anyhow::Result<Vec<AuditRow>> {
    rows::audit(conn, limit).context("cannot read the audit log")
}
