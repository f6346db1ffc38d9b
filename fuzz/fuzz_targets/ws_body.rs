//! A request head, then body bytes arriving in arbitrary pieces: no panic, never more
//! held than the declared length (itself within the limit), and the same body and the same
//! outcome however split.
#![no_main]

use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use bbrt_ws::body::{BodyError, BodyLimits, BodyReader};
use bbrt_ws::handshake::parse_head;
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Case {
    max: u16,
    /// Content-Length values (as sent) and whether a Transfer-Encoding is added.
    lengths: Vec<String>,
    chunked: bool,
    cuts: Vec<u16>,
    body: Vec<u8>,
}

fn run(case: &Case, split: bool) -> Option<Result<(Vec<u8>, usize), BodyError>> {
    let mut head = String::from("POST /site-events HTTP/1.1\r\nHost: x\r\n");
    for value in &case.lengths {
        head.push_str("Content-Length: ");
        head.push_str(value);
        head.push_str("\r\n");
    }
    if case.chunked {
        head.push_str("Transfer-Encoding: chunked\r\n");
    }
    head.push_str("\r\n");
    let Ok(Some((req, _))) = parse_head(head.as_bytes()) else {
        return None;
    };
    let now = Instant::now();
    let limits = BodyLimits {
        max_bytes: usize::from(case.max),
        timeout: Duration::from_secs(1),
    };
    let mut reader = match BodyReader::new(&req, limits, now) {
        Ok(reader) => reader,
        Err(e) => return Some(Err(e)),
    };
    let len = case.body.len();
    let mut points: Vec<usize> = if split {
        case.cuts
            .iter()
            .map(|&c| usize::from(c) % (len + 1))
            .collect()
    } else {
        Vec::new()
    };
    points.push(len);
    points.sort_unstable();
    let (mut at, mut taken) = (0, 0);
    for point in points {
        if reader.is_complete() {
            break;
        }
        let n = match reader.feed(now, &case.body[at..point]) {
            Ok(n) => n,
            Err(e) => return Some(Err(e)),
        };
        assert!(n <= point - at);
        assert!(reader.buffered() <= limits.max_bytes, "held past the limit");
        taken += n;
        at = point;
    }
    let complete = reader.is_complete();
    let body = reader.into_body();
    assert_eq!(body.len(), taken);
    if !complete {
        assert_eq!(taken, len, "an incomplete body took everything offered");
    }
    Some(Ok((body, taken)))
}

fuzz_target!(|case: Case| {
    assert_eq!(run(&case, false), run(&case, true));
});
