//! Calls over real sockets: three devices, the whole lifecycle, and its endings.

mod common;

use std::time::Duration;

use common::{Client, Server, config};
use serde_json::{Value, json};

/// alice (one device) and bob (two devices), all joined to thread T.
async fn setup(server: &Server) -> (Client, Client, Client) {
    let mut alice = server.user("alice").await;
    let mut b1 = server.user("bob").await;
    let mut b2 = server.user("bob").await;
    for c in [&mut alice, &mut b1, &mut b2] {
        c.send(json!({"type": "join_thread", "threadId": "T"}))
            .await;
        c.recv_type("joined").await;
    }
    (alice, b1, b2)
}

async fn ring(alice: &mut Client, b1: &mut Client, b2: &mut Client) -> String {
    alice.send(json!({"type": "call_initiated", "recipientId": "bob", "threadId": "T", "requestId": "c"})).await;
    let ack = alice.recv_type("ack").await;
    let call_id = ack["callId"].as_str().expect("call id").to_owned();
    for b in [b1, b2] {
        let ringing = b.recv_type("call_initiated").await;
        assert_eq!(
            (ringing["callId"].as_str(), ringing["senderId"].as_str()),
            (Some(call_id.as_str()), Some("alice"))
        );
    }
    call_id
}

fn ended(v: &Value) -> &str {
    assert_eq!(v["type"], "call_ended", "{v}");
    v["reason"].as_str().unwrap_or("")
}

#[tokio::test]
async fn full_call_with_three_devices() {
    let server = Server::start(config()).await;
    let (mut alice, mut b1, mut b2) = setup(&server).await;
    let call = ring(&mut alice, &mut b1, &mut b2).await;

    // The offer and early candidates reach every ringing device, byte for byte.
    let sdp = json!({"type": "offer", "sdp": "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n"});
    alice.send(json!({"type": "offer", "offer": sdp, "recipientId": "bob", "threadId": "T", "callId": call})).await;
    alice.send(json!({"type": "ice-candidate", "candidate": {"candidate": "c1"}, "recipientId": "bob", "threadId": "T"})).await;
    for b in [&mut b1, &mut b2] {
        let offer = b.recv_type("offer").await;
        assert_eq!(offer["offer"], sdp);
        assert_eq!(offer["senderId"], "alice");
        assert_eq!(
            b.recv_type("ice-candidate").await["candidate"]["candidate"],
            "c1"
        );
    }

    // b1 answers; b2 hears answered_elsewhere.
    b1.send(json!({"type": "answer", "answer": {"sdp": "A"}, "recipientId": "alice", "senderId": "alice", "threadId": "T"})).await;
    assert_eq!(
        alice.recv_type("call_accepted").await["callId"],
        call.as_str()
    );
    assert_eq!(alice.recv_type("answer").await["answer"]["sdp"], "A");
    assert_eq!(
        ended(&b2.recv_type("call_ended").await),
        "answered_elsewhere"
    );

    // ICE both ways, only between the bound devices.
    b1.send(json!({"type": "ice-candidate", "candidate": "from-bob", "recipientId": "alice", "threadId": "T"})).await;
    assert_eq!(
        alice.recv_type("ice-candidate").await["candidate"],
        "from-bob"
    );
    alice.send(json!({"type": "ice-candidate", "candidate": "from-alice", "recipientId": "bob", "threadId": "T"})).await;
    assert_eq!(
        b1.recv_type("ice-candidate").await["candidate"],
        "from-alice"
    );

    // Renegotiation: an offer inside the call is neither a new call nor busy.
    alice
        .send(
            json!({"type": "offer", "offer": "RENEGOTIATE", "recipientId": "bob", "threadId": "T"}),
        )
        .await;
    assert_eq!(b1.recv_type("offer").await["offer"], "RENEGOTIATE");
    b1.send(json!({"type": "answer", "answer": "A2", "recipientId": "alice", "threadId": "T"}))
        .await;
    assert_eq!(alice.recv_type("answer").await["answer"], "A2");
    let stray = b2.kinds_within(Duration::from_millis(200)).await;
    assert!(
        stray.is_empty(),
        "the other device hears nothing more: {stray:?}"
    );

    // Hang-up.
    b1.send(json!({"type": "call_ended", "callId": call})).await;
    assert_eq!(ended(&alice.recv_type("call_ended").await), "hangup");
    assert_eq!(ended(&b1.recv_type("call_ended").await), "hangup");
}

