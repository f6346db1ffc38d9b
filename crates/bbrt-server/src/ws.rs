//! RFC 6455 framing, server side, over bytes the connection reads itself.
//!
//! Why not tungstenite's `WebSocket`: it owns a read buffer per connection (128 KiB by
//! default, zero-filled) and writes one frame per `write` call. Here the connection reads
//! into a per-worker scratch buffer and keeps only an incomplete frame's tail, and the
//! writer sends many frames per vectored write (see `connection.rs` and `docs/server.md`).
//!
//! What this module enforces: client frames must be masked; reserved bits must be zero
//! (no extension is negotiated, so no permessage-deflate); control frames are at most 125
//! bytes and never fragmented, and may arrive between the fragments of a message; a data
//! frame while a fragmented message is open, or a continuation without one, is a protocol
//! error (1002); a message over the frame limit is 1009; a text message that is not UTF-8
//! is 1007; a close frame's code must be one a peer may send.

use bytes::{BufMut, BytesMut};

pub(crate) const OP_CONTINUATION: u8 = 0x0;
pub(crate) const OP_TEXT: u8 = 0x1;
pub(crate) const OP_BINARY: u8 = 0x2;
pub(crate) const OP_CLOSE: u8 = 0x8;
pub(crate) const OP_PING: u8 = 0x9;
pub(crate) const OP_PONG: u8 = 0xA;

/// Largest server frame header: 2 bytes + 8 bytes of extended length (no mask).
pub(crate) const MAX_HEADER: usize = 10;

/// A violation that ends the connection with a close code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FrameError {
    /// 1002: the peer broke the framing rules.
    #[error("protocol error: {0}")]
    Protocol(&'static str),
    /// 1009: a message larger than the frame limit.
    #[error("message too big")]
    TooBig,
    /// 1007: a text message that is not UTF-8 (or a close reason that is not).
    #[error("invalid utf-8")]
    InvalidUtf8,
}

impl FrameError {
    /// The close code this violation is answered with.
    pub(crate) fn close_code(self) -> u16 {
        match self {
            Self::Protocol(_) => 1002,
            Self::TooBig => 1009,
            Self::InvalidUtf8 => 1007,
        }
    }
}

/// A complete message or control frame from the peer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum WsEvent<'a> {
    /// A whole text message, validated UTF-8.
    Text(&'a str),
    /// A whole binary message (its bytes are not kept).
    Binary,
    /// A ping; answer with a pong carrying `payload`.
    Ping(&'a [u8]),
    /// A pong (any payload).
    Pong,
    /// A close frame with its code, if it had one.
    Close(Option<u16>),
}

/// A parsed client frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Header {
    fin: bool,
    opcode: u8,
    mask: [u8; 4],
    header_len: usize,
    payload_len: usize,
}

