//! The decoder never panics, and whatever it accepts encodes back to something it accepts
//! as the same frame.
#![no_main]

use bbrt_protocol::wire::{Limits, ServerMessage, decode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = ServerMessage::decode(data);
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let limits = Limits::default();
    if let Ok(frame) = decode(text, &limits) {
        let again = decode(&frame.encode(), &limits)
            .expect("an accepted frame re-encodes to a valid frame");
        assert_eq!(again, frame);
    }
});
