//! The core scenarios with users on different nodes.

use serde_json::json;

use super::sim::*;
use crate::hub::{BrokerEvent, BrokerMessage, Input};
use crate::ids::{ConnId, InstanceId, NodeId};

/// Two nodes; alice on n1 (plus a second device on n2), bob on n2; both joined `T`.
fn two_nodes() -> (Sim, ConnId, ConnId, ConnId) {
    let mut sim = Sim::cluster(2);
    let alice = sim.connect_on(0, "alice");
    let alice2 = sim.connect_on(1, "alice");
    let bob = sim.connect_on(1, "bob");
    for conn in [alice, bob] {
        sim.send(conn, json!({"type": "join_thread", "threadId": "T"}));
        sim.drive();
    }
    sim.clear();
    (sim, alice, alice2, bob)
}

#[test]
fn a_message_reaches_participants_on_every_node_once() {
    let (mut sim, alice, alice2, bob) = two_nodes();
    let carol = sim.connect_on(1, "carol");
    sim.send(
        alice,
        json!({"type": "send_message", "threadId": "T", "message": "across", "requestId": 1}),
    );
    sim.drive();
    assert_eq!(sim.kinds(alice), ["message", "ack"]);
    assert_eq!(sim.kinds(alice2), ["message"]);
    assert_eq!(sim.kinds(bob), ["message"]);
    assert_eq!(sim.take(carol), []);
}

#[test]
fn typing_and_read_cross_nodes_with_their_recipient_rules() {
    let (mut sim, alice, alice2, bob) = two_nodes();
    sim.send(alice, json!({"type": "typing", "threadId": "T"}));
    sim.drive();
    assert_eq!(
        sim.take_json(bob),
        [json!({"type": "typing", "threadId": "T", "userId": "alice", "typing": true})]
    );
    assert_eq!(
        sim.take(alice2),
        [],
        "not the typist's other devices, on any node"
    );

    sim.send(bob, json!({"type": "mark_read", "threadId": "T"}));
    sim.drive();
    let read = json!({"type": "read", "threadId": "T", "userId": "bob"});
    assert_eq!(sim.take_json(alice), [read.clone()]);
    assert_eq!(sim.take_json(alice2), [read.clone()]);
    assert_eq!(sim.take_json(bob), [read]);
}

#[test]
fn presence_crosses_nodes_and_the_online_sets_agree() {
    let (mut sim, alice, _, bob) = two_nodes();
    assert_eq!(sim.online(0), ["alice", "bob"]);
    assert_eq!(sim.online(1), ["alice", "bob"]);
    sim.close(bob);
    sim.drive();
    assert_eq!(
        sim.take_json(alice),
        [json!({"type": "user_disconnected", "userId": "bob"})]
    );
    assert_eq!(sim.online(0), ["alice"]);
    let _bob = sim.connect_on(1, "bob");
    sim.drive();
    assert_eq!(
        sim.take_json(alice),
        [json!({"type": "user_connected", "userId": "bob"})]
    );
    assert_eq!(sim.online(0), ["alice", "bob"]);
}

#[test]
fn a_user_online_on_two_nodes_stays_online_until_the_last_connection_closes() {
    let (mut sim, alice, alice2, bob) = two_nodes();
    sim.close(alice);
    sim.drive();
    assert_eq!(sim.take(bob), [], "alice is still online on n2");
    assert_eq!(sim.online(0), ["alice", "bob"]);
    sim.close(alice2);
    sim.drive();
    assert_eq!(
        sim.take_json(bob),
        [json!({"type": "user_disconnected", "userId": "alice"})]
    );
    assert_eq!(sim.online(0), ["bob"]);
    assert_eq!(sim.online(1), ["bob"]);
}

#[test]
fn a_lost_node_takes_its_users_offline_elsewhere() {
    let (mut sim, alice, _, _) = two_nodes();
    let _dave = sim.connect_on(1, "dave");
    sim.node_down(1);
    sim.drive();
    assert_eq!(
        sim.online(0),
        ["alice"],
        "alice2 and bob and dave were on n2"
    );
    assert_eq!(
        sim.take_json(alice),
        [json!({"type": "user_disconnected", "userId": "bob"})]
    );
}

