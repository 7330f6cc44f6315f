//! Who suits whom: interests and a language, with a fallback time. The rule, in one place, for
//! the batch (`plan`), the one-by-one reference and the re-check:
//!
//! - A visitor *takes* another when its fallback time has come, or when the other gives what
//!   it asked for: at least one of its interests (if it gave any) and its language (if it gave
//!   one). A visitor that asked for nothing takes anyone.
//! - A request is paired with the longest-waiting visitor it may meet who takes it and whom it
//!   takes.
//! - Failing that, a request that minds no interest (it gave none, or its fallback time has
//!   come) is paired with the one visitor waiting that it takes, when exactly one waits that it
//!   may meet: it never steals a waiting visitor's chance of a common interest before that
//!   visitor's fallback time, unless nobody else waits.
//! - Otherwise it waits.

use crate::chat::wants::{join_tags, parse_lang, split_tags, Lang, Wants};
use crate::db::queries::Waiting;

/// Never: the fallback time of a visitor who asked not to fall back.
pub const NEVER: i64 = i64::MAX;

/// What a visitor asks of a partner, as the matchmaker weighs it and the rows keep it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Wish {
    /// Normalised, distinct.
    pub interests: Vec<String>,
    pub lang: Option<Lang>,
    /// When it takes anyone: microseconds since the Unix epoch (the clock of `queued`),
    /// `NEVER` for never.
    pub fallback_at: i64,
}

impl Wish {
    /// `wants`, asked at `now` (microseconds since the epoch), falling back after
    /// `fallback_micros` unless it asked not to.
    pub fn new(wants: &Wants, now: i64, fallback_micros: i64) -> Wish {
        let fallback_at = if !wants.is_choosy() {
            0
        } else if wants.fallback {
            now.saturating_add(fallback_micros)
        } else {
            NEVER
        };
        Wish {
            interests: wants.interests.clone(),
            lang: wants.lang,
            fallback_at,
        }
    }

    /// The wish a waiting chat's row keeps.
    pub fn of(row: &Waiting) -> Wish {
        Wish {
            interests: split_tags(&row.interests),
            lang: parse_lang(&row.lang),
            fallback_at: row.fallback_at,
        }
    }

    /// The row's columns: `(interests, lang, fallback_at)`.
    pub fn columns(&self) -> (String, String, i64) {
        (
            join_tags(&self.interests),
            self.lang.map(Lang::code).unwrap_or_default().to_owned(),
            self.fallback_at,
        )
    }

    pub fn is_choosy(&self) -> bool {
        !self.interests.is_empty() || self.lang.is_some()
    }

    /// Whether it takes anyone at `now`.
    pub fn relaxed(&self, now: i64) -> bool {
        !self.is_choosy() || self.fallback_at <= now
    }

    /// Whether it minds no interest at `now`: it gave none, or its fallback time has come.
    fn minds_no_interest(&self, now: i64) -> bool {
        self.interests.is_empty() || self.relaxed(now)
    }

    /// Whether it is content with `other` at `now`.
    pub fn takes(&self, other: &Wish, now: i64) -> bool {
        self.relaxed(now)
            || ((self.interests.is_empty() || !self.common(other).is_empty())
                && self.lang.is_none_or(|lang| other.lang == Some(lang)))
    }

    /// The interests both gave, in this one's order.
    pub fn common(&self, other: &Wish) -> Vec<String> {
        self.interests
            .iter()
            .filter(|tag| other.interests.contains(tag))
            .cloned()
            .collect()
    }
}

/// Whether `a` and `b` would be paired with each other at `now` (each takes the other).
pub fn suit(a: &Wish, b: &Wish, now: i64) -> bool {
    a.takes(b, now) && b.takes(a, now)
}

/// Whether `asker`, finding nobody who suits it among the `count` waiting visitors it may meet,
/// of whom `only` is the first, takes that one: the exception of the no-steal rule.
pub fn takes_the_lone(asker: &Wish, count: usize, only: Option<&Wish>, now: i64) -> bool {
    count == 1 && asker.minds_no_interest(now) && only.is_some_and(|w| asker.takes(w, now))
}

