//! Node identity (two processes given one node id) and the participant cache forgetting.

use serde_json::json;

use super::sim::*;
use crate::hub::{BrokerEvent, BrokerMessage, Input};
use crate::ids::{InstanceId, NodeId};

/// Two processes with the same node id `n1` (instances `i1`, `i2`): alice on the first,
/// bob on the second, both joined `T`.
fn two_processes_one_id() -> (Sim, crate::ids::ConnId, crate::ids::ConnId) {
    let mut sim = Sim::with_config(2, |c| {
        c.node_id = NodeId::new("n1").expect("valid");
    });
    let alice = sim.connect_on(0, "alice");
    let bob = sim.connect_on(1, "bob");
    for conn in [alice, bob] {
        sim.send(conn, json!({"type": "join_thread", "threadId": "T"}));
        sim.drive();
    }
    sim.clear();
    (sim, alice, bob)
}

#[test]
fn two_processes_with_one_node_id_still_hear_each_other() {
    let (mut sim, alice, bob) = two_processes_one_id();
    sim.send(
        alice,
        json!({"type": "send_message", "threadId": "T", "message": "across"}),
    );
    sim.drive();
    assert_eq!(sim.kinds(alice), ["message"]);
    assert_eq!(sim.kinds(bob), ["message"], "not dropped as n1's own");

    sim.send(bob, json!({"type": "typing", "threadId": "T"}));
    sim.drive();
    assert_eq!(
        sim.take_json(alice),
        [json!({"type": "typing", "threadId": "T", "userId": "bob", "typing": true})]
    );
    assert_eq!(sim.online(0), ["alice", "bob"]);
    assert_eq!(sim.online(1), ["alice", "bob"]);
    sim.close(bob);
    sim.drive();
    assert_eq!(sim.online(0), ["alice"]);
}

#[test]
fn a_process_sharing_the_node_id_is_reported_by_both() {
    let (sim, _, _) = two_processes_one_id();
    let first = sim
        .hub(0)
        .node_id_conflict()
        .expect("the first process noticed");
    assert_eq!(first.instance.as_str(), "i2");
    let second = sim
        .hub(1)
        .node_id_conflict()
        .expect("the second process noticed");
    assert_eq!(second.instance.as_str(), "i1");
    assert!(sim.hub(0).stats().node_id_conflict_publications > 0);

    // Distinct ids: nothing to report.
    let mut sim = Sim::cluster(2);
    let alice = sim.connect_on(0, "alice");
    let _bob = sim.connect_on(1, "bob");
    sim.send(alice, json!({"type": "join_thread", "threadId": "T"}));
    sim.drive();
    assert!(sim.hub(0).node_id_conflict().is_none());
    assert!(sim.hub(1).node_id_conflict().is_none());
    assert_eq!(sim.hub(0).stats().node_id_conflict_publications, 0);
}

#[test]
fn a_process_ignores_only_its_own_instance() {
    let mut sim = Sim::cluster(2);
    let _alice = sim.connect_on(0, "alice");
    let from = |instance: &str| {
        Input::Broker(BrokerMessage {
            origin: NodeId::new("n1").expect("valid"),
            instance: InstanceId::new(instance).expect("valid"),
            event: BrokerEvent::Presence {
                user: uid("ghost"),
                online: true,
            },
        })
    };
    // Its own publication, come back through the broker.
    sim.handle(0, from("i1"));
    assert_eq!(sim.online(0), ["alice"]);
    assert!(sim.hub(0).node_id_conflict().is_none());
    // Another process that was given the same node id.
    sim.handle(0, from("i9"));
    assert_eq!(sim.online(0), ["alice", "ghost"]);
    assert_eq!(
        sim.hub(0).node_id_conflict().map(|c| c.instance.as_str()),
        Some("i9")
    );
    // Its goodbye (a node down with this node's own id) takes what it said back.
    sim.handle(
        0,
        Input::NodeDown {
            node: NodeId::new("n1").expect("valid"),
        },
    );
    assert_eq!(sim.online(0), ["alice"]);
    assert!(sim.hub(0).node_id_conflict().is_none());
}

