//! Bad input, floods, slow and silent consumers, caps, and graceful shutdown.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{Client, Server, WAIT, config, http_get};
use futures_util::SinkExt;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::Message;

/// A hand-rolled client, for what tungstenite refuses to send or does on its own.
struct Raw {
    s: TcpStream,
    buf: Vec<u8>,
}

impl Raw {
    async fn connect(addr: SocketAddr, recv_buffer: Option<u32>) -> Self {
        Self::connect_sending(addr, recv_buffer, &[]).await
    }

    /// Connects with `frames` written right behind the upgrade request, in one write.
    async fn connect_sending(addr: SocketAddr, recv_buffer: Option<u32>, frames: &[u8]) -> Self {
        let socket = TcpSocket::new_v4().expect("socket");
        if let Some(size) = recv_buffer {
            socket.set_recv_buffer_size(size).expect("rcvbuf");
        }
        let mut s = socket.connect(addr).await.expect("connect");
        let req = "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
        let mut first = req.as_bytes().to_vec();
        first.extend_from_slice(frames);
        s.write_all(&first).await.expect("write");
        let mut buf = Vec::new();
        loop {
            let mut chunk = [0u8; 1024];
            let n = tokio::time::timeout(WAIT, s.read(&mut chunk))
                .await
                .expect("in time")
                .expect("read");
            assert!(n > 0, "closed during handshake");
            buf.extend_from_slice(&chunk[..n]);
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                assert!(
                    buf.starts_with(b"HTTP/1.1 101"),
                    "{}",
                    String::from_utf8_lossy(&buf)
                );
                buf.drain(..end + 4);
                return Self { s, buf };
            }
        }
    }

    fn frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        common::client_frame(fin, opcode, payload)
    }

    async fn send(&mut self, fin: bool, opcode: u8, payload: &[u8]) {
        self.s
            .write_all(&Self::frame(fin, opcode, payload))
            .await
            .expect("write");
    }

    /// The next server frame: (opcode, payload); None at EOF.
    async fn next(&mut self) -> Option<(u8, Vec<u8>)> {
        loop {
            if self.buf.len() >= 2 {
                let len7 = (self.buf[1] & 0x7F) as usize;
                let (len, off) = match len7 {
                    126 if self.buf.len() >= 4 => {
                        (u16::from_be_bytes([self.buf[2], self.buf[3]]) as usize, 4)
                    }
                    127 if self.buf.len() >= 10 => {
                        let mut a = [0u8; 8];
                        a.copy_from_slice(&self.buf[2..10]);
                        (u64::from_be_bytes(a) as usize, 10)
                    }
                    126 | 127 => (usize::MAX, 0),
                    n => (n, 2),
                };
                if len != usize::MAX && self.buf.len() >= off + len {
                    let opcode = self.buf[0] & 0x0F;
                    let payload = self.buf[off..off + len].to_vec();
                    self.buf.drain(..off + len);
                    return Some((opcode, payload));
                }
            }
            let mut chunk = [0u8; 8192];
            let n = tokio::time::timeout(WAIT, self.s.read(&mut chunk))
                .await
                .expect("in time")
                .unwrap_or(0);
            if n == 0 {
                return None;
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    async fn next_text(&mut self) -> serde_json::Value {
        loop {
            match self.next().await {
                Some((1, p)) => return serde_json::from_slice(&p).expect("json"),
                Some(_) => {}
                None => panic!("closed while waiting for text"),
            }
        }
    }

    /// Reads until a close frame; its code.
    async fn close_code(&mut self) -> Option<u16> {
        while let Some((op, p)) = self.next().await {
            if op == 8 {
                return (p.len() >= 2).then(|| u16::from_be_bytes([p[0], p[1]]));
            }
        }
        None
    }
}

#[tokio::test]
async fn oversized_frame_closes_1009() {
    let server = Server::start(common::Config {
        max_frame_bytes: 1024,
        ..config()
    })
    .await;
    let mut c = server.client().await;
    let big = json!({"type": "typing", "threadId": "x".repeat(2000)}).to_string();
    c.send_raw(Message::text(big)).await;
    assert_eq!(c.closed().await, Some(1009));
}

#[tokio::test]
async fn binary_frame_gets_an_error_and_the_connection_stays_usable() {
    let server = Server::start(config()).await;
    let mut c = server.client().await;
    c.send_raw(Message::binary(vec![1u8, 2, 3])).await;
    let e = c.recv().await;
    assert_eq!(
        (e["type"].as_str(), e["code"].as_str()),
        (Some("error"), Some("binary_frame"))
    );
    c.send(json!({"type": "ping"})).await;
    assert_eq!(c.recv().await["type"], "pong");
}

#[tokio::test]
async fn invalid_utf8_closes_1007() {
    let server = Server::start(config()).await;
    let mut raw = Raw::connect(server.handle.local_addr(), None).await;
    raw.send(true, 1, &[b'{', 0xFF, 0xFE, b'}']).await;
    assert_eq!(raw.close_code().await, Some(1007));
}

#[tokio::test]
async fn fragments_with_a_ping_between_are_reassembled() {
    let server = Server::start(config()).await;
    let mut raw = Raw::connect(server.handle.local_addr(), None).await;
    raw.send(false, 1, br#"{"type":"pi"#).await;
    raw.send(true, 9, b"hello").await;
    raw.send(true, 0, br#"ng","requestId":3}"#).await;
    assert_eq!(
        raw.next().await,
        Some((10, b"hello".to_vec())),
        "pong echoes the ping's payload"
    );
    assert_eq!(
        raw.next_text().await,
        json!({"type": "pong", "requestId": 3})
    );
    raw.send(true, 8, &1000u16.to_be_bytes()).await;
    assert_eq!(raw.close_code().await, Some(1000), "close code echoed");
}

/// Frames a client sends right behind its upgrade request (in the same packet, before
/// the 101) are served in order, more than one read's worth of events included, and an
/// incomplete one is completed by the next read.
#[tokio::test]
async fn frames_sent_with_the_upgrade_request_are_served_in_order() {
    // Control frames within their rate: this test is about order, not the limit.
    let server = Server::start(common::Config {
        frame_rate: 1000.0,
        frame_burst: 1000.0,
        ..config()
    })
    .await;
    let ping = |i: u32| {
        Raw::frame(
            true,
            1,
            format!(r#"{{"type":"ping","requestId":{i}}}"#).as_bytes(),
        )
    };
    // 70 events: more than the connection decodes per wake-up (64).
    let mut early = Vec::new();
    for _ in 0..60 {
        early.extend(Raw::frame(true, 9, b""));
    }
    for i in 0..10 {
        early.extend(ping(i));
    }
    let last = ping(10);
    let (head, rest) = last.split_at(last.len() / 2);
    early.extend_from_slice(head);
    let mut raw = Raw::connect_sending(server.handle.local_addr(), None, &early).await;
    raw.s.write_all(rest).await.expect("write");
    for i in 0..=10 {
        assert_eq!(
            raw.next_text().await,
            json!({"type": "pong", "requestId": i})
        );
    }
    raw.send(true, 8, &1000u16.to_be_bytes()).await;
    assert_eq!(raw.close_code().await, Some(1000));
}

#[tokio::test]
async fn protocol_violations_close_1002() {
    let server = Server::start(config()).await;
    let mut raw = Raw::connect(server.handle.local_addr(), None).await;
    raw.send(true, 0, b"continuation without a start").await;
    assert_eq!(raw.close_code().await, Some(1002));
}

#[tokio::test]
async fn frame_flood_is_rate_limited_then_closed_4008() {
    let cfg = common::Config {
        frame_rate: 5.0,
        frame_burst: 5.0,
        close_after_violations: 20,
        ..config()
    };
    let server = Server::start(cfg).await;
    let mut c = server.client().await;
    for _ in 0..100 {
        if c.ws
            .send(Message::text(json!({"type": "ping"}).to_string()))
            .await
            .is_err()
        {
            break;
        }
    }
    let mut limited = 0;
    let code = loop {
        match tokio::time::timeout(WAIT, futures_util::StreamExt::next(&mut c.ws))
            .await
            .expect("in time")
        {
            Some(Ok(Message::Text(t))) => {
                if t.contains("rate_limited") {
                    limited += 1;
                }
            }
            Some(Ok(Message::Close(f))) => break f.map(|f| u16::from(f.code)),
            Some(Ok(_)) => {}
            _ => break None,
        }
    };
    assert!(limited > 0, "rate_limited errors before the close");
    assert_eq!(code, Some(4008));
}

#[tokio::test]
async fn slow_consumer_is_closed_without_slowing_others() {
    let cfg = common::Config {
        outbound_queue_bytes: 64 * 1024,
        send_buffer_bytes: 4096,
        frame_rate: 10_000.0,
        frame_burst: 10_000.0,
        ..config()
    };
    let server = Server::start(cfg).await;
    let addr = server.handle.local_addr();
    // The slow one: identifies, joins, then never reads again (small receive buffer).
    let mut slow = Raw::connect(addr, Some(4096)).await;
    let hello = json!({"type": "user_connected", "userId": "slow"}).to_string();
    slow.send(true, 1, hello.as_bytes()).await;
    let join = json!({"type": "join_thread", "threadId": "T", "requestId": 1}).to_string();
    slow.send(true, 1, join.as_bytes()).await;
    loop {
        if slow.next_text().await["type"] == "joined" {
            break;
        }
    }
    let mut fast = server.user("fast").await;
    fast.send(json!({"type": "join_thread", "threadId": "T"}))
        .await;
    fast.recv_type("joined").await;
    let text = "x".repeat(8 * 1024);
    for i in 0..60 {
        fast.send(
            json!({"type": "send_message", "threadId": "T", "message": format!("{i}{text}")}),
        )
        .await;
        let m = fast.recv_type("message").await;
        assert!(
            m["message"]
                .as_str()
                .is_some_and(|t| t.starts_with(&i.to_string())),
            "the fast client keeps up"
        );
    }
    // The slow one was cut off: counted, and its socket ends.
    let mut closed = false;
    for _ in 0..100 {
        let (_, metrics) = http_get(addr, "/metrics", "").await;
        if metrics
            .lines()
            .any(|l| l.starts_with("bbrt_slow_consumer_closes_total") && !l.ends_with(" 0"))
        {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(closed, "slow consumer closed");
    let code = slow.close_code().await;
    assert!(code.is_none() || code == Some(4011), "{code:?}");
}

#[tokio::test]
async fn silent_peer_is_pinged_then_closed_4012() {
    let cfg = common::Config {
        ping_interval: Duration::from_millis(100),
        idle_timeout: Duration::from_millis(400),
        ..config()
    };
    let server = Server::start(cfg).await;
    let mut raw = Raw::connect(server.handle.local_addr(), None).await;
    assert_eq!(raw.next().await.map(|f| f.0), Some(9), "a ping first");
    assert_eq!(raw.close_code().await, Some(4012));
}

#[tokio::test]
async fn a_peer_that_answers_pings_stays() {
    let cfg = common::Config {
        ping_interval: Duration::from_millis(100),
        idle_timeout: Duration::from_millis(400),
        ..config()
    };
    let server = Server::start(cfg).await;
    let mut c = server.client().await;
    // tungstenite answers pings while it reads.
    assert!(c.drain(Duration::from_millis(900)).await.is_empty());
    c.send(json!({"type": "ping"})).await;
    assert_eq!(c.recv().await["type"], "pong");
}

#[tokio::test]
async fn per_ip_cap_answers_429_and_origins_403() {
    let cfg = common::Config {
        max_connections_per_ip: 2,
        allowed_origins: vec!["https://ok.example".into()],
        ..config()
    };
    let server = Server::start(cfg).await;
    let ok = [("origin", "https://ok.example")];
    let _a = Client::connect(&server.url, &ok).await;
    let _b = Client::connect(&server.url, &[]).await;
    let third = Client::try_connect(&server.url, &ok).await;
    match third {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status().as_u16(), 429),
        other => panic!("expected 429, got {:?}", other.map(|_| ())),
    }
    drop(_a);
    tokio::time::sleep(Duration::from_millis(100)).await;
    match Client::try_connect(&server.url, &[("origin", "https://evil.example")]).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status().as_u16(), 403),
        other => panic!("expected 403, got {:?}", other.map(|_| ())),
    }
}

#[tokio::test]
async fn http_endpoints() {
    let server = Server::start(common::Config {
        serve_examples: true,
        ..config()
    })
    .await;
    let addr = server.handle.local_addr();
    let _c = server.user("alice").await;
    assert_eq!(http_get(addr, "/healthz", "").await.0, 200);
    assert_eq!(http_get(addr, "/readyz", "").await.0, 200);
    let (status, metrics) = http_get(addr, "/metrics", "").await;
    assert_eq!(status, 200);
    assert!(
        metrics.contains("bbrt_connections{state=\"verified\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("bbrt_users_online 1"), "{metrics}");
    assert!(
        metrics.contains("bbrt_site_request_seconds_count{request=\"verify\"} 1"),
        "{metrics}"
    );
    assert_eq!(http_get(addr, "/nope", "").await.0, 404);
    let (status, page) = http_get(addr, "/example", "").await;
    assert_eq!(status, 200);
    assert!(page.contains("<script"), "the example page");
    assert_eq!(http_get(addr, "/", "").await.0, 426);
}

#[tokio::test]
async fn garbage_instead_of_http_gets_400() {
    let server = Server::start(config()).await;
    let mut s = TcpStream::connect(server.handle.local_addr())
        .await
        .expect("connect");
    s.write_all(b"\x16\x03\x01 not http at all\r\n\r\n")
        .await
        .expect("write");
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(WAIT, s.read_to_end(&mut buf))
        .await
        .expect("in time");
    assert!(
        buf.starts_with(b"HTTP/1.1 400"),
        "{}",
        String::from_utf8_lossy(&buf)
    );
}

#[tokio::test]
async fn graceful_shutdown_closes_every_socket_with_1001() {
    let server = Server::start(config()).await;
    let mut a = server.user("alice").await;
    let mut b = server.client().await;
    server.handle.shutdown();
    assert_eq!(a.closed().await, Some(1001));
    assert_eq!(b.closed().await, Some(1001));
    tokio::time::timeout(WAIT, server.handle.wait())
        .await
        .expect("stops in time")
        .expect("clean stop");
}

#[tokio::test]
async fn bad_frames_answer_errors_and_others_notice_nothing() {
    let server = Server::start(config()).await;
    let mut bystander = server.user("bob").await;
    let mut c = server.user("alice").await;
    for (frame, code) in [
        ("not json", "invalid_json"),
        ("[1]", "not_an_object"),
        (r#"{"no":"type"}"#, "missing_type"),
        (
            r#"{"type":"launch_missiles","requestId":9}"#,
            "unknown_type",
        ),
        (r#"{"type":"join_thread","threadId":-1}"#, "invalid_id"),
        (
            r#"{"type":"typing","threadId":"T","typing":"yes"}"#,
            "invalid_field",
        ),
    ] {
        c.send_raw(Message::text(frame)).await;
        let e = c.recv().await;
        assert_eq!(
            (e["type"].as_str(), e["code"].as_str()),
            (Some("error"), Some(code)),
            "{frame}"
        );
    }
    assert!(bystander.drain(Duration::from_millis(200)).await.is_empty());
}

#[tokio::test]
async fn anonymous_connections_are_evicted_oldest_first_4010() {
    let server = Server::start(common::Config {
        max_anonymous_per_ip: 2,
        ..config()
    })
    .await;
    let mut oldest = server.client().await;
    let mut second = server.client().await;
    oldest.send(json!({"type": "ping"})).await;
    assert_eq!(oldest.recv().await["type"], "pong");
    let mut third = server.client().await;
    assert_eq!(oldest.closed().await, Some(4010));
    // Identified connections do not count: alice's own arrival evicts `second`, then she
    // is verified and anonymous `fourth` fits beside `third`.
    let mut alice = server.user("alice").await;
    assert_eq!(second.closed().await, Some(4010));
    let mut fourth = server.client().await;
    for c in [&mut third, &mut fourth, &mut alice] {
        c.send(json!({"type": "ping"})).await;
        assert_eq!(c.recv_skip_presence().await["type"], "pong");
    }
}

/// Issue 12, item 2: a client that sends all of an oversized frame before it reads gets the
/// 1009, not a reset: the server discards what follows its close frame (bounded) and
/// waits for the client's close.
#[tokio::test]
async fn a_fully_sent_16_mib_frame_gets_1009_every_time() {
    const TRIES: usize = 20;
    let server = common::Process::start(&[]).await;
    let url = format!("ws://{}/", server.addr);
    let big = "x".repeat(16 * 1024 * 1024);
    let mut codes = Vec::new();
    for _ in 0..TRIES {
        let mut c = Client::connect(&url, &[]).await;
        // tungstenite writes the whole frame, then reads.
        let sent = c.ws.send(Message::text(big.clone())).await;
        let code = match sent {
            Ok(()) => c.closed().await,
            Err(_) => None,
        };
        codes.push(code.map_or(1006, |c| c));
    }
    let got_1009 = codes.iter().filter(|&&c| c == 1009).count();
    println!(
        "close codes over {TRIES} fully sent 16 MiB frames: {got_1009} × 1009, all: {codes:?}"
    );
    assert_eq!(got_1009, TRIES, "{codes:?}");
}

/// Issue 12, item 1: pings and pongs have a rate limit at the transport (the Hub never sees
/// them): past the frame rate they go unanswered, and a client that keeps on is closed 4008.
#[tokio::test]
async fn a_ping_flood_past_the_frame_rate_is_closed_4008() {
    let server = Server::start(config()).await;
    let cfg = config();
    let mut raw = Raw::connect(server.handle.local_addr(), None).await;
    let pings = (cfg.frame_burst as usize) + cfg.close_after_violations as usize + 50;
    let mut flood = Vec::new();
    for _ in 0..pings {
        flood.extend(Raw::frame(true, 0x9, b"p"));
    }
    raw.s.write_all(&flood).await.expect("write");
    let mut pongs = 0;
    let code = loop {
        match raw.next().await {
            Some((0xA, _)) => pongs += 1,
            Some((0x8, p)) => break (p.len() >= 2).then(|| u16::from_be_bytes([p[0], p[1]])),
            Some(_) => {}
            None => break None,
        }
    };
    assert!(
        pongs <= cfg.frame_burst as usize,
        "{pongs} pongs for {pings} pings in a burst"
    );
    assert_eq!(code, Some(4008));
    let mut other = server.client().await;
    other.send(json!({"type": "ping", "requestId": 1})).await;
    assert_eq!(
        other.recv_type("pong").await["requestId"],
        1,
        "others are unaffected"
    );
}

/// Issue 12, item 1: nothing more is read from a connection whose replies wait for the
/// socket. A client that pings and never reads fills its socket with pongs (one per read);
/// from then on what it writes stays in the kernel's buffers instead of being read and
/// dropped, and the stalled connection is closed 4011.
#[tokio::test]
async fn a_pinger_that_never_reads_is_not_read_while_its_pongs_wait() {
    let server = Server::start(common::Config {
        send_buffer_bytes: 4096,
        write_timeout: Duration::from_secs(5),
        frame_rate: 1e9,
        frame_burst: 1e9,
        ..config()
    })
    .await;
    let addr = server.handle.local_addr();
    let mut s = common::raw_websocket(addr, Some(4096)).await;
    let ping = common::client_frame(true, 0x9, &[b'p'; 125]);
    // One ping per read, so one pong each: a few hundred fill the small buffers.
    const ONE_BY_ONE: usize = 600;
    for _ in 0..ONE_BY_ONE {
        s.write_all(&ping).await.expect("write");
        tokio::time::sleep(Duration::from_micros(300)).await;
    }
    // Then as much as the kernel's buffers take (a write that blocks for a second: nobody
    // reads), or until the server closes the stalled connection.
    let batch = ping.repeat(500);
    let mut written = ONE_BY_ONE * ping.len();
    while written < 256 * 1024 * 1024 {
        match tokio::time::timeout(Duration::from_secs(1), s.write_all(&batch)).await {
            Ok(Ok(())) => written += batch.len(),
            Ok(Err(_)) | Err(_) => break,
        }
    }
    let deadline = tokio::time::Instant::now() + WAIT;
    let body = loop {
        let (_, body) = http_get(addr, "/metrics", "").await;
        if common::metric(&body, "bbrt_slow_consumer_closes_total") == Some(1.0) {
            break body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "closed 4011 once its writes stalled"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let read = common::metric(&body, "bbrt_bytes_in_total").expect("bytes_in") as usize;
    // After the socket filled, at most the rest of one read burst (16 reads of 64 KiB).
    let bound = ONE_BY_ONE * ping.len() + 16 * 64 * 1024;
    println!(
        "a pinger that never reads: wrote {written} bytes, the server read {read} (bound {bound})"
    );
    assert!(
        read <= bound,
        "the server read {read} bytes of {written} while its pongs waited"
    );
}

/// Every answer (ack, joined, pong, error) on `c` within `dur`, by `requestId`.
async fn answers_by_request_id(
    c: &mut Client,
    dur: Duration,
) -> std::collections::BTreeMap<String, Vec<serde_json::Value>> {
    let mut by_id = std::collections::BTreeMap::<String, Vec<serde_json::Value>>::new();
    for frame in c.drain(dur).await {
        if let Some(id) = frame.get("requestId") {
            by_id.entry(id.to_string()).or_default().push(frame);
        }
    }
    by_id
}

#[tokio::test]
async fn every_client_type_with_a_request_id_gets_exactly_one_answer() {
    let server = Server::start(config()).await;
    let mut c = server.user("alice").await;
    let frames = [
        json!({"type": "user_connected", "userId": "alice"}),
        json!({"type": "join_thread", "threadId": "T"}),
        json!({"type": "send_message", "threadId": "T", "message": "hi"}),
        json!({"type": "typing", "threadId": "T"}),
        json!({"type": "mark_read", "threadId": "T"}),
        json!({"type": "call_initiated", "recipientId": "bob", "threadId": "T"}),
        json!({"type": "offer", "offer": {"sdp": "o"}, "recipientId": "bob", "threadId": "T"}),
        json!({"type": "answer", "answer": {"sdp": "a"}, "recipientId": "bob", "threadId": "T"}),
        json!({"type": "ice-candidate", "candidate": "c", "recipientId": "bob", "threadId": "T"}),
        json!({"type": "call_accepted", "recipientId": "bob", "threadId": "T"}),
        json!({"type": "call_rejected", "recipientId": "bob", "threadId": "T"}),
        json!({"type": "call_ended", "recipientId": "bob", "threadId": "T"}),
        json!({"type": "leave_thread", "threadId": "T"}),
        json!({"type": "ping"}),
    ];
    for (i, frame) in frames.iter().enumerate() {
        let mut frame = frame.clone();
        frame["requestId"] = json!(i);
        c.send(frame).await;
    }
    let by_id = answers_by_request_id(&mut c, Duration::from_millis(500)).await;
    for (i, frame) in frames.iter().enumerate() {
        let got = by_id
            .get(&i.to_string())
            .map(Vec::as_slice)
            .unwrap_or_default();
        assert_eq!(got.len(), 1, "{frame} answered {got:?}");
    }
}

#[tokio::test]
async fn rate_limited_answers_echo_the_request_id() {
    let cfg = common::Config {
        frame_rate: 1.0,
        frame_burst: 3.0,
        close_after_violations: 1_000,
        ..config()
    };
    let server = Server::start(cfg).await;
    let mut c = server.client().await;
    // Decodable frames and frames the decoder refuses: both are counted, both answered.
    for i in 0..20 {
        let frame = if i % 2 == 0 {
            json!({"type": "ping", "requestId": i}).to_string()
        } else {
            format!(r#"{{"type":"ping","type":"ping","requestId":{i}}}"#)
        };
        c.send_raw(Message::text(frame)).await;
    }
    let by_id = answers_by_request_id(&mut c, Duration::from_millis(500)).await;
    let mut limited = 0;
    for i in 0..20 {
        let got = by_id
            .get(&i.to_string())
            .map(Vec::as_slice)
            .unwrap_or_default();
        assert_eq!(got.len(), 1, "#{i} answered {got:?}");
        limited += usize::from(got[0]["code"] == "rate_limited");
    }
    assert!(limited > 0, "the flood was rate limited");
}

#[tokio::test]
async fn queue_full_answers_echo_the_request_id() {
    use bbrt_buddyboss::fake::FakeSite;
    let site = FakeSite::start_seeded().await.expect("fake site");
    let server = Server::start(common::Config {
        buddyboss_url: Some(site.api_root()),
        max_queued_per_conn: 2,
        ..config()
    })
    .await;
    // The upgrade's credential is verified first; frames wait behind it, two at most.
    site.set_latency(Duration::from_millis(700));
    let mut c = Client::connect(&server.url, &[("authorization", "Bearer alice-token")]).await;
    for i in 0..6 {
        c.send(json!({"type": "ping", "requestId": i})).await;
    }
    let by_id = answers_by_request_id(&mut c, Duration::from_millis(1500)).await;
    site.set_latency(Duration::ZERO);
    let mut full = 0;
    for i in 0..6 {
        let got = by_id
            .get(&i.to_string())
            .map(Vec::as_slice)
            .unwrap_or_default();
        assert_eq!(got.len(), 1, "#{i} answered {got:?}");
        full += usize::from(got[0]["code"] == "queue_full");
    }
    assert_eq!(full, 4, "{by_id:?}");
}

#[tokio::test]
async fn the_error_before_a_too_many_connections_close_echoes_the_request_id() {
    let server = Server::start(common::Config {
        max_conns_per_user: 1,
        ..config()
    })
    .await;
    let _first = server.user("alice").await;
    let mut second = server.client().await;
    second
        .send(json!({"type": "user_connected", "userId": "alice", "requestId": "again"}))
        .await;
    let e = second.recv_skip_presence().await;
    assert_eq!(
        (e["code"].as_str(), e["requestId"].as_str()),
        (Some("too_many_connections"), Some("again")),
        "{e}"
    );
    assert_eq!(second.closed().await, Some(4009));
}

/// A read holds at most a few dozen decoded frames; the rest of it waits undecoded and is
/// taken up without the socket saying more: frames written in one go are all answered, in
/// order, none lost or doubled.
#[tokio::test]
async fn thousands_of_frames_in_one_write_are_all_answered_in_order() {
    let cfg = common::Config {
        frame_rate: 1e6,
        frame_burst: 1e6,
        ..config()
    };
    let server = Server::start(cfg).await;
    let mut raw = Raw::connect(server.handle.local_addr(), None).await;
    let count = 3000;
    let mut flood = Vec::new();
    for id in 0..count {
        let ping = json!({"type": "ping", "requestId": id}).to_string();
        flood.extend(Raw::frame(true, 0x1, ping.as_bytes()));
    }
    raw.s.write_all(&flood).await.expect("write");
    let mut ids = Vec::new();
    while ids.len() < count {
        match raw.next().await {
            Some((0x1, text)) => {
                let frame: serde_json::Value = serde_json::from_slice(&text).expect("json");
                assert_eq!(frame["type"], "pong", "{frame}");
                ids.push(frame["requestId"].as_u64().expect("requestId"));
            }
            Some((opcode, _)) => panic!("unexpected opcode {opcode}"),
            None => break,
        }
    }
    assert_eq!(ids, (0..count as u64).collect::<Vec<_>>());
}
