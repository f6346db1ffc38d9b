//! bbrt's companion plugin's idempotent `POST bbrt/v1/messages`.

use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

use super::Fault;
use super::auth::{Caller, authenticate};
use super::render::{Answer, thread_json, with_param};
use super::routes::{create_message, login_required_to_create, may_create, parse_id_list};
use super::state::{KeyRow, Shared, State, is_participant, total_unread};

/// `client_message_id`'s alphabet and length, as the plugin checks it (bbrt's
/// `clientMessageId`).
pub(super) fn valid_send_key(key: &str) -> bool {
    (1..=128).contains(&key.len())
        && key.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'~' | b':' | b'@' | b'+' | b'-')
        })
}

/// The parameters that make two sends "the same": `id`, `message`, `subject`,
/// `recipients` (as a sorted set), `send_at`.
pub(super) fn send_fingerprint(params: &Value) -> String {
    let text = |name: &str| match params.get(name) {
        Some(Value::String(v)) => v.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    };
    let thread = match params.get("id") {
        Some(Value::Number(n)) => n.as_u64().unwrap_or(0),
        Some(Value::String(v)) => v.trim().parse().unwrap_or(0),
        _ => 0,
    };
    let mut recipients = parse_id_list(params.get("recipients"));
    recipients.sort_unstable();
    json!([
        thread,
        text("message"),
        text("subject"),
        recipients,
        text("send_at")
    ])
    .to_string()
}

/// The stored message of a complete key, as the plugin answers it: BuddyBoss's thread
/// object in `edit` context, its page ending at that message.
pub(super) fn replay(s: &State, uid: u64, thread: u64, message: u64, replayed: bool) -> Answer {
    match s.threads.get(&thread) {
        Some(t) if is_participant(t, uid) => {
            let mut a = Answer::ok(thread_json(s, t, uid, true, None, Some(message)));
            a.headers.push(("x-bbrt-message-id", message.to_string()));
            a.headers.push(("x-bbrt-replayed", replayed.to_string()));
            a
        }
        _ => Answer::error(
            403,
            "bp_rest_authorization_required",
            "Sorry, you are not allowed to perform this action.",
        ),
    }
}

pub(super) fn in_progress() -> Answer {
    let mut a = Answer::error(
        409,
        "bbrt_send_in_progress",
        "Another request is storing this message. Try again shortly.",
    );
    a.body["data"]["retryable"] = json!(true);
    a.headers.push(("retry-after", "1".into()));
    a
}

/// The plugin's `POST bbrt/v1/messages` (`docs/wordpress.md`, "The route").
pub(super) async fn plugin_send_message(
    shared: &Shared,
    body: &Bytes,
    headers: &HeaderMap,
    fault: Option<Fault>,
) -> (Answer, u32, bool) {
    let params: Value = if body.is_empty() {
        json!({})
    } else {
        match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(_) => {
                let a = Answer::error(400, "rest_invalid_json", "Invalid JSON body passed.");
                return (a, 0, false);
            }
        }
    };
    let key = match params.get("client_message_id") {
        None | Some(Value::Null) => {
            let mut a = Answer::error(
                400,
                "rest_missing_callback_param",
                "Missing parameter(s): client_message_id",
            );
            a.body["data"]["params"] = json!(["client_message_id"]);
            return (a, 0, false);
        }
        Some(Value::String(k)) if valid_send_key(k) => k.clone(),
        Some(_) => {
            let a = Answer::error(
                400,
                "rest_invalid_param",
                "Invalid parameter(s): client_message_id",
            );
            return (
                with_param(
                    a,
                    "client_message_id",
                    "client_message_id is not a valid key.",
                ),
                0,
                false,
            );
        }
    };
    if params.get("sender_id").is_some() {
        let a = Answer::error(400, "rest_invalid_param", "Invalid parameter(s): sender_id");
        return (
            with_param(
                a,
                "sender_id",
                "sender_id is not accepted: messages are sent as the authenticated user.",
            ),
            0,
            false,
        );
    }
    let fingerprint = send_fingerprint(&params);
    let (uid, row) = {
        let mut s = shared.state();
        let caller = match authenticate(&s, headers) {
            Err(a) => return (a, 0, false),
            Ok(c) => c,
        };
        let Caller::User(uid, _) = caller else {
            return (login_required_to_create(), 0, false);
        };
        if let Err(a) = may_create(&s, &params, uid) {
            return (a, total_unread(&s, uid), true);
        }
        if fault == Some(Fault::KeyStoreDown) {
            let mut a = Answer::error(
                503,
                "bbrt_store_unavailable",
                "The message could not be stored right now. Try again shortly.",
            );
            a.body["data"]["retryable"] = json!(true);
            return (a, total_unread(&s, uid), true);
        }
        let slot = (uid, key.clone());
        match s.send_keys.get(&slot).cloned() {
            Some(row) => (uid, Some(row)),
            None => {
                s.send_keys.insert(
                    slot,
                    KeyRow::Pending {
                        fingerprint: fingerprint.clone(),
                    },
                );
                (uid, None)
            }
        }
    };
    let slot = (uid, key);
    let unread = |s: &State| total_unread(s, uid);
    match row {
        Some(row) if row.fingerprint() != fingerprint => {
            let s = shared.state();
            let a = Answer::error(
                409,
                "idempotency_conflict",
                "This client_message_id was already used for another message.",
            );
            (a, unread(&s), true)
        }
        Some(KeyRow::Complete {
            thread, message, ..
        }) => {
            let s = shared.state();
            (replay(&s, uid, thread, message, true), unread(&s), true)
        }
        Some(KeyRow::Pending { .. }) => {
            let wait = shared.state().in_progress_wait;
            let until = tokio::time::Instant::now() + wait;
            loop {
                {
                    let s = shared.state();
                    match s.send_keys.get(&slot) {
                        Some(KeyRow::Complete {
                            thread, message, ..
                        }) => {
                            return (replay(&s, uid, *thread, *message, true), unread(&s), true);
                        }
                        Some(KeyRow::Pending { .. }) if tokio::time::Instant::now() < until => {}
                        _ => return (in_progress(), unread(&s), true),
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        None => {
            if let Some(Fault::SlowStore(d)) = fault {
                tokio::time::sleep(d).await;
            }
            let mut s = shared.state();
            let mut create = params.clone();
            if let Value::Object(m) = &mut create {
                m.remove("client_message_id");
            }
            s.last_created = None;
            let answer = create_message(
                &mut s,
                create.to_string().as_bytes(),
                &Caller::User(uid, "plugin"),
            );
            match (answer.status == StatusCode::OK, s.last_created) {
                (true, Some((thread, message))) => {
                    s.send_keys.insert(
                        slot,
                        KeyRow::Complete {
                            fingerprint,
                            thread,
                            message,
                        },
                    );
                    let mut a = answer;
                    a.headers.push(("x-bbrt-message-id", message.to_string()));
                    a.headers.push(("x-bbrt-replayed", "false".into()));
                    (a, unread(&s), true)
                }
                _ => {
                    // A refused send frees its key, so a retry can try again.
                    s.send_keys.remove(&slot);
                    (answer, unread(&s), true)
                }
            }
        }
    }
}
