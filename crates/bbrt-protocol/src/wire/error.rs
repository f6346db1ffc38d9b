//! `error`, `ack` and `pong`; error codes, close codes and decode errors.

use serde::{Deserialize, Serialize};

use super::RequestId;
use crate::ids::{CallId, ClientMessageId, MessageId, ThreadId};

/// A stable, snake_case error code carried in every `error` frame.
///
/// Clients switch on the code, never on the human `message`. Decoding never fails: a code
/// this version does not know becomes [`ErrorCode::Unknown`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// The frame is not valid JSON.
    InvalidJson,
    /// The frame is JSON but not an object.
    NotAnObject,
    /// The object has no string `type`.
    MissingType,
    /// The `type` is not one bbrt knows.
    UnknownType,
    /// A field is missing, has the wrong type, or appears twice.
    InvalidField,
    /// An id is empty, too long, negative or holds a forbidden character.
    InvalidId,
    /// The frame is larger than the frame limit.
    FrameTooLarge,
    /// The JSON nests deeper than the depth limit.
    TooDeep,
    /// The message text is longer than the text limit.
    MessageTooLong,
    /// The message text is empty.
    EmptyMessage,
    /// A binary frame: bbrt speaks JSON text frames only.
    BinaryFrame,
    /// The connection is not identified, or its credential was refused.
    Unauthenticated,
    /// `userId` differs from the user the credential belongs to.
    IdentityMismatch,
    /// Not a participant of the thread (or the thread does not exist).
    Forbidden,
    /// The site rejected the request as invalid.
    Invalid,
    /// The site refused the message (not friends, blocked, unknown recipient).
    Refused,
    /// The site is unavailable; retry later.
    SiteUnavailable,
    /// The site did not confirm the message and its outcome is unknown: it may be stored.
    /// Retry with the same `clientMessageId`, which is reconciled before it is posted again.
    SendUnconfirmed,
    /// The `clientMessageId` was already used for a message with another text, `threadId`
    /// or `recipientId`.
    IdempotencyConflict,
    /// The site answered something unexpected; retry later.
    SiteError,
    /// Too many frames or actions; slow down.
    RateLimited,
    /// Too many requests waiting on this connection.
    QueueFull,
    /// The connection joined too many threads.
    TooManyThreads,
    /// The user has too many connections.
    TooManyConnections,
    /// Too many sends waiting for the site for this user.
    TooManyPending,
    /// The callee has no connection.
    RecipientOffline,
    /// No such call, or this connection is not a party to it.
    NotInCall,
    /// The caller is already in a call.
    CallInProgress,
    /// The request needs a `threadId` or a `recipientId`.
    MissingRecipient,
    /// The resume point's epoch is not the thread's: bbrt's counter started again. Resume
    /// with `sinceMessageId`, or load the thread.
    PositionEpoch,
    /// The resume point is ahead of the thread.
    PositionAhead,
    /// The resume point's message is not in the thread (as the user sees it).
    PositionUnknown,
    /// A replay of this thread is already under way on this connection.
    ResumePending,
    /// Something went wrong inside bbrt.
    Internal,
    /// A code this version does not know.
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidJson => "invalid_json",
            Self::NotAnObject => "not_an_object",
            Self::MissingType => "missing_type",
            Self::UnknownType => "unknown_type",
            Self::InvalidField => "invalid_field",
            Self::InvalidId => "invalid_id",
            Self::FrameTooLarge => "frame_too_large",
            Self::TooDeep => "too_deep",
            Self::MessageTooLong => "message_too_long",
            Self::EmptyMessage => "empty_message",
            Self::BinaryFrame => "binary_frame",
            Self::Unauthenticated => "unauthenticated",
            Self::IdentityMismatch => "identity_mismatch",
            Self::Forbidden => "forbidden",
            Self::Invalid => "invalid",
            Self::Refused => "refused",
            Self::SiteUnavailable => "site_unavailable",
            Self::SendUnconfirmed => "send_unconfirmed",
            Self::IdempotencyConflict => "idempotency_conflict",
            Self::SiteError => "site_error",
            Self::RateLimited => "rate_limited",
            Self::QueueFull => "queue_full",
            Self::TooManyThreads => "too_many_threads",
            Self::TooManyConnections => "too_many_connections",
            Self::TooManyPending => "too_many_pending",
            Self::RecipientOffline => "recipient_offline",
            Self::NotInCall => "not_in_call",
            Self::CallInProgress => "call_in_progress",
            Self::MissingRecipient => "missing_recipient",
            Self::PositionEpoch => "position_epoch",
            Self::PositionAhead => "position_ahead",
            Self::PositionUnknown => "position_unknown",
            Self::ResumePending => "resume_pending",
            Self::Internal => "internal",
            Self::Unknown => "unknown",
        }
    }

    /// The plain text clients read with this code.
    ///
    /// Always used for an error that comes from the site, whose own text (HTML, words that
    /// tell an unknown username from a wrong password, transport details) goes to the
    /// server's log only, and for every `unauthenticated`, whatever the cause. Other
    /// errors the Hub finds itself may say more precisely what was wrong.
    pub fn message(self) -> &'static str {
        match self {
            Self::InvalidJson => "the frame is not valid JSON",
            Self::NotAnObject => "a frame must be a JSON object",
            Self::MissingType => "the frame has no string type",
            Self::UnknownType => "unknown type",
            Self::InvalidField => "a field is missing, mistyped or repeated",
            Self::InvalidId => "an id is not valid",
            Self::FrameTooLarge => "the frame is too large",
            Self::TooDeep => "the JSON nests too deep",
            Self::MessageTooLong => "the message is too long",
            Self::EmptyMessage => "the message is empty",
            Self::BinaryFrame => "binary frames are not supported; send JSON text",
            Self::Unauthenticated => {
                "not authenticated: identify with user_connected and a valid credential"
            }
            Self::IdentityMismatch => "userId differs from the user the credential belongs to",
            Self::Forbidden => "not a participant of this thread",
            Self::Invalid => "the site rejected the request as invalid",
            Self::Refused => "the site refused the message",
            Self::SiteUnavailable => "the site is unavailable; try again later",
            Self::SendUnconfirmed => {
                "the site did not confirm the message and it may be stored; retry with the same clientMessageId"
            }
            Self::IdempotencyConflict => {
                "this clientMessageId was already used for another message"
            }
            Self::SiteError => "the site answered unexpectedly; try again later",
            Self::RateLimited => "too many frames; slow down",
            Self::QueueFull => "too many requests waiting on this connection",
            Self::TooManyThreads => "this connection joined too many threads",
            Self::TooManyConnections => "this user has too many connections",
            Self::TooManyPending => "too many messages waiting for the site; try again later",
            Self::RecipientOffline => "Recipient is not connected",
            Self::NotInCall => "no such call",
            Self::CallInProgress => "already in a call",
            Self::MissingRecipient => "threadId or recipientId is required",
            Self::PositionEpoch => {
                "the position is of another epoch; resume with sinceMessageId or reload the thread"
            }
            Self::PositionAhead => "the position is ahead of the thread",
            Self::PositionUnknown => "the message to resume after is not in the thread",
            Self::ResumePending => "a replay of this thread is already under way",
            Self::Internal => "internal error",
            Self::Unknown => "unknown error",
        }
    }

    /// Whether the same request may succeed if sent again later.
    pub fn retryable(self) -> bool {
        matches!(
            self,
            Self::SiteUnavailable
                | Self::SendUnconfirmed
                | Self::SiteError
                | Self::RateLimited
                | Self::QueueFull
                | Self::TooManyPending
        )
    }
}

