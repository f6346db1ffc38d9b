//! Reconnect recovery: positions, `join_thread` with a resume point, `resume` and
//! `resumed` (`docs/protocol.md`, "Recovery").
//!
//! A position is bbrt's own per-thread delivery offset and the epoch it counts in. Site
//! message ids are table-wide (a thread's ids have gaps) and delivery order is not id order,
//! so "after id 11" can lose 10; an offset cannot. The epoch tells a reset (the counter
//! started again: a restart, a window dropped) from a gap.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

use super::ErrorCode;
use crate::ids::{MessageId, ThreadId};

/// The longest epoch accepted from a client, in bytes (bbrt's own are far shorter).
pub const MAX_EPOCH_BYTES: usize = 64;

/// The counter a [`Position`]'s offset belongs to: opaque text, compared for equality only.
#[derive(Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Epoch(Box<str>);

impl Epoch {
    /// An epoch; `None` if it is empty, longer than [`MAX_EPOCH_BYTES`] or not printable
    /// ASCII.
    pub fn new(s: &str) -> Option<Self> {
        let ok =
            !s.is_empty() && s.len() <= MAX_EPOCH_BYTES && s.bytes().all(|b| b.is_ascii_graphic());
        ok.then(|| Self(s.into()))
    }

    /// The epoch as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "epoch:{}", self.0)
    }
}

impl<'de> Deserialize<'de> for Epoch {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Self::new(&s).ok_or_else(|| {
            serde::de::Error::custom(format_args!(
                "invalid epoch: 1 to {MAX_EPOCH_BYTES} printable ASCII bytes"
            ))
        })
    }
}

/// Where a thread event stands in its thread's delivery order.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Position {
    /// 1 for the thread's first event in `epoch`, then one more per event.
    pub offset: u64,
    /// The counter `offset` belongs to.
    pub epoch: Epoch,
}

impl Position {
    /// `frame` (an encoded server frame, a JSON object without a position) with this
    /// position as its last field: the bytes encoding the event with the position would
    /// give. The coordinator keeps frames without their position and the Hub stamps them
    /// once their offset is known, without encoding the event again.
    pub fn stamp(&self, frame: &[u8]) -> bytes::Bytes {
        let position = serde_json::to_vec(self).expect("a position always serializes");
        let Some(body) = frame.strip_suffix(b"}") else {
            return bytes::Bytes::copy_from_slice(frame);
        };
        let mut out = Vec::with_capacity(frame.len() + position.len() + 12);
        out.extend_from_slice(body);
        if body.last() != Some(&b'{') {
            out.push(b',');
        }
        out.extend_from_slice(b"\"position\":");
        out.extend_from_slice(&position);
        out.push(b'}');
        out.into()
    }
}

/// Client → server `join_thread`, with where the client stopped if it was here before.
///
/// `since` is exact. `sinceMessageId` (the last message the client holds) is resolved
/// through the window, which keeps delivery order, and past it through the site. A client
/// that sends both is served by `since`, and by `sinceMessageId` when `since` is of another
/// epoch or fell out of the window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JoinThread {
    /// The thread.
    pub thread_id: ThreadId,
    /// The position of the last event the client received.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<Position>,
    /// The id of the last message the client holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since_message_id: Option<MessageId>,
}

impl JoinThread {
    /// A plain join, with no resume point.
    pub fn new(thread_id: ThreadId) -> Self {
        Self {
            thread_id,
            since: None,
            since_message_id: None,
        }
    }

    /// Whether the client asked for what it missed.
    pub fn resumes(&self) -> bool {
        self.since.is_some() || self.since_message_id.is_some()
    }
}

/// Client → server `resume`: `join_thread` with a resume point for many threads at once,
/// after a reconnect (at most the threads-per-connection limit).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Resume {
    /// The threads, each as `join_thread` would name it.
    pub threads: Vec<JoinThread>,
}

/// Which source served a replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplaySource {
    /// bbrt's per-thread window: no site request.
    Window,
    /// The site's history, with the user's own credential.
    Site,
    /// Nothing was replayed (an error, or the client is told to reload).
    None,
}

