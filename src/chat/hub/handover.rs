//! Handing chats over when this process stops. A chat whose partner is on another process goes
//! on from there (`claim`); one whose two visitors are both here would end with the process.
//! Instead, when the process stops, both visitors are closed with 1012 like the others. As each
//! session ends, its parts are parked (`away`, for a moment at most). Once both are parked, the
//! chat goes to another live process (`Envelope::Adopt`) with:
//! - who the two visitors are;
//! - the digests of their tokens;
//! - what each had been given of the other's frames (and receipted) but not yet written.
//!
//! The heir holds the chat as if both visitors had gone away there, on its own clock for the
//! grace, under connection ids of its own. Each visitor then resumes wherever its page
//! reconnects:
//! - on the heir: its token is known there by its digest, and it takes its side up at once;
//! - anywhere else: its `Claim` is granted by the heir, like a claim for any chat whose partner
//!   is there.
//!
//! Whoever comes back first hears `partner_away`, then `partner_back` when the other does.
//!
//! A process that dies cannot hand anything over, so each such chat is also recorded in Redis
//! while it lasts (`cluster::held`: the two sides as `Adopt` carries them, without frames,
//! updated when a token changes). The process that sweeps a dead one adopts its chats the
//! same way: what was given to the dead process's connections but not yet written is lost
//! with it (the README says so). The token itself never
//! leaves the process that made it; only its digest travels, as for every claim.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::resume::Away;
use super::{Entry, Hub, State};
use crate::chat::ids::{ConnId, VisitorKey, Who};
use crate::chat::link::{self, Inbox, Outbound, PartnerLink};
use crate::chat::matchmaker::Op;
use crate::cluster::wire::{AdoptedSide, Envelope};

/// How long a stopping process keeps one side of a local chat parked for the other side's
/// session to end too. Both are kicked at once, so this is only a bound.
pub(super) const PARK: Duration = Duration::from_secs(2);

/// The digests of the tokens of visitors whose chat was handed to this process, both ways.
/// Their tokens are known here by digest only.
#[derive(Default)]
pub(super) struct Adopted {
    by_digest: HashMap<String, ConnId>,
    digest_of: HashMap<ConnId, String>,
}

impl Hub {
    /// The digest of `id`'s token: one made here, or one that came with a chat handed over.
    fn digest_of(&self, id: ConnId) -> Option<String> {
        match self.token_of.get(&id) {
            Some(token) => Some(token.digest()),
            None => self.adopted.digest_of.get(&id).cloned(),
        }
    }

    /// The visitor of a chat handed to this process whose token has this digest.
    pub(super) fn adopted_by_digest(&self, digest: &str) -> Option<ConnId> {
        self.adopted.by_digest.get(digest).copied()
    }

    /// `id`'s token is spent, or its chat over.
    pub(super) fn forget_adopted(&mut self, id: ConnId) {
        if let Some(digest) = self.adopted.digest_of.remove(&id) {
            self.adopted.by_digest.remove(&digest);
        }
    }

    /// A chat handed over is reached by claims through its digest, though no token was made
    /// here: `holder`'s partner's process (the claimer's) learns it.
    pub(super) fn share_adopted_digest(&mut self, holder: ConnId, partner: ConnId) {
        if let Some(digest) = self.adopted.digest_of.get(&holder).cloned() {
            let envelope = Envelope::Token {
                to: partner.rid(),
                from: holder.rid(),
                digest,
            };
            self.tell(crate::cluster::wire::node_of(partner.rid()), envelope);
        }
    }

    /// What an heir learns of `id`: who it is and its token's digest (no frames).
    fn side_of(&self, id: ConnId) -> Option<AdoptedSide> {
        let who = self.conns.get(&id)?.who();
        Some(AdoptedSide {
            visitor: who.visitor.as_i64(),
            address: who.address.as_i64(),
            digest: self.digest_of(id)?,
            frames: Vec::new(),
        })
    }

    /// `id`'s chat, if both its visitors are here and have tokens, is recorded (again) for
    /// the process that would sweep this one.
    pub(super) fn record_chat(&self, id: ConnId) {
        let Some(cluster) = &self.cluster else {
            return;
        };
        let Some(State::Chatting(partner)) = self.state(id) else {
            return;
        };
        if self.grace.is_zero()
            || self.shutdown.is_some()
            || self.remote.contains_key(&id)
            || self.state(partner) != Some(State::Chatting(id))
        {
            return;
        }
        if let (Some(a), Some(b)) = (self.side_of(id), self.side_of(partner)) {
            cluster.hold_chat(chat_key(id, partner), Some(&[a, b]));
        }
    }

    /// The chat of `id` and `partner`, both here, is over here (ended, or going on elsewhere).
    pub(super) fn unrecord_chat(&self, id: ConnId, partner: ConnId) {
        if let Some(cluster) = &self.cluster {
            if !self.grace.is_zero() {
                cluster.hold_chat(chat_key(id, partner), None);
            }
        }
    }

