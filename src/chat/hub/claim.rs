//! Resuming across processes. The process that holds a visitor's partner is the one a resume
//! of that visitor's chat claims the chat from: it knows the digest of the visitor's token (it
//! made it, or the visitor's process sent it with `Token`), so a claim carries only the digest,
//! and the token never leaves the process that made it.
//!
//! A resume that lands on a process that does not know the token asks every process (`Claim`).
//! The partner's process checks the digest, fetches what the visitor's old connection had not
//! written yet (its own outbox here, or from the old process with `Release` while that one is
//! alive), switches its visitor's link to the new connection, sends `partner_back` and what it
//! held, and grants the claim with what was fetched (`Claimed`), which the new connection
//! writes first. A claim nobody grants in time is `resume_failed`.
//!
//! The partner's process also keeps its own clock for a partner who is away on another process
//! (that process may be dead, or stopping): when the grace has run out there, the chat ends
//! `partner lost` whatever became of the other side.
//!
//! The chat rows name the connections of the pairing, and the liveness sweep removes a dead
//! process's chats by them: a chat resumed on another connection keeps none (the holder
//! removes them as it grants the claim), so no sweep can end it, and its end has none to
//! remove. The rows are the record of who waits and who was paired; a resumed chat is the
//! hubs' alone, as its messages always were.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures_util::{FutureExt, StreamExt};

use super::handle::Resumed;
use super::remote::Partner;
use super::resume::Pending;
use super::{Hub, Kick, State};
use crate::chat::ids::{ConnId, Who};
use crate::chat::link::{self, Departure, Inbox, Outbound};
use crate::chat::matchmaker::Op;
use crate::chat::resume::Token;
use crate::cluster::wire::{node_of, Envelope};

/// How long a resume waits for a process to grant its claim, at least; and longer than it
/// takes the others to find a dead process and adopt its chats (`Cluster::adoption_within`),
/// whose visitors resume at once (the page does not know its process died).
const CLAIM_TIMEOUT: Duration = Duration::from_secs(4);
/// How much longer than that adoption time.
const CLAIM_MARGIN: Duration = Duration::from_secs(2);
/// When an unanswered claim is first asked again, then at twice the gap each time, up to
/// `CLAIM_AGAIN_MAX`: the process that can grant it may learn the token's digest only after
/// the claim went out (a chat handed over by a stopping process or adopted from a dead one,
/// or a partner's process told a new digest), and a claim it did not know is dropped. A token
/// nobody knows (a wrong one) is so broadcast about five times in all.
const CLAIM_AGAIN: Duration = Duration::from_millis(750);
const CLAIM_AGAIN_MAX: Duration = Duration::from_secs(2);
/// How long the partner's process waits for the old process to hand over what it had not
/// written before it grants the claim without it.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(2);
/// How much longer than the grace the partner's process waits for a partner away on another
/// process before it ends the chat itself (the away side's process ends it at the grace).
const AWAY_MARGIN: Duration = Duration::from_secs(1);

/// A new connection that claims a chat: who it is and where.
#[derive(Debug, Clone, Copy)]
pub(super) struct Claim {
    claimer: ConnId,
    who: Who,
}

/// A resume here waiting for another process to grant its claim.
struct Asking {
    pending: Pending,
    digest: String,
    /// When it was first asked, and last; how long until it is asked again.
    since: Instant,
    last: Instant,
    gap: Duration,
}

#[derive(Default)]
pub(super) struct Claims {
    /// Digests of the tokens this process can grant a claim for: the token's owner and its
    /// partner here (the holder).
    held: HashMap<String, (ConnId, ConnId)>,
    held_of: HashMap<ConnId, String>,
    /// Resumes here waiting for another process to grant their claim.
    asking: HashMap<ConnId, Asking>,
    /// Claims granted once the owner's old connection here has gone (it is being closed).
    after_kick: HashMap<ConnId, Claim>,
    /// Claims granted once the owner's old process has handed over what it had not written,
    /// by holder.
    releasing: HashMap<ConnId, (Claim, Instant)>,
    /// Owners here whose old connection is being closed, to be released to their holder.
    release_after_kick: HashMap<ConnId, ConnId>,
    /// Holders here whose partner is away on another process, and until when.
    away_until: HashMap<ConnId, Instant>,
    /// What a stopping process had not written to the away partner of each holder here: the
    /// connection that resumes gets it first.
    carried: HashMap<ConnId, Vec<String>>,
}

