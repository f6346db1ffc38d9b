//! Who gets ICE servers: verified users, at a bounded rate; ringing devices just before
//! `call_initiated`. The minting itself is the server's (`crates/bbrt-server/src/ice.rs`).

use serde_json::json;

use super::sim::*;

#[test]
fn a_verified_user_gets_ice_servers_with_the_request_id() {
    let mut sim = Sim::new();
    let alice = sim.connect("alice");
    sim.clear();
    sim.send(alice, json!({"type": "get_ice_servers", "requestId": "r1"}));
    sim.drive();
    let frames = sim.take_json(alice);
    assert_eq!(frames.len(), 1, "{frames:#?}");
    assert_eq!(frames[0]["type"], "ice_servers");
    assert_eq!(frames[0]["requestId"], "r1");
    assert!(frames[0]["iceServers"].is_array());
}

#[test]
fn an_anonymous_connection_gets_no_ice_servers() {
    let mut sim = Sim::new();
    let anonymous = sim.open();
    sim.send(
        anonymous,
        json!({"type": "get_ice_servers", "requestId": 7}),
    );
    sim.drive();
    sim.expect_error(anonymous, "unauthenticated", Some(7));
    assert!(sim.take(anonymous).is_empty());
}

#[test]
fn ice_requests_are_rate_limited_per_user_across_devices() {
    let mut sim = Sim::with(|c| c.ice_requests_per_minute = 2);
    let a1 = sim.connect("alice");
    let a2 = sim.connect("alice");
    let bob = sim.connect("bob");
    sim.clear();
    sim.send(a1, json!({"type": "get_ice_servers", "requestId": 1}));
    sim.send(a2, json!({"type": "get_ice_servers", "requestId": 2}));
    sim.send(a1, json!({"type": "get_ice_servers", "requestId": 3}));
    sim.send(bob, json!({"type": "get_ice_servers", "requestId": 4}));
    sim.drive();
    let a1_frames = sim.take_json(a1);
    assert_eq!(a1_frames.len(), 2, "{a1_frames:#?}");
    assert_eq!(a1_frames[0]["type"], "ice_servers");
    assert_eq!(a1_frames[1]["type"], "error");
    assert_eq!(a1_frames[1]["code"], "rate_limited");
    assert_eq!(a1_frames[1]["requestId"], 3);
    assert_eq!(sim.kinds(a2), ["ice_servers"]);
    assert_eq!(
        sim.kinds(bob),
        ["ice_servers"],
        "another user has a budget of their own"
    );
    sim.drive_for(secs(61));
    sim.send(a1, json!({"type": "get_ice_servers", "requestId": 5}));
    sim.drive();
    assert_eq!(sim.kinds(a1), ["ice_servers"], "the window moved on");
}

#[test]
fn ringing_devices_get_ice_servers_just_before_call_initiated() {
    let mut sim = Sim::new();
    sim.site_thread("T", &["alice", "bob"]);
    let alice = sim.connect("alice");
    let b1 = sim.connect("bob");
    let b2 = sim.connect("bob");
    for conn in [alice, b1, b2] {
        sim.send(conn, json!({"type": "join_thread", "threadId": "T"}));
        sim.drive();
    }
    sim.clear();
    sim.debug_log = Some(Vec::new());
    sim.send(
        alice,
        json!({"type": "call_initiated", "recipientId": "bob", "threadId": "T"}),
    );
    sim.drive();
    assert_eq!(sim.ice_ringing, [(vec![b1, b2], uid("bob"))]);
    let log = sim.debug_log.take().unwrap();
    let ice = log
        .iter()
        .position(|l| l.starts_with("IceServers"))
        .unwrap();
    let ring = log
        .iter()
        .position(|l| l.starts_with("Send") && l.contains("call_initiated"))
        .unwrap();
    assert!(ice < ring, "{log:#?}");
    assert_eq!(
        sim.kinds(alice),
        Vec::<&str>::new(),
        "the caller asks for its own"
    );
    // A device of bob's that connects while it rings gets them too.
    let b3 = sim.connect("bob");
    sim.drive();
    assert_eq!(sim.ice_ringing.last(), Some(&(vec![b3], uid("bob"))));
}

#[test]
fn a_device_ringing_on_another_node_gets_ice_servers_from_its_own_node() {
    let mut sim = Sim::cluster(2);
    sim.site_thread("T", &["alice", "bob"]);
    let alice = sim.connect_on(0, "alice");
    let bob = sim.connect_on(1, "bob");
    for conn in [alice, bob] {
        sim.send(conn, json!({"type": "join_thread", "threadId": "T"}));
        sim.drive();
    }
    sim.clear();
    sim.send(
        alice,
        json!({"type": "call_initiated", "recipientId": "bob", "threadId": "T"}),
    );
    sim.drive();
    // The sim checks the minting node holds the connection.
    assert_eq!(sim.ice_ringing, [(vec![bob], uid("bob"))]);
    assert_eq!(sim.kinds(bob), ["call_initiated"]);
}
