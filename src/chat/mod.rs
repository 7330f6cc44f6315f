//! Everything about a conversation: the wire format, who is paired with whom (matchmaker, over
//! the database, with each visitor's preferences), the live connections and their
//! conversations (hub), one task per WebSocket (session), and the partner link between two
//! paired sessions (link).

pub mod frame_limit;
pub mod hub;
pub mod ids;
pub mod limits;
pub mod link;
pub mod matchmaker;
pub mod protocol;
pub mod resume;
pub mod session;
pub mod wants;
