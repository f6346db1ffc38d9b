//! The seed's examples sent verbatim to the embedded default (DESIGN.md's table), and the
//! seed's example clients (React, Flutter) end to end, over real sockets.

mod common;

use std::time::Duration;

use common::{Server, config};
use serde_json::json;

fn user_connected() -> serde_json::Value {
    json!({"type": "user_connected", "userId": "USER_ID"})
}
fn join_thread() -> serde_json::Value {
    json!({"type": "join_thread", "threadId": "THREAD_ID"})
}
fn send_message() -> serde_json::Value {
    json!({"type": "send_message", "recipientId": "RECIPIENT_ID", "message": "Hello, this is a message.", "threadId": "THREAD_ID", "token": "YOUR_API_TOKEN"})
}

#[tokio::test]
async fn row_user_connected_identifies_the_connection() {
    let server = Server::start(config()).await;
    let mut c = server.client().await;
    c.send(user_connected()).await;
    c.send(join_thread()).await;
    let joined = c.recv_type("joined").await;
    let ids: Vec<&str> = joined["participants"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|p| p["userId"].as_str())
        .collect();
    assert!(ids.contains(&"USER_ID"), "{joined}");
}

#[tokio::test]
async fn row_join_thread_answers_joined() {
    let server = Server::start(config()).await;
    let mut c = server.client().await;
    c.send(user_connected()).await;
    c.send(join_thread()).await;
    let joined = c.recv_type("joined").await;
    assert_eq!(joined["threadId"], "THREAD_ID");
}

#[tokio::test]
async fn row_send_message_echoes_to_the_thread_and_adds_the_recipient() {
    let server = Server::start(config()).await;
    let mut c = server.client().await;
    c.send(user_connected()).await;
    c.send(join_thread()).await;
    c.recv_type("joined").await;
    c.send(send_message()).await;
    let m = c.recv_type("message").await;
    assert_eq!(m["senderId"], "USER_ID");
    assert_eq!(m["threadId"], "THREAD_ID");
    assert_eq!(m["message"], "Hello, this is a message.");
    assert!(m.get("token").is_none());
    let mut r = server.client().await;
    r.send(json!({"type": "user_connected", "userId": "RECIPIENT_ID"}))
        .await;
    r.send(join_thread()).await;
    let joined = r.recv_type("joined").await;
    let ids: Vec<&str> = joined["participants"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|p| p["userId"].as_str())
        .collect();
    assert!(
        ids.contains(&"RECIPIENT_ID") && ids.contains(&"USER_ID"),
        "{joined}"
    );
}

#[tokio::test]
async fn row_typing_reaches_the_other_participants() {
    let server = Server::start(config()).await;
    let mut a = server.client().await;
    let mut b = server.client().await;
    a.send(user_connected()).await;
    a.send(join_thread()).await;
    a.recv_type("joined").await;
    b.send(json!({"type": "user_connected", "userId": "RECIPIENT_ID"}))
        .await;
    b.send(join_thread()).await;
    b.recv_type("joined").await;
    a.send(json!({"type": "typing", "threadId": "THREAD_ID"}))
        .await;
    let t = b.recv_type("typing").await;
    assert_eq!(t["userId"], "USER_ID");
    assert_eq!(t["typing"], true);
    assert!(
        !a.kinds_within(Duration::from_millis(200))
            .await
            .contains(&"typing".to_owned()),
        "not to the typist"
    );
}

#[tokio::test]
async fn row_call_frames_ignore_sender_id_and_report_the_offline_callee() {
    let server = Server::start(config()).await;
    let mut c = server.client().await;
    c.send(user_connected()).await;
    c.send(join_thread()).await;
    c.recv_type("joined").await;
    c.send(send_message()).await; // makes RECIPIENT_ID a participant
    c.recv_type("message").await;
    for frame in [
        json!({"type": "call_initiated", "senderId": "SENDER_ID", "recipientId": "RECIPIENT_ID", "threadId": "THREAD_ID"}),
        json!({"type": "offer", "offer": "OFFER_SDP", "recipientId": "RECIPIENT_ID", "senderId": "SENDER_ID", "threadId": "THREAD_ID"}),
        json!({"type": "answer", "answer": "ANSWER_SDP", "recipientId": "RECIPIENT_ID", "senderId": "SENDER_ID", "threadId": "THREAD_ID"}),
        json!({"type": "ice-candidate", "candidate": "ICE_CANDID ATE", "recipientId": "RECIPIENT_ID", "senderId": "SENDER_ID", "threadId": "THREAD_ID"}),
    ] {
        c.send(frame.clone()).await;
        let e = c.recv_skip_presence().await;
        assert_eq!(e["type"], "error", "{frame} -> {e}");
        assert!(
            e["code"] == "recipient_offline" || e["code"] == "not_in_call",
            "{frame} -> {e}"
        );
    }
}

