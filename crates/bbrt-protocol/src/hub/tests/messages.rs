//! `send_message`: store then deliver, acks, typed site errors, idempotency, ordering.

use serde_json::json;

use super::sim::*;
use crate::api::SiteErrorKind;

fn alice_and_bob_in_t(sim: &mut Sim) -> (crate::ids::ConnId, crate::ids::ConnId) {
    let alice = sim.connect("alice");
    let bob = sim.connect("bob");
    for conn in [alice, bob] {
        sim.send(conn, json!({"type": "join_thread", "threadId": "T"}));
        sim.drive();
    }
    sim.clear();
    (alice, bob)
}

#[test]
fn nothing_is_delivered_or_acked_before_the_site_stored_the_message() {
    let mut sim = Sim::new();
    let (alice, bob) = alice_and_bob_in_t(&mut sim);
    sim.site_latency("send", ms(500));
    sim.send(
        alice,
        json!({"type": "send_message", "threadId": "T", "message": "hi", "requestId": 1}),
    );
    sim.drive_for(ms(499));
    assert_eq!(sim.take(alice), []);
    assert_eq!(sim.take(bob), []);
    sim.drive();
    assert_eq!(sim.kinds(alice), ["message", "ack"]);
    assert_eq!(sim.kinds(bob), ["message"]);
}

#[test]
fn a_client_message_id_alone_asks_for_an_ack_and_is_echoed() {
    let mut sim = Sim::new();
    let (alice, bob) = alice_and_bob_in_t(&mut sim);
    sim.send(
        alice,
        json!({"type": "send_message", "threadId": "T", "message": "hi", "clientMessageId": "c-1"}),
    );
    sim.drive();
    let message = json!({
        "type": "message", "id": "1", "threadId": "T", "senderId": "alice", "message": "hi",
        "sentAt": SENT_AT, "clientMessageId": "c-1", "position": {"offset": 1, "epoch": "i1.1"},
    });
    assert_eq!(
        sim.take_json(alice),
        [
            message.clone(),
            json!({"type": "ack", "clientMessageId": "c-1", "id": "1", "threadId": "T"})
        ]
    );
    assert_eq!(sim.take_json(bob), [message]);
}

#[test]
fn site_errors_become_typed_error_codes() {
    let cases = [
        (
            SiteErrorKind::Forbidden,
            "bp_rest_authorization_required",
            "forbidden",
            false,
        ),
        (
            SiteErrorKind::Refused,
            "bp_rest_messages_create_failed",
            "refused",
            false,
        ),
        (
            SiteErrorKind::Unavailable,
            "timeout",
            "site_unavailable",
            true,
        ),
        (
            SiteErrorKind::Invalid,
            "bp_rest_invalid_param",
            "invalid",
            false,
        ),
        (SiteErrorKind::InvalidId, "invalid_id", "invalid_id", false),
        (
            SiteErrorKind::EmptyMessage,
            "bp_rest_messages_empty_message",
            "empty_message",
            false,
        ),
        (
            SiteErrorKind::IdempotencyConflict,
            "idempotency_conflict",
            "idempotency_conflict",
            false,
        ),
        (SiteErrorKind::Protocol, "weird", "site_error", true),
    ];
    for (kind, site_code, code, retryable) in cases {
        let mut sim = Sim::new();
        let (alice, bob) = alice_and_bob_in_t(&mut sim);
        sim.fail_next("send", 1, kind, site_code);
        sim.send(
            alice,
            json!({"type": "send_message", "threadId": "T", "message": "hi", "requestId": 7}),
        );
        sim.drive();
        assert_eq!(sim.expect_error(alice, code, Some(7)), retryable, "{code}");
        assert_eq!(sim.take(bob), [], "nothing delivered for {code}");
        assert!(sim.closed(alice).is_none());
    }
}

