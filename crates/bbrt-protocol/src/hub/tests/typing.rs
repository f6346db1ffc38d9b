//! Typing: coalesced to one forward per (user, thread) every 2 s, expired after 5 s.

use serde_json::json;

use super::sim::*;

fn typing(user: &str, typing: bool) -> serde_json::Value {
    json!({"type": "typing", "threadId": "T", "userId": user, "typing": typing})
}

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
fn keystrokes_are_coalesced_to_one_forward_every_two_seconds() {
    let mut sim = Sim::new();
    let (alice, bob) = alice_and_bob_in_t(&mut sim);
    // A keystroke every 250 ms for 4.5 s, as the seed's clients do.
    for _ in 0..18 {
        sim.send(alice, json!({"type": "typing", "threadId": "T"}));
        sim.drive_for(ms(250));
    }
    let forwarded: Vec<_> = sim
        .client(bob)
        .log
        .iter()
        .filter(|(_, _, m)| m.kind() == "typing")
        .map(|(at, _, _)| (*at - sim.epoch).as_millis())
        .collect();
    assert_eq!(
        sim.elapsed().as_millis(),
        forwarded[0] + 4500,
        "{forwarded:?}"
    );
    let start = forwarded[0];
    let offsets: Vec<u128> = forwarded.iter().map(|t| t - start).collect();
    assert_eq!(offsets, [0, 2000, 4000]);
    assert_eq!(
        sim.take_json(bob),
        [
            typing("alice", true),
            typing("alice", true),
            typing("alice", true)
        ]
    );
    assert_eq!(sim.take(alice), []);
}

#[test]
fn typing_expires_after_five_seconds_without_a_refresh() {
    let mut sim = Sim::new();
    let (alice, bob) = alice_and_bob_in_t(&mut sim);
    sim.send(alice, json!({"type": "typing", "threadId": "T"}));
    sim.drive_for(ms(4999));
    assert_eq!(sim.take_json(bob), [typing("alice", true)]);
    sim.drive_for(ms(1));
    assert_eq!(sim.take_json(bob), [typing("alice", false)]);
    sim.drive_for(secs(10));
    assert_eq!(sim.take(bob), []);
}

#[test]
fn a_refresh_postpones_the_expiry() {
    let mut sim = Sim::new();
    let (alice, bob) = alice_and_bob_in_t(&mut sim);
    sim.send(alice, json!({"type": "typing", "threadId": "T"}));
    sim.drive_for(secs(1));
    sim.send(alice, json!({"type": "typing", "threadId": "T"}));
    sim.drive_for(ms(4999));
    assert_eq!(
        sim.take_json(bob),
        [typing("alice", true)],
        "the refresh was coalesced, and moved the expiry"
    );
    sim.drive_for(ms(1));
    assert_eq!(sim.take_json(bob), [typing("alice", false)]);
}

#[test]
fn typing_false_is_forwarded_at_once_and_a_message_ends_typing() {
    let mut sim = Sim::new();
    let (alice, bob) = alice_and_bob_in_t(&mut sim);
    sim.send(alice, json!({"type": "typing", "threadId": "T"}));
    sim.send(
        alice,
        json!({"type": "typing", "threadId": "T", "typing": false}),
    );
    sim.drive();
    assert_eq!(
        sim.take_json(bob),
        [typing("alice", true), typing("alice", false)]
    );

    sim.send(alice, json!({"type": "typing", "threadId": "T"}));
    sim.send(
        alice,
        json!({"type": "send_message", "threadId": "T", "message": "done"}),
    );
    sim.drive();
    assert_eq!(sim.kinds(bob), ["typing", "typing", "message"]);
    sim.drive_for(secs(6));
    assert_eq!(sim.take(bob), [], "no late expiry after the message");
}

#[test]
fn a_typist_who_disconnects_stops_typing() {
    let mut sim = Sim::new();
    let (alice, bob) = alice_and_bob_in_t(&mut sim);
    sim.send(alice, json!({"type": "typing", "threadId": "T"}));
    sim.drive();
    sim.close(alice);
    sim.drive();
    assert_eq!(
        sim.take_json(bob)[1..],
        [
            typing("alice", false),
            json!({"type": "user_disconnected", "userId": "alice"})
        ]
    );
}

#[test]
fn typing_outside_the_thread_is_forbidden() {
    let mut sim = Sim::new();
    let (_, bob) = alice_and_bob_in_t(&mut sim);
    let mallory = sim.connect("mallory");
    sim.send(
        mallory,
        json!({"type": "typing", "threadId": "T", "requestId": 3}),
    );
    sim.drive();
    sim.expect_error(mallory, "forbidden", Some(3));
    assert_eq!(sim.take(bob), []);
}

#[test]
fn whoever_saw_typing_true_sees_it_end_even_after_leaving_the_thread() {
    let mut sim = Sim::new();
    sim.site_thread("T", &["alice", "bob", "carol"]);
    let alice = sim.connect("alice");
    let carol = sim.connect("carol");
    sim.send(alice, json!({"type": "typing", "threadId": "T"}));
    sim.drive();
    assert_eq!(sim.take_json(carol), [typing("alice", true)]);
    // carol is removed on the site; alice's message refreshes the cache without her.
    sim.site_remove("T", "carol");
    sim.send(
        alice,
        json!({"type": "send_message", "threadId": "T", "message": "bye carol"}),
    );
    sim.drive();
    assert_eq!(
        sim.take_json(carol),
        [typing("alice", false)],
        "no message, but the typing ends"
    );
}
