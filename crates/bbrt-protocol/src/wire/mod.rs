//! The wire protocol: JSON text frames, one object each.
//!
//! Client frames are decoded in two passes ([`decode`]): a borrowed envelope
//! (`type`, `requestId`) first, then the struct for that type. So an unknown `type` or a bad
//! field still gets an `error` that echoes the client's `requestId`, and the WebRTC payloads
//! of `offer`/`answer`/`ice-candidate` stay raw JSON, relayed byte-for-byte. Unknown fields
//! are ignored (tolerant reader); nothing here panics on any input.
//!
//! Server frames are [`ServerMessage`]s, encoded once with [`ServerMessage::encode`] and
//! shared by every recipient. Both directions are `Serialize + Deserialize`, so a Rust client
//! uses the same types.

pub mod call;
pub mod error;
pub mod ice;
pub mod message;
pub mod presence;
pub mod recovery;
mod table;
pub mod thread;
pub mod typing;

use std::borrow::Cow;
use std::fmt;

use bytes::Bytes;
use serde::de::{self, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

pub use self::call::{Answer, CallControl, CallEnded, CallEvent, EndReason, IceCandidate, Offer};
pub use self::error::{
    Ack, CloseCode, DecodeError, DecodeErrorKind, ErrorCode, ErrorEvent, Ping, Pong,
};
pub use self::ice::{GetIceServers, IceServer, IceServers};
pub use self::message::{Deleted, MessageEvent, ReadEvent, SendMessage, Unread};
pub use self::presence::{PresenceEvent, UserConnected};
pub use self::recovery::{Epoch, JoinThread, Position, ReplaySource, Resume, Resumed};
use self::table::message_table;
pub use self::thread::{Joined, Participant, ThreadDeleted, ThreadLeft, ThreadRef};
pub use self::typing::{Typing, TypingEvent};
use crate::secret::Token;

/// Limits applied while decoding client frames. All are configurable; the defaults fit an
/// SDP offer with room to spare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted frame, in bytes (default 64 KiB).
    pub max_frame_bytes: usize,
    /// Longest `send_message.message`, in bytes (default 16 KiB).
    pub max_text_bytes: usize,
    /// Deepest JSON nesting, counting the outer object as 1 (default 32).
    pub max_depth: usize,
    /// Longest `requestId` string, in bytes (default 128).
    pub max_request_id_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_frame_bytes: 64 * 1024,
            max_text_bytes: 16 * 1024,
            max_depth: 32,
            max_request_id_bytes: 128,
        }
    }
}

/// The client's correlation id, echoed in the `ack` or `error` that answers a frame.
///
/// Accepted as a JSON string or integer and echoed with the same JSON type.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum RequestId {
    /// An integer id.
    Num(i64),
    /// A string id.
    Str(Box<str>),
}

impl fmt::Debug for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Num(n) => write!(f, "req#{n}"),
            Self::Str(s) => write!(f, "req#{s:?}"),
        }
    }
}

impl Serialize for RequestId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Num(n) => serializer.serialize_i64(*n),
            Self::Str(s) => serializer.serialize_str(s),
        }
    }
}

