//! Arbitrary bytes into the WebSocket frame reader, split at arbitrary points, with the
//! server's own close at an arbitrary point: no panic, never more held than its limit,
//! and the same frames and the same outcome however the input is split and however few
//! events a feed may deliver (the rest resumed from the backlog before the next piece).
#![no_main]

use arbitrary::Arbitrary;
use bbrt_ws::frame::{FrameError, FrameReader, WsEvent};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Case {
    max: u16,
    /// Events per feed in the split run: 0 is no limit.
    per_feed: u8,
    cuts: Vec<u16>,
    close_at: Option<u16>,
    bytes: Vec<u8>,
}

#[derive(Debug, PartialEq, Eq)]
enum Ev {
    Text(String),
    Binary,
    Ping(Vec<u8>),
    Pong,
    Close(Option<u16>),
}

fn run(case: &Case, split: bool) -> (Vec<Ev>, Option<FrameError>, bool) {
    let len = case.bytes.len();
    let close_at = case.close_at.map(|c| usize::from(c) % (len + 1));
    let mut points: Vec<usize> = if split {
        case.cuts
            .iter()
            .map(|&c| usize::from(c) % (len + 1))
            .collect()
    } else {
        Vec::new()
    };
    points.extend(close_at);
    points.push(len);
    points.sort_unstable();
    let per_feed = match case.per_feed {
        0 => usize::MAX,
        n if split => usize::from(n),
        _ => usize::MAX,
    };
    let mut reader = FrameReader::new(usize::from(case.max)).with_events_per_feed(per_feed);
    let (mut events, mut error, mut at) = (Vec::new(), None, 0);
    for point in points {
        if close_at == Some(at) {
            reader.close();
        }
        let mut piece = case.bytes[at..point].to_vec();
        let mut on = |ev: WsEvent<'_>| {
            events.push(match ev {
                WsEvent::Text(t) => Ev::Text(t.to_owned()),
                WsEvent::Binary => Ev::Binary,
                WsEvent::Ping(p) => Ev::Ping(p.to_vec()),
                WsEvent::Pong => Ev::Pong,
                WsEvent::Close(c) => Ev::Close(c),
            })
        };
        let mut results = vec![reader.feed(&mut piece, &mut on)];
        while reader.has_backlog() {
            assert!(
                reader.buffered() <= reader.buffer_limit() + piece.len(),
                "a backlog is at most the last input"
            );
            results.push(reader.resume(&mut on));
        }
        for result in results {
            if let Err(e) = result {
                assert!(error.is_none(), "an error is reported once");
                error = Some(e);
            }
        }
        assert!(
            reader.buffered() <= reader.buffer_limit(),
            "held past the limit"
        );
        at = point;
    }
    if close_at == Some(at) {
        reader.close();
    }
    (events, error, reader.peer_closed())
}

fuzz_target!(|case: Case| {
    assert_eq!(run(&case, false), run(&case, true));
});
