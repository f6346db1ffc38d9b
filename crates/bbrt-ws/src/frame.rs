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

use bytes::{BufMut, BytesMut};

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

/// A parsed client frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Header {
    fin: bool,
    opcode: u8,
    mask: [u8; 4],
    header_len: usize,
    payload_len: usize,
}

/// Parses a client frame header. `Ok(None)`: more bytes are needed. `fragment`: the
/// bytes of the fragmented message open so far, if one is.
fn parse_header(
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
fn valid_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// Grows `v` to hold `extra` more bytes: doubling, but never past `cap`.
fn grow(v: &mut Vec<u8>, extra: usize, cap: usize) {
    let needed = v.len() + extra;
    if needed > v.capacity() {
        let target = needed.max(v.capacity() * 2).min(cap).max(needed);
        v.reserve_exact(target - v.len());
    }
}

/// Per-connection read state. While open it holds only an incomplete frame's tail and a
/// fragmented message in progress, both empty (no allocation) while the connection is
/// idle; discarding, a few bytes of header inline.
#[derive(Debug)]
pub struct FrameReader {
    max_message: usize,
    /// Most events one [`feed`](FrameReader::feed) or [`resume`](FrameReader::resume)
    /// delivers; the rest of the input waits in the backlog.
    events_per_feed: usize,
    state: State,
}

#[derive(Debug)]
enum State {
    Open(Open),
    Discarding(Discard),
    /// The peer's close frame went by: nothing more is read.
    PeerClosed,
}

#[derive(Debug, Default)]
struct Open {
    /// An incomplete frame, from its first byte.
    tail: Vec<u8>,
    /// Input not yet parsed because a feed delivered its most events (still masked, from
    /// a frame boundary). Never held together with `tail`.
    backlog: Vec<u8>,
    /// `Some(OP_TEXT | OP_BINARY)` while a fragmented message is open.
    fragment_opcode: Option<u8>,
    fragments: Vec<u8>,
}

/// Where reading goes after an error.
struct Failure {
    error: FrameError,
    /// Offset in the buffer where discarding starts (`None`: the error was the peer's
    /// own close frame, so nothing more is awaited).
    resume: Option<usize>,
}

impl FrameReader {
    /// A reader of messages of at most `max_message` bytes.
    pub fn new(max_message: usize) -> Self {
        Self {
            max_message,
            events_per_feed: usize::MAX,
            state: State::Open(Open::default()),
        }
    }

    /// Delivers at most `events` events per [`feed`](Self::feed) or
    /// [`resume`](Self::resume) (at least one). Why: a read of tiny frames holds one decoded
    /// event per few bytes, and a caller that decodes every event before handing them on
    /// holds many times the read's size; with a limit it holds the limit's worth of events
    /// plus the unparsed rest of one read ([`has_backlog`](Self::has_backlog)).
    #[must_use]
    pub fn with_events_per_feed(mut self, events: usize) -> Self {
        self.events_per_feed = events.max(1);
        self
    }

    /// The most bytes the reader holds between calls to [`feed`](Self::feed): twice
    /// the message limit plus one header and one control frame (a fragmented message
    /// and the frame after it).
    /// With an events limit, add the backlog: at most the last input fed.
    pub fn buffer_limit(&self) -> usize {
        self.max_message
            .saturating_mul(2)
            .saturating_add(MAX_CLIENT_HEADER + MAX_CONTROL_PAYLOAD)
    }

    /// Bytes held for an incomplete frame or message, or a backlog (allocated capacity).
    pub fn buffered(&self) -> usize {
        match &self.state {
            State::Open(open) => {
                open.tail.capacity() + open.backlog.capacity() + open.fragments.capacity()
            }
            State::Discarding(_) | State::PeerClosed => 0,
        }
    }

    /// Whether input is waiting because the last feed delivered its most events: call
    /// [`resume`](Self::resume) until it is not, before feeding more (or the backlog
    /// grows by every input fed).
    pub fn has_backlog(&self) -> bool {
        matches!(&self.state, State::Open(open) if !open.backlog.is_empty())
    }

    /// Whether frames are still delivered (no error, no close on either side).
    pub fn is_open(&self) -> bool {
        matches!(self.state, State::Open(_))
    }

    /// Whether the peer's close frame has been read (a malformed one included).
    pub fn peer_closed(&self) -> bool {
        matches!(self.state, State::PeerClosed)
    }

    /// The server has said its close: from now on input is discarded until the peer's
    /// close frame. Frees what was held.
    pub fn close(&mut self) {
        if let State::Open(open) = &self.state {
            let mut discard = Discard::default();
            // At most one of the two is non-empty.
            self.state = if discard.feed(&open.backlog) || discard.feed(&open.tail) {
                State::PeerClosed
            } else {
                State::Discarding(discard)
            };
        }
    }

    /// Feeds freshly read bytes (unmasked in place). Calls `on` for each complete message
    /// or control frame, in order; after a close frame nothing more is delivered. After an
    /// error (returned once) or [`close`](Self::close), input is discarded.
    ///
    /// # Errors
    /// The first framing violation; the caller closes with its code.
    pub fn feed(
        &mut self,
        input: &mut [u8],
        on: &mut dyn FnMut(WsEvent<'_>),
    ) -> Result<(), FrameError> {
        match &mut self.state {
            State::PeerClosed => return Ok(()),
            State::Discarding(discard) => {
                if discard.feed(input) {
                    self.state = State::PeerClosed;
                }
                return Ok(());
            }
            State::Open(open) if !open.backlog.is_empty() => {
                // The caller did not resume first: keep the order, parse later.
                open.backlog.extend_from_slice(input);
                return self.resume(on);
            }
            State::Open(_) => {}
        }
        self.parse_open(input, on)
    }

    /// Parses the backlog a feed left (a no-op without one), with the same limit and
    /// results as [`feed`](Self::feed).
    ///
    /// # Errors
    /// The first framing violation; the caller closes with its code.
    pub fn resume(&mut self, on: &mut dyn FnMut(WsEvent<'_>)) -> Result<(), FrameError> {
        let State::Open(open) = &mut self.state else {
            return Ok(());
        };
        if open.backlog.is_empty() {
            return Ok(());
        }
        let mut backlog = std::mem::take(&mut open.backlog);
        self.parse_open(&mut backlog, on)
    }

    fn parse_open(
        &mut self,
        input: &mut [u8],
        on: &mut dyn FnMut(WsEvent<'_>),
    ) -> Result<(), FrameError> {
        let State::Open(open) = &mut self.state else {
            return Ok(());
        };
        let mut budget = self.events_per_feed;
        match open.feed(input, self.max_message, &mut budget, on) {
            Ok(false) => Ok(()),
            Ok(true) => {
                self.state = State::PeerClosed;
                Ok(())
            }
            Err((error, discard)) => {
                self.state = match discard {
                    Some(discard) => State::Discarding(discard),
                    None => State::PeerClosed,
                };
                Err(error)
            }
        }
    }
}

/// Discarding after a failure: the bytes from the failure's resume point in `first`,
/// then `then`. `None`: the peer's close has gone by.
fn discard_after(failure: &Failure, first: &[u8], then: &[u8]) -> Option<Discard> {
    let resume = failure.resume?;
    let mut discard = Discard::default();
    if discard.feed(&first[resume..]) || discard.feed(then) {
        return None;
    }
    Some(discard)
}

impl Open {
    fn fragment(&self) -> Option<usize> {
        self.fragment_opcode.map(|_| self.fragments.len())
    }

    /// `Ok(true)`: the peer's close frame was delivered.
    fn feed(
        &mut self,
        input: &mut [u8],
        max: usize,
        budget: &mut usize,
        on: &mut dyn FnMut(WsEvent<'_>),
    ) -> Result<bool, (FrameError, Option<Discard>)> {
        let mut pos = 0;
        if !self.tail.is_empty() {
            // Complete the tail's frame with as few input bytes as it needs, so the rest
            // is parsed where it lies.
            loop {
                let frame_len = match parse_header(&self.tail, self.fragment(), max) {
                    Ok(header) => header.map(|h| h.header_len + h.payload_len),
                    Err(error) => {
                        let failure = Failure {
                            error,
                            resume: Some(0),
                        };
                        let discard = discard_after(&failure, &self.tail, &input[pos..]);
                        return Err((error, discard));
                    }
                };
                if frame_len.is_some_and(|len| self.tail.len() >= len) {
                    break;
                }
                let want = match frame_len {
                    Some(len) => len - self.tail.len(),
                    None => MAX_CLIENT_HEADER - self.tail.len(),
                };
                let take = want.min(input.len() - pos);
                if take == 0 {
                    return Ok(false);
                }
                if frame_len.is_some() {
                    self.tail.reserve_exact(take);
                }
                self.tail.extend_from_slice(&input[pos..pos + take]);
                pos += take;
            }
            let mut tail = std::mem::take(&mut self.tail);
            // The tail holds one frame, and the budget is at least one: all of it is used.
            match self.process(&mut tail, max, budget, on) {
                Ok((_, true)) => return Ok(true),
                // What the tail's frames did not use came from the input: parse it there.
                Ok((consumed, false)) => pos -= tail.len() - consumed,
                Err(failure) => {
                    let discard = discard_after(&failure, &tail, &input[pos..]);
                    return Err((failure.error, discard));
                }
            }
        }
        let rest = &mut input[pos..];
        match self.process(rest, max, budget, on) {
            Ok((_, true)) => Ok(true),
            Ok((consumed, false)) => {
                let remainder = &rest[consumed..];
                if *budget == 0 && !remainder.is_empty() {
                    self.backlog = remainder.to_vec();
                } else if !remainder.is_empty() {
                    // The whole frame's size when its header is here: one allocation.
                    let size = match parse_header(remainder, self.fragment(), max) {
                        Ok(Some(h)) => h.header_len + h.payload_len,
                        _ => remainder.len(),
                    };
                    self.tail = Vec::with_capacity(size);
                    self.tail.extend_from_slice(remainder);
                }
                Ok(false)
            }
            Err(failure) => {
                let discard = discard_after(&failure, rest, &[]);
                Err((failure.error, discard))
            }
        }
    }

    /// Processes every complete frame at the start of `buf`. Returns the bytes consumed
    /// and whether the peer's close frame was delivered.
    /// Stops early, at a frame boundary, once `budget` events have been delivered.
    fn process(
        &mut self,
        buf: &mut [u8],
        max: usize,
        budget: &mut usize,
        on: &mut dyn FnMut(WsEvent<'_>),
    ) -> Result<(usize, bool), Failure> {
        let mut pos = 0;
        // A Cell: the counting closure and the loop's check both see it.
        let remaining = std::cell::Cell::new(*budget);
        let mut counted = |event: WsEvent<'_>| {
            remaining.set(remaining.get().saturating_sub(1));
            on(event);
        };
        let on = &mut counted;
        loop {
            *budget = remaining.get();
            if *budget == 0 {
                return Ok((pos, false));
            }
            let header =
                parse_header(&buf[pos..], self.fragment(), max).map_err(|error| Failure {
                    error,
                    resume: Some(pos),
                })?;
            let Some(h) = header else {
                return Ok((pos, false));
            };
            let start = pos + h.header_len;
            let Some(end) = start
                .checked_add(h.payload_len)
                .filter(|&end| end <= buf.len())
            else {
                return Ok((pos, false));
            };
            let after = |error| Failure {
                error,
                resume: Some(end),
            };
            pos = end;
            let payload = &mut buf[start..end];
            unmask(payload, h.mask);
            match h.opcode {
                OP_PING => on(WsEvent::Ping(payload)),
                OP_PONG => on(WsEvent::Pong),
                OP_CLOSE => {
                    let code = close_code(payload).map_err(|error| Failure {
                        error,
                        resume: None,
                    })?;
                    on(WsEvent::Close(code));
                    return Ok((pos, true));
                }
                OP_TEXT | OP_BINARY if h.fin => deliver(h.opcode, payload, on).map_err(after)?,
                OP_TEXT | OP_BINARY => {
                    self.fragment_opcode = Some(h.opcode);
                    grow(&mut self.fragments, payload.len(), max);
                    self.fragments.extend_from_slice(payload);
                }
                _ => {
                    // OP_CONTINUATION inside a message (parse_header refused the rest).
                    grow(&mut self.fragments, payload.len(), max);
                    self.fragments.extend_from_slice(payload);
                    if h.fin {
                        let mut whole = std::mem::take(&mut self.fragments);
                        let opcode = self.fragment_opcode.take().unwrap_or(OP_TEXT);
                        deliver(opcode, &mut whole, on).map_err(after)?;
                    }
                }
            }
        }
    }
}

/// A close frame's code, checked with its reason.
fn close_code(payload: &[u8]) -> Result<Option<u16>, FrameError> {
    match payload {
        [] => Ok(None),
        [_] => Err(FrameError::Protocol("close payload of one byte")),
        [hi, lo, reason @ ..] => {
            let code = u16::from_be_bytes([*hi, *lo]);
            if !valid_close_code(code) {
                return Err(FrameError::Protocol("invalid close code"));
            }
            if std::str::from_utf8(reason).is_err() {
                return Err(FrameError::InvalidUtf8);
            }
            Ok(Some(code))
        }
    }
}

fn deliver(
    opcode: u8,
    payload: &mut [u8],
    on: &mut dyn FnMut(WsEvent<'_>),
) -> Result<(), FrameError> {
    if opcode == OP_BINARY {
        on(WsEvent::Binary);
        return Ok(());
    }
    let text = std::str::from_utf8(payload).map_err(|_| FrameError::InvalidUtf8)?;
    on(WsEvent::Text(text));
    Ok(())
}

/// Skips frames by their headers, keeping none of their bytes, until the peer's close.
///
/// Lenient on purpose: after a violation the peer's framing may be off, and any frame
/// boundary read from a length field is as good a guess as another; the caller's byte
/// and time limits end a stream that never gets to a close.
#[derive(Debug, Default)]
struct Discard {
    header: [u8; MAX_CLIENT_HEADER],
    have: u8,
    /// Payload bytes of the current frame still to skip.
    skip: u64,
    /// The current frame is the peer's close.
    closing: bool,
}

impl Discard {
    /// `true` once the peer's close frame has gone by.
    fn feed(&mut self, mut input: &[u8]) -> bool {
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
#[cfg(test)]
mod tests {
    use super::*;

    /// A masked client frame.
    fn client(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        client_frame(fin, opcode, [0x37, 0xFA, 0x21, 0x3D], payload)
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
            reader.feed(&mut piece, &mut |ev| {
                evs.push(match ev {
                    WsEvent::Text(t) => Ev::Text(t.to_owned()),
                    WsEvent::Binary => Ev::Binary,
                    WsEvent::Ping(p) => Ev::Ping(p.to_vec()),
                    WsEvent::Pong => Ev::Pong,
                    WsEvent::Close(c) => Ev::Close(c),
                });
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
            let mut r = FrameReader::new(1024);
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
            assert!(r.is_open());
        }
    }

    #[test]
    fn fragments_with_control_frames_between() {
        let mut bytes = client(false, OP_TEXT, b"hel");
        bytes.extend(client(true, OP_PING, b"p1"));
        bytes.extend(client(false, OP_CONTINUATION, b"lo "));
        bytes.extend(client(true, OP_PONG, b""));
        bytes.extend(client(true, OP_CONTINUATION, b"world"));
        let mut r = FrameReader::new(1024);
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
        let mut r = FrameReader::new(1024);
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
            let mut r = FrameReader::new(1024);
            assert_eq!(feed_all(&mut r, &bytes, 3).err(), Some(want));
        }
    }

    #[test]
    fn oversize_is_refused_from_the_header_alone() {
        let mut header = vec![0x81, 0x80 | 127];
        header.extend_from_slice(&(1u64 << 40).to_be_bytes());
        let mut r = FrameReader::new(1024);
        assert_eq!(
            feed_all(&mut r, &header, 100).err(),
            Some(FrameError::TooBig)
        );
    }

    #[test]
    fn close_stops_processing() {
        let mut bytes = client(true, OP_CLOSE, &[0x03, 0xE8, b'o', b'k']);
        bytes.extend(client(true, OP_TEXT, b"after"));
        let mut r = FrameReader::new(1024);
        assert_eq!(
            feed_all(&mut r, &bytes, 100).expect("valid"),
            vec![Ev::Close(Some(1000))]
        );
        let mut r = FrameReader::new(1024);
        assert_eq!(
            feed_all(&mut r, &client(true, OP_CLOSE, b""), 100).expect("valid"),
            vec![Ev::Close(None)]
        );
    }

    #[test]
    fn binary_is_reported_without_its_bytes() {
        let mut r = FrameReader::new(1024);
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

    #[test]
    fn after_an_oversize_header_the_payload_is_skipped_to_the_peers_close() {
        let mut bytes = client(true, OP_TEXT, &[b'a'; 5000]);
        bytes.extend(client(true, OP_TEXT, b"ignored"));
        bytes.extend(client(true, OP_CLOSE, &1000u16.to_be_bytes()));
        for chunk in [1, 7, 100, 10_000] {
            let mut r = FrameReader::new(1024);
            let mut pieces = bytes.chunks(chunk);
            let mut first = pieces.next().expect("bytes").to_vec();
            let mut seen = 0;
            let mut result = r.feed(&mut first, &mut |_| seen += 1);
            if chunk < 4 {
                // The length is not known yet.
                assert_eq!(result, Ok(()));
            }
            for piece in pieces {
                if result.is_err() {
                    assert!(!r.is_open());
                    assert_eq!(r.buffered(), 0, "discarding holds nothing");
                }
                result = result.and(r.feed(&mut piece.to_vec(), &mut |_| seen += 1));
            }
            assert_eq!(result, Err(FrameError::TooBig), "chunk {chunk}");
            assert_eq!(seen, 0);
            assert!(r.peer_closed(), "chunk {chunk}");
        }
    }

    #[test]
    fn the_servers_close_discards_until_the_peers() {
        let mut bytes = client(true, OP_TEXT, &[b'a'; 500]);
        bytes.extend(client(true, OP_CLOSE, b""));
        let mut r = FrameReader::new(1024);
        let (head, rest) = bytes.split_at(300);
        assert_eq!(feed_all(&mut r, head, 1000), Ok(vec![]));
        assert!(r.buffered() > 0);
        r.close();
        assert_eq!(r.buffered(), 0);
        assert_eq!(feed_all(&mut r, rest, 1000), Ok(vec![]));
        assert!(r.peer_closed(), "{r:?}");
    }

    #[test]
    fn a_bad_close_frame_is_the_peers_close() {
        let mut r = FrameReader::new(1024);
        let bad = client(true, OP_CLOSE, &1005u16.to_be_bytes());
        assert!(feed_all(&mut r, &bad, 100).is_err());
        assert!(r.peer_closed());
    }
}