#[test]
fn an_unauthenticated_send_closes_the_credentials_connections() {
    let mut sim = Sim::new();
    let alice = sim.open_on(0, ip(1), Some("tok-a"));
    sim.send(alice, json!({"type": "join_thread", "threadId": "T"}));
    sim.drive();
    sim.clear();
    sim.revoke_token("tok-a");
    sim.send(
        alice,
        json!({"type": "send_message", "threadId": "T", "message": "hi", "requestId": 1}),
    );
    sim.drive();
    sim.expect_error(alice, "unauthenticated", Some(1));
    assert_eq!(sim.close_code(alice), Some(4001));
}

#[test]
fn a_duplicate_while_the_first_is_in_flight_waits_and_never_posts_twice() {
    let mut sim = Sim::new();
    let (alice, bob) = alice_and_bob_in_t(&mut sim);
    let alice2 = sim.connect("alice");
    sim.clear();
    sim.site_latency("send", ms(500));
    let send = |rid: i64| json!({"type": "send_message", "threadId": "T", "message": "once", "clientMessageId": "c-9", "requestId": rid});
    sim.send(alice, send(1));
    sim.drive_for(ms(100));
    sim.send(alice, send(2));
    sim.send(alice2, send(3));
    sim.drive();
    assert_eq!(sim.api_count("send"), 1);
    let ack = |rid: i64| json!({"type": "ack", "clientMessageId": "c-9", "id": "1", "threadId": "T", "requestId": rid});
    let alice_frames = sim.take_json(alice);
    assert_eq!(alice_frames.len(), 3, "{alice_frames:#?}");
    assert_eq!(alice_frames[0]["type"], "message");
    assert!(alice_frames.contains(&ack(1)) && alice_frames.contains(&ack(2)));
    assert_eq!(sim.take_json(alice2)[1..], [ack(3)]);
    assert_eq!(sim.kinds(bob), ["message"], "delivered once");
}

#[test]
fn a_duplicate_after_completion_is_acked_without_redelivery() {
    let mut sim = Sim::new();
    let (alice, bob) = alice_and_bob_in_t(&mut sim);
    let send = json!({"type": "send_message", "threadId": "T", "message": "once", "clientMessageId": "c-9"});
    sim.send(alice, send.clone());
    sim.drive();
    sim.clear();
    sim.send(alice, send);
    sim.drive();
    assert_eq!(
        sim.take_json(alice),
        [json!({"type": "ack", "clientMessageId": "c-9", "id": "1", "threadId": "T"})]
    );
    assert_eq!(sim.take(bob), []);
    assert_eq!(sim.api_count("send"), 1);
}

#[test]
fn a_failed_send_releases_its_client_message_id_for_a_retry() {
    let mut sim = Sim::new();
    let (alice, bob) = alice_and_bob_in_t(&mut sim);
    sim.fail_next("send", 1, SiteErrorKind::Unavailable, "timeout");
    let send = json!({"type": "send_message", "threadId": "T", "message": "again", "clientMessageId": "c-1", "requestId": 1});
    sim.send(alice, send.clone());
    sim.drive();
    assert!(sim.expect_error(alice, "site_unavailable", Some(1)));
    sim.send(alice, send);
    sim.drive();
    assert_eq!(sim.kinds(alice), ["message", "ack"]);
    assert_eq!(sim.kinds(bob), ["message"]);
    assert_eq!(sim.api_count("send"), 2);
}

