//! A client frame's header: parsed and checked before any payload is read.

use super::{
    FrameError, MAX_CONTROL_PAYLOAD, OP_BINARY, OP_CLOSE, OP_CONTINUATION, OP_PING, OP_PONG,
    OP_TEXT,
};

/// A parsed client frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Header {
    pub(super) fin: bool,
    pub(super) opcode: u8,
    pub(super) mask: [u8; 4],
    pub(super) header_len: usize,
    pub(super) payload_len: usize,
}

/// Parses a client frame header. `Ok(None)`: more bytes are needed. `fragment`: the
/// bytes of the fragmented message open so far, if one is.
pub(super) fn parse_header(
    buf: &[u8],
    fragment: Option<usize>,
    max_message: usize,
) -> Result<Option<Header>, FrameError> {
    let [b0, b1, ..] = *buf else { return Ok(None) };
    if b0 & 0x70 != 0 {
        return Err(FrameError::Protocol("reserved bits set"));
    }
    let fin = b0 & 0x80 != 0;
    let opcode = b0 & 0x0F;
    let control = opcode & 0x8 != 0;
    let max_payload = match (opcode, fragment) {
        (OP_CLOSE | OP_PING | OP_PONG, _) => MAX_CONTROL_PAYLOAD,
        (OP_TEXT | OP_BINARY, None) => max_message,
        (OP_CONTINUATION, Some(so_far)) => max_message.saturating_sub(so_far),
        (OP_TEXT | OP_BINARY, Some(_)) => {
            return Err(FrameError::Protocol("new message inside a fragmented one"));
        }
        (OP_CONTINUATION, None) => {
            return Err(FrameError::Protocol("continuation without a message"));
        }
        _ => return Err(FrameError::Protocol("unknown opcode")),
    };
    if b1 & 0x80 == 0 {
        return Err(FrameError::Protocol("client frames must be masked"));
    }
    let len7 = (b1 & 0x7F) as usize;
    if control && (!fin || len7 > MAX_CONTROL_PAYLOAD) {
        return Err(FrameError::Protocol(
            "control frames must be final and at most 125 bytes",
        ));
    }
    let (payload_len, ext) = match len7 {
        126 => {
            let Some(b) = buf.get(2..4) else {
                return Ok(None);
            };
            (u16::from_be_bytes([b[0], b[1]]) as usize, 2)
        }
        127 => {
            let Some(b) = buf.get(2..10) else {
                return Ok(None);
            };
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            let len = u64::from_be_bytes(a);
            if len >> 63 != 0 {
                return Err(FrameError::Protocol("64-bit length with the high bit set"));
            }
            (usize::try_from(len).unwrap_or(usize::MAX), 8)
        }
        n => (n, 0),
    };
    if payload_len > max_payload {
        return Err(FrameError::TooBig);
    }
    let Some(m) = buf.get(2 + ext..2 + ext + 4) else {
        return Ok(None);
    };
    Ok(Some(Header {
        fin,
        opcode,
        mask: [m[0], m[1], m[2], m[3]],
        header_len: 2 + ext + 4,
        payload_len,
    }))
}

/// XORs `buf` with the client's masking key.
pub fn unmask(buf: &mut [u8], mask: [u8; 4]) {
    let word = u32::from_ne_bytes(mask);
    let mut chunks = buf.chunks_exact_mut(4);
    for chunk in &mut chunks {
        let v = u32::from_ne_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]) ^ word;
        chunk.copy_from_slice(&v.to_ne_bytes());
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= mask[i];
    }
}

/// Whether a peer may send `code` in a close frame (RFC 6455 §7.4, IANA registry).
pub(super) fn valid_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}
