//! What crosses between nodes (broker publications) and what needs global agreement
//! (coordination requests).
//!
//! The Hub decides what crosses; the broker (in-process or Redis) only carries it. A
//! publication is applied by every process but the one that published it (its
//! [`InstanceId`]: two processes may be given the same node id by mistake, and must still
//! hear each other). Frames cross already encoded, so a node delivers them without
//! re-encoding.

use std::time::Instant;

use bytes::Bytes;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::window::WindowRead;
use super::{Hub, PendingCoord};
use crate::ids::{
    CallId, ClientMessageId, CoordRequestId, DeviceRef, InstanceId, MessageId, NodeId, ThreadId,
    UserId,
};
use crate::wire::{Epoch, Position};

/// A publication from one node to the others.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerMessage {
    /// The node that published it: what its users' presence and its calls' devices are
    /// filed under.
    pub origin: NodeId,
    /// The process that published it; that process ignores it when it comes back.
    /// Publications of versions before instance ids have none: they read as
    /// [`BrokerMessage::UNKNOWN_INSTANCE`], another process (so a rolling upgrade keeps
    /// them).
    #[serde(default = "unknown_instance")]
    pub instance: InstanceId,
    /// What happened.
    pub event: BrokerEvent,
}

/// Another process publishes with this Hub's node id: both are serving, but what names
/// a node (call ids, call devices, liveness) is ambiguous between them. The driver reports
/// it (`docs/scaling.md`, "Node identity").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeIdConflict {
    /// The other process, as last heard.
    pub instance: InstanceId,
    /// When it was first heard (since it last changed).
    pub since: Instant,
    /// When it was last heard.
    pub last_seen: Instant,
}

fn unknown_instance() -> InstanceId {
    InstanceId::new(BrokerMessage::UNKNOWN_INSTANCE).expect("a valid literal id")
}

impl Sequenced {
    /// The epoch of the position a publication carries before the coordinator gives it.
    pub const PLACEHOLDER_EPOCH: &'static str = "bbrt-position-placeholder";

    /// The position a publication carries before the coordinator gives it.
    pub fn placeholder() -> Position {
        Position {
            offset: 0,
            epoch: Epoch::new(Self::PLACEHOLDER_EPOCH).expect("a valid literal epoch"),
        }
    }
}

/// A sequenced publication's JSON cut where the coordinator puts the position in: the
/// frame's own (inside its JSON string, escaped) and `sequenced`'s. See
/// [`BrokerMessage::sequenced_parts`] and [`SequencedParts::compose`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SequencedParts {
    /// Up to the frame's closing `}`.
    pub head: Vec<u8>,
    /// From the frame's closing `}` to `sequenced`'s `"position":`.
    pub middle: Vec<u8>,
    /// After `sequenced`'s position.
    pub tail: Vec<u8>,
}

