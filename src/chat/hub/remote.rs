//! The hub's side of a cluster: meeting a visitor whose partner waits on another process, what
//! arrives from the other processes, and what happens when one of them dies. The rows stay the
//! record: the matchmaker that pairs two visitors decides, and the waiting visitor's hub only
//! confirms that its visitor is still there (`Pair` → `Accept` or `Refuse`) before both are
//! told `response`; so nobody is ever paired with a visitor whose process has gone.

use std::time::{Duration, Instant};

use super::{Hub, State};
use crate::chat::ids::{ConnId, VisitorKey, Who};
use crate::chat::link::{self, Departure, Outbound};
use crate::chat::matchmaker::Op;
use crate::cluster::wire::{node_of, Envelope};
use crate::cluster::Event;

/// How long a proposal waits for the other hub's answer before the visitor asks again (its
/// process would be found dead well before).
const PROPOSAL_TIMEOUT: Duration = Duration::from_secs(10);

/// A partner on another process, as the hub of the local side keeps it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Partner {
    pub visitor: VisitorKey,
    /// The last frame taken from it: a frame sent again after a broken connection is dropped.
    pub last_seq: u64,
}

/// A partner's keys as an envelope carries them.
fn who(visitor: i64, address: i64) -> Who {
    Who {
        visitor: VisitorKey::from_i64(visitor),
        address: VisitorKey::from_i64(address),
    }
}

impl Hub {
    /// Whether `partner` is a connection of another live process.
    pub(super) fn is_remote(&self, partner: ConnId) -> bool {
        self.cluster.as_ref().is_some_and(|c| {
            let node = node_of(partner.rid());
            node != c.node() && c.reachable(node)
        })
    }

    pub(super) fn tell(&self, node: u32, envelope: Envelope) {
        if let Some(cluster) = &self.cluster {
            if !cluster.send(node, envelope) {
                tracing::warn!(node, "relay queue full: a cross-process notice was dropped");
            }
        }
    }