/// Declares [`CloseCode`] from one table: variant, number, reason, meaning.
macro_rules! close_codes {
    ($($(#[doc = $doc:literal])* $name:ident = $code:literal, $reason:literal;)*) => {
        /// Every WebSocket close code the server sends on its own, and only those
        /// (`docs/protocol.md` lists the same; a test compares them). Codes 4000–4999 are
        /// bbrt's own. A client's close is answered with its own code echoed, whatever it
        /// is (1000 for a normal close).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum CloseCode {
            $($(#[doc = $doc])* $name,)*
        }

        impl CloseCode {
            /// Every close code, in numeric order.
            pub const ALL: &'static [Self] = &[$(Self::$name),*];

            /// The numeric code sent in the close frame.
            pub fn code(self) -> u16 {
                match self {
                    $(Self::$name => $code,)*
                }
            }

            /// The short reason sent with the code.
            pub fn reason(self) -> &'static str {
                match self {
                    $(Self::$name => $reason,)*
                }
            }
        }
    };
}

close_codes! {
    /// 1001: the server is shutting down.
    GoingAway = 1001, "server shutting down";
    /// 1002: the client broke RFC 6455's framing rules.
    ProtocolError = 1002, "protocol error";
    /// 1007: a text message (or a close reason) that is not UTF-8.
    InvalidPayload = 1007, "invalid utf-8";
    /// 1009: a message larger than the frame limit.
    TooBig = 1009, "frame too large";
    /// 4001: the site refused the credential (at connect, or when re-verified).
    CredentialRejected = 4001, "credential rejected";
    /// 4008: the connection kept exceeding its frame rate (control frames included).
    RateLimited = 4008, "rate limit exceeded";
    /// 4009: the user or address has too many connections.
    TooManyConnections = 4009, "too many connections";
    /// 4010: an anonymous connection evicted to make room (oldest first).
    AnonymousEvicted = 4010, "anonymous connection evicted";
    /// 4011: the client does not read fast enough (outbound queue full or writes stalled).
    SlowConsumer = 4011, "slow consumer";
    /// 4012: the client answered no ping within the idle timeout.
    IdleTimeout = 4012, "idle timeout";
}

/// Server → client `error`: the seed's `{type, message}` plus a stable `code`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorEvent {
    /// Human-readable text (the seed's field).
    pub message: String,
    /// Stable machine-readable code.
    pub code: ErrorCode,
    /// The `requestId` of the client frame this answers, if it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<RequestId>,
    /// Whether sending the same frame again later may succeed.
    #[serde(default)]
    pub retryable: bool,
}

impl ErrorEvent {
    /// An error with `code`'s default retryability.
    pub fn new(code: ErrorCode, message: impl Into<String>, request_id: Option<RequestId>) -> Self {
        Self {
            message: message.into(),
            code,
            request_id,
            retryable: code.retryable(),
        }
    }
}

/// Server → client `ack`: sent only when the client asked for one (`requestId` or
/// `clientMessageId`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Ack {
    /// The client's `requestId`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<RequestId>,
    /// The client's `clientMessageId`, for a `send_message`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_message_id: Option<ClientMessageId>,
    /// The stored message's id, for a `send_message`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<MessageId>,
    /// The thread concerned, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread_id: Option<ThreadId>,
    /// The call concerned, for call frames.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_id: Option<CallId>,
}

