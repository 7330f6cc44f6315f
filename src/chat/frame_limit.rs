//! Refuses an oversized WebSocket frame from its header, before its payload is buffered.
//!
//! actix-http's frame parser answers "need more data" until a whole frame is in, and only then
//! compares its length with the limit; actix-ws copies every chunk the connection delivers
//! into its own buffer meanwhile. A client announcing a 1 GiB frame could so grow the server
//! by as much as it cared to send. This stream sits between the request payload and actix-ws,
//! reads each frame header as it passes (payloads are skipped, never copied), and ends the
//! stream with an error as soon as a header announces more than the limit, a fragmented
//! message's running total exceeds it, or a header sets a reserved bit (no extension is ever
//! negotiated). The session turns the error into the right close code.
//!
//! It also holds back the error of a connection that broke (actix-http's payload error) by one
//! poll: actix-ws reads every chunk there is and, on an error, returns it without decoding the
//! bytes read before it in the same turn. A message a client sent just before its connection
//! dropped (often in the same packet as the FIN) would be lost, and this way it is answered.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use actix_web::error::PayloadError;
use actix_web::web::Bytes;
use futures_util::Stream;

/// Why the stream was cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Violation {
    /// One frame announced more than the limit (close 1009).
    FrameTooLarge,
    /// The frames of one fragmented message added up to more than the limit (close 1009).
    MessageTooLarge,
    /// A reserved (RSV) bit was set (close 1002).
    ReservedBits,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Violation::FrameTooLarge => "frame too large",
            Violation::MessageTooLarge => "message too large",
            Violation::ReservedBits => "reserved bits set",
        })
    }
}

impl std::error::Error for Violation {}

impl Violation {
    /// The violation behind an error that came out of actix-ws's stream, if it was ours.
    /// actix-ws wraps a payload error as `io::Error::other(PayloadError)`; we wrap ours as
    /// `PayloadError::Io(io::Error::other(Violation))`.
    pub fn of(e: &std::io::Error) -> Option<Violation> {
        let PayloadError::Io(inner) = e.get_ref()?.downcast_ref::<PayloadError>()? else {
            return None;
        };
        inner.get_ref()?.downcast_ref::<Violation>().copied()
    }
}

/// The longest frame header: 2 bytes, 8 of extended length, 4 of mask.
const MAX_HEADER: usize = 14;
const FIN: u8 = 0x80;
const RSV: u8 = 0x70;
const OPCODE: u8 = 0x0F;
const MASKED: u8 = 0x80;
const CONTINUATION: u8 = 0x0;

/// Where the reader is in the byte stream: inside a header or inside a payload.
#[derive(Debug, Default)]
struct Framing {
    header: [u8; MAX_HEADER],
    /// Header bytes collected so far; 0 while inside a payload (or between frames).
    have: u8,
    /// Payload bytes of the current frame still to skip.
    remaining: u64,
    /// Data bytes of the fragmented message in progress.
    message: u64,
}

impl Framing {
    /// Walks `chunk`. Returns the offset of the first byte of a violating frame's header within
    /// the chunk (0 when the header began in an earlier chunk) and the violation, if any.
    fn scan(&mut self, chunk: &[u8], max: u64) -> Option<(usize, Violation)> {
        let mut at = 0;
        while at < chunk.len() {
            if self.remaining > 0 {
                let skip = self.remaining.min((chunk.len() - at) as u64);
                self.remaining -= skip;
                at += skip as usize;
                continue;
            }
            let start = at.saturating_sub(usize::from(self.have));
            self.header[usize::from(self.have)] = chunk[at];
            self.have += 1;
            at += 1;
            let Some(len) = self.header_complete() else {
                continue;
            };
            self.have = 0;
            if let Some(violation) = self.check(len, max) {
                return Some((start, violation));
            }
            self.remaining = len;
        }
        None
    }

    /// The payload length once the whole header is in.
    fn header_complete(&self) -> Option<u64> {
        let have = usize::from(self.have);
        if have < 2 {
            return None;
        }
        let h = &self.header;
        let mask = if h[1] & MASKED != 0 { 4 } else { 0 };
        let (extended, len) = match h[1] & 0x7F {
            126 => (2, None),
            127 => (8, None),
            n => (0, Some(u64::from(n))),
        };
        if have < 2 + extended + mask {
            return None;
        }
        Some(len.unwrap_or_else(|| {
            h[2..2 + extended]
                .iter()
                .fold(0u64, |acc, b| (acc << 8) | u64::from(*b))
        }))
    }

    fn check(&mut self, len: u64, max: u64) -> Option<Violation> {
        let first = self.header[0];
        if first & RSV != 0 {
            return Some(Violation::ReservedBits);
        }
        if len > max {
            return Some(Violation::FrameTooLarge);
        }
        let opcode = first & OPCODE;
        // Control frames (8 and up) may come between the fragments of a message.
        if opcode < 0x8 {
            if opcode != CONTINUATION {
                self.message = 0;
            }
            self.message += len;
            if self.message > max {
                return Some(Violation::MessageTooLarge);
            }
            if first & FIN != 0 {
                self.message = 0;
            }
        }
        None
    }
}

