//! Per-connection limits, ping/pong and bad frames.

use std::time::Duration;

use serde_json::json;

use super::sim::*;
use crate::api::SiteErrorKind;
use crate::wire::ErrorCode;

#[test]
fn ping_gets_pong_identified_or_not() {
    let mut sim = Sim::new();
    let anonymous = sim.open();
    let alice = sim.connect("alice");
    sim.send(anonymous, json!({"type": "ping"}));
    sim.send(alice, json!({"type": "ping", "requestId": "p1"}));
    sim.drive();
    assert_eq!(sim.take_json(anonymous), [json!({"type": "pong"})]);
    assert_eq!(
        sim.take_json(alice),
        [json!({"type": "pong", "requestId": "p1"})]
    );
}

#[test]
fn bad_frames_get_an_error_and_keep_the_connection() {
    let mut sim = Sim::new();
    let alice = sim.connect("alice");
    sim.send_text(alice, "not json");
    sim.send(alice, json!({"type": "dance", "requestId": 1}));
    sim.send(alice, json!({"type": "join_thread", "requestId": 2}));
    sim.send(
        alice,
        json!({"type": "join_thread", "threadId": "bad id", "requestId": 3}),
    );
    sim.send(alice, json!([1, 2]));
    sim.drive();
    assert_eq!(
        sim.errors(alice),
        [
            ("invalid_json".into(), None),
            ("unknown_type".into(), Some(1)),
            ("invalid_field".into(), Some(2)),
            ("invalid_id".into(), Some(3)),
            ("not_an_object".into(), None),
        ]
    );
    sim.send(alice, json!({"type": "ping"}));
    assert_eq!(sim.kinds(alice), ["pong"]);
}

#[test]
fn a_flood_is_rate_limited_then_closed_with_4008() {
    let mut sim = Sim::with(|c| {
        c.frame_rate = 10.0;
        c.frame_burst = 5.0;
        c.close_after_violations = 3;
    });
    let alice = sim.connect("alice");
    sim.drive_for(secs(1));
    for rid in 1..=5 {
        sim.send(alice, json!({"type": "ping", "requestId": rid}));
    }
    assert_eq!(sim.kinds(alice), ["pong"; 5], "the burst passes");
    for rid in 6..=8 {
        sim.send(alice, json!({"type": "ping", "requestId": rid}));
    }
    assert_eq!(
        sim.errors(alice),
        [
            ("rate_limited".into(), Some(6)),
            ("rate_limited".into(), Some(7)),
            ("rate_limited".into(), Some(8))
        ]
    );
    sim.drive_for(ms(100));
    sim.send(alice, json!({"type": "ping", "requestId": 9}));
    assert_eq!(
        sim.kinds(alice),
        ["pong"],
        "the bucket refills at the sustained rate"
    );
    for rid in 10..=13 {
        sim.send(alice, json!({"type": "ping", "requestId": rid}));
    }
    assert_eq!(sim.kinds(alice), ["error", "error", "error"]);
    assert_eq!(sim.close_code(alice), Some(4008));
    assert_eq!(sim.online(0), Vec::<String>::new());
}

