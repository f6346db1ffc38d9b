//! The wire protocols the load generator speaks: the seed's JSON frames (the Node baseline
//! and bbrt), Pusher protocol 7 (Sockudo) and Socket.IO 4 (the bench's Socket.IO peer).
//!
//! The Pusher and Socket.IO clients are written here by hand rather than taken from a
//! crate: each is a thin framing over the WebSocket client the load generator already has
//! (a handshake of two or three frames, a prefix or an envelope per frame), so the same
//! connection code, buffers and measurements serve every server, and the bench gains no
//! runtime dependency (no second WebSocket stack, no HTTP client for Pusher's auth: the
//! load generator signs the channel itself, as the app's auth endpoint would, with the
//! fake site's HMAC-SHA256).
//!
//! What each client does:
//! - Pusher: `/app/KEY?protocol=7`; waits for `pusher:connection_established` (its
//!   `socket_id`), subscribes to `private-<thread>` with
//!   `auth = KEY:hex(HMAC-SHA256(secret, "socket_id:channel"))`, waits for
//!   `pusher_internal:subscription_succeeded`; a message is the client event
//!   `client-message` on that channel, which the server relays to the channel's *other*
//!   subscribers (Pusher never echoes a client event to its sender); `pusher:ping` is
//!   answered with `pusher:pong`.
//! - Socket.IO: `/socket.io/?EIO=4&transport=websocket`; engine.io's open packet `0{..}`,
//!   then `40` (connect to the main namespace) answered by `40{"sid":..}`; events are
//!   `42["name",payload]`; the server's ping `2` is answered with a pong `3`.

use std::borrow::Cow;

use bbrt_buddyboss::fake::hmac_sha256;

use crate::client::string_field;

/// The app (id `bbrt-bench`) Sockudo is configured with by `bench/run.sh`; not a secret:
/// the server listens on loopback only.
pub(crate) const PUSHER_KEY: &str = "bbrt-bench-key";
pub(crate) const PUSHER_SECRET: &str = "bbrt-bench-secret";

/// Which protocol a server speaks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Proto {
    /// The seed's JSON frames (`{"type":...}`): the Node baseline and bbrt.
    #[default]
    Seed,
    /// Pusher protocol 7 (Sockudo): private channels, client events.
    Pusher,
    /// Socket.IO 4 over engine.io v4's WebSocket transport.
    SocketIo,
}

