//! Bans: by visitor key or by address key, with a reason, an expiry and who made them. Each
//! process keeps the bans in force in memory (`BanList`), reloaded from the database every
//! couple of seconds, so that checking a connection never waits on the database.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use serde::Serialize;

use crate::chat::ids::VisitorKey;
use crate::db::moderation::BanRow;

/// Longest ban reason, in characters.
pub const MAX_BAN_REASON_CHARS: usize = 500;
/// Longest `created_by`, in characters (an admin's name).
pub const MAX_CREATED_BY_CHARS: usize = 64;
/// `created_by` of the bans pairchat makes itself.
pub const AUTO: &str = "auto";

/// What a ban holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BanKind {
    /// One visitor: the page's token (or, without one, its address; see `routes::client`).
    Visitor,
    /// Everyone from one address: an IPv4 address or an IPv6 /64.
    Address,
}

impl BanKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BanKind::Visitor => "visitor",
            BanKind::Address => "address",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "visitor" => Some(BanKind::Visitor),
            "address" => Some(BanKind::Address),
            _ => None,
        }
    }
}

/// A ban, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ban {
    pub id: i64,
    pub kind: BanKind,
    /// The visitor key or address key banned.
    pub target: i64,
    pub reason: String,
    /// Milliseconds since the Unix epoch.
    pub created_ms: i64,
    pub expires_ms: i64,
    /// An admin's name, or `auto`.
    pub created_by: String,
    pub lifted: bool,
}

impl Ban {
    pub(super) fn from_row(row: BanRow) -> Option<Self> {
        Some(Ban {
            id: row.id,
            kind: BanKind::parse(&row.kind)?,
            target: row.target,
            reason: row.reason,
            created_ms: row.created_ms,
            expires_ms: row.expires_ms,
            created_by: row.created_by,
            lifted: row.lifted,
        })
    }

    pub(super) fn to_row(&self) -> BanRow {
        BanRow {
            id: self.id,
            kind: self.kind.as_str().to_owned(),
            target: self.target,
            reason: self.reason.clone(),
            created_ms: self.created_ms,
            expires_ms: self.expires_ms,
            created_by: self.created_by.clone(),
            lifted: self.lifted,
        }
    }

    /// Whether it holds at `now_ms`.
    pub fn in_force(&self, now_ms: i64) -> bool {
        !self.lifted && self.expires_ms > now_ms
    }
}

/// A ban to make (see `Moderation::add_ban`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewBan {
    pub kind: BanKind,
    pub target: i64,
    /// Shown to the banned visitor; at most `MAX_BAN_REASON_CHARS`.
    pub reason: String,
    /// How long from now, in milliseconds (above 0).
    pub duration_ms: i64,
    /// An admin's name, or `AUTO`; at most `MAX_CREATED_BY_CHARS`.
    pub created_by: String,
}

/// Why a `NewBan` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadBan {
    #[error("a ban needs a reason of at most {MAX_BAN_REASON_CHARS} characters")]
    Reason,
    #[error("a ban needs a duration above 0")]
    Duration,
    #[error("a ban needs who made it, in at most {MAX_CREATED_BY_CHARS} characters")]
    CreatedBy,
}

impl NewBan {
    pub fn check(&self) -> Result<(), BadBan> {
        let reason = self.reason.trim();
        if reason.is_empty() || reason.chars().nth(MAX_BAN_REASON_CHARS).is_some() {
            return Err(BadBan::Reason);
        }
        if self.duration_ms <= 0 {
            return Err(BadBan::Duration);
        }
        let by = self.created_by.trim();
        if by.is_empty() || by.chars().nth(MAX_CREATED_BY_CHARS).is_some() {
            return Err(BadBan::CreatedBy);
        }
        Ok(())
    }

    pub(super) fn made(self, now_ms: i64) -> Ban {
        Ban {
            id: fresh_id(),
            kind: self.kind,
            target: self.target,
            reason: self.reason.trim().to_owned(),
            created_ms: now_ms,
            expires_ms: now_ms.saturating_add(self.duration_ms),
            created_by: self.created_by.trim().to_owned(),
            lifted: false,
        }
    }
}

/// A random positive row id: chosen here, so no backend needs RETURNING.
pub(super) fn fresh_id() -> i64 {
    fastrand::i64(1..i64::MAX)
}

/// The bans in force, by what they hold; the one that ends last for each.
type BanSet = HashMap<(BanKind, i64), Arc<Ban>>;

/// The bans in force as this process last read them. Reads take a read lock for a lookup;
/// the reload swaps the whole set.
#[derive(Debug, Default)]
pub struct BanList {
    set: RwLock<Arc<BanSet>>,
}

impl BanList {
    /// The ban that holds a visitor known by `visitor` from the address `address` at
    /// `now_ms`, if any (the one that ends last).
    pub fn find(&self, visitor: VisitorKey, address: VisitorKey, now_ms: i64) -> Option<Arc<Ban>> {
        let set = self.set.read().unwrap_or_else(PoisonError::into_inner);
        if set.is_empty() {
            return None;
        }
        [
            (BanKind::Visitor, visitor.as_i64()),
            (BanKind::Address, address.as_i64()),
        ]
        .iter()
        .filter_map(|key| set.get(key))
        .filter(|ban| ban.in_force(now_ms))
        .max_by_key(|ban| ban.expires_ms)
        .cloned()
    }

