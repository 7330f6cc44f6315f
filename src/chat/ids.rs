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
}