impl SequencedParts {
    /// The publication's JSON with `position` (and `since_previous_ms`) in: byte for byte
    /// what serializing the stamped publication gives. The Redis coordinator's script
    /// does the same concatenation; epochs it splices are checked to need no escaping.
    pub fn compose(&self, position: &Position, since_previous_ms: Option<u64>) -> Vec<u8> {
        let (offset, epoch) = (position.offset, position.epoch.as_str());
        let mut out = Vec::with_capacity(self.head.len() + self.middle.len() + 128);
        out.extend_from_slice(&self.head);
        out.extend_from_slice(
            format!(r#",\"position\":{{\"offset\":{offset},\"epoch\":\"{epoch}\"}}"#).as_bytes(),
        );
        out.extend_from_slice(&self.middle);
        out.extend_from_slice(format!(r#"{{"offset":{offset},"epoch":"{epoch}"}}"#).as_bytes());
        if let Some(ms) = since_previous_ms {
            out.extend_from_slice(format!(r#","since_previous_ms":{ms}"#).as_bytes());
        }
        out.extend_from_slice(&self.tail);
        out
    }

    /// Whether `epoch` can be spliced as it is (no JSON escaping at either level).
    pub fn splices(epoch: &str) -> bool {
        epoch
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b':'))
    }
}

impl BrokerMessage {
    /// The instance of a publication that names none (a version before instance ids).
    pub const UNKNOWN_INSTANCE: &'static str = "unknown";

    /// This publication cut for the coordinator to put the position in, if it is a
    /// `Deliver` of an unstamped frame (a JSON object) with the placeholder position.
    pub fn sequenced_parts(&self) -> Option<SequencedParts> {
        let BrokerEvent::Deliver {
            frame,
            sequenced: Some(s),
            ..
        } = &self.event
        else {
            return None;
        };
        if s.position != Sequenced::placeholder() || s.since_previous_ms.is_some() {
            return None;
        }
        let json = self.to_json();
        let text = std::str::from_utf8(frame).ok()?;
        let quoted = serde_json::to_string(text).ok()?;
        let field = format!(r#""frame":{quoted}"#);
        let at = find(&json, field.as_bytes())?;
        // The frame's closing brace: just before its closing quote.
        let brace = at + field.len() - 2;
        if json.get(brace) != Some(&b'}') {
            return None;
        }
        let placeholder = format!(
            r#""position":{{"offset":0,"epoch":"{}"}}"#,
            Sequenced::PLACEHOLDER_EPOCH
        );
        let p = rfind(&json, placeholder.as_bytes())?;
        let value = p + r#""position":"#.len();
        Some(SequencedParts {
            head: json[..brace].to_vec(),
            middle: json[brace..value].to_vec(),
            tail: json[p + placeholder.len()..].to_vec(),
        })
    }

    /// The bytes [`BrokerMessage::to_json`] of every publication of `origin` and
    /// `instance` starts with: a process tells its own publications coming back by them,
    /// without parsing what it will drop.
    pub fn json_prefix(origin: &NodeId, instance: &InstanceId) -> Vec<u8> {
        /// `BrokerMessage`'s leading fields, in its order.
        #[derive(Serialize)]
        struct Leading<'a> {
            origin: &'a NodeId,
            instance: &'a InstanceId,
        }
        let mut prefix =
            serde_json::to_vec(&Leading { origin, instance }).expect("ids always serialize");
        // `{"origin":…,"instance":…}` continues with `,"event":`.
        prefix.pop();
        prefix.push(b',');
        prefix
    }

    /// JSON for a broker that carries bytes (Redis).
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("broker messages always serialize")
    }

    /// Parses [`BrokerMessage::to_json`] output.
    ///
    /// # Errors
    /// When `bytes` are not a broker message of this version.
    pub fn from_json(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

/// The state of a call, as replicated to every node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallSnapshot {
    /// The call.
    pub call: CallId,
    /// The thread both parties share.
    pub thread: ThreadId,
    /// Who called.
    pub caller: UserId,
    /// The caller's device.
    pub caller_device: DeviceRef,
    /// Who is called.
    pub callee: UserId,
}

/// A `message` and its place in its thread's delivery order.
///
/// Its fields keep this order, `position` then `since_previous_ms` last: a coordinator
/// that publishes (Redis) splices them into the publication's JSON
/// ([`BrokerMessage::sequenced_parts`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sequenced {
    /// The thread.
    pub thread: ThreadId,
    /// The site's message id.
    pub id: MessageId,
    /// Its position, as the coordinator gave it.
    pub position: Position,
    /// How long before it the coordinator counted the thread's previous message, in
    /// milliseconds (absent: the first of its epoch). A node that has delivered nothing of
    /// the thread yet waits for the previous message only if it may still be in flight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since_previous_ms: Option<u64>,
}

/// An event published to the other nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum BrokerEvent {
    /// Deliver `frame` to every local connection of `users`.
    Deliver {
        /// Recipients.
        users: Vec<UserId>,
        /// The encoded server frame.
        #[serde(with = "frame_text")]
        frame: Bytes,
        /// For a `message` with a position: which, so that every node delivers its
        /// thread's messages in position order (absent in publications of versions before
        /// positions crossed nodes, which are delivered as they come).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sequenced: Option<Sequenced>,
    },
    /// A user's first connection on the origin opened, or its last closed.
    Presence {
        /// The user.
        user: UserId,
        /// Online on the origin node.
        online: bool,
    },
    /// The origin's complete set of online users (answer to [`BrokerEvent::SyncRequest`],
    /// and sent periodically when the driver gives the Hub `Input::PresenceSnapshot`).
    PresenceSnapshot {
        /// Users online on the origin.
        users: Vec<UserId>,
    },
    /// The participants of a thread changed, as the origin learned from the site (a join,
    /// a stored message, a fetch after the cache expired).
    Participants {
        /// The thread.
        thread: ThreadId,
        /// Every participant.
        participants: Vec<UserId>,
        /// The newest message, if the origin knows it.
        last_message: Option<MessageId>,
    },
    /// A bound device of a call disconnected; its node ends the call after the grace unless
    /// `user` resumes it from another device (on any node).
    CallOrphaned {
        /// The call.
        call: CallId,
        /// The user whose device is gone.
        user: UserId,
    },
    /// The origin (re)started and wants everyone's presence and calls.
    SyncRequest,
    /// A call rings the callee's devices.
    CallRing(CallSnapshot),
    /// Deliver a call frame to the callee's devices that are ringing for `call`.
    CallToRinging {
        /// The call.
        call: CallId,
        /// The encoded frame.
        #[serde(with = "frame_text")]
        frame: Bytes,
    },
    /// Deliver a call frame to one device.
    CallToDevice {
        /// The call.
        call: CallId,
        /// The device.
        device: DeviceRef,
        /// The encoded frame.
        #[serde(with = "frame_text")]
        frame: Bytes,
    },
    /// A callee device won the answer.
    CallAnswered {
        /// The call.
        call: CallId,
        /// The device that answered.
        device: DeviceRef,
    },
    /// A bound device of the call is now another connection of the same user.
    CallRebound {
        /// The call.
        call: CallId,
        /// The user whose device changed.
        user: UserId,
        /// The new device.
        device: DeviceRef,
    },
    /// The call is over.
    CallEnded {
        /// The call.
        call: CallId,
        /// Why, as on the wire.
        reason: crate::wire::EndReason,
    },
    /// A backend asked to disconnect `user`: every node closes their connections.
    Disconnect {
        /// The member.
        user: UserId,
    },
    /// The site suspended or deleted `user` (`allowed` false: every node closes their
    /// connections and refuses them for a while), or unsuspended them (`allowed` true).
    MemberAccess {
        /// The member.
        user: UserId,
        /// Whether they may connect.
        allowed: bool,
    },
}

impl BrokerEvent {
    /// Whether the event is about a call (names calls and devices by node id).
    fn is_call(&self) -> bool {
        match self {
            Self::CallOrphaned { .. }
            | Self::CallRing(_)
            | Self::CallToRinging { .. }
            | Self::CallToDevice { .. }
            | Self::CallAnswered { .. }
            | Self::CallRebound { .. }
            | Self::CallEnded { .. } => true,
            Self::Deliver { .. }
            | Self::Presence { .. }
            | Self::PresenceSnapshot { .. }
            | Self::Participants { .. }
            | Self::MemberAccess { .. }
            | Self::Disconnect { .. }
            | Self::SyncRequest => false,
        }
    }
}

/// A request that needs agreement among all nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum CoordRequest {
    /// Claim a `clientMessageId` before posting. Answered with
    /// [`CoordResponse::Claimed`], or [`CoordResponse::Done`] when that send already
    /// completed (the coordinator waits while another node holds it in flight).
    ///
    /// A record made with another [`SendFingerprint`] answers [`CoordResponse::Conflict`];
    /// one whose outcome is unknown answers [`CoordResponse::Unconfirmed`] and is claimed.
    ClaimSend {
        /// The sender.
        user: UserId,
        /// The client's id.
        client_message_id: ClientMessageId,
        /// What the send's parameters hash to (the coordinator keeps a keyed digest of it).
        fingerprint: SendFingerprint,
    },
    /// Record the outcome of a claimed send.
    FinishSend {
        /// The sender.
        user: UserId,
        /// The client's id.
        client_message_id: ClientMessageId,
        /// What the send's parameters hash to.
        fingerprint: SendFingerprint,
        /// What came of it.
        outcome: SendOutcome,
    },
    /// Claim the answer of a ringing call for a device. Answered with
    /// [`CoordResponse::Won`] for the first claim and [`CoordResponse::Lost`] after.
    ClaimAnswer {
        /// The call.
        call: CallId,
        /// The device that wants to answer.
        device: DeviceRef,
    },
    /// Give a `message` the next position in its thread and keep it in the thread's shared
    /// window. Answered with [`CoordResponse::Sequenced`]. Sent once per message (never
    /// retried: a retry could count it twice).
    Sequence {
        /// The thread.
        thread: ThreadId,
        /// The site's message id.
        id: MessageId,
        /// The encoded `message` frame without a position or unread counts: the window
        /// keeps it [stamped](crate::wire::Position::stamp) with its position.
        #[serde(with = "frame_text")]
        frame: Bytes,
        /// The epoch to start the thread's counter in, if it has none (a new thread, or
        /// the coordinator lost it): new for every request, so a reset is always told
        /// from a gap.
        epoch: Epoch,
        /// The message's publications (one per copy): `Deliver`s whose frame has no
        /// position yet and whose `sequenced` position is [`Sequenced::placeholder`]. A
        /// coordinator that can publish them with the position it gives, in the same
        /// atomic step (Redis), does, so every node hears a thread's messages in position
        /// order; it then answers `published: true` and the Hub publishes nothing.
        publish: Vec<BrokerMessage>,
    },
    /// Read a thread's shared window for `user`'s join (started, at offset 0, if the
    /// thread has none: a client that joins an empty thread can resume from its first
    /// message), or to fill a gap in the thread's live delivery. Answered with
    /// [`CoordResponse::Window`].
    ReadWindow {
        /// The thread.
        thread: ThreadId,
        /// Whose join (their deletion point comes with it); `None` for a gap fill.
        user: Option<UserId>,
        /// The epoch to start the thread's counter in, if it has none.
        epoch: Epoch,
    },
    /// `user` deleted `thread` for themselves: the shared window replays them nothing from
    /// before now. Answered with [`CoordResponse::Ok`].
    DeletedFor {
        /// The thread.
        thread: ThreadId,
        /// The member.
        user: UserId,
    },
}

