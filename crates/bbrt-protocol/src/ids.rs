//! Identifiers: opaque ids that cross the wire, and handles local to one process.
//!
//! Wire ids (user, thread, message, call) are opaque strings. Clients may send them as
//! JSON strings or non-negative integers (BuddyBoss ids are integers, the seed's examples
//! are strings such as `"THREAD_ID"`); bbrt always emits them as strings. An id is 1 to
//! [`MAX_ID_LEN`] bytes from `[A-Za-z0-9._~:@+-]`: no spaces, quotes or control
//! characters, so an id can never smuggle markup or a log line into anything.

use std::fmt;
use std::sync::Arc;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Longest accepted wire id, in bytes.
pub const MAX_ID_LEN: usize = 128;

/// Longest node id, in bytes: a call id is `<node>-<counter>`, and with the 20 digits of
/// `u64::MAX` and the dash it must still fit [`MAX_ID_LEN`].
pub const MAX_NODE_ID_LEN: usize = MAX_ID_LEN - 1 - 20;

/// Why a string is not a valid wire id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdError {
    /// The id is the empty string.
    #[error("id is empty")]
    Empty,
    /// The id is longer than `max` bytes ([`MAX_ID_LEN`], or [`MAX_NODE_ID_LEN`] for a
    /// node id).
    #[error("id is longer than {max} bytes")]
    TooLong {
        /// The longest accepted, in bytes.
        max: usize,
    },
    /// The id holds a character outside `[A-Za-z0-9._~:@+-]`.
    #[error("id holds a character outside [A-Za-z0-9._~:@+-]")]
    BadCharacter,
}

fn check_id(s: &str, max: usize) -> Result<(), IdError> {
    if s.is_empty() {
        return Err(IdError::Empty);
    }
    if s.len() > max {
        return Err(IdError::TooLong { max });
    }
    let ok = s.bytes().all(|b| {
        b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'~' | b':' | b'@' | b'+' | b'-')
    });
    if ok {
        Ok(())
    } else {
        Err(IdError::BadCharacter)
    }
}

macro_rules! wire_id {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        wire_id!($(#[$doc])* $name, $what, MAX_ID_LEN);
    };
    ($(#[$doc:meta])* $name:ident, $what:literal, $max:expr) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Arc<str>);

        impl $name {
            /// Validates `s` as an id.
            ///
            /// # Errors
            /// [`IdError`] when `s` is empty, too long or holds a forbidden character.
            pub fn new(s: &str) -> Result<Self, IdError> {
                check_id(s, $max)?;
                Ok(Self(Arc::from(s)))
            }

            /// The id as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($what, "({})"), &self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::new(s)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                deserializer
                    .deserialize_any(IdVisitor { what: $what, max: $max })
                    .map(|s| Self(Arc::from(s)))
            }
        }
    };
}

struct IdVisitor {
    what: &'static str,
    max: usize,
}

impl<'de> Visitor<'de> for IdVisitor {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a {} as a string or a non-negative integer", self.what)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        check_id(v, self.max).map_err(|e| E::custom(format_args!("invalid {}: {e}", self.what)))?;
        Ok(v.to_owned())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
        u64::try_from(v)
            .map(|v| v.to_string())
            .map_err(|_| E::custom(format_args!("invalid {}: negative", self.what)))
    }
}

wire_id!(
    /// A user, as the site knows them (BuddyBoss: the WordPress user id).
    UserId,
    "UserId"
);
wire_id!(
    /// A message thread (BuddyBoss: the thread id).
    ThreadId,
    "ThreadId"
);
wire_id!(
    /// A stored message (BuddyBoss: the message id).
    MessageId,
    "MessageId"
);
wire_id!(
    /// A call; always assigned by the server as `<node>-<counter>` (a client's own id for a new
    /// call is not trusted: two nodes could hand out the same one).
    CallId,
    "CallId"
);
wire_id!(
    /// A client's own id for a message it sends, used for idempotency.
    ClientMessageId,
    "ClientMessageId"
);
wire_id!(
    /// One bbrt node of a deployment, as configured (`--node-id`) or chosen at random at
    /// start-up; at most [`MAX_NODE_ID_LEN`] bytes, so that `<node>-<u64>` is a valid
    /// [`CallId`]. Two processes should never share one (`docs/scaling.md`).
    NodeId,
    "NodeId",
    MAX_NODE_ID_LEN
);
wire_id!(
    /// One process of a node: random, chosen by the driver at start-up, never reused. It
    /// tells apart two processes that share a node id (a misconfiguration, or a restart):
    /// a Hub ignores a publication only when it carries its own instance.
    InstanceId,
    "InstanceId"
);

