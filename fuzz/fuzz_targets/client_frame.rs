//! Fuzzes the decoder of client frames: any bytes a client can send as a text frame.
//! Run: `RUSTC_BOOTSTRAP=1 cargo fuzz run client_frame -- -max_total_time=60` (from the repo root).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pairchat::chat::protocol::{message_frames, parse_client_frame, ClientFrame};

fuzz_target!(|data: &[u8]| {
    // The server only ever sees valid UTF-8 here (invalid UTF-8 closes the socket with 1007).
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match parse_client_frame(text) {
        Ok(ClientFrame::Message(message)) => {
            // What is relayed parses back to exactly what was said.
            let (to_me, to_partner) = message_frames(&message);
            for frame in [to_me, to_partner] {
                let value: serde_json::Value =
                    serde_json::from_str(&frame).expect("relayed frames are JSON");
                assert_eq!(value["message"].as_str(), Some(message.as_ref()));
            }
        }
        Ok(ClientFrame::Report { reason, note }) => {
            // A report's reason and note are checked without a panic, whatever they hold.
            let _ = pairchat::moderation::reports::check(&reason, note.as_deref());
        }
        Ok(_) => {}
        Err(e) => {
            // Every refusal has a code and a detail for the client.
            assert!(!e.code().is_empty());
            assert!(!e.to_string().is_empty());
        }
    }
});
