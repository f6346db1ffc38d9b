//! The parts of BuddyBoss's JSON that bbrt reads, decoded tolerantly: unknown fields are
//! ignored, ids may be numbers or numeric strings, `recipients` keeps the site's order.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// A BuddyBoss id: a JSON integer or a string of digits (`recipient_ids` are strings).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Id(pub(crate) u64);

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Id;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a non-negative integer id")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Id, E> {
                Ok(Id(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Id, E> {
                u64::try_from(v)
                    .map(Id)
                    .map_err(|_| E::custom("negative id"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Id, E> {
                v.parse()
                    .map(Id)
                    .map_err(|_| E::custom("id is not a number"))
            }
        }
        d.deserialize_any(V)
    }
}

/// The WordPress error body: `{"code","message","data":{"status"}}`.
#[derive(Debug, Deserialize)]
pub(crate) struct ErrorBody {
    pub(crate) code: String,
    #[serde(default)]
    pub(crate) message: String,
}

/// `GET /wp/v2/users/me`.
#[derive(Debug, Deserialize)]
pub(crate) struct UserJson {
    pub(crate) id: Id,
    #[serde(default)]
    pub(crate) name: String,
    /// `{"24": url, "48": url, "96": url}`, or `[]` when PHP had none.
    #[serde(default)]
    pub(crate) avatar_urls: serde_json::Value,
}

impl UserJson {
    /// The 96 px avatar, else the largest one given.
    pub(crate) fn avatar(&self) -> Option<String> {
        let map = self.avatar_urls.as_object()?;
        if let Some(url) = map.get("96").and_then(|v| v.as_str()) {
            return Some(url.to_owned());
        }
        map.iter()
            .filter_map(|(k, v)| Some((k.parse::<u32>().unwrap_or(0), v.as_str()?)))
            .max_by_key(|(size, _)| *size)
            .map(|(_, url)| url.to_owned())
    }
}

/// `{raw, rendered}`, or a bare string.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum Content {
    Parts {
        #[serde(default)]
        raw: Option<String>,
        #[serde(default)]
        rendered: Option<String>,
    },
    Plain(String),
}

impl Content {
    pub(crate) fn raw(&self) -> Option<&str> {
        match self {
            Self::Parts { raw, .. } => raw.as_deref(),
            Self::Plain(s) => Some(s),
        }
    }

    pub(crate) fn rendered(&self) -> Option<&str> {
        match self {
            Self::Parts { rendered, .. } => rendered.as_deref(),
            Self::Plain(_) => None,
        }
    }
}

/// A message object inside a thread.
#[derive(Debug, Deserialize)]
pub(crate) struct MessageJson {
    pub(crate) id: Id,
    pub(crate) sender_id: Id,
    pub(crate) message: Content,
    #[serde(default)]
    pub(crate) date_sent: Option<String>,
}

/// A recipient row: `id` is the row id, `user_id` the user.
#[derive(Debug, Deserialize)]
pub(crate) struct RecipientJson {
    pub(crate) user_id: Id,
    #[serde(default)]
    pub(crate) is_deleted: Option<serde_json::Value>,
}

impl RecipientJson {
    pub(crate) fn deleted(&self) -> bool {
        match &self.is_deleted {
            Some(serde_json::Value::Number(n)) => n.as_u64() != Some(0),
            Some(serde_json::Value::Bool(b)) => *b,
            Some(serde_json::Value::String(s)) => s != "0" && !s.is_empty(),
            _ => false,
        }
    }
}

/// `recipients`: an object keyed by user id, in the site's order (`[]` when empty).
#[derive(Debug, Default)]
pub(crate) struct Recipients(pub(crate) Vec<RecipientJson>);

impl<'de> Deserialize<'de> for Recipients {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Recipients;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of recipients keyed by user id")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Recipients, A::Error> {
                let mut rows = Vec::new();
                while let Some((_, row)) = map.next_entry::<IgnoredAny, RecipientJson>()? {
                    rows.push(row);
                }
                Ok(Recipients(rows))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Recipients, A::Error> {
                let mut rows = Vec::new();
                while let Some(row) = seq.next_element::<RecipientJson>()? {
                    rows.push(row);
                }
                Ok(Recipients(rows))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Recipients, E> {
                Ok(Recipients::default())
            }
        }
        d.deserialize_any(V)
    }
}

/// A thread object (`GET /messages/{id}`, the `POST /messages` answer, list items).
#[derive(Debug, Deserialize)]
pub(crate) struct ThreadJson {
    pub(crate) id: Id,
    #[serde(default)]
    pub(crate) message_id: Option<Id>,
    #[serde(default)]
    pub(crate) date: Option<String>,
    #[serde(default)]
    pub(crate) recipients: Option<Recipients>,
    /// List items carry `recipient_ids` (strings).
    #[serde(default)]
    pub(crate) recipient_ids: Option<Vec<Id>>,
    #[serde(default)]
    pub(crate) messages: Vec<MessageJson>,
    /// The cursor to the next older page: the oldest message's date minus one second,
    /// `""` when the page is not full.
    #[serde(default)]
    pub(crate) next_messages_timestamp: Option<String>,
}

impl ThreadJson {
    /// The participants, in the site's order, without rows marked deleted; `None` when the
    /// object names none.
    pub(crate) fn participants(&self) -> Option<Vec<u64>> {
        if let Some(r) = &self.recipients {
            return Some(
                r.0.iter()
                    .filter(|r| !r.deleted())
                    .map(|r| r.user_id.0)
                    .collect(),
            );
        }
        self.recipient_ids
            .as_ref()
            .map(|ids| ids.iter().map(|i| i.0).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipients_keep_site_order_and_use_user_id() {
        let t: ThreadJson = serde_json::from_str(
            r#"{"id":2,"message_id":5,"recipients":{"2":{"id":2,"user_id":2},"4":{"id":7,"user_id":4,"is_deleted":0},"3":{"id":6,"user_id":3},"9":{"id":8,"user_id":9,"is_deleted":1}},"messages":[]}"#,
        )
        .expect("valid thread");
        assert_eq!(t.participants(), Some(vec![2, 4, 3]));
        let t: ThreadJson =
            serde_json::from_str(r#"{"id":"1","recipients":[],"recipient_ids":["2","3"]}"#)
                .expect("valid");
        assert_eq!(t.participants(), Some(vec![]));
        let t: ThreadJson =
            serde_json::from_str(r#"{"id":1,"recipient_ids":["2","3"]}"#).expect("valid");
        assert_eq!(t.participants(), Some(vec![2, 3]));
    }

    #[test]
    fn avatar_prefers_96() {
        let u: UserJson = serde_json::from_str(
            r#"{"id":2,"name":"A","avatar_urls":{"24":"a","96":"c","48":"b"}}"#,
        )
        .expect("valid");
        assert_eq!(u.avatar().as_deref(), Some("c"));
        let u: UserJson =
            serde_json::from_str(r#"{"id":2,"name":"A","avatar_urls":{"24":"a","48":"b"}}"#)
                .expect("valid");
        assert_eq!(u.avatar().as_deref(), Some("b"));
        let u: UserJson =
            serde_json::from_str(r#"{"id":2,"name":"A","avatar_urls":[]}"#).expect("valid");
        assert_eq!(u.avatar(), None);
    }
}