/// The waiting visitor `asker` is paired with at `now`, among `candidates`: those it may meet
/// (not its own chat, nobody it avoids, of a reachable process), oldest first. Returns the
/// index of the chosen one.
pub fn choose<'a>(
    asker: &Wish,
    now: i64,
    candidates: impl IntoIterator<Item = &'a Wish>,
) -> Option<usize> {
    let mut count = 0;
    let mut first = None;
    for (i, wish) in candidates.into_iter().enumerate() {
        if suit(asker, wish, now) {
            return Some(i);
        }
        count += 1;
        first.get_or_insert(wish);
    }
    takes_the_lone(asker, count, first, now).then_some(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wish(tags: &[&str], lang: Option<Lang>, fallback_at: i64) -> Wish {
        Wish {
            interests: tags.iter().map(|t| (*t).to_owned()).collect(),
            lang,
            fallback_at,
        }
    }

    const NOW: i64 = 1_000;

    #[test]
    fn a_shared_interest_suits_and_the_common_ones_are_named() {
        let a = wish(&["music", "go", "chess"], None, NEVER);
        let b = wish(&["chess", "music"], None, NEVER);
        assert!(suit(&a, &b, NOW));
        assert_eq!(a.common(&b), ["music", "chess"]);
        let c = wish(&["rust"], None, NEVER);
        assert!(!suit(&a, &c, NOW));
        // Once a's fallback time has come a takes c, but c still minds.
        let a_later = wish(&["music"], None, NOW);
        assert!(a_later.takes(&c, NOW) && !c.takes(&a_later, NOW));
        assert!(suit(&a_later, &wish(&["rust"], None, NOW - 1), NOW));
    }

    #[test]
    fn a_language_is_preferred_the_same_way() {
        let en = wish(&[], Some(Lang::En), NOW + 1);
        let ru = wish(&[], Some(Lang::Ru), NOW + 1);
        let none = Wish::default();
        assert!(suit(&en, &en.clone(), NOW));
        assert!(!suit(&en, &ru, NOW));
        assert!(!en.takes(&none, NOW) && none.takes(&en, NOW));
        let en_music = wish(&["music"], Some(Lang::En), NOW + 1);
        let ru_music = wish(&["music"], Some(Lang::Ru), NOW + 1);
        assert!(!suit(&en_music, &ru_music, NOW));
        assert!(suit(&en_music, &ru_music, NOW + 1));
    }

    #[test]
    fn the_longest_waiting_who_suits_is_chosen() {
        let asker = wish(&["go"], None, NOW + 10);
        let queue = [
            wish(&["music"], None, NEVER),
            Wish::default(),
            wish(&["go", "music"], None, NOW + 5),
            wish(&["go"], None, NOW + 5),
        ];
        assert_eq!(choose(&asker, NOW, &queue), Some(2));
        // Nobody shares one: it waits (the one who asked for nothing is no match for it).
        assert_eq!(choose(&asker, NOW, &queue[..2]), None);
        // Once its fallback time has come it takes anyone who takes it.
        assert_eq!(choose(&asker, NOW + 10, &queue[..2]), Some(1));
    }

    #[test]
    fn one_without_interests_never_steals_unless_nobody_else_waits() {
        let plain = Wish::default();
        let music = wish(&["music"], None, NOW + 5);
        let go = wish(&["go"], None, NOW + 5);
        // Two wait for a common interest: neither is taken before their fallback time.
        assert_eq!(choose(&plain, NOW, [&music, &go]), None);
        // One waits for a common interest, another for anyone: the other is taken.
        assert_eq!(choose(&plain, NOW, [&music, &plain.clone()]), Some(1));
        // The only one waiting is taken.
        assert_eq!(choose(&plain, NOW, [&music]), Some(0));
        // Once its fallback time has come, the oldest is taken.
        assert_eq!(choose(&plain, NOW + 5, [&music, &go]), Some(0));
        // One who asked for a language of its own takes the lone one only if it speaks it.
        let en = wish(&[], Some(Lang::En), NOW + 5);
        let ru_music = wish(&["music"], Some(Lang::Ru), NOW + 5);
        assert_eq!(choose(&en, NOW, [&ru_music]), None);
        let en_music = wish(&["music"], Some(Lang::En), NOW + 5);
        assert_eq!(choose(&en, NOW, [&en_music]), Some(0));
        // One with interests of its own is no such exception: it waits.
        assert_eq!(choose(&go, NOW, [&music]), None);
    }

    #[test]
    fn a_wish_is_kept_in_its_row_as_given() {
        let wants = Wants {
            interests: vec!["music".into(), "café racer".into()],
            lang: Some(Lang::Zh),
            fallback: true,
        };
        let w = Wish::new(&wants, 100, 10);
        assert_eq!(w.fallback_at, 110);
        let (interests, lang, fallback_at) = w.columns();
        let row = Waiting {
            chat: 1,
            queued: 100,
            visitor: 2,
            interests,
            lang,
            fallback_at,
        };
        assert_eq!(Wish::of(&row), w);
        let never = Wish::new(
            &Wants {
                fallback: false,
                ..wants
            },
            100,
            10,
        );
        assert_eq!(never.fallback_at, NEVER);
        assert!(!never.relaxed(i64::MAX - 1));
        assert_eq!(Wish::new(&Wants::default(), 100, 10).fallback_at, 0);
    }
}
