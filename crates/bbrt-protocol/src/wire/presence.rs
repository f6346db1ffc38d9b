//! `user_connected` (both directions) and `user_disconnected`.

use serde::{Deserialize, Serialize};

use crate::ids::UserId;
use crate::secret::Token;

/// Client → server `user_connected`: identify this connection.
///
/// `userId` must equal the user the credential belongs to; the embedded development site
/// alone trusts a bare `userId`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserConnected {
    /// The user the client says it is.
    pub user_id: UserId,
    /// A credential, stripped by the connection layer before the Hub sees the frame.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<Token>,
    /// A connection ticket from the companion plugin (`docs/wordpress.md`), stripped like
    /// `token`; it is verified by the server, never by the Hub.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket: Option<Token>,
}

/// Server → client `user_connected` / `user_disconnected`: a user's presence changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PresenceEvent {
    /// The user who came online or went offline.
    pub user_id: UserId,
}
