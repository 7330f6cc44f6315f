//! Keeping it civil: what stops bots and abusers (the challenge gate).

pub mod challenge;
