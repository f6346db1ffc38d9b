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

/// A client → server message (the seed's types first, then bbrt's extensions).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type")]
#[non_exhaustive]
pub enum ClientMessage {
    /// Identify the connection.
    #[serde(rename = "user_connected")]
    UserConnected(UserConnected),
    /// Join a thread.
    #[serde(rename = "join_thread")]
    JoinThread(JoinThread),
    /// Send a message.
    #[serde(rename = "send_message")]
    SendMessage(SendMessage),
    /// Typing indicator.
    #[serde(rename = "typing")]
    Typing(Typing),
    /// Start a call.
    #[serde(rename = "call_initiated")]
    CallInitiated(CallControl),
    /// WebRTC offer.
    #[serde(rename = "offer")]
    Offer(Offer),
    /// WebRTC answer.
    #[serde(rename = "answer")]
    Answer(Answer),
    /// WebRTC ICE candidate.
    #[serde(rename = "ice-candidate")]
    IceCandidate(IceCandidate),
    /// Leave a thread (stop receiving its presence).
    #[serde(rename = "leave_thread")]
    LeaveThread(ThreadRef),
    /// Mark a thread read.
    #[serde(rename = "mark_read")]
    MarkRead(ThreadRef),
    /// Accept a ringing call.
    #[serde(rename = "call_accepted")]
    CallAccepted(CallControl),
    /// Reject a ringing call.
    #[serde(rename = "call_rejected")]
    CallRejected(CallControl),
    /// Cancel or hang up a call.
    #[serde(rename = "call_ended")]
    CallEnded(CallControl),
    /// Liveness check.
    #[serde(rename = "ping")]
    Ping(Ping),
    /// Ask for STUN/TURN servers before building a peer connection.
    #[serde(rename = "get_ice_servers")]
    GetIceServers(GetIceServers),
    /// Join many threads after a reconnect, each with where the client stopped.
    #[serde(rename = "resume")]
    Resume(Resume),
}

impl ClientMessage {
    /// The wire `type`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::UserConnected(_) => "user_connected",
            Self::JoinThread(_) => "join_thread",
            Self::SendMessage(_) => "send_message",
            Self::Typing(_) => "typing",
            Self::CallInitiated(_) => "call_initiated",
            Self::Offer(_) => "offer",
            Self::Answer(_) => "answer",
            Self::IceCandidate(_) => "ice-candidate",
            Self::LeaveThread(_) => "leave_thread",
            Self::MarkRead(_) => "mark_read",
            Self::CallAccepted(_) => "call_accepted",
            Self::CallRejected(_) => "call_rejected",
            Self::CallEnded(_) => "call_ended",
            Self::Ping(_) => "ping",
            Self::GetIceServers(_) => "get_ice_servers",
            Self::Resume(_) => "resume",
        }
    }

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

    /// Every client `type` bbrt knows, in wire spelling.
    pub const KINDS: [&'static str; 16] = [
        "user_connected",
        "join_thread",
        "send_message",
        "typing",
        "call_initiated",
        "offer",
        "answer",
        "ice-candidate",
        "leave_thread",
        "mark_read",
        "call_accepted",
        "call_rejected",
        "call_ended",
        "ping",
        "get_ice_servers",
        "resume",
    ];
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

/// A server → client message.
///
/// Decoded by [`ServerMessage::decode`] in two passes like client frames (serde's
/// internally tagged enums cannot hold the raw WebRTC payloads).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type")]
#[non_exhaustive]
pub enum ServerMessage {
    /// A user came online.
    #[serde(rename = "user_connected")]
    UserConnected(PresenceEvent),
    /// A user went offline.
    #[serde(rename = "user_disconnected")]
    UserDisconnected(PresenceEvent),
    /// A stored message.
    #[serde(rename = "message")]
    Message(MessageEvent),
    /// A participant is typing.
    #[serde(rename = "typing")]
    Typing(TypingEvent),
    /// A call is ringing.
    #[serde(rename = "call_initiated")]
    CallInitiated(CallEvent),
    /// WebRTC offer from the peer.
    #[serde(rename = "offer")]
    Offer(Offer),
    /// WebRTC answer from the peer.
    #[serde(rename = "answer")]
    Answer(Answer),
    /// WebRTC ICE candidate from the peer.
    #[serde(rename = "ice-candidate")]
    IceCandidate(IceCandidate),
    /// The callee accepted.
    #[serde(rename = "call_accepted")]
    CallAccepted(CallEvent),
    /// The call ended.
    #[serde(rename = "call_ended")]
    CallEnded(CallEnded),
    /// A participant read the thread.
    #[serde(rename = "read")]
    Read(ReadEvent),
    /// The site blanked messages.
    #[serde(rename = "deleted")]
    Deleted(Deleted),
    /// The site deleted the thread.
    #[serde(rename = "thread_deleted")]
    ThreadDeleted(ThreadDeleted),
    /// Members are out of the thread.
    #[serde(rename = "thread_left")]
    ThreadLeft(ThreadLeft),
    /// The answer to `join_thread`.
    #[serde(rename = "joined")]
    Joined(Joined),
    /// Confirmation of a request that asked for one.
    #[serde(rename = "ack")]
    Ack(Ack),
    /// The answer to `ping`.
    #[serde(rename = "pong")]
    Pong(Pong),
    /// STUN/TURN servers for a peer connection.
    #[serde(rename = "ice_servers")]
    IceServers(IceServers),
    /// A thread's replay is written; live delivery goes on.
    #[serde(rename = "resumed")]
    Resumed(Resumed),
    /// Something went wrong.
    #[serde(rename = "error")]
    Error(ErrorEvent),
}