impl<'de> Deserialize<'de> for RequestId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = RequestId;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or an integer")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RequestId, E> {
                Ok(RequestId::Str(v.into()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RequestId, E> {
                Ok(RequestId::Num(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RequestId, E> {
                i64::try_from(v)
                    .map(RequestId::Num)
                    .map_err(|_| E::custom("requestId out of range"))
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// A WebRTC payload (`offer`, `answer`, `candidate`): any JSON value, kept as raw text.
pub struct Payload(Box<RawValue>);

impl Payload {
    /// Wraps raw JSON text.
    ///
    /// # Errors
    /// When `json` is not a single valid JSON value.
    pub fn from_json(json: &str) -> Result<Self, serde_json::Error> {
        RawValue::from_string(json.to_owned()).map(Self)
    }

    /// The JSON text exactly as the client sent it.
    pub fn as_json(&self) -> &str {
        self.0.get()
    }
}

impl Clone for Payload {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl PartialEq for Payload {
    fn eq(&self, other: &Self) -> bool {
        self.as_json() == other.as_json()
    }
}

impl Eq for Payload {}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Payload({} bytes)", self.as_json().len())
    }
}

impl Serialize for Payload {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Payload {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Box::<RawValue>::deserialize(deserializer).map(Self)
    }
}

message_table! {
    /// A client → server message (the seed's types first, then bbrt's extensions).
    pub enum ClientMessage, decoded from (&str) by client_body into (DecodeErrorKind) {
        /// Identify the connection.
        UserConnected(UserConnected) = "user_connected",
        /// Join a thread.
        JoinThread(JoinThread) = "join_thread",
        /// Send a message.
        SendMessage(SendMessage) = "send_message",
        /// Typing indicator.
        Typing(Typing) = "typing",
        /// Start a call.
        CallInitiated(CallControl) = "call_initiated",
        /// WebRTC offer.
        Offer(Offer) = "offer",
        /// WebRTC answer.
        Answer(Answer) = "answer",
        /// WebRTC ICE candidate.
        IceCandidate(IceCandidate) = "ice-candidate",
        /// Leave a thread (stop receiving its presence).
        LeaveThread(ThreadRef) = "leave_thread",
        /// Mark a thread read.
        MarkRead(ThreadRef) = "mark_read",
        /// Accept a ringing call.
        CallAccepted(CallControl) = "call_accepted",
        /// Reject a ringing call.
        CallRejected(CallControl) = "call_rejected",
        /// Cancel or hang up a call.
        CallEnded(CallControl) = "call_ended",
        /// Liveness check.
        Ping(Ping) = "ping",
        /// Ask for STUN/TURN servers before building a peer connection.
        GetIceServers(GetIceServers) = "get_ice_servers",
        /// Join many threads after a reconnect, each with where the client stopped.
        Resume(Resume) = "resume",
    }
}

impl ClientMessage {
    /// Removes the credential the frame carries, if any, so the rest can go to the Hub.
    pub fn take_token(&mut self) -> Option<Token> {
        match self {
            Self::UserConnected(m) => m.token.take(),
            Self::SendMessage(m) => m.token.take(),
            _ => None,
        }
    }

    /// Removes the connection ticket the frame carries, if any (only `user_connected`
    /// carries one).
    pub fn take_ticket(&mut self) -> Option<Token> {
        match self {
            Self::UserConnected(m) => m.ticket.take(),
            _ => None,
        }
    }
}

/// A decoded client frame: the message and the envelope's `requestId`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientFrame {
    /// The client's correlation id.
    pub request_id: Option<RequestId>,
    /// The message.
    pub message: ClientMessage,
}

impl ClientFrame {
    /// Encodes the frame as a client would send it.
    pub fn encode(&self) -> String {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Wire<'a> {
            #[serde(flatten)]
            message: &'a ClientMessage,
            #[serde(skip_serializing_if = "Option::is_none")]
            request_id: &'a Option<RequestId>,
        }
        serde_json::to_string(&Wire {
            message: &self.message,
            request_id: &self.request_id,
        })
        .expect("client messages always serialize: string keys, no non-finite floats")
    }
}

message_table! {
    /// A server → client message.
    ///
    /// Decoded by [`ServerMessage::decode`] in two passes like client frames (serde's
    /// internally tagged enums cannot hold the raw WebRTC payloads).
    pub enum ServerMessage, decoded from (&[u8]) by server_body into (serde_json::Error) {
        /// A user came online.
        UserConnected(PresenceEvent) = "user_connected",
        /// A user went offline.
        UserDisconnected(PresenceEvent) = "user_disconnected",
        /// A stored message.
        Message(MessageEvent) = "message",
        /// A participant is typing.
        Typing(TypingEvent) = "typing",
        /// A call is ringing.
        CallInitiated(CallEvent) = "call_initiated",
        /// WebRTC offer from the peer.
        Offer(Offer) = "offer",
        /// WebRTC answer from the peer.
        Answer(Answer) = "answer",
        /// WebRTC ICE candidate from the peer.
        IceCandidate(IceCandidate) = "ice-candidate",
        /// The callee accepted.
        CallAccepted(CallEvent) = "call_accepted",
        /// The call ended.
        CallEnded(CallEnded) = "call_ended",
        /// A participant read the thread.
        Read(ReadEvent) = "read",
        /// The site blanked messages.
        Deleted(Deleted) = "deleted",
        /// The site deleted the thread.
        ThreadDeleted(ThreadDeleted) = "thread_deleted",
        /// Members are out of the thread.
        ThreadLeft(ThreadLeft) = "thread_left",
        /// The answer to `join_thread`.
        Joined(Joined) = "joined",
        /// Confirmation of a request that asked for one.
        Ack(Ack) = "ack",
        /// The answer to `ping`.
        Pong(Pong) = "pong",
        /// STUN/TURN servers for a peer connection.
        IceServers(IceServers) = "ice_servers",
        /// A thread's replay is written; live delivery goes on.
        Resumed(Resumed) = "resumed",
        /// Something went wrong.
        Error(ErrorEvent) = "error",
    }
}

impl ServerMessage {
    /// Serializes once; the bytes are shared among all recipients.
    pub fn encode(&self) -> Bytes {
        Bytes::from(
            serde_json::to_vec(self)
                .expect("server messages always serialize: string keys, no floats"),
        )
    }

    /// Decodes a server frame, as a Rust client does.
    ///
    /// # Errors
    /// When the frame is not a server message this version knows.
    pub fn decode(frame: &[u8]) -> Result<Self, serde_json::Error> {
        #[derive(Deserialize)]
        struct Kind<'a> {
            #[serde(rename = "type", borrow)]
            kind: Cow<'a, str>,
        }
        let kind: Kind<'_> = serde_json::from_slice(frame)?;
        Self::decode_kind(&kind.kind, frame).unwrap_or_else(|| {
            Err(de::Error::custom(format_args!(
                "unknown server type {:?}",
                kind.kind
            )))
        })
    }
}

/// The second pass of [`ServerMessage::decode`] for one known `type`.
fn server_body<'a, T: Deserialize<'a>>(
    _kind: &'static str,
    frame: &'a [u8],
) -> Result<T, serde_json::Error> {
    serde_json::from_slice(frame)
}

/// The borrowed first pass: the raw `type` and `requestId`, nothing else.
///
/// A repeated `type` or `requestId` is noted, not an error, so the rest of the envelope is
/// still read and the answer can echo the `requestId`. serde_json skips the other values
/// without recursion (`IgnoredAny`), so this pass is safe at any depth.
struct Envelope<'a> {
    kind: Option<&'a RawValue>,
    request_id: Option<&'a RawValue>,
    duplicate_type: bool,
    duplicate_request_id: bool,
}

impl<'de: 'a, 'a> Deserialize<'de> for Envelope<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Envelope<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a json object")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Envelope<'a>, M::Error> {
                let mut env = Envelope {
                    kind: None,
                    request_id: None,
                    duplicate_type: false,
                    duplicate_request_id: false,
                };
                while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                    match key.as_ref() {
                        "type" => {
                            env.duplicate_type |= env.kind.is_some();
                            env.kind = Some(map.next_value()?);
                        }
                        "requestId" => {
                            env.duplicate_request_id |= env.request_id.is_some();
                            env.request_id = Some(map.next_value()?);
                        }
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(env)
            }
        }
        deserializer.deserialize_map(V(std::marker::PhantomData))
    }
}

