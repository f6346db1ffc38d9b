//! A connection's outbound queue, shared by the hub task (which pushes) and the
//! connection task (which writes).
//!
//! Frames are the Hub's shared `Bytes` (encoded once for all recipients), so a push is a
//! reference-count increment. The queue is bounded in bytes: a client that lets it fill
//! is a slow consumer and is closed (4011) without the hub task ever waiting for it. An
//! empty queue holds no allocation.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard, PoisonError};

use bbrt_protocol::wire::CloseCode;
use bytes::Bytes;
use tokio::sync::Notify;

/// What became of a push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Push {
    /// Queued.
    Queued,
    /// The queue was over its bound: it was dropped and the connection told to close
    /// with 4011.
    Overflow,
    /// The connection is closing; the frame was dropped.
    Closed,
}

/// A close the connection task must perform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CloseRequest {
    /// The close code (its reason goes with it).
    pub(crate) code: CloseCode,
    /// Whether queued frames are written first (false for a slow consumer).
    pub(crate) flush: bool,
}

#[derive(Debug, Default)]
struct State {
    frames: VecDeque<Bytes>,
    bytes: usize,
    close: Option<CloseRequest>,
}

/// The outbound queue of one connection.
#[derive(Debug)]
pub(crate) struct Outbox {
    state: Mutex<State>,
    max_bytes: usize,
    /// Wakes the connection task: frames or a close are waiting.
    pub(crate) notify: Notify,
}

impl Outbox {
    pub(crate) fn new(max_bytes: usize) -> Self {
        Self {
            state: Mutex::new(State::default()),
            max_bytes,
            notify: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every critical section leaves the state consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `frame` (a text frame's payload).
    pub(crate) fn push(&self, frame: Bytes) -> Push {
        let mut s = self.lock();
        if s.close.is_some() {
            return Push::Closed;
        }
        if s.bytes + frame.len() > self.max_bytes {
            s.frames = VecDeque::new();
            s.bytes = 0;
            s.close = Some(CloseRequest {
                code: CloseCode::SlowConsumer,
                flush: false,
            });
            drop(s);
            self.notify.notify_one();
            return Push::Overflow;
        }
        let was_empty = s.frames.is_empty();
        s.bytes += frame.len();
        s.frames.push_back(frame);
        drop(s);
        if was_empty {
            self.notify.notify_one();
        }
        Push::Queued
    }

    /// Asks the connection to close (the first request wins).
    pub(crate) fn close(&self, request: CloseRequest) {
        let mut s = self.lock();
        if s.close.is_none() {
            s.close = Some(request);
        }
        drop(s);
        self.notify.notify_one();
    }

    /// The close request, if any, without taking frames.
    pub(crate) fn close_requested(&self) -> Option<CloseRequest> {
        self.lock().close
    }

    /// Takes every queued frame (appending to `into`) and the close request, if any.
    pub(crate) fn take(&self, into: &mut VecDeque<Bytes>) -> Option<CloseRequest> {
        let mut s = self.lock();
        if into.is_empty() {
            std::mem::swap(into, &mut s.frames);
        } else {
            into.extend(s.frames.drain(..));
        }
        s.bytes = 0;
        s.close
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_in_bytes() {
        let o = Outbox::new(10);
        assert_eq!(o.push(Bytes::from_static(b"12345")), Push::Queued);
        assert_eq!(o.push(Bytes::from_static(b"12345")), Push::Queued);
        let mut got = VecDeque::new();
        assert_eq!(o.take(&mut got), None);
        assert_eq!(got.len(), 2);
        assert_eq!(o.push(Bytes::from_static(b"1234567890")), Push::Queued);
        assert_eq!(o.push(Bytes::from_static(b"1")), Push::Overflow);
        assert_eq!(o.push(Bytes::from_static(b"1")), Push::Closed);
        let mut rest = VecDeque::new();
        assert_eq!(
            o.take(&mut rest).map(|c| c.code),
            Some(CloseCode::SlowConsumer)
        );
        assert!(rest.is_empty(), "a slow consumer's queue is dropped");
    }
}