#[test]
fn a_connection_may_join_a_bounded_number_of_threads() {
    let mut sim = Sim::with(|c| c.max_threads_per_conn = 2);
    let alice = sim.connect("alice");
    for (rid, thread) in [(1, "A"), (2, "B"), (3, "C"), (4, "A")] {
        sim.send(
            alice,
            json!({"type": "join_thread", "threadId": thread, "requestId": rid}),
        );
        sim.drive();
    }
    let answers: Vec<(String, String)> = sim
        .take_json(alice)
        .iter()
        .map(|f| {
            (
                f["type"].as_str().unwrap().to_owned(),
                f["code"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    let expected = [
        ("joined", ""),
        ("joined", ""),
        ("error", "too_many_threads"),
        ("joined", ""),
    ];
    assert_eq!(
        answers,
        expected.map(|(a, b)| (a.to_owned(), b.to_owned())),
        "joining again is fine"
    );
    sim.send(alice, json!({"type": "leave_thread", "threadId": "A"}));
    sim.send(
        alice,
        json!({"type": "join_thread", "threadId": "C", "requestId": 5}),
    );
    sim.drive();
    assert_eq!(sim.kinds(alice), ["joined"]);
}

#[test]
fn joining_a_thread_the_site_refuses_is_forbidden() {
    let mut sim = Sim::new();
    sim.site.real = true;
    sim.site_thread("T", &["bob"]);
    let mallory = sim.open_on(0, ip(1), Some("dev:mallory"));
    sim.send(
        mallory,
        json!({"type": "join_thread", "threadId": "T", "requestId": 1}),
    );
    sim.drive();
    sim.expect_error(mallory, "forbidden", Some(1));
}

#[test]
fn probing_random_threads_does_not_grow_the_hub_forever() {
    let mut sim = Sim::with(|c| c.frame_rate = 1000.0);
    sim.site.real = true;
    let mallory = sim.open_on(0, ip(1), Some("dev:mallory"));
    sim.drive();
    // One refused join every 100 ms for ten minutes: ten TTLs' worth of thread ids.
    for n in 0..6000 {
        sim.send(
            mallory,
            json!({"type": "join_thread", "threadId": format!("probe-{n}")}),
        );
        sim.drive_for(ms(100));
    }
    assert_eq!(sim.errors(mallory).len(), 6000);
    let remembered = sim.hub(0).threads.denied_len();
    assert!(
        remembered <= 2 * 600 + 1024,
        "{remembered} refusals remembered"
    );
}

/// Every error the Hub finds itself, or gets from the site, answers its frame's
/// `requestId`; site errors read the fixed text of their code.
#[test]
fn every_hub_error_echoes_the_request_id() {
    let mut sim = Sim::with(|c| {
        c.max_threads_per_conn = 1;
        c.max_pending_sends_per_user = 1;
        c.invites_per_minute = 1;
    });
    let alice = sim.connect("alice");
    let bob = sim.connect("bob");
    let carol = sim.connect("carol");
    sim.site_thread("T", &["alice", "bob", "carol"]);
    for conn in [alice, bob, carol] {
        sim.send(conn, json!({"type": "join_thread", "threadId": "T"}));
    }
    sim.drive();
    sim.clear();
    let mut rid = 0;
    let mut expect = |sim: &mut Sim, conn, frame: serde_json::Value, code: &str| {
        rid += 1;
        let mut frame = frame;
        frame["requestId"] = json!(rid);
        sim.send(conn, frame.clone());
        sim.drive();
        let errors: Vec<_> = sim
            .take_json(conn)
            .into_iter()
            .filter(|f| f["type"] == "error")
            .collect();
        assert_eq!(errors.len(), 1, "{frame}: {errors:?}");
        assert_eq!(
            (&errors[0]["code"], &errors[0]["requestId"]),
            (&json!(code), &json!(rid)),
            "{frame}"
        );
        errors[0]["message"].as_str().unwrap_or_default().to_owned()
    };
    let send = |text: &str| json!({"type": "send_message", "threadId": "T", "message": text});
    expect(&mut sim, alice, send(" "), "empty_message");
    let no_target = json!({"type": "send_message", "message": "hi"});
    expect(&mut sim, alice, no_target, "missing_recipient");
    let join = json!({"type": "join_thread", "threadId": "U"});
    expect(&mut sim, alice, join, "too_many_threads");
    let other = json!({"type": "user_connected", "userId": "bob"});
    expect(&mut sim, alice, other, "identity_mismatch");

    // From the site: the fixed text of the code, whatever the site said.
    for (kind, code, wire) in [
        (
            SiteErrorKind::Refused,
            "bp_rest_messages_create_failed",
            "refused",
        ),
        (SiteErrorKind::Invalid, "bp_rest_invalid_param", "invalid"),
        (SiteErrorKind::Unavailable, "timeout", "site_unavailable"),
        (SiteErrorKind::Protocol, "not_json", "site_error"),
    ] {
        sim.fail_next("send", 1, kind, code);
        let message = expect(&mut sim, alice, send("hi"), wire);
        let code: ErrorCode = serde_json::from_value(json!(wire)).expect("a known code");
        assert_eq!(message, code.message());
    }
    sim.site_latency("send", ms(100));
    sim.send(alice, send("first"));
    expect(&mut sim, alice, send("second"), "too_many_pending");
    sim.site_latency("send", Duration::ZERO);
    sim.drive();
    sim.clear();

    // Calls.
    let call = |kind: &str, peer: &str| json!({"type": kind, "recipientId": peer, "threadId": "T"});
    expect(&mut sim, alice, call("call_accepted", "bob"), "not_in_call");
    let me = json!({"type": "call_initiated", "recipientId": "alice", "threadId": "T"});
    expect(&mut sim, alice, me, "missing_recipient");
    expect(&mut sim, alice, call("call_initiated", "dave"), "forbidden");
    sim.send(alice, call("call_initiated", "bob"));
    sim.drive();
    sim.clear();
    expect(
        &mut sim,
        alice,
        call("call_initiated", "carol"),
        "rate_limited",
    );
}