/// The answer to a [`CoordRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum CoordResponse {
    /// The send is yours to perform.
    Claimed,
    /// The send already completed.
    Done(SendReceipt),
    /// The send is yours to perform, but an earlier attempt ended unconfirmed (recorded at
    /// this Unix time): look for it on the site before posting.
    Unconfirmed {
        /// When the earliest unconfirmed attempt was recorded, Unix seconds.
        since_unix_secs: i64,
    },
    /// The `clientMessageId` was used for a send with other parameters.
    Conflict,
    /// This device answers the call.
    Won,
    /// Another device answered first.
    Lost,
    /// Recorded.
    Ok,
    /// The message's position in its thread.
    Sequenced {
        /// The position.
        position: Position,
        /// How long before it the thread's previous message was counted, in milliseconds
        /// (`None`: it is the first of its epoch).
        since_previous_ms: Option<u64>,
        /// The request's publications went out, stamped with the position.
        published: bool,
    },
    /// A thread's shared window.
    Window(WindowRead),
    /// The coordinator is unreachable.
    Unavailable,
}

/// What came of a claimed send, for [`CoordRequest::FinishSend`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum SendOutcome {
    /// Stored: later claims answer [`CoordResponse::Done`] with this receipt.
    Stored(SendReceipt),
    /// Surely not stored: the claim is released and the send may be posted again.
    Failed,
    /// Maybe stored: later claims answer [`CoordResponse::Unconfirmed`], so a retry looks
    /// for the message before it posts. Never released early: a release would let the
    /// retry post a second copy.
    Unconfirmed {
        /// When the earliest unconfirmed attempt was recorded, if an earlier one was;
        /// the coordinator keeps the earlier of this and now.
        since_unix_secs: Option<i64>,
    },
}

