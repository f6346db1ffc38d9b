//! Micro-benchmarks of bbrt-protocol: decoding client frames, encoding server frames, and
//! the Hub's cost per delivery of a message to a 10-member and a 1,000-member thread
//! (the Hub driven directly: connections opened and identified through answers to its
//! `Verify` requests, a send answered with a `StoredMessage`, the outputs drained).
//!
//! `cargo bench -p bbrt-bench --bench protocol`

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use bbrt_protocol::api::{ApiRequest, ApiResponse, SiteUser, StoredMessage, ThreadInfo};
use bbrt_protocol::hub::{Hub, HubConfig, Input, Output};
use bbrt_protocol::ids::{ConnId, MessageId, ThreadId, UserId};
use bbrt_protocol::wire::{MessageEvent, ServerMessage, TypingEvent};
use bbrt_protocol::{ClientFrame, Limits, decode};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

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

fn user(i: usize) -> UserId {
    UserId::new(&(i + 1).to_string()).expect("valid id")
}

/// A Hub with `members` identified connections (one per user) joined to thread "1".
struct Fixture {
    hub: Hub,
    now: Instant,
    thread: ThreadId,
    participants: Vec<UserId>,
    next_message: u64,
    send: ClientFrame,
}

impl Fixture {
    fn new(members: usize) -> Self {
        let config = HubConfig {
            frame_rate: 1e12,
            frame_burst: 1e12,
            max_anonymous_total: members * 2,
            max_anonymous_per_ip: members * 2,
            max_pending_sends_per_user: 1 << 20,
            ..HubConfig::default()
        };
        let thread = ThreadId::new("1").expect("valid id");
        let participants: Vec<UserId> = (0..members).map(user).collect();
        let send = decode(
            r#"{"type":"send_message","threadId":"1","message":"Hello, this is a message."}"#,
            &Limits::default(),
        )
        .expect("a valid frame");
        let mut f = Self {
            hub: Hub::new(config),
            now: Instant::now(),
            thread,
            participants,
            next_message: 1,
            send,
        };
        let limits = Limits::default();
        for i in 0..members {
            let conn = ConnId(i as u64);
            f.input(Input::Open {
                conn,
                ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
                credential: None,
            });
            let hello = format!(r#"{{"type":"user_connected","userId":"{}"}}"#, i + 1);
            let frame = decode(&hello, &limits).expect("a valid frame");
            f.input(Input::Frame {
                conn,
                frame,
                credential: None,
            });
            let join =
                decode(r#"{"type":"join_thread","threadId":"1"}"#, &limits).expect("a valid frame");
            f.input(Input::Frame {
                conn,
                frame: join,
                credential: None,
            });
        }
        assert_eq!(
            f.hub.stats().verified_connections,
            members,
            "every connection identified"
        );
        f
    }

    /// Handles `input`, answers every site request it leads to, and returns the deliveries.
    fn input(&mut self, input: Input) -> usize {
        self.now += Duration::from_micros(1);
        self.hub.handle(self.now, input);
        let mut deliveries = 0;
        let mut answers = Vec::new();
        loop {
            while let Some(output) = self.hub.poll_output() {
                match output {
                    Output::Send { conns, frame } => {
                        black_box(&frame);
                        deliveries += conns.len();
                    }
                    Output::Api { id, request } => answers.push(Input::ApiResult {
                        id,
                        result: Ok(self.answer(request)),
                    }),
                    _ => {}
                }
            }
            let Some(answer) = answers.pop() else { break };
            self.hub.handle(self.now, answer);
        }
        deliveries
    }

    fn answer(&mut self, request: ApiRequest) -> ApiResponse {
        match request {
            ApiRequest::Verify { claimed_user, .. } => ApiResponse::User(SiteUser {
                id: claimed_user.expect("bare user_connected claims a user"),
                name: "Bench User".to_owned(),
                avatar: None,
            }),
            ApiRequest::Participants { thread, .. } => ApiResponse::Participants(ThreadInfo {
                thread,
                participants: self.participants.clone(),
                last_message: None,
            }),
            ApiRequest::Send { sender, text, .. } => {
                self.next_message += 1;
                ApiResponse::Stored(StoredMessage {
                    id: MessageId::new(&self.next_message.to_string()).expect("valid id"),
                    thread: self.thread.clone(),
                    sender,
                    text,
                    html: None,
                    sent_at: "2026-11-25T00:48:52Z".to_owned(),
                    participants: self.participants.clone(),
                })
            }
            _ => ApiResponse::MarkedRead,
        }
    }
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
