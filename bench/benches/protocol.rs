//! Micro-benchmarks of bbrt-protocol: decoding client frames, encoding server frames, and
//! the Hub's cost per delivery of a message to a 10-member and a 1,000-member thread
//! (the Hub driven directly: connections opened and identified through answers to its
//! `Verify` requests, a send answered with a `StoredMessage`, the outputs drained).
//!
//! `cargo bench -p bbrt-bench --bench protocol`

use std::hint::black_box;

use bbrt_protocol::hub::Input;
use bbrt_protocol::ids::{ConnId, MessageId, ThreadId, UserId};
use bbrt_protocol::wire::{MessageEvent, ServerMessage, TypingEvent};
use bbrt_protocol::{Limits, decode};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

#[path = "../src/hub_fixture.rs"]
mod hub_fixture;
use hub_fixture::Fixture;

const SEND: &str = r#"{"type":"send_message","recipientId":"RECIPIENT_ID","message":"Hello, this is a message.","threadId":"THREAD_ID","token":"YOUR_API_TOKEN"}"#;
const TYPING: &str = r#"{"type":"typing","threadId":"THREAD_ID"}"#;
const USER_CONNECTED: &str = r#"{"type":"user_connected","userId":"USER_ID"}"#;

fn offer() -> String {
    let sdp = "v=0\\r\\no=- 4611731400430051336 2 IN IP4 127.0.0.1\\r\\ns=-\\r\\nt=0 0\\r\\na=group:BUNDLE 0 1\\r\\n"
        .repeat(20);
    format!(
        r#"{{"type":"offer","offer":{{"type":"offer","sdp":"{sdp}"}},"recipientId":"RECIPIENT_ID","senderId":"SENDER_ID","threadId":"THREAD_ID"}}"#
    )
}

fn codec(c: &mut Criterion) {
    let limits = Limits::default();
    let offer = offer();
    let mut g = c.benchmark_group("decode");
    for (name, frame) in [
        ("send_message", SEND),
        ("typing", TYPING),
        ("user_connected", USER_CONNECTED),
        ("offer_2k", &offer),
    ] {
        g.throughput(Throughput::Bytes(frame.len() as u64));
        g.bench_function(name, |b| {
            b.iter(|| decode(black_box(frame), &limits).expect("a valid frame"))
        });
    }
    g.finish();

    let message = ServerMessage::Message(MessageEvent {
        id: MessageId::new("123456").expect("valid id"),
        thread_id: ThreadId::new("7890").expect("valid id"),
        sender_id: UserId::new("42").expect("valid id"),
        message: "Hello, this is a message.".to_owned(),
        html: None,
        sent_at: "2026-11-25T00:48:52Z".to_owned(),
        client_message_id: None,
        unread: None,
        position: None,
    });
    let typing = ServerMessage::Typing(TypingEvent {
        thread_id: ThreadId::new("7890").expect("valid id"),
        user_id: UserId::new("42").expect("valid id"),
        typing: true,
    });
    let mut g = c.benchmark_group("encode");
    g.bench_function("message", |b| b.iter(|| black_box(&message).encode()));
    g.bench_function("typing", |b| b.iter(|| black_box(&typing).encode()));
    g.finish();
}

fn hub(c: &mut Criterion) {
    let mut g = c.benchmark_group("hub_send");
    for members in [10usize, 1000] {
        let mut f = Fixture::new(members);
        g.throughput(Throughput::Elements(members as u64));
        g.bench_function(format!("{members}_members"), |b| {
            b.iter(|| {
                let frame = f.send.clone();
                let delivered = f.input(Input::Frame {
                    conn: ConnId(0),
                    frame,
                    credential: None,
                });
                assert_eq!(delivered, members, "one delivery per member");
            });
        });
    }
    g.finish();
}

criterion_group!(benches, codec, hub);
criterion_main!(benches);
