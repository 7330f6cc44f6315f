//! What an admin does to the challenge gate, each with its audit entry: require a challenge
//! of a reported visitor's address, or of an address typed in, for a chosen time, and lift
//! such a flag. The gate itself (and its flags table) is `crate::moderation::challenge`.

use super::audit::{self, Action};
use super::moderate::{duration_ms, label, target, Refusal};
use crate::db::DbConn;
use crate::moderation::bans::BanKind;
use crate::moderation::challenge::Gate;
use crate::moderation::Moderation;
use crate::secret::SecretKey;

/// Whom a flag holds: the address of the visitor a report names, or an address (or address
/// key) an admin typed.
#[derive(Debug, Clone)]
pub enum FlagTarget {
    Report(i64),
    Typed(String),
}

/// Requires a solved challenge of `flagged`'s address for `seconds` (one of the ban
/// durations), in this process at once and in the others within the gate's refresh; the
/// address key flagged.
pub fn flag(
    (gate, moderation, secret): (&Gate, &Moderation, &SecretKey),
    conn: &mut DbConn,
    admin: &str,
    flagged: &FlagTarget,
    seconds: i64,
) -> anyhow::Result<Result<i64, Refusal>> {
    let ms = match duration_ms(seconds) {
        Ok(ms) => ms,
        Err(refusal) => return Ok(Err(refusal)),
    };
    let (address, from) = match flagged {
        FlagTarget::Report(id) => match moderation.report(*id)? {
            Some(report) => (report.reported_address, format!(" (report {id})")),
            None => return Ok(Err(Refusal::NoReport)),
        },
        FlagTarget::Typed(text) => match target(BanKind::Address, text, secret) {
            Ok(address) => (address, String::new()),
            Err(_) => return Ok(Err(Refusal::Address)),
        },
    };
    let until = u64::try_from(super::now_ms().saturating_add(ms) / 1000).unwrap_or(u64::MAX);
    gate.flag(address, until)?;
    let detail = format!("address {address} for {}{from}", label(seconds));
    audit::record(conn, admin, Action::Flag, &detail)?;
    Ok(Ok(address))
}

/// Lifts the flag on `address`, here at once and elsewhere within the gate's refresh; false
/// (and nothing in the audit log) when there was none.
pub fn unflag(gate: &Gate, conn: &mut DbConn, admin: &str, address: i64) -> anyhow::Result<bool> {
    let lifted = gate.unflag(address)?;
    if lifted {
        audit::record(conn, admin, Action::Unflag, &format!("address {address}"))?;
    }
    Ok(lifted)
}
