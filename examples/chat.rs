//! A Rust client of bbrt: two users chat, type, and place a call (ring, accept,
//! offer/answer, ICE both ways, hang up), with bbrt-protocol's own types on both sides.
//!
//! ```text
//! cargo run -p bbrt-server --example chat                       # starts its own server
//! cargo run -p bbrt-server --example chat -- ws://127.0.0.1:8080/  # or talks to yours
//! ```
//!
//! Against the embedded development site a token `dev:<user>` names that user.

use std::time::Duration;

use bbrt_protocol::ClientMessage;
use bbrt_protocol::secret::Token;
use bbrt_protocol::wire::{
    Answer, CallControl, ClientFrame, IceCandidate, JoinThread, Offer, Payload, RequestId,
    SendMessage, ServerMessage, Typing, UserConnected,
};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

struct Client {
    name: &'static str,
    ws: Ws,
}

impl Client {
    async fn connect(url: &str, name: &'static str) -> Result<Self, Box<dyn std::error::Error>> {
        let (ws, _) = tokio_tungstenite::connect_async(url).await?;
        Ok(Self { name, ws })
    }

    async fn send(
        &mut self,
        message: ClientMessage,
        request_id: Option<i64>,
    ) -> Result<(), Box<dyn std::error::Error>> {
        let frame = ClientFrame {
            request_id: request_id.map(RequestId::Num),
            message,
        };
        let text = frame.encode();
        println!("{:>5} → {}", self.name, redact(&text));
        self.ws.send(Message::text(text)).await?;
        Ok(())
    }

    /// Waits for a frame of `kind`, printing everything received meanwhile.
    async fn expect(&mut self, kind: &str) -> Result<ServerMessage, Box<dyn std::error::Error>> {
        loop {
            let next = tokio::time::timeout(Duration::from_secs(10), self.ws.next()).await?;
            let Some(message) = next else {
                return Err("connection closed".into());
            };
            let Message::Text(text) = message? else {
                continue;
            };
            let decoded = ServerMessage::decode(text.as_bytes())?;
            println!("{:>5} ← {text}", self.name);
            if decoded.kind() == kind {
                return Ok(decoded);
            }
        }
    }
}

/// Hides tokens in what the example prints.
fn redact(text: &str) -> String {
    match text.find("\"token\":\"") {
        Some(i) => {
            let rest = &text[i + 9..];
            let end = rest.find('"').unwrap_or(rest.len());
            format!("{}[redacted]{}", &text[..i + 9], &rest[end..])
        }
        None => text.to_owned(),
    }
}

fn id<T: std::str::FromStr>(s: &str) -> T
where
    T::Err: std::fmt::Debug,
{
    s.parse().expect("a valid literal id")
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
    let thread = "demo";
    let mut alice = Client::connect(&url, "alice").await?;
    let mut bob = Client::connect(&url, "bob").await?;

    // Identify (dev:<user> tokens name users on the embedded site) and join.
    for (c, user) in [(&mut alice, "alice"), (&mut bob, "bob")] {
        let hello = UserConnected {
            user_id: id(user),
            token: Some(Token::new(format!("dev:{user}"))),
            ticket: None,
        };
        c.send(ClientMessage::UserConnected(hello), Some(1)).await?;
        c.expect("ack").await?;
        c.send(
            ClientMessage::JoinThread(JoinThread::new(id(thread))),
            Some(2),
        )
        .await?;
        c.expect("joined").await?;
    }

    // Chat and typing.
    bob.send(
        ClientMessage::Typing(Typing {
            thread_id: id(thread),
            typing: None,
        }),
        None,
    )
    .await?;
    alice.expect("typing").await?;
    let hi = SendMessage {
        message: "Hi Bob! Call you?".into(),
        thread_id: Some(id(thread)),
        recipient_id: Some(id("bob")),
        token: None,
        client_message_id: Some(id("alice-1")),
    };
    alice.send(ClientMessage::SendMessage(hi), None).await?;
    alice.expect("ack").await?;
    bob.expect("message").await?;

    // A call: ring, accept, offer/answer, ICE both ways, hang up.
    let control = |to: &str| CallControl {
        recipient_id: Some(id(to)),
        thread_id: Some(id(thread)),
        ..Default::default()
    };
    alice
        .send(ClientMessage::CallInitiated(control("bob")), Some(3))
        .await?;
    let ServerMessage::Ack(ack) = alice.expect("ack").await? else {
        unreachable!("expect returns the kind asked")
    };
    let call_id = ack.call_id.ok_or("the ack names the call")?;
    bob.expect("call_initiated").await?;
    bob.send(
        ClientMessage::CallAccepted(CallControl {
            call_id: Some(call_id.clone()),
            ..Default::default()
        }),
        None,
    )
    .await?;
    alice.expect("call_accepted").await?;
    let offer = Offer {
        offer: Payload::from_json(r#"{"type":"offer","sdp":"v=0 (an SDP offer)"}"#)?,
        recipient_id: Some(id("bob")),
        sender_id: None,
        thread_id: Some(id(thread)),
        call_id: Some(call_id.clone()),
    };
    alice.send(ClientMessage::Offer(offer), None).await?;
    bob.expect("offer").await?;
    let answer = Answer {
        answer: Payload::from_json(r#"{"type":"answer","sdp":"v=0 (an SDP answer)"}"#)?,
        recipient_id: Some(id("alice")),
        sender_id: None,
        thread_id: Some(id(thread)),
        call_id: Some(call_id.clone()),
    };
    bob.send(ClientMessage::Answer(answer), None).await?;
    alice.expect("answer").await?;
    for (from, to, peer) in [
        (
            &mut alice,
            "bob",
            "candidate:1 1 udp 2122260223 192.0.2.1 54321 typ host",
        ),
        (
            &mut bob,
            "alice",
            "candidate:2 1 udp 2122260223 192.0.2.2 54322 typ host",
        ),
    ] {
        let ice = IceCandidate {
            candidate: Payload::from_json(
                &serde_json::json!({"candidate": peer, "sdpMid": "0"}).to_string(),
            )?,
            recipient_id: Some(id(to)),
            sender_id: None,
            thread_id: Some(id(thread)),
            call_id: Some(call_id.clone()),
        };
        from.send(ClientMessage::IceCandidate(ice), None).await?;
    }
    bob.expect("ice-candidate").await?;
    alice.expect("ice-candidate").await?;
    alice
        .send(
            ClientMessage::CallEnded(CallControl {
                call_id: Some(call_id),
                ..Default::default()
            }),
            None,
        )
        .await?;
    bob.expect("call_ended").await?;
    println!("done");
    Ok(())
}
