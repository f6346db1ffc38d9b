//! The reader against RFC 6455's rules, byte by byte and split at every point.

use bytes::BytesMut;

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

fn feed_all(reader: &mut FrameReader, bytes: &[u8], chunk: usize) -> Result<Vec<Ev>, FrameError> {
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

/// Deferred input is parsed by `resume`, after whatever the reader held, as a feed of it.
#[test]
fn deferred_input_is_parsed_by_resume_in_order() {
    let texts: Vec<String> = (0..5).map(|i| format!("message {i}")).collect();
    let mut bytes = Vec::new();
    for t in &texts {
        bytes.extend(client(true, OP_TEXT, t.as_bytes()));
    }
    let want: Vec<Ev> = texts.iter().map(|t| Ev::Text(t.clone())).collect();
    // Split at every point: the first part fed (leaving a tail, or frames in a backlog
    // past the events limit), the rest deferred.
    for split in 0..=bytes.len() {
        let mut r = FrameReader::new(1024).with_events_per_feed(2);
        let mut evs = feed_all(&mut r, &bytes[..split], bytes.len()).expect("valid frames");
        r.defer(bytes[split..].to_vec());
        assert_eq!(r.has_backlog(), evs.len() < want.len(), "split {split}");
        while r.has_backlog() {
            r.resume(&mut |ev| {
                if let WsEvent::Text(t) = ev {
                    evs.push(Ev::Text(t.to_owned()));
                }
            })
            .expect("valid frames");
        }
        assert_eq!(evs, want, "split {split}");
        assert_eq!(r.buffered(), 0, "split {split}");
    }
}

#[test]
fn deferred_input_after_the_close_is_discarded() {
    let mut r = FrameReader::new(1024);
    r.close();
    r.defer(client(true, OP_CLOSE, &[]));
    assert!(r.peer_closed());
    r.defer(client(true, OP_TEXT, b"late"));
    assert!(!r.has_backlog());
}