/// Parses a client frame header. `Ok(None)`: more bytes are needed.
fn parse_header(buf: &[u8], max_payload: usize) -> Result<Option<Header>, FrameError> {
    let [b0, b1, ..] = *buf else { return Ok(None) };
    if b0 & 0x70 != 0 {
        return Err(FrameError::Protocol("reserved bits set"));
    }
    let fin = b0 & 0x80 != 0;
    let opcode = b0 & 0x0F;
    let control = opcode & 0x8 != 0;
    match opcode {
        OP_CONTINUATION | OP_TEXT | OP_BINARY | OP_CLOSE | OP_PING | OP_PONG => {}
        _ => return Err(FrameError::Protocol("unknown opcode")),
    }
    if b1 & 0x80 == 0 {
        return Err(FrameError::Protocol("client frames must be masked"));
    }
    let len7 = (b1 & 0x7F) as usize;
    if control && (!fin || len7 > 125) {
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
    let mask = [m[0], m[1], m[2], m[3]];
    Ok(Some(Header {
        fin,
        opcode,
        mask,
        header_len: 2 + ext + 4,
        payload_len,
    }))
}

/// XORs `buf` with the client's masking key.
pub(crate) fn unmask(buf: &mut [u8], mask: [u8; 4]) {
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
fn valid_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// The state of a fragmented message being reassembled.
#[derive(Debug, Default)]
struct Fragments {
    /// `Some(OP_TEXT | OP_BINARY)` while a fragmented message is open.
    opcode: Option<u8>,
    payload: Vec<u8>,
}

/// Per-connection read state: only an incomplete frame's tail and a fragmented message
/// in progress. Both are empty (no allocation) while the connection is idle.
#[derive(Debug, Default)]
pub(crate) struct FrameReader {
    tail: Vec<u8>,
    fragments: Fragments,
    /// Set after a close frame: everything after it is ignored.
    closed: bool,
}

impl FrameReader {
    /// Feeds freshly read bytes (they are unmasked in place). Calls `on` for each complete
    /// message or control frame; `on` returns `false` to stop (the rest is dropped).
    pub(crate) fn feed(
        &mut self,
        input: &mut [u8],
        max_message: usize,
        on: &mut dyn FnMut(WsEvent<'_>) -> bool,
    ) -> Result<(), FrameError> {
        if self.closed {
            return Ok(());
        }
        if self.tail.is_empty() {
            let (consumed, stop) = process(input, &mut self.fragments, max_message, on)?;
            if stop {
                self.closed = true;
                return Ok(());
            }
            if consumed < input.len() {
                self.tail.extend_from_slice(&input[consumed..]);
            }
        } else {
            self.tail.extend_from_slice(input);
            let (consumed, stop) = process(&mut self.tail, &mut self.fragments, max_message, on)?;
            if stop {
                self.closed = true;
                self.tail = Vec::new();
                return Ok(());
            }
            if consumed == self.tail.len() {
                // Free the buffer: an idle connection holds nothing.
                self.tail = Vec::new();
            } else {
                self.tail.drain(..consumed);
            }
        }
        Ok(())
    }

    /// Bytes held for an incomplete frame or message (for tests and metrics).
    #[cfg(test)]
    pub(crate) fn buffered(&self) -> usize {
        self.tail.capacity() + self.fragments.payload.capacity()
    }
}

/// Processes every complete frame at the start of `buf`. Returns the bytes consumed and
/// whether `on` asked to stop.
fn process(
    buf: &mut [u8],
    frags: &mut Fragments,
    max_message: usize,
    on: &mut dyn FnMut(WsEvent<'_>) -> bool,
) -> Result<(usize, bool), FrameError> {
    let mut pos = 0;
    loop {
        let Some(h) = parse_header(&buf[pos..], max_message)? else {
            return Ok((pos, false));
        };
        let start = pos + h.header_len;
        let Some(end) = start
            .checked_add(h.payload_len)
            .filter(|&end| end <= buf.len())
        else {
            return Ok((pos, false));
        };
        pos = end;
        let payload = &mut buf[start..end];
        unmask(payload, h.mask);
        let go_on = match h.opcode {
            OP_PING => on(WsEvent::Ping(payload)),
            OP_PONG => on(WsEvent::Pong),
            OP_CLOSE => {
                let code = match payload.len() {
                    0 => None,
                    1 => return Err(FrameError::Protocol("close payload of one byte")),
                    _ => {
                        let code = u16::from_be_bytes([payload[0], payload[1]]);
                        if !valid_close_code(code) {
                            return Err(FrameError::Protocol("invalid close code"));
                        }
                        if std::str::from_utf8(&payload[2..]).is_err() {
                            return Err(FrameError::InvalidUtf8);
                        }
                        Some(code)
                    }
                };
                on(WsEvent::Close(code));
                false
            }
            OP_TEXT | OP_BINARY => {
                if frags.opcode.is_some() {
                    return Err(FrameError::Protocol("new message inside a fragmented one"));
                }
                if h.fin {
                    deliver(h.opcode, payload, on)?
                } else {
                    frags.opcode = Some(h.opcode);
                    frags.payload.extend_from_slice(payload);
                    true
                }
            }
            _ => {
                // OP_CONTINUATION (parse_header rejected every other opcode).
                let Some(opcode) = frags.opcode else {
                    return Err(FrameError::Protocol("continuation without a message"));
                };
                if frags.payload.len() + payload.len() > max_message {
                    return Err(FrameError::TooBig);
                }
                frags.payload.extend_from_slice(payload);
                if h.fin {
                    let mut whole = std::mem::take(&mut frags.payload);
                    frags.opcode = None;
                    deliver(opcode, &mut whole, on)?
                } else {
                    true
                }
            }
        };
        if !go_on {
            return Ok((pos, true));
        }
    }
}

fn deliver(
    opcode: u8,
    payload: &mut [u8],
    on: &mut dyn FnMut(WsEvent<'_>) -> bool,
) -> Result<bool, FrameError> {
    if opcode == OP_BINARY {
        return Ok(on(WsEvent::Binary));
    }
    let text = std::str::from_utf8(payload).map_err(|_| FrameError::InvalidUtf8)?;
    Ok(on(WsEvent::Text(text)))
}

/// Appends an unmasked server frame header for a final frame of `opcode` and `len` bytes.
pub(crate) fn put_header(out: &mut BytesMut, opcode: u8, len: usize) {
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

/// A whole close frame: code and reason (the reason is cut to fit 125 bytes).
pub(crate) fn close_frame(code: u16, reason: &str) -> BytesMut {
    let mut reason = reason;
    while reason.len() > 123 {
        let mut cut = 123;
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

/// A whole control frame (ping or pong) with `payload` (at most 125 bytes).
pub(crate) fn control_frame(opcode: u8, payload: &[u8]) -> BytesMut {
    let payload = &payload[..payload.len().min(125)];
    let mut out = BytesMut::with_capacity(2 + payload.len());
    put_header(&mut out, opcode, payload.len());
    out.put_slice(payload);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A masked client frame.
    fn client(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [0x37, 0xFA, 0x21, 0x3D];
        let mut out = vec![if fin { 0x80 } else { 0 } | opcode];
        let len = payload.len();
        if len < 126 {
            out.push(0x80 | len as u8);
        } else if len <= 0xFFFF {
            out.push(0x80 | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            out.push(0x80 | 127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
        out.extend_from_slice(&mask);
        let mut p = payload.to_vec();
        unmask(&mut p, mask);
        out.extend_from_slice(&p);
        out
    }

    #[derive(Debug, PartialEq, Eq)]
    enum Ev {
        Text(String),
        Binary,
        Ping(Vec<u8>),
        Pong,
        Close(Option<u16>),
    }

    fn feed_all(
        reader: &mut FrameReader,
        bytes: &[u8],
        chunk: usize,
    ) -> Result<Vec<Ev>, FrameError> {
        let mut evs = Vec::new();
        for piece in bytes.chunks(chunk.max(1)) {
            let mut piece = piece.to_vec();
            reader.feed(&mut piece, 1024, &mut |ev| {
                evs.push(match ev {
                    WsEvent::Text(t) => Ev::Text(t.to_owned()),
                    WsEvent::Binary => Ev::Binary,
                    WsEvent::Ping(p) => Ev::Ping(p.to_vec()),
                    WsEvent::Pong => Ev::Pong,
                    WsEvent::Close(c) => Ev::Close(c),
                });
                true
            })?;
        }
        Ok(evs)
    }

    #[test]
    fn text_frames_in_any_split() {
        let mut bytes = client(true, OP_TEXT, b"{\"type\":\"ping\"}");
        bytes.extend(client(true, OP_TEXT, "héllo".as_bytes()));
        bytes.extend(client(true, OP_TEXT, &[b'x'; 300]));
        for chunk in [1, 2, 3, 7, 100, 10_000] {
            let mut r = FrameReader::default();
            let evs = feed_all(&mut r, &bytes, chunk).expect("valid frames");
            assert_eq!(
                evs,
                vec![
                    Ev::Text("{\"type\":\"ping\"}".into()),
                    Ev::Text("héllo".into()),
                    Ev::Text("x".repeat(300))
                ],
                "chunk {chunk}"
            );
            assert_eq!(r.buffered(), 0, "nothing held once complete");
        }
    }

    #[test]
    fn fragments_with_control_frames_between() {
        let mut bytes = client(false, OP_TEXT, b"hel");
        bytes.extend(client(true, OP_PING, b"p1"));
        bytes.extend(client(false, OP_CONTINUATION, b"lo "));
        bytes.extend(client(true, OP_PONG, b""));
        bytes.extend(client(true, OP_CONTINUATION, b"world"));
        let mut r = FrameReader::default();
        let evs = feed_all(&mut r, &bytes, 5).expect("valid");
        assert_eq!(
            evs,
            vec![
                Ev::Ping(b"p1".to_vec()),
                Ev::Pong,
                Ev::Text("hello world".into())
            ]
        );
    }

    #[test]
    fn utf8_split_across_fragments_is_valid() {
        let s = "é".as_bytes();
        let mut bytes = client(false, OP_TEXT, &s[..1]);
        bytes.extend(client(true, OP_CONTINUATION, &s[1..]));
        let mut r = FrameReader::default();
        assert_eq!(
            feed_all(&mut r, &bytes, 100).expect("valid"),
            vec![Ev::Text("é".into())]
        );
    }

    #[test]
    fn violations() {
        let cases: Vec<(Vec<u8>, FrameError)> = vec![
            (
                client(true, OP_TEXT, &[0xFF, 0xFE]),
                FrameError::InvalidUtf8,
            ),
            (client(true, OP_TEXT, &[b'a'; 1025]), FrameError::TooBig),
            (
                client(true, OP_CONTINUATION, b"x"),
                FrameError::Protocol("continuation without a message"),
            ),
            (
                {
                    let mut b = client(false, OP_TEXT, b"a");
                    b.extend(client(true, OP_TEXT, b"b"));
                    b
                },
                FrameError::Protocol("new message inside a fragmented one"),
            ),
            (
                client(false, OP_PING, b""),
                FrameError::Protocol("control frames must be final and at most 125 bytes"),
            ),
            (
                vec![0x81, 0x02, b'h', b'i'],
                FrameError::Protocol("client frames must be masked"),
            ),
            (
                vec![0xC1, 0x80, 0, 0, 0, 0],
                FrameError::Protocol("reserved bits set"),
            ),
            (
                vec![0x83, 0x80, 0, 0, 0, 0],
                FrameError::Protocol("unknown opcode"),
            ),
            (
                client(true, OP_CLOSE, &[0x03]),
                FrameError::Protocol("close payload of one byte"),
            ),
            (
                client(true, OP_CLOSE, &1005u16.to_be_bytes()),
                FrameError::Protocol("invalid close code"),
            ),
            (
                {
                    let mut b = client(false, OP_TEXT, &[b'a'; 600]);
                    b.extend(client(true, OP_CONTINUATION, &[b'a'; 600]));
                    b
                },
                FrameError::TooBig,
            ),
        ];
        for (bytes, want) in cases {
            let mut r = FrameReader::default();
            assert_eq!(feed_all(&mut r, &bytes, 3).err(), Some(want));
        }
    }

    #[test]
    fn oversize_is_refused_from_the_header_alone() {
        let mut header = vec![0x81, 0x80 | 127];
        header.extend_from_slice(&(1u64 << 40).to_be_bytes());
        let mut r = FrameReader::default();
        assert_eq!(
            feed_all(&mut r, &header, 100).err(),
            Some(FrameError::TooBig)
        );
    }

    #[test]
    fn close_stops_processing() {
        let mut bytes = client(true, OP_CLOSE, &[0x03, 0xE8, b'o', b'k']);
        bytes.extend(client(true, OP_TEXT, b"after"));
        let mut r = FrameReader::default();
        assert_eq!(
            feed_all(&mut r, &bytes, 100).expect("valid"),
            vec![Ev::Close(Some(1000))]
        );
        let mut r = FrameReader::default();
        assert_eq!(
            feed_all(&mut r, &client(true, OP_CLOSE, b""), 100).expect("valid"),
            vec![Ev::Close(None)]
        );
    }

    #[test]
    fn binary_is_reported_without_its_bytes() {
        let mut r = FrameReader::default();
        assert_eq!(
            feed_all(&mut r, &client(true, OP_BINARY, &[1, 2, 3]), 100).expect("valid"),
            vec![Ev::Binary]
        );
    }

    #[test]
    fn server_headers() {
        for (len, want) in [
            (0usize, vec![0x81, 0]),
            (125, vec![0x81, 125]),
            (126, vec![0x81, 126, 0, 126]),
        ] {
            let mut b = BytesMut::new();
            put_header(&mut b, OP_TEXT, len);
            assert_eq!(&b[..], &want[..]);
        }
        let mut b = BytesMut::new();
        put_header(&mut b, OP_TEXT, 70_000);
        assert_eq!(&b[..], &[0x81, 127, 0, 0, 0, 0, 0, 1, 0x11, 0x70]);
        assert!(b.len() <= MAX_HEADER);
        let c = close_frame(4011, "slow consumer");
        assert_eq!(&c[..4], &[0x88, 15, 0x0F, 0xAB]);
        assert_eq!(close_frame(1000, &"é".repeat(100)).len(), 4 + 122);
    }

    #[test]
    fn unmask_matches_bytewise() {
        let mask = [1, 2, 3, 4];
        for n in 0..20 {
            let mut a: Vec<u8> = (0..n as u8).collect();
            let b: Vec<u8> = a.iter().enumerate().map(|(i, x)| x ^ mask[i % 4]).collect();
            unmask(&mut a, mask);
            assert_eq!(a, b);
        }
    }
}