#[test]
fn a_client_message_id_is_posted_once_across_nodes() {
    let (mut sim, alice, alice2, bob) = two_nodes();
    sim.site_latency("send", ms(300));
    let send = |rid: i64| json!({"type": "send_message", "threadId": "T", "message": "once", "clientMessageId": "c-1", "requestId": rid});
    sim.send(alice, send(1));
    sim.drive_for(ms(50));
    sim.send(alice2, send(2));
    sim.drive();
    assert_eq!(sim.api_count("send"), 1);
    assert_eq!(sim.kinds(bob), ["message"]);
    assert_eq!(sim.kinds(alice), ["message", "ack"]);
    assert_eq!(sim.kinds(alice2), ["message", "ack"]);
}

/// alice on n1 calls bob, who has b1 on n1 and b2 on n2.
fn call_across() -> (Sim, ConnId, ConnId, ConnId) {
    let mut sim = Sim::cluster(2);
    sim.site_thread("T", &["alice", "bob"]);
    let alice = sim.connect_on(0, "alice");
    let b1 = sim.connect_on(0, "bob");
    let b2 = sim.connect_on(1, "bob");
    sim.send(alice, json!({"type": "join_thread", "threadId": "T"}));
    sim.drive();
    sim.clear();
    sim.send(
        alice,
        json!({"type": "call_initiated", "recipientId": "bob", "threadId": "T"}),
    );
    sim.send(
        alice,
        json!({"type": "offer", "offer": "SDP", "recipientId": "bob", "threadId": "T"}),
    );
    sim.drive();
    assert_eq!(sim.kinds(b1), ["call_initiated", "offer"]);
    assert_eq!(sim.kinds(b2), ["call_initiated", "offer"]);
    (sim, alice, b1, b2)
}

#[test]
fn a_call_rings_devices_on_both_nodes_and_binds_the_remote_winner() {
    let (mut sim, alice, b1, b2) = call_across();
    sim.send(
        b2,
        json!({"type": "answer", "answer": "A", "recipientId": "alice", "threadId": "T"}),
    );
    sim.drive();
    assert_eq!(sim.kinds(alice), ["call_accepted", "answer"]);
    assert_eq!(
        sim.take_json(b1),
        [
            json!({"type": "call_ended", "callId": "n1-1", "threadId": "T", "reason": "answered_elsewhere"})
        ]
    );
    assert_eq!(sim.take(b2), []);

    sim.send(
        alice,
        json!({"type": "offer", "offer": "RENEGOTIATE", "recipientId": "bob", "threadId": "T"}),
    );
    sim.send(
        alice,
        json!({"type": "ice-candidate", "candidate": "c", "recipientId": "bob", "threadId": "T"}),
    );
    sim.drive();
    assert_eq!(sim.kinds(b2), ["offer", "ice-candidate"]);
    assert_eq!(sim.take(b1), []);

    sim.send(alice, json!({"type": "call_ended", "callId": "n1-1"}));
    sim.drive();
    let hangup =
        json!({"type": "call_ended", "callId": "n1-1", "threadId": "T", "reason": "hangup"});
    assert_eq!(sim.take_json(b2), [hangup.clone()]);
    assert_eq!(sim.take_json(alice), [hangup]);
    assert_eq!(sim.take(b1), []);
    assert_eq!(sim.hub(0).stats().calls + sim.hub(1).stats().calls, 0);
}

#[test]
fn simultaneous_accepts_on_two_nodes_have_one_winner() {
    let (mut sim, alice, b1, b2) = call_across();
    sim.send(
        b1,
        json!({"type": "call_accepted", "callId": "n1-1", "requestId": 1}),
    );
    sim.send(
        b2,
        json!({"type": "call_accepted", "callId": "n1-1", "requestId": 2}),
    );
    sim.drive();
    assert_eq!(sim.kinds(alice), ["call_accepted"]);
    let b1_kinds = sim.kinds(b1);
    let b2_kinds = sim.kinds(b2);
    assert_eq!(
        b1_kinds,
        ["ack"],
        "n1's claim reached the coordinator first"
    );
    assert_eq!(b2_kinds, ["call_ended", "error"]);
}

#[test]
fn a_remote_reject_stops_ringing_everywhere() {
    let (mut sim, alice, b1, b2) = call_across();
    sim.send(b2, json!({"type": "call_rejected", "callId": "n1-1"}));
    sim.drive();
    for conn in [alice, b1, b2] {
        assert_eq!(sim.kinds(conn), ["call_ended"]);
    }
}