/// Server → client `resumed`: the replay of a thread is written and live delivery goes on
/// from here. Sent after the replayed `message` frames; field names keep "message" out (the
/// seed's Flutter client classifies frames by substring).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Resumed {
    /// The thread.
    pub thread_id: ThreadId,
    /// Where the replay came from.
    pub source: ReplaySource,
    /// Every event after the resume point was replayed. `false` with `reload` unset: the
    /// site's one-second paging could not tell whether more remain.
    pub complete: bool,
    /// The client is too far behind (or its point fell out of every source): it should
    /// load the thread itself (the site's REST API) and resume from there.
    pub reload: bool,
    /// How many `message` frames were replayed.
    pub replayed: usize,
    /// The thread's latest position, when bbrt counts positions for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<Position>,
    /// Why nothing was replayed, for a thread of a `resume` frame (a `join_thread` gets an
    /// `error` instead).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<ErrorCode>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{ClientMessage, Limits, ServerMessage, decode};

    #[test]
    fn a_stamped_frame_is_the_frame_encoded_with_its_position() {
        use crate::ids::UserId;
        use crate::wire::MessageEvent;
        let mut event = MessageEvent {
            id: MessageId::new("11").expect("a valid id"),
            thread_id: ThreadId::new("7").expect("a valid id"),
            sender_id: UserId::new("2").expect("a valid id"),
            message: "a \"quoted\" }".into(),
            html: None,
            sent_at: "2026-12-01T10:00:00Z".into(),
            client_message_id: None,
            unread: None,
            position: None,
        };
        let bare = ServerMessage::Message(event.clone()).encode();
        let position = Position {
            offset: 3,
            epoch: Epoch::new("i1.\"s2").expect("a valid epoch"),
        };
        event.position = Some(position.clone());
        let encoded = ServerMessage::Message(event).encode();
        assert_eq!(position.stamp(&bare), encoded);
    }

    #[test]
    fn join_thread_takes_a_position_a_message_id_or_both() {
        let frame = r#"{"type":"join_thread","threadId":"7","since":{"offset":3,"epoch":"i1.2"},"sinceMessageId":11}"#;
        let decoded = decode(frame, &Limits::default()).expect("a valid frame");
        let ClientMessage::JoinThread(m) = decoded.message else {
            panic!("a join_thread");
        };
        assert_eq!(m.since.as_ref().map(|p| p.offset), Some(3));
        assert_eq!(m.since.as_ref().map(|p| p.epoch.as_str()), Some("i1.2"));
        assert_eq!(
            m.since_message_id.as_ref().map(|id| id.as_str()),
            Some("11")
        );
        assert!(m.resumes());
        let plain = decode(
            r#"{"type":"join_thread","threadId":"7"}"#,
            &Limits::default(),
        );
        assert!(
            matches!(plain, Ok(f) if matches!(&f.message, ClientMessage::JoinThread(m) if !m.resumes()))
        );
    }

    #[test]
    fn a_bad_epoch_or_offset_is_a_field_error_with_the_request_id() {
        for since in [
            r#"{"offset":1,"epoch":""}"#,
            r#"{"offset":-1,"epoch":"e"}"#,
            r#"{"offset":1,"epoch":"has space"}"#,
            &format!(
                r#"{{"offset":1,"epoch":"{}"}}"#,
                "e".repeat(MAX_EPOCH_BYTES + 1)
            ),
        ] {
            let frame =
                format!(r#"{{"type":"join_thread","threadId":"7","since":{since},"requestId":5}}"#);
            let error = decode(&frame, &Limits::default()).expect_err("refused");
            assert_eq!(error.to_event().code.as_str(), "invalid_field", "{since}");
            assert_eq!(error.request_id, Some(crate::wire::RequestId::Num(5)));
        }
    }

    #[test]
    fn resumed_round_trips_and_keeps_the_word_message_out() {
        let resumed = ServerMessage::Resumed(Resumed {
            thread_id: ThreadId::new("7").expect("a valid id"),
            source: ReplaySource::Site,
            complete: false,
            reload: false,
            replayed: 3,
            position: Some(Position {
                offset: 9,
                epoch: Epoch::new("i1.2").expect("a valid epoch"),
            }),
            code: None,
        });
        let bytes = resumed.encode();
        let text = std::str::from_utf8(&bytes).expect("utf-8");
        assert_eq!(
            text,
            r#"{"type":"resumed","threadId":"7","source":"site","complete":false,"reload":false,"replayed":3,"position":{"offset":9,"epoch":"i1.2"}}"#
        );
        assert!(!text.contains("message"));
        assert_eq!(ServerMessage::decode(&bytes).expect("decodes"), resumed);
    }
}