impl Hub {
    fn node(&self) -> Option<u32> {
        self.cluster.as_ref().map(|c| c.node())
    }

    /// `owner` (here or on another process) has the token of `digest`; `holder`, here, is its
    /// partner.
    pub(super) fn hold_digest(&mut self, owner: ConnId, holder: ConnId, digest: String) {
        self.drop_digest(owner);
        self.claims.held_of.insert(owner, digest.clone());
        self.claims.held.insert(digest, (owner, holder));
    }

    /// `owner`'s token is spent, or its chat over: no claim for it is granted here.
    pub(super) fn drop_digest(&mut self, owner: ConnId) {
        if let Some(digest) = self.claims.held_of.remove(&owner) {
            self.claims.held.remove(&digest);
        }
    }

    /// A token was issued to `id`, in a chat: whoever grants claims for it learns its digest.
    pub(super) fn share_token(&mut self, id: ConnId, token: Token) {
        if self.cluster.is_none() {
            return;
        }
        let Some(State::Chatting(partner)) = self.state(id) else {
            return;
        };
        if self.remote.contains_key(&id) {
            let envelope = Envelope::Token {
                to: partner.rid(),
                from: id.rid(),
                digest: token.digest(),
            };
            self.tell(node_of(partner.rid()), envelope);
        } else {
            self.hold_digest(id, partner, token.digest());
        }
    }

    /// `from`, on another process, has a token now (its digest).
    pub(super) fn on_token(&mut self, to: ConnId, from: ConnId, digest: String) {
        if self.state(to) == Some(State::Chatting(from)) {
            self.hold_digest(from, to, digest);
        }
    }

    /// A resume whose token this process did not make: ask the process that holds the
    /// partner (this one, or any other).
    pub(super) fn claim_elsewhere(&mut self, token: Token, pending: Pending) {
        if self.cluster.is_none() || self.grace.is_zero() || self.shutdown.is_some() {
            return self.fail_resume(pending);
        }
        let digest = token.digest();
        let claim = Claim {
            claimer: pending.fresh.id,
            who: pending.fresh.who,
        };
        let now = Instant::now();
        let asking = Asking {
            pending,
            digest: digest.clone(),
            since: now,
            last: now,
            gap: CLAIM_AGAIN,
        };
        self.claims.asking.insert(claim.claimer, asking);
        self.ask_claim(&digest, claim);
    }

    /// Resumes here that asked the other processes for a chat handed to this one meanwhile
    /// (`handover`) take it up here.
    pub(super) fn resume_adopted_claims(&mut self) {
        if self.claims.asking.is_empty() {
            return;
        }
        let found: Vec<(ConnId, ConnId)> = self
            .claims
            .asking
            .iter()
            .filter_map(|(claimer, asking)| {
                let id = self.adopted_by_digest(&asking.digest)?;
                Some((*claimer, id))
            })
            .collect();
        for (claimer, id) in found {
            if let Some(asking) = self.claims.asking.remove(&claimer) {
                self.resume_here(id, asking.pending);
            }
        }
    }

    /// Asks for the claim of `digest`: here, if the partner is here, or of every process.
    fn ask_claim(&mut self, digest: &str, claim: Claim) {
        if self.claims.held.contains_key(digest) {
            self.on_claim(digest, claim);
        } else if let Some(cluster) = &self.cluster {
            cluster.broadcast(&Envelope::Claim {
                digest: digest.to_owned(),
                from: claim.claimer.rid(),
                visitor: claim.who.visitor.as_i64(),
                address: claim.who.address.as_i64(),
            });
        }
    }

    /// Someone claims the chat of the token of `digest`: granted if its partner is here.
    pub(super) fn on_claim_envelope(&mut self, digest: &str, from: ConnId, who: Who) {
        self.on_claim(digest, Claim { claimer: from, who });
    }