macro_rules! local_handle {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub u64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "{}"), self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }
    };
}

local_handle!(
    /// A connection on this node, chosen by the driver; never reused while the process lives.
    ConnId,
    "conn#"
);
local_handle!(
    /// A credential held by the driver's credential store. The Hub never sees the secret.
    CredentialId,
    "cred#"
);
local_handle!(
    /// Correlates an [`Output::Api`](crate::hub::Output::Api) with its result.
    ApiRequestId,
    "api#"
);
local_handle!(
    /// Correlates an [`Output::Coord`](crate::hub::Output::Coord) with its result.
    CoordRequestId,
    "coord#"
);

/// A connection anywhere in the deployment: the node that holds it and its local handle.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Serialize, Deserialize)]
pub struct DeviceRef {
    /// The node that holds the connection.
    pub node: NodeId,
    /// The connection's handle on that node.
    pub conn: u64,
}

/// Ids from a test's literals, for every module's unit tests.
#[cfg(test)]
pub(crate) mod testing {
    use super::{ThreadId, UserId};

    pub(crate) fn user(s: &str) -> UserId {
        UserId::new(s).expect("a valid id")
    }

    pub(crate) fn thread(s: &str) -> ThreadId {
        ThreadId::new(s).expect("a valid id")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_accept_strings_and_non_negative_integers() {
        let a: ThreadId = serde_json::from_str("\"THREAD_ID\"").unwrap();
        let b: ThreadId = serde_json::from_str("42").unwrap();
        assert_eq!(a.as_str(), "THREAD_ID");
        assert_eq!(serde_json::to_string(&b).unwrap(), "\"42\"");
        assert!(serde_json::from_str::<ThreadId>("-1").is_err());
        assert!(serde_json::from_str::<ThreadId>("1.5").is_err());
        assert!(serde_json::from_str::<ThreadId>("\"\"").is_err());
        assert!(serde_json::from_str::<ThreadId>("\"a b\"").is_err());
        assert!(serde_json::from_str::<ThreadId>("\"a\\u0000\"").is_err());
        assert!(serde_json::from_str::<ThreadId>("null").is_err());
        assert!(serde_json::from_str::<ThreadId>("[1]").is_err());
        let long = format!("\"{}\"", "x".repeat(MAX_ID_LEN + 1));
        assert!(serde_json::from_str::<ThreadId>(&long).is_err());
        assert!(serde_json::from_str::<UserId>("18446744073709551615").is_ok());
        assert!(serde_json::from_str::<UserId>("18446744073709551616").is_err());
    }

    #[test]
    fn a_node_id_leaves_room_for_a_call_counter() {
        let longest = "n".repeat(MAX_NODE_ID_LEN);
        let node = NodeId::new(&longest).expect("the longest node id is valid");
        let call = format!("{node}-{}", u64::MAX);
        assert!(CallId::new(&call).is_ok(), "{} bytes", call.len());
        let over = "n".repeat(MAX_NODE_ID_LEN + 1);
        assert_eq!(
            NodeId::new(&over).map(|_| ()),
            Err(IdError::TooLong {
                max: MAX_NODE_ID_LEN
            })
        );
        assert!(serde_json::from_str::<NodeId>(&format!("\"{over}\"")).is_err());
        assert!(ThreadId::new(&over).is_ok());
    }
}
