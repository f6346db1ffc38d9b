//! Reconnect recovery over real sockets against the embedded site: a client that drops and
//! comes back gets what it missed from the window, in order, then live delivery.

mod common;

use common::{Server, config};
use serde_json::{Value, json};

async fn joined(server: &Server, user: &str) -> common::Client {
    let mut c = server.user(user).await;
    c.send(json!({"type": "join_thread", "threadId": "T", "requestId": "j"}))
        .await;
    c.recv_type("joined").await;
    c
}

async fn say(c: &mut common::Client, text: &str) -> Value {
    c.send(json!({"type": "send_message", "threadId": "T", "message": text}))
        .await;
    c.recv_type("message").await
}

#[tokio::test]
async fn a_client_that_drops_gets_what_it_missed_from_the_window_then_live() {
    let server = Server::start(config()).await;
    let mut alice = joined(&server, "alice").await;
    let mut bob = joined(&server, "bob").await;
    say(&mut alice, "one").await;
    let seen = bob.recv_type("message").await;
    assert_eq!(seen["position"]["offset"], 1, "{seen}");
    drop(bob);
    let two = say(&mut alice, "two").await;
    let three = say(&mut alice, "three").await;

    // Identify and resume in one go: the join waits behind the identification, so nothing
    // live comes between them.
    let mut bob = server.client().await;
    bob.send(json!({"type": "user_connected", "userId": "bob"}))
        .await;
    bob.send(
        json!({"type": "join_thread", "threadId": "T", "since": seen["position"], "requestId": 2}),
    )
    .await;
    let answer = bob.recv_skip_presence().await;
    assert_eq!(
        (answer["type"].as_str(), &answer["requestId"]),
        (Some("joined"), &json!(2))
    );
    assert_eq!(bob.recv_skip_presence().await, two);
    assert_eq!(bob.recv_skip_presence().await, three);
    let resumed = bob.recv_skip_presence().await;
    assert_eq!(
        resumed,
        json!({"type": "resumed", "threadId": "T", "source": "window", "complete": true,
               "reload": false, "replayed": 2, "position": three["position"]})
    );
    let four = say(&mut alice, "four").await;
    assert_eq!(bob.recv_type("message").await, four, "then live");
}

#[tokio::test]
async fn resume_answers_each_thread_then_acks() {
    let server = Server::start(config()).await;
    let mut alice = joined(&server, "alice").await;
    let mut bob = joined(&server, "bob").await;
    say(&mut alice, "one").await;
    let seen = bob.recv_type("message").await;
    drop(bob);
    say(&mut alice, "two").await;
    let mut bob = server.client().await;
    bob.send(json!({"type": "user_connected", "userId": "bob"}))
        .await;
    bob.send(json!({"type": "resume", "requestId": 9, "threads": [
        {"threadId": "T", "sinceMessageId": seen["id"]},
        {"threadId": "U", "since": {"offset": 5, "epoch": "nope"}},
    ]}))
    .await;
    let mut kinds = Vec::new();
    loop {
        let frame = bob.recv_skip_presence().await;
        kinds.push(format!(
            "{}:{}",
            frame["type"].as_str().unwrap_or(""),
            frame["code"]
                .as_str()
                .or(frame["message"].as_str())
                .unwrap_or("")
        ));
        if frame["type"] == "ack" {
            assert_eq!(frame["requestId"], 9);
            break;
        }
    }
    assert_eq!(
        kinds,
        [
            "joined:",
            "message:two",
            "resumed:",
            "resumed:position_epoch",
            "ack:"
        ]
    );
}

#[tokio::test]
async fn a_reconnect_within_the_presence_grace_is_not_broadcast() {
    let mut config = config();
    config.presence_grace = std::time::Duration::from_secs(5);
    let server = Server::start(config).await;
    let mut alice = joined(&server, "alice").await;
    let bob = joined(&server, "bob").await;
    alice.recv_type("user_connected").await;
    drop(bob);
    let _bob = joined(&server, "bob").await;
    // A marker after the reconnect: everything alice was sent before it is in front of it.
    alice
        .send(json!({"type": "send_message", "threadId": "T", "message": "after"}))
        .await;
    let mut before = Vec::new();
    loop {
        let frame = alice.recv().await;
        if frame["type"] == "message" {
            break;
        }
        before.push(frame);
    }
    assert!(
        before
            .iter()
            .all(|f| f["type"] != "user_disconnected" && f["type"] != "user_connected"),
        "{before:?}"
    );
}