    fn on_claim(&mut self, digest: &str, claim: Claim) {
        let Some(&(owner, holder)) = self.claims.held.get(digest) else {
            return;
        };
        if self.state(holder) != Some(State::Chatting(owner)) {
            return;
        }
        // Spent, whatever comes of it.
        self.drop_digest(owner);
        tracing::debug!(%owner, %holder, claimer = %claim.claimer, "resume claimed");
        let Some(me) = self.node() else { return };
        let node = node_of(owner.rid());
        if node == me {
            if self.away.contains_key(&owner) {
                let frames = self.drop_quietly(owner);
                self.grant(holder, claim, frames);
            } else {
                // Its old connection is still here: it goes, and the claim is granted then.
                self.claims.after_kick.insert(owner, claim);
                self.kick(owner, Kick::Resumed);
            }
        } else if node != node_of(claim.claimer.rid())
            && self.cluster.as_ref().is_some_and(|c| c.reachable(node))
        {
            self.claims
                .releasing
                .insert(holder, (claim, Instant::now()));
            self.tell(
                node,
                Envelope::Release {
                    to: owner.rid(),
                    from: holder.rid(),
                },
            );
        } else {
            self.grant(holder, claim, Vec::new());
        }
    }

    /// `owner`'s chat goes on elsewhere: it goes from here without a word to its partner or
    /// the rows, and what its outbox held (unwritten) is returned, in order.
    pub(super) fn drop_quietly(&mut self, owner: ConnId) -> Vec<String> {
        let mut frames = Vec::new();
        if let Some(State::Chatting(partner)) = self.state(owner) {
            if !self.remote.contains_key(&owner) {
                self.unrecord_chat(owner, partner);
            }
            // Its partner's claims are granted where `owner` goes on, not here.
            if self
                .claims
                .held
                .get(self.claims.held_of.get(&partner).map_or("", |d| d))
                .is_some_and(|(_, holder)| *holder == owner)
            {
                self.drop_digest(partner);
            }
        }
        if let Some(away) = self.away.remove(&owner) {
            let (inbox, _) = away.into_parts();
            frames = drain(inbox);
        }
        self.revoke_token(owner);
        self.remote.remove(&owner);
        self.preferences.forget(owner);
        self.asked_at.remove(&owner);
        if let Some(pending) = self.pending.remove(&owner) {
            self.fail_resume(pending);
        }
        self.conns.remove(&owner);
        self.check_shutdown_done();
        frames
    }

    /// The old process of `to` (here) is asked for what `to` had not written of its partner's
    /// frames; `to` goes.
    pub(super) fn on_release(&mut self, to: ConnId, from: ConnId) {
        tracing::debug!(owner = %to, holder = %from, away = self.away.contains_key(&to), "release asked");
        if self.state(to) == Some(State::Chatting(from)) && !self.away.contains_key(&to) {
            self.claims.release_after_kick.insert(to, from);
            self.kick(to, Kick::Resumed);
            return;
        }
        let frames = if self.state(to) == Some(State::Chatting(from)) {
            self.drop_quietly(to)
        } else {
            Vec::new()
        };
        self.tell(
            node_of(from.rid()),
            Envelope::Released {
                to: from.rid(),
                from: to.rid(),
                frames,
            },
        );
    }

    pub(super) fn on_released(&mut self, to: ConnId, from: ConnId, frames: Vec<String>) {
        tracing::debug!(holder = %to, owner = %from, frames = frames.len(), "released");
        let Some((claim, _)) = self.claims.releasing.remove(&to) else {
            return;
        };
        if self.state(to) == Some(State::Chatting(from)) {
            self.grant(to, claim, frames);
        }
    }

    /// A visitor here went away while a claim or a release waited for it to go.
    pub(super) fn after_away(&mut self, id: ConnId) {
        if let Some(holder) = self.claims.release_after_kick.remove(&id) {
            self.on_release(id, holder);
        } else if let Some(claim) = self.claims.after_kick.remove(&id) {
            let Some(State::Chatting(holder)) = self.state(id) else {
                return;
            };
            let frames = self.drop_quietly(id);
            if self.state(holder) == Some(State::Chatting(id)) {
                self.grant(holder, claim, frames);
            }
        }
    }