/// A digest of a send's parameters (`threadId`, `recipientId`, text), so that a
/// `clientMessageId` reused for another message is told apart from a retry.
///
/// FNV-1a over the parameters: stable across versions and nodes, not keyed (the Hub holds
/// no secret). It stays in memory; a coordinator that stores it elsewhere (Redis) stores a
/// keyed digest of it instead, so short texts cannot be recovered by guessing. `Debug`
/// does not print it, for the same reason.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SendFingerprint(u64);

impl SendFingerprint {
    /// The fingerprint of a send's parameters, as the client gave them.
    pub fn of(thread: Option<&ThreadId>, recipient: Option<&UserId>, text: &str) -> Self {
        const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
        const PRIME: u64 = 0x0000_0100_0000_01b3;
        let mut hash = OFFSET;
        let mut eat = |bytes: &[u8]| {
            for &b in bytes {
                hash ^= u64::from(b);
                hash = hash.wrapping_mul(PRIME);
            }
        };
        // Each field is prefixed by its presence and length, so fields cannot run into
        // each other.
        for field in [
            thread.map(ThreadId::as_str),
            recipient.map(UserId::as_str),
            Some(text),
        ] {
            match field {
                Some(value) => {
                    eat(&[1]);
                    eat(&(value.len() as u64).to_le_bytes());
                    eat(value.as_bytes());
                }
                None => eat(&[0]),
            }
        }
        Self(hash)
    }

