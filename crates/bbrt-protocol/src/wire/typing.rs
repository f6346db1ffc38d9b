//! `typing`, both directions.

use serde::{Deserialize, Serialize};

use crate::ids::{ThreadId, UserId};

/// Client → server `typing`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Typing {
    /// The thread being typed in.
    pub thread_id: ThreadId,
    /// `false` when the user stopped; absent means `true` (the seed sends no field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typing: Option<bool>,
}

/// Server → client `typing`, to the other participants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TypingEvent {
    /// The thread.
    pub thread_id: ThreadId,
    /// Who is typing.
    pub user_id: UserId,
    /// Whether they are typing now (the seed's React example reads `data.typing`).
    pub typing: bool,
}
