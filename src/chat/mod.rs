//! Everything about a conversation: the wire format, who is paired with whom (matchmaker, over
//! the database), the live connections (hub), and one task per WebSocket (session).

pub mod frame_limit;
pub mod hub;
pub mod ids;
pub mod limits;
pub mod matchmaker;
pub mod protocol;
pub mod session;
