//! Who receives what (DESIGN.md's recipients table) and the participant cache.

use serde_json::json;

use super::sim::*;
use crate::hub::PresenceScope;

/// alice on two devices, bob, and carol who is in no thread with them; alice and bob
/// joined `T`.
fn alice_bob_and_carol(sim: &mut Sim) -> [crate::ids::ConnId; 4] {
    let a1 = sim.connect("alice");
    let a2 = sim.connect("alice");
    let bob = sim.connect("bob");
    let carol = sim.connect("carol");
    for conn in [a1, bob] {
        sim.send(conn, json!({"type": "join_thread", "threadId": "T"}));
        sim.drive();
    }
    sim.clear();
    [a1, a2, bob, carol]
}

#[test]
fn a_message_reaches_every_connection_of_every_participant_and_the_sender() {
    let mut sim = Sim::new();
    let [a1, a2, bob, carol] = alice_bob_and_carol(&mut sim);
    sim.send(
        a1,
        json!({"type": "send_message", "threadId": "T", "message": "hi bob"}),
    );
    sim.drive();
    let expected = json!({
        "type": "message", "id": "1", "threadId": "T", "senderId": "alice",
        "message": "hi bob", "sentAt": SENT_AT, "position": {"offset": 1, "epoch": "i1.1"},
    });
    assert_eq!(
        sim.take_json(a1),
        [expected.clone()],
        "the sending connection gets the echo (and no ack)"
    );
    assert_eq!(
        sim.take_json(a2),
        [expected.clone()],
        "so do the sender's other devices"
    );
    assert_eq!(sim.take_json(bob), [expected]);
    assert_eq!(sim.take(carol), [], "never a non-participant");
}

#[test]
fn typing_reaches_the_other_participants_only() {
    let mut sim = Sim::new();
    let [a1, a2, bob, carol] = alice_bob_and_carol(&mut sim);
    sim.send(a1, json!({"type": "typing", "threadId": "T"}));
    sim.drive();
    assert_eq!(
        sim.take_json(bob),
        [json!({"type": "typing", "threadId": "T", "userId": "alice", "typing": true})]
    );
    assert_eq!(sim.take(a1), []);
    assert_eq!(sim.take(a2), [], "not the typist's other devices");
    assert_eq!(sim.take(carol), []);
}

#[test]
fn read_reaches_every_participant_including_the_readers_other_devices() {
    let mut sim = Sim::new();
    let [a1, a2, bob, carol] = alice_bob_and_carol(&mut sim);
    sim.send(
        a1,
        json!({"type": "mark_read", "threadId": "T", "requestId": 9}),
    );
    sim.drive();
    let read = json!({"type": "read", "threadId": "T", "userId": "alice"});
    assert_eq!(
        sim.take_json(a1),
        [
            read.clone(),
            json!({"type": "ack", "threadId": "T", "requestId": 9})
        ]
    );
    assert_eq!(sim.take_json(a2), [read.clone()]);
    assert_eq!(sim.take_json(bob), [read]);
    assert_eq!(sim.take(carol), []);
    assert_eq!(sim.api_count("mark_read"), 1);
}

#[test]
fn mark_read_outside_the_thread_is_forbidden() {
    let mut sim = Sim::new();
    let [_, _, _, carol] = alice_bob_and_carol(&mut sim);
    sim.send(
        carol,
        json!({"type": "mark_read", "threadId": "T", "requestId": 1}),
    );
    sim.drive();
    sim.expect_error(carol, "forbidden", Some(1));
}

#[test]
fn presence_by_default_reaches_connections_that_joined_a_thread_with_the_user() {
    let mut sim = Sim::new();
    let [a1, a2, bob, carol] = alice_bob_and_carol(&mut sim);
    sim.close(bob);
    sim.drive();
    assert_eq!(
        sim.take_json(a1),
        [json!({"type": "user_disconnected", "userId": "bob"})]
    );
    assert_eq!(sim.take(a2), [], "a2 joined no thread");
    assert_eq!(sim.take(carol), []);

    let bob = sim.connect("bob");
    assert_eq!(
        sim.take_json(a1),
        [json!({"type": "user_connected", "userId": "bob"})]
    );
    assert_eq!(sim.take(bob), [], "never your own presence");
    assert_eq!(sim.take(carol), []);

    // A second device is not news.
    let _bob2 = sim.connect("bob");
    assert_eq!(sim.take(a1), []);
}

