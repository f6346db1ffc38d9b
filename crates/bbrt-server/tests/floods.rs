//! Floods against a real server: typing, joins, call invites, ICE candidates, connections
//! per user, anonymous connections. Each limit is enforced with its documented error or
//! close, others keep working, and memory stays bounded.

mod common;

use std::time::Duration;

use common::{Server, WAIT, config};
use serde_json::json;

#[tokio::test]
async fn a_typing_flood_is_coalesced_then_rate_limited_then_closed() {
    let server = Server::start(config()).await;
    let mut alice = server.user("alice").await;
    let mut bob = server.user("bob").await;
    for c in [&mut alice, &mut bob] {
        c.send(json!({"type": "join_thread", "threadId": "t"}))
            .await;
        c.recv_type("joined").await;
    }
    for _ in 0..60 {
        alice.send(json!({"type": "typing", "threadId": "t"})).await;
    }
    let seen = bob.kinds_within(Duration::from_millis(500)).await;
    assert_eq!(
        seen,
        ["typing"],
        "60 keystrokes within the interval forward one typing"
    );
    for _ in 0..400 {
        alice.send(json!({"type": "typing", "threadId": "t"})).await;
    }
    let mut limited = 0;
    let code = loop {
        match tokio::time::timeout(WAIT, futures_util::StreamExt::next(&mut alice.ws))
            .await
            .expect("in time")
        {
            Some(Ok(tokio_tungstenite::tungstenite::Message::Text(t))) => {
                let v: serde_json::Value = serde_json::from_str(&t).expect("json");
                if v["code"] == "rate_limited" {
                    limited += 1;
                }
            }
            Some(Ok(tokio_tungstenite::tungstenite::Message::Close(f))) => {
                break f.map(|f| u16::from(f.code));
            }
            Some(Ok(_)) => {}
            _ => break None,
        }
    };
    assert!(limited > 0, "rate_limited errors before the close");
    assert_eq!(code, Some(4008));
    bob.send(json!({"type": "ping", "requestId": 1})).await;
    assert_eq!(
        bob.recv_type("pong").await["requestId"],
        1,
        "bob is unaffected"
    );
}

#[tokio::test]
async fn joining_too_many_threads_is_refused() {
    let mut cfg = config();
    cfg.max_threads_per_conn = 5;
    let server = Server::start(cfg).await;
    let mut alice = server.user("alice").await;
    for i in 0..5 {
        alice
            .send(json!({"type": "join_thread", "threadId": format!("t{i}")}))
            .await;
        alice.recv_type("joined").await;
    }
    alice
        .send(json!({"type": "join_thread", "threadId": "t5", "requestId": "six"}))
        .await;
    let e = alice.recv_type("error").await;
    assert_eq!(
        (e["code"].as_str(), e["requestId"].as_str()),
        (Some("too_many_threads"), Some("six"))
    );
    alice
        .send(json!({"type": "join_thread", "threadId": "t0", "requestId": "again"}))
        .await;
    assert_eq!(
        alice.recv_type("joined").await["requestId"],
        "again",
        "rejoining a joined thread is fine"
    );
}

#[tokio::test]
async fn call_invites_are_limited_per_user() {
    let mut cfg = config();
    cfg.invites_per_minute = 3;
    let server = Server::start(cfg).await;
    let mut alice = server.user("alice").await;
    let mut bob = server.user("bob").await;
    for c in [&mut alice, &mut bob] {
        c.send(json!({"type": "join_thread", "threadId": "t"}))
            .await;
        c.recv_type("joined").await;
    }
    for i in 0..3 {
        alice.send(json!({"type": "call_initiated", "recipientId": "bob", "threadId": "t", "requestId": i})).await;
        let call = alice.recv_type("ack").await["callId"].clone();
        alice
            .send(json!({"type": "call_ended", "callId": call}))
            .await;
        alice.recv_type("call_ended").await;
    }
    alice.send(json!({"type": "call_initiated", "recipientId": "bob", "threadId": "t", "requestId": "4th"})).await;
    let e = alice.recv_type("error").await;
    assert_eq!(
        (e["code"].as_str(), e["requestId"].as_str()),
        (Some("rate_limited"), Some("4th"))
    );
}

#[tokio::test]
async fn an_ice_candidate_burst_is_bounded_for_the_peer() {
    let server = Server::start(config()).await;
    let mut alice = server.user("alice").await;
    let mut bob = server.user("bob").await;
    for c in [&mut alice, &mut bob] {
        c.send(json!({"type": "join_thread", "threadId": "t"}))
            .await;
        c.recv_type("joined").await;
    }
    alice
        .send(json!({"type": "call_initiated", "recipientId": "bob", "threadId": "t"}))
        .await;
    bob.recv_type("call_initiated").await;
    bob.send(json!({"type": "call_accepted", "recipientId": "alice", "threadId": "t"}))
        .await;
    alice.recv_type("call_accepted").await;
    for i in 0..10_000 {
        let frame = json!({"type": "ice-candidate", "candidate": format!("candidate:{i}"), "recipientId": "bob", "threadId": "t"});
        if futures_util::SinkExt::send(
            &mut alice.ws,
            tokio_tungstenite::tungstenite::Message::text(frame.to_string()),
        )
        .await
        .is_err()
        {
            break;
        }
    }
    assert_eq!(alice.closed().await, Some(4008), "the flooder is closed");
    let frames = bob.drain(Duration::from_millis(500)).await;
    let candidates = frames
        .iter()
        .filter(|f| f["type"] == "ice-candidate")
        .count();
    assert!(
        candidates > 0 && candidates <= 200,
        "the peer got a bounded share: {candidates}"
    );
}