#[tokio::test]
async fn nobody_answers_and_the_call_times_out() {
    let server = Server::start(config()).await;
    let (mut alice, mut b1, mut b2) = setup(&server).await;
    ring(&mut alice, &mut b1, &mut b2).await;
    for c in [&mut alice, &mut b1, &mut b2] {
        assert_eq!(ended(&c.recv_type("call_ended").await), "timeout");
    }
}

#[tokio::test]
async fn reject_stops_ringing_everywhere() {
    let server = Server::start(config()).await;
    let (mut alice, mut b1, mut b2) = setup(&server).await;
    let call = ring(&mut alice, &mut b1, &mut b2).await;
    b2.send(json!({"type": "call_rejected", "callId": call}))
        .await;
    for c in [&mut alice, &mut b1, &mut b2] {
        assert_eq!(ended(&c.recv_type("call_ended").await), "rejected");
    }
}

#[tokio::test]
async fn caller_cancels_before_an_answer() {
    let server = Server::start(config()).await;
    let (mut alice, mut b1, mut b2) = setup(&server).await;
    ring(&mut alice, &mut b1, &mut b2).await;
    alice
        .send(json!({"type": "call_ended", "recipientId": "bob", "threadId": "T"}))
        .await;
    for c in [&mut alice, &mut b1, &mut b2] {
        assert_eq!(ended(&c.recv_type("call_ended").await), "cancelled");
    }
}

#[tokio::test]
async fn a_callee_in_another_call_is_busy() {
    let server = Server::start(config()).await;
    let (mut alice, mut b1, mut b2) = setup(&server).await;
    let call = ring(&mut alice, &mut b1, &mut b2).await;
    b1.send(json!({"type": "call_accepted", "callId": call}))
        .await;
    alice.recv_type("call_accepted").await;
    let mut carol = server.user("carol").await;
    carol
        .send(json!({"type": "join_thread", "threadId": "U"}))
        .await;
    carol.recv_type("joined").await;
    b1.send(json!({"type": "join_thread", "threadId": "U"}))
        .await;
    b1.recv_type("joined").await;
    carol
        .send(json!({"type": "call_initiated", "recipientId": "bob", "threadId": "U"}))
        .await;
    assert_eq!(ended(&carol.recv_type("call_ended").await), "busy");
}

#[tokio::test]
async fn glare_keeps_the_call_with_the_lesser_id() {
    let server = Server::start(config()).await;
    let (mut alice, mut b1, mut b2) = setup(&server).await;
    let call = ring(&mut alice, &mut b1, &mut b2).await;
    b1.send(
        json!({"type": "call_initiated", "recipientId": "alice", "threadId": "T", "requestId": 1}),
    )
    .await;
    let own = b1.recv_type("call_ended").await;
    assert_eq!(ended(&own), "glare");
    assert_eq!(
        b1.recv_type("ack").await["callId"],
        call.as_str(),
        "the surviving call"
    );
    b2.send(json!({"type": "call_accepted", "callId": call}))
        .await;
    assert_eq!(
        alice.recv_type("call_accepted").await["callId"],
        call.as_str()
    );
}

#[tokio::test]
async fn a_bound_device_that_disconnects_ends_the_call() {
    let server = Server::start(config()).await;
    let (mut alice, mut b1, mut b2) = setup(&server).await;
    let call = ring(&mut alice, &mut b1, &mut b2).await;
    b1.send(json!({"type": "call_accepted", "callId": call}))
        .await;
    alice.recv_type("call_accepted").await;
    drop(b1);
    assert_eq!(ended(&alice.recv_type("call_ended").await), "disconnected");
}
