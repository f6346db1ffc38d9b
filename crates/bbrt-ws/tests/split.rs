//! However the input is split, and however few events a feed may deliver, the reader
//! delivers the same frames and ends the same way, and never holds more than its limit.

use bbrt_ws::frame::{
    FrameError, FrameReader, OP_BINARY, OP_CLOSE, OP_CONTINUATION, OP_PING, OP_PONG, OP_TEXT,
    WsEvent, client_frame,
};
use proptest::prelude::*;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Ev {
    Text(String),
    Binary,
    Ping(Vec<u8>),
    Pong,
    Close(Option<u16>),
}

#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    events: Vec<Ev>,
    error: Option<FrameError>,
    peer_closed: bool,
}

/// Feeds `bytes` cut at `cuts`, resuming each piece's backlog before the next (at most
/// `per_feed` events at a time); the server says its close after `close_at` bytes, if set.
fn run(
    max: usize,
    bytes: &[u8],
    cuts: &[usize],
    close_at: Option<usize>,
    per_feed: usize,
) -> Outcome {
    let mut reader = FrameReader::new(max).with_events_per_feed(per_feed);
    let mut events = Vec::new();
    let mut error = None;
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    points.extend(close_at);
    points.push(bytes.len());
    points.sort_unstable();
    let mut at = 0;
    for point in points {
        if close_at == Some(at) {
            reader.close();
        }
        let mut piece = bytes[at..point].to_vec();
        let mut on = |ev: WsEvent<'_>| {
            events.push(match ev {
                WsEvent::Text(t) => Ev::Text(t.to_owned()),
                WsEvent::Binary => Ev::Binary,
                WsEvent::Ping(p) => Ev::Ping(p.to_vec()),
                WsEvent::Pong => Ev::Pong,
                WsEvent::Close(c) => Ev::Close(c),
            });
        };
        let mut results = vec![reader.feed(&mut piece, &mut on)];
        let mut resumes = 0;
        while reader.has_backlog() {
            assert!(
                reader.buffered() <= reader.buffer_limit() + piece.len(),
                "a backlog is at most the last input"
            );
            results.push(reader.resume(&mut on));
            resumes += 1;
            assert!(resumes <= piece.len(), "each resume makes progress");
        }
        for result in results {
            if let Err(e) = result {
                assert!(error.is_none(), "an error is reported once");
                error = Some(e);
            }
        }
        assert!(
            reader.buffered() <= reader.buffer_limit(),
            "{} held, limit {}",
            reader.buffered(),
            reader.buffer_limit()
        );
        at = point;
    }
    if close_at == Some(at) {
        reader.close();
    }
    Outcome {
        events,
        error,
        peer_closed: reader.peer_closed(),
    }
}

fn client(fin: bool, opcode: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    client_frame(fin, opcode, mask, payload)
}

/// Mostly well-formed frames, with some of every kind of mistake.
fn frame() -> impl Strategy<Value = Vec<u8>> {
    let opcode = prop_oneof![
        4 => Just(OP_TEXT),
        2 => Just(OP_CONTINUATION),
        1 => Just(OP_BINARY),
        2 => Just(OP_PING),
        1 => Just(OP_PONG),
        1 => Just(OP_CLOSE),
        1 => 0u8..16,
    ];
    let payload = prop_oneof![
        4 => "[a-zé ]{0,40}".prop_map(String::into_bytes),
        1 => proptest::collection::vec(any::<u8>(), 0..300),
    ];
    (any::<bool>(), opcode, payload, any::<[u8; 4]>(), 0u8..20).prop_map(
        |(fin, opcode, payload, mask, flaw)| {
            let mut f = client(fin || opcode & 8 != 0, opcode, &payload, mask);
            match flaw {
                0 => f[1] &= 0x7F, // unmasked
                1 => f[0] |= 0x40, // reserved bit
                _ => {}
            }
            f
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn frames_are_the_same_however_split(
        frames in proptest::collection::vec(frame(), 0..12),
        cuts in proptest::collection::vec(any::<usize>(), 0..12),
        max in 0usize..400,
        close in proptest::option::of(any::<usize>()),
        per_feed in 1usize..4,
    ) {
        let bytes = frames.concat();
        let close_at = close.map(|c| c % (bytes.len() + 1));
        let whole = run(max, &bytes, &[], close_at, usize::MAX);
        let split = run(max, &bytes, &cuts, close_at, usize::MAX);
        prop_assert_eq!(&whole, &split);
        let bytewise: Vec<usize> = (0..bytes.len()).collect();
        prop_assert_eq!(&whole, &run(max, &bytes, &bytewise, close_at, usize::MAX));
        prop_assert_eq!(&whole, &run(max, &bytes, &cuts, close_at, per_feed));
    }

    #[test]
    fn arbitrary_bytes_are_the_same_however_split(
        bytes in proptest::collection::vec(any::<u8>(), 0..600),
        cuts in proptest::collection::vec(any::<usize>(), 0..12),
        max in 0usize..400,
        per_feed in 1usize..4,
    ) {
        let whole = run(max, &bytes, &[], None, usize::MAX);
        prop_assert_eq!(&whole, &run(max, &bytes, &cuts, None, usize::MAX));
        prop_assert_eq!(&whole, &run(max, &bytes, &cuts, None, per_feed));
    }
}