/// The request payload of a WebSocket connection, cut at the first frame over `max` bytes.
pub struct FrameLimit<S> {
    inner: S,
    max: u64,
    framing: Framing,
    /// The violation found after the bytes already handed on; reported at the next poll.
    cut: Option<Violation>,
    /// Whether to yield once before reporting `cut`, so that actix-ws decodes (and the session
    /// answers) the whole frames handed on before it: it stops reading at the first error.
    hold: bool,
    /// The connection broke: reported at the next poll, after actix-ws has decoded what came
    /// before it.
    broken: Option<PayloadError>,
}

impl<S> FrameLimit<S> {
    pub fn new(inner: S, max_frame_bytes: usize) -> Self {
        FrameLimit {
            inner,
            max: max_frame_bytes as u64,
            framing: Framing::default(),
            cut: None,
            hold: false,
            broken: None,
        }
    }
}

fn error(violation: Violation) -> PayloadError {
    PayloadError::Io(std::io::Error::other(violation))
}

impl<S> Stream for FrameLimit<S>
where
    S: Stream<Item = Result<Bytes, PayloadError>> + Unpin,
{
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if let Some(violation) = this.cut {
            if std::mem::take(&mut this.hold) {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            // Stay cut: nothing after the violation is ever read.
            return Poll::Ready(Some(Err(error(violation))));
        }
        if let Some(e) = this.broken.take() {
            return Poll::Ready(Some(Err(e)));
        }
        let mut chunk = match Pin::new(&mut this.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => chunk,
            Poll::Ready(Some(Err(e))) => {
                this.broken = Some(e);
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            other => return other,
        };
        let Some((start, violation)) = this.framing.scan(&chunk, this.max) else {
            return Poll::Ready(Some(Ok(chunk)));
        };
        this.cut = Some(violation);
        if start == 0 {
            return Poll::Ready(Some(Err(error(violation))));
        }
        // Hand on the whole frames before the violating one, so they are still answered; the
        // error follows at the next poll.
        chunk.truncate(start);
        this.hold = true;
        Poll::Ready(Some(Ok(chunk)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A masked client frame header (the mask key is zero) for a payload of `len` bytes.
    fn header(first: u8, len: u64) -> Vec<u8> {
        let mut h = vec![first];
        match len {
            0..=125 => h.push(MASKED | len as u8),
            126..=0xFFFF => {
                h.push(MASKED | 126);
                h.extend_from_slice(&(len as u16).to_be_bytes());
            }
            _ => {
                h.push(MASKED | 127);
                h.extend_from_slice(&len.to_be_bytes());
            }
        }
        h.extend_from_slice(&[0; 4]);
        h
    }

    fn frame(first: u8, len: usize) -> Vec<u8> {
        let mut f = header(first, len as u64);
        f.extend(std::iter::repeat_n(b'x', len));
        f
    }

    /// Feeds `bytes` in chunks of `step` and returns where it was cut, if anywhere.
    fn scan_in_steps(bytes: &[u8], step: usize, max: u64) -> Option<(usize, Violation)> {
        let mut framing = Framing::default();
        let mut offset = 0;
        for chunk in bytes.chunks(step) {
            if let Some((start, v)) = framing.scan(chunk, max) {
                return Some((offset + start, v));
            }
            offset += chunk.len();
        }
        None
    }

    #[test]
    fn frames_within_the_limit_pass_in_any_chunking() {
        let mut bytes = frame(FIN | 0x1, 100);
        bytes.extend(frame(FIN | 0x9, 4)); // ping
        bytes.extend(frame(0x1, 300));
        bytes.extend(frame(0x9, 0)); // ping between fragments
        bytes.extend(frame(FIN, 300)); // 600 in all
        bytes.extend(frame(FIN | 0x2, 1000));
        for step in [1, 2, 3, 7, 64, 4096] {
            assert_eq!(scan_in_steps(&bytes, step, 1000), None, "step {step}");
        }
    }

    #[test]
    fn an_oversized_header_is_refused_before_its_payload() {
        let mut bytes = frame(FIN | 0x1, 10);
        let at = bytes.len();
        bytes.extend(header(FIN | 0x1, 1 << 30));
        let header_end = bytes.len() - 1;
        for step in [1, 5, 4096] {
            // The cut comes in the chunk that completes the header: at the header's start, or
            // at the start of that chunk when the header began in an earlier one.
            let cut = at.max(header_end / step * step);
            assert_eq!(
                scan_in_steps(&bytes, step, 1000),
                Some((cut, Violation::FrameTooLarge)),
                "step {step}"
            );
        }
    }

    #[test]
    fn a_fragmented_message_is_refused_once_its_total_is_over() {
        let mut bytes = frame(0x1, 600);
        let at = bytes.len();
        bytes.extend(frame(FIN, 600));
        assert_eq!(
            scan_in_steps(&bytes, 50, 1000),
            Some((at, Violation::MessageTooLarge))
        );
        // A new message starts its own count.
        let mut ok = frame(FIN | 0x1, 600);
        ok.extend(frame(FIN | 0x1, 600));
        assert_eq!(scan_in_steps(&ok, 50, 1000), None);
    }

    #[test]
    fn reserved_bits_are_refused() {
        let bytes = frame(FIN | 0x40 | 0x1, 3);
        assert_eq!(
            scan_in_steps(&bytes, 4096, 1000),
            Some((0, Violation::ReservedBits))
        );
    }
}
