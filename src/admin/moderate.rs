//! What an admin does to reports and bans, each with its audit entry: dismiss a report, ban
//! the reported visitor (by visitor key or by address key) for a chosen time, add a ban by
//! key or address, lift a ban. The rules of bans themselves are `crate::moderation`'s.

use std::net::IpAddr;

use super::audit::{self, Action};
use crate::db::DbConn;
use crate::moderation::bans::{Ban, BanKind, NewBan};
use crate::moderation::Moderation;
use crate::routes::client::address_of;
use crate::secret::SecretKey;

/// The ban lengths an admin chooses from: `(seconds, label)`.
pub const BAN_DURATIONS: [(i64, &str); 6] = [
    (3_600, "1 hour"),
    (86_400, "1 day"),
    (7 * 86_400, "7 days"),
    (30 * 86_400, "30 days"),
    (365 * 86_400, "1 year"),
    (100 * 365 * 86_400, "for good (100 years)"),
];

/// Why an admin's request was refused: said back to the admin as it is.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("no such report")]
    NoReport,
    #[error("a ban holds a visitor or an address")]
    Kind,
    #[error("choose one of the offered durations")]
    Duration,
    #[error("a target is a visitor or address key (a number, as the reports show it), or for an address ban an IPv4 or IPv6 address")]
    Target,
    #[error("an address is an IPv4 or IPv6 address, or an address key (a number, as the reports show it)")]
    Address,
    #[error(transparent)]
    Ban(#[from] crate::moderation::bans::BadBan),
}

/// A ban as an admin's form asks for it.
#[derive(Debug, Clone)]
pub struct BanOrder {
    /// `visitor` or `address`.
    pub kind: String,
    /// A key, or an address (address bans); unused when banning from a report.
    pub target: String,
    /// One of `BAN_DURATIONS`.
    pub seconds: i64,
    pub reason: String,
}

fn kind(text: &str) -> Result<BanKind, Refusal> {
    BanKind::parse(text).ok_or(Refusal::Kind)
}

/// A duration offered in `BAN_DURATIONS`, in milliseconds.
pub fn duration_ms(seconds: i64) -> Result<i64, Refusal> {
    BAN_DURATIONS
        .iter()
        .find(|(s, _)| *s == seconds)
        .map(|(s, _)| s * 1000)
        .ok_or(Refusal::Duration)
}

/// How an admin page names the duration `seconds`.
pub fn label(seconds: i64) -> &'static str {
    BAN_DURATIONS
        .iter()
        .find(|(s, _)| *s == seconds)
        .map_or("?", |(_, l)| l)
}

/// A ban's target as an admin typed it: a key, or (address bans) an address, turned into its
/// key as the server computes it for a connection from there.
pub fn target(kind: BanKind, text: &str, secret: &SecretKey) -> Result<i64, Refusal> {
    let text = text.trim();
    if let Ok(key) = text.parse::<i64>() {
        return Ok(key);
    }
    match (kind, text.parse::<IpAddr>()) {
        (BanKind::Address, Ok(ip)) => Ok(address_of(ip, secret).as_i64()),
        _ => Err(Refusal::Target),
    }
}

/// Dismisses report `id`; false when there was none.
pub fn dismiss(
    moderation: &Moderation,
    conn: &mut DbConn,
    admin: &str,
    id: i64,
) -> anyhow::Result<bool> {
    let dismissed = moderation.dismiss_report(id)?;
    if dismissed {
        audit::record(conn, admin, Action::Dismiss, &format!("report {id}"))?;
    }
    Ok(dismissed)
}

/// Bans the visitor report `id` names (its visitor key or its address key) and takes the
/// report out of the queue.
pub fn ban_reported(
    moderation: &Moderation,
    conn: &mut DbConn,
    admin: &str,
    id: i64,
    order: &BanOrder,
) -> anyhow::Result<Result<Ban, Refusal>> {
    let kind = match kind(&order.kind) {
        Ok(kind) => kind,
        Err(refusal) => return Ok(Err(refusal)),
    };
    let Some(report) = moderation.report(id)? else {
        return Ok(Err(Refusal::NoReport));
    };
    let target = match kind {
        BanKind::Visitor => report.reported,
        BanKind::Address => report.reported_address,
    };
    let ban = ban(moderation, conn, admin, (kind, target), order, Some(id))?;
    if ban.is_ok() {
        moderation.dismiss_report(id)?;
    }
    Ok(ban)
}

/// Bans the key or address `order.target` as `order.kind` says.
pub fn ban_typed(
    moderation: &Moderation,
    conn: &mut DbConn,
    admin: &str,
    secret: &SecretKey,
    order: &BanOrder,
) -> anyhow::Result<Result<Ban, Refusal>> {
    let held = kind(&order.kind).and_then(|kind| Ok((kind, target(kind, &order.target, secret)?)));
    match held {
        Ok(held) => ban(moderation, conn, admin, held, order, None),
        Err(refusal) => Ok(Err(refusal)),
    }
}

/// Bans `target` (a key of `kind`) for `order.seconds` with `order.reason`.
fn ban(
    moderation: &Moderation,
    conn: &mut DbConn,
    admin: &str,
    (kind, target): (BanKind, i64),
    order: &BanOrder,
    report: Option<i64>,
) -> anyhow::Result<Result<Ban, Refusal>> {
    let seconds = order.seconds;
    let duration_ms = match duration_ms(seconds) {
        Ok(ms) => ms,
        Err(refusal) => return Ok(Err(refusal)),
    };
    let new = NewBan {
        kind,
        target,
        reason: order.reason.trim().to_owned(),
        duration_ms,
        created_by: admin.to_owned(),
    };
    if let Err(bad) = new.check() {
        return Ok(Err(bad.into()));
    }
    let ban = moderation.add_ban(new)?;
    let from = report
        .map(|id| format!(" (report {id})"))
        .unwrap_or_default();
    let detail = format!(
        "ban {}: {} {} for {}{from}: {}",
        ban.id,
        kind.as_str(),
        target,
        label(seconds),
        ban.reason
    );
    audit::record(conn, admin, Action::Ban, &detail)?;
    Ok(Ok(ban))
}

/// Lifts ban `id`; false when no ban in force had it.
pub fn lift(
    moderation: &Moderation,
    conn: &mut DbConn,
    admin: &str,
    id: i64,
) -> anyhow::Result<bool> {
    let lifted = moderation.lift_ban(id)?;
    if lifted {
        audit::record(conn, admin, Action::Lift, &format!("ban {id}"))?;
    }
    Ok(lifted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_offered_durations_and_plain_targets_are_taken() {
        assert_eq!(duration_ms(3_600).ok(), Some(3_600_000));
        assert!(duration_ms(42).is_err());
        let secret = SecretKey::random().expect("key");
        assert_eq!(target(BanKind::Visitor, " -17 ", &secret).ok(), Some(-17));
        assert!(target(BanKind::Visitor, "10.0.0.1", &secret).is_err());
        let by_address = target(BanKind::Address, "2001:db8::1", &secret).expect("address");
        let same_64 = target(BanKind::Address, "2001:db8::ffff", &secret).expect("address");
        assert_eq!(by_address, same_64, "an IPv6 address counts by its /64");
        assert!(target(BanKind::Address, "nonsense", &secret).is_err());
    }
}