#[test]
fn presence_scope_all_reaches_everyone_as_the_seed_did() {
    let mut sim = Sim::with(|c| c.presence_scope = PresenceScope::All);
    let alice = sim.connect("alice");
    let anonymous = sim.open();
    let bob = sim.connect("bob");
    assert_eq!(
        sim.take_json(alice),
        [json!({"type": "user_connected", "userId": "bob"})]
    );
    assert_eq!(sim.kinds(anonymous), ["user_connected"]);
    assert_eq!(sim.take(bob), []);
    sim.close(bob);
    sim.drive();
    assert_eq!(sim.kinds(alice), ["user_disconnected"]);
    assert_eq!(sim.kinds(anonymous), ["user_disconnected"]);
}

#[test]
fn leave_thread_stops_presence_but_not_messages() {
    let mut sim = Sim::new();
    let [a1, _, bob, _] = alice_bob_and_carol(&mut sim);
    sim.send(
        a1,
        json!({"type": "leave_thread", "threadId": "T", "requestId": 4}),
    );
    sim.drive();
    assert_eq!(
        sim.take_json(a1),
        [json!({"type": "ack", "threadId": "T", "requestId": 4})]
    );
    sim.close(bob);
    sim.drive();
    assert_eq!(sim.take(a1), [], "no presence for a thread left");
    let bob = sim.connect("bob");
    sim.send(
        bob,
        json!({"type": "send_message", "threadId": "T", "message": "still there?"}),
    );
    sim.drive();
    assert_eq!(sim.kinds(a1), ["message"], "alice is still a participant");
}

#[test]
fn joined_lists_participants_with_their_presence_and_the_last_message() {
    let mut sim = Sim::new();
    let alice = sim.connect("alice");
    sim.site_thread("T", &["alice", "bob", "carol"]);
    let _bob = sim.connect("bob");
    sim.send(
        alice,
        json!({"type": "send_message", "threadId": "T", "message": "first"}),
    );
    sim.drive();
    sim.clear();
    sim.send(
        alice,
        json!({"type": "join_thread", "threadId": "T", "requestId": "j"}),
    );
    sim.drive();
    assert_eq!(
        sim.take_json(alice),
        [json!({
            "type": "joined", "threadId": "T", "lastMessageId": "1", "requestId": "j",
            "position": {"offset": 1, "epoch": "i1.1"},
            "participants": [
                {"userId": "alice", "online": true},
                {"userId": "bob", "online": true},
                {"userId": "carol", "online": false},
            ],
        })]
    );
}

#[test]
fn the_participant_cache_is_used_within_its_ttl_and_fetched_again_after() {
    let mut sim = Sim::with(|c| c.participants_ttl = secs(10));
    let alice = sim.connect("alice");
    let bob = sim.connect("bob");
    sim.site_thread("T", &["alice", "bob"]);
    sim.send(alice, json!({"type": "typing", "threadId": "T"}));
    sim.drive();
    assert_eq!(
        sim.api_count("participants"),
        1,
        "a cold cache asks the site"
    );
    assert_eq!(sim.kinds(bob), ["typing"]);

    sim.send(
        alice,
        json!({"type": "typing", "threadId": "T", "typing": false}),
    );
    sim.drive();
    assert_eq!(sim.api_count("participants"), 1, "a warm cache does not");
    assert_eq!(sim.kinds(bob), ["typing"]);

    sim.site_remove("T", "bob");
    sim.drive_for(secs(11));
    sim.send(alice, json!({"type": "typing", "threadId": "T"}));
    sim.drive();
    assert_eq!(
        sim.api_count("participants"),
        2,
        "an expired cache asks again"
    );
    assert_eq!(sim.take(bob), [], "bob left the thread on the site");

    sim.send(
        bob,
        json!({"type": "typing", "threadId": "T", "requestId": 1}),
    );
    sim.drive();
    sim.expect_error(bob, "forbidden", Some(1));
}

