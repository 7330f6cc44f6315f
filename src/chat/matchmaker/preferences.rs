//! Who a visitor would rather not meet, and when to stop minding: the stranger it just left
//! (for the rematch cooldown), and, for a visitor known by its page token, its own other tabs;
//! and what it asks of a partner (interests, a language: its `Wish`) until its fallback time.
//! A visitor told to wait while it avoids someone is asked again with nothing avoided once the
//! reason has run out ("relax"); one told to wait for a common interest is asked again when its
//! fallback time comes, which the matchmaker then sees as come.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::suits::Wish;
use super::{now_micros, Ask};
use crate::chat::ids::{ConnId, VisitorKey};
use crate::chat::wants::Wants;

/// How long after its fallback time a waiting visitor is asked again: the matchmaker's clock
/// (the wall clock) must have passed it too.
const FALLBACK_MARGIN: Duration = Duration::from_millis(5);

#[derive(Debug)]
pub struct Preferences {
    cooldown: Duration,
    /// How long a visitor with interests or a language waits for a match before taking anyone.
    fallback: Duration,
    /// Everyone each visitor talked to within the cooldown, and until when they avoid each
    /// other. Kept on both sides, so whichever of two asks, it avoids the other.
    recent: HashMap<VisitorKey, Vec<(VisitorKey, Instant)>>,
    /// Connections told to wait while avoiding someone or wishing for a match: when to ask
    /// again.
    relax: HashMap<ConnId, Relax>,
    /// What each connection with a request asks of a partner, and when it stops minding (only
    /// those that ask for something).
    wishes: HashMap<ConnId, (Wish, Option<Instant>)>,
}

/// When a waiting connection is asked again.
#[derive(Debug)]
struct Relax {
    visitor: VisitorKey,
    /// When it stops avoiding anyone (the cooldown, its own tabs).
    avoids_until: Option<Instant>,
    /// Its fallback time.
    fallback: Option<Instant>,
    /// It avoids nobody any more.
    avoids_nobody: bool,
}

impl Preferences {
    /// Two visitors who just talked are not paired again for `cooldown` while anyone else is
    /// waiting; a visitor with interests or a language takes anyone after `fallback`.
    pub fn new(cooldown: Duration, fallback: Duration) -> Self {
        Preferences {
            cooldown,
            fallback,
            recent: HashMap::new(),
            relax: HashMap::new(),
            wishes: HashMap::new(),
        }
    }

    /// `id` asks for a partner afresh, wanting `wants`: its fallback time starts now.
    pub fn want(&mut self, id: ConnId, wants: &Wants, now: Instant) {
        if !wants.is_choosy() {
            self.wishes.remove(&id);
            return;
        }
        let micros = i64::try_from(self.fallback.as_micros()).unwrap_or(i64::MAX);
        let wish = Wish::new(wants, now_micros(), micros);
        let due = wants
            .fallback
            .then(|| now.checked_add(self.fallback + FALLBACK_MARGIN))
            .flatten();
        self.wishes.insert(id, (wish, due));
    }

    fn wish(&self, id: ConnId) -> Wish {
        self.wishes
            .get(&id)
            .map(|(wish, _)| wish.clone())
            .unwrap_or_default()
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
            wish: self.wish(id),
        }
    }

    /// `id` was told to wait: if it avoids anyone, it is asked again with nobody avoided once
    /// that runs out. A named visitor also waits apart from its own other tabs, for as long as
    /// it would keep apart from a stranger just left. One that wishes for a match is asked
    /// again when its fallback time comes.
    pub fn waiting(&mut self, id: ConnId, visitor: VisitorKey, now: Instant) {
        let avoids_until = self
            .avoiding(visitor, now)
            .1
            .or_else(|| visitor.is_named().then(|| now + self.cooldown));
        let fallback = self
            .wishes
            .get(&id)
            .and_then(|(_, due)| *due)
            .filter(|due| *due > now);
        if avoids_until.is_none() && fallback.is_none() {
            self.relax.remove(&id);
            return;
        }
        self.relax.insert(
            id,
            Relax {
                visitor,
                avoids_until,
                fallback,
                avoids_nobody: false,
            },
        );
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

    /// `id` is gone, or paired: nothing more to ask for it.
    pub fn forget(&mut self, id: ConnId) {
        self.relax.remove(&id);
        self.wishes.remove(&id);
    }

    /// Forgets cooldowns that have run out; returns the relaxed requests now due (the caller
    /// submits those whose connection still waits): with nobody avoided once what it avoided
    /// has run out, and at its fallback time (which its wish says has come).
    pub fn due(&mut self, now: Instant) -> Vec<Ask> {
        self.recent.retain(|_, met| {
            met.retain(|(_, until)| *until > now);
            !met.is_empty()
        });
        let mut due = Vec::new();
        let mut fired = Vec::new();
        self.relax.retain(|&id, relax| {
            let mut now_due = false;
            if relax.avoids_until.is_some_and(|at| at <= now) {
                relax.avoids_until = None;
                relax.avoids_nobody = true;
                now_due = true;
            }
            if relax.fallback.is_some_and(|at| at <= now) {
                relax.fallback = None;
                now_due = true;
            }
            if now_due {
                fired.push((id, relax.visitor, relax.avoids_nobody));
            }
            relax.avoids_until.is_some() || relax.fallback.is_some()
        });
        for (id, visitor, avoids_nobody) in fired {
            let ask = if avoids_nobody {
                Ask {
                    id,
                    visitor,
                    avoid: Vec::new(),
                    avoid_self: false,
                    wish: self.wish(id),
                }
            } else {
                self.again(id, visitor, now)
            };
            due.push(ask);
        }
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
        let mut prefs = Preferences::new(Duration::from_secs(15), Duration::from_secs(10));
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
        let mut prefs = Preferences::new(Duration::from_secs(15), Duration::from_secs(10));
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
        let mut prefs = Preferences::new(Duration::from_secs(15), Duration::from_secs(10));
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