    /// Replaces the whole list with `bans`.
    pub fn replace(&self, bans: impl IntoIterator<Item = Ban>) {
        let mut set = BanSet::new();
        for ban in bans {
            let key = (ban.kind, ban.target);
            let later = set
                .get(&key)
                .is_none_or(|held: &Arc<Ban>| held.expires_ms < ban.expires_ms);
            if later {
                set.insert(key, Arc::new(ban));
            }
        }
        *self.set.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(set);
    }

    /// Adds one ban at once (the process that made it need not wait for the next reload).
    pub fn add(&self, ban: Ban) {
        let mut set = self.set.write().unwrap_or_else(PoisonError::into_inner);
        let mut copy = BanSet::clone(&set);
        let key = (ban.kind, ban.target);
        if copy.get(&key).is_none_or(|b| b.expires_ms < ban.expires_ms) {
            copy.insert(key, Arc::new(ban));
        }
        *set = Arc::new(copy);
    }

    /// Drops a lifted ban at once.
    pub fn remove(&self, id: i64) {
        let mut set = self.set.write().unwrap_or_else(PoisonError::into_inner);
        if set.values().any(|b| b.id == id) {
            let copy: BanSet = set
                .iter()
                .filter(|(_, b)| b.id != id)
                .map(|(k, b)| (*k, b.clone()))
                .collect();
            *set = Arc::new(copy);
        }
    }
}

/// The `error` frame a banned visitor gets, on connecting and for every `request`:
/// `{"type":"error","error":"banned","detail":TEXT,"reason":REASON,"until":RFC3339,
/// "until_ms":MS,"appeal":TEXT-or-null}`.
pub fn banned_frame(ban: &Ban, appeal: Option<&str>) -> String {
    let until = rfc3339(ban.expires_ms);
    let mut detail = format!(
        "You are banned from this chat until {until}. Reason: {}",
        ban.reason
    );
    if let Some(appeal) = appeal {
        detail.push_str(" To appeal: ");
        detail.push_str(appeal);
    }
    serde_json::json!({
        "type": "error",
        "error": "banned",
        "detail": detail,
        "reason": ban.reason,
        "until": until,
        "until_ms": ban.expires_ms,
        "appeal": appeal,
    })
    .to_string()
}

/// A time in milliseconds since the Unix epoch as RFC 3339 (UTC, whole seconds).
pub fn rfc3339(ms: i64) -> String {
    let format = time::format_description::well_known::Rfc3339;
    time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ban(kind: BanKind, target: i64, expires_ms: i64) -> Ban {
        NewBan {
            kind,
            target,
            reason: "spam".into(),
            duration_ms: expires_ms,
            created_by: AUTO.into(),
        }
        .made(0)
    }

    #[test]
    fn a_ban_holds_its_visitor_or_its_address_until_it_expires() {
        let list = BanList::default();
        let (v, a) = (VisitorKey::named(10), VisitorKey::address(20));
        assert!(list.find(v, a, 0).is_none());
        list.replace([ban(BanKind::Address, a.as_i64(), 100)]);
        assert_eq!(
            list.find(VisitorKey::named(99), a, 50)
                .map(|b| b.expires_ms),
            Some(100)
        );
        assert!(list.find(v, a, 100).is_none(), "expired");
        // A visitor ban does not catch another visitor from elsewhere.
        list.add(ban(BanKind::Visitor, v.as_i64(), 200));
        assert!(list.find(v, VisitorKey::address(0), 150).is_some());
        assert!(list
            .find(VisitorKey::named(12), VisitorKey::address(0), 150)
            .is_none());
        let id = list.find(v, a, 150).map(|b| b.id).expect("banned");
        list.remove(id);
        assert!(list.find(v, VisitorKey::address(0), 150).is_none());
    }

    #[test]
    fn bad_bans_are_refused_and_the_frame_says_reason_and_expiry() {
        let mut new = NewBan {
            kind: BanKind::Visitor,
            target: 1,
            reason: " ".into(),
            duration_ms: 1,
            created_by: "ann".into(),
        };
        assert_eq!(new.check(), Err(BadBan::Reason));
        new.reason = "spam".into();
        assert_eq!(new.check(), Ok(()));
        new.duration_ms = 0;
        assert_eq!(new.check(), Err(BadBan::Duration));
        let frame = banned_frame(&ban(BanKind::Visitor, 1, 3_600_000), Some("mail us"));
        let v: serde_json::Value = serde_json::from_str(&frame).expect("json");
        assert_eq!(v["error"], "banned");
        assert_eq!(v["until"], "1970-01-01T01:00:00Z");
        assert_eq!(v["until_ms"], 3_600_000);
        assert_eq!(v["reason"], "spam");
        assert_eq!(v["appeal"], "mail us");
    }
}
