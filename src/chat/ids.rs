//! Connection ids and visitor keys. A connection's id is its `rid` in the database, so it must
//! be unique across every server process sharing one database: the high half is a random
//! per-process node id, the low half a per-process counter. A visitor key is who a connection
//! is (a keyed hash of its page token or address, see `secret`), across its connections.

use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(i64);

impl ConnId {
    /// The id as the database keeps it (`chat_user.rid`, and the id of the chat it opens).
    pub fn rid(self) -> i64 {
        self.0
    }

    /// The connection a database row names (which may belong to another process, or none).
    pub fn from_rid(rid: i64) -> Self {
        ConnId(rid)
    }
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// Hands out ids for one process. Cheap to clone; clones share the counter.
#[derive(Debug, Clone)]
pub struct ConnIds {
    node: u32,
    next: Arc<AtomicU32>,
}

impl ConnIds {
    /// A fresh random node id (31 bits, so ids stay positive).
    pub fn new() -> Self {
        Self::with_node(fastrand::u32(1..=i32::MAX as u32))
    }

    pub fn with_node(node: u32) -> Self {
        ConnIds {
            node: node & i32::MAX as u32,
            next: Arc::new(AtomicU32::new(1)),
        }
    }

    /// This process's node id, as its rows record it (`chat_user.node`).
    pub fn node(&self) -> u32 {
        self.node
    }

    pub fn next(&self) -> ConnId {
        let seq = self.next.fetch_add(1, Ordering::Relaxed);
        ConnId(((self.node as i64) << 32) | seq as i64)
    }
}

impl Default for ConnIds {
    fn default() -> Self {
        Self::new()
    }
}

/// Who a connection is, as the database keeps it (`chat_user.visitor`). Its lowest bit says
/// where it came from: set for the page's own token (one browser), clear for the client's
/// address (many people behind one NAT). Only a named visitor is kept apart from itself, so
/// that two tabs of one browser are not paired with each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VisitorKey(i64);

impl VisitorKey {
    /// The key of a visitor known by the page's token, from its keyed hash.
    pub fn named(hash: i64) -> Self {
        VisitorKey(hash | 1)
    }

    /// The key of a visitor known only by its address, from its keyed hash.
    pub fn address(hash: i64) -> Self {
        VisitorKey(hash & !1)
    }

    pub fn is_named(self) -> bool {
        self.0 & 1 == 1
    }

    /// The key as the database (or another process) gave it.
    pub fn from_i64(key: i64) -> Self {
        VisitorKey(key)
    }

    /// The key as the database keeps it.
    pub fn as_i64(self) -> i64 {
        self.0
    }
}

/// Who a connection is: its visitor key (the page's token, or its address) and its address
/// key, whatever token it sends (see `routes::client`). A ban may hold either; a report names
/// both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Who {
    pub visitor: VisitorKey,
    pub address: VisitorKey,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_positive_unique_and_carry_the_node() {
        let ids = ConnIds::with_node(u32::MAX);
        let a = ids.clone().next();
        let b = ids.next();
        assert_ne!(a, b);
        assert!(a.rid() > 0 && b.rid() > 0);
        assert_eq!(a.rid() >> 32, b.rid() >> 32);
    }

    #[test]
    fn a_visitor_key_says_whether_it_came_from_a_token() {
        for hash in [0, 1, -1, 42, i64::MAX, i64::MIN, i64::MIN + 1] {
            assert!(VisitorKey::named(hash).is_named());
            let by_address = VisitorKey::address(hash);
            assert!(!by_address.is_named());
        }
    }
}