/// What a server frame is to the load generator.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Frame<'a> {
    /// A chat message delivered: its thread and its text.
    Delivery {
        thread: Cow<'a, str>,
        text: Cow<'a, str>,
    },
    /// Presence (`user_connected` and the like): counted, never judged.
    Presence,
    /// An error from the server, or a frame that cannot be read.
    Error,
    /// A keep-alive the client must answer with this frame.
    Reply(&'static str),
    /// Anything else, by its kind (`joined`, `ack`, `established`, `open`, `connected`).
    Other(Cow<'a, str>),
}

impl Proto {
    /// The request path of the WebSocket upgrade (`seed_path` for the seed's servers).
    pub(crate) fn path(self, seed_path: &str) -> String {
        match self {
            Self::Seed => seed_path.to_owned(),
            Self::Pusher => {
                format!("/app/{PUSHER_KEY}?protocol=7&client=bbrt-bench&version=1.0")
            }
            Self::SocketIo => "/socket.io/?EIO=4&transport=websocket".to_owned(),
        }
    }

    /// Whether a message comes back to its own sender (Pusher's client events do not).
    pub(crate) fn echoes_sender(self) -> bool {
        self != Self::Pusher
    }

    /// The frame that sends `text` to `thread`.
    pub(crate) fn send_frame(self, thread: &str, text: &str) -> String {
        match self {
            Self::Seed => {
                format!(r#"{{"type":"send_message","threadId":"{thread}","message":"{text}"}}"#)
            }
            Self::Pusher => format!(
                r#"{{"event":"client-message","channel":"private-{thread}","data":{{"message":"{text}"}}}}"#
            ),
            Self::SocketIo => {
                format!(r#"42["send_message",{{"threadId":"{thread}","message":"{text}"}}]"#)
            }
        }
    }

    /// The frames that identify client `user` and join `thread`, sent once the connection
    /// is ready (after the answer to [`Proto::connect_frame`], for the protocols that have one).
    /// Pusher's subscription needs the socket id: see [`pusher_subscribe`].
    pub(crate) fn identify_frames(
        self,
        user: &str,
        thread: &str,
        token: Option<&str>,
    ) -> Vec<String> {
        match self {
            Self::Seed => {
                let identify = match token {
                    Some(t) => {
                        format!(r#"{{"type":"user_connected","userId":"{user}","token":"{t}"}}"#)
                    }
                    None => format!(r#"{{"type":"user_connected","userId":"{user}"}}"#),
                };
                vec![
                    identify,
                    format!(r#"{{"type":"join_thread","threadId":"{thread}"}}"#),
                ]
            }
            Self::Pusher => Vec::new(),
            Self::SocketIo => vec![
                format!(r#"42["user_connected",{{"userId":"{user}"}}]"#),
                format!(r#"42["join_thread",{{"threadId":"{thread}"}}]"#),
            ],
        }
    }

    /// What the client sends as soon as it is connected, before anything else: Socket.IO's
    /// namespace connect (without it the server closes the connection after 45 s).
    pub(crate) fn connect_frame(self) -> Option<&'static str> {
        (self == Self::SocketIo).then_some("40")
    }

    /// Reads one server frame.
    pub(crate) fn classify(self, text: &str) -> Frame<'_> {
        match self {
            Self::Seed => classify_seed(text),
            Self::Pusher => classify_pusher(text),
            Self::SocketIo => classify_socketio(text),
        }
    }
}

fn classify_seed(text: &str) -> Frame<'_> {
    if let Some((thread, message)) = crate::client::scan_message(text) {
        return Frame::Delivery {
            thread: thread.into(),
            text: message.into(),
        };
    }
    if crate::client::is_presence(text) {
        return Frame::Presence;
    }
    let Some(m) = crate::client::Incoming::parse(text) else {
        return Frame::Error;
    };
    match m.kind.as_ref() {
        "message" => match (m.thread_id, m.message) {
            (Some(thread), Some(text)) => Frame::Delivery { thread, text },
            _ => Frame::Error,
        },
        "error" => Frame::Error,
        "typing" => Frame::Other("typing".into()),
        _ => Frame::Other(m.kind),
    }
}

/// The text of a benchmark message inside a frame: from `bench ` to the next quote or
/// backslash (a relayed client event may carry its data as an escaped JSON string).
fn bench_text(text: &str) -> Option<&str> {
    let start = text.find("bench ")?;
    let len = text[start..].find(['"', '\\'])?;
    Some(&text[start..start + len])
}

fn classify_pusher(text: &str) -> Frame<'_> {
    let Some(event) = string_field(text, r#""event":""#) else {
        return Frame::Error;
    };
    match event {
        "client-message" => {
            let thread = string_field(text, r#""channel":"private-"#);
            match (thread, bench_text(text)) {
                (Some(thread), Some(message)) => Frame::Delivery {
                    thread: thread.into(),
                    text: message.into(),
                },
                _ => Frame::Error,
            }
        }
        "pusher:ping" => Frame::Reply(r#"{"event":"pusher:pong","data":{}}"#),
        "pusher:connection_established" => Frame::Other("established".into()),
        "pusher_internal:subscription_succeeded" | "pusher:subscription_succeeded" => {
            Frame::Other("joined".into())
        }
        "pusher:error" | "pusher:subscription_error" | "pusher_internal:subscription_error" => {
            Frame::Error
        }
        other => Frame::Other(other.into()),
    }
}

fn classify_socketio(text: &str) -> Frame<'_> {
    match text.as_bytes() {
        [b'2'] => return Frame::Reply("3"),
        [b'0', ..] => return Frame::Other("open".into()),
        [b'4', b'0', ..] => return Frame::Other("connected".into()),
        [b'4', b'2', ..] => {}
        _ => return Frame::Error,
    }
    let event = &text[2..];
    if let Some(rest) = event.strip_prefix(r#"["message","#) {
        return match (
            string_field(rest, r#""threadId":""#),
            string_field(rest, r#""message":""#),
        ) {
            (Some(thread), Some(message)) => Frame::Delivery {
                thread: thread.into(),
                text: message.into(),
            },
            _ => Frame::Error,
        };
    }
    if event.starts_with(r#"["user_connected""#) || event.starts_with(r#"["user_disconnected""#) {
        return Frame::Presence;
    }
    let Some(name) = string_field(event, r#"[""#) else {
        return Frame::Error;
    };
    match name {
        "error" => Frame::Error,
        other => Frame::Other(other.into()),
    }
}

/// The `socket_id` in Pusher's `pusher:connection_established` (its `data` is a JSON
/// string holding an object).
pub(crate) fn pusher_socket_id(text: &str) -> Option<String> {
    let outer: serde_json::Value = serde_json::from_str(text).ok()?;
    let data = outer.get("data")?;
    let inner: serde_json::Value = match data {
        serde_json::Value::String(s) => serde_json::from_str(s).ok()?,
        other => other.clone(),
    };
    inner.get("socket_id")?.as_str().map(str::to_owned)
}

/// The `pusher:subscribe` of `private-<thread>` for `socket_id`, signed as the app's auth
/// endpoint would sign it.
pub(crate) fn pusher_subscribe(socket_id: &str, thread: &str) -> String {
    let channel = format!("private-{thread}");
    let signature = hmac_sha256(
        PUSHER_SECRET.as_bytes(),
        format!("{socket_id}:{channel}").as_bytes(),
    );
    let hex: String = signature.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        r#"{{"event":"pusher:subscribe","data":{{"auth":"{PUSHER_KEY}:{hex}","channel":"{channel}"}}}}"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn hmac_matches_rfc_4231() {
        // Test cases 1 and 2, and 6 (a key longer than the block).
        assert_eq!(
            hex(&hmac_sha256(&[0x0b; 20], b"Hi There")),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
        assert_eq!(
            hex(&hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            hex(&hmac_sha256(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn pusher_frames() {
        let established = r#"{"event":"pusher:connection_established","data":"{\"socket_id\":\"123.456\",\"activity_timeout\":120}"}"#;
        assert_eq!(pusher_socket_id(established).as_deref(), Some("123.456"));
        assert_eq!(
            Proto::Pusher.classify(established),
            Frame::Other("established".into())
        );
        let sub = pusher_subscribe("123.456", "7");
        assert!(sub.contains(r#""channel":"private-7""#));
        assert!(sub.contains(&format!(r#""auth":"{PUSHER_KEY}:"#)));
        // A relayed client event, its data an object or an escaped string.
        for frame in [
            r#"{"event":"client-message","channel":"private-7","data":{"message":"bench 1 2 3"}}"#,
            r#"{"channel":"private-7","event":"client-message","data":"{\"message\":\"bench 1 2 3\"}","user_id":"x"}"#,
        ] {
            assert_eq!(
                Proto::Pusher.classify(frame),
                Frame::Delivery {
                    thread: "7".into(),
                    text: "bench 1 2 3".into()
                },
                "{frame}"
            );
        }
        assert_eq!(
            Proto::Pusher.classify(r#"{"event":"pusher:error","data":{"code":4001}}"#),
            Frame::Error
        );
        assert!(matches!(
            Proto::Pusher.classify(r#"{"event":"pusher:ping","data":{}}"#),
            Frame::Reply(_)
        ));
        assert!(!Proto::Pusher.echoes_sender());
    }

    #[test]
    fn socketio_frames() {
        assert_eq!(Proto::SocketIo.classify("2"), Frame::Reply("3"));
        assert_eq!(
            Proto::SocketIo.classify(r#"0{"sid":"x","pingInterval":25000}"#),
            Frame::Other("open".into())
        );
        assert_eq!(
            Proto::SocketIo.classify(r#"40{"sid":"y"}"#),
            Frame::Other("connected".into())
        );
        assert_eq!(
            Proto::SocketIo.classify(
                r#"42["message",{"id":"1","threadId":"3","senderId":"7","message":"bench 1 2 3","sentAt":"x"}]"#
            ),
            Frame::Delivery {
                thread: "3".into(),
                text: "bench 1 2 3".into()
            }
        );
        assert_eq!(
            Proto::SocketIo.classify(r#"42["user_connected",{"userId":"1"}]"#),
            Frame::Presence
        );
        assert_eq!(
            Proto::SocketIo.classify(r#"42["joined",{"threadId":"3"}]"#),
            Frame::Other("joined".into())
        );
        assert_eq!(
            Proto::SocketIo.classify(r#"42["error",{"message":"x"}]"#),
            Frame::Error
        );
        assert_eq!(
            Proto::SocketIo.send_frame("3", "bench 1 2 3"),
            r#"42["send_message",{"threadId":"3","message":"bench 1 2 3"}]"#
        );
    }

    #[test]
    fn seed_frames() {
        assert_eq!(
            Proto::Seed.classify(
                r#"{"type":"message","id":"9","threadId":"3","senderId":"7","message":"bench 1 2 3"}"#
            ),
            Frame::Delivery {
                thread: "3".into(),
                text: "bench 1 2 3".into()
            }
        );
        assert_eq!(
            Proto::Seed.classify(r#"{"type":"joined","threadId":"3"}"#),
            Frame::Other("joined".into())
        );
        assert_eq!(Proto::Seed.classify("not json"), Frame::Error);
        assert_eq!(
            Proto::Seed.classify(r#"{"type":"user_connected","userId":"1"}"#),
            Frame::Presence
        );
    }
}
