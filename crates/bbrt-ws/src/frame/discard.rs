//! What the reader does after an error or its own close: skip frames by their headers.

use super::{MAX_CLIENT_HEADER, OP_CLOSE};

/// Skips frames by their headers, keeping none of their bytes, until the peer's close.
///
/// Lenient on purpose: after a violation the peer's framing may be off, and any frame
/// boundary read from a length field is as good a guess as another; the caller's byte
/// and time limits end a stream that never gets to a close.
#[derive(Debug, Default)]
pub(super) struct Discard {
    header: [u8; MAX_CLIENT_HEADER],
    have: u8,
    /// Payload bytes of the current frame still to skip.
    skip: u64,
    /// The current frame is the peer's close.
    closing: bool,
}

impl Discard {
    /// `true` once the peer's close frame has gone by.
    pub(super) fn feed(&mut self, mut input: &[u8]) -> bool {
        loop {
            if self.skip > 0 {
                let n = usize::try_from(self.skip)
                    .unwrap_or(usize::MAX)
                    .min(input.len());
                self.skip -= n as u64;
                input = &input[n..];
                if self.skip > 0 {
                    return false;
                }
            }
            if self.closing {
                return true;
            }
            let have = usize::from(self.have);
            let target = match self.header {
                _ if have < 2 => 2,
                [_, b1, ..] => {
                    let ext = match b1 & 0x7F {
                        126 => 2,
                        127 => 8,
                        _ => 0,
                    };
                    2 + ext + if b1 & 0x80 != 0 { 4 } else { 0 }
                }
            };
            if have < target {
                if input.is_empty() {
                    return false;
                }
                let take = (target - have).min(input.len());
                self.header[have..have + take].copy_from_slice(&input[..take]);
                self.have += take as u8;
                input = &input[take..];
                continue;
            }
            let h = &self.header;
            self.skip = match h[1] & 0x7F {
                126 => u64::from(u16::from_be_bytes([h[2], h[3]])),
                127 => u64::from_be_bytes([h[2], h[3], h[4], h[5], h[6], h[7], h[8], h[9]]),
                n => u64::from(n),
            };
            self.closing = h[0] & 0x0F == OP_CLOSE;
            self.have = 0;
        }
    }
}