#[tokio::test]
async fn row_anything_then_ping_answers_pong() {
    let server = Server::start(config()).await;
    let mut c = server.client().await;
    for frame in [
        json!({"type": "nonsense"}),
        json!([1, 2]),
        json!({"type": "typing"}),
    ] {
        c.send(frame).await;
        assert_eq!(c.recv().await["type"], "error");
    }
    c.send(json!({"type": "ping"})).await;
    assert_eq!(c.recv().await["type"], "pong");
}

/// The seed's React page: no hello, no join, the token in every send_message.
#[tokio::test]
async fn react_flow_two_users_see_their_own_and_each_others_messages_and_typing() {
    let server = Server::start(config()).await;
    let mut alice = server.client().await;
    let mut bob = server.client().await;
    let send = |token: &str, to: &str, text: &str| json!({"type": "send_message", "recipientId": to, "message": text, "threadId": "THREAD_ID", "token": token});
    alice.send(send("dev:alice", "bob", "hi bob")).await;
    let m = alice.recv_type("message").await;
    assert_eq!(
        (m["senderId"].as_str(), m["message"].as_str()),
        (Some("alice"), Some("hi bob"))
    );
    bob.send(send("dev:bob", "alice", "hi alice")).await;
    let own = bob.recv_type("message").await;
    assert_eq!(own["message"], "hi alice");
    let other = alice.recv_type("message").await;
    assert_eq!(
        (other["senderId"].as_str(), other["message"].as_str()),
        (Some("bob"), Some("hi alice"))
    );
    alice.send(send("dev:alice", "bob", "second")).await;
    let got = bob.recv_type("message").await;
    assert_eq!(
        (got["senderId"].as_str(), got["message"].as_str()),
        (Some("alice"), Some("second"))
    );
    alice
        .send(json!({"type": "typing", "threadId": "THREAD_ID"}))
        .await;
    let t = bob.recv_type("typing").await;
    assert_eq!(
        (t["userId"].as_str(), t["typing"].as_bool()),
        (Some("alice"), Some(true))
    );
}

/// The Flutter example adds every frame containing "message" to its chat list.
#[tokio::test]
async fn flutter_substring_rules_see_no_spurious_chat_lines() {
    let server = Server::start(config()).await;
    let mut a = server.user("alice").await;
    let mut b = server.user("bob").await;
    for c in [&mut a, &mut b] {
        c.send(join_thread()).await;
    }
    a.send(json!({"type": "send_message", "recipientId": "bob", "message": "one", "threadId": "THREAD_ID", "token": "dev:alice"})).await;
    a.send(json!({"type": "typing", "threadId": "THREAD_ID"}))
        .await;
    a.send(json!({"type": "ping"})).await;
    let frames = b.drain(Duration::from_millis(500)).await;
    let mut raw: Vec<String> = frames.iter().map(ToString::to_string).collect();
    raw.extend(
        a.drain(Duration::from_millis(100))
            .await
            .iter()
            .map(ToString::to_string),
    );
    let chat: Vec<&String> = raw.iter().filter(|f| f.contains("message")).collect();
    for line in &chat {
        let v: serde_json::Value = serde_json::from_str(line).expect("json");
        assert!(
            v["type"] == "message" || v["type"] == "error",
            "spurious chat line: {line}"
        );
    }
    assert!(chat.iter().any(|l| l.contains("\"one\"")), "{raw:?}");
}

#[tokio::test]
async fn two_devices_of_one_user_both_receive() {
    let server = Server::start(config()).await;
    let mut a1 = server.user("alice").await;
    let mut a2 = server.user("alice").await;
    let mut b = server.user("bob").await;
    for c in [&mut a1, &mut a2, &mut b] {
        c.send(join_thread()).await;
        c.recv_type("joined").await;
    }
    b.send(json!({"type": "send_message", "message": "to both", "threadId": "THREAD_ID"}))
        .await;
    for c in [&mut a1, &mut a2, &mut b] {
        assert_eq!(c.recv_type("message").await["message"], "to both");
    }
    a1.send(json!({"type": "typing", "threadId": "THREAD_ID"}))
        .await;
    assert_eq!(b.recv_type("typing").await["userId"], "alice");
    let other_device = a2.kinds_within(Duration::from_millis(200)).await;
    assert!(
        !other_device.contains(&"typing".to_owned()),
        "own typing not echoed: {other_device:?}"
    );
}

#[tokio::test]
async fn ws_path_and_acks_with_request_ids() {
    let server = Server::start(config()).await;
    let url = format!("ws://{}/ws", server.handle.local_addr());
    let mut c = common::Client::connect(&url, &[]).await;
    c.send(json!({"type": "user_connected", "userId": "alice", "requestId": 7}))
        .await;
    assert_eq!(c.recv().await, json!({"type": "ack", "requestId": 7}));
    c.send(json!({"type": "send_message", "message": "x", "threadId": "T1", "recipientId": "bob", "clientMessageId": "c-1"})).await;
    let first = c.recv_skip_presence().await;
    let second = c.recv_skip_presence().await;
    let kinds = [first["type"].clone(), second["type"].clone()];
    assert!(
        kinds.contains(&json!("ack")) && kinds.contains(&json!("message")),
        "{first} {second}"
    );
}
