//! bbrt-ws: the byte-level code of bbrt's HTTP/1.1 and WebSocket transport, as codecs.
//!
//! **This crate does no I/O.** It never touches a socket, a clock or a runtime: the caller
//! reads bytes, hands them in, and moves the bytes it is given out. Time limits are the
//! caller's, stated through the codec's state (a deadline it is given and reports back).
//! That is what lets the code most exposed to attackers be unit-tested, property-tested
//! and fuzzed on its own (`fuzz/`), like rustls.
//!
//! What it does:
//! - [`frame`]: RFC 6455 framing, server side. [`frame::FrameReader`] turns client bytes
//!   into whole messages and control frames under a message limit, holding at most
//!   [`frame::FrameReader::buffer_limit`] bytes, and, once the server has said its close,
//!   discards (never buffers) what the peer still sends until the peer's close frame.
//!   Writers for server frame headers, close and control frames.
//! - [`handshake`]: the request head (parsed with httparse, bounded), the upgrade test,
//!   the `Sec-WebSocket-Accept` key, the 101 response and the refusals (426, 400).
//! - [`body`]: a bounded `Content-Length` request-body reader (size and time limits).
//!
//! What it does not do: sockets, TLS, timers, HTTP responses other than the 101,
//! `Transfer-Encoding: chunked` bodies, extensions (no permessage-deflate), subprotocols,
//! client-side framing, and anything about bbrt's own protocol (JSON frames, close codes
//! beyond RFC 6455's framing rules) — that is `bbrt-protocol`'s.
#![warn(missing_docs)]

pub mod body;
pub mod frame;
pub mod handshake;
