//! Arbitrary bytes as an HTTP request head, arriving in arbitrary pieces (parsed after
//! each, as the server does): no panic, the same head however split, and the handshake
//! checks never panic on what parses.
#![no_main]

use arbitrary::Arbitrary;
use bbrt_ws::handshake::{self, MAX_HEAD, parse_head};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Case {
    cuts: Vec<u16>,
    bytes: Vec<u8>,
}

fuzz_target!(|case: Case| {
    let whole = parse_head(&case.bytes);
    let mut points: Vec<usize> = case
        .cuts
        .iter()
        .map(|&c| usize::from(c) % (case.bytes.len() + 1))
        .collect();
    points.push(case.bytes.len());
    points.sort_unstable();
    // The first answer that is not "more bytes", as the server's read loop sees it.
    let mut split = Ok(None);
    for point in points {
        split = parse_head(&case.bytes[..point]);
        if !matches!(split, Ok(None)) {
            break;
        }
    }
    assert_eq!(whole, split);
    if let Ok(Some((req, len))) = whole {
        assert!(len <= MAX_HEAD && len <= case.bytes.len());
        let _ = handshake::check_handshake(&req);
        let _ = req.is_upgrade();
        let _ = req.query_param("token");
        let _ = handshake::response_head(400, "text/plain", len);
    }
});
