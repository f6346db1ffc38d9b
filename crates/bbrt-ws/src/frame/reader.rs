//! [`FrameReader`]: client bytes in, whole messages and control frames out.

use super::discard::Discard;
use super::header::{parse_header, unmask, valid_close_code};
use super::{
    FrameError, MAX_CLIENT_HEADER, MAX_CONTROL_PAYLOAD, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG,
    OP_TEXT, WsEvent,
};

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

    /// Takes bytes read before the reader was ready (say, the first frames a client sent
    /// right behind its upgrade request) as input still to parse: they join the backlog
    /// ([`has_backlog`](Self::has_backlog)), and [`resume`](Self::resume) parses them with
    /// the same limits and results as a [`feed`](Self::feed) of them. Why: a caller that
    /// would otherwise keep them aside until it can parse them keeps nothing of its own.
    pub fn defer(&mut self, input: Vec<u8>) {
        if input.is_empty() {
            return;
        }
        match &mut self.state {
            State::Open(open) => {
                // The tail (an incomplete frame) and the backlog both start at a frame
                // boundary, still masked, and at most one is held: it goes first.
                let mut pending = std::mem::take(&mut open.tail);
                pending.append(&mut open.backlog);
                if pending.is_empty() {
                    pending = input;
                } else {
                    pending.extend_from_slice(&input);
                }
                open.backlog = pending;
            }
            State::Discarding(discard) => {
                if discard.feed(&input) {
                    self.state = State::PeerClosed;
                }
            }
            State::PeerClosed => {}
        }
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
