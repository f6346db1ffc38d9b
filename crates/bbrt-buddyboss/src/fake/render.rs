//! Answers as BuddyBoss renders them: the thread, message and error JSON, and the
//! headers every answer carries.

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};

use crate::text::strip_tags;
use crate::time::naive_from_unix;

use super::FakeMessage;
use super::filters::{autop, excerpt};
use super::state::{State, Thread, user_name};

pub(super) struct Answer {
    pub(super) status: StatusCode,
    pub(super) body: Value,
    pub(super) headers: Vec<(&'static str, String)>,
}

impl Answer {
    pub(super) fn ok(body: Value) -> Self {
        Self {
            status: StatusCode::OK,
            body,
            headers: Vec::new(),
        }
    }

    pub(super) fn error(status: u16, code: &str, message: &str) -> Self {
        Self {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            body: json!({ "code": code, "message": message, "data": { "status": status } }),
            headers: Vec::new(),
        }
    }

    pub(super) fn error_with_data(status: u16, code: &str, message: &str, data: Value) -> Self {
        Self {
            body: json!({ "code": code, "message": message, "data": data }),
            ..Self::error(status, code, message)
        }
    }
}

pub(super) fn with_param(mut a: Answer, name: &str, why: &str) -> Answer {
    a.body["data"]["params"] = json!({ name: why });
    a
}

pub(super) fn raw_response(status: StatusCode, content_type: &str, body: Vec<u8>) -> Response {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from(body))
        .expect("static response parts are valid")
}

pub(super) fn respond(answer: Answer, unread: u32, authenticated: bool) -> Response {
    let mut builder = Response::builder()
        .status(answer.status)
        .header(header::CONTENT_TYPE, "application/json; charset=UTF-8")
        .header("x-robots-tag", "noindex")
        .header(
            "link",
            "<http://127.0.0.1/wp-json/>; rel=\"https://api.w.org/\"",
        )
        .header("x-content-type-options", "nosniff")
        .header(
            "access-control-expose-headers",
            "X-WP-Total, X-WP-TotalPages, Link",
        )
        .header(
            "access-control-allow-headers",
            "Authorization, X-WP-Nonce, Content-Disposition, Content-MD5, Content-Type",
        )
        .header("bbp-unread-messages", unread.to_string());
    if authenticated {
        builder = builder
            .header(header::EXPIRES, "Wed, 11 Jan 1984 05:00:00 GMT")
            .header(
                header::CACHE_CONTROL,
                "no-cache, must-revalidate, max-age=0",
            );
    }
    for (name, value) in answer.headers {
        if let Ok(v) = HeaderValue::from_str(&value) {
            builder = builder.header(name, v);
        }
    }
    builder
        .body(Body::from(answer.body.to_string()))
        .expect("response parts are valid")
}

pub(super) fn avatar_pair(site: &str) -> Value {
    json!({
        "full": format!("{site}/wp-content/plugins/buddyboss-platform/src/bp-core/images/profile-avatar-buddyboss.png"),
        "thumb": format!("{site}/wp-content/plugins/buddyboss-platform/src/bp-core/images/profile-avatar-buddyboss-50.png"),
    })
}

pub(super) const SITE: &str = "http://127.0.0.1";

pub(super) fn permissions() -> Value {
    json!({
        "unread": true,
        "delete_messages": true,
        "delete_thread": false,
        "can_manage_media": false,
        "can_manage_video": false,
        "can_manage_document": false,
        "hide_thread": true,
    })
}

pub(super) fn message_json(s: &State, thread: u64, m: &FakeMessage) -> Value {
    let (name, _) = user_name(s, m.sender);
    json!({
        "id": m.id,
        "thread_id": thread,
        "sender_id": m.sender,
        "subject": { "raw": m.subject, "rendered": m.subject },
        "message": { "raw": strip_tags(&m.stored).trim(), "rendered": autop(&m.stored) },
        "date_sent": naive_from_unix(m.sent_at),
        "display_date": "Just now",
        "group_name": "",
        "group_text": "",
        "group_link": "",
        "group_message_users": "",
        "group_message_type": "",
        "group_message_thread_type": "",
        "group_message_fresh": "",
        "message_from": "",
        "group_member_action_type": "",
        "sender_data": { "sender_name": name, "user_avatars": avatar_pair(SITE) },
        "is_starred": false,
    })
}

