//! RFC 6455 framing, server side.
//!
//! Why not tungstenite's `WebSocket`: it owns a read buffer per connection (128 KiB by
//! default, zero-filled) and writes one frame per `write` call. Here the caller reads into
//! a buffer of its own (bbrt-server: one per worker thread), the reader keeps only an
//! incomplete frame's tail and a fragmented message (and, when the caller limits the events
//! per feed, the undecoded rest of one input), and the caller writes many frames per
//! vectored write with [`put_header`].
//!
//! What [`FrameReader`] enforces: client frames must be masked; reserved bits must be zero
//! (no extension is negotiated, so no permessage-deflate); control frames are at most 125
//! bytes and never fragmented, and may arrive between the fragments of a message; a data
//! frame while a fragmented message is open, or a continuation without one, is a protocol
//! error (1002); a message over the message limit is 1009, refused from the header alone;
//! a text message that is not UTF-8 is 1007; a close frame's code must be one a peer may
//! send. Each [`FrameError`] names its RFC 6455 code in its documentation; which close code
//! the server then sends is the caller's.
//!
//! After an error, or once the caller says its own close ([`FrameReader::close`]), the
//! reader discards: it follows frame boundaries by their headers (at most 14 bytes held),
//! skips payloads without keeping them, and reports when the peer's close frame has gone
//! by ([`FrameReader::peer_closed`]). How many bytes and how long to discard for is the
//! caller's limit.

mod discard;
mod header;
mod reader;
mod write;

pub use self::header::unmask;
pub use self::reader::FrameReader;
pub use self::write::{client_frame, close_frame, control_frame, put_header};

/// Opcode of a continuation frame.
pub const OP_CONTINUATION: u8 = 0x0;
/// Opcode of a text frame.
pub const OP_TEXT: u8 = 0x1;
/// Opcode of a binary frame.
pub const OP_BINARY: u8 = 0x2;
/// Opcode of a close frame.
pub const OP_CLOSE: u8 = 0x8;
/// Opcode of a ping.
pub const OP_PING: u8 = 0x9;
/// Opcode of a pong.
pub const OP_PONG: u8 = 0xA;

/// Largest server frame header: 2 bytes + 8 bytes of extended length (no mask).
pub const MAX_HEADER: usize = 10;
/// Largest client frame header: 2 bytes + 8 bytes of extended length + 4 of mask.
pub const MAX_CLIENT_HEADER: usize = 14;
/// Largest control-frame payload (RFC 6455 §5.5).
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// A violation of the framing rules; the reader discards from then on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The peer broke the framing rules (RFC 6455: 1002).
    #[error("protocol error: {0}")]
    Protocol(&'static str),
    /// A message larger than the message limit (RFC 6455: 1009).
    #[error("message too big")]
    TooBig,
    /// A text message that is not UTF-8, or a close reason that is not (RFC 6455: 1007).
    #[error("invalid utf-8")]
    InvalidUtf8,
}

/// A complete message or control frame from the peer.
#[derive(Debug, PartialEq, Eq)]
pub enum WsEvent<'a> {
    /// A whole text message, validated UTF-8.
    Text(&'a str),
    /// A whole binary message (its bytes are not kept).
    Binary,
    /// A ping; answer with a pong carrying `payload`.
    Ping(&'a [u8]),
    /// A pong (any payload).
    Pong,
    /// A close frame with its code, if it had one. Nothing after it is read.
    Close(Option<u16>),
}

#[cfg(test)]
mod tests;
