//! Site events (`Input::SiteEvent`): the frames they become, on every node, and each site
//! message delivered once whichever of bbrt's POST answer and the event comes first.

use serde_json::{Value, json};

use super::sim::*;
use crate::hub::Input;
use crate::ids::ConnId;
use crate::site_event::SiteEvent;

const ID: &str = "0123456789abcdef0123456789abcdef";

pub(super) fn event(kind: &str, data: Value) -> Input {
    let body = json!({"id": ID, "type": kind, "site": "https://s.example", "occurred_at": 1, "data": data});
    Input::SiteEvent(SiteEvent::decode(body.to_string().as_bytes(), ID).expect("a valid event"))
}

/// `message.sent` as the plugin reports it: message 41 by 2 in thread 7 with 3 (and 4).
fn sent(message_id: u64, key: Option<&str>, participants: &[u64]) -> Input {
    event(
        "message.sent",
        json!({"thread_id": 7, "message_id": message_id, "sender_id": 2, "new_thread": false,
               "subject": {"raw": "s", "rendered": "s"},
               "message": {"raw": "from the website", "rendered": "<p>from the website</p>"},
               "date_sent": "2026-12-01T10:00:00Z", "client_message_id": key,
               "participants": participants,
               "unread": participants.iter().filter(|p| **p != 2)
                   .map(|p| json!({"user_id": p, "thread_unread": 1, "inbox_unread": 10 + p}))
                   .collect::<Vec<_>>()}),
    )
}

/// Two nodes: 2 on node 0 (and a second device on node 1), 3 on node 1, 5 (not in the
/// thread) on node 0.
fn two_nodes() -> (Sim, ConnId, ConnId, ConnId, ConnId) {
    let mut sim = Sim::cluster(2);
    sim.site_thread("7", &["2", "3"]);
    let a = sim.connect_on(0, "2");
    let a2 = sim.connect_on(1, "2");
    let b = sim.connect_on(1, "3");
    let outsider = sim.connect_on(0, "5");
    sim.clear();
    (sim, a, a2, b, outsider)
}

fn messages(sim: &mut Sim, conn: ConnId) -> Vec<Value> {
    sim.take_json(conn)
        .into_iter()
        .filter(|v| v["type"] == "message")
        .collect()
}

#[test]
fn a_message_sent_on_the_website_reaches_every_participant_on_every_node_with_their_counts() {
    let (mut sim, a, a2, b, outsider) = two_nodes();
    sim.handle(0, sent(41, None, &[2, 3]));
    sim.drive();
    let mut base = json!({"type": "message", "id": "41", "threadId": "7", "senderId": "2",
                      "message": "from the website", "html": "<p>from the website</p>",
                      "sentAt": "2026-12-01T10:00:00Z"});
    // Scaled out, the coordinator counts it: every copy carries the same position.
    base["position"] = json!({"offset": 1, "epoch": "i1.s1"});
    let mut for_b = base.clone();
    for_b["unread"] = json!({"thread": 1, "total": 13});
    assert_eq!(
        sim.take_json(b),
        [for_b],
        "the recipient, on the other node"
    );
    assert_eq!(
        sim.take_json(a),
        [base.clone()],
        "the sender's devices: no counts"
    );
    assert_eq!(sim.take_json(a2), [base]);
    assert_eq!(sim.take(outsider), []);
}

#[test]
fn the_same_message_reported_twice_is_delivered_once() {
    let (mut sim, _a, _a2, b, _) = two_nodes();
    sim.handle(1, sent(41, None, &[2, 3]));
    sim.drive();
    assert_eq!(messages(&mut sim, b).len(), 1);
    sim.handle(1, sent(41, None, &[2, 3]));
    sim.drive();
    assert_eq!(messages(&mut sim, b), Vec::<Value>::new());
    assert_eq!(sim.hub(1).stats().site_messages_skipped, 1);
}

#[test]
fn bbrts_own_send_is_delivered_once_when_its_answer_comes_first() {
    let (mut sim, a, _a2, b, _) = two_nodes();
    sim.send(
        a,
        json!({"type": "send_message", "threadId": "7", "message": "by bbrt", "clientMessageId": "k1"}),
    );
    sim.drive();
    let got = messages(&mut sim, b);
    assert_eq!(got.len(), 1);
    assert_eq!(messages(&mut sim, a).len(), 1);
    let id: u64 = got[0]["id"].as_str().unwrap().parse().unwrap();
    // The site's report of it, with the key bbrt sent it with, on either node.
    for node in [0, 1] {
        sim.handle(node, sent(id, Some("k1"), &[2, 3]));
        sim.drive();
    }
    assert_eq!(messages(&mut sim, b), Vec::<Value>::new());
    assert_eq!(messages(&mut sim, a), Vec::<Value>::new());
}

