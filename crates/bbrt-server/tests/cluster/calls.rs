//! Calls whose devices are on different nodes.

use super::harness::*;

#[tokio::test]
async fn a_call_from_one_node_rings_devices_on_two_others_and_binds_one() {
    let (site, t) = site().await;
    let nodes = cluster(3, &site, &[]).await;
    let mut alice = nodes[0].user("alice", "2", t).await;
    let mut b2 = nodes[1].user("bob", "3", t).await;
    let mut b3 = nodes[2].user("bob", "3", t).await;
    // alice's node knows bob is online before calling.
    recv_about(&mut alice, "user_connected", "3").await;

    alice
        .send(
            json!({"type": "call_initiated", "recipientId": "3", "threadId": t, "requestId": "c"}),
        )
        .await;
    let call = alice.recv_type("ack").await["callId"]
        .as_str()
        .expect("a call id")
        .to_owned();
    for b in [&mut b2, &mut b3] {
        let ring = b.recv_type("call_initiated").await;
        assert_eq!(
            (ring["callId"].as_str(), ring["senderId"].as_str()),
            (Some(call.as_str()), Some("2"))
        );
    }
    let sdp = json!({"type": "offer", "sdp": "v=0\r\n"});
    alice
        .send(json!({"type": "offer", "offer": sdp, "recipientId": "3", "threadId": t, "callId": call}))
        .await;
    for b in [&mut b2, &mut b3] {
        assert_eq!(b.recv_type("offer").await["offer"], sdp);
    }

    // The device on n3 answers first; the one on n2 hears answered_elsewhere.
    b3.send(json!({"type": "answer", "answer": {"sdp": "A"}, "recipientId": "2", "threadId": t, "callId": call}))
        .await;
    assert_eq!(alice.recv_type("answer").await["answer"]["sdp"], "A");
    assert_eq!(
        ended(&b2.recv_type("call_ended").await),
        "answered_elsewhere"
    );
    // A late answer from n2 loses.
    b2.send(json!({"type": "call_accepted", "callId": call, "requestId": "late"}))
        .await;
    assert_eq!(b2.recv_type("error").await["requestId"], "late");

    // Signaling flows only between the bound devices.
    alice
        .send(json!({"type": "ice-candidate", "candidate": "from-alice", "recipientId": "3", "threadId": t}))
        .await;
    assert_eq!(
        b3.recv_type("ice-candidate").await["candidate"],
        "from-alice"
    );
    b3.send(json!({"type": "ice-candidate", "candidate": "from-bob", "recipientId": "2", "threadId": t}))
        .await;
    assert_eq!(
        alice.recv_type("ice-candidate").await["candidate"],
        "from-bob"
    );
    let stray = b2.kinds_within(Duration::from_millis(300)).await;
    assert!(
        stray.is_empty(),
        "the losing device hears nothing more: {stray:?}"
    );

    alice
        .send(json!({"type": "call_ended", "callId": call}))
        .await;
    assert_eq!(ended(&b3.recv_type("call_ended").await), "hangup");
}

#[tokio::test]
async fn cross_node_calls_time_out_glare_are_busy_and_end_on_disconnect() {
    let (site, t) = site().await;
    let nodes = cluster(2, &site, &["--ring-timeout", "1500ms"]).await;
    let mut alice = nodes[0].user("alice", "2", t).await;
    let mut bob = nodes[1].user("bob", "3", t).await;
    let mut carol = nodes[1].user("carol", "4", t).await;
    recv_about(&mut alice, "user_connected", "3").await;
    let invite = |to: &str, request: &str| json!({"type": "call_initiated", "recipientId": to, "threadId": t, "requestId": request});

    // Nobody answers: both ends hear the timeout.
    alice.send(invite("3", "c1")).await;
    alice.recv_type("ack").await;
    bob.recv_type("call_initiated").await;
    assert_eq!(ended(&alice.recv_type("call_ended").await), "timeout");
    assert_eq!(ended(&bob.recv_type("call_ended").await), "timeout");

    // Glare: bob calls alice while alice's call rings him; the lesser call id (n1's) stays.
    alice.send(invite("3", "c2")).await;
    let call = alice.recv_type("ack").await["callId"]
        .as_str()
        .expect("a call id")
        .to_owned();
    assert_eq!(
        bob.recv_type("call_initiated").await["callId"],
        call.as_str()
    );
    bob.send(invite("2", "g")).await;
    assert_eq!(ended(&bob.recv_type("call_ended").await), "glare");
    assert_eq!(bob.recv_type("ack").await["callId"], call.as_str());

    // bob accepts; carol, on bob's node, finds him busy.
    bob.send(json!({"type": "call_accepted", "callId": call}))
        .await;
    assert_eq!(
        alice.recv_type("call_accepted").await["callId"],
        call.as_str()
    );
    carol.send(invite("3", "busy")).await;
    assert_eq!(ended(&carol.recv_type("call_ended").await), "busy");

    // bob's bound device goes: after the grace, alice's call ends.
    drop(bob);
    assert_eq!(ended(&alice.recv_type("call_ended").await), "disconnected");
}
