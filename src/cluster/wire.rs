//! What processes say to each other over Redis: one JSON envelope per stream entry, in the
//! stream of the process it is for. Messages between two sessions carry a sequence number per
//! sender, so a batch sent again after a broken connection is taken once.

use serde::{Deserialize, Serialize};

/// One entry of a process's stream. `to` and `from` are connection ids (`ConnId::rid`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "k")]
pub enum Envelope {
    /// A chat or typing frame for `to`, already the JSON its socket gets.
    #[serde(rename = "m")]
    Frame {
        to: i64,
        from: i64,
        seq: u64,
        frame: String,
    },
    /// The sender's matchmaker paired `from` with `to`, who waits on this process: answer
    /// `Accept` if `to` still waits, `Refuse` if not.
    /// `visitor` and `address`: who `from` is (its keys; see `chat::ids::Who`), so that its
    /// partner can report it. `address` is 0 from a process that predates it.
    /// `common`: the interests the two share (absent from a process that predates them).
    #[serde(rename = "p")]
    Pair {
        to: i64,
        from: i64,
        visitor: i64,
        #[serde(default)]
        address: i64,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        common: Vec<String>,
    },
    /// The answer to `Pair`, with its `common` sent back.
    #[serde(rename = "a")]
    Accept {
        to: i64,
        from: i64,
        visitor: i64,
        #[serde(default)]
        address: i64,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        common: Vec<String>,
    },
    #[serde(rename = "r")]
    Refuse { to: i64, from: i64 },
    /// `from` has gone: `left` when it closed its socket, otherwise lost.
    #[serde(rename = "g")]
    Gone { to: i64, from: i64, left: bool },
    /// Two visitors just stopped talking: every process keeps them apart for the cooldown.
    #[serde(rename = "x")]
    Parted { a: i64, b: i64 },
    /// `from`'s connection broke: its chat with `to` is held for it (`chat::resume`).
    /// `frames`: from a stopping process, what `from` had been given of `to`'s frames (and
    /// receipted) but not yet written, in order; `to`'s process hands them to the connection
    /// that resumes the chat.
    #[serde(rename = "w")]
    Away {
        to: i64,
        from: i64,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        frames: Vec<String>,
    },
    /// `from` is back (it resumed its chat with `to`).
    #[serde(rename = "b")]
    Back { to: i64, from: i64 },
    /// The SHA-256 of `from`'s resume token (`chat::resume::Token::digest`): the process of
    /// its partner `to` is the one a resume of `from`'s chat claims the chat from.
    #[serde(rename = "t")]
    Token { to: i64, from: i64, digest: String },
    /// A new connection `from` (on the sender's process, who is `visitor`/`address`) asks to
    /// resume the chat of the token whose digest is `digest`. Broadcast: only the process
    /// that holds the token's partner answers (`Claimed`).
    #[serde(rename = "c")]
    Claim {
        digest: String,
        from: i64,
        visitor: i64,
        address: i64,
    },
    /// `to`'s claim is granted: it talks with `from` (who is `visitor`/`address`) from now on.
    /// `frames`: what `from` sent that was taken (and receipted) but not yet written to the
    /// old connection, in order; they come first.
    #[serde(rename = "cd")]
    Claimed {
        to: i64,
        from: i64,
        visitor: i64,
        address: i64,
        frames: Vec<String>,
    },
    /// `to`'s chat with `from` was resumed on another process: `to` goes without a word to its
    /// partner, and hands over what waits in its outbox (`Released`).
    #[serde(rename = "rl")]
    Release { to: i64, from: i64 },
    /// What `from`'s old connection had not yet written of what `to` sent, in order.
    #[serde(rename = "rd")]
    Released {
        to: i64,
        from: i64,
        frames: Vec<String>,
    },
    /// A stopping process hands over a chat whose two visitors were both on it (they were
    /// closed with 1012): the receiver holds it as if both had gone away there, and grants
    /// their resumes (`chat::hub::handover`).
    #[serde(rename = "ad")]
    Adopt { sides: [AdoptedSide; 2] },
    /// The process `node` is stopping.
    #[serde(rename = "d")]
    Down { node: u32 },
    /// Frames that reached their partners on the sending process: `(from, to, seq)`,
    /// everything from `from` to `to` up to `seq`. Their senders' receipts can be written.
    /// Per pair of connections, not per sender: a visitor whose partner resumed elsewhere
    /// talks to a new connection, and what it sent the old one is not acknowledged by the
    /// new one's acknowledgements.
    #[serde(rename = "k")]
    Ack { acks: Vec<(i64, i64, u64)> },
}

/// One visitor of a chat handed over (`Envelope::Adopt`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdoptedSide {
    /// Who it is (see `chat::ids::Who`).
    pub visitor: i64,
    pub address: i64,
    /// The digest of its resume token.
    pub digest: String,
    /// What it had been given of its partner's frames (and receipted) but not yet written,
    /// in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub frames: Vec<String>,
}

impl Envelope {
    pub fn to_json(&self) -> String {
        // Plain data with string keys: serializing cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn parse(bytes: &[u8]) -> Option<Envelope> {
        serde_json::from_slice(bytes).ok()
    }
}

