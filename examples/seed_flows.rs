//! The seed's JSON flows, sent verbatim (the documentation of the Node.js server bbrt
//! replaces), printing what bbrt answers.
//!
//! ```text
//! cargo run -p bbrt-server --example seed_flows                       # its own server
//! cargo run -p bbrt-server --example seed_flows -- ws://127.0.0.1:8080/  # or yours
//! ```

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Sends `frame` exactly as written (field order included).
async fn send(ws: &mut Ws, who: &str, frame: &str) -> Result<(), Box<dyn std::error::Error>> {
    let parsed: Value = serde_json::from_str(frame)?;
    let shown = match parsed["token"].as_str() {
        Some(token) => frame.replace(&format!("\"{token}\""), "\"[redacted]\""),
        None => frame.to_owned(),
    };
    println!("{who:>9} → {shown}");
    ws.send(Message::text(frame)).await?;
    Ok(())
}

/// Prints every frame received within a short while.
async fn show(ws: &mut Ws, who: &str) -> Result<(), Box<dyn std::error::Error>> {
    while let Ok(Some(message)) = tokio::time::timeout(Duration::from_millis(300), ws.next()).await
    {
        if let Message::Text(text) = message? {
            println!("{who:>9} ← {text}");
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut _server = None;
    let url = match std::env::args().nth(1) {
        Some(url) => url,
        None => {
            let config = bbrt_server::config::Config {
                listen: "127.0.0.1:0".parse()?,
                ..Default::default()
            };
            let server = bbrt_server::start(config).await?;
            let url = format!("ws://{}/", server.local_addr());
            println!("started an embedded development server at {url}");
            _server = Some(server);
            url
        }
    };

    println!("\n# The message types section, verbatim");
    let (mut user, _) = tokio_tungstenite::connect_async(&url).await?;
    let (mut recipient, _) = tokio_tungstenite::connect_async(&url).await?;
    send(
        &mut user,
        "USER_ID",
        r#"{"type": "user_connected", "userId": "USER_ID"}"#,
    )
    .await?;
    send(
        &mut user,
        "USER_ID",
        r#"{"type": "join_thread", "threadId": "THREAD_ID"}"#,
    )
    .await?;
    show(&mut user, "USER_ID").await?;
    send(&mut user, "USER_ID", r#"{"type": "send_message", "recipientId": "RECIPIENT_ID", "message": "Hello, this is a message.", "threadId": "THREAD_ID", "token": "YOUR_API_TOKEN"}"#).await?;
    show(&mut user, "USER_ID").await?;
    send(
        &mut recipient,
        "RECIPIENT",
        r#"{"type": "user_connected", "userId": "RECIPIENT_ID"}"#,
    )
    .await?;
    send(
        &mut recipient,
        "RECIPIENT",
        r#"{"type": "join_thread", "threadId": "THREAD_ID"}"#,
    )
    .await?;
    show(&mut recipient, "RECIPIENT").await?;
    send(
        &mut user,
        "USER_ID",
        r#"{"type": "typing", "threadId": "THREAD_ID"}"#,
    )
    .await?;
    show(&mut recipient, "RECIPIENT").await?;
    drop(recipient);
    show(&mut user, "USER_ID").await?;
    for frame in [
        r#"{"type": "call_initiated", "senderId": "SENDER_ID", "recipientId": "RECIPIENT_ID", "threadId": "THREAD_ID"}"#,
        r#"{"type": "offer", "offer": "OFFER_SDP", "recipientId": "RECIPIENT_ID", "senderId": "SENDER_ID", "threadId": "THREAD_ID"}"#,
        r#"{"type": "answer", "answer": "ANSWER_SDP", "recipientId": "RECIPIENT_ID", "senderId": "SENDER_ID", "threadId": "THREAD_ID"}"#,
        r#"{"type": "ice-candidate", "candidate": "ICE_CANDID ATE", "recipientId": "RECIPIENT_ID", "senderId": "SENDER_ID", "threadId": "THREAD_ID"}"#,
    ] {
        send(&mut user, "USER_ID", frame).await?;
        show(&mut user, "USER_ID").await?;
    }
    send(&mut user, "USER_ID", r#"{"type": "ping"}"#).await?;
    show(&mut user, "USER_ID").await?;

    println!("\n# The React example: no user_connected, no join, the token in send_message");
    let (mut alice, _) = tokio_tungstenite::connect_async(&url).await?;
    let (mut bob, _) = tokio_tungstenite::connect_async(&url).await?;
    send(&mut alice, "alice", r#"{"type": "send_message", "recipientId": "bob", "message": "Hello, this is a message.", "threadId": "THREAD_ID", "token": "dev:alice"}"#).await?;
    show(&mut alice, "alice").await?;
    send(&mut bob, "bob", r#"{"type": "send_message", "recipientId": "alice", "message": "Hello, this is a message.", "threadId": "THREAD_ID", "token": "dev:bob"}"#).await?;
    show(&mut bob, "bob").await?;
    show(&mut alice, "alice").await?;
    send(
        &mut alice,
        "alice",
        r#"{"type": "typing", "threadId": "THREAD_ID"}"#,
    )
    .await?;
    show(&mut bob, "bob").await?;
    Ok(())
}
