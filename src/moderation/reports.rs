//! Reports: a visitor's complaint about the stranger, with the reason, an optional note and
//! the chat's last messages as evidence (`Transcript`, kept in memory while the chat lives).

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::chat::ids::{ConnId, VisitorKey};
use crate::db::moderation::ReportRow;

/// Longest note, in characters.
pub const MAX_NOTE_CHARS: usize = 500;
/// Messages of a chat kept as evidence (both sides together, the latest).
pub const EVIDENCE_MESSAGES: usize = 20;

/// Why a visitor reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    Spam,
    Harassment,
    Sexual,
    UnderAge,
    Other,
}

impl Reason {
    pub const ALL: [Reason; 5] = [
        Reason::Spam,
        Reason::Harassment,
        Reason::Sexual,
        Reason::UnderAge,
        Reason::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Spam => "spam",
            Reason::Harassment => "harassment",
            Reason::Sexual => "sexual",
            Reason::UnderAge => "under_age",
            Reason::Other => "other",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Reason::ALL.into_iter().find(|r| r.as_str() == text)
    }
}

/// Why a report was refused (the error code `bad_report`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadReport {
    #[error("unknown reason: use spam, harassment, sexual, under_age or other")]
    Reason,
    #[error("the note is limited to {MAX_NOTE_CHARS} characters")]
    Note,
}

/// The reason and note of a report, checked: a known reason, a note of at most
/// `MAX_NOTE_CHARS` (none is an empty note).
pub fn check(reason: &str, note: Option<&str>) -> Result<(Reason, String), BadReport> {
    let reason = Reason::parse(reason).ok_or(BadReport::Reason)?;
    let note = note.unwrap_or_default().trim();
    if note.chars().nth(MAX_NOTE_CHARS).is_some() {
        return Err(BadReport::Note);
    }
    Ok((reason, note.to_owned()))
}

/// Who said a line of the evidence, as the moderator reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Reporter,
    Reported,
}

/// One message of the evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Line {
    pub from: Side,
    pub message: String,
}

/// The last `EVIDENCE_MESSAGES` messages of one live chat, in memory only, by sender. Shared
/// by both sides of a chat within one process; each side of a chat across processes keeps its
/// own (what it sent and what it received). Dropped with the chat.
#[derive(Debug, Default)]
pub struct Transcript {
    lines: VecDeque<(ConnId, Box<str>)>,
}

impl Transcript {
    pub fn record(&mut self, from: ConnId, message: &str) {
        if self.lines.len() == EVIDENCE_MESSAGES {
            self.lines.pop_front();
        }
        self.lines.push_back((from, message.into()));
    }

    /// The evidence as `reporter` tells it: its own lines `reporter`, the others `reported`.
    pub fn evidence_for(&self, reporter: ConnId) -> Vec<Line> {
        self.lines
            .iter()
            .map(|(from, message)| Line {
                from: if *from == reporter {
                    Side::Reporter
                } else {
                    Side::Reported
                },
                message: message.to_string(),
            })
            .collect()
    }
}

/// A report to file (see `Moderation::file_report`). Its `Debug` leaves out the note and the
/// evidence: chat text never reaches a log.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewReport {
    pub reason: Reason,
    pub note: String,
    /// The reported visitor's key and address key.
    pub reported: i64,
    pub reported_address: i64,
    pub reporter: i64,
    pub evidence: Vec<Line>,
}

impl std::fmt::Debug for NewReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewReport")
            .field("reason", &self.reason)
            .field("evidence_lines", &self.evidence.len())
            .finish_non_exhaustive()
    }
}

impl NewReport {
    pub fn new(
        (reason, note): (Reason, String),
        reported: (VisitorKey, VisitorKey),
        reporter: VisitorKey,
        evidence: Vec<Line>,
    ) -> Self {
        NewReport {
            reason,
            note,
            reported: reported.0.as_i64(),
            reported_address: reported.1.as_i64(),
            reporter: reporter.as_i64(),
            evidence,
        }
    }

    pub(super) fn row(&self, node: u32, now_ms: i64) -> ReportRow {
        ReportRow {
            id: super::bans::fresh_id(),
            created_ms: now_ms,
            node: i64::from(node),
            reason: self.reason.as_str().to_owned(),
            note: self.note.clone(),
            reported: self.reported,
            reported_address: self.reported_address,
            reporter: self.reporter,
            // Plain data: serializing cannot fail.
            evidence: serde_json::to_string(&self.evidence).unwrap_or_default(),
            dismissed: false,
        }
    }
}

/// A stored report, for the admin pages. Its `Debug` leaves out the note and the evidence.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub id: i64,
    /// Milliseconds since the Unix epoch.
    pub created_ms: i64,
    /// The process that took it.
    pub node: i64,
    /// `spam`, `harassment`, `sexual`, `under_age` or `other`.
    pub reason: String,
    pub note: String,
    /// The reported visitor's key (ban it with `BanKind::Visitor`) and address key
    /// (`BanKind::Address`).
    pub reported: i64,
    pub reported_address: i64,
    pub reporter: i64,
    /// Oldest first.
    pub evidence: Vec<Line>,
    pub dismissed: bool,
}

impl std::fmt::Debug for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Report")
            .field("id", &self.id)
            .field("created_ms", &self.created_ms)
            .field("reason", &self.reason)
            .field("reported", &self.reported)
            .field("evidence_lines", &self.evidence.len())
            .field("dismissed", &self.dismissed)
            .finish_non_exhaustive()
    }
}

impl From<ReportRow> for Report {
    fn from(row: ReportRow) -> Self {
        Report {
            id: row.id,
            created_ms: row.created_ms,
            node: row.node,
            reason: row.reason,
            note: row.note,
            reported: row.reported,
            reported_address: row.reported_address,
            reporter: row.reporter,
            evidence: serde_json::from_str(&row.evidence).unwrap_or_default(),
            dismissed: row.dismissed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_and_notes_are_checked() {
        assert_eq!(check("spam", None), Ok((Reason::Spam, String::new())));
        assert_eq!(
            check("under_age", Some(" hi ")),
            Ok((Reason::UnderAge, "hi".into()))
        );
        assert_eq!(check("rude", None), Err(BadReport::Reason));
        assert!(check("other", Some(&"é".repeat(500))).is_ok());
        assert_eq!(check("other", Some(&"é".repeat(501))), Err(BadReport::Note));
    }

    #[test]
    fn a_transcript_keeps_the_last_twenty_lines_labelled_for_the_reporter() {
        let ids = crate::chat::ids::ConnIds::with_node(1);
        let (a, b) = (ids.next(), ids.next());
        let mut t = Transcript::default();
        for i in 0..25 {
            t.record(if i % 2 == 0 { a } else { b }, &format!("m{i}"));
        }
        let lines = t.evidence_for(b);
        assert_eq!(lines.len(), EVIDENCE_MESSAGES);
        assert_eq!(lines[0].message, "m5");
        assert_eq!(lines[0].from, Side::Reporter); // m5 is b's
        assert_eq!(lines[1].from, Side::Reported);
    }
}
