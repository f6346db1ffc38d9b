//! ICE servers for a peer connection (`docs/calls.md`, "TURN"): the request and the
//! answer, in the shape of the browser's `RTCIceServer`. The Hub only decides who gets
//! them; the server mints the TURN credentials (the shared secret never enters the Hub).

use std::fmt;

use serde::{Deserialize, Serialize};

use super::RequestId;

/// Client → server `get_ice_servers` (no fields besides the envelope's).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct GetIceServers {}

/// One entry of `iceServers`, as `RTCPeerConnection` takes it.
///
/// `Debug` hides the credential: it opens the TURN relay to whoever holds it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceServer {
    /// `stun:` / `turn:` / `turns:` URLs of one server.
    pub urls: Vec<String>,
    /// The TURN username (`<expiry unix seconds>:<user id>`); absent for STUN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// The TURN password; absent for STUN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

impl fmt::Debug for IceServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IceServer")
            .field("urls", &self.urls)
            .field("username", &self.username)
            .field(
                "credential",
                &self.credential.as_ref().map(|_| "[redacted]"),
            )
            .finish()
    }
}

/// Server → client `ice_servers`: the answer to `get_ice_servers`, and sent to a ringing
/// device just before `call_initiated`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IceServers {
    /// The servers, for `RTCPeerConnection`'s `iceServers` (empty when bbrt has none
    /// configured: the app uses its own).
    pub ice_servers: Vec<IceServer>,
    /// Seconds the TURN credentials stay valid for a new allocation; absent without TURN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<u64>,
    /// The `requestId` of the `get_ice_servers`, if it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<RequestId>,
}
