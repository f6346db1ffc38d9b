//! Every row of DESIGN.md's table "The seed's examples, sent verbatim to the embedded
//! default", with the frames exactly as the seed document prints them.

use serde_json::json;

use super::sim::*;
use crate::hub::PresenceScope;

const USER_CONNECTED: &str = r#"{
"type": "user_connected",
"userId": "USER_ID"
}"#;

const JOIN_THREAD: &str = r#"{
"type": "join_thread",
"threadId": "THREAD_ID"
}"#;

const SEND_MESSAGE: &str = r#"{
"type": "send_message",
"recipientId": "RECIPIENT_ID",
"message": "Hello, this is a message.",
"threadId": "THREAD_ID",
"token": "YOUR_API_TOKEN"
}"#;

const TYPING: &str = r#"{
"type": "typing",
"threadId": "THREAD_ID"
}"#;

const CALL_INITIATED: &str = r#"{
"type": "call_initiated",
"senderId": "SENDER_ID",
"recipientId": "RECIPIENT_ID",
"threadId": "THREAD_ID"
}"#;

const OFFER: &str = r#"{
"type": "offer",
"offer": "OFFER_SDP",
"recipientId": "RECIPIENT_ID",
"senderId": "SENDER_ID",
"threadId": "THREAD_ID"
}"#;

const ANSWER: &str = r#"{
"type": "answer",
"answer": "ANSWER_SDP",
"recipientId": "RECIPIENT_ID",
"senderId": "SENDER_ID",
"threadId": "THREAD_ID"
}"#;

const ICE_CANDIDATE: &str = r#"{
"type": "ice-candidate",
"candidate": "ICE_CANDID ATE",
"recipientId": "RECIPIENT_ID",
"senderId": "SENDER_ID",
"threadId": "THREAD_ID"
}"#;

/// The seed's React example's two frames, as `JSON.stringify` writes them.
const REACT_SEND: &str = r#"{"type":"send_message","recipientId":"RECIPIENT_ID","message":"Hello, this is a message.","threadId":"THREAD_ID","token":"YOUR_API_TOKEN"}"#;
const REACT_TYPING: &str = r#"{"type":"typing","threadId":"THREAD_ID"}"#;

/// A connection of USER_ID that sent the seed's `user_connected` and `join_thread`.
fn user_in_thread(sim: &mut Sim) -> crate::ids::ConnId {
    let user = sim.open();
    sim.send_text(user, USER_CONNECTED);
    sim.send_text(user, JOIN_THREAD);
    sim.drive();
    user
}

#[test]
fn row_user_connected_identifies_the_connection_with_presence_per_scope() {
    let mut sim = Sim::new();
    sim.site_thread("THREAD_ID", &["USER_ID", "RECIPIENT_ID"]);
    let recipient = sim.connect("RECIPIENT_ID");
    sim.send_text(recipient, JOIN_THREAD);
    let stranger = sim.connect("STRANGER");
    sim.drive();
    sim.clear();

    let user = sim.open();
    sim.send_text(user, USER_CONNECTED);
    sim.drive();
    assert_eq!(sim.hub(0).user_of(user), Some(&uid("USER_ID")));
    assert_eq!(
        sim.take(user),
        [],
        "the seed's user_connected asks for no answer"
    );
    assert_eq!(
        sim.take_json(recipient),
        [json!({"type": "user_connected", "userId": "USER_ID"})]
    );
    assert_eq!(
        sim.take(stranger),
        [],
        "scope threads: only who shares a joined thread"
    );

    let mut sim = Sim::with(|c| c.presence_scope = PresenceScope::All);
    let stranger = sim.connect("STRANGER");
    let user = sim.open();
    sim.send_text(user, USER_CONNECTED);
    sim.drive();
    assert_eq!(
        sim.take_json(stranger),
        [json!({"type": "user_connected", "userId": "USER_ID"})]
    );
}

