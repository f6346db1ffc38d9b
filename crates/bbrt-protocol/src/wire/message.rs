//! `send_message`, `message`, `mark_read` and `read`.

use serde::{Deserialize, Serialize};

use super::Position;
use crate::ids::{ClientMessageId, MessageId, ThreadId, UserId};
use crate::secret::Token;

/// Client → server `send_message`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SendMessage {
    /// The text.
    pub message: String,
    /// The thread to post in; without it, a new thread with `recipientId`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread_id: Option<ThreadId>,
    /// The recipient (the seed always sends it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient_id: Option<UserId>,
    /// A credential, stripped by the connection layer before the Hub sees the frame.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<Token>,
    /// The client's idempotency id: a retry with the same id never posts twice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_message_id: Option<ClientMessageId>,
}

/// Server → client `message`: a message the site stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageEvent {
    /// The site's message id.
    pub id: MessageId,
    /// The thread.
    pub thread_id: ThreadId,
    /// The verified sender.
    pub sender_id: UserId,
    /// Plain text (the seed's React example renders `message.message`).
    pub message: String,
    /// Rendered HTML from the site, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html: Option<String>,
    /// When the site stored it, RFC 3339 UTC.
    pub sent_at: String,
    /// The sender's idempotency id, if it gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_message_id: Option<ClientMessageId>,
    /// The recipient's unread counts, when the site reported them (a message sent on the
    /// website): each recipient's copy carries their own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unread: Option<Unread>,
    /// Where it stands in the thread's delivery order, when bbrt counts positions for the
    /// thread (a resume point: `docs/protocol.md`, "Recovery").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<Position>,
}

/// A member's unread counts as the site keeps them, right after a change. The field names
/// keep "message" out (the seed's Flutter client classifies frames by substring).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Unread {
    /// Unread in the frame's thread.
    pub thread: u64,
    /// Unread in all their threads.
    pub total: u64,
}

/// Server → client `deleted`: the site blanked these messages for everyone (their author
/// deleted the thread for themselves). The name keeps "message" out (the seed's Flutter
/// client classifies frames by substring).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Deleted {
    /// The thread.
    pub thread_id: ThreadId,
    /// Their author.
    pub user_id: UserId,
    /// The messages.
    pub ids: Vec<MessageId>,
}

/// Server → client `read`: a participant read the thread.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadEvent {
    /// The thread.
    pub thread_id: ThreadId,
    /// The reader.
    pub user_id: UserId,
    /// The reader's unread counts after the read, in the reader's own copy, when the site
    /// reported them (a read on the website).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unread: Option<Unread>,
}
