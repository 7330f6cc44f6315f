//! Signing in: the password checked against the account's argon2id hash, and failed attempts
//! capped per account name and per address within a window. Failures are rows in the shared
//! database, so the cap holds across every process; only keyed hashes of the name and the
//! address are kept. A refusal never says whether the name exists.

use std::net::IpAddr;
use std::time::Duration;

use anyhow::Context;

use super::accounts;
use super::audit::{self, Action};
use crate::chat::limits::address_key;
use crate::db::admin::{self as rows, AccountRow};
use crate::db::DbConn;
use crate::secret::SecretKey;

pub const DEFAULT_FAILURES_PER_ACCOUNT: u32 = 5;
pub const DEFAULT_FAILURES_PER_ADDRESS: u32 = 20;
pub const DEFAULT_FAILURE_WINDOW: Duration = Duration::from_secs(15 * 60);

/// How many failed sign-ins are allowed, within what window.
#[derive(Debug, Clone)]
pub struct LoginLimits {
    pub per_account: u32,
    pub per_address: u32,
    pub window: Duration,
}

impl Default for LoginLimits {
    fn default() -> Self {
        LoginLimits {
            per_account: DEFAULT_FAILURES_PER_ACCOUNT,
            per_address: DEFAULT_FAILURES_PER_ADDRESS,
            window: DEFAULT_FAILURE_WINDOW,
        }
    }
}

/// How a sign-in went.
#[derive(Debug)]
pub enum Outcome {
    SignedIn(AccountRow),
    /// Wrong name or password (which, is not said).
    Refused,
    /// Too many failures for this name or from this address lately: not even checked.
    Throttled,
}

/// Checks `name` and `password` from `ip`, counting a failure against both; a success is
/// written to the audit log.
pub fn sign_in(
    conn: &mut DbConn,
    secret: &SecretKey,
    limits: &LoginLimits,
    name: &str,
    password: &str,
    ip: IpAddr,
) -> anyhow::Result<Outcome> {
    let account_subject = secret.hash(b"admin-account:", name.as_bytes());
    let address_subject = secret.hash(b"admin-address:", address_key(ip).to_string().as_bytes());
    let subjects = [account_subject, address_subject];
    let now = super::now_ms();
    let window = i64::try_from(limits.window.as_millis()).unwrap_or(i64::MAX);
    let since = now.saturating_sub(window);
    let failures =
        rows::failures_since(conn, &subjects, since).context("cannot count failed sign-ins")?;
    let count = |subject: i64| failures.iter().filter(|s| **s == subject).count();
    if count(account_subject) >= limits.per_account as usize
        || count(address_subject) >= limits.per_address as usize
    {
        return Ok(Outcome::Throttled);
    }
    let account = rows::account_by_name(conn, name).context("cannot read the account")?;
    let hash = account
        .as_ref()
        .map_or(accounts::decoy_hash(), |a| a.password_hash.as_str());
    let verified = accounts::verify_password(password, hash);
    match account {
        Some(account) if verified => {
            audit::record(conn, &account.name, Action::Login, "")?;
            Ok(Outcome::SignedIn(account))
        }
        _ => {
            rows::record_failure(conn, &subjects, now, since)
                .context("cannot record a failed sign-in")?;
            Ok(Outcome::Refused)
        }
    }
}