    /// The fingerprint as bytes, for a keyed digest.
    pub fn to_bytes(self) -> [u8; 8] {
        self.0.to_be_bytes()
    }
}

impl std::fmt::Debug for SendFingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SendFingerprint(..)")
    }
}

/// Where a completed send was stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendReceipt {
    /// The stored message.
    pub id: MessageId,
    /// Its thread.
    pub thread: ThreadId,
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn rfind(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).rposition(|w| w == needle)
}

pub(crate) mod frame_text {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(
        frame: &Bytes,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        let text = std::str::from_utf8(frame).map_err(serde::ser::Error::custom)?;
        serializer.serialize_str(text)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Bytes, D::Error> {
        String::deserialize(deserializer).map(Bytes::from)
    }
}

impl Hub {
    pub(super) fn broker(&mut self, now: Instant, message: BrokerMessage) {
        if message.instance == self.config.instance {
            return;
        }
        if message.origin == self.config.node_id {
            self.heard_node_id_conflict(now, message.instance);
            // Calls name devices and ids by node id: the other process's would be taken for
            // this one's (a frame for its connection 7 delivered to ours). Everything else
            // names users and threads, and still crosses.
            if message.event.is_call() {
                return;
            }
        }
        let origin = message.origin;
        if self.down_nodes.contains(&origin) {
            // A publication sent before the node died but delivered after we heard it did
            // would resurrect its users and calls forever. A node that starts again
            // announces itself with a sync request or a presence snapshot.
            if !matches!(
                message.event,
                BrokerEvent::SyncRequest | BrokerEvent::PresenceSnapshot { .. }
            ) {
                return;
            }
            self.down_nodes.remove(&origin);
        }
        match message.event {
            BrokerEvent::Deliver {
                users,
                frame,
                sequenced: Some(sequenced),
            } => self.deliver_sequenced(now, users, frame, sequenced),
            BrokerEvent::Deliver { users, frame, .. } => {
                let conns = self.conns_of(&users);
                self.deliver_published(conns, frame);
            }
            BrokerEvent::Presence { user, online } => self.remote_presence(&origin, user, online),
            BrokerEvent::PresenceSnapshot { users } => self.remote_snapshot(&origin, users),
            BrokerEvent::SyncRequest => {
                let users = self.presence_users();
                self.publish(BrokerEvent::PresenceSnapshot { users });
                self.publish_own_calls();
            }
            BrokerEvent::Participants {
                thread,
                participants,
                last_message,
            } => {
                self.replace_participants(now, &thread, &participants, last_message);
            }
            BrokerEvent::CallOrphaned { call, user } => self.apply_orphaned(&call, user),
            BrokerEvent::CallRing(snapshot) => self.remote_call_ring(now, snapshot),
            BrokerEvent::CallToRinging { call, frame } => self.deliver_to_ringing(&call, frame),
            BrokerEvent::CallToDevice { device, frame, .. } => {
                self.deliver_to_device(&device, frame)
            }
            BrokerEvent::CallAnswered { call, device } => self.apply_answered(&call, device),
            BrokerEvent::CallRebound { call, user, device } => {
                self.apply_rebound(&call, &user, device)
            }
            BrokerEvent::CallEnded { call, reason } => self.apply_ended(&call, reason),
            BrokerEvent::Disconnect { user } => self.disconnect_user(now, &user),
            BrokerEvent::MemberAccess { user, allowed } => {
                self.member_access(now, &user, allowed);
            }
        }
    }

