//! `error`, `ack` and `pong`; error codes, close codes and decode errors.

use serde::{Deserialize, Serialize};

use super::RequestId;
use crate::ids::{CallId, ClientMessageId, MessageId, ThreadId};

/// Declares [`ErrorCode`] from one table: variant, wire code, the fixed text clients read.
macro_rules! error_codes {
    ($($(#[doc = $doc:literal])* $name:ident = $code:literal, $message:literal;)*) => {
        /// A stable, snake_case error code carried in every `error` frame.
        ///
        /// Clients switch on the code, never on the human `message`. Decoding never fails: a
        /// code this version does not know becomes [`ErrorCode::Unknown`]. `docs/protocol.md`
        /// lists the same codes ("Error codes"); a test compares them both ways.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[non_exhaustive]
        pub enum ErrorCode {
            $($(#[doc = $doc])* #[serde(rename = $code)] $name,)*
            /// A code this version does not know.
            #[serde(rename = "unknown", other)]
            Unknown,
        }

        impl ErrorCode {
            /// Every code bbrt sends, in table order ([`ErrorCode::Unknown`] is only read).
            pub const ALL: &'static [Self] = &[$(Self::$name),*];

            /// The code as it appears on the wire.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$name => $code,)*
                    Self::Unknown => "unknown",
                }
            }

            /// The plain text clients read with this code.
            ///
            /// Always used for an error that comes from the site, whose own text (HTML, words
            /// that tell an unknown username from a wrong password, transport details) goes to
            /// the server's log only, and for every `unauthenticated`, whatever the cause.
            /// Other errors the Hub finds itself may say more precisely what was wrong.
            pub fn message(self) -> &'static str {
                match self {
                    $(Self::$name => $message,)*
                    Self::Unknown => "unknown error",
                }
            }
        }
    };
}

error_codes! {
    /// The frame is not valid JSON.
    InvalidJson = "invalid_json", "the frame is not valid JSON";
    /// The frame is JSON but not an object.
    NotAnObject = "not_an_object", "a frame must be a JSON object";
    /// The object has no string `type`.
    MissingType = "missing_type", "the frame has no string type";
    /// The `type` is not one bbrt knows.
    UnknownType = "unknown_type", "unknown type";
    /// A field is missing, has the wrong type, or appears twice.
    InvalidField = "invalid_field", "a field is missing, mistyped or repeated";
    /// An id is empty, too long, negative or holds a forbidden character.
    InvalidId = "invalid_id", "an id is not valid";
    /// The frame is larger than the frame limit.
    FrameTooLarge = "frame_too_large", "the frame is too large";
    /// The JSON nests deeper than the depth limit.
    TooDeep = "too_deep", "the JSON nests too deep";
    /// The message text is longer than the text limit.
    MessageTooLong = "message_too_long", "the message is too long";
    /// The message text is empty.
    EmptyMessage = "empty_message", "the message is empty";
    /// A binary frame: bbrt speaks JSON text frames only.
    BinaryFrame = "binary_frame", "binary frames are not supported; send JSON text";
    /// The connection is not identified, or its credential was refused.
    Unauthenticated = "unauthenticated",
        "not authenticated: identify with user_connected and a valid credential";
    /// `userId` differs from the user the credential belongs to.
    IdentityMismatch = "identity_mismatch",
        "userId differs from the user the credential belongs to";
    /// Not a participant of the thread (or the thread does not exist).
    Forbidden = "forbidden", "not a participant of this thread";
    /// The site rejected the request as invalid.
    Invalid = "invalid", "the site rejected the request as invalid";
    /// The site refused the message (not friends, blocked, unknown recipient).
    Refused = "refused", "the site refused the message";
    /// The site is unavailable; retry later.
    SiteUnavailable = "site_unavailable", "the site is unavailable; try again later";
    /// The site did not confirm the message and its outcome is unknown: it may be stored.
    /// Retry with the same `clientMessageId`, which is reconciled before it is posted again.
    SendUnconfirmed = "send_unconfirmed",
        "the site did not confirm the message and it may be stored; retry with the same clientMessageId";
    /// The `clientMessageId` was already used for a message with another text, `threadId`
    /// or `recipientId`.
    IdempotencyConflict = "idempotency_conflict",
        "this clientMessageId was already used for another message";
    /// The site answered something unexpected; retry later.
    SiteError = "site_error", "the site answered unexpectedly; try again later";
    /// Too many frames or actions; slow down.
    RateLimited = "rate_limited", "too many frames; slow down";
    /// Too many requests waiting on this connection.
    QueueFull = "queue_full", "too many requests waiting on this connection";
    /// The connection joined too many threads.
    TooManyThreads = "too_many_threads", "this connection joined too many threads";
    /// The user has too many connections.
    TooManyConnections = "too_many_connections", "this user has too many connections";
    /// Too many sends waiting for the site for this user.
    TooManyPending = "too_many_pending", "too many messages waiting for the site; try again later";
    /// The callee has no connection.
    RecipientOffline = "recipient_offline", "Recipient is not connected";
    /// No such call, or this connection is not a party to it.
    NotInCall = "not_in_call", "no such call";
    /// The caller is already in a call.
    CallInProgress = "call_in_progress", "already in a call";
    /// The request needs a `threadId` or a `recipientId`.
    MissingRecipient = "missing_recipient", "threadId or recipientId is required";
    /// The resume point's epoch is not the thread's: bbrt's counter started again. Resume
    /// with `sinceMessageId`, or load the thread.
    PositionEpoch = "position_epoch",
        "the position is of another epoch; resume with sinceMessageId or reload the thread";
    /// The resume point is ahead of the thread.
    PositionAhead = "position_ahead", "the position is ahead of the thread";
    /// The resume point's message is not in the thread (as the user sees it).
    PositionUnknown = "position_unknown", "the message to resume after is not in the thread";
    /// A replay of this thread is already under way on this connection.
    ResumePending = "resume_pending", "a replay of this thread is already under way";
    /// Something went wrong inside bbrt.
    Internal = "internal", "internal error";
}

impl ErrorCode {
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