#[test]
fn row_join_thread_answers_joined_and_makes_the_user_a_participant() {
    let mut sim = Sim::new();
    let user = user_in_thread(&mut sim);
    assert_eq!(
        sim.take_json(user),
        [
            json!({"type": "joined", "threadId": "THREAD_ID", "participants": [{"userId": "USER_ID", "online": true}],
                   "position": {"offset": 0, "epoch": "i1.1"}})
        ]
    );
    assert_eq!(
        sim.site.dev.participants_of(&tid("THREAD_ID")),
        Some([uid("USER_ID")].as_slice())
    );
}

#[test]
fn row_send_message_stores_and_delivers_to_the_thread_and_adds_the_recipient() {
    let mut sim = Sim::new();
    let user = user_in_thread(&mut sim);
    let recipient = sim.connect("RECIPIENT_ID");
    sim.clear();
    sim.send_text(user, SEND_MESSAGE);
    sim.drive();
    let message = json!({
        "type": "message", "id": "1", "threadId": "THREAD_ID", "senderId": "USER_ID",
        "message": "Hello, this is a message.", "sentAt": SENT_AT,
        "position": {"offset": 1, "epoch": "i1.1"},
    });
    assert_eq!(
        sim.take_json(user),
        [
            // USER_ID joined THREAD_ID, which it now shares with the online RECIPIENT_ID.
            json!({"type": "user_connected", "userId": "RECIPIENT_ID"}),
            message.clone(),
        ],
        "the sender's echo; no ack was asked for"
    );
    assert_eq!(sim.take_json(recipient), [message]);
    assert_eq!(
        sim.hub(0).user_of(user),
        Some(&uid("USER_ID")),
        "the non-dev token means the same user"
    );
    assert_eq!(
        sim.site.dev.participants_of(&tid("THREAD_ID")),
        Some([uid("USER_ID"), uid("RECIPIENT_ID")].as_slice())
    );
}

#[test]
fn row_typing_reaches_the_other_participants() {
    let mut sim = Sim::new();
    let user = user_in_thread(&mut sim);
    let recipient = sim.connect("RECIPIENT_ID");
    sim.send_text(recipient, JOIN_THREAD);
    sim.drive();
    sim.clear();
    sim.send_text(user, TYPING);
    sim.drive();
    assert_eq!(
        sim.take_json(recipient),
        [json!({"type": "typing", "threadId": "THREAD_ID", "userId": "USER_ID", "typing": true})]
    );
    assert_eq!(sim.take(user), []);
}

#[test]
fn row_call_frames_ignore_sender_id_and_report_the_offline_callee() {
    let mut sim = Sim::new();
    let user = user_in_thread(&mut sim);
    sim.send_text(user, SEND_MESSAGE);
    sim.drive();
    sim.clear();
    for frame in [CALL_INITIATED, OFFER, ANSWER, ICE_CANDIDATE] {
        sim.send_text(user, frame);
        sim.drive();
        assert_eq!(
            sim.take_json(user),
            [
                json!({"type": "error", "message": "Recipient is not connected", "code": "recipient_offline", "retryable": false})
            ],
            "{frame}"
        );
    }
    assert_eq!(
        sim.hub(0).user_of(user),
        Some(&uid("USER_ID")),
        "SENDER_ID changed nothing"
    );
}