/// The process (node id) a connection id belongs to: its high half (see `chat::ids`).
pub fn node_of(rid: i64) -> u32 {
    (rid >> 32) as u32
}

/// The Redis keys of one cluster (every process on one database shares them).
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    /// `cluster`: the id the database keeps for its processes (see `db::nodes`).
    pub fn new(cluster: &str) -> Self {
        Keys {
            prefix: format!("pairchat:{cluster}:"),
        }
    }

    /// Sorted set: node id → when it last said it was alive (Redis's clock, ms).
    pub fn nodes(&self) -> String {
        format!("{}nodes", self.prefix)
    }

    /// Hash: node id → its connection count.
    pub fn online(&self) -> String {
        format!("{}online", self.prefix)
    }

    /// Hash: node id → its figures for the admin view (JSON, see `admin::figures`).
    pub fn figures(&self) -> String {
        format!("{}figures", self.prefix)
    }

    /// Set while `node` counts as dead to the others, so that it learns so if it comes back.
    pub fn dead(&self, node: u32) -> String {
        format!("{}dead:{node}", self.prefix)
    }

    /// The one sweeper's lock.
    pub fn sweeper(&self) -> String {
        format!("{}sweeper", self.prefix)
    }

    /// The stream `node` reads.
    pub fn inbox(&self, node: u32) -> String {
        format!("{}in:{node}", self.prefix)
    }

    /// Hash: chat key → its two sides (JSON, as `Envelope::Adopt` carries them), for each chat
    /// whose two visitors are both on `node`: what the process that sweeps `node` adopts.
    pub fn held(&self, node: u32) -> String {
        format!("{}held:{node}", self.prefix)
    }

    /// Counter: chats `address` (its keyed hash) started in the minute `minute` (Unix time / 60).
    pub fn chat_starts(&self, address: i64, minute: u64) -> String {
        format!("{}starts:{address}:{minute}", self.prefix)
    }

    /// Set once a challenge (named by its salt) has been solved: it cannot be used again.
    pub fn challenge_used(&self, salt: &str) -> String {
        format!("{}altcha:{salt}", self.prefix)
    }

    /// Adds to `pipe` what takes `node` out of the cluster: its place in the sorted set, its
    /// count and its stream.
    pub fn forget(&self, pipe: &mut redis::Pipeline, node: u32) {
        pipe.cmd("ZREM").arg(self.nodes()).arg(node).ignore();
        pipe.cmd("HDEL").arg(self.online()).arg(node).ignore();
        pipe.cmd("HDEL").arg(self.figures()).arg(node).ignore();
        pipe.cmd("DEL").arg(self.inbox(node)).ignore();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_round_trip_and_junk_is_refused() {
        let all = [
            Envelope::Frame {
                to: 1 << 32 | 7,
                from: 2 << 32 | 9,
                seq: 3,
                frame: r#"{"type":"message","message":"hi \"you\"","from":"guest"}"#.into(),
            },
            Envelope::Pair {
                to: 1,
                from: 2,
                visitor: -5,
                address: 8,
                common: vec!["music".into(), "café racer".into()],
            },
            Envelope::Accept {
                to: 1,
                from: 2,
                visitor: 6,
                address: -4,
                common: Vec::new(),
            },
            Envelope::Refuse { to: 1, from: 2 },
            Envelope::Gone {
                to: 1,
                from: 2,
                left: true,
            },
            Envelope::Parted { a: 1, b: 2 },
            Envelope::Down { node: 42 },
            Envelope::Away {
                to: 1,
                from: 2,
                frames: vec![],
            },
            Envelope::Away {
                to: 1,
                from: 2,
                frames: vec!["{}".into()],
            },
            Envelope::Back { to: 1, from: 2 },
            Envelope::Token {
                to: 1,
                from: 2,
                digest: "ab".into(),
            },
            Envelope::Claim {
                digest: "ab".into(),
                from: 3,
                visitor: 4,
                address: 5,
            },
            Envelope::Claimed {
                to: 3,
                from: 1,
                visitor: 6,
                address: 7,
                frames: vec!["{}".into()],
            },
            Envelope::Release { to: 2, from: 1 },
            Envelope::Released {
                to: 1,
                from: 2,
                frames: vec![],
            },
            Envelope::Ack {
                acks: vec![(1 << 32 | 7, 2 << 32 | 1, 12), (5, 6, 1)],
            },
            Envelope::Adopt {
                sides: [
                    AdoptedSide {
                        visitor: 1,
                        address: -2,
                        digest: "ab".into(),
                        frames: vec!["{}".into()],
                    },
                    AdoptedSide {
                        visitor: 3,
                        address: 4,
                        digest: "cd".into(),
                        frames: vec![],
                    },
                ],
            },
        ];
        for e in all {
            assert_eq!(Envelope::parse(e.to_json().as_bytes()), Some(e));
        }
        for junk in ["", "{}", r#"{"k":"m"}"#, r#"{"k":"zz","to":1}"#, "[1]"] {
            assert_eq!(Envelope::parse(junk.as_bytes()), None, "{junk}");
        }
        assert_eq!(node_of(7 << 32 | 3), 7);
    }
}