    /// The matchmaker paired `id` with `partner`, who waits on another process, sharing the
    /// interests `common`: ask its hub.
    pub(super) fn propose(&mut self, id: ConnId, partner: ConnId, common: Vec<String>) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        conn.state = State::Pairing(partner);
        let who = conn.who();
        self.proposed.insert(id, Instant::now());
        self.tell(
            node_of(partner.rid()),
            Envelope::Pair {
                to: partner.rid(),
                from: id.rid(),
                visitor: who.visitor.as_i64(),
                address: who.address.as_i64(),
                common,
            },
        );
    }

    /// Tells `partner`'s process that `id` has gone.
    pub(super) fn tell_gone(&self, partner: ConnId, id: ConnId, how: Departure) {
        self.tell(
            node_of(partner.rid()),
            Envelope::Gone {
                to: partner.rid(),
                from: id.rid(),
                left: how == Departure::Left,
            },
        );
    }

    pub(super) fn on_cluster(&mut self, event: Event) {
        match event {
            Event::Inbound(envelopes) => {
                for envelope in envelopes {
                    self.on_envelope(envelope);
                }
                self.acknowledge();
            }
            Event::Down(nodes) => self.nodes_down(&nodes),
            Event::Rejoined => self.rejoin(),
            Event::Reachable => self.look_again(),
        }
    }

    fn on_envelope(&mut self, envelope: Envelope) {
        match envelope {
            Envelope::Frame {
                to,
                from,
                seq,
                frame,
            } => self.on_frame(ConnId::from_rid(to), ConnId::from_rid(from), seq, frame),
            Envelope::Pair {
                to,
                from,
                visitor,
                address,
                common,
            } => self.on_pair(
                ConnId::from_rid(to),
                ConnId::from_rid(from),
                who(visitor, address),
                common,
            ),
            Envelope::Accept {
                to,
                from,
                visitor,
                address,
                common,
            } => self.on_accept(
                ConnId::from_rid(to),
                ConnId::from_rid(from),
                who(visitor, address),
                common,
            ),
            Envelope::Refuse { to, from } => {
                let (id, partner) = (ConnId::from_rid(to), ConnId::from_rid(from));
                if self.state(id) == Some(State::Pairing(partner)) {
                    self.ask_again(id, partner);
                }
            }
            Envelope::Gone { to, from, left } => {
                let how = if left {
                    Departure::Left
                } else {
                    Departure::Lost
                };
                self.on_gone(ConnId::from_rid(to), ConnId::from_rid(from), how);
            }
            Envelope::Parted { a, b } => self.preferences.parted(
                VisitorKey::from_i64(a),
                VisitorKey::from_i64(b),
                Instant::now(),
            ),
            Envelope::Down { node } => self.nodes_down(&[node]),
            Envelope::Away { to, from, frames } => {
                let (to, from) = (ConnId::from_rid(to), ConnId::from_rid(from));
                self.on_notice(to, from, true);
                self.carry(to, from, frames);
            }
            Envelope::Back { to, from } => {
                self.on_notice(ConnId::from_rid(to), ConnId::from_rid(from), false)
            }
            Envelope::Token { to, from, digest } => {
                self.on_token(ConnId::from_rid(to), ConnId::from_rid(from), digest)
            }
            Envelope::Claim {
                digest,
                from,
                visitor,
                address,
            } => self.on_claim_envelope(&digest, ConnId::from_rid(from), who(visitor, address)),
            Envelope::Claimed {
                to,
                from,
                visitor,
                address,
                frames,
            } => self.on_claimed(
                ConnId::from_rid(to),
                ConnId::from_rid(from),
                who(visitor, address),
                frames,
            ),
            Envelope::Release { to, from } => {
                self.on_release(ConnId::from_rid(to), ConnId::from_rid(from))
            }
            Envelope::Released { to, from, frames } => {
                self.on_released(ConnId::from_rid(to), ConnId::from_rid(from), frames)
            }
            Envelope::Adopt { sides } => self.on_adopt(sides),
            // The inbox hands these to the relay, which holds the receipts.
            Envelope::Ack { .. } => {}
        }
    }

    pub(super) fn state(&self, id: ConnId) -> Option<State> {
        self.conns.get(&id).map(|c| c.state)
    }

    fn on_frame(&mut self, to: ConnId, from: ConnId, seq: u64, frame: String) {
        if self.state(to) != Some(State::Chatting(from)) {
            return; // the chat has ended here
        }
        let Some(partner) = self.remote.get_mut(&to) else {
            return;
        };
        // Acknowledged either way: a frame sent again is here already.
        let acked = self.acks.entry((from.rid(), to.rid())).or_default();
        *acked = (*acked).max(seq);
        if seq <= partner.last_seq {
            return;
        }
        partner.last_seq = seq;
        self.send(to, Outbound::Frame(frame));
    }

    /// Tells `partner`'s process that `id` is away (`away`), or back.
    pub(super) fn tell_remote_notice(&self, partner: ConnId, id: ConnId, away: bool) {
        let (to, from) = (partner.rid(), id.rid());
        let envelope = if away {
            Envelope::Away {
                to,
                from,
                frames: Vec::new(),
            }
        } else {
            Envelope::Back { to, from }
        };
        self.tell(node_of(to), envelope);
    }

    /// `from`, on another process, is away (`away`) or back.
    fn on_notice(&mut self, to: ConnId, from: ConnId, away: bool) {
        if self.state(to) != Some(State::Chatting(from)) {
            return;
        }
        let out = if away {
            // Held here too, in case `from`'s process cannot end the chat (it is stopping).
            let until = self.away_deadline();
            self.remote_away(to, Some(until));
            Outbound::PartnerAway
        } else {
            self.remote_away(to, None);
            Outbound::PartnerBack(None)
        };
        self.send(to, out);
    }

    /// Tells the senders' processes which of their frames this batch handed to sessions: one
    /// acknowledgement per process.
    fn acknowledge(&mut self) {
        if self.acks.is_empty() {
            return;
        }
        let mut by_node: std::collections::HashMap<u32, Vec<(i64, i64, u64)>> = Default::default();
        for ((from, to), seq) in self.acks.drain() {
            by_node
                .entry(node_of(from))
                .or_default()
                .push((from, to, seq));
        }
        for (node, acks) in by_node {
            self.tell(node, Envelope::Ack { acks });
        }
    }

    /// `from`, on another process, was paired with `to`, who waits here.
    fn on_pair(&mut self, to: ConnId, from: ConnId, visitor: Who, common: Vec<String>) {
        let node = node_of(from.rid());
        match self.state(to) {
            Some(State::Requested | State::Waiting) => {}
            Some(State::Chatting(p)) if p == from => return, // a proposal sent again
            _ => {
                self.tell(
                    node,
                    Envelope::Refuse {
                        to: from.rid(),
                        from: to.rid(),
                    },
                );
                return;
            }
        }
        let Some((mine, outbox)) = self.conns.get(&to).map(|c| (c.who(), c.outbox.clone())) else {
            return;
        };
        // The answer goes out before `to` can say anything, so it reaches `from`'s hub first.
        self.tell(
            node,
            Envelope::Accept {
                to: from.rid(),
                from: to.rid(),
                visitor: mine.visitor.as_i64(),
                address: mine.address.as_i64(),
                common: common.clone(),
            },
        );
        self.chat_remotely(to, from, visitor, outbox, common);
    }

    /// `from` still waited for `to`: they share `common` (as the proposal said).
    fn on_accept(&mut self, to: ConnId, from: ConnId, visitor: Who, common: Vec<String>) {
        if self.state(to) != Some(State::Pairing(from)) {
            // `to` left or gave up meanwhile: `from`'s side of the chat ends too.
            self.tell_gone(from, to, Departure::Lost);
            return;
        }
        self.proposed.remove(&to);
        let Some(outbox) = self.conns.get(&to).map(|c| c.outbox.clone()) else {
            return;
        };
        self.metrics.paired();
        self.chat_remotely(to, from, visitor, outbox, common);
    }

    fn chat_remotely(
        &mut self,
        me: ConnId,
        partner: ConnId,
        visitor: Who,
        outbox: link::OutboxSender,
        common: Vec<String>,
    ) {
        let Some(cluster) = &self.cluster else {
            return;
        };
        let link = link::remote(cluster.link(me, outbox, partner), partner, visitor);
        self.remote.insert(
            me,
            Partner {
                visitor: visitor.visitor,
                last_seq: 0,
            },
        );
        self.start_chat(me, partner, link, common.into());
    }

    fn on_gone(&mut self, to: ConnId, from: ConnId, how: Departure) {
        if self.state(to) != Some(State::Chatting(from)) {
            return;
        }
        self.end_remote_chat(to, how, false);
    }

    /// `id`'s chat with a partner on another process is over: the partner is gone `how`.
    /// `remove_rows`: when the partner's process will not remove them (it is dead).
    pub(super) fn end_remote_chat(&mut self, id: ConnId, how: Departure, remove_rows: bool) {
        let Some(partner) = self.remote.remove(&id) else {
            return;
        };
        self.forget_claims(id);
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        if let State::Chatting(other) = conn.state {
            self.drop_digest(other);
        }
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        conn.state = State::Ended;
        let visitor = conn.visitor;
        self.preferences
            .parted(visitor, partner.visitor, Instant::now());
        if remove_rows {
            self.submit(Op::Leave(id));
        }
        self.send(id, Outbound::PartnerGone(how));
    }

    /// Proposals unanswered for too long are given up (and the partner told, in case the
    /// answer is only late).
    pub(super) fn expire_proposals(&mut self, now: Instant) {
        if self.proposed.is_empty() {
            return;
        }
        let expired: Vec<ConnId> = self
            .proposed
            .iter()
            .filter(|(_, at)| now.saturating_duration_since(**at) > PROPOSAL_TIMEOUT)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            if let Some(State::Pairing(partner)) = self.state(id) {
                self.tell_gone(partner, id, Departure::Lost);
                self.ask_again(id, partner);
            } else {
                self.proposed.remove(&id);
            }
        }
    }

    /// These processes are dead: chats with their visitors end with `partner lost`, unless
    /// the visitor may resume elsewhere (its partner here hears `partner_away` and the chat
    /// is held for the grace), and proposals to them are given up.
    fn nodes_down(&mut self, nodes: &[u32]) {
        let mut lost = Vec::new();
        let mut away = Vec::new();
        let mut again = Vec::new();
        for (id, conn) in &self.conns {
            match conn.state {
                State::Chatting(p) if nodes.contains(&node_of(p.rid())) => {
                    if self.is_remote_away(*id) {
                        // Told already (the process said so as it stopped).
                    } else if self.resumable_partner(p) {
                        away.push(*id);
                    } else {
                        lost.push(*id);
                    }
                }
                State::Pairing(p) if nodes.contains(&node_of(p.rid())) => again.push((*id, p)),
                _ => {}
            }
        }
        for id in lost {
            self.end_remote_chat(id, Departure::Lost, true);
        }
        for id in away {
            let until = self.away_deadline();
            self.remote_away(id, Some(until));
            self.send(id, Outbound::PartnerAway);
        }
        for (id, partner) in again {
            self.ask_again(id, partner);
        }
    }

    /// Everyone waiting looks once more for a partner: some on other processes may have become
    /// reachable while they waited.
    fn look_again(&mut self) {
        let now = Instant::now();
        let waiting: Vec<(ConnId, VisitorKey)> = self
            .conns
            .iter()
            .filter(|(_, c)| c.state == State::Waiting)
            .map(|(id, c)| (*id, c.visitor))
            .collect();
        for (id, visitor) in waiting {
            let ask = self.preferences.again(id, visitor, now);
            self.submit(Op::Rematch(ask));
        }
    }

    /// The others took this process for dead and swept its rows: its chats with their
    /// visitors are over (theirs were closed), and its waiting visitors ask again.
    fn rejoin(&mut self) {
        let mut lost = Vec::new();
        let mut again = Vec::new();
        for (id, conn) in &self.conns {
            match conn.state {
                State::Chatting(_) if self.remote.contains_key(id) => lost.push(*id),
                State::Waiting => again.push(*id),
                State::Pairing(p) => {
                    self.tell_gone(p, *id, Departure::Lost);
                    again.push(*id);
                }
                _ => {}
            }
        }
        for id in lost {
            self.end_remote_chat(id, Departure::Lost, true);
        }
        for id in again {
            self.proposed.remove(&id);
            self.submit(Op::Leave(id));
            self.ask(id);
        }
    }
}