#[test]
fn the_callers_ring_timeout_ends_the_call_on_every_node() {
    let mut sim = Sim::with_config(2, |c| c.ring_timeout = secs(5));
    sim.site_thread("T", &["alice", "bob"]);
    let alice = sim.connect_on(0, "alice");
    let bob = sim.connect_on(1, "bob");
    sim.send(
        alice,
        json!({"type": "call_initiated", "recipientId": "bob", "threadId": "T"}),
    );
    sim.drive_for(secs(6));
    assert_eq!(sim.kinds(alice), ["call_ended"]);
    assert_eq!(sim.kinds(bob), ["call_initiated", "call_ended"]);
}

#[test]
fn glare_across_nodes_keeps_one_call() {
    let mut sim = Sim::cluster(2);
    sim.site_thread("T", &["alice", "bob"]);
    let alice = sim.connect_on(0, "alice");
    let bob = sim.connect_on(1, "bob");
    // Both call before either node heard of the other's call.
    sim.send(
        alice,
        json!({"type": "call_initiated", "recipientId": "bob", "threadId": "T"}),
    );
    sim.send(
        bob,
        json!({"type": "call_initiated", "recipientId": "alice", "threadId": "T"}),
    );
    sim.drive();
    let alice_frames = sim.take_json(alice);
    let bob_frames = sim.take_json(bob);
    // n1-1 < n2-1: alice's call survives, bob's ends with glare on both sides.
    let glare = json!({"type": "call_ended", "callId": "n2-1", "threadId": "T", "reason": "glare"});
    assert!(bob_frames.contains(&glare), "{bob_frames:#?}");
    assert!(alice_frames.contains(&glare), "{alice_frames:#?}");
    assert_eq!(sim.hub(0).stats().calls, 1);
    assert_eq!(sim.hub(1).stats().calls, 1);
    sim.send(bob, json!({"type": "call_accepted", "callId": "n1-1"}));
    sim.drive();
    assert_eq!(sim.kinds(alice), ["call_accepted"]);
}

#[test]
fn a_lost_node_ends_the_calls_of_its_devices() {
    let (mut sim, alice, _b1, b2) = call_across();
    sim.send(b2, json!({"type": "call_accepted", "callId": "n1-1"}));
    sim.drive();
    sim.clear();
    sim.node_down(1);
    sim.drive();
    assert_eq!(
        sim.take_json(alice),
        [
            json!({"type": "call_ended", "callId": "n1-1", "threadId": "T", "reason": "disconnected"})
        ]
    );
}

#[test]
fn a_bound_device_reconnecting_on_another_node_within_the_grace_keeps_the_call() {
    let mut sim = Sim::with_config(2, |c| c.call_grace = secs(5));
    sim.site_thread("T", &["alice", "bob"]);
    let alice = sim.connect_on(0, "alice");
    let b1 = sim.connect_on(0, "bob");
    sim.send(
        alice,
        json!({"type": "call_initiated", "recipientId": "bob", "threadId": "T"}),
    );
    sim.drive();
    sim.send(b1, json!({"type": "call_accepted", "callId": "n1-1"}));
    sim.drive();
    sim.clear();
    sim.close(b1);
    sim.drive_for(secs(1));
    let b2 = sim.connect_on(1, "bob");
    sim.send(b2, json!({"type": "ice-candidate", "candidate": "back", "callId": "n1-1", "recipientId": "alice"}));
    sim.drive_for(secs(10));
    assert_eq!(
        sim.kinds(alice),
        ["ice-candidate"],
        "the call survived the grace"
    );
    assert_eq!(sim.take(b2), []);
}

#[test]
fn the_same_client_call_id_on_two_nodes_never_crosses_calls() {
    let mut sim = Sim::cluster(2);
    sim.site_thread("T", &["alice", "bob"]);
    sim.site_thread("U", &["carol", "dave"]);
    let alice = sim.connect_on(0, "alice");
    let bob = sim.connect_on(0, "bob");
    let carol = sim.connect_on(1, "carol");
    let dave = sim.connect_on(0, "dave");
    // Both clients name their call "1", before either node heard of the other's.
    sim.send(alice, json!({"type": "offer", "offer": "FOR_BOB", "recipientId": "bob", "threadId": "T", "callId": "1"}));
    sim.send(carol, json!({"type": "offer", "offer": "FOR_DAVE", "recipientId": "dave", "threadId": "U", "callId": "1"}));
    sim.drive();
    let bob_frames = sim.take_json(bob);
    let dave_frames = sim.take_json(dave);
    assert_eq!(
        bob_frames
            .iter()
            .filter(|f| f["type"] == "offer")
            .map(|f| f["offer"].clone())
            .collect::<Vec<_>>(),
        [json!("FOR_BOB")]
    );
    assert_eq!(
        dave_frames
            .iter()
            .filter(|f| f["type"] == "offer")
            .map(|f| f["offer"].clone())
            .collect::<Vec<_>>(),
        [json!("FOR_DAVE")]
    );
    assert_eq!(bob_frames[0]["callId"], "n1-1");
    assert_eq!(dave_frames[0]["callId"], "n2-1");
}