    /// `holder` talks with the claimer from now on: its link switches, it hears
    /// `partner_back` and what it held goes; the claimer is told, with `frames` first.
    fn grant(&mut self, holder: ConnId, claim: Claim, frames: Vec<String>) {
        tracing::debug!(%holder, claimer = %claim.claimer, frames = frames.len(), "resume granted");
        let Some(cluster) = self.cluster.clone() else {
            return;
        };
        let Some(conn) = self.conns.get_mut(&holder) else {
            return;
        };
        conn.state = State::Chatting(claim.claimer);
        let (outbox, who) = (conn.outbox.clone(), conn.who());
        self.remote.insert(
            holder,
            Partner {
                visitor: claim.who.visitor,
                last_seq: 0,
            },
        );
        self.claims.away_until.remove(&holder);
        let frames = match self.claims.carried.remove(&holder) {
            Some(mut carried) => {
                carried.extend(frames);
                carried
            }
            None => frames,
        };
        self.submit(Op::Leave(holder));
        let link = link::remote(
            cluster.link(holder, outbox, claim.claimer),
            claim.claimer,
            claim.who,
        );
        // The claimer hears first (the same relay queue then carries the holder's frames to
        // it behind this), and the holder's link switches before anything from the claimer
        // can reach it (that comes through this hub, after this).
        if node_of(claim.claimer.rid()) == cluster.node() {
            self.on_claimed(claim.claimer, holder, who, frames);
        } else {
            self.tell(
                node_of(claim.claimer.rid()),
                Envelope::Claimed {
                    to: claim.claimer.rid(),
                    from: holder.rid(),
                    visitor: who.visitor.as_i64(),
                    address: who.address.as_i64(),
                    frames,
                },
            );
        }
        match self.away.get_mut(&holder) {
            // Away itself (its chat was handed to this process): it resumes on this link.
            Some(away) => away.relink(link),
            None => self.send(holder, Outbound::PartnerBack(Some(Box::new(link)))),
        }
        // The claimer's process holds the holder's partner now: a resume of the holder's
        // chat is claimed from there.
        if let Some(token) = self.token_of.get(&holder).copied() {
            self.share_token(holder, token);
        } else {
            self.share_adopted_digest(holder, claim.claimer);
        }
        // The holder is away too (its chat was handed to this process): the claimer hears so,
        // and holds what it says until the holder is back.
        if self.away.contains_key(&holder) {
            self.tell_remote_notice(claim.claimer, holder, true);
        }
    }

    /// The claim of `to` (a resume here) is granted: it talks with `from` from now on.
    pub(super) fn on_claimed(&mut self, to: ConnId, from: ConnId, who: Who, frames: Vec<String>) {
        let Some(Asking { pending, .. }) = self.claims.asking.remove(&to) else {
            // Given up meanwhile: the chat ends on the other side too.
            self.tell_gone(from, to, Departure::Lost);
            return;
        };
        let Some(cluster) = self.cluster.clone() else {
            return;
        };
        let Pending { reply, kick, fresh } = pending;
        self.connect(fresh.id, fresh.who, fresh.outbox.clone(), kick);
        let Some(conn) = self.conns.get_mut(&to) else {
            let _ = reply.send(None);
            self.tell_gone(from, to, Departure::Lost);
            return;
        };
        conn.state = State::Chatting(from);
        self.remote.insert(
            to,
            Partner {
                visitor: who.visitor,
                last_seq: 0,
            },
        );
        let link = link::remote(cluster.link(to, fresh.outbox, from), from, who);
        let Some(token) = self.issue_token(to) else {
            let _ = reply.send(None);
            self.leave(to, Departure::Lost);
            return;
        };
        for frame in frames {
            self.send(to, Outbound::Frame(frame));
        }
        let resumed = Resumed {
            id: to,
            inbox: None,
            link,
            token,
        };
        if reply.send(Some(resumed)).is_err() {
            self.leave(to, Departure::Lost);
        }
    }

    /// `partner`, on another process, is away (`Some`: held until then) or back (`None`).
    pub(super) fn remote_away(&mut self, holder: ConnId, until: Option<Instant>) {
        match until {
            Some(until) => {
                self.claims.away_until.entry(holder).or_insert(until);
            }
            None => {
                self.claims.away_until.remove(&holder);
            }
        }
    }

    /// When a partner away on another process is given up here.
    pub(super) fn away_deadline(&self) -> Instant {
        Instant::now() + self.grace + AWAY_MARGIN
    }

    /// Whether the chat of `holder` (here) with `partner`, whose process is dead, can be held
    /// for `partner` to resume elsewhere: its token's digest is known here.
    pub(super) fn resumable_partner(&self, partner: ConnId) -> bool {
        !self.grace.is_zero() && self.claims.held_of.contains_key(&partner)
    }