#[test]
fn row_anything_then_ping_keeps_the_connection_and_answers_pong() {
    let mut sim = Sim::new();
    let user = user_in_thread(&mut sim);
    for frame in [
        SEND_MESSAGE,
        TYPING,
        CALL_INITIATED,
        OFFER,
        ANSWER,
        ICE_CANDIDATE,
        "{}",
        "nonsense",
    ] {
        sim.send_text(user, frame);
    }
    sim.drive();
    sim.clear();
    sim.send_text(user, r#"{"type": "ping"}"#);
    sim.drive();
    assert_eq!(sim.take_json(user), [json!({"type": "pong"})]);
    assert!(sim.closed(user).is_none());
}

#[test]
fn the_seed_react_page_works_anonymous_and_without_joining() {
    let mut sim = Sim::new();
    let page = sim.open();
    sim.send_text(page, REACT_SEND);
    sim.drive();
    let frames = sim.take_json(page);
    assert_eq!(frames.len(), 1);
    assert_eq!(
        frames[0]["type"], "message",
        "the React page shows its own message from the echo"
    );
    assert_eq!(frames[0]["message"], "Hello, this is a message.");
    // Its typing button; then another user of the thread sees it.
    let recipient = sim.connect("RECIPIENT_ID");
    sim.send_text(page, REACT_TYPING);
    sim.drive();
    assert_eq!(sim.kinds(recipient), ["typing"]);
}

#[test]
fn the_seed_flow_end_to_end_on_one_connection() {
    let mut sim = Sim::new();
    let user = sim.open();
    // Pipelined up to the send; the call buttons are pressed after the echo arrived.
    for frame in [USER_CONNECTED, JOIN_THREAD, SEND_MESSAGE, TYPING] {
        sim.send_text(user, frame);
    }
    sim.drive();
    for frame in [
        CALL_INITIATED,
        OFFER,
        ANSWER,
        ICE_CANDIDATE,
        r#"{"type":"ping"}"#,
    ] {
        sim.send_text(user, frame);
    }
    sim.drive_bounded(100);
    let frames = sim.take_json(user);
    let kinds: Vec<_> = frames.iter().map(|f| f["type"].as_str().unwrap()).collect();
    // USER_ID joined THREAD_ID, and hears where RECIPIENT_ID, added by the send, stands.
    assert_eq!(
        kinds,
        [
            "joined",
            "user_disconnected",
            "message",
            "error",
            "error",
            "error",
            "error",
            "pong"
        ],
        "typing goes to the others only"
    );
    assert_eq!(frames[1]["userId"], "RECIPIENT_ID");
    assert!(
        frames[3..7]
            .iter()
            .all(|f| f["code"] == "recipient_offline")
    );
}

#[test]
fn call_frames_pipelined_before_the_send_is_stored_do_not_know_the_recipient_yet() {
    // The recipient becomes a participant when the site stores the message; a call frame
    // processed before that finds no such participant (forbidden), not an offline one.
    let mut sim = Sim::new();
    let user = user_in_thread(&mut sim);
    sim.clear();
    sim.send_text(user, SEND_MESSAGE);
    sim.send_text(user, CALL_INITIATED);
    sim.drive();
    let frames = sim.take_json(user);
    assert_eq!(frames[0]["code"], "forbidden");
    assert_eq!(frames[1]["type"], "user_disconnected");
    assert_eq!(frames[2]["type"], "message");
}

#[test]
fn the_seeds_token_never_reaches_a_debug_print() {
    let mut sim = Sim::new();
    sim.debug_log = Some(Vec::new());
    let user = user_in_thread(&mut sim);
    sim.send_text(user, SEND_MESSAGE);
    let other = sim.open_on(0, ip(2), Some("s3cr3t/upgrade-token"));
    sim.send(
        other,
        json!({"type": "user_connected", "userId": "bob", "token": "dev:bob"}),
    );
    sim.drive();
    assert_eq!(sim.close_code(other), Some(4001));
    let mut printed = sim.debug_log.take().unwrap();
    printed.push(format!("{:?}", sim.hub(0)));
    printed.push(format!("{:?}", sim.hub(0).stats()));
    assert!(
        printed.iter().any(|l| l.contains("SendMessage")),
        "the log saw the send"
    );
    for token in ["YOUR_API_TOKEN", "s3cr3t/upgrade-token", "dev:bob"] {
        assert!(
            !printed.iter().any(|l| l.contains(token)),
            "{token} was printed"
        );
    }
}