/// The `requestId` to echo; `Err` says why this one cannot be.
fn parse_request_id(raw: &RawValue, max_bytes: usize) -> Result<Option<RequestId>, String> {
    let text = raw.get();
    if text == "null" {
        // What `JSON.stringify` makes of a client's unset id: no id.
        return Ok(None);
    }
    match serde_json::from_str::<RequestId>(text) {
        Ok(RequestId::Str(s)) if s.len() > max_bytes => Err(format!(
            "a string of {} bytes; at most {max_bytes}",
            s.len()
        )),
        Ok(id) => Ok(Some(id)),
        Err(_) => Err(format!(
            "{}; must be a string of at most {max_bytes} bytes or a signed 64-bit integer",
            truncate(text, 32)
        )),
    }
}

/// Nesting depth of a JSON text, without parsing it (strings are skipped).
fn json_depth_exceeds(frame: &[u8], max: usize) -> bool {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in frame {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

/// Decodes one client text frame under `limits`.
///
/// The envelope is read first, so every error after it carries the client's `requestId`:
/// a frame that is JSON nested too deep, repeats `type`, or has a bad field is answered
/// with the id. A `requestId` that cannot be echoed (a string over
/// [`Limits::max_request_id_bytes`], a number that is not an `i64`, any other JSON type,
/// or a repeated key) is itself the error: `invalid_field` naming `requestId`. A JSON
/// `null` counts as no id.
///
/// # Errors
/// A [`DecodeError`] carrying the client's `requestId` whenever the envelope was readable
/// and the id usable.
pub fn decode(frame: &str, limits: &Limits) -> Result<ClientFrame, DecodeError> {
    let fail = |request_id, kind| DecodeError { request_id, kind };
    if frame.len() > limits.max_frame_bytes {
        return Err(fail(
            None,
            DecodeErrorKind::FrameTooLarge {
                len: frame.len(),
                max: limits.max_frame_bytes,
            },
        ));
    }
    let envelope: Envelope<'_> = match serde_json::from_str(frame) {
        Ok(env) => env,
        Err(e) => {
            let kind = match e.classify() {
                serde_json::error::Category::Data => DecodeErrorKind::NotAnObject,
                _ => DecodeErrorKind::InvalidJson(truncate(&e.to_string(), 160)),
            };
            return Err(fail(None, kind));
        }
    };
    let request_id = match envelope.request_id {
        _ if envelope.duplicate_request_id => {
            let detail = "appears more than once".to_owned();
            return Err(fail(None, DecodeErrorKind::InvalidRequestId(detail)));
        }
        None => None,
        Some(raw) => match parse_request_id(raw, limits.max_request_id_bytes) {
            Ok(id) => id,
            Err(detail) => return Err(fail(None, DecodeErrorKind::InvalidRequestId(detail))),
        },
    };
    if json_depth_exceeds(frame.as_bytes(), limits.max_depth) {
        let kind = DecodeErrorKind::TooDeep {
            max: limits.max_depth,
        };
        return Err(fail(request_id, kind));
    }
    if envelope.duplicate_type {
        let kind = DecodeErrorKind::InvalidField {
            kind: "frame",
            detail: "duplicate field `type`".to_owned(),
        };
        return Err(fail(request_id, kind));
    }
    let Some(kind) = envelope
        .kind
        .and_then(|raw| serde_json::from_str::<Cow<'_, str>>(raw.get()).ok())
    else {
        return Err(fail(request_id, DecodeErrorKind::MissingType));
    };
    let message = match decode_body(&kind, frame) {
        Ok(message) => message,
        Err(kind) => return Err(fail(request_id, kind)),
    };
    if let ClientMessage::SendMessage(m) = &message
        && m.message.len() > limits.max_text_bytes
    {
        let kind = DecodeErrorKind::MessageTooLong {
            len: m.message.len(),
            max: limits.max_text_bytes,
        };
        return Err(fail(request_id, kind));
    }
    Ok(ClientFrame {
        request_id,
        message,
    })
}

fn decode_body(kind: &str, frame: &str) -> Result<ClientMessage, DecodeErrorKind> {
    ClientMessage::decode_kind(kind, frame)
        .unwrap_or_else(|| Err(DecodeErrorKind::UnknownType(truncate(kind, 64))))
}

/// The second pass of [`decode`] for one known `type`: its body, or why it is not one.
fn client_body<'a, T: Deserialize<'a>>(
    kind: &'static str,
    frame: &'a str,
) -> Result<T, DecodeErrorKind> {
    serde_json::from_str(frame).map_err(|e| {
        let detail = truncate(&e.to_string(), 160);
        if detail.starts_with("invalid ") && detail.contains("Id") {
            DecodeErrorKind::InvalidId { kind, detail }
        } else {
            DecodeErrorKind::InvalidField { kind, detail }
        }
    })
}

#[cfg(test)]
mod tests;
