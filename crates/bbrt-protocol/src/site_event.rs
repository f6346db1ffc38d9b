//! Site events: what happened on the website, as the companion plugin reports it
//! (`docs/wordpress.md`, "Site events"). These are the site channel's types and fields, not
//! frames: the server checks the signature and decodes the body into a [`SiteEvent`]; what
//! bbrt's clients then see is the Hub's business.
//!
//! Decoding is strict where a wrong value would reach a client (a missing or wrongly typed
//! field refuses the whole event) and lenient where the plugin may grow (unknown fields are
//! ignored, key order and spacing do not matter).

use serde::Deserialize;
use serde::de::DeserializeOwned;

/// The event types bbrt accepts, in the order `docs/wordpress.md` lists them: one list, read
/// by the decoder and by the server's metrics.
pub const SITE_EVENT_TYPES: [&str; 12] = [
    "message.sent",
    "messages.deleted",
    "thread.read",
    "thread.deleted_for_member",
    "thread.deleted",
    "participants.added",
    "participants.removed",
    "member.suspended",
    "member.unsuspended",
    "member.blocked",
    "member.unblocked",
    "member.deleted",
];

/// A WordPress id (users, threads, messages, groups): a positive integer on the site channel.
pub type SiteId = u64;

/// One event, decoded and checked against its envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteEvent {
    /// 32 lowercase hex, the same as the signed `X-BBRT-Event-Id`.
    pub id: String,
    /// The site's home URL, no trailing slash.
    pub site: String,
    /// Unix seconds when the plugin built the body.
    pub occurred_at: i64,
    /// What happened.
    pub kind: SiteEventKind,
}

/// A text as BuddyBoss's REST message object gives it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SiteText {
    /// Plain text (`wp_strip_all_tags` of the stored text).
    pub raw: String,
    /// The HTML after BuddyBoss's display filters.
    pub rendered: String,
}

/// A member's unread counts right after the change, as BuddyBoss keeps them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct SiteUnread {
    /// The member.
    pub user_id: SiteId,
    /// Their unread count in the event's thread.
    pub thread_unread: u64,
    /// Their unread total.
    pub inbox_unread: u64,
}

/// `message.sent`: a message stored by any path.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SiteMessageSent {
    /// The thread.
    pub thread_id: SiteId,
    /// The message.
    pub message_id: SiteId,
    /// Its author.
    pub sender_id: SiteId,
    /// Whether this message started the thread.
    pub new_thread: bool,
    /// The thread's subject.
    pub subject: SiteText,
    /// The text.
    pub message: SiteText,
    /// RFC 3339 UTC.
    pub date_sent: String,
    /// The idempotency key bbrt sent it with, when bbrt did.
    pub client_message_id: Option<String>,
    /// Everyone in the thread who has not deleted it, the sender included.
    pub participants: Vec<SiteId>,
    /// The counts of every participant but the sender.
    pub unread: Vec<SiteUnread>,
}

/// `messages.deleted`: a member deleted the thread for themselves, and BuddyBoss blanked
/// their messages in it for everyone.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SiteMessagesDeleted {
    /// The thread.
    pub thread_id: SiteId,
    /// The member who deleted.
    pub user_id: SiteId,
    /// Their messages, now blanked.
    pub message_ids: Vec<SiteId>,
    /// The thread's participants.
    pub participants: Vec<SiteId>,
}

/// `thread.read`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SiteThreadRead {
    /// The thread.
    pub thread_id: SiteId,
    /// The reader.
    pub user_id: SiteId,
    /// The thread's participants.
    pub participants: Vec<SiteId>,
    /// The reader's counts.
    pub unread: Vec<SiteUnread>,
}

/// `thread.deleted_for_member`: soft, undone by the thread's next message.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SiteThreadDeletedForMember {
    /// The thread.
    pub thread_id: SiteId,
    /// The member.
    pub user_id: SiteId,
    /// The member's counts.
    pub unread: Vec<SiteUnread>,
}

