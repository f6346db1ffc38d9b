//! The call lifecycle on one node.

use serde_json::{Value, json};

use super::sim::*;
use crate::ids::ConnId;

/// alice (one device) and bob (two devices) in thread `T`; carol in no thread with them;
/// dave a participant of `T` who is offline.
struct Call {
    sim: Sim,
    alice: ConnId,
    b1: ConnId,
    b2: ConnId,
    carol: ConnId,
}

impl Call {
    fn new() -> Self {
        Self::with(|_| {})
    }

    fn with(tweak: impl Fn(&mut crate::hub::HubConfig)) -> Self {
        let mut sim = Sim::with(tweak);
        sim.site_thread("T", &["alice", "bob", "dave"]);
        let alice = sim.connect("alice");
        let b1 = sim.connect("bob");
        let b2 = sim.connect("bob");
        let carol = sim.connect("carol");
        for conn in [alice, b1, b2] {
            sim.send(conn, json!({"type": "join_thread", "threadId": "T"}));
            sim.drive();
        }
        sim.clear();
        Self {
            sim,
            alice,
            b1,
            b2,
            carol,
        }
    }

    /// alice calls bob; both of bob's devices ring.
    fn ringing(mut self) -> Self {
        self.sim.send(
            self.alice,
            json!({"type": "call_initiated", "recipientId": "bob", "threadId": "T"}),
        );
        self.sim.drive();
        assert_eq!(self.sim.kinds(self.b1), ["call_initiated"]);
        assert_eq!(self.sim.kinds(self.b2), ["call_initiated"]);
        self
    }

    /// ... and b1 accepted.
    fn answered(mut self) -> Self {
        self = self.ringing();
        self.sim
            .send(self.b1, json!({"type": "call_accepted", "callId": "n1-1"}));
        self.sim.drive();
        assert_eq!(self.sim.kinds(self.alice), ["call_accepted"]);
        assert_eq!(self.sim.take(self.b1), []);
        assert_eq!(self.sim.take_json(self.b2), [ended("answered_elsewhere")]);
        self
    }
}

fn ended(reason: &str) -> Value {
    json!({"type": "call_ended", "callId": "n1-1", "threadId": "T", "reason": reason})
}

fn signal(kind: &str, field: &str, payload: Value, sender: &str, recipient: &str) -> Value {
    json!({"type": kind, field: payload, "recipientId": recipient, "senderId": sender, "threadId": "T", "callId": "n1-1"})
}

#[test]
fn call_initiated_rings_every_device_of_the_callee() {
    let Call {
        mut sim,
        alice,
        b1,
        b2,
        carol,
    } = Call::new();
    sim.send(
        alice,
        json!({"type": "call_initiated", "recipientId": "bob", "threadId": "T", "requestId": 1}),
    );
    sim.drive();
    let ring = json!({"type": "call_initiated", "callId": "n1-1", "senderId": "alice", "recipientId": "bob", "threadId": "T"});
    assert_eq!(sim.take_json(b1), [ring.clone()]);
    assert_eq!(sim.take_json(b2), [ring]);
    assert_eq!(
        sim.take_json(alice),
        [json!({"type": "ack", "callId": "n1-1", "requestId": 1})]
    );
    assert_eq!(sim.take(carol), []);
}

#[test]
fn a_device_that_connects_while_ringing_rings_too() {
    let Call { mut sim, .. } = Call::new().ringing();
    let b3 = sim.connect("bob");
    assert_eq!(sim.kinds(b3), ["call_initiated"]);
}

