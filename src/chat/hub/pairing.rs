//! The hub's side of pairing: asking the matchmaker, applying its answers (the rows are the
//! record), and giving two visitors a link to each other.

use std::sync::Arc;
use std::time::Instant;

use super::{unavailable_frame, Entry, Hub, State};
use crate::chat::ids::{ConnId, VisitorKey};
use crate::chat::link::{self, Outbound};
use crate::chat::matchmaker::{Decision, Op, Outcome};
use crate::chat::protocol::ServerFrame;
use crate::cluster;

impl Hub {
    /// Asks the matchmaker for a partner for `id` (again, for a visitor whose rows were taken
    /// away: from its side it still waits), with what its visitor avoids now.
    pub(super) fn ask(&mut self, id: ConnId) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        let now = Instant::now();
        // A fresh request starts the wait; asking again for one already waiting does not.
        if conn.state == State::Idle {
            self.asked_at.insert(id, now);
        }
        conn.state = State::Requested;
        let ask = self.preferences.ask(id, conn.visitor, now);
        self.submit(Op::Request(ask));
    }

    /// A pairing of `id` with `partner` came to nothing (the partner is gone, or refused, or
    /// its process did): the partner's rows go, and `id` asks again.
    pub(super) fn ask_again(&mut self, id: ConnId, partner: ConnId) {
        self.proposed.remove(&id);
        self.submit(Op::Leave(partner));
        self.ask(id);
    }

    /// Applies the matchmaker's answer. The rows are the record; when they name a connection
    /// this process no longer has (it left meanwhile, or is a ghost of a crashed process), the
    /// rows are removed and whoever is still here asks again.
    pub(super) fn decide(&mut self, decision: Decision) {
        let (id, outcome) = match decision {
            Decision::Flushed(token) => {
                if let Some(reply) = self.flushes.remove(&token) {
                    let _ = reply.send(());
                }
                return;
            }
            Decision::Request { conn, outcome } => (conn, outcome),
        };
        let requested = |hub: &Self, c: ConnId| {
            hub.conns
                .get(&c)
                .is_some_and(|c| matches!(c.state, State::Requested | State::Waiting))
        };
        match outcome {
            Outcome::Waiting => {
                if let Some(conn) = self.conns.get_mut(&id) {
                    if conn.state == State::Requested {
                        conn.state = State::Waiting;
                        let visitor = conn.visitor;
                        self.preferences.waiting(id, visitor, Instant::now());
                        self.send(id, Outbound::Frame(ServerFrame::Waiting.to_json()));
                    }
                }
            }
            Outcome::Unavailable => {
                if let Some(conn) = self.conns.get_mut(&id) {
                    if matches!(conn.state, State::Requested | State::Waiting) {
                        conn.state = State::Idle;
                        self.asked_at.remove(&id);
                        self.preferences.forget(id);
                        self.send(id, Outbound::Frame(unavailable_frame(&self.metrics)));
                    }
                }
            }
            Outcome::Paired { partner, common } => {
                match (requested(self, id), requested(self, partner)) {
                    (true, true) => self.pair(id, partner, common.into()),
                    (true, false) if self.is_remote(partner) => self.propose(id, partner, common),
                    // The partner's removal (queued already, or now for a ghost) takes our row.
                    (true, false) => self.ask_again(id, partner),
                    (false, true) => {
                        // Our own removal is queued already and takes the partner's row with it.
                        self.ask(partner);
                    }
                    (false, false) => {}
                }
            }
        }
    }

    /// Gives two waiting connections a link to each other; they share the interests `common`.
    pub(super) fn pair(&mut self, a: ConnId, b: ConnId, common: Arc<[String]>) {
        let side = |c: &Entry| (c.outbox.clone(), c.who());
        let (Some((a_outbox, a_who)), Some((b_outbox, b_who))) =
            (self.conns.get(&a).map(side), self.conns.get(&b).map(side))
        else {
            return;
        };
        let (to_b, to_a) = link::pair((a, a_outbox, a_who), (b, b_outbox, b_who));
        self.metrics.paired();
        for (me, other, link) in [(a, b, to_b), (b, a, to_a)] {
            // The first may be dropped as too slow on the way, and the second then told that.
            if !self.conns.contains_key(&other) {
                continue;
            }
            self.start_chat(me, other, link, common.clone());
        }
        self.record_chat(a);
    }

    /// `me` talks to `other` from now on, over `link`; they share the interests `common`.
    pub(super) fn start_chat(
        &mut self,
        me: ConnId,
        other: ConnId,
        link: link::PartnerLink,
        common: Arc<[String]>,
    ) {
        if let Some(conn) = self.conns.get_mut(&me) {
            conn.state = State::Chatting(other);
        }
        if let Some(asked) = self.asked_at.remove(&me) {
            self.metrics
                .waited_for_partner(Instant::now().saturating_duration_since(asked));
        }
        self.preferences.forget(me);
        let resume = if self.grace.is_zero() {
            None
        } else {
            self.issue_token(me)
        };
        let paired = link::Paired {
            link,
            common,
            resume,
        };
        self.send(me, Outbound::Paired(Box::new(paired)));
    }

    /// Two visitors stopped talking: they avoid each other for the cooldown, on every process.
    pub(super) fn part(&mut self, a: VisitorKey, b: VisitorKey) {
        self.preferences.parted(a, b, Instant::now());
        if let Some(cluster) = &self.cluster {
            cluster.broadcast(&cluster::wire::Envelope::Parted {
                a: a.as_i64(),
                b: b.as_i64(),
            });
        }
    }
}