/// Server → client `pong`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pong {
    /// The `requestId` of the `ping`, if it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<RequestId>,
}

/// Client → server `ping` (no fields besides the envelope's).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Ping {}

/// Why a client frame could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}")]
pub struct DecodeError {
    /// The client's `requestId`, when it was readable.
    pub request_id: Option<RequestId>,
    /// What was wrong.
    pub kind: DecodeErrorKind,
}

impl DecodeError {
    /// The error code for the `error` frame that answers this.
    pub fn code(&self) -> ErrorCode {
        self.kind.code()
    }

    /// The `error` frame that answers this.
    pub fn to_event(&self) -> ErrorEvent {
        ErrorEvent::new(self.code(), self.kind.to_string(), self.request_id.clone())
    }
}

/// What was wrong with a client frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeErrorKind {
    /// Larger than the frame limit.
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    FrameTooLarge {
        /// The frame's length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A binary frame.
    #[error("binary frames are not supported; send JSON text")]
    Binary,
    /// Not JSON.
    #[error("invalid json: {0}")]
    InvalidJson(String),
    /// JSON, but not an object.
    #[error("a frame must be a json object")]
    NotAnObject,
    /// Nested deeper than the limit.
    #[error("json nested deeper than {max} levels")]
    TooDeep {
        /// The limit.
        max: usize,
    },
    /// No string `type` field.
    #[error("missing or non-string \"type\"")]
    MissingType,
    /// A `type` bbrt does not know.
    #[error("unknown type \"{0}\"")]
    UnknownType(String),
    /// A field is missing, mistyped or duplicated.
    #[error("invalid {kind}: {detail}")]
    InvalidField {
        /// The frame's type.
        kind: &'static str,
        /// serde's description of the problem.
        detail: String,
    },
    /// The `requestId` cannot be echoed: too long, not an `i64`, another JSON type, or
    /// repeated. The answer carries no `requestId`.
    #[error("invalid requestId: {0}")]
    InvalidRequestId(String),
    /// An id field is not a valid id.
    #[error("invalid {kind}: {detail}")]
    InvalidId {
        /// The frame's type.
        kind: &'static str,
        /// serde's description of the problem.
        detail: String,
    },
    /// The message text is too long.
    #[error("message of {len} bytes exceeds the limit of {max}")]
    MessageTooLong {
        /// The text's length.
        len: usize,
        /// The limit.
        max: usize,
    },
}

impl DecodeErrorKind {
    /// The error code for this kind.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::FrameTooLarge { .. } => ErrorCode::FrameTooLarge,
            Self::Binary => ErrorCode::BinaryFrame,
            Self::InvalidJson(_) => ErrorCode::InvalidJson,
            Self::NotAnObject => ErrorCode::NotAnObject,
            Self::TooDeep { .. } => ErrorCode::TooDeep,
            Self::MissingType => ErrorCode::MissingType,
            Self::UnknownType(_) => ErrorCode::UnknownType,
            Self::InvalidField { .. } | Self::InvalidRequestId(_) => ErrorCode::InvalidField,
            Self::InvalidId { .. } => ErrorCode::InvalidId,
            Self::MessageTooLong { .. } => ErrorCode::MessageTooLong,
        }
    }
}