#[test]
fn a_join_adds_the_joiner_to_the_cached_participants() {
    let mut sim = Sim::new();
    let alice = sim.connect("alice");
    let bob = sim.connect("bob");
    sim.send(alice, json!({"type": "join_thread", "threadId": "T"}));
    sim.drive();
    sim.send(bob, json!({"type": "join_thread", "threadId": "T"}));
    sim.drive();
    sim.clear();
    sim.send(alice, json!({"type": "typing", "threadId": "T"}));
    sim.drive();
    assert_eq!(sim.kinds(bob), ["typing"]);
    assert_eq!(
        sim.api_count("participants"),
        2,
        "one per join, none for the typing"
    );
}

#[test]
fn a_stored_message_refreshes_the_cached_participants() {
    let mut sim = Sim::new();
    let alice = sim.connect("alice");
    let dave = sim.connect("dave");
    sim.send(alice, json!({"type": "join_thread", "threadId": "T"}));
    sim.drive();
    // dave is added to the thread behind the Hub's back, then named as a recipient.
    sim.send(alice, json!({"type": "send_message", "threadId": "T", "recipientId": "dave", "message": "welcome"}));
    sim.drive();
    assert_eq!(sim.kinds(dave), ["message"]);
    sim.send(alice, json!({"type": "typing", "threadId": "T"}));
    sim.drive();
    assert_eq!(
        sim.kinds(dave),
        ["typing"],
        "the stored message's participants are cached"
    );
    assert_eq!(sim.api_count("participants"), 1);
}

#[test]
fn a_message_without_a_thread_starts_one_with_the_recipient() {
    let mut sim = Sim::new();
    let alice = sim.connect("alice");
    let bob = sim.connect("bob");
    sim.send(alice, json!({"type": "send_message", "recipientId": "bob", "message": "new thread", "requestId": 1}));
    sim.drive();
    let frames = sim.take_json(alice);
    assert_eq!(frames[0]["type"], "message");
    assert_eq!(frames[0]["threadId"], "1");
    assert_eq!(
        frames[1],
        json!({"type": "ack", "id": "1", "threadId": "1", "requestId": 1})
    );
    assert_eq!(sim.kinds(bob), ["message"]);
}

#[test]
fn joiners_hear_where_a_new_participant_stands() {
    let mut sim = Sim::new();
    let alice = sim.connect("alice");
    let dave = sim.connect("dave");
    let erin = sim.connect("erin");
    sim.send(alice, json!({"type": "join_thread", "threadId": "T"}));
    sim.drive();
    sim.clear();
    sim.send(
        alice,
        json!({"type": "send_message", "threadId": "T", "recipientId": "dave", "message": "hi"}),
    );
    sim.send(
        alice,
        json!({"type": "send_message", "threadId": "T", "recipientId": "frank", "message": "hi"}),
    );
    sim.drive();
    let kinds: Vec<String> = sim
        .take_json(alice)
        .iter()
        .map(|f| {
            format!(
                "{} {}",
                f["type"].as_str().unwrap(),
                f["userId"].as_str().unwrap_or("")
            )
        })
        .collect();
    // alice shares a joined thread with dave and frank now.
    assert_eq!(
        kinds,
        [
            "user_connected dave",
            "message ",
            "user_disconnected frank",
            "message "
        ]
    );
    assert_eq!(sim.kinds(dave), ["message", "message"]);
    assert_eq!(sim.take(erin), []);
}

#[test]
fn a_connection_that_waited_on_participants_keeps_no_trace_of_the_fetch() {
    let mut sim = Sim::new();
    let [a1, _, bob, _] = alice_bob_and_carol(&mut sim);
    assert!(
        sim.hub(0).threads.no_fetches(),
        "the joins' fetches were answered: {:?}",
        sim.hub(0).threads
    );
    for conn in [a1, bob] {
        assert!(sim.hub(0).dir.contains(conn), "still connected");
    }
}