/// `thread.deleted`: gone for everyone.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SiteThreadDeleted {
    /// The thread.
    pub thread_id: SiteId,
    /// Its participants before the delete.
    pub participants: Vec<SiteId>,
}

/// `participants.added` / `participants.removed`: a group thread's membership.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SiteParticipantsChanged {
    /// The thread.
    pub thread_id: SiteId,
    /// The group whose thread it is.
    pub group_id: SiteId,
    /// Who joined or left.
    pub user_ids: Vec<SiteId>,
    /// The participants after the change.
    pub participants: Vec<SiteId>,
}

/// `member.blocked` / `member.unblocked`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct SiteBlock {
    /// Who blocked.
    pub user_id: SiteId,
    /// Who is blocked.
    pub blocked_user_id: SiteId,
}

/// `member.suspended`, `member.unsuspended`, `member.deleted`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct SiteMember {
    /// The member.
    pub user_id: SiteId,
}

/// What happened, by type.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SiteEventKind {
    /// `message.sent`.
    MessageSent(SiteMessageSent),
    /// `messages.deleted`.
    MessagesDeleted(SiteMessagesDeleted),
    /// `thread.read`.
    ThreadRead(SiteThreadRead),
    /// `thread.deleted_for_member`.
    ThreadDeletedForMember(SiteThreadDeletedForMember),
    /// `thread.deleted`.
    ThreadDeleted(SiteThreadDeleted),
    /// `participants.added`.
    ParticipantsAdded(SiteParticipantsChanged),
    /// `participants.removed`.
    ParticipantsRemoved(SiteParticipantsChanged),
    /// `member.suspended`.
    MemberSuspended(SiteMember),
    /// `member.unsuspended`.
    MemberUnsuspended(SiteMember),
    /// `member.blocked`.
    MemberBlocked(SiteBlock),
    /// `member.unblocked`.
    MemberUnblocked(SiteBlock),
    /// `member.deleted`.
    MemberDeleted(SiteMember),
}

impl SiteEventKind {
    /// The event's `type`, one of [`SITE_EVENT_TYPES`].
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::MessageSent(_) => "message.sent",
            Self::MessagesDeleted(_) => "messages.deleted",
            Self::ThreadRead(_) => "thread.read",
            Self::ThreadDeletedForMember(_) => "thread.deleted_for_member",
            Self::ThreadDeleted(_) => "thread.deleted",
            Self::ParticipantsAdded(_) => "participants.added",
            Self::ParticipantsRemoved(_) => "participants.removed",
            Self::MemberSuspended(_) => "member.suspended",
            Self::MemberUnsuspended(_) => "member.unsuspended",
            Self::MemberBlocked(_) => "member.blocked",
            Self::MemberUnblocked(_) => "member.unblocked",
            Self::MemberDeleted(_) => "member.deleted",
        }
    }
}

/// Why a body is not an event bbrt accepts (each is a 400 on the events route).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SiteEventError {
    /// Not JSON, not an object, or an envelope field missing or of the wrong type.
    #[error("malformed")]
    Malformed,
    /// The body's `id` is not the signed event id.
    #[error("id mismatch")]
    IdMismatch,
    /// A `type` bbrt does not know.
    #[error("unknown type")]
    UnknownType,
    /// A known type whose `data` lacks a field or holds one of the wrong type.
    #[error("bad data")]
    BadData,
}

impl SiteEventError {
    /// A short stable name, for logs and the metrics' label.
    pub fn name(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::IdMismatch => "id_mismatch",
            Self::UnknownType => "unknown_type",
            Self::BadData => "bad_data",
        }
    }
}

#[derive(Deserialize)]
struct Envelope {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    site: String,
    occurred_at: i64,
    data: serde_json::Value,
}

fn data<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, SiteEventError> {
    if !value.is_object() {
        return Err(SiteEventError::BadData);
    }
    serde_json::from_value(value).map_err(|_| SiteEventError::BadData)
}