#[test]
fn bbrts_own_send_is_delivered_once_when_the_event_comes_first() {
    let (mut sim, a, _a2, b, _) = two_nodes();
    sim.site_latency("send", secs(2));
    sim.send(
        a,
        json!({"type": "send_message", "threadId": "7", "message": "by bbrt", "clientMessageId": "k2"}),
    );
    sim.drive_for(ms(500));
    // The site stored it and fired its hook before bbrt heard the POST's answer.
    sim.handle(1, sent(99, Some("k2"), &[2, 3]));
    sim.drive_for(ms(100));
    assert_eq!(
        messages(&mut sim, b),
        Vec::<Value>::new(),
        "not from the event"
    );
    sim.drive();
    assert_eq!(messages(&mut sim, b).len(), 1, "from bbrt's answer");
}

#[test]
fn a_send_without_a_key_is_not_delivered_again_by_its_event_on_the_same_node() {
    let (mut sim, a, _a2, b, _) = two_nodes();
    sim.send(
        a,
        json!({"type": "send_message", "threadId": "7", "message": "old route"}),
    );
    sim.drive();
    let got = messages(&mut sim, b);
    let id: u64 = got[0]["id"].as_str().unwrap().parse().unwrap();
    sim.handle(0, sent(id, None, &[2, 3]));
    sim.drive();
    assert_eq!(messages(&mut sim, b), Vec::<Value>::new());
}

#[test]
fn a_read_on_the_website_reaches_every_participant_and_the_reader_has_their_counts() {
    let (mut sim, a, a2, b, outsider) = two_nodes();
    sim.handle(
        0,
        event(
            "thread.read",
            json!({"thread_id": 7, "user_id": 3, "participants": [2, 3],
                   "unread": [{"user_id": 3, "thread_unread": 0, "inbox_unread": 2}]}),
        ),
    );
    sim.drive();
    let read = json!({"type": "read", "threadId": "7", "userId": "3"});
    assert_eq!(sim.take_json(a), [read.clone()]);
    assert_eq!(sim.take_json(a2), [read.clone()]);
    let mut own = read;
    own["unread"] = json!({"thread": 0, "total": 2});
    assert_eq!(sim.take_json(b), [own]);
    assert_eq!(sim.take(outsider), []);
}

#[test]
fn a_suspended_or_deleted_member_loses_every_connection_on_every_node() {
    for kind in ["member.suspended", "member.deleted"] {
        let (mut sim, a, a2, b, outsider) = two_nodes();
        sim.handle(1, event(kind, json!({"user_id": 2})));
        sim.drive();
        assert_eq!(sim.close_code(a), Some(4001), "{kind}: on the other node");
        assert_eq!(
            sim.close_code(a2),
            Some(4001),
            "{kind}: on the event's node"
        );
        assert_eq!(sim.close_code(b), None);
        assert_eq!(sim.close_code(outsider), None);
        sim.handle(1, event("member.unsuspended", json!({"user_id": 3})));
        sim.drive();
        assert_eq!(sim.close_code(b), None, "unsuspending changes nothing");
    }
}

#[test]
fn a_removed_participant_hears_nothing_more_of_the_thread() {
    let (mut sim, a, _a2, b, _) = two_nodes();
    for conn in [a, b] {
        sim.send(conn, json!({"type": "join_thread", "threadId": "7"}));
        sim.drive();
    }
    sim.clear();
    sim.site_remove("7", "3");
    sim.handle(
        0,
        event(
            "participants.removed",
            json!({"thread_id": 7, "group_id": 9, "user_ids": [3], "participants": [2]}),
        ),
    );
    sim.drive();
    assert_eq!(sim.kinds(b), ["thread_left"]);
    sim.send(a, json!({"type": "typing", "threadId": "7"}));
    sim.drive();
    assert_eq!(sim.take(b), [], "no typing on the other node either");
}

#[test]
fn a_suspended_member_is_refused_on_every_node_until_unsuspended() {
    let (mut sim, _a, _a2, _b, _) = two_nodes();
    sim.handle(0, event("member.suspended", json!({"user_id": 2})));
    sim.drive();
    for node in [0, 1] {
        let c = sim.open_on(node, ip(9), None);
        sim.send(
            c,
            json!({"type": "user_connected", "userId": "2", "requestId": 1}),
        );
        sim.drive();
        sim.expect_error(c, "unauthenticated", Some(1));
    }
    sim.handle(1, event("member.unsuspended", json!({"user_id": 2})));
    sim.drive();
    for node in [0, 1] {
        sim.connect_on(node, "2");
    }
}

/// One node: 2 and 3 in thread 7, both joined, 2 calling 3 (ringing).
fn calling() -> (Sim, ConnId, ConnId) {
    let mut sim = Sim::new();
    sim.site_thread("7", &["2", "3"]);
    let a = sim.connect("2");
    let b = sim.connect("3");
    for conn in [a, b] {
        sim.send(conn, json!({"type": "join_thread", "threadId": "7"}));
        sim.drive();
    }
    sim.clear();
    sim.send(
        a,
        json!({"type": "call_initiated", "recipientId": "3", "threadId": "7"}),
    );
    sim.drive();
    assert_eq!(sim.kinds(b), ["call_initiated"]);
    sim.clear();
    (sim, a, b)
}

fn call_ended(call: &str) -> Value {
    json!({"type": "call_ended", "callId": call, "threadId": "7", "reason": "thread_closed"})
}