#[test]
fn offer_and_early_candidates_go_to_every_ringing_device_byte_for_byte() {
    let Call {
        mut sim,
        alice,
        b1,
        b2,
        ..
    } = Call::new().ringing();
    // Payloads as a browser might write them: spaces, key order and escapes that a parse
    // and re-serialization would change. They must arrive exactly as sent.
    let sdp = r#"{ "type" : "offer",  "sdp":"v=0\r\no=- 1 2 IN IP4 127.0.0.1" }"#;
    let candidate = r#"{"candidate":"c1", "sdpMid" :"0","sdpMLineIndex":0 }"#;
    sim.send_text(
        alice,
        &format!(r#"{{"type":"offer","offer":{sdp},"recipientId":"bob","threadId":"T"}}"#),
    );
    sim.send_text(
        alice,
        &format!(
            r#"{{"type":"ice-candidate","candidate":{candidate},"recipientId":"bob","threadId":"T"}}"#
        ),
    );
    sim.drive();
    let expected = [
        format!(
            r#"{{"type":"offer","offer":{sdp},"recipientId":"bob","senderId":"alice","threadId":"T","callId":"n1-1"}}"#
        ),
        format!(
            r#"{{"type":"ice-candidate","candidate":{candidate},"recipientId":"bob","senderId":"alice","threadId":"T","callId":"n1-1"}}"#
        ),
    ];
    // The Sim keeps what each device received decoded, with the payloads as raw text;
    // encoding it again gives the frame's bytes.
    let bytes = |messages: Vec<crate::wire::ServerMessage>| -> Vec<String> {
        messages
            .iter()
            .map(|m| String::from_utf8(m.encode().to_vec()).expect("frames are UTF-8"))
            .collect()
    };
    assert_eq!(bytes(sim.take(b1)), expected);
    assert_eq!(bytes(sim.take(b2)), expected);
    assert_eq!(sim.take(alice), []);

    // A ringing device's early candidates go to the caller.
    sim.send(b2, json!({"type": "ice-candidate", "candidate": "c2", "recipientId": "alice", "threadId": "T"}));
    sim.drive();
    assert_eq!(
        sim.take_json(alice),
        [signal(
            "ice-candidate",
            "candidate",
            json!("c2"),
            "bob",
            "alice"
        )]
    );
}

#[test]
fn an_offer_without_a_call_is_an_implicit_invite() {
    let Call {
        mut sim,
        alice,
        b1,
        b2,
        ..
    } = Call::new();
    sim.send(
        alice,
        json!({"type": "offer", "offer": "SDP", "recipientId": "bob", "threadId": "T"}),
    );
    sim.drive();
    assert_eq!(sim.kinds(b1), ["call_initiated", "offer"]);
    assert_eq!(sim.kinds(b2), ["call_initiated", "offer"]);
}

#[test]
fn the_first_device_to_accept_wins_and_the_others_hear_answered_elsewhere() {
    let Call {
        mut sim,
        alice,
        b1,
        b2,
        ..
    } = Call::new().ringing();
    sim.send(
        b1,
        json!({"type": "call_accepted", "callId": "n1-1", "requestId": 1}),
    );
    sim.send(
        b2,
        json!({"type": "call_accepted", "callId": "n1-1", "requestId": 2}),
    );
    sim.drive();
    assert_eq!(
        sim.take_json(alice),
        [
            json!({"type": "call_accepted", "callId": "n1-1", "senderId": "bob", "recipientId": "alice", "threadId": "T"})
        ]
    );
    assert_eq!(
        sim.take_json(b1),
        [json!({"type": "ack", "callId": "n1-1", "requestId": 1})]
    );
    let b2_frames = sim.take_json(b2);
    assert_eq!(b2_frames[0], ended("answered_elsewhere"));
    assert_eq!(
        (
            b2_frames[1]["code"].as_str(),
            b2_frames[1]["requestId"].as_i64()
        ),
        (Some("not_in_call"), Some(2))
    );
    assert_eq!(b2_frames.len(), 2);
}

#[test]
fn an_answer_accepts_the_call_and_reaches_the_caller() {
    let Call {
        mut sim,
        alice,
        b1,
        b2,
        ..
    } = Call::new().ringing();
    sim.send(
        b2,
        json!({"type": "answer", "answer": {"sdp": "A"}, "recipientId": "alice", "threadId": "T"}),
    );
    sim.drive();
    assert_eq!(sim.kinds(alice), ["call_accepted", "answer"]);
    assert_eq!(sim.take_json(b1), [ended("answered_elsewhere")]);
    assert_eq!(sim.take(b2), []);
}

#[test]
fn after_the_answer_signaling_flows_only_between_the_bound_devices() {
    let Call {
        mut sim,
        alice,
        b1,
        b2,
        ..
    } = Call::new().answered();
    // A renegotiation: an offer inside the call is neither a new call nor busy.
    sim.send(
        alice,
        json!({"type": "offer", "offer": "RENEGOTIATE", "recipientId": "bob", "threadId": "T"}),
    );
    sim.drive();
    assert_eq!(
        sim.take_json(b1),
        [signal(
            "offer",
            "offer",
            json!("RENEGOTIATE"),
            "alice",
            "bob"
        )]
    );
    assert_eq!(sim.take(b2), []);
    assert_eq!(sim.take(alice), []);

    sim.send(
        b1,
        json!({"type": "answer", "answer": "A2", "recipientId": "alice", "threadId": "T"}),
    );
    sim.drive();
    assert_eq!(
        sim.take_json(alice),
        [signal("answer", "answer", json!("A2"), "bob", "alice")]
    );

    sim.send(b2, json!({"type": "ice-candidate", "candidate": "x", "recipientId": "alice", "threadId": "T", "requestId": 5}));
    sim.drive();
    sim.expect_error(b2, "not_in_call", Some(5));
    assert_eq!(sim.take(alice), []);
}

#[test]
fn a_reject_stops_ringing_everywhere() {
    let Call {
        mut sim,
        alice,
        b1,
        b2,
        ..
    } = Call::new().ringing();
    sim.send(b2, json!({"type": "call_rejected", "callId": "n1-1"}));
    sim.drive();
    for conn in [alice, b1, b2] {
        assert_eq!(sim.take_json(conn), [ended("rejected")]);
    }
}

#[test]
fn the_caller_may_cancel_before_an_answer() {
    let Call {
        mut sim,
        alice,
        b1,
        b2,
        ..
    } = Call::new().ringing();
    sim.send(
        alice,
        json!({"type": "call_ended", "recipientId": "bob", "threadId": "T"}),
    );
    sim.drive();
    for conn in [alice, b1, b2] {
        assert_eq!(sim.take_json(conn), [ended("cancelled")]);
    }
}

#[test]
fn a_bound_device_hangs_up() {
    let Call {
        mut sim,
        alice,
        b1,
        b2,
        ..
    } = Call::new().answered();
    sim.send(b1, json!({"type": "call_ended", "callId": "n1-1"}));
    sim.drive();
    assert_eq!(sim.take_json(alice), [ended("hangup")]);
    assert_eq!(sim.take_json(b1), [ended("hangup")]);
    assert_eq!(sim.take(b2), []);
}

#[test]
fn nobody_answering_ends_the_call_at_the_ring_timeout() {
    let Call {
        mut sim,
        alice,
        b1,
        b2,
        ..
    } = Call::with(|c| c.ring_timeout = secs(5)).ringing();
    sim.drive_for(ms(4999));
    assert_eq!(sim.take(alice), []);
    sim.drive_for(ms(1));
    for conn in [alice, b1, b2] {
        assert_eq!(sim.take_json(conn), [ended("timeout")]);
    }
}

#[test]
fn an_answered_call_does_not_time_out() {
    let Call { mut sim, alice, .. } = Call::with(|c| c.ring_timeout = secs(5)).answered();
    sim.drive_for(secs(60));
    assert_eq!(sim.take(alice), []);
}

#[test]
fn a_callee_in_another_call_is_busy() {
    let Call {
        mut sim, b1, carol, ..
    } = Call::new().answered();
    sim.site_thread("U", &["bob", "carol"]);
    sim.send(
        carol,
        json!({"type": "call_initiated", "recipientId": "bob", "threadId": "U", "requestId": 1}),
    );
    sim.drive();
    assert_eq!(
        sim.take_json(carol),
        [
            json!({"type": "call_ended", "callId": "n1-2", "threadId": "U", "reason": "busy"}),
            json!({"type": "ack", "callId": "n1-2", "requestId": 1}),
        ]
    );
    assert_eq!(sim.take(b1), []);
}

#[test]
fn glare_keeps_the_call_with_the_lesser_id() {
    let Call {
        mut sim,
        alice,
        b1,
        b2,
        ..
    } = Call::new().ringing();
    // bob calls alice back while alice's n1-1 rings: his would be n1-2, the greater.
    sim.send(
        b1,
        json!({"type": "call_initiated", "recipientId": "alice", "threadId": "T", "requestId": 1}),
    );
    sim.drive();
    assert_eq!(
        sim.take_json(b1),
        [
            json!({"type": "call_ended", "callId": "n1-2", "threadId": "T", "reason": "glare"}),
            json!({"type": "ack", "callId": "n1-1", "requestId": 1}),
        ]
    );
    assert_eq!(sim.take(alice), [], "alice's call keeps ringing");
    sim.send(b2, json!({"type": "call_accepted", "callId": "n1-1"}));
    sim.drive();
    assert_eq!(sim.kinds(alice), ["call_accepted"]);
}

#[test]
fn glare_ends_the_ringing_call_when_the_new_one_is_lesser() {
    let Call {
        mut sim,
        alice,
        b1,
        b2,
        ..
    } = Call::new();
    // Eight calls come and go, so alice's next is n1-9 and bob's call back n1-10, which
    // sorts first: ids compare as strings, the same on every node.
    for _ in 0..8 {
        sim.send(
            alice,
            json!({"type": "call_initiated", "recipientId": "bob", "threadId": "T"}),
        );
        sim.send(
            alice,
            json!({"type": "call_ended", "recipientId": "bob", "threadId": "T"}),
        );
    }
    sim.send(
        alice,
        json!({"type": "call_initiated", "recipientId": "bob", "threadId": "T"}),
    );
    sim.drive();
    sim.clear();
    sim.send(
        b1,
        json!({"type": "call_initiated", "recipientId": "alice", "threadId": "T", "requestId": 1}),
    );
    sim.drive();
    let glare = json!({"type": "call_ended", "callId": "n1-9", "threadId": "T", "reason": "glare"});
    assert_eq!(sim.take_json(b2), [glare.clone()]);
    assert_eq!(
        sim.take_json(b1),
        [
            glare.clone(),
            json!({"type": "ack", "callId": "n1-10", "requestId": 1})
        ]
    );
    let alice_frames = sim.take_json(alice);
    assert_eq!(alice_frames[0], glare);
    assert_eq!(alice_frames[1]["type"], "call_initiated");
    assert_eq!(alice_frames[1]["callId"], "n1-10");
}

#[test]
fn a_client_chosen_call_id_is_replaced_by_the_servers_and_still_finds_the_call() {
    let Call {
        mut sim, alice, b1, ..
    } = Call::new();
    sim.send(alice, json!({"type": "call_initiated", "recipientId": "bob", "threadId": "T", "callId": "mine", "requestId": 1}));
    sim.drive();
    assert_eq!(
        sim.take_json(alice),
        [json!({"type": "ack", "callId": "n1-1", "requestId": 1})]
    );
    sim.send(alice, json!({"type": "offer", "offer": "O", "recipientId": "bob", "threadId": "T", "callId": "mine"}));
    sim.drive();
    assert_eq!(sim.take_json(b1)[1]["callId"], "n1-1");
}

#[test]
fn a_bound_device_that_disconnects_ends_the_call_after_the_grace() {
    let Call {
        mut sim, alice, b1, ..
    } = Call::with(|c| c.call_grace = secs(3)).answered();
    sim.close(b1);
    sim.drive_for(ms(2999));
    assert_eq!(sim.take(alice), []);
    sim.drive_for(ms(1));
    assert_eq!(sim.take_json(alice), [ended("disconnected")]);
}

#[test]
fn a_reconnect_within_the_grace_rebinds_the_call() {
    let Call {
        mut sim,
        alice,
        b1,
        b2,
        ..
    } = Call::with(|c| c.call_grace = secs(3)).answered();
    sim.close(b1);
    sim.drive_for(secs(1));
    let b3 = sim.connect("bob");
    sim.send(b3, json!({"type": "ice-candidate", "candidate": "again", "callId": "n1-1", "recipientId": "alice"}));
    sim.drive();
    assert_eq!(
        sim.take_json(alice),
        [signal(
            "ice-candidate",
            "candidate",
            json!("again"),
            "bob",
            "alice"
        )]
    );
    sim.drive_for(secs(10));
    assert_eq!(sim.take(alice), [], "the call survived the grace");
    sim.send(
        alice,
        json!({"type": "offer", "offer": "R", "recipientId": "bob", "threadId": "T"}),
    );
    sim.drive();
    assert_eq!(sim.kinds(b3), ["offer"]);
    assert_eq!(sim.take(b2), []);
}

#[test]
fn the_peer_is_whichever_of_recipient_and_sender_is_not_the_sender() {
    let Call {
        mut sim, alice, b1, ..
    } = Call::new();
    // The seed's own server routed by `senderId`: the peer may sit in either field.
    sim.send(alice, json!({"type": "call_initiated", "senderId": "bob", "recipientId": "alice", "threadId": "T"}));
    sim.drive();
    assert_eq!(sim.kinds(b1), ["call_initiated"]);
    sim.send(b1, json!({"type": "answer", "answer": "A", "senderId": "alice", "recipientId": "bob", "threadId": "T"}));
    sim.drive();
    assert_eq!(sim.kinds(alice), ["call_accepted", "answer"]);
}

#[test]
fn a_sender_id_never_makes_you_someone_else() {
    let Call {
        mut sim,
        alice,
        b1,
        carol,
        ..
    } = Call::new().ringing();
    // carol claims to be alice to inject a candidate into alice's call.
    sim.send(carol, json!({"type": "ice-candidate", "candidate": "evil", "senderId": "alice", "recipientId": "bob", "threadId": "T", "callId": "n1-1", "requestId": 1}));
    sim.drive();
    assert_eq!(sim.take(b1), []);
    assert_eq!(sim.take(alice), []);
    assert_eq!(sim.errors(carol).len(), 1);
}

#[test]
fn calling_a_non_participant_is_refused() {
    let Call {
        mut sim,
        alice,
        carol,
        ..
    } = Call::new();
    sim.send(
        alice,
        json!({"type": "call_initiated", "recipientId": "carol", "threadId": "T", "requestId": 1}),
    );
    sim.drive();
    sim.expect_error(alice, "forbidden", Some(1));
    assert_eq!(sim.take(carol), []);
    sim.send(
        carol,
        json!({"type": "call_initiated", "recipientId": "alice", "threadId": "T", "requestId": 2}),
    );
    sim.drive();
    sim.expect_error(carol, "forbidden", Some(2));
    assert_eq!(sim.take(alice), []);
}

#[test]
fn calling_an_offline_participant_is_recipient_offline() {
    let Call { mut sim, alice, .. } = Call::new();
    sim.send(
        alice,
        json!({"type": "call_initiated", "recipientId": "dave", "threadId": "T", "requestId": 1}),
    );
    sim.drive();
    sim.expect_error(alice, "recipient_offline", Some(1));
    sim.send(alice, json!({"type": "answer", "answer": "A", "recipientId": "dave", "threadId": "T", "requestId": 2}));
    sim.drive();
    sim.expect_error(alice, "recipient_offline", Some(2));
    sim.send(alice, json!({"type": "answer", "answer": "A", "recipientId": "bob", "threadId": "T", "requestId": 3}));
    sim.drive();
    sim.expect_error(alice, "not_in_call", Some(3));
}

#[test]
fn invites_are_rate_limited_per_user() {
    let Call { mut sim, alice, .. } = Call::with(|c| c.invites_per_minute = 2);
    for rid in 1..=3 {
        sim.send(alice, json!({"type": "call_initiated", "recipientId": "bob", "threadId": "T", "requestId": rid}));
        sim.send(
            alice,
            json!({"type": "call_ended", "recipientId": "bob", "threadId": "T"}),
        );
        sim.drive();
    }
    let frames = sim.take_json(alice);
    let third = frames.iter().find(|f| f["requestId"] == 3).unwrap();
    assert_eq!(third["code"], "rate_limited", "{frames:#?}");
    sim.drive_for(secs(61));
    sim.send(
        alice,
        json!({"type": "call_initiated", "recipientId": "bob", "threadId": "T", "requestId": 4}),
    );
    sim.drive();
    assert_eq!(sim.kinds(alice), ["ack"]);
}

#[test]
fn without_the_coordinator_the_first_local_accept_still_wins() {
    let Call {
        mut sim,
        alice,
        b1,
        b2,
        ..
    } = Call::new().ringing();
    sim.coord.unavailable = true;
    sim.send(
        b1,
        json!({"type": "call_accepted", "callId": "n1-1", "requestId": 1}),
    );
    sim.drive();
    sim.send(
        b2,
        json!({"type": "call_accepted", "callId": "n1-1", "requestId": 2}),
    );
    sim.drive();
    assert_eq!(sim.kinds(alice), ["call_accepted"]);
    assert_eq!(
        sim.take_json(b1),
        [json!({"type": "ack", "callId": "n1-1", "requestId": 1})]
    );
    let b2_frames = sim.take_json(b2);
    assert_eq!(b2_frames[0], ended("answered_elsewhere"));
    assert_eq!(b2_frames[1]["code"], "not_in_call");
}

/// bob's second device answers and sends candidates at once while the claim is slow.
fn answer_with_candidates(sim: &mut Sim, b2: ConnId, candidates: &[i64]) {
    sim.send(
        b2,
        json!({"type": "answer", "answer": {"sdp": "A"}, "recipientId": "alice", "threadId": "T", "requestId": 1}),
    );
    for n in candidates {
        sim.send(
            b2,
            json!({"type": "ice-candidate", "candidate": {"candidate": n}, "recipientId": "alice", "threadId": "T", "requestId": 100 + n}),
        );
    }
}

#[test]
fn candidates_sent_after_an_answer_reach_the_caller_after_it_in_order() {
    let Call {
        mut sim,
        alice,
        b1,
        b2,
        ..
    } = Call::new().ringing();
    sim.coord.latency = ms(200);
    answer_with_candidates(&mut sim, b2, &[1, 2, 3]);
    assert_eq!(
        sim.kinds(alice),
        Vec::<&str>::new(),
        "nothing reaches the caller while the claim is out"
    );
    sim.drive();
    let frames = sim.take_json(alice);
    assert_eq!(frames[0]["type"], "call_accepted");
    assert_eq!(
        frames[1..],
        [
            signal("answer", "answer", json!({"sdp": "A"}), "bob", "alice"),
            signal(
                "ice-candidate",
                "candidate",
                json!({"candidate": 1}),
                "bob",
                "alice"
            ),
            signal(
                "ice-candidate",
                "candidate",
                json!({"candidate": 2}),
                "bob",
                "alice"
            ),
            signal(
                "ice-candidate",
                "candidate",
                json!({"candidate": 3}),
                "bob",
                "alice"
            ),
        ]
    );
    let acks: Vec<i64> = sim
        .take_json(b2)
        .iter()
        .map(|f| {
            assert_eq!(f["type"], "ack", "{f}");
            f["requestId"].as_i64().expect("a requestId")
        })
        .collect();
    assert_eq!(acks, [1, 101, 102, 103], "each frame acked, in order");
    assert_eq!(sim.take_json(b1), [ended("answered_elsewhere")]);
}

#[test]
fn after_a_lost_claim_each_held_frame_gets_its_own_error() {
    let Call {
        mut sim,
        alice,
        b1,
        b2,
        ..
    } = Call::new().ringing();
    sim.coord.latency = ms(200);
    sim.send(b1, json!({"type": "call_accepted", "callId": "n1-1"}));
    answer_with_candidates(&mut sim, b2, &[1, 2]);
    sim.send(b2, json!({"type": "ping", "requestId": 7}));
    sim.drive();
    assert_eq!(
        sim.kinds(alice),
        ["call_accepted"],
        "no candidate of the loser"
    );
    let frames = sim.take_json(b2);
    assert_eq!(frames[0], ended("answered_elsewhere"));
    let answers: Vec<(&str, i64)> = frames[1..]
        .iter()
        .map(|f| {
            let kind = f["code"].as_str().or(f["type"].as_str());
            (
                kind.expect("a code or type"),
                f["requestId"].as_i64().expect("a requestId"),
            )
        })
        .collect();
    assert_eq!(
        answers,
        [
            ("not_in_call", 1),
            ("not_in_call", 101),
            ("not_in_call", 102),
            ("pong", 7)
        ],
        "each held frame answered on its own, in order: {frames:?}"
    );
    assert_eq!(sim.take(b1), []);
}

#[test]
fn frames_held_behind_a_claim_count_against_the_queue_limit() {
    let Call {
        mut sim, alice, b2, ..
    } = Call::with(|c| c.max_queued_per_conn = 2).ringing();
    sim.coord.latency = ms(200);
    answer_with_candidates(&mut sim, b2, &[1, 2, 3]);
    let refused = sim.take_json(b2);
    assert_eq!(
        refused
            .iter()
            .map(|f| (f["code"].as_str(), f["requestId"].as_i64()))
            .collect::<Vec<_>>(),
        [(Some("queue_full"), Some(103))],
        "the third held frame is over the limit"
    );
    sim.drive();
    assert_eq!(
        sim.kinds(alice),
        ["call_accepted", "answer", "ice-candidate", "ice-candidate"]
    );
    let acks: Vec<Option<i64>> = sim
        .take_json(b2)
        .iter()
        .map(|f| f["requestId"].as_i64())
        .collect();
    assert_eq!(acks, [Some(1), Some(101), Some(102)]);
}