#[test]
fn call_events_of_a_process_sharing_the_node_id_are_not_applied() {
    // Its calls and devices are named like this process's own: applying them could relay a
    // frame meant for its connection to ours. Everything else still crosses.
    let (mut sim, alice, bob) = two_processes_one_id();
    sim.send(
        alice,
        json!({"type": "call_initiated", "recipientId": "bob", "threadId": "T"}),
    );
    sim.drive();
    assert!(
        !sim.kinds(bob).contains(&"call_initiated"),
        "a call ring from the other process is not applied"
    );
    assert_eq!(sim.hub(1).stats().calls, 0);
}

/// A cluster of two whose participants TTL is 10 s.
fn short_ttl_cluster() -> Sim {
    Sim::with_config(2, |c| c.participants_ttl = secs(10))
}

#[test]
fn the_participant_cache_stays_flat_under_many_short_lived_threads() {
    let mut sim = short_ttl_cluster();
    let mut sizes = Vec::new();
    for i in 0..3000 {
        let node = i % 2;
        let conn = sim.connect_on(node, &format!("u{i}"));
        let thread = format!("T{i}");
        sim.send(conn, json!({"type": "join_thread", "threadId": thread}));
        sim.drive();
        sim.send(
            conn,
            json!({"type": "send_message", "threadId": thread, "message": "hi"}),
        );
        sim.drive();
        sim.close(conn);
        sim.drive_for(ms(50));
        if i % 100 == 99 {
            sizes.push([0, 1].map(|n| sim.hub(n).stats().cached_threads));
        }
    }
    // 20 threads a second, kept for a TTL (10 s) and swept within a quarter TTL more: a
    // few hundred at most on either node, and no more at the end than at the start.
    let half = sizes.len() / 2;
    let early = sizes[..half].iter().flatten().max().copied().unwrap_or(0);
    let late = sizes[half..].iter().flatten().max().copied().unwrap_or(0);
    assert!(late <= 300, "cache sizes {sizes:?}");
    assert!(late <= early + early / 4, "cache sizes {sizes:?}");
    // Once idle for a TTL and a sweep, nothing is left.
    sim.drive_for(secs(30));
    for n in 0..2 {
        assert_eq!(sim.hub(n).leftovers(), Vec::<String>::new(), "node {n}");
    }
}

#[test]
fn a_joined_thread_is_kept_however_old_and_forgotten_after_the_last_leave() {
    let mut sim = short_ttl_cluster();
    let alice = sim.connect_on(0, "alice");
    sim.send(alice, json!({"type": "join_thread", "threadId": "T"}));
    sim.drive();
    sim.drive_for(secs(60));
    assert_eq!(sim.hub(0).stats().cached_threads, 1, "joined: kept");
    // The other node only heard of it, and forgot it.
    assert_eq!(sim.hub(1).stats().cached_threads, 0);
    sim.send(alice, json!({"type": "leave_thread", "threadId": "T"}));
    sim.drive();
    sim.drive_for(secs(15));
    sim.clear();
    assert_eq!(
        sim.hub(0).stats().cached_threads,
        0,
        "left and expired: gone"
    );
    // Typing needs the site again, which answers as before.
    sim.send(
        alice,
        json!({"type": "typing", "threadId": "T", "requestId": 1}),
    );
    sim.drive();
    assert_eq!(sim.kinds(alice), ["ack"]);
}

#[test]
fn a_publication_of_a_version_before_instance_ids_is_applied() {
    let mut sim = Sim::cluster(2);
    let _alice = sim.connect_on(0, "alice");
    let old = br#"{"origin":"n2","event":{"kind":"presence","user":"bob","online":true}}"#;
    let message = BrokerMessage::from_json(old).expect("still parses");
    assert_eq!(message.instance.as_str(), BrokerMessage::UNKNOWN_INSTANCE);
    sim.handle(0, Input::Broker(message));
    assert_eq!(sim.online(0), ["alice", "bob"]);
}