impl ServerMessage {
    /// Serializes once; the bytes are shared among all recipients.
    pub fn encode(&self) -> Bytes {
        Bytes::from(
            serde_json::to_vec(self)
                .expect("server messages always serialize: string keys, no floats"),
        )
    }

    /// The wire `type`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::UserConnected(_) => "user_connected",
            Self::UserDisconnected(_) => "user_disconnected",
            Self::Message(_) => "message",
            Self::Typing(_) => "typing",
            Self::CallInitiated(_) => "call_initiated",
            Self::Offer(_) => "offer",
            Self::Answer(_) => "answer",
            Self::IceCandidate(_) => "ice-candidate",
            Self::CallAccepted(_) => "call_accepted",
            Self::CallEnded(_) => "call_ended",
            Self::Read(_) => "read",
            Self::Deleted(_) => "deleted",
            Self::ThreadDeleted(_) => "thread_deleted",
            Self::ThreadLeft(_) => "thread_left",
            Self::Joined(_) => "joined",
            Self::Ack(_) => "ack",
            Self::Pong(_) => "pong",
            Self::IceServers(_) => "ice_servers",
            Self::Resumed(_) => "resumed",
            Self::Error(_) => "error",
        }
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
        Ok(match kind.kind.as_ref() {
            "user_connected" => Self::UserConnected(serde_json::from_slice(frame)?),
            "user_disconnected" => Self::UserDisconnected(serde_json::from_slice(frame)?),
            "message" => Self::Message(serde_json::from_slice(frame)?),
            "typing" => Self::Typing(serde_json::from_slice(frame)?),
            "call_initiated" => Self::CallInitiated(serde_json::from_slice(frame)?),
            "offer" => Self::Offer(serde_json::from_slice(frame)?),
            "answer" => Self::Answer(serde_json::from_slice(frame)?),
            "ice-candidate" => Self::IceCandidate(serde_json::from_slice(frame)?),
            "call_accepted" => Self::CallAccepted(serde_json::from_slice(frame)?),
            "call_ended" => Self::CallEnded(serde_json::from_slice(frame)?),
            "read" => Self::Read(serde_json::from_slice(frame)?),
            "deleted" => Self::Deleted(serde_json::from_slice(frame)?),
            "thread_deleted" => Self::ThreadDeleted(serde_json::from_slice(frame)?),
            "thread_left" => Self::ThreadLeft(serde_json::from_slice(frame)?),
            "joined" => Self::Joined(serde_json::from_slice(frame)?),
            "ack" => Self::Ack(serde_json::from_slice(frame)?),
            "pong" => Self::Pong(serde_json::from_slice(frame)?),
            "ice_servers" => Self::IceServers(serde_json::from_slice(frame)?),
            "resumed" => Self::Resumed(serde_json::from_slice(frame)?),
            "error" => Self::Error(serde_json::from_slice(frame)?),
            other => {
                return Err(de::Error::custom(format_args!(
                    "unknown server type {other:?}"
                )));
            }
        })
    }
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
    fn body<'a, T: Deserialize<'a>>(
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
    Ok(match kind {
        "user_connected" => ClientMessage::UserConnected(body("user_connected", frame)?),
        "join_thread" => ClientMessage::JoinThread(body("join_thread", frame)?),
        "send_message" => ClientMessage::SendMessage(body("send_message", frame)?),
        "typing" => ClientMessage::Typing(body("typing", frame)?),
        "call_initiated" => ClientMessage::CallInitiated(body("call_initiated", frame)?),
        "offer" => ClientMessage::Offer(body("offer", frame)?),
        "answer" => ClientMessage::Answer(body("answer", frame)?),
        "ice-candidate" => ClientMessage::IceCandidate(body("ice-candidate", frame)?),
        "leave_thread" => ClientMessage::LeaveThread(body("leave_thread", frame)?),
        "mark_read" => ClientMessage::MarkRead(body("mark_read", frame)?),
        "call_accepted" => ClientMessage::CallAccepted(body("call_accepted", frame)?),
        "call_rejected" => ClientMessage::CallRejected(body("call_rejected", frame)?),
        "call_ended" => ClientMessage::CallEnded(body("call_ended", frame)?),
        "ping" => ClientMessage::Ping(body("ping", frame)?),
        "get_ice_servers" => ClientMessage::GetIceServers(body("get_ice_servers", frame)?),
        "resume" => ClientMessage::Resume(body("resume", frame)?),
        other => return Err(DecodeErrorKind::UnknownType(truncate(other, 64))),
    })
}

#[cfg(test)]
mod tests;
