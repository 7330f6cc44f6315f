//! Who a visitor would rather not meet, and when to stop minding: the stranger it just left
//! (for the rematch cooldown), and, for a visitor known by its page token, its own other tabs.
//! A visitor told to wait while it avoids someone is asked again with nothing avoided once the
//! reason has run out ("relax"): the mechanism that interests will use too.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::Ask;
use crate::chat::ids::{ConnId, VisitorKey};

#[derive(Debug)]
pub struct Preferences {
    cooldown: Duration,
    /// Everyone each visitor talked to within the cooldown, and until when they avoid each
    /// other. Kept on both sides, so whichever of two asks, it avoids the other.
    recent: HashMap<VisitorKey, Vec<(VisitorKey, Instant)>>,
    /// Connections told to wait while avoiding someone: when to ask again with nobody avoided.
    relax: HashMap<ConnId, (VisitorKey, Instant)>,
}

impl Preferences {
    /// Two visitors who just talked are not paired again for `cooldown` while anyone else is
    /// waiting.
    pub fn new(cooldown: Duration) -> Self {
        Preferences {
            cooldown,
            recent: HashMap::new(),
            relax: HashMap::new(),
        }
    }

    /// The visitors `visitor` still keeps apart from at `now`, and until when the last of
    /// them runs out.
    fn avoiding(&self, visitor: VisitorKey, now: Instant) -> (Vec<VisitorKey>, Option<Instant>) {
        let live = self
            .recent
            .get(&visitor)
            .into_iter()
            .flatten()
            .filter(|(_, until)| *until > now);
        let avoid = live.clone().map(|(other, _)| *other).collect();
        (avoid, live.map(|(_, until)| *until).max())
    }

    /// A request of `id` for a partner, with everyone it avoids now.
    pub fn ask(&mut self, id: ConnId, visitor: VisitorKey, now: Instant) -> Ask {
        self.relax.remove(&id);
        self.again(id, visitor, now)
    }

    /// The request of `id`, waiting, with what it avoids now, to look once more (others have
    /// become reachable); when it relaxes stays as it was.
    pub fn again(&self, id: ConnId, visitor: VisitorKey, now: Instant) -> Ask {
        Ask {
            id,
            visitor,
            avoid: self.avoiding(visitor, now).0,
            avoid_self: visitor.is_named(),
        }
    }

    /// `id` was told to wait: if it avoids anyone, it is asked again with nobody avoided once
    /// that runs out. A named visitor also waits apart from its own other tabs, for as long as
    /// it would keep apart from a stranger just left.
    pub fn waiting(&mut self, id: ConnId, visitor: VisitorKey, now: Instant) {
        let at = self
            .avoiding(visitor, now)
            .1
            .or_else(|| visitor.is_named().then(|| now + self.cooldown));
        match at {
            Some(at) => self.relax.insert(id, (visitor, at)),
            None => self.relax.remove(&id),
        };
    }

    /// `a` and `b` just stopped talking: they avoid each other for the cooldown. Two
    /// connections that look like one visitor (one address, no tokens) cannot be told apart,
    /// so they are not kept apart either.
    pub fn parted(&mut self, a: VisitorKey, b: VisitorKey, now: Instant) {
        if a != b {
            let until = now + self.cooldown;
            for (me, other) in [(a, b), (b, a)] {
                let met = self.recent.entry(me).or_default();
                met.retain(|(seen, _)| *seen != other);
                met.push((other, until));
            }
        }
    }

    /// `id` is gone: nothing more to ask for it.
    pub fn forget(&mut self, id: ConnId) {
        self.relax.remove(&id);
    }

    /// Forgets cooldowns that have run out; returns the relaxed requests now due (the caller
    /// submits those whose connection still waits).
    pub fn due(&mut self, now: Instant) -> Vec<Ask> {
        self.recent.retain(|_, met| {
            met.retain(|(_, until)| *until > now);
            !met.is_empty()
        });
        let mut due = Vec::new();
        self.relax.retain(|&id, &mut (visitor, at)| {
            if at > now {
                return true;
            }
            due.push(Ask {
                id,
                visitor,
                avoid: Vec::new(),
                avoid_self: false,
            });
            false
        });
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::ids::ConnIds;

    #[test]
    fn strangers_who_parted_avoid_each_other_until_the_cooldown_ends_then_relax() {
        let t0 = Instant::now();
        let ids = ConnIds::with_node(5);
        let (a, b) = (VisitorKey::address(10), VisitorKey::address(20));
        let mut prefs = Preferences::new(Duration::from_secs(15));
        prefs.parted(a, b, t0);
        let id = ids.next();
        let ask = prefs.ask(id, a, t0 + Duration::from_secs(1));
        assert_eq!((ask.avoid, ask.avoid_self), (vec![b], false));
        prefs.waiting(id, a, t0 + Duration::from_secs(1));
        assert!(prefs.due(t0 + Duration::from_secs(14)).is_empty());
        let relaxed = prefs.due(t0 + Duration::from_secs(15));
        assert_eq!(relaxed.len(), 1);
        assert_eq!(relaxed[0].id, id);
        assert!(relaxed[0].avoid.is_empty());
        assert!(prefs
            .ask(ids.next(), a, t0 + Duration::from_secs(16))
            .avoid
            .is_empty());
    }

    #[test]
    fn a_visitor_avoids_everyone_it_talked_to_within_the_cooldown_and_they_it() {
        let t0 = Instant::now();
        let ids = ConnIds::with_node(7);
        let (alice, bob, carol) = (
            VisitorKey::address(10),
            VisitorKey::address(20),
            VisitorKey::address(30),
        );
        let mut prefs = Preferences::new(Duration::from_secs(15));
        prefs.parted(alice, bob, t0);
        prefs.parted(alice, carol, t0 + Duration::from_secs(5));
        let later = t0 + Duration::from_secs(6);
        // Alice, asking while bob waits, still avoids him: not only her last partner.
        assert_eq!(prefs.ask(ids.next(), alice, later).avoid, vec![bob, carol]);
        assert_eq!(prefs.ask(ids.next(), bob, later).avoid, vec![alice]);
        // Waiting, she is relaxed only once the last of her cooldowns has run out.
        let id = ids.next();
        prefs.waiting(id, alice, later);
        assert!(prefs.due(t0 + Duration::from_secs(16)).is_empty());
        assert_eq!(
            prefs
                .ask(ids.next(), alice, t0 + Duration::from_secs(16))
                .avoid,
            vec![carol]
        );
        assert_eq!(prefs.due(t0 + Duration::from_secs(20)).len(), 1);
    }

    #[test]
    fn a_named_visitor_avoids_its_own_tabs_and_one_address_is_not_kept_from_itself() {
        let t0 = Instant::now();
        let ids = ConnIds::with_node(6);
        let named = VisitorKey::named(7);
        let mut prefs = Preferences::new(Duration::from_secs(15));
        let id = ids.next();
        assert!(prefs.ask(id, named, t0).avoid_self);
        prefs.waiting(id, named, t0);
        assert_eq!(prefs.due(t0 + Duration::from_secs(15)).len(), 1);
        let shared = VisitorKey::address(8);
        prefs.parted(shared, shared, t0);
        assert!(prefs.ask(ids.next(), shared, t0).avoid.is_empty());
        // A connection that asks again, or leaves, is not relaxed for its old request.
        let gone = ids.next();
        prefs.waiting(gone, named, t0);
        prefs.forget(gone);
        assert!(prefs.due(t0 + Duration::from_secs(60)).is_empty());
    }
}
