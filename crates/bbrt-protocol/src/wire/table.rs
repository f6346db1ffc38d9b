//! The one list of message types: each direction's enum, its wire `type` names and the
//! decoding match are generated from one table (in `mod.rs`), so a new type is one line.

/// Generates, from one `Variant(Body) = "wire_type"` table, the message enum (serde-tagged
/// by `type`), `kind()`, `KINDS` (every wire `type`, in table order) and `decode_kind`,
/// the second decoding pass: the body for a known `type` through `$decode`, `None` for an
/// unknown one.
///
/// `$decode` is a generic `fn(kind: &'static str, frame: $src) -> Result<T, $err>`; the
/// table names each body type once and inference picks it per arm.
macro_rules! message_table {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident, decoded from ($src:ty) by $decode:ident into ($err:ty) {
            $(
                $(#[$doc:meta])*
                $variant:ident($body:ty) = $wire:tt,
            )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Serialize)]
        #[serde(tag = "type")]
        #[non_exhaustive]
        $vis enum $name {
            $(
                $(#[$doc])*
                #[serde(rename = $wire)]
                $variant($body),
            )*
        }

        impl $name {
            /// Every wire `type` of this direction, in table order.
            pub const KINDS: [&'static str; [$($wire),*].len()] = [$($wire),*];

            /// The wire `type`.
            pub fn kind(&self) -> &'static str {
                match self {
                    $(Self::$variant(_) => $wire,)*
                }
            }

            /// The second decoding pass: the body of a frame whose `type` is `kind`, or
            /// `None` when no message has that `type`.
            fn decode_kind(kind: &str, frame: $src) -> Option<Result<Self, $err>> {
                Some(match kind {
                    $($wire => $decode($wire, frame).map(Self::$variant),)*
                    _ => return None,
                })
            }
        }
    };
}

pub(super) use message_table;