#[tokio::test]
async fn too_many_connections_for_one_user_closes_4009() {
    let mut cfg = config();
    cfg.max_conns_per_user = 3;
    let server = Server::start(cfg).await;
    let mut kept = Vec::new();
    for _ in 0..3 {
        kept.push(server.user("alice").await);
    }
    let mut fourth = server.client().await;
    fourth
        .send(json!({"type": "user_connected", "userId": "alice", "requestId": 1}))
        .await;
    let e = fourth.recv_type("error").await;
    assert_eq!(e["code"], "too_many_connections");
    assert_eq!(fourth.closed().await, Some(4009));
    kept[0].send(json!({"type": "ping", "requestId": 2})).await;
    assert_eq!(kept[0].recv_type("pong").await["requestId"], 2);
}

/// The server binary as its own process, so its RSS is its own.
struct Process {
    child: std::process::Child,
    addr: std::net::SocketAddr,
}

impl Process {
    async fn start(args: &[&str]) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("a free port")
            .local_addr()
            .expect("addr")
            .port();
        let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_bbrt-server"))
            .arg("--listen")
            .arg(addr.to_string())
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("the server binary starts");
        let deadline = tokio::time::Instant::now() + WAIT;
        while tokio::net::TcpStream::connect(addr).await.is_err() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the server listens in time"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Self { child, addr }
    }

    fn rss_kib(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).expect("procfs");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .expect("VmRSS in kB")
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn held_open_anonymous_connections_keep_memory_bounded() {
    let server = Process::start(&[
        "--max-anonymous-total",
        "200",
        "--max-anonymous-per-ip",
        "200",
        "--max-connections-per-ip",
        "5000",
    ])
    .await;
    let url = format!("ws://{}/", server.addr);
    let mut alice = common::Client::connect(&url, &[]).await;
    alice
        .send(json!({"type": "user_connected", "userId": "alice", "requestId": "hi"}))
        .await;
    alice.recv_type("ack").await;
    let before = server.rss_kib();
    let mut held = Vec::new();
    for _ in 0..1_000 {
        held.push(common::Client::connect(&url, &[]).await);
    }
    let mut evicted = 0;
    for c in held.iter_mut().take(800) {
        if c.closed().await == Some(4010) {
            evicted += 1;
        }
    }
    assert_eq!(
        evicted, 800,
        "the oldest anonymous connections are evicted first"
    );
    let during = server.rss_kib();
    drop(held);
    alice
        .send(json!({"type": "ping", "requestId": "alive"}))
        .await;
    assert_eq!(
        alice.recv_type("pong").await["requestId"],
        "alive",
        "identified users are never evicted"
    );
    let after = server.rss_kib();
    println!(
        "server RSS: before {before} KiB, holding 200 of 1,000 anonymous {during} KiB, after {after} KiB"
    );
    assert!(
        during < before + 16 * 1024,
        "RSS grew from {before} to {during} KiB"
    );
}

#[tokio::test]
async fn a_reader_of_one_frame_a_second_is_closed_without_slowing_others() {
    let mut cfg = config();
    cfg.outbound_queue_bytes = 64 * 1024;
    cfg.send_buffer_bytes = 4096;
    cfg.frame_rate = 10_000.0;
    cfg.frame_burst = 10_000.0;
    let server = Server::start(cfg).await;
    // The slow reader: a small receive buffer, and one frame a second.
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    let stream = socket
        .connect(server.handle.local_addr())
        .await
        .expect("connect");
    let stream = tokio_tungstenite::MaybeTlsStream::Plain(stream);
    let (ws, _) = tokio_tungstenite::client_async(server.url.as_str(), stream)
        .await
        .expect("handshake");
    let mut slow = common::Client { ws };
    slow.send(json!({"type": "user_connected", "userId": "slow"}))
        .await;
    slow.send(json!({"type": "join_thread", "threadId": "t", "requestId": 1}))
        .await;
    slow.recv_type("joined").await;
    let reader = tokio::spawn(async move {
        let mut frames = 0u32;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            match tokio::time::timeout_at(deadline, futures_util::StreamExt::next(&mut slow.ws))
                .await
            {
                Ok(Some(Ok(tokio_tungstenite::tungstenite::Message::Close(f)))) => {
                    return (frames, f.map(|f| u16::from(f.code)));
                }
                Ok(Some(Ok(_))) => frames += 1,
                Ok(_) => return (frames, None),
                Err(_) => return (frames, Some(0)),
            }
        }
    });
    let mut fast = server.user("fast").await;
    fast.send(json!({"type": "join_thread", "threadId": "t"}))
        .await;
    fast.recv_type("joined").await;
    let text = "x".repeat(8 * 1024);
    for i in 0..60 {
        fast.send(
            json!({"type": "send_message", "threadId": "t", "message": format!("{i} {text}")}),
        )
        .await;
        let m = fast.recv_type("message").await;
        assert!(
            m["message"]
                .as_str()
                .is_some_and(|t| t.starts_with(&format!("{i} "))),
            "the fast client keeps up"
        );
    }
    let (read, code) = reader.await.expect("reader task");
    assert!(
        read < 60,
        "the slow reader read {read} frames before the cut"
    );
    assert!(
        code.is_none() || code == Some(4011),
        "closed as a slow consumer: {code:?}"
    );
}
