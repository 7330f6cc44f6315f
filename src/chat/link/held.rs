//! The link to a partner who is away: the sender's messages wait here, on the sender's side
//! (on its process, which is still there whatever became of the partner's), unreceipted, at
//! most `capacity` of them. When the partner is back they go over the link it came back on,
//! in order, each receipted as it goes; when the chat ends instead, each is `undelivered`.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use super::{Kind, PartnerLink};

/// A message held for an away partner: its copy for the partner, and its sender's receipt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldMessage {
    pub to_partner: String,
    pub to_me: String,
}

pub(super) struct Held {
    /// The link the partner had (used again when it comes back on it).
    behind: PartnerLink,
    messages: Mutex<VecDeque<HeldMessage>>,
    capacity: usize,
}

impl Held {
    pub(super) fn behind(&self) -> &PartnerLink {
        &self.behind
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<HeldMessage>> {
        self.messages.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl PartnerLink {
    /// The partner is away: a link that holds up to `capacity` messages for it. A link that
    /// holds already stays as it is.
    pub fn hold(self, capacity: usize) -> PartnerLink {
        if self.is_away() {
            return self;
        }
        PartnerLink {
            partner: self.partner,
            who: self.who,
            transcript: Arc::clone(&self.transcript),
            kind: Kind::Away(Arc::new(Held {
                behind: self,
                messages: Mutex::default(),
                capacity,
            })),
        }
    }

    /// Whether the partner is away (messages are held).
    pub fn is_away(&self) -> bool {
        matches!(self.kind, Kind::Away(_))
    }

    /// Holds a message for the away partner; false when there is no room (or the partner
    /// is not away): the sender is told `undelivered`.
    pub fn hold_message(&self, message: HeldMessage) -> bool {
        let Kind::Away(held) = &self.kind else {
            return false;
        };
        let mut messages = held.lock();
        if messages.len() >= held.capacity {
            return false;
        }
        messages.push_back(message);
        true
    }

    /// The partner is back: the link to use from now on (`new`, or the one it had) and what
    /// was held for it, in order.
    pub fn back(self, new: Option<PartnerLink>) -> (PartnerLink, Vec<HeldMessage>) {
        let Kind::Away(held) = &self.kind else {
            return (new.unwrap_or(self), Vec::new());
        };
        let messages: Vec<HeldMessage> = held.lock().drain(..).collect();
        let link = new.unwrap_or_else(|| held.behind.clone());
        (link, messages)
    }

    /// What was held for a partner who never came back, in order (taken: asked once).
    pub fn take_held(&self) -> Vec<HeldMessage> {
        match &self.kind {
            Kind::Away(held) => held.lock().drain(..).collect(),
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::*;
    use super::*;
    use crate::chat::ids::{ConnIds, VisitorKey};

    #[test]
    fn an_away_partners_messages_wait_in_order_up_to_the_capacity_and_go_back_with_the_link() {
        let ids = ConnIds::with_node(3);
        let (a, b) = (ids.next(), ids.next());
        let (a_tx, _a_rx) = outbox(4);
        let (b_tx, b_rx) = outbox(4);
        let who = Who {
            visitor: VisitorKey::named(1),
            address: VisitorKey::address(2),
        };
        let (to_b, _to_a) = pair((a, a_tx, who), (b, b_tx, who));
        let away = to_b.hold(2);
        assert!(away.is_away());
        assert_eq!(away.partner(), b);
        let m = |n: &str| HeldMessage {
            to_partner: format!("p{n}"),
            to_me: format!("m{n}"),
        };
        assert!(away.hold_message(m("1")));
        assert!(away.hold_message(m("2")));
        assert!(!away.hold_message(m("3")), "full");
        // Typing to an away partner goes nowhere.
        assert_eq!(away.deliver("typing".into()), Delivery::Delivered);
        assert!(b_rx.try_recv().is_err());
        let away = away.hold(9);
        let (link, held) = away.back(None);
        assert_eq!(held, vec![m("1"), m("2")]);
        assert!(!link.is_away());
        assert_eq!(link.deliver("after".into()), Delivery::Delivered);
        assert!(matches!(b_rx.try_recv(), Ok(Outbound::Frame(f)) if f == "after"));
    }
}
