//! Writers of server frames, and the one encoder of client frames (for tests and clients).

use bytes::{BufMut, BytesMut};

use super::header::unmask;
use super::{MAX_CONTROL_PAYLOAD, OP_CLOSE};

/// Appends an unmasked server frame header for a final frame of `opcode` and `len` bytes.
pub fn put_header(out: &mut BytesMut, opcode: u8, len: usize) {
    out.put_u8(0x80 | opcode);
    if len < 126 {
        out.put_u8(len as u8);
    } else if let Ok(len) = u16::try_from(len) {
        out.put_u8(126);
        out.put_u16(len);
    } else {
        out.put_u8(127);
        out.put_u64(len as u64);
    }
}

/// A whole client frame, masked with `mask`: what a client (or a test playing one) sends.
/// The server never masks; this is the one encoder of the client side, so tests, fuzz
/// targets and Rust clients do not each write their own.
pub fn client_frame(fin: bool, opcode: u8, mask: [u8; 4], payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(14 + payload.len());
    out.push(if fin { 0x80 } else { 0 } | opcode);
    let len = payload.len();
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if let Ok(len) = u16::try_from(len) {
        out.push(0x80 | 126);
        out.extend_from_slice(&len.to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(&mask);
    let start = out.len();
    out.extend_from_slice(payload);
    unmask(&mut out[start..], mask);
    out
}

/// A whole close frame: code and reason (the reason is cut to fit 125 bytes).
pub fn close_frame(code: u16, reason: &str) -> BytesMut {
    let mut reason = reason;
    while reason.len() > MAX_CONTROL_PAYLOAD - 2 {
        let mut cut = MAX_CONTROL_PAYLOAD - 2;
        while !reason.is_char_boundary(cut) {
            cut -= 1;
        }
        reason = &reason[..cut];
    }
    let mut out = BytesMut::with_capacity(4 + reason.len());
    put_header(&mut out, OP_CLOSE, 2 + reason.len());
    out.put_u16(code);
    out.put_slice(reason.as_bytes());
    out
}

/// A whole control frame (ping, pong, or a close without a code) with `payload` (cut to
/// 125 bytes).
pub fn control_frame(opcode: u8, payload: &[u8]) -> BytesMut {
    let payload = &payload[..payload.len().min(MAX_CONTROL_PAYLOAD)];
    let mut out = BytesMut::with_capacity(2 + payload.len());
    put_header(&mut out, opcode, payload.len());
    out.put_slice(payload);
    out
}
