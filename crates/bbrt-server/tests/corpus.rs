//! The bad-input corpus (`tests/corpus/*.json`: a frame and its expected reply) against a
//! real server: each frame gets its documented error or close, echoing the `requestId`
//! exactly when the case says (`"requestId"` absent: the answer carries none), the
//! connection stays usable where the docs say so, and a bystander notices nothing.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{Server, config};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

fn unhex(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("corpus hex is valid"))
        .collect()
}

/// The WebSocket message a corpus case sends.
fn message(frame: &Value) -> Message {
    if let Some(text) = frame.as_str() {
        return Message::text(text);
    }
    if let Some(repeat) = frame.get("text_repeat") {
        let fill = repeat["fill"]
            .as_str()
            .expect("fill")
            .repeat(repeat["count"].as_u64().expect("count") as usize);
        let text = format!(
            "{}{fill}{}",
            repeat["prefix"].as_str().expect("prefix"),
            repeat["suffix"].as_str().expect("suffix")
        );
        return Message::text(text);
    }
    if let Some(hex) = frame.get("binary_hex").and_then(Value::as_str) {
        return Message::binary(unhex(hex));
    }
    if let Some(hex) = frame.get("invalid_utf8_hex").and_then(Value::as_str) {
        return Message::Frame(Frame::message(unhex(hex), OpCode::Data(Data::Text), true));
    }
    panic!("unknown corpus frame {frame}");
}

#[tokio::test]
async fn every_corpus_case_gets_its_documented_reply() {
    let server = Server::start(config()).await;
    let mut bystander = server.user("bystander").await;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("corpus dir")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    assert!(
        files.len() >= 50,
        "the corpus has at least 50 cases, found {}",
        files.len()
    );
    for (i, path) in files.iter().enumerate() {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .expect("utf-8 name")
            .to_owned();
        let case: Value = serde_json::from_str(&std::fs::read_to_string(path).expect("read case"))
            .expect("case json");
        let mut client = server.user(&format!("corpus{i}")).await;
        client.send_raw(message(&case["frame"])).await;
        let expect = &case["expect"];
        if let Some(code) = expect.get("close") {
            assert_eq!(
                client.closed().await.map(u64::from),
                code.as_u64(),
                "{name}: close code"
            );
        } else if let Some(code) = expect.get("error") {
            let reply = client.recv_skip_presence().await;
            assert_eq!(reply["type"], "error", "{name}: {reply}");
            assert_eq!(&reply["code"], code, "{name}: {reply}");
            assert!(
                reply["message"].as_str().is_some_and(|m| !m.is_empty()),
                "{name}: a human message"
            );
            if let Some(part) = expect.get("message_contains").and_then(Value::as_str) {
                assert!(
                    reply["message"].as_str().is_some_and(|m| m.contains(part)),
                    "{name}: the message names {part}: {reply}"
                );
            }
            let expected_id = expect.get("requestId").cloned().unwrap_or(Value::Null);
            assert_eq!(
                reply.get("requestId").cloned().unwrap_or(Value::Null),
                expected_id,
                "{name}: requestId"
            );
        } else if let Some(id) = expect.get("pong") {
            let reply = client.recv_skip_presence().await;
            assert_eq!(
                (&reply["type"], &reply["requestId"]),
                (&Value::from("pong"), id),
                "{name}: {reply}"
            );
        } else {
            panic!("{name}: unknown expectation {expect}");
        }
        if case["usable_after"].as_bool().unwrap_or(true) {
            client
                .send(serde_json::json!({"type": "ping", "requestId": "after"}))
                .await;
            let pong = client.recv_skip_presence().await;
            assert_eq!(pong["requestId"], "after", "{name}: still usable");
        }
    }
    let noticed = bystander.kinds_within(Duration::from_millis(200)).await;
    assert!(noticed.is_empty(), "the bystander saw {noticed:?}");
    bystander
        .send(serde_json::json!({"type": "ping", "requestId": "still"}))
        .await;
    assert_eq!(bystander.recv_skip_presence().await["requestId"], "still");
}