#[test]
fn sends_are_serialized_per_user_and_thread() {
    let mut sim = Sim::new();
    let (alice, bob) = alice_and_bob_in_t(&mut sim);
    sim.site_latency("send", ms(300));
    for text in ["one", "two", "three"] {
        sim.send(
            alice,
            json!({"type": "send_message", "threadId": "T", "message": text}),
        );
    }
    sim.send(
        alice,
        json!({"type": "send_message", "threadId": "U", "message": "elsewhere"}),
    );
    sim.send(
        bob,
        json!({"type": "send_message", "threadId": "T", "message": "bob's"}),
    );
    sim.drive_for(ms(299));
    assert_eq!(
        sim.api_count("send"),
        3,
        "one per lane: alice in T, alice in U, bob in T"
    );
    sim.drive_for(ms(1));
    assert_eq!(
        sim.api_count("send"),
        4,
        "the second in alice's lane only after the first result"
    );
    sim.drive();
    let texts: Vec<String> = sim
        .take_json(bob)
        .iter()
        .filter(|m| m["senderId"] == "alice")
        .map(|m| m["message"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(texts, ["one", "two", "three"]);
}

#[test]
fn a_failed_send_does_not_stall_its_lane() {
    let mut sim = Sim::new();
    let (alice, bob) = alice_and_bob_in_t(&mut sim);
    sim.fail_next(
        "send",
        1,
        SiteErrorKind::Refused,
        "bp_rest_messages_create_failed",
    );
    sim.send(
        alice,
        json!({"type": "send_message", "threadId": "T", "message": "one", "requestId": 1}),
    );
    sim.send(
        alice,
        json!({"type": "send_message", "threadId": "T", "message": "two", "requestId": 2}),
    );
    sim.drive();
    let frames = sim.take_json(alice);
    assert_eq!(frames[0]["code"], "refused");
    assert_eq!(frames[1]["message"], "two");
    assert_eq!(frames[2]["type"], "ack");
    assert_eq!(sim.kinds(bob), ["message"]);
}

#[test]
fn empty_and_unaddressed_messages_are_refused_without_asking_the_site() {
    let mut sim = Sim::new();
    let (alice, _) = alice_and_bob_in_t(&mut sim);
    sim.send(
        alice,
        json!({"type": "send_message", "threadId": "T", "message": "  ", "requestId": 1}),
    );
    sim.send(
        alice,
        json!({"type": "send_message", "message": "to whom?", "requestId": 2}),
    );
    sim.drive();
    assert_eq!(
        sim.errors(alice),
        [
            ("empty_message".into(), Some(1)),
            ("missing_recipient".into(), Some(2))
        ]
    );
    assert_eq!(sim.api_count("send"), 0);
}

#[test]
fn sends_waiting_for_the_site_are_bounded_per_user() {
    let mut sim = Sim::with(|c| c.max_pending_sends_per_user = 2);
    let (alice, _) = alice_and_bob_in_t(&mut sim);
    sim.site_latency("send", ms(300));
    for rid in 1..=3 {
        sim.send(
            alice,
            json!({"type": "send_message", "threadId": "T", "message": "m", "requestId": rid}),
        );
    }
    assert_eq!(sim.errors(alice), [("too_many_pending".into(), Some(3))]);
    sim.drive();
    assert_eq!(sim.kinds(alice), ["message", "ack", "message", "ack"]);
}

#[test]
fn without_the_coordinator_sends_with_a_client_message_id_still_go_through() {
    let mut sim = Sim::new();
    let (alice, bob) = alice_and_bob_in_t(&mut sim);
    sim.coord.unavailable = true;
    let send = json!({"type": "send_message", "threadId": "T", "message": "hi", "clientMessageId": "c-1", "requestId": 1});
    sim.send(alice, send.clone());
    sim.drive();
    assert_eq!(sim.kinds(alice), ["message", "ack"]);
    assert_eq!(sim.kinds(bob), ["message"]);
    sim.send(alice, send);
    sim.drive();
    assert_eq!(sim.kinds(alice), ["ack"], "local deduplication still holds");
    assert_eq!(sim.api_count("send"), 1);
}

#[test]
fn an_unconfirmed_send_keeps_its_client_message_id_and_the_retry_reconciles_first() {
    let mut sim = Sim::new();
    let (alice, bob) = alice_and_bob_in_t(&mut sim);
    // The site stores the message but its answer is lost.
    sim.site.unconfirm_next = 1;
    let send = json!({"type": "send_message", "threadId": "T", "message": "once", "clientMessageId": "c-1", "requestId": 1});
    sim.send(alice, send.clone());
    sim.drive();
    assert!(
        sim.expect_error(alice, "send_unconfirmed", Some(1)),
        "retryable"
    );
    assert_eq!(sim.take(bob), [], "nothing delivered while unknown");
    assert_eq!(sim.site.stored.len(), 1);

    sim.send(alice, send);
    sim.drive();
    assert_eq!(
        sim.take_json(alice),
        [
            json!({"type": "message", "id": "1", "threadId": "T", "senderId": "alice",
                   "message": "once", "sentAt": SENT_AT, "clientMessageId": "c-1",
                   "position": {"offset": 1, "epoch": "i1.1"}}),
            json!({"type": "ack", "clientMessageId": "c-1", "id": "1", "threadId": "T", "requestId": 1}),
        ]
    );
    assert_eq!(sim.kinds(bob), ["message"]);
    assert_eq!(sim.site.stored.len(), 1, "the retry found it: one copy");
    let reconciling = sim.site.requests.iter().filter(|(_, r)| {
        matches!(
            r,
            crate::api::ApiRequest::Send {
                unconfirmed_since: Some(_),
                ..
            }
        )
    });
    assert_eq!(
        reconciling.count(),
        1,
        "the retry asked the site to look first"
    );
}

#[test]
fn a_failed_retry_of_an_unconfirmed_send_stays_unconfirmed() {
    let mut sim = Sim::new();
    let (alice, _bob) = alice_and_bob_in_t(&mut sim);
    sim.site.unconfirm_next = 1;
    let send = json!({"type": "send_message", "threadId": "T", "message": "once", "clientMessageId": "c-1", "requestId": 1});
    sim.send(alice, send.clone());
    sim.drive();
    assert!(sim.expect_error(alice, "send_unconfirmed", Some(1)));
    // The retry cannot reach the site: the first attempt may still be stored.
    sim.fail_next("send", 1, SiteErrorKind::Unavailable, "connect");
    sim.send(alice, send.clone());
    sim.drive();
    assert!(sim.expect_error(alice, "send_unconfirmed", Some(1)));
    sim.send(alice, send);
    sim.drive();
    assert_eq!(sim.kinds(alice), ["message", "ack"]);
    assert_eq!(sim.site.stored.len(), 1);
}

#[test]
fn a_reused_client_message_id_with_other_content_is_a_conflict() {
    let mut sim = Sim::new();
    let (alice, bob) = alice_and_bob_in_t(&mut sim);
    sim.site_thread("U", &["alice", "bob"]);
    let first = json!({"type": "send_message", "threadId": "T", "message": "first", "clientMessageId": "c-1", "requestId": 1});
    sim.send(alice, first.clone());
    sim.drive();
    sim.clear();
    for (rid, other) in [
        (
            2,
            json!({"type": "send_message", "threadId": "T", "message": "second", "clientMessageId": "c-1", "requestId": 2}),
        ),
        (
            3,
            json!({"type": "send_message", "threadId": "U", "message": "first", "clientMessageId": "c-1", "requestId": 3}),
        ),
        (
            4,
            json!({"type": "send_message", "threadId": "T", "recipientId": "bob", "message": "first", "clientMessageId": "c-1", "requestId": 4}),
        ),
    ] {
        sim.send(alice, other);
        sim.drive();
        assert!(
            !sim.expect_error(alice, "idempotency_conflict", Some(rid)),
            "not retryable"
        );
    }
    sim.send(alice, first);
    sim.drive();
    assert_eq!(sim.kinds(alice), ["ack"], "the same send is still a retry");
    assert_eq!(sim.take(bob), []);
    assert_eq!(sim.api_count("send"), 1);
}

#[test]
fn a_conflict_while_the_first_is_in_flight_is_answered_at_once() {
    let mut sim = Sim::new();
    let (alice, _bob) = alice_and_bob_in_t(&mut sim);
    sim.site_latency("send", ms(300));
    sim.send(alice, json!({"type": "send_message", "threadId": "T", "message": "first", "clientMessageId": "c-1", "requestId": 1}));
    sim.drive_for(ms(50));
    sim.send(alice, json!({"type": "send_message", "threadId": "T", "message": "second", "clientMessageId": "c-1", "requestId": 2}));
    sim.drive_for(ms(1));
    assert!(!sim.expect_error(alice, "idempotency_conflict", Some(2)));
    sim.drive();
    assert_eq!(sim.kinds(alice), ["message", "ack"]);
    assert_eq!(sim.api_count("send"), 1);
}
