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

#[tokio::test]
async fn held_open_anonymous_connections_keep_memory_bounded() {
    let server = common::Process::start(&[
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
    for i in 0..1_000 {
        let mut c = common::Client::connect(&url, &[]).await;
        // The Hub ranks connections by when it hears of them, which can trail the
        // handshake: a pong proves it has, so the next connection is ranked after this one
        // (without it, a loaded machine could swap two neighbours and evict number 800
        // instead of 799, which then waits for a close that never comes).
        c.send(json!({"type": "ping", "requestId": i})).await;
        assert_eq!(c.recv_type("pong").await["requestId"], i);
        held.push(c);
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

/// Issue 12, item 1: clients that write pings and never read. The server answers only the
/// latest ping of a read and reads nothing more while a pong waits for the socket, so its
/// memory stays within a small multiple of its bounds (a server that queued every pong
/// grew by hundreds of MiB here). Small socket buffers, so that pongs do wait.
#[tokio::test]
async fn fifty_ping_floods_that_never_read_keep_memory_bounded() {
    const CONNS: usize = 50;
    const OUTBOUND: usize = 64 * 1024;
    const FRAME: usize = 64 * 1024;
    // What each client writes at most (bounded so that a server without the bound is
    // measured, not killed).
    const PER_CLIENT: usize = 4 * 1024 * 1024;
    let server = common::Process::start(&[
        "--outbound-queue-bytes",
        &OUTBOUND.to_string(),
        "--max-frame-bytes",
        &FRAME.to_string(),
        "--frame-rate",
        "1000000000",
        "--frame-burst",
        "1000000000",
        "--send-buffer-bytes",
        "4096",
    ])
    .await;
    let mut sockets = Vec::new();
    for _ in 0..CONNS {
        sockets.push(common::raw_websocket(server.addr, Some(4096)).await);
    }
    let idle = server.rss_kib();
    let batch = common::client_frame(true, 0x9, &[b'p'; 125]).repeat(500);
    let mut floods = Vec::new();
    for mut s in sockets {
        let batch = batch.clone();
        floods.push(tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            let mut written = 0;
            while written < PER_CLIENT {
                // A write that cannot finish for a while: the server stopped reading.
                let write = tokio::time::timeout(Duration::from_secs(1), s.write_all(&batch));
                match write.await {
                    Ok(Ok(())) => written += batch.len(),
                    Ok(Err(_)) | Err(_) => break,
                }
            }
            (s, written)
        }));
    }
    let mut peak = idle;
    let mut sockets = Vec::new();
    let mut written = 0;
    for flood in floods {
        while !flood.is_finished() {
            peak = peak.max(server.rss_kib());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let (s, n) = flood.await.expect("flood task");
        sockets.push(s);
        written += n;
    }
    peak = peak.max(server.rss_kib());
    let bound_kib = (2 * CONNS * (OUTBOUND + FRAME) / 1024) as u64;
    println!(
        "ping flood: {CONNS} connections wrote {} MiB of pings; server RSS idle {idle} KiB, peak {peak} KiB (growth {} KiB, bound {bound_kib} KiB)",
        written / (1024 * 1024),
        peak - idle
    );
    assert!(
        peak - idle <= bound_kib,
        "RSS grew {} KiB over idle, more than {bound_kib} KiB",
        peak - idle
    );
    let url = format!("ws://{}/", server.addr);
    let mut other = common::Client::connect(&url, &[]).await;
    other
        .send(json!({"type": "ping", "requestId": "alive"}))
        .await;
    assert_eq!(
        other.recv_type("pong").await["requestId"],
        "alive",
        "the server still serves others"
    );
    drop(sockets);
}
