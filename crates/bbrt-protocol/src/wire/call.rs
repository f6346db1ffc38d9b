//! Call signaling: `call_initiated`, `offer`, `answer`, `ice-candidate`, and the lifecycle
//! extensions `call_accepted`, `call_rejected`, `call_ended`.
//!
//! `offer`, `answer` and `candidate` are any JSON value, relayed byte-for-byte.

use serde::{Deserialize, Serialize};

use super::Payload;
use crate::ids::{CallId, ThreadId, UserId};

/// Client → server call frame without a payload: `call_initiated`, `call_accepted`,
/// `call_rejected`, `call_ended`.
///
/// `senderId` is never trusted: the peer is whichever of `recipientId`/`senderId` is not
/// the verified sender (the seed's server routed `answer` by `senderId`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallControl {
    /// The peer, by the usual convention.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient_id: Option<UserId>,
    /// The sender by the usual convention, the peer by the other.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender_id: Option<UserId>,
    /// The thread both parties share.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread_id: Option<ThreadId>,
    /// The call, if the client knows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_id: Option<CallId>,
}

macro_rules! signal {
    ($(#[$doc:meta])* $name:ident, $field:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(rename_all = "camelCase")]
        pub struct $name {
            /// The WebRTC payload, relayed as is.
            pub $field: Payload,
            /// The peer, by the usual convention.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub recipient_id: Option<UserId>,
            /// Client → server: untrusted. Server → client: the verified sender.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub sender_id: Option<UserId>,
            /// The thread both parties share.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub thread_id: Option<ThreadId>,
            /// The call.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub call_id: Option<CallId>,
        }

        impl $name {
            /// The addressing fields, without the payload.
            pub fn control(&self) -> CallControl {
                CallControl {
                    recipient_id: self.recipient_id.clone(),
                    sender_id: self.sender_id.clone(),
                    thread_id: self.thread_id.clone(),
                    call_id: self.call_id.clone(),
                }
            }
        }
    };
}

signal!(
    /// `offer`, both directions.
    Offer,
    offer
);
signal!(
    /// `answer`, both directions.
    Answer,
    answer
);
signal!(
    /// `ice-candidate`, both directions.
    IceCandidate,
    candidate
);

/// Server → client `call_initiated` and `call_accepted`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallEvent {
    /// The call.
    pub call_id: CallId,
    /// The verified user who sent the frame that caused this event.
    pub sender_id: UserId,
    /// The other party.
    pub recipient_id: UserId,
    /// The thread.
    pub thread_id: ThreadId,
}

/// Server → client `call_ended`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallEnded {
    /// The call.
    pub call_id: CallId,
    /// The thread.
    pub thread_id: ThreadId,
    /// Why it ended.
    pub reason: EndReason,
}

/// Why a call ended (Matrix VoIP's hangup reasons, adapted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum EndReason {
    /// Another device of the callee answered first.
    AnsweredElsewhere,
    /// The callee rejected.
    Rejected,
    /// The caller cancelled before an answer.
    Cancelled,
    /// A party hung up.
    Hangup,
    /// Nobody answered within the ring timeout.
    Timeout,
    /// The callee is in another call.
    Busy,
    /// Both called each other at once; the call with the lesser id survived.
    Glare,
    /// A party's device disconnected and did not come back within the grace period.
    Disconnected,
    /// The site deleted the call's thread, or removed a party from it.
    ThreadClosed,
    /// A reason this version does not know.
    #[serde(other)]
    Unknown,
}