impl SiteEvent {
    /// Decodes `body`, which must carry `expected_id` (the signed `X-BBRT-Event-Id`).
    ///
    /// # Errors
    /// [`SiteEventError`], checked in that order: envelope, id, type, data.
    pub fn decode(body: &[u8], expected_id: &str) -> Result<Self, SiteEventError> {
        let envelope: Envelope =
            serde_json::from_slice(body).map_err(|_| SiteEventError::Malformed)?;
        if envelope.id != expected_id {
            return Err(SiteEventError::IdMismatch);
        }
        let d = envelope.data;
        let kind = match envelope.kind.as_str() {
            "message.sent" => SiteEventKind::MessageSent(data(d)?),
            "messages.deleted" => SiteEventKind::MessagesDeleted(data(d)?),
            "thread.read" => SiteEventKind::ThreadRead(data(d)?),
            "thread.deleted_for_member" => SiteEventKind::ThreadDeletedForMember(data(d)?),
            "thread.deleted" => SiteEventKind::ThreadDeleted(data(d)?),
            "participants.added" => SiteEventKind::ParticipantsAdded(data(d)?),
            "participants.removed" => SiteEventKind::ParticipantsRemoved(data(d)?),
            "member.suspended" => SiteEventKind::MemberSuspended(data(d)?),
            "member.unsuspended" => SiteEventKind::MemberUnsuspended(data(d)?),
            "member.blocked" => SiteEventKind::MemberBlocked(data(d)?),
            "member.unblocked" => SiteEventKind::MemberUnblocked(data(d)?),
            "member.deleted" => SiteEventKind::MemberDeleted(data(d)?),
            _ => return Err(SiteEventError::UnknownType),
        };
        debug_assert!(SITE_EVENT_TYPES.contains(&kind.type_name()));
        Ok(Self {
            id: envelope.id,
            site: envelope.site,
            occurred_at: envelope.occurred_at,
            kind,
        })
    }
}

/// The server API's request types (`POST /site/api`, `docs/wordpress.md`, "The server API").
pub const SITE_API_TYPES: [&str; 3] = ["publish", "disconnect", "online"];

/// `publish`: a message to deliver as bbrt delivers a stored one.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SitePublish {
    /// The message, with the fields of `message.sent`; its `participants` are the thread's.
    pub message: SiteMessageSent,
    /// When given, only these members receive it (publish to a user); otherwise every
    /// participant (publish to the thread).
    #[serde(default)]
    pub user_ids: Option<Vec<SiteId>>,
}

/// `online`: which of these members have a live connection on any node.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SiteOnline {
    /// The members asked about (at most [`MAX_ONLINE_QUERY`]).
    pub user_ids: Vec<SiteId>,
}

/// The most members one `online` request may ask about.
pub const MAX_ONLINE_QUERY: usize = 1000;

/// What the Hub does for a backend.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SiteCommand {
    /// Deliver a message.
    Publish(Box<SitePublish>),
    /// Close every connection of a member, on every node (they may connect again).
    Disconnect(SiteMember),
}

/// A server-API request, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SiteApiRequest {
    /// For the Hub.
    Command(SiteCommand),
    /// Answered by the driver from [`Hub::is_online`](crate::Hub::is_online).
    Online(SiteOnline),
}

