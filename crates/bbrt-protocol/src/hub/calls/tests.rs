//! The call table's indexes: by party, local connection and device node.

use super::*;
use crate::ids::testing::user;

fn node(s: &str) -> NodeId {
    NodeId::new(s).expect("a valid id")
}

fn device(n: &str, conn: u64) -> DeviceRef {
    DeviceRef {
        node: node(n),
        conn,
    }
}

/// A call from alice (connection 1 on `caller_node`) to bob, ringing `ringing` here.
fn ringing_call(id: &str, caller_node: &str, ringing: &[u64]) -> (CallId, Call) {
    let id = CallId::new(id).expect("a valid id");
    let call = Call {
        snapshot: CallSnapshot {
            call: id.clone(),
            thread: ThreadId::new("t1").expect("a valid id"),
            caller: user("alice"),
            caller_device: device(caller_node, 1),
            callee: user("bob"),
        },
        callee_device: None,
        ringing: ringing.iter().map(|c| ConnId(*c)).collect(),
        orphaned: None,
    };
    (id, call)
}

fn ids(calls: &Calls, u: &str) -> Vec<CallId> {
    calls.of_user(&user(u)).map(|(id, _)| id.clone()).collect()
}

#[test]
fn a_call_is_found_by_its_parties_and_its_local_connections() {
    let mut calls = Calls::new(node("n1"));
    let (id, call) = ringing_call("n1-1", "n1", &[2, 3]);
    calls.insert(id.clone(), call);
    assert_eq!(ids(&calls, "alice"), vec![id.clone()]);
    assert_eq!(ids(&calls, "bob"), vec![id.clone()]);
    assert!(ids(&calls, "carol").is_empty());
    for conn in [1, 2, 3] {
        assert_eq!(calls.of_conn(ConnId(conn)), vec![id.clone()], "conn {conn}");
    }
    assert!(calls.of_conn(ConnId(4)).is_empty());
}

#[test]
fn a_remote_callers_device_is_not_a_local_connection() {
    let mut calls = Calls::new(node("n1"));
    let (id, call) = ringing_call("n2-1", "n2", &[2]);
    calls.insert(id.clone(), call);
    assert!(calls.of_conn(ConnId(1)).is_empty(), "connection 1 is on n2");
    assert_eq!(calls.of_conn(ConnId(2)), vec![id]);
}

#[test]
fn the_connection_index_follows_answers_and_rebinds() {
    let mut calls = Calls::new(node("n1"));
    let (id, call) = ringing_call("n1-1", "n1", &[2, 3]);
    calls.insert(id.clone(), call);
    // Connection 3 answers: 2 stops ringing.
    calls.update(&id, |c| {
        c.callee_device = Some(device("n1", 3));
        c.ringing.clear();
    });
    assert!(calls.of_conn(ConnId(2)).is_empty());
    assert_eq!(calls.of_conn(ConnId(3)), vec![id.clone()]);
    // Alice resumes from connection 5 after connection 1 went away.
    calls.update(&id, |c| c.snapshot.caller_device = device("n1", 5));
    assert!(calls.of_conn(ConnId(1)).is_empty());
    assert_eq!(calls.of_conn(ConnId(5)), vec![id.clone()]);
    assert!(calls.remove(&id).is_some());
    assert!(
        calls.is_empty(),
        "no index entry outlives its call: {calls:?}"
    );
}

#[test]
fn a_users_calls_come_in_id_order() {
    let mut calls = Calls::new(node("n1"));
    for id in ["n1-3", "n1-1", "n1-2"] {
        let (id, call) = ringing_call(id, "n1", &[]);
        calls.insert(id, call);
    }
    let order: Vec<String> = ids(&calls, "bob").iter().map(|i| i.to_string()).collect();
    assert_eq!(order, ["n1-1", "n1-2", "n1-3"]);
    let (id, call) = ringing_call("n1-2", "n1", &[7]);
    calls.insert(id, call);
    assert_eq!(ids(&calls, "bob").len(), 3, "the same id replaces the call");
    assert_eq!(calls.of_conn(ConnId(7)).len(), 1);
}

#[test]
fn a_call_is_found_by_the_nodes_of_its_devices() {
    let mut calls = Calls::new(node("n1"));
    let of = |calls: &Calls, n: &str| -> Vec<CallId> {
        calls.of_node(&node(n)).map(|(id, _)| id.clone()).collect()
    };
    let (id, call) = ringing_call("n2-1", "n2", &[3]);
    calls.insert(id.clone(), call);
    assert_eq!(of(&calls, "n2"), vec![id.clone()]);
    assert!(of(&calls, "n1").is_empty(), "a ringing device is not bound");
    calls.update(&id, |c| {
        c.callee_device = Some(device("n1", 3));
        c.ringing.clear();
    });
    assert_eq!(of(&calls, "n1"), vec![id.clone()], "answered on n1");
    calls.update(&id, |c| c.snapshot.caller_device = device("n3", 9));
    assert!(of(&calls, "n2").is_empty(), "the caller moved to n3");
    assert_eq!(of(&calls, "n3"), vec![id.clone()]);
    assert!(calls.remove(&id).is_some());
    assert!(
        calls.is_empty(),
        "no index entry outlives its call: {calls:?}"
    );
}
