//! `join_thread`, `leave_thread` and `joined`.

use serde::{Deserialize, Serialize};

use super::{Position, RequestId};
use crate::ids::{MessageId, ThreadId, UserId};

/// Client → server `join_thread` / `leave_thread`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadRef {
    /// The thread.
    pub thread_id: ThreadId,
}

/// Server → client `joined`: the answer to `join_thread`.
///
/// Field names keep the substring "message" out (the seed's Flutter client classifies
/// frames by substring): `lastMessageId` is camel-cased.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Joined {
    /// The thread.
    pub thread_id: ThreadId,
    /// Every participant and whether they are online.
    pub participants: Vec<Participant>,
    /// The newest stored message, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_message_id: Option<MessageId>,
    /// The thread's latest position, when bbrt counts positions for it: where a client that
    /// was never here resumes from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<Position>,
    /// The `requestId` of the `join_thread`, if it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<RequestId>,
}

/// Server → client `thread_deleted`: the site deleted the thread for everyone
/// (`everyone`), or for the receiving member only (soft: the thread's next message brings
/// it back).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadDeleted {
    /// The thread.
    pub thread_id: ThreadId,
    /// Deleted for every participant, not only the receiver.
    pub everyone: bool,
}

/// Server → client `thread_left`: members are no longer in the thread (removed from its
/// group, or they left it). They receive nothing more of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadLeft {
    /// The thread.
    pub thread_id: ThreadId,
    /// Who is out.
    pub user_ids: Vec<UserId>,
}

/// One participant in a `joined` frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Participant {
    /// The participant.
    pub user_id: UserId,
    /// Whether they have a live verified connection on any node.
    pub online: bool,
}