#[test]
fn a_removed_participant_is_told_and_their_call_in_the_thread_ends() {
    let (mut sim, a, b) = calling();
    let call = "n1-1";
    sim.site_remove("7", "3");
    sim.handle(
        0,
        event(
            "participants.removed",
            json!({"thread_id": 7, "group_id": 9, "user_ids": [3], "participants": [2]}),
        ),
    );
    sim.drive();
    let left = json!({"type": "thread_left", "threadId": "7", "userIds": ["3"]});
    assert_eq!(sim.take_json(b), [call_ended(call), left.clone()]);
    assert_eq!(sim.take_json(a), [call_ended(call), left]);
    sim.send(a, json!({"type": "typing", "threadId": "7"}));
    sim.send(
        a,
        json!({"type": "send_message", "threadId": "7", "message": "after"}),
    );
    sim.drive();
    assert_eq!(
        sim.kinds(b),
        Vec::<&str>::new(),
        "nothing more of the thread"
    );
}

#[test]
fn a_deleted_thread_is_announced_its_calls_end_and_nothing_more_of_it_is_heard() {
    let (mut sim, a, b) = calling();
    sim.site_remove("7", "2");
    sim.site_remove("7", "3");
    sim.handle(
        0,
        event(
            "thread.deleted",
            json!({"thread_id": 7, "participants": [2, 3]}),
        ),
    );
    sim.drive();
    let deleted = json!({"type": "thread_deleted", "threadId": "7", "everyone": true});
    for conn in [a, b] {
        assert_eq!(sim.take_json(conn), [call_ended("n1-1"), deleted.clone()]);
    }
    sim.send(a, json!({"type": "typing", "threadId": "7"}));
    sim.drive();
    assert_eq!(sim.take(b), []);
}

#[test]
fn a_thread_deleted_for_one_member_leaves_only_their_connections() {
    let (mut sim, a, a2, b, _) = two_nodes();
    sim.handle(
        0,
        event(
            "thread.deleted_for_member",
            json!({"thread_id": 7, "user_id": 2, "unread": []}),
        ),
    );
    sim.drive();
    let deleted = json!({"type": "thread_deleted", "threadId": "7", "everyone": false});
    assert_eq!(sim.take_json(a), [deleted.clone()]);
    assert_eq!(
        sim.take_json(a2),
        [deleted],
        "their device on the other node"
    );
    assert_eq!(sim.take(b), []);
}

#[test]
fn messages_the_site_blanked_are_announced_to_every_participant() {
    let (mut sim, a, a2, b, outsider) = two_nodes();
    sim.handle(
        1,
        event(
            "messages.deleted",
            json!({"thread_id": 7, "user_id": 2, "message_ids": [40, 41], "participants": [2, 3]}),
        ),
    );
    sim.drive();
    let deleted = json!({"type": "deleted", "threadId": "7", "userId": "2", "ids": ["40", "41"]});
    for conn in [a, a2, b] {
        assert_eq!(sim.take_json(conn), [deleted.clone()]);
    }
    assert_eq!(sim.take(outsider), []);
}

fn command(kind: &str, data: Value) -> Input {
    let body = json!({"id": ID, "type": kind, "site": "https://s.example", "occurred_at": 1, "data": data});
    match crate::site_event::SiteApiRequest::decode(body.to_string().as_bytes(), ID) {
        Ok(crate::site_event::SiteApiRequest::Command(c)) => Input::SiteCommand(c),
        other => panic!("not a command: {other:?}"),
    }
}

fn publish_data(message_id: u64, only: Option<&[u64]>) -> Value {
    json!({"message": {"thread_id": 7, "message_id": message_id, "sender_id": 2, "new_thread": false,
                       "subject": {"raw": "s", "rendered": "s"},
                       "message": {"raw": "from a backend", "rendered": ""},
                       "date_sent": "2026-12-01T10:00:00Z", "client_message_id": null,
                       "participants": [2, 3], "unread": []},
           "user_ids": only})
}

#[test]
fn a_backend_publishes_to_one_user_or_to_the_thread_and_disconnects_a_user() {
    let (mut sim, a, a2, b, outsider) = two_nodes();
    sim.handle(0, command("publish", publish_data(50, Some(&[3]))));
    sim.drive();
    let got = messages(&mut sim, b);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["message"], "from a backend");
    assert!(
        got[0].get("html").is_none(),
        "an empty rendering is no html"
    );
    assert_eq!(
        messages(&mut sim, a),
        Vec::<Value>::new(),
        "to that user only"
    );
    sim.handle(1, command("publish", publish_data(51, None)));
    sim.drive();
    for conn in [a, a2, b] {
        assert_eq!(messages(&mut sim, conn).len(), 1, "to the thread");
    }
    assert_eq!(sim.take(outsider), []);

    sim.handle(1, command("disconnect", json!({"user_id": 2})));
    sim.drive();
    assert_eq!(sim.close_code(a), Some(4001));
    assert_eq!(sim.close_code(a2), Some(4001));
    assert_eq!(sim.close_code(b), None);
    sim.connect_on(0, "2");
}