    pub(super) fn node_down(&mut self, node: &NodeId) {
        if *node == self.config.node_id {
            // Only another process with this id can be announced gone (its goodbye): what
            // it said of its users is void, and the conflict is over.
            self.node_id_conflict = None;
            for user in self.dir.remote_users_of(node) {
                self.remote_presence(node, user, false);
            }
            return;
        }
        self.down_nodes.insert(node.clone());
        for user in self.dir.remote_users_of(node) {
            self.remote_presence(node, user, false);
        }
        self.calls_node_down(node);
    }

    fn heard_node_id_conflict(&mut self, now: Instant, instance: InstanceId) {
        self.fx.stats.node_id_conflict_publications += 1;
        match &mut self.node_id_conflict {
            Some(c) if c.instance == instance => c.last_seen = now,
            other => {
                *other = Some(NodeIdConflict {
                    instance,
                    since: now,
                    last_seen: now,
                });
            }
        }
    }

    /// Another process heard publishing with this node's id, if any since start (or since
    /// it said goodbye). The Hub keeps serving and applies its publications but for calls;
    /// whether the conflict is still live (`last_seen` recent enough) is for the driver to
    /// judge, since it knows how often a live node publishes.
    pub fn node_id_conflict(&self) -> Option<&NodeIdConflict> {
        self.node_id_conflict.as_ref()
    }

    /// Publishes this node's online users ([`Input::PresenceSnapshot`](super::Input::PresenceSnapshot)).
    pub(super) fn presence_snapshot(&mut self) {
        let users = self.presence_users();
        self.publish(BrokerEvent::PresenceSnapshot { users });
    }

    /// Asks the other nodes for their presence and calls, and tells them ours
    /// ([`Input::Resync`](super::Input::Resync)).
    pub(super) fn resync(&mut self) {
        self.publish(BrokerEvent::SyncRequest);
        self.presence_snapshot();
    }