    /// While stopping: the partner `id` talks with here, when their chat can go on from another
    /// process (both have a token, and another live process can be reached).
    pub(super) fn heir_partner(&self, id: ConnId) -> Option<ConnId> {
        if self.shutdown.is_none() || self.grace.is_zero() || self.remote.contains_key(&id) {
            return None;
        }
        let Some(State::Chatting(partner)) = self.state(id) else {
            return None;
        };
        let both = self.state(partner) == Some(State::Chatting(id))
            && self.digest_of(id).is_some()
            && self.digest_of(partner).is_some();
        let heir = self
            .cluster
            .as_ref()
            .is_some_and(|c| !c.others().is_empty());
        (both && heir).then_some(partner)
    }

    /// While stopping: `id`'s session has ended (1012), and its chat can be handed over. It
    /// waits here for its partner's session to end too; then the chat goes.
    pub(super) fn park(&mut self, id: ConnId, partner: ConnId, inbox: Inbox, link: PartnerLink) {
        if let Some(conn) = self.conns.get_mut(&id) {
            conn.kick = None;
        }
        let until = Instant::now() + PARK;
        self.away.insert(id, Away::new(inbox, link, until));
        if self.away.contains_key(&partner) {
            self.hand_over(id, partner);
        }
    }

    /// Both sides of the chat of `a` and `b` are parked: it goes to another live process, and
    /// from here without a word to anyone (it goes on there).
    pub(super) fn hand_over(&mut self, a: ConnId, b: ConnId) {
        let Some(cluster) = self.cluster.clone() else {
            return;
        };
        let others = cluster.others();
        let (Some(side_a), Some(side_b)) = (self.adopted_side(a), self.adopted_side(b)) else {
            return;
        };
        if others.is_empty() {
            for id in [a, b] {
                self.leave(id, link::Departure::Lost);
            }
            return;
        }
        // Spread over the others: one chat's id picks its heir.
        let heir = others[(a.rid() as u64 % others.len() as u64) as usize];
        tracing::debug!(%a, %b, heir, "chat handed over");
        // Told before anything here ends (the last departure lets the stop go on, and the stop
        // waits for the relay to send what was queued before it).
        self.tell(
            heir,
            Envelope::Adopt {
                sides: [side_a, side_b],
            },
        );
        // One removal takes both rows.
        self.submit(Op::Leave(a));
        for id in [a, b] {
            self.drop_quietly(id);
        }
    }

    /// What the heir learns of parked `id`: who it is, its token's digest, and what it had not
    /// yet written (taken from its outbox).
    fn adopted_side(&mut self, id: ConnId) -> Option<AdoptedSide> {
        let digest = self.digest_of(id)?;
        let who = self.conns.get(&id)?.who();
        let away = self.away.remove(&id)?;
        let (inbox, _) = away.into_parts();
        Some(AdoptedSide {
            visitor: who.visitor.as_i64(),
            address: who.address.as_i64(),
            digest,
            frames: super::claim::drain(inbox),
        })
    }

    /// A stopping process handed this one a chat: both its visitors are away here from now
    /// on, under new ids, each with what it had not yet written and `partner_away` waiting.
    pub(super) fn on_adopt(&mut self, sides: [AdoptedSide; 2]) {
        if self.shutdown.is_some() || self.grace.is_zero() || self.cluster.is_none() {
            return; // their resumes fail: nobody here will hold the chat
        }
        let ids = [self.ids.next(), self.ids.next()];
        let now = Instant::now();
        let until = now + self.grace;
        let mut parts = Vec::with_capacity(2);
        for side in &sides {
            // Room for what it had, and for what its partner sends before that partner hears
            // it is away (every outbox's default room).
            let capacity = crate::config::DEFAULT_OUTBOX_FRAMES.max(side.frames.len());
            let (tx, rx) = link::outbox(capacity);
            for frame in &side.frames {
                let _ = tx.try_send(Outbound::Frame(frame.clone()));
            }
            let who = Who {
                visitor: VisitorKey::from_i64(side.visitor),
                address: VisitorKey::from_i64(side.address),
            };
            parts.push((tx, rx, who));
        }
        let (to_b, to_a) = link::pair(
            (ids[0], parts[0].0.clone(), parts[0].2),
            (ids[1], parts[1].0.clone(), parts[1].2),
        );
        let links = [to_b, to_a];
        for (i, ((tx, rx, who), link)) in parts.into_iter().zip(links).enumerate() {
            let (id, partner) = (ids[i], ids[1 - i]);
            self.conns.insert(
                id,
                Entry {
                    visitor: who.visitor,
                    address: who.address,
                    outbox: tx,
                    kick: None,
                    state: State::Chatting(partner),
                    online_sent: 0,
                    online_sent_at: now,
                },
            );
            self.away
                .insert(id, Away::adopted(rx.into_stream(), link, until));
            let digest = sides[i].digest.clone();
            self.adopted.by_digest.insert(digest.clone(), id);
            self.adopted.digest_of.insert(id, digest.clone());
            self.hold_digest(id, partner, digest);
        }
        self.online_settled = None;
        tracing::debug!(a = %ids[0], b = %ids[1], "chat adopted");
        // Should this process die too, the next one adopts it.
        self.record_chat(ids[0]);
        // A visitor whose resume reached this process before its chat did.
        self.resume_adopted_claims();
    }
}

/// The key a chat between two visitors of this process is recorded under.
fn chat_key(a: ConnId, b: ConnId) -> i64 {
    a.rid().min(b.rid())
}