impl SiteApiRequest {
    /// Decodes a server-API body (the events' envelope) carrying `expected_id`.
    ///
    /// # Errors
    /// As [`SiteEvent::decode`].
    pub fn decode(body: &[u8], expected_id: &str) -> Result<Self, SiteEventError> {
        let envelope: Envelope =
            serde_json::from_slice(body).map_err(|_| SiteEventError::Malformed)?;
        if envelope.id != expected_id {
            return Err(SiteEventError::IdMismatch);
        }
        let d = envelope.data;
        Ok(match envelope.kind.as_str() {
            "publish" => Self::Command(SiteCommand::Publish(Box::new(data(d)?))),
            "disconnect" => Self::Command(SiteCommand::Disconnect(data(d)?)),
            "online" => {
                let online: SiteOnline = data(d)?;
                if online.user_ids.len() > MAX_ONLINE_QUERY {
                    return Err(SiteEventError::BadData);
                }
                Self::Online(online)
            }
            _ => return Err(SiteEventError::UnknownType),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ID: &str = "0123456789abcdef0123456789abcdef";

    fn body(kind: &str, data: serde_json::Value) -> Vec<u8> {
        json!({"id": ID, "type": kind, "site": "https://s.example", "occurred_at": 1, "data": data})
            .to_string()
            .into_bytes()
    }

    #[test]
    fn every_listed_type_decodes_and_names_itself() {
        let samples = [
            json!({"thread_id": 1, "message_id": 2, "sender_id": 3, "new_thread": false,
                   "subject": {"raw": "s", "rendered": "s"}, "message": {"raw": "m", "rendered": "<p>m</p>"},
                   "date_sent": "2026-12-01T10:00:00Z", "client_message_id": null,
                   "participants": [3, 4], "unread": [{"user_id": 4, "thread_unread": 1, "inbox_unread": 2}]}),
            json!({"thread_id": 1, "user_id": 3, "message_ids": [2], "participants": [3, 4]}),
            json!({"thread_id": 1, "user_id": 4, "participants": [3, 4], "unread": []}),
            json!({"thread_id": 1, "user_id": 4, "unread": []}),
            json!({"thread_id": 1, "participants": [3, 4]}),
            json!({"thread_id": 1, "group_id": 9, "user_ids": [5], "participants": [3, 4, 5]}),
            json!({"thread_id": 1, "group_id": 9, "user_ids": [5], "participants": [3, 4]}),
            json!({"user_id": 4}),
            json!({"user_id": 4}),
            json!({"user_id": 3, "blocked_user_id": 4}),
            json!({"user_id": 3, "blocked_user_id": 4}),
            json!({"user_id": 4}),
        ];
        for (kind, sample) in SITE_EVENT_TYPES.iter().zip(samples) {
            let event = SiteEvent::decode(&body(kind, sample), ID).expect(kind);
            assert_eq!(event.kind.type_name(), *kind);
        }
    }

    #[test]
    fn refusals_name_their_cause() {
        let member = json!({"user_id": 4});
        assert_eq!(SiteEvent::decode(b"{", ID), Err(SiteEventError::Malformed));
        assert_eq!(
            SiteEvent::decode(b"[1]", ID),
            Err(SiteEventError::Malformed)
        );
        assert_eq!(
            SiteEvent::decode(
                &body("member.deleted", member.clone()),
                "f".repeat(32).as_str()
            ),
            Err(SiteEventError::IdMismatch)
        );
        assert_eq!(
            SiteEvent::decode(&body("member.exploded", member), ID),
            Err(SiteEventError::UnknownType)
        );
        for bad in [
            json!({}),
            json!({"user_id": "4"}),
            json!({"user_id": -4}),
            json!([4]),
        ] {
            assert_eq!(
                SiteEvent::decode(&body("member.deleted", bad.clone()), ID),
                Err(SiteEventError::BadData),
                "{bad}"
            );
        }
        let api =
            |kind: &str, data: serde_json::Value| SiteApiRequest::decode(&body(kind, data), ID);
        assert!(matches!(
            api("online", json!({"user_ids": [2, 3]})),
            Ok(SiteApiRequest::Online(_))
        ));
        assert!(matches!(
            api("disconnect", json!({"user_id": 2})),
            Ok(SiteApiRequest::Command(SiteCommand::Disconnect(_)))
        ));
        assert_eq!(
            api("online", json!({"user_ids": vec![1; MAX_ONLINE_QUERY + 1]})),
            Err(SiteEventError::BadData)
        );
        assert_eq!(
            api("message.sent", json!({})),
            Err(SiteEventError::UnknownType),
            "events are not requests"
        );
        let no_site =
            json!({"id": ID, "type": "member.deleted", "occurred_at": 1, "data": {"user_id": 4}});
        assert_eq!(
            SiteEvent::decode(no_site.to_string().as_bytes(), ID),
            Err(SiteEventError::Malformed)
        );
    }
}
