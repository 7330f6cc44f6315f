//! The online count, and the hub's tick: what is due every quarter of a second (proposals,
//! away visitors and claims that ran out, visitors whose reason to wait has gone, and the
//! online count to clients whose copy is stale).

use std::time::Instant;

use super::{Hub, State, ONLINE_INTERVAL};
use crate::chat::link::Outbound;
use crate::chat::matchmaker::Op;
use crate::chat::protocol::ServerFrame;

impl Hub {
    /// The online count: this process's connections, or the whole cluster's.
    pub(super) fn online(&self) -> usize {
        self.online_of(self.conns.len())
    }

    /// The online count with `local` connections here.
    pub(super) fn online_of(&self, local: usize) -> usize {
        match &self.cluster {
            Some(cluster) => cluster.online(local),
            None => local,
        }
    }

    /// Asks again, with nothing avoided, for those whose reason to wait has run out; sends the
    /// online count to every client whose copy is stale, at most once per interval.
    pub(super) fn tick(&mut self, now: Instant) {
        self.expire_proposals(now);
        self.expire_away(now);
        self.expire_claims(now);
        for ask in self.preferences.due(now) {
            let waits = self
                .conns
                .get(&ask.id)
                .is_some_and(|c| c.state == State::Waiting);
            if waits {
                self.submit(Op::Rematch(ask));
            }
        }

        let count = self.online();
        if self.online_settled == Some(count) {
            return; // everyone has this count already: nothing to look at
        }
        let mut frame: Option<String> = None;
        let mut too_slow = Vec::new();
        let mut settled = true;
        for (id, conn) in self.conns.iter_mut() {
            if conn.online_sent == count {
                continue;
            }
            if now.duration_since(conn.online_sent_at) < ONLINE_INTERVAL {
                settled = false;
                continue;
            }
            let text = frame
                .get_or_insert_with(|| ServerFrame::Online { count }.to_json())
                .clone();
            match conn.outbox.try_send(Outbound::Frame(text)) {
                Ok(()) => {
                    conn.online_sent = count;
                    conn.online_sent_at = now;
                }
                Err(flume::TrySendError::Full(_)) => too_slow.push(*id),
                Err(flume::TrySendError::Disconnected(_)) => {}
            }
        }
        self.online_settled = settled.then_some(count);
        for id in too_slow {
            self.drop_slow(id);
        }
    }
}
