//! A connection's rate budgets: chat frames (messages, requests, reports) within the rate
//! limit, typing notices and WebSocket pings and pongs within budgets of their own; a client
//! that keeps on flooding is closed.

use super::{
    refuse, typing_burst, Client, End, Reply, CONTROL_BURST, CONTROL_PER_SEC, FLOOD_STRIKES,
    TYPING_PER_MESSAGE,
};

/// The rate budgets of a connection.
#[derive(Debug, Clone, Copy)]
pub(super) enum Budget {
    Chat,
    Typing,
    Control,
}

impl Client {
    /// `None` for a chat frame within the rate limit; otherwise the refusal, or the end of a
    /// client that keeps on flooding.
    pub(super) fn over_rate(&mut self) -> Option<Reply> {
        let refused = self.over_budget(Budget::Chat)?;
        if refused.is_err() {
            return Some(refused);
        }
        let rate = self.config.rate_per_sec;
        Some(refuse(
            self.hub.metrics(),
            "rate_limited",
            format!("Too many frames: at most {rate} a second. This one was dropped."),
        ))
    }

    /// `None` when `budget` has a token for one more frame; otherwise `Ok(None)` (drop the
    /// frame) or the end of a client that has been refused too often in a row.
    pub(super) fn over_budget(&mut self, budget: Budget) -> Option<Reply> {
        let config = &self.config;
        let (tokens, per_sec, burst) = match budget {
            Budget::Chat => (
                &mut self.chat_tokens,
                config.rate_per_sec,
                config.rate_burst,
            ),
            Budget::Typing => (
                &mut self.typing_tokens,
                config.rate_per_sec * TYPING_PER_MESSAGE,
                typing_burst(config),
            ),
            Budget::Control => (&mut self.control_tokens, CONTROL_PER_SEC, CONTROL_BURST),
        };
        // Truncated on purpose: the buckets' clock wraps every 49 days and they allow for it.
        let now_ms = self.born.elapsed().as_millis() as u32;
        if tokens.try_take(now_ms, per_sec, burst) {
            self.strikes = 0;
            return None;
        }
        self.strikes += 1;
        if self.strikes > FLOOD_STRIKES {
            return Some(Err(End::Flooding));
        }
        Some(Ok(None))
    }
}
