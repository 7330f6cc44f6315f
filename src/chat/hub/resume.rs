//! The hub's side of resuming: the tokens it hands out with `response`, the visitors who are
//! away (their connection broke without a close; the chat is held for them for the grace),
//! and a new connection taking such a chat up again. An away visitor keeps its connection id,
//! its entry, its rows and its outbox (which its partner's frames still reach); the session
//! that resumes adopts all of them, so nothing else about the chat changes.

use std::time::Instant;

use tokio::sync::oneshot;

use super::handle::{AwayParts, Resumed};
use super::{error_frame, Hub, Kick, State};
use crate::chat::ids::{ConnId, Who};
use crate::chat::link::{Departure, Inbox, Outbound, OutboxSender, PartnerLink};
use crate::chat::resume::{Ask, Token};

/// A visitor whose connection broke: what its next connection takes over.
pub(super) struct Away {
    inbox: Inbox,
    link: PartnerLink,
    /// When the chat ends unless it is resumed.
    until: Instant,
    /// Its outbox was not told that its partner is away too (a chat handed over with both
    /// away): the connection that resumes it is, if the partner still is.
    unsaid: bool,
}

/// A connection that asked to resume the chat of one still connected: the old connection has
/// been told to go, and hands its parts over as it does.
pub(super) struct Pending {
    pub reply: oneshot::Sender<Option<Resumed>>,
    pub kick: oneshot::Sender<Kick>,
    pub fresh: Fresh,
}

impl Away {
    pub(super) fn new(inbox: Inbox, link: PartnerLink, until: Instant) -> Self {
        Away {
            inbox,
            link,
            until,
            unsaid: false,
        }
    }

    /// Away in a chat handed over, with its partner (`handover`).
    pub(super) fn adopted(inbox: Inbox, link: PartnerLink, until: Instant) -> Self {
        Away {
            unsaid: true,
            ..Away::new(inbox, link, until)
        }
    }

    /// Its partner came back on another connection: the link to it from now on.
    pub(super) fn relink(&mut self, link: PartnerLink) {
        self.link = link;
    }

    /// The outbox the away visitor's partner wrote to, and the link.
    pub(super) fn into_parts(self) -> (Inbox, PartnerLink) {
        (self.inbox, self.link)
    }
}

/// The new connection that asked to resume, as it would connect if it cannot.
pub(super) struct Fresh {
    pub id: ConnId,
    pub who: Who,
    pub outbox: OutboxSender,
}

impl Hub {
    /// A token for `id` in the chat it starts now (its last one, if any, is spent).
    pub(super) fn issue_token(&mut self, id: ConnId) -> Option<Token> {
        self.revoke_token(id);
        let token = Token::random()?;
        self.tokens.insert(token, id);
        self.token_of.insert(id, token);
        self.share_token(id, token);
        Some(token)
    }

    pub(super) fn revoke_token(&mut self, id: ConnId) {
        if let Some(token) = self.token_of.remove(&id) {
            self.tokens.remove(&token);
        }
        self.forget_adopted(id);
        self.drop_digest(id);
    }

    /// `id`'s session ended without a close (its connection broke, went silent, or another
    /// connection took its chat): its chat is held for the grace, or, when it cannot be, it
    /// leaves as lost.
    pub(super) fn away(&mut self, id: ConnId, parts: AwayParts) {
        let AwayParts { inbox, link } = parts;
        let chatting = matches!(self.state(id), Some(State::Chatting(_)));
        let pending = self.pending.remove(&id);
        // A chat is held for a visitor with a token (none: no grace), or taken over at once
        // by the connection that spent it.
        let claimed = pending.is_some() || self.token_of.contains_key(&id);
        if chatting && claimed && self.shutdown.is_some() && self.resumable_elsewhere(id) {
            // Its outbox goes with the notice (`stop_resumably` drains it).
            if let Some(link) = link {
                let until = Instant::now();
                self.away.insert(id, Away::new(inbox, link, until));
            }
            self.stop_resumably(id);
            return;
        }
        if let (true, Some(partner), Some(link)) = (chatting, self.heir_partner(id), &link) {
            // Both visitors are here: the chat goes to another process once both are parked.
            let link = link.clone();
            if let Some(pending) = pending {
                self.fail_resume(pending);
            }
            self.park(id, partner, inbox, link);
            return;
        }
        let holdable = chatting && claimed && self.shutdown.is_none();
        let (Some(link), true) = (link, holdable) else {
            if let Some(pending) = pending {
                self.fail_resume(pending);
            }
            self.leave(id, Departure::Lost);
            return;
        };
        if let Some(conn) = self.conns.get_mut(&id) {
            conn.kick = None;
        }
        let away = Away::new(inbox, link, Instant::now() + self.grace);
        match pending {
            // Taken over at once: the partner never saw it away.
            Some(pending) => self.adopt(id, away, pending.reply, pending.kick, false),
            None => {
                self.away.insert(id, away);
                self.tell_partner(id, Notice::Away);
                self.after_away(id);
            }
        }
    }

    /// A new connection asks to take a chat up again with `ask`.
    pub(super) fn resume(
        &mut self,
        ask: Ask,
        fresh: Fresh,
        kick: oneshot::Sender<Kick>,
        reply: oneshot::Sender<Option<Resumed>>,
    ) {
        let pending = Pending { reply, kick, fresh };
        let found = match ask {
            Ask::Token(token) if self.shutdown.is_none() => self
                .tokens
                .get(&token)
                .copied()
                .or_else(|| self.adopted_by_digest(&token.digest()))
                .ok_or(Some(token)),
            _ => Err(None),
        };
        let id = match found {
            Ok(id) => id,
            // Perhaps made on another process, or its partner is here.
            Err(Some(token)) => return self.claim_elsewhere(token, pending),
            Err(None) => return self.fail_resume(pending),
        };
        self.resume_here(id, pending);
    }

