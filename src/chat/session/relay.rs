//! Relaying a visitor's message to its partner: the checks a message passes, and what the
//! sender is answered (its receipt, or `undelivered`) whichever kind of link the partner is
//! (here, on another process, or away). Never touches the database or waits.

use tokio::time::Instant;

use super::{refuse, Client, Reply, Write};
use crate::chat::link::{Delivery, HeldMessage};
use crate::chat::protocol::{message_frames, ServerFrame};
use crate::metrics::Metrics;

impl Client {
    pub(super) fn relay_message(&mut self, message: &str, received: Instant) -> Reply {
        let metrics = self.hub.metrics();
        if message.trim().is_empty() {
            return refuse(metrics, "empty_message", "Empty messages are not sent.");
        }
        let max = self.config.max_message_chars;
        if message.chars().nth(max).is_some() {
            return refuse(
                metrics,
                "message_too_long",
                format!("Messages are limited to {max} characters."),
            );
        }
        let (to_me, to_partner) = message_frames(message);
        Ok(self
            .relay(to_partner, to_me, received, Some(message))
            .map(Write::Text))
    }

    /// Hands a message to the partner: what to write back, if anything (the receipt, or
    /// `undelivered`). `text`: the message, for the evidence (`None`: kept already, when it
    /// was held).
    pub(super) fn relay(
        &mut self,
        to_partner: String,
        to_me: String,
        received: Instant,
        text: Option<&str>,
    ) -> Option<String> {
        let me = self.id;
        let partner = self.partner.as_ref()?;
        let metrics = self.hub.metrics();
        if partner.is_away() {
            // Held, unreceipted, until the partner is back.
            let held = HeldMessage { to_partner, to_me };
            if !partner.hold_message(held) {
                return Some(not_back_frame(metrics));
            }
            if let Some(text) = text {
                partner.record(me, text);
            }
            return None;
        }
        if let Some(remote) = partner.remote() {
            // On another process: the receipt follows once the message is on its way there.
            return if remote.send_message(to_partner, to_me, received.into_std()) {
                if let Some(text) = text {
                    partner.record(me, text);
                }
                None
            } else {
                Some(crate::cluster::relay::undelivered_frame(metrics))
            };
        }
        match partner.deliver(to_partner) {
            Delivery::Delivered => {
                if let Some(text) = text {
                    partner.record(me, text);
                }
                metrics.relayed(received.into_std());
                // The sender's copy is its receipt: only for what reached the partner's queue.
                Some(to_me)
            }
            Delivery::Full => {
                self.hub.report_slow(partner.partner());
                None
            }
            // The partner's connection is closing (away or gone, which we hear next): not
            // delivered, and said so rather than left without a receipt.
            Delivery::Gone => Some(not_back_frame(metrics)),
        }
    }
}

/// The error for a message that never reached the partner (it was away and did not come back,
/// or there was no room to hold it).
pub(super) fn not_back_frame(metrics: &Metrics) -> String {
    metrics.error_sent("undelivered");
    ServerFrame::error(
        "undelivered",
        "This message could not be delivered: your partner's connection dropped.",
    )
    .to_json()
}