/// The thread object (`prepare_item_for_response`) for `caller`; `edit` keeps `raw` on
/// the thread-level subject, excerpt and message (POST answers).
pub(super) fn thread_json(
    s: &State,
    t: &Thread,
    caller: u64,
    edit: bool,
    before: Option<i64>,
    upto: Option<u64>,
) -> Value {
    let latest = t.messages.last();
    let parts = |raw: &str, rendered: &str| {
        if edit {
            json!({ "raw": raw, "rendered": rendered })
        } else {
            json!({ "rendered": rendered })
        }
    };
    let eligible: Vec<&FakeMessage> = t
        .messages
        .iter()
        .filter(|m| before.is_none_or(|b| m.sent_at <= b))
        .filter(|m| upto.is_none_or(|u| m.id <= u))
        .collect();
    let page: Vec<&FakeMessage> = eligible.iter().rev().take(10).rev().copied().collect();
    // BuddyBoss gives a cursor whenever the page is full, whether or not anything older
    // is left, and it is the oldest date minus one second: the rest of that second is
    // never listed by it.
    let next = if page.len() >= 10 {
        page.first()
            .map_or(String::new(), |m| naive_from_unix(m.sent_at - 1))
    } else {
        String::new()
    };
    let sender_ids: serde_json::Map<String, Value> = page
        .iter()
        .map(|m| (m.sender.to_string(), json!(m.sender)))
        .collect();
    let recipients: serde_json::Map<String, Value> = t
        .rows
        .iter()
        .map(|r| {
            let (name, login) = user_name(s, r.user);
            (
                r.user.to_string(),
                json!({
                    "id": r.row_id,
                    "user_id": r.user,
                    "user_link": format!("{SITE}/members/{login}/"),
                    "name": name,
                    "user_avatars": avatar_pair(SITE),
                    "thread_id": t.id,
                    "unread_count": r.unread,
                    "sender_only": 0,
                    "is_deleted": 0,
                    "is_hidden": 0,
                    "current_user_permissions": permissions(),
                }),
            )
        })
        .collect();
    let caller_unread = t
        .rows
        .iter()
        .find(|r| r.user == caller)
        .map_or(0, |r| r.unread);
    let stored = latest.map_or("", |m| m.stored.as_str());
    let subject = latest.map_or("", |m| m.subject.as_str());
    let mut links = serde_json::Map::new();
    links.insert(
        "self".into(),
        json!([{ "href": format!("{SITE}/wp-json/buddyboss/v1/messages/{}", t.id) }]),
    );
    links.insert(
        "collection".into(),
        json!([{ "href": format!("{SITE}/wp-json/buddyboss/v1/messages/") }]),
    );
    for m in &page {
        links.insert(
            m.id.to_string(),
            json!([{ "href": format!("{SITE}/wp-json/buddyboss/v1/messages/starred/{}", m.id) }]),
        );
    }
    json!({
        "id": t.id,
        "message_id": latest.map_or(0, |m| m.id),
        "last_sender_id": latest.map_or(0, |m| m.sender),
        "subject": parts(subject, subject),
        "excerpt": parts(&excerpt(stored), &excerpt(stored)),
        "message": parts(stored, &autop(stored)),
        "date": latest.map(|m| naive_from_unix(m.sent_at)),
        "start_date": t.messages.first().map(|m| naive_from_unix(m.sent_at)),
        "unread_count": u32::from(caller_unread > 0),
        "sender_ids": if sender_ids.is_empty() { Value::Null } else { Value::Object(sender_ids) },
        "current_user": caller,
        "can_send_message": true,
        "avatar": [avatar_pair(SITE)],
        "is_group": false,
        "is_group_thread": false,
        "group_name": "",
        "group_link": "",
        "group_message_users": "",
        "group_message_type": "",
        "group_message_from": "",
        "recipients_count": t.rows.len(),
        "recipients_per_page": 20,
        "recipients_total_pages": t.rows.len().div_ceil(20).max(1),
        "recipients": if recipients.is_empty() { json!([]) } else { Value::Object(recipients) },
        "message_per_page": 10,
        "messages_count": t.messages.len(),
        "next_messages_timestamp": next,
        "messages": page.iter().map(|m| message_json(s, t.id, m)).collect::<Vec<_>>(),
        "loggedin_user_permissions": permissions(),
        "is_hidden": false,
        "starred_message_ids": [],
        "_links": links,
    })
}
