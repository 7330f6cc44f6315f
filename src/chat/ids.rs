//! Connection ids. A connection's id is its `rid` in the database, so it must be unique across
//! every server process sharing one database: the high half is a random per-process node id,
//! the low half a per-process counter.

use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub i64);

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

/// A visitor key's lowest bit says where it came from: set for the page's own token (one
/// browser), clear for the client's address (many people behind one NAT). Only a named visitor
/// is kept apart from itself, so that two tabs of one browser are not paired with each other.
pub fn named_visitor(hash: i64) -> i64 {
    hash | 1
}

/// A visitor key made from an address (never `i64::MIN`, which means "nobody").
pub fn address_visitor(hash: i64) -> i64 {
    (hash & !1).max(i64::MIN + 2)
}

pub fn is_named_visitor(visitor: i64) -> bool {
    visitor & 1 == 1
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
        assert!(a.0 > 0 && b.0 > 0);
        assert_eq!(a.0 >> 32, b.0 >> 32);
    }

    #[test]
    fn a_visitor_key_says_whether_it_came_from_a_token() {
        for hash in [0, 1, -1, 42, i64::MAX, i64::MIN, i64::MIN + 1] {
            assert!(is_named_visitor(named_visitor(hash)));
            let by_address = address_visitor(hash);
            assert!(!is_named_visitor(by_address));
            assert_ne!(by_address, i64::MIN, "i64::MIN means nobody");
        }
    }
}
