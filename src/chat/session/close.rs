//! How a session's ending is told: the close code and reason the server sends (or none), and
//! the label it is counted under (`metrics::CLOSE_REASONS`).

use actix_ws::{CloseCode, CloseReason, ProtocolError};

use super::{End, Kick};
use crate::chat::frame_limit::Violation;
use crate::chat::link::Departure;

/// Why the stream of client frames failed. actix-ws reports bad UTF-8 (InvalidData), an
/// oversized fragmented message (Other, with its own text), our frame limit (a wrapped
/// `Violation`) and a broken connection (a wrapped `PayloadError`) all as I/O errors; only a
/// broken connection deserves no close frame.
pub(super) fn ended_by(e: ProtocolError) -> End {
    let ProtocolError::Io(io) = &e else {
        return End::Protocol(e);
    };
    if let Some(violation) = Violation::of(io) {
        return End::Limit(violation);
    }
    let broken = io
        .get_ref()
        .is_some_and(|inner| inner.is::<actix_web::error::PayloadError>());
    if broken {
        End::Gone
    } else {
        End::Protocol(e)
    }
}

pub(super) fn close_reason(end: &End) -> Option<CloseReason> {
    close_of(end).map(|(code, text)| CloseReason {
        code,
        description: Some(text.to_owned()),
    })
}

/// How an ending is counted (`metrics::CLOSE_REASONS`): the reason the server's close frame
/// gives, or what the client did when the close was its own.
pub(super) fn close_label(end: &End) -> &'static str {
    match end {
        End::ClientClosed => "client closed",
        _ => close_of(end).map_or("connection lost", |(_, text)| text),
    }
}

fn close_of(end: &End) -> Option<(CloseCode, &'static str)> {
    Some(match end {
        End::ClientClosed => (CloseCode::Normal, "bye"),
        End::Gone => return None,
        End::TimedOut => (CloseCode::Policy, "no heartbeat"),
        End::Protocol(ProtocolError::Overflow) => (CloseCode::Size, "frame too large"),
        End::Protocol(ProtocolError::Io(e)) if e.kind() == std::io::ErrorKind::InvalidData => {
            (CloseCode::Invalid, "invalid UTF-8")
        }
        End::Protocol(ProtocolError::Io(_)) => (CloseCode::Size, "message too large"),
        End::Limit(Violation::FrameTooLarge) => (CloseCode::Size, "frame too large"),
        End::Limit(Violation::MessageTooLarge) => (CloseCode::Size, "message too large"),
        End::Limit(Violation::ReservedBits) => (CloseCode::Protocol, "protocol error"),
        End::Protocol(_) => (CloseCode::Protocol, "protocol error"),
        End::PartnerGone(Departure::Left) => (CloseCode::Normal, "partner left"),
        End::PartnerGone(Departure::Lost) => (CloseCode::Normal, "partner lost"),
        End::Kicked(Kick::Shutdown) => (CloseCode::Away, "server shutting down"),
        End::Kicked(Kick::TooSlow) => (CloseCode::Policy, "not reading"),
        End::Kicked(Kick::Resumed) => (CloseCode::Normal, "resumed elsewhere"),
        End::Kicked(Kick::Restart) => (CloseCode::Restart, "service restart"),
        End::Flooding => (CloseCode::Policy, "rate limit exceeded"),
        End::Left => (CloseCode::Normal, "bye"),
        End::Reported(_) => (CloseCode::Normal, "reported"),
    })
}