    pub(super) fn is_remote_away(&self, holder: ConnId) -> bool {
        self.claims.away_until.contains_key(&holder)
    }

    /// `from`, away from a stopping process, had `frames` of `to`'s not yet written.
    pub(super) fn carry(&mut self, to: ConnId, from: ConnId, frames: Vec<String>) {
        if !frames.is_empty() && self.state(to) == Some(State::Chatting(from)) {
            self.claims.carried.insert(to, frames);
        }
    }

    /// What `leave` forgets of `id` as a holder.
    pub(super) fn forget_claims(&mut self, id: ConnId) {
        self.claims.carried.remove(&id);
        self.claims.away_until.remove(&id);
        self.claims.releasing.remove(&id);
        self.claims.after_kick.remove(&id);
        self.claims.release_after_kick.remove(&id);
    }

    /// Claims unanswered in time fail; releases unanswered are granted without what the old
    /// process held; chats whose partner stayed away on another process past the grace end.
    pub(super) fn expire_claims(&mut self, now: Instant) {
        let timeout = match &self.cluster {
            Some(cluster) => CLAIM_TIMEOUT.max(cluster.adoption_within() + CLAIM_MARGIN),
            None => CLAIM_TIMEOUT,
        };
        let mut late = Vec::new();
        let mut again = Vec::new();
        for (id, asking) in &mut self.claims.asking {
            if now.saturating_duration_since(asking.since) > timeout {
                late.push(*id);
            } else if now.saturating_duration_since(asking.last) >= asking.gap {
                asking.last = now;
                asking.gap = (asking.gap * 2).min(CLAIM_AGAIN_MAX);
                let who = asking.pending.fresh.who;
                again.push((asking.digest.clone(), Claim { claimer: *id, who }));
            }
        }
        for id in late {
            if let Some(asking) = self.claims.asking.remove(&id) {
                self.fail_resume(asking.pending);
            }
        }
        // A chat handed to this process meanwhile is taken up here, not asked for again.
        self.resume_adopted_claims();
        for (digest, claim) in again {
            if self.claims.asking.contains_key(&claim.claimer) {
                self.ask_claim(&digest, claim);
            }
        }
        let late: Vec<ConnId> = self
            .claims
            .releasing
            .iter()
            .filter(|(_, (_, at))| now.saturating_duration_since(*at) > RELEASE_TIMEOUT)
            .map(|(id, _)| *id)
            .collect();
        for holder in late {
            if let Some((claim, _)) = self.claims.releasing.remove(&holder) {
                if matches!(self.state(holder), Some(State::Chatting(_))) {
                    self.grant(holder, claim, Vec::new());
                }
            }
        }
        let gone: Vec<ConnId> = self
            .claims
            .away_until
            .iter()
            .filter(|(_, until)| **until <= now)
            .map(|(id, _)| *id)
            .collect();
        for holder in gone {
            self.claims.away_until.remove(&holder);
            self.end_remote_chat(holder, Departure::Lost, true);
        }
    }

    /// Whether `id`'s chat can go on from another process when this one stops: its partner
    /// is on another process, and it has a token.
    pub(super) fn resumable_elsewhere(&self, id: ConnId) -> bool {
        matches!(self.state(id), Some(State::Chatting(_)))
            && self.remote.contains_key(&id)
            && self.token_of.contains_key(&id)
    }

    /// On shutdown: `id`'s partner is on another process, and may take the chat up again
    /// there. It is told `id` is away, with what `id` had not yet written of its frames, and
    /// `id` goes without removing the rows (the partner's process does, when the chat ends).
    pub(super) fn stop_resumably(&mut self, id: ConnId) -> bool {
        let Some(State::Chatting(partner)) = self.state(id) else {
            return false;
        };
        if !self.resumable_elsewhere(id) {
            return false;
        }
        let frames = self.drop_quietly(id);
        self.tell(
            node_of(partner.rid()),
            Envelope::Away {
                to: partner.rid(),
                from: id.rid(),
                frames,
            },
        );
        true
    }
}

/// What waits in an outbox nobody reads any more: its frames, in order.
pub(super) fn drain(mut inbox: Inbox) -> Vec<String> {
    let mut frames = Vec::new();
    while let Some(Some(out)) = inbox.next().now_or_never() {
        if let Outbound::Frame(frame) = out {
            frames.push(frame);
        }
    }
    frames
}