    /// The resume of `pending` takes up the chat of `id`, whose token this process knows.
    pub(super) fn resume_here(&mut self, id: ConnId, pending: Pending) {
        // Spent, whatever comes of it.
        self.revoke_token(id);
        if let Some(away) = self.away.remove(&id) {
            self.adopt(id, away, pending.reply, pending.kick, true);
        } else if let Some(State::Chatting(_)) = self.state(id) {
            // Its old connection is still here (it broke on the visitor's side only, or not
            // yet as the server sees it): it goes, and hands its chat over as it does.
            if let Some(earlier) = self.pending.insert(id, pending) {
                self.fail_resume(earlier);
            }
            self.kick(id, Kick::Resumed);
        } else {
            self.fail_resume(pending);
        }
    }

    /// The resuming connection becomes `id`: it takes its inbox and link, and a new token.
    fn adopt(
        &mut self,
        id: ConnId,
        away: Away,
        reply: oneshot::Sender<Option<Resumed>>,
        kick: oneshot::Sender<Kick>,
        was_away: bool,
    ) {
        let Some(token) = self.issue_token(id) else {
            self.leave(id, Departure::Lost);
            let _ = reply.send(None);
            return;
        };
        if let Some(conn) = self.conns.get_mut(&id) {
            conn.kick = Some(kick);
        }
        // Its new token, for the process that would sweep this one.
        self.record_chat(id);
        // Behind what waits in its outbox.
        if away.unsaid && self.partner_away_here(id) {
            self.send(id, Outbound::PartnerAway);
        }
        let resumed = Resumed {
            id,
            inbox: Some(away.inbox),
            link: away.link,
            token,
        };
        // The partner hears `partner_back` before anything the resumed visitor sends.
        if was_away {
            self.tell_partner(id, Notice::Back);
        }
        if let Err(Some(resumed)) = reply.send(Some(resumed)) {
            // The new connection went before it could take over: away again, as it was.
            if let Some(conn) = self.conns.get_mut(&id) {
                conn.kick = None;
            }
            self.revoke_token(id);
            self.token_of.insert(id, token);
            self.tokens.insert(token, id);
            let until = if was_away {
                away.until
            } else {
                Instant::now() + self.grace
            };
            let Some(inbox) = resumed.inbox else {
                self.leave(id, Departure::Lost);
                return;
            };
            self.away.insert(id, Away::new(inbox, resumed.link, until));
            self.tell_partner(id, Notice::Away);
        }
    }

    /// The resume cannot be: the new connection is an ordinary idle one, told so.
    pub(super) fn fail_resume(&mut self, pending: Pending) {
        let Pending { reply, kick, fresh } = pending;
        let Fresh { id, who, outbox } = fresh;
        self.connect(id, who, outbox, kick);
        self.send(
            id,
            error_frame(
                &self.metrics,
                "resume_failed",
                "That chat cannot be resumed (it has ended, or the link was used already).",
            ),
        );
        if reply.send(None).is_err() {
            self.leave(id, Departure::Lost);
        }
    }

    /// What `leave` forgets of `id` beyond its entry.
    pub(super) fn forget_resume(&mut self, id: ConnId) {
        self.revoke_token(id);
        self.away.remove(&id);
        if let Some(pending) = self.pending.remove(&id) {
            self.fail_resume(pending);
        }
    }

    /// Chats held past the grace end: the away visitor is lost.
    pub(super) fn expire_away(&mut self, now: Instant) {
        if self.away.is_empty() {
            return;
        }
        let expired: Vec<ConnId> = self
            .away
            .iter()
            .filter(|(_, away)| away.until <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            self.leave(id, Departure::Lost);
        }
    }

    /// On shutdown nobody will come back here: the away visitors are lost, but for those
    /// whose partner is on another process (they may resume there) and those whose chat can
    /// be handed over (their partner's session is told to end, and it goes then).
    pub(super) fn drop_away(&mut self) {
        let ids: Vec<ConnId> = self.away.keys().copied().collect();
        for id in ids {
            if !self.away.contains_key(&id) || self.stop_resumably(id) {
                continue; // handed over with its partner, or on its way elsewhere
            }
            match self.heir_partner(id) {
                Some(partner) if self.away.contains_key(&partner) => self.hand_over(id, partner),
                Some(_) => self.keep_parked(id),
                None => self.leave(id, Departure::Lost),
            }
        }
    }

    /// Away `id` waits (briefly) for its partner's session to end, to be handed over with it.
    fn keep_parked(&mut self, id: ConnId) {
        if let Some(away) = self.away.get_mut(&id) {
            away.until = away.until.min(Instant::now() + super::handover::PARK);
        }
    }

    /// Whether `id`'s partner is here, and away.
    fn partner_away_here(&self, id: ConnId) -> bool {
        match self.state(id) {
            Some(State::Chatting(partner)) => {
                !self.remote.contains_key(&id) && self.away.contains_key(&partner)
            }
            _ => false,
        }
    }

    /// Tells `id`'s partner (here or on another process) that `id` is away, or back.
    fn tell_partner(&mut self, id: ConnId, notice: Notice) {
        let Some(State::Chatting(partner)) = self.state(id) else {
            return;
        };
        if self.remote.contains_key(&id) {
            self.tell_remote_notice(partner, id, notice == Notice::Away);
            return;
        }
        let out = match notice {
            Notice::Away => Outbound::PartnerAway,
            Notice::Back => Outbound::PartnerBack(None),
        };
        if self.state(partner) == Some(State::Chatting(id)) {
            self.send(partner, out);
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Notice {
    Away,
    Back,
}
