//! A bounded request-body reader: `Content-Length` only.
//!
//! The reader never reads a clock: it is given `now` with each call and a deadline when it
//! is made, and tells the caller that deadline ([`BodyReader::deadline`]) so the caller
//! can stop waiting for the socket then. Bytes are kept only up to the declared length,
//! which is at most the size limit; memory grows with what has arrived, not with what was
//! declared.

use std::time::{Duration, Instant};

use crate::handshake::Request;

/// A body's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyLimits {
    /// Largest body accepted, in bytes.
    pub max_bytes: usize,
    /// Time from the end of the head to the end of the body.
    pub timeout: Duration,
}

/// Why a body is refused; [`BodyError::status`] is the HTTP answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BodyError {
    /// No `Content-Length`, or a `Transfer-Encoding` (chunked bodies are not read): 411.
    #[error("length required")]
    LengthRequired,
    /// A `Content-Length` that is not one decimal number: 400.
    #[error("invalid content-length")]
    InvalidLength,
    /// A declared length over the limit: 413.
    #[error("body too large")]
    TooLarge,
    /// The body did not arrive by the deadline: 408.
    #[error("body not received in time")]
    Timeout,
}

impl BodyError {
    /// The HTTP status to answer with.
    pub fn status(self) -> u16 {
        match self {
            Self::LengthRequired => 411,
            Self::InvalidLength => 400,
            Self::TooLarge => 413,
            Self::Timeout => 408,
        }
    }
}

/// Reads one body of a declared length.
#[derive(Debug)]
pub struct BodyReader {
    expected: usize,
    body: Vec<u8>,
    deadline: Instant,
}

impl BodyReader {
    /// A reader for the body of `req`, whose head ended at `now`.
    ///
    /// # Errors
    /// When the head declares no usable length, or one over the limit.
    pub fn new(req: &Request, limits: BodyLimits, now: Instant) -> Result<Self, BodyError> {
        if req.has_header("transfer-encoding") || !req.has_header("content-length") {
            return Err(BodyError::LengthRequired);
        }
        // Repeated values must agree (RFC 9110 §8.6); anything else could smuggle a request.
        let mut expected = None;
        for value in req.header_all("content-length").split(',') {
            let value = value.trim();
            if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                return Err(BodyError::InvalidLength);
            }
            let digits = value.trim_start_matches('0');
            let length = if digits.is_empty() {
                0
            } else if digits.len() > 20 {
                usize::MAX
            } else {
                digits
                    .parse::<u128>()
                    .map_or(usize::MAX, |n| usize::try_from(n).unwrap_or(usize::MAX))
            };
            if expected.is_some_and(|e| e != length) {
                return Err(BodyError::InvalidLength);
            }
            expected = Some(length);
        }
        let expected = expected.ok_or(BodyError::InvalidLength)?;
        if expected > limits.max_bytes {
            return Err(BodyError::TooLarge);
        }
        Ok(Self {
            expected,
            body: Vec::new(),
            deadline: now + limits.timeout,
        })
    }

    /// When the caller stops waiting for the body.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Takes body bytes from `input`; returns how many (the rest belongs to what follows).
    ///
    /// # Errors
    /// [`BodyError::Timeout`] when `now` is past the deadline and the body is incomplete.
    pub fn feed(&mut self, now: Instant, input: &[u8]) -> Result<usize, BodyError> {
        let take = self.remaining().min(input.len());
        if take > 0 {
            let needed = self.body.len() + take;
            if needed > self.body.capacity() {
                let target = needed.max(self.body.capacity() * 2).min(self.expected);
                self.body.reserve_exact(target - self.body.len());
            }
            self.body.extend_from_slice(&input[..take]);
        }
        self.check(now)?;
        Ok(take)
    }

    /// Fails an incomplete body once `now` is past the deadline.
    ///
    /// # Errors
    /// [`BodyError::Timeout`].
    pub fn check(&self, now: Instant) -> Result<(), BodyError> {
        if !self.is_complete() && now >= self.deadline {
            return Err(BodyError::Timeout);
        }
        Ok(())
    }

    /// Bytes still to come.
    pub fn remaining(&self) -> usize {
        self.expected - self.body.len()
    }

    /// Whether the whole body has arrived.
    pub fn is_complete(&self) -> bool {
        self.remaining() == 0
    }

    /// Bytes held (allocated capacity); never more than the declared length.
    pub fn buffered(&self) -> usize {
        self.body.capacity()
    }

    /// The body (whole once [`is_complete`](Self::is_complete)).
    pub fn into_body(self) -> Vec<u8> {
        self.body
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: BodyLimits = BodyLimits {
        max_bytes: 100,
        timeout: Duration::from_secs(5),
    };

    fn req(headers: &[(&str, &str)]) -> Request {
        Request::new("POST", "/site-events", headers.iter().copied())
    }

    #[test]
    fn reads_exactly_the_declared_length() {
        let now = Instant::now();
        let mut r = BodyReader::new(&req(&[("Content-Length", "5")]), LIMITS, now).expect("ok");
        assert_eq!(r.feed(now, b"he"), Ok(2));
        assert!(!r.is_complete());
        assert_eq!(r.feed(now, b"llo, next"), Ok(3));
        assert!(r.is_complete());
        assert_eq!(r.buffered(), 5);
        assert_eq!(r.into_body(), b"hello");
    }

    #[test]
    fn refusals() {
        let now = Instant::now();
        let cases: &[(&[(&str, &str)], BodyError)] = &[
            (&[], BodyError::LengthRequired),
            (
                &[("Transfer-Encoding", "chunked"), ("Content-Length", "3")],
                BodyError::LengthRequired,
            ),
            (&[("Content-Length", "+3")], BodyError::InvalidLength),
            (&[("Content-Length", "")], BodyError::InvalidLength),
            (&[("Content-Length", "3, 4")], BodyError::InvalidLength),
            (
                &[("Content-Length", "3"), ("Content-Length", "4")],
                BodyError::InvalidLength,
            ),
            (&[("Content-Length", "101")], BodyError::TooLarge),
            (
                &[("Content-Length", "99999999999999999999999999")],
                BodyError::TooLarge,
            ),
        ];
        for (headers, want) in cases {
            assert_eq!(
                BodyReader::new(&req(headers), LIMITS, now).err(),
                Some(*want),
                "{headers:?}"
            );
        }
        let same = req(&[("Content-Length", "3"), ("Content-Length", "003")]);
        assert!(BodyReader::new(&same, LIMITS, now).is_ok());
    }

    #[test]
    fn the_deadline_is_the_callers() {
        let now = Instant::now();
        let mut r = BodyReader::new(&req(&[("Content-Length", "4")]), LIMITS, now).expect("ok");
        assert_eq!(r.deadline(), now + LIMITS.timeout);
        assert_eq!(r.feed(now, b"ab"), Ok(2));
        assert_eq!(r.check(r.deadline()), Err(BodyError::Timeout));
        assert_eq!(r.feed(r.deadline(), b"c"), Err(BodyError::Timeout));
        let mut done = BodyReader::new(&req(&[("Content-Length", "0")]), LIMITS, now).expect("ok");
        assert_eq!(done.feed(now + LIMITS.timeout * 2, b"x"), Ok(0));
    }
}