#[test]
fn a_publication_from_a_node_already_reported_down_is_ignored_until_it_returns() {
    let mut sim = Sim::cluster(2);
    let _alice = sim.connect_on(0, "alice");
    sim.node_down(1);
    // Sent by n2 before it died, delivered after n1 heard it did.
    let late = |event| {
        Input::Broker(BrokerMessage {
            origin: NodeId::new("n2").unwrap(),
            instance: InstanceId::new("i2").unwrap(),
            event,
        })
    };
    sim.handle(
        0,
        late(BrokerEvent::Presence {
            user: uid("zombie"),
            online: true,
        }),
    );
    assert_eq!(sim.online(0), ["alice"]);
    // n2 starts again and announces itself.
    sim.handle(0, late(BrokerEvent::SyncRequest));
    sim.handle(
        0,
        late(BrokerEvent::Presence {
            user: uid("bob"),
            online: true,
        }),
    );
    assert_eq!(sim.online(0), ["alice", "bob"]);
}

#[test]
fn a_replica_whose_call_end_was_lost_stops_ringing_after_the_ring_timeout_and_grace() {
    let mut sim = Sim::with_config(2, |c| {
        c.ring_timeout = secs(5);
        c.call_grace = secs(2);
    });
    sim.site_thread("T", &["alice", "bob"]);
    let alice = sim.connect_on(0, "alice");
    let bob = sim.connect_on(1, "bob");
    sim.broker_loses.push("call_ended");
    sim.send(
        alice,
        json!({"type": "call_initiated", "recipientId": "bob", "threadId": "T"}),
    );
    sim.drive_for(secs(6));
    assert_eq!(sim.kinds(alice), ["call_ended"]);
    assert_eq!(sim.kinds(bob), ["call_initiated"], "n1's end was lost");
    sim.drive_for(ms(900));
    assert_eq!(
        sim.take(bob),
        [],
        "the replica waits a grace longer than the owner"
    );
    sim.drive_for(secs(1));
    assert_eq!(sim.kinds(bob), ["call_ended"]);
    assert_eq!(sim.hub(1).stats().calls, 0);
}

#[test]
fn a_client_message_id_reused_on_another_node_with_other_text_is_a_conflict() {
    let (mut sim, alice, alice2, bob) = two_nodes();
    sim.send(alice, json!({"type": "send_message", "threadId": "T", "message": "first", "clientMessageId": "c-1", "requestId": 1}));
    sim.drive();
    sim.clear();
    sim.send(alice2, json!({"type": "send_message", "threadId": "T", "message": "second", "clientMessageId": "c-1", "requestId": 2}));
    sim.drive();
    assert!(!sim.expect_error(alice2, "idempotency_conflict", Some(2)));
    assert_eq!(sim.take(bob), []);
    assert_eq!(sim.api_count("send"), 1);
}

#[test]
fn a_remote_callees_candidates_reach_the_caller_after_its_answer() {
    let (mut sim, alice, _b1, b2) = call_across();
    sim.coord.latency = ms(200);
    sim.send(
        b2,
        json!({"type": "answer", "answer": "A", "recipientId": "alice", "threadId": "T"}),
    );
    for candidate in ["c1", "c2"] {
        sim.send(
            b2,
            json!({"type": "ice-candidate", "candidate": candidate, "recipientId": "alice", "threadId": "T"}),
        );
    }
    sim.drive();
    let frames = sim.take_json(alice);
    let relayed: Vec<(&str, &str)> = frames[1..]
        .iter()
        .map(|f| {
            let payload = f["answer"].as_str().or(f["candidate"].as_str());
            (
                f["type"].as_str().expect("a type"),
                payload.expect("a payload"),
            )
        })
        .collect();
    assert_eq!(frames[0]["type"], "call_accepted");
    assert_eq!(
        relayed,
        [
            ("answer", "A"),
            ("ice-candidate", "c1"),
            ("ice-candidate", "c2")
        ],
        "through the broker too, the answer comes first"
    );
}