    pub(super) fn coord_result(&mut self, now: Instant, id: CoordRequestId, result: CoordResponse) {
        let Some(pending) = self.coord_pending.remove(&id) else {
            return;
        };
        match pending {
            PendingCoord::ClaimSend(key) => self.claim_send_result(now, key, result),
            PendingCoord::ClaimAnswer(pending) => self.claim_answer_result(now, pending, result),
            PendingCoord::Sequence(out) => self.sequence_result(now, *out, result),
            PendingCoord::ReadWindow(conn, thread) => {
                self.read_window_result(now, conn, thread, result);
            }
            PendingCoord::FillGap(thread) => self.fill_gap_result(now, &thread, result),
            PendingCoord::Ignore => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{MessageEvent, ServerMessage};

    fn id<T: std::str::FromStr>(s: &str) -> T
    where
        T::Err: std::fmt::Debug,
    {
        s.parse().expect("a valid id")
    }

    #[test]
    fn a_composed_publication_is_the_stamped_one_serialized() {
        let event = MessageEvent {
            id: id("41"),
            thread_id: id("7"),
            sender_id: id("2"),
            // What a client controls, escapes included, and a look-alike of the
            // placeholder in the text.
            message:
                r#"a "quoted" } \ "position":{"offset":0,"epoch":"bbrt-position-placeholder"}"#
                    .into(),
            html: None,
            sent_at: "2026-12-01T10:00:00Z".into(),
            client_message_id: None,
            unread: None,
            position: None,
        };
        let frame = ServerMessage::Message(event.clone()).encode();
        let publication = |frame: Bytes, position: Position, since_previous_ms| BrokerMessage {
            origin: id("n1"),
            instance: id("i1"),
            event: BrokerEvent::Deliver {
                users: vec![id("2"), id("3")],
                frame,
                sequenced: Some(Sequenced {
                    thread: id("7"),
                    id: id("41"),
                    position,
                    since_previous_ms,
                }),
            },
        };
        let parts = publication(frame.clone(), Sequenced::placeholder(), None)
            .sequenced_parts()
            .expect("a sequenced deliver");
        let position = Position {
            offset: 12,
            epoch: Epoch::new("k3x9.s4").expect("a valid epoch"),
        };
        for since in [None, Some(40)] {
            let stamped = publication(position.stamp(&frame), position.clone(), since);
            assert_eq!(
                String::from_utf8(parts.compose(&position, since)).expect("utf-8"),
                String::from_utf8(stamped.to_json()).expect("utf-8")
            );
        }
        assert!(SequencedParts::splices("k3x9.s4"));
        assert!(!SequencedParts::splices(r#"a"b"#));
        let unplaced = publication(frame, position, None);
        assert_eq!(
            unplaced.sequenced_parts(),
            None,
            "only the placeholder is cut"
        );
    }

    #[test]
    fn a_publication_starts_with_its_processes_prefix() {
        let message = |origin: &str, instance: &str| BrokerMessage {
            origin: id(origin),
            instance: id(instance),
            event: BrokerEvent::SyncRequest,
        };
        let own = BrokerMessage::json_prefix(&id("n1"), &id("i1"));
        assert!(message("n1", "i1").to_json().starts_with(&own));
        let parts = BrokerMessage {
            event: BrokerEvent::Deliver {
                users: vec![id("2")],
                frame: Bytes::from_static(br#"{"type":"message"}"#),
                sequenced: Some(Sequenced {
                    thread: id("7"),
                    id: id("41"),
                    position: Sequenced::placeholder(),
                    since_previous_ms: None,
                }),
            },
            ..message("n1", "i1")
        };
        let parts = parts.sequenced_parts().expect("a sequenced deliver");
        assert!(
            parts.head.starts_with(&own),
            "what the script publishes too"
        );
        // Another process, even one given the same node id by mistake, or one whose id
        // this one's extends.
        for (origin, instance) in [("n1", "i2"), ("n2", "i1"), ("n1", "i10"), ("n10", "i1")] {
            assert!(!message(origin, instance).to_json().starts_with(&own));
        }
    }
}
